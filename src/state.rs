//! The connection state machine. Pure: it decides, the session driver acts.
//!
//! ```text
//! Connecting ──open──▶ Open ──close asked / Close frame──▶ Closing
//!     │                  │                                    │
//!     │ end, retry       │ end, retry                         │ end, retry
//!     ▼                  ▼                                    ▼
//! Reconnecting ◀───────────────────────────────────────────────┘
//!     │ open ─▶ Open
//!     ▼ end without retry (from any state) ─▶ Closed (terminal)
//! ```

/// When the machine retries: the part of the reconnect options it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Reconnect at all after ends the app did not ask for.
    pub enabled: bool,
    /// Failed attempts in a row after which the client gives up.
    pub max_attempts: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            enabled: true,
            max_attempts: None,
        }
    }
}

/// The state reported to the app (`ws_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Connecting,
    Open,
    Reconnecting,
    Closing,
    Closed,
}

/// Why a connection, or an attempt at one, ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The close the app asked for (`ws_close`) completed or timed out.
    UserClose,
    /// The peer sent a Close frame with this code (1005 when it had none).
    PeerClose(u16),
    /// TCP was reset, ended without a close handshake, or failed mid-way.
    Lost,
    /// TCP connect or DNS failed, or the attempt exceeded `connect_timeout_ms`.
    ConnectFailed,
    /// The server answered the upgrade with this HTTP status.
    HandshakeStatus(u16),
    /// No frame arrived within `pong_timeout_ms` of a Ping.
    HeartbeatTimeout,
    /// The peer broke RFC 6455, or sent a message over the limits.
    ProtocolViolation,
    /// Something that retrying cannot fix: TLS trust, bad subprotocol answer.
    Configuration,
    /// The app paused the client (`ws_pause`): no retry until resumed.
    Paused,
    /// The app asked for a fresh connection (`ws_reconnect`).
    Restart,
}

impl End {
    /// Whether this end, not asked for by the app, warrants a reconnect.
    pub fn is_retryable(&self) -> bool {
        match self {
            End::UserClose | End::Paused | End::Configuration | End::ProtocolViolation => false,
            End::Lost | End::ConnectFailed | End::HeartbeatTimeout | End::Restart => true,
            End::PeerClose(code) => matches!(code, 1001 | 1006 | 1011 | 1012 | 1013),
            // 4xx is a configuration error, except "come back later" answers.
            End::HandshakeStatus(status) => *status >= 500 || *status == 429,
        }
    }
}

/// What the connection task should do after an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait, then try attempt number `attempt` (1-based).
    Reconnect { attempt: u32 },
    /// Connect again at once, without counting an attempt (`ws_reconnect`).
    ReconnectNow,
    /// Paused by the app: no attempt until it resumes. The state is
    /// `Reconnecting`.
    Suspend,
    /// Stop: the state is now `Closed`.
    Stop,
}

/// The state machine of one client across all its connections.
#[derive(Debug, Clone)]
pub struct Machine {
    state: State,
    /// Failed attempts since the last connection that stayed open.
    attempts: u32,
    reconnect_enabled: bool,
    max_attempts: Option<u32>,
    close_requested: bool,
}

