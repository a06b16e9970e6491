//! The link between one client and the server, shaped as the tests ask:
//! a *reader* task that reads chunks (not while the network is cut, the
//! connection black-holed or stalled) and hands each on after the
//! network's latency and bandwidth, and a *writer* task that writes queued
//! bytes after the latency and the connection's delay (not while cut or
//! black-holed). Shared by every personality of the kit (WebSocket, SSE):
//! each drives its protocol over [`spawn`]'s channels.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::script::{Faults, Network};

/// Marks a connection or stream closed when dropped: also when its task is
/// aborted (a kill, a restart, the server dropped), not only when it ends.
pub(crate) struct ClosedOnDrop(pub(crate) std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}
use crate::wire::Head;

/// How long the server waits for a request head (or a TLS handshake).
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// A request head larger than this ends the connection.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Chunks the reader hands on (`None`: EOF or a read error).
pub(crate) type Chunks = mpsc::Receiver<Option<Vec<u8>>>;
/// What the writer is to write, each with when it was queued.
pub(crate) type Outgoing = mpsc::UnboundedSender<(Instant, Out)>;

/// Another descriptor of `tcp`'s socket, to reset it whatever wraps it.
pub(crate) fn resetter(tcp: &TcpStream) -> Option<std::net::TcpStream> {
    std::os::fd::AsFd::as_fd(tcp)
        .try_clone_to_owned()
        .ok()
        .map(std::net::TcpStream::from)
}

/// The reader and writer tasks of one connection.
pub(crate) struct Tasks {
    reader: JoinSet<()>,
    /// Its own set, so that aborting the connection's task (a kill, a
    /// restart) aborts the writer too, even one held in a black hole.
    writer: JoinSet<()>,
}

/// Starts the reader and the writer of `stream` under `wiring`.
pub(crate) fn spawn<S>(
    stream: S,
    resetter: Option<std::net::TcpStream>,
    wiring: &Wiring,
) -> (Chunks, Outgoing, Tasks)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let mut reader = JoinSet::new();
    let (chunks_tx, chunks) = mpsc::channel(4);
    reader.spawn(read(rd, chunks_tx, wiring.clone()));
    let (out, out_rx) = mpsc::unbounded_channel();
    let mut writer = JoinSet::new();
    writer.spawn(write(wr, resetter, out_rx, wiring.clone()));
    (chunks, out, Tasks { reader, writer })
}

impl Tasks {
    /// Once the driver has dropped its [`Outgoing`]: lets queued bytes (a
    /// last frame, a FIN, an RST) go out, for at most `flush_wait`, then
    /// stops both tasks.
    pub(crate) async fn finish(mut self, flush_wait: Duration) {
        let _ = tokio::time::timeout(flush_wait, self.writer.join_next()).await;
        self.writer.abort_all();
        self.reader.abort_all();
    }
}

/// Reads a request head from `chunks` into `buf` (what follows the head
/// stays in `buf`); `None` if none came (in time, or at all). A cut
/// network holds the head back without the timeout running out.
pub(crate) async fn read_head(
    chunks: &mut Chunks,
    buf: &mut Vec<u8>,
    wiring: &Wiring,
) -> Option<Head> {
    let mut wiring = wiring.clone();
    let reading = async {
        loop {
            if let Some(end) = Head::end(buf) {
                let raw = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end);
                return Some(Head::parse(raw));
            }
            if buf.len() > MAX_HEAD_BYTES {
                return None;
            }
            let chunk = chunks.recv().await.flatten()?;
            buf.extend_from_slice(&chunk);
        }
    };
    // A cut network holds the head back: that is not the client's fault.
    let patient = async move {
        loop {
            wiring.flowing(true).await;
            tokio::time::sleep(HEAD_TIMEOUT).await;
            if !wiring.network().cut {
                return;
            }
        }
    };
    tokio::select! {
        head = reading => head,
        () = patient => None,
    }
}

/// What the writer is given, with when it was queued.
pub(crate) enum Out {
    Bytes(Vec<u8>),
    /// One byte at a time, this far apart.
    Trickle(Vec<u8>, Duration),
    Shutdown,
    Reset,
}

