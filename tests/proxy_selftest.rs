//! The fault-injecting proxy itself, tested with a plain tokio-tungstenite
//! client against the echo server, all on 127.0.0.1.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::proxy::{FaultProxy, Mode};
use support::EchoServer;
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

/// Bound on every wait that is expected to succeed.
const T: Duration = Duration::from_secs(5);

type Ws = WebSocketStream<TcpStream>;

async fn connect(addr: SocketAddr) -> Ws {
    let tcp = timeout(T, TcpStream::connect(addr))
        .await
        .expect("connect timed out")
        .expect("connect failed");
    let (ws, _) = timeout(
        T,
        tokio_tungstenite::client_async(format!("ws://{addr}/echo"), tcp),
    )
    .await
    .expect("handshake timed out")
    .expect("handshake failed");
    ws
}

/// The next item from the server, which must come within `T`.
async fn next(ws: &mut Ws) -> Option<Result<Message, WsError>> {
    timeout(T, ws.next()).await.expect("no message in time")
}

async fn echo(ws: &mut Ws, msg: Message) {
    ws.send(msg.clone()).await.unwrap();
    match next(ws).await {
        Some(Ok(got)) => assert_eq!(got, msg),
        other => panic!("expected the echo of {msg:?}, got {other:?}"),
    }
}

/// Waits (bounded) until the proxy reports `n` active connections.
async fn wait_active(proxy: &FaultProxy, n: usize) {
    let deadline = Instant::now() + T;
    while proxy.active() != n {
        assert!(
            Instant::now() < deadline,
            "active() stayed {} instead of {n}",
            proxy.active()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn forwards_both_directions_and_counts() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    assert_eq!(proxy.url("/echo"), format!("ws://{}/echo", proxy.addr()));
    assert_eq!(proxy.connections(), 0);

    let mut ws = connect(proxy.addr()).await;
    echo(&mut ws, Message::text("hello")).await;
    echo(&mut ws, Message::binary(vec![0u8, 1, 2, 255])).await;
    // Bigger than one read buffer, so it crosses in several chunks.
    let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
    echo(&mut ws, Message::binary(big)).await;
    assert_eq!(proxy.connections(), 1);
    assert_eq!(proxy.active(), 1);
    assert_eq!(server.handshakes.lock().unwrap().len(), 1);

    // A clean close handshake passes through and ends the connection.
    ws.close(None).await.unwrap();
    loop {
        match next(&mut ws).await {
            Some(Ok(Message::Close(_))) | Some(Ok(_)) => {}
            None | Some(Err(WsError::ConnectionClosed)) => break,
            Some(Err(e)) => panic!("unclean close: {e}"),
        }
    }
    // The server has closed its side; the connection ends when ours does.
    assert_eq!(proxy.active(), 1);
    drop(ws);
    wait_active(&proxy, 0).await;
    assert_eq!(proxy.connections(), 1);
}

#[tokio::test]
async fn kill_all_closes_with_fin() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    let mut ws = connect(proxy.addr()).await;
    echo(&mut ws, Message::text("before")).await;

    proxy.kill_all();
    assert_eq!(proxy.active(), 0);
    // A FIN without a close frame: the stream ends, it is not reset.
    match next(&mut ws).await {
        None | Some(Err(WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake))) => {}
        other => panic!("expected an end of stream, got {other:?}"),
    }

    // The proxy itself keeps working.
    let mut again = connect(proxy.addr()).await;
    echo(&mut again, Message::text("after")).await;
    assert_eq!(proxy.connections(), 2);
    assert_eq!(proxy.active(), 1);
}

#[tokio::test]
async fn reset_all_gives_a_reset_error() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    let mut ws = connect(proxy.addr()).await;
    echo(&mut ws, Message::text("before")).await;

    proxy.reset_all();
    assert_eq!(proxy.active(), 0);
    match next(&mut ws).await {
        Some(Err(WsError::Io(e))) => {
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}")
        }
        other => panic!("expected a reset, got {other:?}"),
    }
}