impl Machine {
    pub fn new(policy: RetryPolicy) -> Machine {
        Machine {
            state: State::Connecting,
            attempts: 0,
            reconnect_enabled: policy.enabled,
            max_attempts: policy.max_attempts,
            close_requested: false,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// Failed attempts since the last stable connection.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    pub fn close_requested(&self) -> bool {
        self.close_requested
    }

    /// The handshake completed.
    pub fn opened(&mut self) -> State {
        debug_assert!(matches!(
            self.state,
            State::Connecting | State::Reconnecting
        ));
        self.state = State::Open;
        self.state
    }

    /// The connection has stayed open long enough: backoff starts over.
    pub fn stayed_open(&mut self) {
        self.attempts = 0;
    }

    /// A close handshake started, by the app (`by_user`) or the peer.
    /// Returns the new state if it changed.
    pub fn closing(&mut self, by_user: bool) -> Option<State> {
        self.close_requested |= by_user;
        match self.state {
            State::Open => {
                self.state = State::Closing;
                Some(self.state)
            }
            _ => None,
        }
    }

    /// The app asked to close while no connection is open: nothing to
    /// hand-shake, the machine stops at once.
    pub fn close_while_down(&mut self) -> State {
        self.close_requested = true;
        self.state = State::Closed;
        self.state
    }

    /// A connection or attempt ended. Decides between a retry and the end.
    pub fn ended(&mut self, end: &End) -> Next {
        if self.state == State::Closed {
            return Next::Stop;
        }
        if !self.close_requested {
            match end {
                End::Paused => {
                    self.state = State::Reconnecting;
                    return Next::Suspend;
                }
                End::Restart => {
                    self.state = State::Reconnecting;
                    return Next::ReconnectNow;
                }
                _ => {}
            }
        }
        let retry = !self.close_requested && self.reconnect_enabled && end.is_retryable();
        let exhausted = self.max_attempts.is_some_and(|max| self.attempts >= max);
        if retry && !exhausted {
            self.attempts += 1;
            self.state = State::Reconnecting;
            Next::Reconnect {
                attempt: self.attempts,
            }
        } else {
            self.state = State::Closed;
            Next::Stop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(max_attempts: Option<u32>) -> Machine {
        Machine::new(RetryPolicy {
            max_attempts,
            ..RetryPolicy::default()
        })
    }

    #[test]
    fn starts_connecting_then_opens() {
        let mut m = machine(None);
        assert_eq!(m.state(), State::Connecting);
        assert_eq!(m.opened(), State::Open);
    }

    #[test]
    fn user_close_goes_through_closing_to_closed_without_retry() {
        let mut m = machine(None);
        m.opened();
        assert_eq!(m.closing(true), Some(State::Closing));
        assert_eq!(m.ended(&End::UserClose), Next::Stop);
        assert_eq!(m.state(), State::Closed);
    }

    #[test]
    fn user_close_wins_over_a_retryable_end() {
        let mut m = machine(None);
        m.opened();
        m.closing(true);
        assert_eq!(m.ended(&End::Lost), Next::Stop);
    }

    #[test]
    fn close_while_down_stops_at_once() {
        let mut m = machine(None);
        assert_eq!(m.ended(&End::ConnectFailed), Next::Reconnect { attempt: 1 });
        assert_eq!(m.close_while_down(), State::Closed);
        assert_eq!(m.ended(&End::ConnectFailed), Next::Stop);
    }

    #[test]
    fn retryable_ends_reconnect() {
        for end in [
            End::Lost,
            End::ConnectFailed,
            End::HeartbeatTimeout,
            End::HandshakeStatus(500),
            End::HandshakeStatus(503),
            End::HandshakeStatus(429),
            End::PeerClose(1001),
            End::PeerClose(1006),
            End::PeerClose(1011),
            End::PeerClose(1012),
            End::PeerClose(1013),
        ] {
            let mut m = machine(None);
            m.opened();
            assert_eq!(m.ended(&end), Next::Reconnect { attempt: 1 }, "{end:?}");
            assert_eq!(m.state(), State::Reconnecting);
        }
    }

    #[test]
    fn final_ends_close() {
        for end in [
            End::HandshakeStatus(400),
            End::HandshakeStatus(401),
            End::HandshakeStatus(404),
            End::PeerClose(1000),
            End::PeerClose(1008),
            End::PeerClose(4000),
            End::ProtocolViolation,
            End::Configuration,
        ] {
            let mut m = machine(None);
            assert_eq!(m.ended(&end), Next::Stop, "{end:?}");
            assert_eq!(m.state(), State::Closed);
        }
    }

    #[test]
    fn peer_close_passes_through_closing() {
        let mut m = machine(None);
        m.opened();
        assert_eq!(m.closing(false), Some(State::Closing));
        assert!(!m.close_requested());
        assert_eq!(
            m.ended(&End::PeerClose(1012)),
            Next::Reconnect { attempt: 1 }
        );
    }

    #[test]
    fn attempts_count_up_and_stop_at_the_maximum() {
        let mut m = machine(Some(3));
        for attempt in 1..=3 {
            assert_eq!(m.ended(&End::ConnectFailed), Next::Reconnect { attempt });
        }
        assert_eq!(m.ended(&End::ConnectFailed), Next::Stop);
        assert_eq!(m.state(), State::Closed);
    }

    #[test]
    fn a_stable_connection_resets_the_attempts() {
        let mut m = machine(Some(2));
        m.ended(&End::ConnectFailed);
        m.ended(&End::ConnectFailed);
        m.opened();
        m.stayed_open();
        assert_eq!(m.ended(&End::Lost), Next::Reconnect { attempt: 1 });
    }

    #[test]
    fn an_unstable_connection_keeps_counting() {
        let mut m = machine(Some(2));
        m.ended(&End::ConnectFailed);
        m.opened();
        assert_eq!(m.ended(&End::Lost), Next::Reconnect { attempt: 2 });
        m.opened();
        assert_eq!(m.ended(&End::Lost), Next::Stop);
    }

    #[test]
    fn pause_suspends_and_restart_reconnects_now_without_counting() {
        let mut m = machine(Some(1));
        m.opened();
        assert_eq!(m.ended(&End::Paused), Next::Suspend);
        assert_eq!(m.state(), State::Reconnecting);
        m.opened();
        assert_eq!(m.ended(&End::Restart), Next::ReconnectNow);
        assert_eq!(m.attempts(), 0);
        m.opened();
        assert_eq!(m.ended(&End::Lost), Next::Reconnect { attempt: 1 });
    }

    #[test]
    fn a_close_during_pause_or_restart_stops() {
        let mut m = machine(None);
        m.opened();
        m.closing(true);
        assert_eq!(m.ended(&End::Paused), Next::Stop);
    }

    #[test]
    fn reconnect_disabled_never_retries() {
        let mut m = Machine::new(RetryPolicy {
            enabled: false,
            ..RetryPolicy::default()
        });
        m.opened();
        assert_eq!(m.ended(&End::Lost), Next::Stop);
    }
}
