//! What the server is told to do: handshake replies, faults on an open
//! connection, network conditions. Plain values with a JSON form (the C
//! and JNI layers pass them as JSON text), parsed and checked once here.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// The server's answer to one handshake. Queued with
/// [`TestServer::push_reply`](crate::TestServer::push_reply); each new
/// connection takes the next one; once the queue is empty, connections are
/// accepted with the first subprotocol the client offers.
///
/// JSON: `{"accept": {"subprotocol": "chat", "headers": {"X-A": "1"}}}`,
/// `{"refuse": {"status": 503, "headers": {"Retry-After": "1"}, "body": ""}}`,
/// `"reset"`, `"silence"`, `{"slow_headers": {"gap_ms": 20}}`, and on
/// `wss://` servers `"tls_failure"`, `"other_key"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    /// `101 Switching Protocols`, choosing `subprotocol` (`None`: none),
    /// with extra response headers.
    Accept {
        #[serde(default)]
        subprotocol: Option<String>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// An HTTP answer other than 101 (e.g. 503 with `Retry-After`), then
    /// the connection closes.
    Refuse {
        status: u16,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        body: String,
    },
    /// Reads the request, then resets the connection (RST).
    Reset,
    /// Reads the request and never answers; the connection stays open.
    Silence,
    /// A correct 101, written one byte at a time, `gap_ms` apart.
    SlowHeaders { gap_ms: u64 },
    /// `wss://` servers only: the TLS handshake fails (a fatal alert).
    TlsFailure,
    /// `wss://` servers only: the TLS handshake serves a certificate of the
    /// same CA with another key (the chain verifies; a pin on
    /// [`TestServer::pin_sha256`](crate::TestServer::pin_sha256) fails), then
    /// accepts.
    OtherKey,
}

impl Reply {
    /// Whether this reply acts at the TLS handshake.
    pub fn is_tls(&self) -> bool {
        matches!(self, Reply::TlsFailure | Reply::OtherKey)
    }

    /// Accepts with no subprotocol and no extra header.
    pub fn accept() -> Reply {
        Reply::Accept {
            subprotocol: None,
            headers: BTreeMap::new(),
        }
    }

    /// Accepts, choosing `subprotocol`.
    pub fn accept_subprotocol(subprotocol: &str) -> Reply {
        Reply::Accept {
            subprotocol: Some(subprotocol.to_string()),
            headers: BTreeMap::new(),
        }
    }

    /// Refuses with `status` and these headers (e.g. `("Retry-After", "1")`).
    pub fn refuse(status: u16, headers: &[(&str, &str)]) -> Reply {
        Reply::Refuse {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: String::new(),
        }
    }

    /// Parses the JSON form; the error says what is wrong.
    pub fn from_json(json: &str) -> Result<Reply, String> {
        let reply: Reply =
            serde_json::from_str(json).map_err(|e| format!("bad reply JSON: {e}"))?;
        reply.check()?;
        Ok(reply)
    }

    /// Refuses what could not go on the wire.
    pub fn check(&self) -> Result<(), String> {
        let headers = match self {
            Reply::Accept {
                headers,
                subprotocol,
            } => {
                if let Some(p) = subprotocol {
                    check_header_value("subprotocol", p)?;
                }
                headers
            }
            Reply::Refuse {
                status, headers, ..
            } => {
                if !(200..=599).contains(status) || *status == 101 {
                    return Err(format!(
                        "refuse: status {status} is not 200..=599 (nor 101)"
                    ));
                }
                headers
            }
            _ => return Ok(()),
        };
        for (name, value) in headers {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(format!("header name {name:?} is not a token"));
            }
            check_header_value(name, value)?;
        }
        Ok(())
    }
}

fn check_header_value(name: &str, value: &str) -> Result<(), String> {
    if value.contains(['\r', '\n']) {
        Err(format!("header {name}: the value holds a line break"))
    } else {
        Ok(())
    }
}

/// Faults of one open connection, all off by default. Set with
/// [`Connection::set_faults`](crate::Connection::set_faults); they apply
/// from then on, and lifting them lets held bytes flow again, in order.
///
/// JSON: `{"black_hole": true, "stall": false, "drop_pongs": true,
/// "delay_ms": 100}` (missing keys are off).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Nothing moves either way and nothing closes: the server neither
    /// reads nor writes (held bytes go out once lifted).
    pub black_hole: bool,
    /// The server stops reading (no echo, no Pong) but still writes what
    /// it is told to send.
    pub stall: bool,
    /// Pings are read and not answered.
    pub drop_pongs: bool,
    /// Each frame the server writes goes out this long after it was sent.
    #[serde(rename = "delay_ms", with = "millis")]
    pub delay: Duration,
}

