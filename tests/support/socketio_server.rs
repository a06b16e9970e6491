//! The npm `socket.io` server of tests/interop/socketio_server.js, run as
//! a child process on 127.0.0.1 (scripts/test-interop.sh installs it).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// Bound on a server's start.
const START: Duration = Duration::from_secs(20);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn server_installed() -> bool {
    let installed = repo()
        .join("tests/interop/node_modules/socket.io/package.json")
        .exists();
    if !installed {
        assert!(
            std::env::var("TETHER_INTEROP").map_or(true, |v| v != "1"),
            "TETHER_INTEROP=1 but npm socket.io is not installed (run scripts/test-interop.sh --install-only)"
        );
        eprintln!(
            "note: npm socket.io not installed; skipped (scripts/test-interop.sh installs it)"
        );
    }
    installed
}

/// One run of the Node server; stopped (by its pid) when dropped.
pub struct Server {
    child: Child,
    _stdin: ChildStdin,
    pub port: u16,
    args: Vec<String>,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        Server::start_on(0, args.iter().map(|a| a.to_string()).collect())
    }

    pub fn start_on(port: u16, args: Vec<String>) -> Server {
        let deadline = Instant::now() + START;
        loop {
            let mut child = Command::new("node")
                .arg(repo().join("tests/interop/socketio_server.js"))
                .args(["--port", &port.to_string()])
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("node runs");
            let stdin = child.stdin.take().expect("stdin");
            let mut line = String::new();
            let mut out = BufReader::new(child.stdout.take().expect("stdout"));
            let _ = out.read_line(&mut line);
            if let Some(p) = line.trim().strip_prefix("LISTENING ") {
                return Server {
                    child,
                    _stdin: stdin,
                    port: p.parse().expect("port"),
                    args,
                };
            }
            // The old process's port may take a moment to be free again.
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops this run and starts another on the same port.
    pub fn restart(self) -> Server {
        let (port, args) = (self.port, self.args.clone());
        drop(self);
        Server::start_on(port, args)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
