//! A poll set: one thread waits for the events of many clients
//! (`ws_poll_set_*`), instead of one thread blocked in `ws_poll_event`
//! per client. The Kotlin bindings serve every session of a process with
//! one such thread.
//!
//! Built on each client's readiness descriptor (`ws_event_fd`) and
//! `poll(2)`. Members are one-shot, like `EPOLLONESHOT`: a wait reports a
//! client whose events are pending and disarms it, so the thread that then
//! drains it (`ws_poll_event` with timeout 0 until `WS_TIMEOUT`) owns it
//! until it calls `ws_poll_set_rearm`. Any other thread may add, rearm or
//! remove members while one waits; each of those wakes the waiter, which
//! then waits on the new membership without returning.
//!
//! A sender that found a member's outgoing queue full asks for a room
//! notice (`ws_poll_set_watch_room`): the next wait after messages left
//! that queue reports the member's token with [`ROOM`] set, so that a
//! suspended send is woken by the core instead of retrying on a timer.
#![cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]

use std::io::{Read, Write};
use std::os::unix::io::{AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rustix::event::{PollFd, PollFlags, Timespec};

use super::{panic, ptr, ws_client};
use crate::client::Client;
use crate::error::{ws_status, Error};
use ptr::Out;

/// Membership changes one wait absorbs without returning (each is a
/// rebuild of the descriptor list); past it the wait returns `WS_OK` with
/// no token, and the caller waits again.
const MAX_REBUILDS_PER_WAIT: usize = 100_000;

/// Set in a reported token when it is a room notice (the member's
/// outgoing queue has room again), not events. Tokens given to
/// `ws_poll_set_add` must be below it.
pub const WS_POLL_SET_ROOM: u64 = 0x8000_0000_0000_0000;
pub(crate) const ROOM: u64 = WS_POLL_SET_ROOM;

/// How long `remove` waits for a waiter to leave a `poll` that still uses
/// the removed descriptor. The waiter is woken first, so it leaves at once.
const REMOVE_DEADLINE: Duration = Duration::from_secs(10);

/// The Rust side of a `ws_poll_set`, also used by the JNI binding.
#[derive(Debug)]
pub(crate) struct PollSet {
    state: Mutex<State>,
    /// Signalled when a waiter leaves `poll`.
    left_poll: Condvar,
    /// One byte in it wakes the waiter.
    wake_read: UnixStream,
    wake_write: UnixStream,
}

#[derive(Debug, Default)]
struct State {
    members: Vec<Member>,
    /// Bumped by every change of membership.
    generation: u64,
    /// A waiter is inside `poll` with the members of `poll_generation`.
    in_poll: bool,
    poll_generation: u64,
    /// A thread is inside `wait` (only one may be).
    waiting: bool,
    /// `wake` was called: the wait returns even with nothing ready.
    woken: bool,
}

#[derive(Debug, Clone, Copy)]
struct Member {
    fd: RawFd,
    token: u64,
    armed: bool,
    /// A room notice waits to be reported.
    room: bool,
}

impl PollSet {
    pub(crate) fn new() -> Result<PollSet, Error> {
        let internal =
            |e: std::io::Error| Error::Internal(format!("cannot create a poll set: {e}"));
        let (wake_read, wake_write) = UnixStream::pair().map_err(internal)?;
        wake_read.set_nonblocking(true).map_err(internal)?;
        wake_write.set_nonblocking(true).map_err(internal)?;
        Ok(PollSet {
            state: Mutex::new(State::default()),
            left_poll: Condvar::new(),
            wake_read,
            wake_write,
        })
    }

    /// Adds `client`, armed, reported as `token`. Room notices of the
    /// client go to this set from now on.
    pub(crate) fn add(self: &Arc<Self>, client: &Client, token: u64) -> Result<(), Error> {
        if token >= ROOM {
            return Err(Error::InvalidArgument(format!(
                "token {token} is too large: tokens are below 2^63"
            )));
        }
        let fd = client.event_fd()?;
        let mut state = self.state.lock();
        if state.members.iter().any(|m| m.fd == fd) {
            return Err(Error::InvalidArgument(
                "the client is already in this poll set".into(),
            ));
        }
        state.members.push(Member {
            fd,
            token,
            armed: true,
            room: false,
        });
        state.generation += 1;
        let in_poll = state.in_poll;
        drop(state);
        let set: Weak<PollSet> = Arc::downgrade(self);
        client.set_queue_room_hook(Some(Arc::new(move || {
            if let Some(set) = set.upgrade() {
                set.room_made(fd);
            }
        })));
        self.signal_if(in_poll);
        Ok(())
    }

    /// Asks for a room notice of `client` (see the module's docs).
    pub(crate) fn watch_room(&self, client: &Client) -> Result<(), Error> {
        let fd = client.event_fd()?;
        if !self.state.lock().members.iter().any(|m| m.fd == fd) {
            return Err(not_a_member());
        }
        client.want_queue_room();
        Ok(())
    }

    /// The hook of a member's queue: messages left it.
    fn room_made(&self, fd: RawFd) {
        let mut state = self.state.lock();
        if let Some(member) = state.members.iter_mut().find(|m| m.fd == fd) {
            member.room = true;
            let in_poll = state.in_poll;
            drop(state);
            self.signal_if(in_poll);
        }
    }

    /// Moves pending room notices to `tokens` (from `at`); returns the new count.
    fn take_room_notices(state: &mut State, tokens: &mut [u64], mut at: usize) -> usize {
        for m in state.members.iter_mut().filter(|m| m.room) {
            if at == tokens.len() {
                break;
            }
            m.room = false;
            tokens[at] = m.token | ROOM;
            at += 1;
        }
        at
    }

    /// Arms `client` again after a wait reported it and it was drained.
    pub(crate) fn rearm(&self, client: &Client) -> Result<(), Error> {
        let fd = client.event_fd()?;
        let mut state = self.state.lock();
        let member = state
            .members
            .iter_mut()
            .find(|m| m.fd == fd)
            .ok_or_else(not_a_member)?;
        if member.armed {
            return Ok(());
        }
        member.armed = true;
        state.generation += 1;
        let in_poll = state.in_poll;
        drop(state);
        self.signal_if(in_poll);
        Ok(())
    }

    /// Removes `client`; on return no wait uses its descriptor any more,
    /// so the client may be freed.
    pub(crate) fn remove(&self, client: &Client) -> Result<(), Error> {
        let fd = client.event_fd()?;
        let mut state = self.state.lock();
        let at = state
            .members
            .iter()
            .position(|m| m.fd == fd)
            .ok_or_else(not_a_member)?;
        state.members.swap_remove(at);
        state.generation += 1;
        client.set_queue_room_hook(None);
        let removed_at = state.generation;
        if !state.in_poll {
            return Ok(());
        }
        self.signal();
        let deadline = Instant::now() + REMOVE_DEADLINE;
        while state.in_poll && state.poll_generation < removed_at {
            if self.left_poll.wait_until(&mut state, deadline).timed_out() {
                return Err(Error::Internal(
                    "the poll set's waiter did not leave poll in time".into(),
                ));
            }
        }
        Ok(())
    }

    /// Makes the current (or next) wait return, with or without tokens.
    pub(crate) fn wake(&self) {
        let mut state = self.state.lock();
        state.woken = true;
        let in_poll = state.in_poll;
        drop(state);
        self.signal_if(in_poll);
    }

    /// Wakes the waiter out of `poll` when it is in there (`in_poll`, read
    /// under the lock that made the change). A waiter outside `poll` needs
    /// no byte: it rebuilds its descriptor list, and checks `woken` and the
    /// room notices, under that lock before it enters `poll` again. So the
    /// poller thread that drains a member and rearms it makes no system
    /// call for it (a batch costs no write, and no extra `poll` and read).
    fn signal_if(&self, in_poll: bool) {
        if in_poll {
            self.signal();
        }
    }

    fn signal(&self) {
        // WouldBlock means a byte is there already: the waiter wakes anyway.
        let _ = (&self.wake_write).write(&[1]);
    }

    fn drain_wakeups(&self) {
        let mut sink = [0u8; 64];
        for _ in 0..64 {
            if !matches!((&self.wake_read).read(&mut sink), Ok(n) if n > 0) {
                break;
            }
        }
    }

    /// Waits up to `timeout` (`None`: forever) until armed members have
    /// events pending, writes their tokens to `tokens` (as many as fit;
    /// the others stay armed) and disarms them. `Ok(None)`: nothing came
    /// in time. `Ok(Some(0))`: woken by [`PollSet::wake`].
    pub(crate) fn wait(
        &self,
        timeout: Option<Duration>,
        tokens: &mut [u64],
    ) -> Result<Option<usize>, Error> {
        {
            let mut state = self.state.lock();
            if state.waiting {
                return Err(Error::InvalidArgument(
                    "another thread is already waiting on this poll set".into(),
                ));
            }
            state.waiting = true;
        }
        let result = self.wait_inner(timeout, tokens);
        let mut state = self.state.lock();
        state.waiting = false;
        state.in_poll = false;
        self.left_poll.notify_all();
        result
    }

    fn wait_inner(
        &self,
        timeout: Option<Duration>,
        tokens: &mut [u64],
    ) -> Result<Option<usize>, Error> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut fds: Vec<RawFd> = Vec::new();
        let mut member_tokens: Vec<u64> = Vec::new();
        for _ in 0..MAX_REBUILDS_PER_WAIT {
            {
                let mut state = self.state.lock();
                if std::mem::take(&mut state.woken) {
                    return Ok(Some(0));
                }
                let notices = Self::take_room_notices(&mut state, tokens, 0);
                if notices > 0 {
                    return Ok(Some(notices));
                }
                fds.clear();
                member_tokens.clear();
                for m in state.members.iter().filter(|m| m.armed) {
                    fds.push(m.fd);
                    member_tokens.push(m.token);
                }
                state.in_poll = true;
                state.poll_generation = state.generation;
            }
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let ready = self.poll_once(&fds, remaining);
            let mut state = self.state.lock();
            state.in_poll = false;
            self.left_poll.notify_all();
            let ready = ready?;
            let mut count = 0;
            for index in ready.into_iter().take(tokens.len()) {
                let token = member_tokens[index];
                let fd = fds[index];
                // A member removed or re-added meanwhile is not reported.
                if let Some(m) = state
                    .members
                    .iter_mut()
                    .find(|m| m.fd == fd && m.token == token && m.armed)
                {
                    m.armed = false;
                    tokens[count] = token;
                    count += 1;
                }
            }
            let count = Self::take_room_notices(&mut state, tokens, count);
            if count > 0 {
                state.generation += 1;
                return Ok(Some(count));
            }
            if std::mem::take(&mut state.woken) {
                return Ok(Some(0));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
        }
        Ok(Some(0))
    }

    /// One `poll` on the wake descriptor and `fds`: the indexes into `fds`
    /// that are readable (or hung up: the client is being freed).
    fn poll_once(&self, fds: &[RawFd], timeout: Option<Duration>) -> Result<Vec<usize>, Error> {
        let wake_fd = self.wake_read.as_raw_fd();
        let mut polled = Vec::with_capacity(fds.len() + 1);
        // SAFETY: the wake descriptor belongs to this set and lives as long
        // as it. Members' descriptors stay open while they are members:
        // `remove` (which the caller must do before `ws_free`) waits until
        // no poll uses them.
        polled.push(PollFd::from_borrowed_fd(
            unsafe { BorrowedFd::borrow_raw(wake_fd) },
            PollFlags::IN,
        ));
        for &fd in fds {
            // SAFETY: as above, a member's descriptor outlives this poll.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            polled.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
        }
        let timespec = timeout.map(|t| Timespec {
            tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: t.subsec_nanos().into(),
        });
        match rustix::event::poll(&mut polled, timespec.as_ref()) {
            Ok(_) => {}
            // A signal: the caller polls again with what time is left.
            Err(rustix::io::Errno::INTR) => return Ok(Vec::new()),
            Err(e) => return Err(Error::Internal(format!("poll failed: {e}"))),
        }
        if !polled[0].revents().is_empty() {
            self.drain_wakeups();
        }
        let ready = PollFlags::IN | PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL;
        Ok(polled[1..]
            .iter()
            .enumerate()
            .filter(|(_, p)| p.revents().intersects(ready))
            .map(|(i, _)| i)
            .collect())
    }
}

fn not_a_member() -> Error {
    Error::InvalidArgument("the client is not in this poll set".into())
}

/// A set of clients that one thread waits on together (`ws_poll_set_wait`).
///
/// Opaque. Thread-safe: any thread may add, rearm or remove members and
/// wake the set while one thread waits. Created by `ws_poll_set_new`,
/// released by `ws_poll_set_free`. Unix-like systems only.
pub struct ws_poll_set {
    set: Arc<PollSet>,
}

/// The set behind a handle.
///
/// # Safety
/// `set` is NULL or a handle from `ws_poll_set_new` not yet freed.
unsafe fn poll_set<'a>(set: *const ws_poll_set) -> Result<&'a Arc<PollSet>, Error> {
    // SAFETY: the caller promises a live handle (or NULL, checked here).
    unsafe { set.as_ref() }
        .map(|s| &s.set)
        .ok_or(Error::NullArgument("set"))
}

/// Creates an empty poll set in `*out`. Release it with
/// `ws_poll_set_free`. Any thread.
#[no_mangle]
pub extern "C" fn ws_poll_set_new(out: *mut *mut ws_poll_set) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes a writable pointer (or NULL).
        let out = unsafe { Out::new(out, "out")? };
        let set = Arc::new(PollSet::new()?);
        out.write(Box::into_raw(Box::new(ws_poll_set { set })));
        Ok(())
    })
}