impl Faults {
    pub fn from_json(json: &str) -> Result<Faults, String> {
        serde_json::from_str(json).map_err(|e| format!("bad faults JSON: {e}"))
    }
}

/// Conditions of the whole network between the clients and the server,
/// for every connection, current and new. Set with
/// [`TestServer::set_network`](crate::TestServer::set_network).
///
/// JSON: `{"latency_ms": 200, "bandwidth_bytes_per_s": 10000, "cut": true}`
/// (missing keys: no latency, no limit, not cut).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Network {
    /// Added to every chunk of bytes, each way.
    #[serde(rename = "latency_ms", with = "millis")]
    pub latency: Duration,
    /// Bytes per second each way, per connection (`None`: no limit).
    #[serde(rename = "bandwidth_bytes_per_s")]
    pub bandwidth: Option<u64>,
    /// Nothing gets through, either way, on any connection; new
    /// connections are accepted (loopback cannot lose a SYN) and hear
    /// nothing. Lifting the cut delivers what was held.
    pub cut: bool,
}

impl Network {
    pub fn from_json(json: &str) -> Result<Network, String> {
        let network: Network =
            serde_json::from_str(json).map_err(|e| format!("bad network JSON: {e}"))?;
        if network.bandwidth == Some(0) {
            return Err("bandwidth_bytes_per_s must be above 0 (use \"cut\")".into());
        }
        Ok(network)
    }

    /// How long `bytes` take at the bandwidth limit.
    pub fn transfer_time(&self, bytes: usize) -> Duration {
        match self.bandwidth {
            None => Duration::ZERO,
            Some(bps) => {
                let micros = (bytes as u128 * 1_000_000) / u128::from(bps.max(1));
                Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
            }
        }
    }
}

/// A longest delay, so a wild value cannot overflow a timer.
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms = u64::deserialize(d)?;
        Ok(Duration::from_millis(ms).min(super::MAX_DELAY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_from_json() {
        assert_eq!(Reply::from_json("\"reset\""), Ok(Reply::Reset));
        assert_eq!(
            Reply::from_json(r#"{"refuse":{"status":503,"headers":{"Retry-After":"1"}}}"#),
            Ok(Reply::refuse(503, &[("Retry-After", "1")]))
        );
        assert_eq!(
            Reply::from_json(r#"{"accept":{"subprotocol":"chat"}}"#),
            Ok(Reply::accept_subprotocol("chat"))
        );
        assert_eq!(
            Reply::from_json(r#"{"slow_headers":{"gap_ms":5}}"#),
            Ok(Reply::SlowHeaders { gap_ms: 5 })
        );
    }

    #[test]
    fn replies_that_cannot_be_written_are_refused() {
        for bad in [
            r#"{"refuse":{"status":101}}"#,
            r#"{"refuse":{"status":99}}"#,
            r#"{"refuse":{"status":503,"headers":{"A":"1\r\nB: 2"}}}"#,
            r#"{"accept":{"headers":{"Bad Name":"1"}}}"#,
            r#"{"accept":{"unknown":1}}"#,
            "\"explode\"",
            "{",
        ] {
            assert!(Reply::from_json(bad).is_err(), "{bad} was taken");
        }
    }

    #[test]
    fn faults_and_network_parse_with_defaults_and_caps() {
        assert_eq!(Faults::from_json("{}"), Ok(Faults::default()));
        let f =
            Faults::from_json(r#"{"black_hole":true,"delay_ms":18446744073709551615}"#).unwrap();
        assert!(f.black_hole && f.delay == MAX_DELAY);
        assert!(Faults::from_json(r#"{"blackhole":true}"#).is_err());
        let n = Network::from_json(r#"{"latency_ms":20,"bandwidth_bytes_per_s":1000}"#).unwrap();
        assert_eq!(n.transfer_time(500), Duration::from_millis(500));
        assert!(Network::from_json(r#"{"bandwidth_bytes_per_s":0}"#).is_err());
        assert_eq!(Network::default().transfer_time(1 << 30), Duration::ZERO);
    }
}
