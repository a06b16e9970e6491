//! The listener of a test server: a socket on a free port of 127.0.0.1,
//! its own thread with a tokio runtime, an accept loop handing each
//! connection to the personality's `serve`, and the controls every
//! personality shares (kill every connection; restart on the same port).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long a control call (restart, kill) waits for the server thread.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

enum Control {
    /// Kill every connection; with `true`, also close the listener and
    /// bind the same port again.
    Kill {
        rebind: bool,
        done: std_mpsc::Sender<Result<(), String>>,
    },
}

/// A listening test server's thread. Dropping it stops the thread and
/// kills every connection.
pub(crate) struct Listener {
    addr: SocketAddr,
    control: Option<mpsc::UnboundedSender<Control>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Binds a free port of 127.0.0.1 and serves each accepted connection
    /// with `serve`, on a thread named `name`.
    pub(crate) fn start<F, Fut>(name: &str, serve: F) -> std::io::Result<Listener>
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(async move {
                    if let Ok(l) = TcpListener::from_std(listener) {
                        accept_loop(l, addr, serve, control_rx).await;
                    }
                });
                // Dropping the runtime drops every connection task.
            })?;
        Ok(Listener {
            addr,
            control: Some(control_tx),
            thread: Some(thread),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Kills every connection; with `rebind`, also closes the listener and
    /// binds the same port again. In effect when it returns.
    pub(crate) fn kill(&self, rebind: bool) -> Result<(), String> {
        let (done, answer) = std_mpsc::channel();
        self.control
            .as_ref()
            .ok_or("the server is stopped")?
            .send(Control::Kill { rebind, done })
            .map_err(|_| "the server thread is gone")?;
        answer
            .recv_timeout(CONTROL_TIMEOUT)
            .map_err(|_| "the server thread did not answer".to_string())?
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Closing the control channel ends the accept loop.
        self.control.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop<F, Fut>(
    listener: TcpListener,
    addr: SocketAddr,
    serve: F,
    mut control: mpsc::UnboundedReceiver<Control>,
) where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut listener = Some(listener);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            c = control.recv() => match c {
                None => break,
                Some(Control::Kill { rebind, done }) => {
                    if rebind {
                        listener = None;
                    }
                    connections.shutdown().await;
                    let result = match listener {
                        Some(_) => Ok(()),
                        None => bind(addr).await.map(|l| listener = Some(l)),
                    };
                    let _ = done.send(result);
                }
            },
            accepted = accept(listener.as_ref()) => match accepted {
                Ok(tcp) => {
                    connections.spawn(serve(tcp));
                }
                // E.g. out of file descriptors: don't spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            // Reap finished connections.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn accept(listener: Option<&TcpListener>) -> std::io::Result<TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(tcp, _)| tcp),
        None => std::future::pending().await,
    }
}

/// Binds `addr` again, retrying for a bounded time (a port just released
/// may linger).
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let deadline = tokio::time::Instant::now() + CONTROL_TIMEOUT / 2;
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return Ok(l),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(format!("cannot bind {addr} again: {e}"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