/// Adds `client` to `set`, armed: `ws_poll_set_wait` reports `token` once
/// the client has events pending. `token` is the caller's (an index, a
/// pointer below 2^63): Tether only hands it back. A client already in the
/// set, or a token with `WS_POLL_SET_ROOM` set, gives
/// `WS_ERR_INVALID_ARGUMENT`. A client may be in several sets; its room
/// notices go to the last one it was added to. The client must be removed
/// (`ws_poll_set_remove`) before `ws_free`. Any thread.
#[no_mangle]
pub extern "C" fn ws_poll_set_add(
    set: *mut ws_poll_set,
    client: *mut ws_client,
    token: u64,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes live handles (or NULL).
        let (set, handle) = unsafe { (poll_set(set)?, ptr::client(client)?) };
        set.add(&handle.client, token)
    })
}

/// Arms `client` again. A wait that reports a client disarms it, so that
/// the thread that drains its events (`ws_poll_event` with timeout 0 until
/// `WS_TIMEOUT`) is the only one to see it; that thread calls this once it
/// is done. Events that came meanwhile are reported by the next wait.
/// Rearming an armed member does nothing; a client not in the set gives
/// `WS_ERR_INVALID_ARGUMENT`. Any thread.
#[no_mangle]
pub extern "C" fn ws_poll_set_rearm(set: *mut ws_poll_set, client: *mut ws_client) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes live handles (or NULL).
        let (set, handle) = unsafe { (poll_set(set)?, ptr::client(client)?) };
        set.rearm(&handle.client)
    })
}

