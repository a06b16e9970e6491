//! An HTTP CONNECT proxy on 127.0.0.1 for the proxy tests: it checks an
//! optional Proxy-Authorization, records each request head, and tunnels.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct ConnectProxy {
    pub addr: SocketAddr,
    /// Request heads received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    _server: super::ServerThread,
}

impl ConnectProxy {
    /// `credentials`: the expected `Proxy-Authorization` value, if any.
    pub fn start(credentials: Option<&str>) -> ConnectProxy {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let credentials = credentials.map(str::to_string);
        let server = super::ServerThread::start("127.0.0.1:0".parse().unwrap(), move |tcp| {
            tunnel(tcp, seen.clone(), credentials.clone())
        });
        ConnectProxy {
            addr: server.addr,
            requests,
            _server: server,
        }
    }
}

async fn tunnel(mut client: TcpStream, seen: Arc<Mutex<Vec<String>>>, credentials: Option<String>) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") && head.len() < 8192 {
        match client.read_u8().await {
            Ok(b) => head.push(b),
            Err(_) => return,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    seen.lock().unwrap().push(head.clone());
    let mut lines = head.lines();
    let target = lines
        .next()
        .and_then(|l| l.strip_prefix("CONNECT "))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string);
    let authorized = match &credentials {
        None => true,
        Some(expected) => lines.any(|l| {
            l.split_once(':').is_some_and(|(k, v)| {
                k.eq_ignore_ascii_case("proxy-authorization") && v.trim() == expected
            })
        }),
    };
    let Some(target) = target else {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
            .await;
        return;
    };
    if !authorized {
        let _ = client
            .write_all(
                b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n",
            )
            .await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(&target).await else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}