/// The conditions one connection's bytes move under: the server's network
/// and the connection's faults.
pub(crate) struct Wiring {
    pub(crate) net: watch::Receiver<Network>,
    pub(crate) faults: watch::Receiver<Faults>,
}

impl Wiring {
    pub(crate) fn clone(&self) -> Wiring {
        Wiring {
            net: self.net.clone(),
            faults: self.faults.clone(),
        }
    }

    /// Waits until bytes may move: not cut, not black-holed (and, for the
    /// reader, not stalled).
    pub(crate) async fn flowing(&mut self, reading: bool) {
        loop {
            let blocked = {
                let f = *self.faults.borrow_and_update();
                self.net.borrow_and_update().cut || f.black_hole || (reading && f.stall)
            };
            if !blocked {
                return;
            }
            tokio::select! {
                r = self.net.changed() => if r.is_err() { return },
                r = self.faults.changed() => if r.is_err() { return },
            }
        }
    }

    pub(crate) fn network(&self) -> Network {
        *self.net.borrow()
    }
}

/// Reads chunks while bytes may flow; hands each on after the latency
/// and bandwidth of the network. Ends at EOF or a read error (`None`).
pub(crate) async fn read(
    mut rd: impl AsyncRead + Unpin,
    chunks: mpsc::Sender<Option<Vec<u8>>>,
    mut wiring: Wiring,
) {
    let (timed_tx, mut timed) = mpsc::unbounded_channel::<(Instant, Option<Vec<u8>>)>();
    let mut gate = wiring.clone();
    let reading = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            gate.flowing(true).await;
            let chunk = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(buf[..n].to_vec()),
            };
            let last = chunk.is_none();
            let due = Instant::now() + gate.network().latency;
            if timed_tx.send((due, chunk)).is_err() || last {
                return;
            }
        }
    };
    let delivering = async move {
        while let Some((due, chunk)) = timed.recv().await {
            tokio::time::sleep_until(due).await;
            wiring.flowing(true).await;
            if let Some(c) = &chunk {
                tokio::time::sleep(wiring.network().transfer_time(c.len())).await;
            }
            let last = chunk.is_none();
            if chunks.send(chunk).await.is_err() || last {
                return;
            }
        }
    };
    tokio::join!(reading, delivering);
}

/// Writes what the driver queues, in order, each item after the latency
/// and the connection's delay, while bytes may flow.
pub(crate) async fn write(
    mut wr: impl AsyncWrite + Unpin,
    resetter: Option<std::net::TcpStream>,
    mut out: mpsc::UnboundedReceiver<(Instant, Out)>,
    mut wiring: Wiring,
) {
    while let Some((queued, item)) = out.recv().await {
        let delay = wiring.network().latency + wiring.faults.borrow().delay;
        tokio::time::sleep_until(queued + delay).await;
        wiring.flowing(false).await;
        let ok = match item {
            Out::Bytes(bytes) => {
                tokio::time::sleep(wiring.network().transfer_time(bytes.len())).await;
                wr.write_all(&bytes).await.is_ok()
            }
            Out::Trickle(bytes, gap) => {
                let mut ok = true;
                for b in bytes {
                    if wr.write_all(&[b]).await.is_err() {
                        ok = false;
                        break;
                    }
                    tokio::time::sleep(gap).await;
                }
                ok
            }
            Out::Shutdown => wr.shutdown().await.is_ok(),
            Out::Reset => {
                // A zero linger makes the close send an RST (deprecated
                // only for non-zero values, which block); the socket closes
                // once the halves go too (no shutdown: no FIN before it).
                if let Some(Ok(socket)) = resetter.map(|s| {
                    s.set_nonblocking(true)?;
                    TcpStream::from_std(s)
                }) {
                    #[allow(deprecated)]
                    let _ = socket.set_linger(Some(Duration::ZERO));
                }
                return;
            }
        };
        if !ok {
            return;
        }
    }
}