/// Asks for a room notice: `ws_send` (or `ws_send_tracked` without an
/// outbox) returned `WS_ERR_QUEUE_FULL` and the caller wants to know when
/// to try again. After this call, the next time messages leave the
/// client's outgoing queue (or the client ends), a wait reports the
/// client's token with `WS_POLL_SET_ROOM` set, once, armed or not. Call it
/// before trying the send again, so that room made in between is not
/// missed. A client not in the set gives `WS_ERR_INVALID_ARGUMENT`. Any
/// thread.
#[no_mangle]
pub extern "C" fn ws_poll_set_watch_room(
    set: *mut ws_poll_set,
    client: *mut ws_client,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes live handles (or NULL).
        let (set, handle) = unsafe { (poll_set(set)?, ptr::client(client)?) };
        set.watch_room(&handle.client)
    })
}

/// Removes `client` from `set`. Returns once no wait uses the client any
/// more (a wait under way is woken and goes on with the other members), so
/// `ws_free` may follow at once. A client not in the set gives
/// `WS_ERR_INVALID_ARGUMENT`. Any thread.
#[no_mangle]
pub extern "C" fn ws_poll_set_remove(set: *mut ws_poll_set, client: *mut ws_client) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes live handles (or NULL).
        let (set, handle) = unsafe { (poll_set(set)?, ptr::client(client)?) };
        set.remove(&handle.client)
    })
}