#[tokio::test]
async fn black_hole_holds_everything_and_closes_nothing() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    let mut ws = connect(proxy.addr()).await;
    ws.send(Message::Ping(Bytes::from_static(b"1")))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await.unwrap().unwrap(),
        Message::Pong(Bytes::from_static(b"1"))
    );

    proxy.set_mode(Mode::BlackHole);
    ws.send(Message::Ping(Bytes::from_static(b"2")))
        .await
        .unwrap();
    let waited = timeout(Duration::from_millis(500), ws.next()).await;
    assert!(waited.is_err(), "got {waited:?} through a black hole");
    // Nothing was closed either: the connection is still up on both ends.
    assert_eq!(proxy.active(), 1);

    // A new connection is accepted but its handshake goes nowhere.
    let tcp = timeout(T, TcpStream::connect(proxy.addr()))
        .await
        .unwrap()
        .unwrap();
    let pending = tokio::spawn(tokio_tungstenite::client_async(proxy.url("/echo"), tcp));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "handshake through a black hole");
    assert_eq!(proxy.active(), 2);

    // When the hole closes, what was held arrives, in order, and both
    // connections carry on.
    proxy.set_mode(Mode::Forward);
    assert_eq!(
        next(&mut ws).await.unwrap().unwrap(),
        Message::Pong(Bytes::from_static(b"2"))
    );
    echo(&mut ws, Message::text("after")).await;
    let (mut late, _) = timeout(T, pending)
        .await
        .expect("held handshake did not finish")
        .unwrap()
        .expect("held handshake failed");
    echo(&mut late, Message::text("late")).await;
}

#[tokio::test]
async fn delay_delays_each_direction_and_keeps_order() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    let mut ws = connect(proxy.addr()).await;
    echo(&mut ws, Message::text("warm-up")).await;

    let d = Duration::from_millis(300);
    proxy.set_mode(Mode::Delay(d));
    let start = Instant::now();
    echo(&mut ws, Message::text("slow")).await;
    let rtt = start.elapsed();
    // Delayed on the way there and on the way back.
    assert!(rtt >= 2 * d, "round trip took only {rtt:?}");

    for i in 0..20 {
        ws.send(Message::text(i.to_string())).await.unwrap();
    }
    for i in 0..20 {
        match next(&mut ws).await {
            Some(Ok(Message::Text(t))) => assert_eq!(t.as_str(), i.to_string()),
            other => panic!("expected {i}, got {other:?}"),
        }
    }

    proxy.set_mode(Mode::Forward);
    let start = Instant::now();
    echo(&mut ws, Message::text("fast")).await;
    assert!(start.elapsed() < d, "still delayed: {:?}", start.elapsed());
}

#[tokio::test]
async fn refuse_then_forward_again() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    let mut ws = connect(proxy.addr()).await;

    proxy.set_mode(Mode::Refuse);
    let refused = timeout(T, TcpStream::connect(proxy.addr()))
        .await
        .expect("connect hung while refusing");
    match refused {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => panic!("connected while refusing"),
    }
    // Existing connections are not affected.
    echo(&mut ws, Message::text("still here")).await;
    assert_eq!(proxy.connections(), 1);

    proxy.set_mode(Mode::Forward);
    let mut again = connect(proxy.addr()).await;
    echo(&mut again, Message::text("back")).await;
    assert_eq!(proxy.connections(), 2);
    assert_eq!(proxy.active(), 2);
}

#[tokio::test]
async fn set_upstream_moves_new_connections_only() {
    let first = EchoServer::start();
    let second = EchoServer::start();
    let proxy = FaultProxy::start(first.addr);
    let mut a = connect(proxy.addr()).await;

    proxy.set_upstream(second.addr);
    let mut b = connect(proxy.addr()).await;
    echo(&mut a, Message::text("a")).await;
    echo(&mut b, Message::text("b")).await;
    assert_eq!(first.handshakes.lock().unwrap().len(), 1);
    assert_eq!(second.handshakes.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn unreachable_upstream_resets_the_client() {
    // A port that is bound but not listening: connects to it are refused,
    // and nothing else can take it while `hold` lives.
    let hold = tokio::net::TcpSocket::new_v4().unwrap();
    hold.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let proxy = FaultProxy::start(hold.local_addr().unwrap());
    // The proxy accepts, fails to reach the upstream and resets the client,
    // which may see that already in connect() or only in the handshake.
    let failed = timeout(T, async {
        let tcp = TcpStream::connect(proxy.addr()).await?;
        tokio_tungstenite::client_async(proxy.url("/echo"), tcp)
            .await
            .map(drop)
            .map_err(std::io::Error::other)
    })
    .await
    .expect("connect and handshake hung");
    assert!(failed.is_err(), "handshake with no upstream succeeded");
    wait_active(&proxy, 0).await;
    assert_eq!(proxy.connections(), 1);
}

#[tokio::test]
async fn drop_closes_connections_and_the_port() {
    let server = EchoServer::start();
    let proxy = FaultProxy::start(server.addr);
    let addr = proxy.addr();
    let mut ws = connect(addr).await;
    echo(&mut ws, Message::text("hi")).await;

    drop(proxy);
    match next(&mut ws).await {
        None | Some(Err(_)) => {}
        Some(Ok(m)) => panic!("got {m:?} after the proxy was dropped"),
    }
    let after = timeout(T, TcpStream::connect(addr)).await.unwrap();
    assert!(after.is_err(), "proxy port still accepting");
}
