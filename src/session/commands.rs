//! The app → session command channel. Commands are rare (close, pause,
//! resume, network hints), so this is a mutex-guarded queue that allocates
//! only while it holds some, plus a `Notify`: an idle connection keeps
//! ~100 bytes here, where tokio's unbounded channel keeps a 32-slot block
//! (~1 KiB) for the connection's life.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::Command;

struct Channel {
    queue: Mutex<VecDeque<Command>>,
    /// A permit is stored when nobody waits, so no push is missed.
    pushed: Notify,
    sender_gone: AtomicBool,
    receiver_gone: AtomicBool,
}

/// The app's end (one per client; dropping it tells the session to end).
pub(crate) struct CommandSender(Arc<Channel>);

impl std::fmt::Debug for CommandSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSender")
            .field("queued", &self.0.queue.lock().len())
            .finish()
    }
}

/// The session's end.
pub(crate) struct CommandReceiver(Arc<Channel>);

pub(crate) fn command_channel() -> (CommandSender, CommandReceiver) {
    let channel = Arc::new(Channel {
        queue: Mutex::new(VecDeque::new()),
        pushed: Notify::new(),
        sender_gone: AtomicBool::new(false),
        receiver_gone: AtomicBool::new(false),
    });
    (CommandSender(channel.clone()), CommandReceiver(channel))
}

impl CommandSender {
    /// Queues `command`; gives it back when the session has ended.
    pub(crate) fn send(&self, command: Command) -> Result<(), Command> {
        if self.0.receiver_gone.load(Ordering::Acquire) {
            return Err(command);
        }
        self.0.queue.lock().push_back(command);
        self.0.pushed.notify_one();
        Ok(())
    }
}

impl Drop for CommandSender {
    fn drop(&mut self) {
        self.0.sender_gone.store(true, Ordering::Release);
        self.0.pushed.notify_one();
    }
}

impl CommandReceiver {
    /// The next command; `None` once the sender is gone and all its
    /// commands were taken. Cancel-safe: a command is taken only when
    /// returned.
    pub(crate) async fn recv(&mut self) -> Option<Command> {
        loop {
            if let Some(command) = self.take() {
                return Some(command);
            }
            if self.0.sender_gone.load(Ordering::Acquire) {
                // Pushed before the drop: the flag is set after the push.
                return self.take();
            }
            self.0.pushed.notified().await;
        }
    }

    fn take(&self) -> Option<Command> {
        let mut queue = self.0.queue.lock();
        let command = queue.pop_front();
        if queue.is_empty() && queue.capacity() > 0 {
            // Idle again: keep nothing.
            *queue = VecDeque::new();
        }
        command
    }
}

impl Drop for CommandReceiver {
    fn drop(&mut self) {
        self.0.receiver_gone.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn commands_arrive_in_order_then_none_once_the_sender_is_gone() {
        let (tx, mut rx) = command_channel();
        tx.send(Command::Pause).unwrap();
        tx.send(Command::NetworkChanged(true)).unwrap();
        assert!(matches!(rx.recv().await, Some(Command::Pause)));
        let waiting = tokio::spawn(async move {
            let first = rx.recv().await;
            let second = rx.recv().await;
            let after = rx.recv().await;
            (first, second, after, rx)
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        tx.send(Command::Reconnect).unwrap();
        drop(tx);
        let (first, second, after, rx) = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the receiver was not woken")
            .unwrap();
        assert!(matches!(first, Some(Command::NetworkChanged(true))));
        assert!(matches!(second, Some(Command::Reconnect)));
        assert!(after.is_none());
        assert_eq!(
            rx.0.queue.lock().capacity(),
            0,
            "an empty queue keeps no buffer"
        );
    }

    #[tokio::test]
    async fn a_send_after_the_session_ended_gives_the_command_back() {
        let (tx, rx) = command_channel();
        drop(rx);
        assert!(matches!(tx.send(Command::Resume), Err(Command::Resume)));
    }

    #[tokio::test]
    async fn a_dropped_recv_loses_no_command() {
        let (tx, mut rx) = command_channel();
        // A recv abandoned while waiting (as a select! branch that lost).
        let abandoned = tokio::time::timeout(Duration::from_millis(5), rx.recv()).await;
        assert!(abandoned.is_err());
        tx.send(Command::Pause).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert!(matches!(got, Ok(Some(Command::Pause))));
    }
}