/// `ws_poll_set_add` for a Socket.IO client: its events are reported as
/// `token`, drained with `sio_poll_event` (timeout 0). Remove it with
/// `ws_poll_set_remove_sio` before `sio_free`.
#[no_mangle]
pub extern "C" fn ws_poll_set_add_sio(
    set: *mut ws_poll_set,
    client: *mut super::sio::sio_client,
    token: u64,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes live handles (or NULL).
        let (set, client) = unsafe { (poll_set(set)?, super::sio::client_of(client)?) };
        set.add(client.session(), token)
    })
}

/// `ws_poll_set_rearm` for a Socket.IO client.
#[no_mangle]
pub extern "C" fn ws_poll_set_rearm_sio(
    set: *mut ws_poll_set,
    client: *mut super::sio::sio_client,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes live handles (or NULL).
        let (set, client) = unsafe { (poll_set(set)?, super::sio::client_of(client)?) };
        set.rearm(client.session())
    })
}

/// `ws_poll_set_remove` for a Socket.IO client: on return `sio_free` may
/// follow.
#[no_mangle]
pub extern "C" fn ws_poll_set_remove_sio(
    set: *mut ws_poll_set,
    client: *mut super::sio::sio_client,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes live handles (or NULL).
        let (set, client) = unsafe { (poll_set(set)?, super::sio::client_of(client)?) };
        set.remove(client.session())
    })
}

/// `ws_poll_set_add` for a Server-Sent Events client: its events are
/// reported as `token`, drained with `sse_poll_event` (timeout 0). Remove
/// it with `ws_poll_set_remove_sse` before `sse_free`.
#[no_mangle]
pub extern "C" fn ws_poll_set_add_sse(
    set: *mut ws_poll_set,
    client: *mut super::sse::sse_client,
    token: u64,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes live handles (or NULL).
        let (set, client) = unsafe { (poll_set(set)?, super::sse::client_of(client)?) };
        set.add(client.session(), token)
    })
}

/// `ws_poll_set_rearm` for a Server-Sent Events client.
#[no_mangle]
pub extern "C" fn ws_poll_set_rearm_sse(
    set: *mut ws_poll_set,
    client: *mut super::sse::sse_client,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes live handles (or NULL).
        let (set, client) = unsafe { (poll_set(set)?, super::sse::client_of(client)?) };
        set.rearm(client.session())
    })
}

/// `ws_poll_set_remove` for a Server-Sent Events client: on return
/// `sse_free` may follow.
#[no_mangle]
pub extern "C" fn ws_poll_set_remove_sse(
    set: *mut ws_poll_set,
    client: *mut super::sse::sse_client,
) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes live handles (or NULL).
        let (set, client) = unsafe { (poll_set(set)?, super::sse::client_of(client)?) };
        set.remove(client.session())
    })
}

/// Waits until armed members have events pending, writes their tokens to
/// `tokens` (at most `capacity`; the others stay armed and come with the
/// next wait), disarms them and writes how many to `*out_count`. Room
/// notices (`ws_poll_set_watch_room`) come as tokens with
/// `WS_POLL_SET_ROOM` set; they do not disarm.
///
/// - `timeout_ms`: 0 checks without waiting, -1 waits forever, otherwise
///   milliseconds. Other negative values are invalid.
///
/// Returns `WS_OK` with `*out_count` ≥ 1, or `WS_OK` with `*out_count` 0
/// when `ws_poll_set_wake` woke it, or `WS_TIMEOUT` when nothing came in
/// time (`*out_count` untouched). Adding, rearming and removing members
/// meanwhile does not make it return. One thread at a time (a second one
/// gets `WS_ERR_INVALID_ARGUMENT`). `tokens` may be NULL only when
/// `capacity` is 0.
#[no_mangle]
pub extern "C" fn ws_poll_set_wait(
    set: *mut ws_poll_set,
    timeout_ms: i32,
    tokens: *mut u64,
    capacity: usize,
    out_count: *mut usize,
) -> ws_status {
    let mut timed_out = false;
    let code = panic::guard(|| {
        // SAFETY: the caller passes a live handle and writable pointers (or
        // NULL).
        let (set, out_count) = unsafe { (poll_set(set)?, Out::new(out_count, "out_count")?) };
        let tokens: &mut [u64] = if capacity == 0 {
            &mut []
        } else if tokens.is_null() {
            return Err(Error::NullArgument("tokens"));
        } else if capacity > isize::MAX as usize / 8 {
            return Err(Error::InvalidArgument(format!(
                "capacity {capacity} is too large"
            )));
        } else {
            // SAFETY: non-NULL, and the caller promises room for `capacity`
            // tokens that nothing else touches during the call.
            unsafe { std::slice::from_raw_parts_mut(tokens, capacity) }
        };
        let timeout = match timeout_ms {
            -1 => None,
            t if t < 0 => {
                return Err(Error::InvalidArgument(format!(
                    "timeout_ms {t} is invalid: use -1 (forever), 0 or a positive number"
                )))
            }
            t => Some(Duration::from_millis(t as u64)),
        };
        match set.wait(timeout, tokens)? {
            Some(count) => out_count.write(count),
            None => timed_out = true,
        }
        Ok(())
    });
    if code == ws_status::WS_OK && timed_out {
        ws_status::WS_TIMEOUT
    } else {
        code
    }
}

/// Makes the current `ws_poll_set_wait` (or the next one) return `WS_OK`
/// at once, e.g. to stop the thread that waits. Any thread.
#[no_mangle]
pub extern "C" fn ws_poll_set_wake(set: *mut ws_poll_set) -> ws_status {
    panic::guard(|| {
        // SAFETY: the caller passes a live handle (or NULL).
        let set = unsafe { poll_set(set)? };
        set.wake();
        Ok(())
    })
}

/// Releases `set` (NULL is fine). Must not be called twice, nor while a
/// call on the set is under way. Its members are not touched: clients
/// belong to the caller.
#[no_mangle]
pub extern "C" fn ws_poll_set_free(set: *mut ws_poll_set) {
    panic::guard_void(|| {
        if !set.is_null() {
            // SAFETY: a pointer from ws_poll_set_new, freed once, with no
            // call under way (the contract above).
            drop(unsafe { Box::from_raw(set) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Options;

    /// A client whose connection fails at once (nothing listens) and that
    /// terminates by itself: it always has events to report.
    fn client() -> Client {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let options = Options::from_json(Some(r#"{"reconnect": {"enabled": false}}"#)).unwrap();
        Client::connect(&format!("ws://127.0.0.1:{port}/"), options).unwrap()
    }

    fn drain(client: &Client) -> bool {
        let mut terminated = false;
        for _ in 0..1000 {
            match client.poll_event(Some(Duration::ZERO)) {
                Ok(Some(crate::Event::Terminated)) => terminated = true,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        terminated
    }

    #[test]
    fn a_wait_reports_each_ready_client_once_until_rearmed() {
        let set = Arc::new(PollSet::new().unwrap());
        let (a, b) = (client(), client());
        set.add(&a, 1).unwrap();
        set.add(&b, 2).unwrap();
        assert!(set.add(&a, 3).is_err(), "added twice");
        let mut tokens = [0u64; 8];
        let mut seen = Vec::new();
        for _ in 0..20 {
            if seen.len() == 2 {
                break;
            }
            if let Some(n) = set.wait(Some(Duration::from_secs(5)), &mut tokens).unwrap() {
                seen.extend_from_slice(&tokens[..n]);
            }
        }
        seen.sort();
        assert_eq!(seen, vec![1, 2]);
        // Both are disarmed: nothing more is reported, pending or not.
        assert_eq!(
            set.wait(Some(Duration::from_millis(20)), &mut tokens),
            Ok(None)
        );
        set.rearm(&a).unwrap();
        assert_eq!(
            set.wait(Some(Duration::from_secs(5)), &mut tokens),
            Ok(Some(1))
        );
        assert_eq!(tokens[0], 1);
        set.remove(&a).unwrap();
        set.remove(&b).unwrap();
        assert!(set.remove(&a).is_err(), "removed twice");
        assert!(set.rearm(&a).is_err());
    }

    #[test]
    fn a_drained_client_is_reported_again_only_for_new_events() {
        let set = Arc::new(PollSet::new().unwrap());
        let a = client();
        set.add(&a, 7).unwrap();
        let mut tokens = [0u64; 1];
        let mut terminated = false;
        for _ in 0..50 {
            if terminated {
                break;
            }
            if set.wait(Some(Duration::from_secs(5)), &mut tokens).unwrap() == Some(1) {
                terminated = drain(&a);
                set.rearm(&a).unwrap();
            }
        }
        assert!(terminated, "the failing client never terminated");
        assert_eq!(
            set.wait(Some(Duration::from_millis(20)), &mut tokens),
            Ok(None)
        );
        set.remove(&a).unwrap();
    }

    #[test]
    fn wake_and_remove_reach_a_thread_blocked_in_wait() {
        let set = Arc::new(PollSet::new().unwrap());
        let a = client();
        set.add(&a, 1).unwrap();
        let mut tokens = [0u64; 1];
        assert_eq!(
            set.wait(Some(Duration::from_secs(5)), &mut tokens),
            Ok(Some(1))
        );
        // Disarmed: the waiter below has nothing to report until woken.
        let waiter = {
            let set = set.clone();
            std::thread::spawn(move || {
                let mut tokens = [0u64; 1];
                set.wait(None, &mut tokens)
            })
        };
        // Returns once the waiter polls without a's descriptor (or before
        // it first polled): a may be freed now.
        set.remove(&a).unwrap();
        drop(a);
        set.wake();
        assert_eq!(waiter.join().unwrap(), Ok(Some(0)));
    }

    #[test]
    fn a_room_notice_comes_once_after_the_queue_drains() {
        let set = Arc::new(PollSet::new().unwrap());
        let a = client();
        set.add(&a, 5).unwrap();
        assert!(
            set.add(&client(), ROOM | 1).is_err(),
            "tokens are below 2^63"
        );
        set.watch_room(&a).unwrap();
        // The client ends by itself (nothing listens): its queue closes, which
        // is room for a waiting sender to learn that.
        let mut tokens = [0u64; 4];
        let mut notices = 0;
        for _ in 0..50 {
            match set.wait(Some(Duration::from_secs(5)), &mut tokens).unwrap() {
                Some(n) => {
                    notices += tokens[..n].iter().filter(|&&t| t == ROOM | 5).count();
                    if tokens[..n].contains(&5) {
                        if drain(&a) {
                            break;
                        }
                        set.rearm(&a).unwrap();
                    }
                }
                None => break,
            }
        }
        // The queue closes just before the client's last event: the drain
        // that took that event may have come before the notice was taken.
        for _ in 0..10 {
            match set
                .wait(Some(Duration::from_millis(50)), &mut tokens)
                .unwrap()
            {
                Some(n) => notices += tokens[..n].iter().filter(|&&t| t == ROOM | 5).count(),
                None => break,
            }
        }
        assert_eq!(notices, 1, "one notice per watch_room");
        set.remove(&a).unwrap();
        assert!(set.watch_room(&a).is_err());
    }
}
