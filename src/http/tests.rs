//! The HTTP client against real servers on 127.0.0.1: hyper's server side
//! (keep-alive, streamed bodies) and a raw TcpListener writing answers by
//! hand (broken heads, cut bodies, refusals).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::transport::NetDialer;

/// Bounds every test step: a hang fails instead of blocking the suite.
const LIMIT: Duration = Duration::from_secs(10);

async fn bounded<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, future)
        .await
        .expect("test step timed out")
}

fn client_for(port: u16) -> HttpClient {
    let endpoint = Endpoint::parse_http(&format!("http://127.0.0.1:{port}/")).unwrap();
    HttpClient::new(
        endpoint,
        Arc::new(NetDialer {
            proxy: None,
            tls: None,
        }),
    )
}

type Chunks = mpsc::UnboundedReceiver<Result<Frame<Bytes>, Infallible>>;

/// A hyper server: `/hello` answers "hello", `/echo` echoes the body,
/// `/stream` streams what the test pushes into `stream`, `/big` sends
/// 1 MiB. Counts the connections it accepted.
struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
    stream: Arc<Mutex<Option<Chunks>>>,
}

async fn hyper_server() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let stream: Arc<Mutex<Option<Chunks>>> = Arc::new(Mutex::new(None));
    let (counted, streams) = (connections.clone(), stream.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            let streams = streams.clone();
            let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                let streams = streams.clone();
                async move {
                    let path = request.uri().path().to_string();
                    let body: http_body_util::combinators::BoxBody<Bytes, Infallible> =
                        match path.as_str() {
                            "/echo" => {
                                let got = request.into_body().collect().await.unwrap().to_bytes();
                                Full::new(got).boxed()
                            }
                            "/stream" => {
                                let chunks = streams.lock().take().expect("one stream at a time");
                                let chunks = futures_util::stream::unfold(chunks, |mut rx| async {
                                    rx.recv().await.map(|c| (c, rx))
                                });
                                StreamBody::new(chunks).boxed()
                            }
                            "/big" => Full::new(Bytes::from(vec![b'x'; 1 << 20])).boxed(),
                            _ => Full::new(Bytes::from_static(b"hello")).boxed(),
                        };
                    Ok::<_, Infallible>(hyper::Response::new(body))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    Server {
        port,
        connections,
        stream,
    }
}

#[tokio::test]
async fn a_connection_is_reused_once_its_body_was_read() {
    let server = hyper_server().await;
    let client = client_for(server.port);
    for _ in 0..3 {
        let response = bounded(client.send(Request::new(Method::GET, "/hello")))
            .await
            .unwrap();
        assert_eq!(response.status, StatusCode::OK);
        let body = bounded(response.body.read_to_end(1024)).await.unwrap();
        assert_eq!(&body[..], b"hello");
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
    assert_eq!(client.idle_connections(), 1);
}

#[tokio::test]
async fn a_post_goes_out_beside_a_held_get() {
    let server = hyper_server().await;
    let (push, chunks) = mpsc::unbounded_channel();
    *server.stream.lock() = Some(chunks);
    let client = client_for(server.port);
    let mut held = bounded(client.send(Request::new(Method::GET, "/stream")))
        .await
        .unwrap();
    push.send(Ok(Frame::data(Bytes::from_static(b"first"))))
        .unwrap();
    assert_eq!(
        bounded(held.body.chunk()).await.unwrap().as_deref(),
        Some(&b"first"[..])
    );

    let post = Request::new(Method::POST, "/echo")
        .header("Content-Type", "text/plain")
        .body("payload");
    let response = bounded(client.send(post)).await.unwrap();
    assert_eq!(
        &bounded(response.body.read_to_end(100)).await.unwrap()[..],
        b"payload"
    );
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);

    // The held GET still streams; once it ends, both connections idle.
    push.send(Ok(Frame::data(Bytes::from_static(b"second"))))
        .unwrap();
    drop(push);
    assert_eq!(
        bounded(held.body.chunk()).await.unwrap().as_deref(),
        Some(&b"second"[..])
    );
    assert_eq!(bounded(held.body.chunk()).await.unwrap(), None);
    assert_eq!(client.idle_connections(), 2);
}

#[tokio::test]
async fn a_body_dropped_half_read_takes_its_connection_with_it() {
    let server = hyper_server().await;
    let client = client_for(server.port);
    let mut response = bounded(client.send(Request::new(Method::GET, "/big")))
        .await
        .unwrap();
    assert!(bounded(response.body.chunk()).await.unwrap().is_some());
    drop(response);
    assert_eq!(client.idle_connections(), 0);
    let response = bounded(client.send(Request::new(Method::GET, "/hello")))
        .await
        .unwrap();
    bounded(response.body.read_to_end(100)).await.unwrap();
    assert_eq!(server.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_over_the_limit_fails_as_too_big() {
    let server = hyper_server().await;
    let client = client_for(server.port);
    let response = bounded(client.send(Request::new(Method::GET, "/big")))
        .await
        .unwrap();
    let error = bounded(response.body.read_to_end(1000)).await.unwrap_err();
    assert_eq!(error.code, error_code::MESSAGE_TOO_BIG);
    assert_eq!(error.end, End::ProtocolViolation);
    let response = bounded(client.send(Request::new(Method::GET, "/big")))
        .await
        .unwrap();
    let body = bounded(response.body.read_to_end(1 << 20)).await.unwrap();
    assert_eq!(body.len(), 1 << 20);
}

/// A raw server: accepts `answers.len()` connections in turn; on each it
/// reads one request head, hands it to the test, writes the answer and
/// closes.
async fn raw_server(answers: Vec<&'static [u8]>) -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (heads, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for answer in answers {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let head = read_head(&mut tcp).await;
            let _ = heads.send(head);
            let _ = tcp.write_all(answer).await;
            let _ = tcp.shutdown().await;
        }
    });
    (port, rx)
}

async fn read_head(tcp: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
        match tcp.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test]
async fn requests_carry_host_headers_and_the_body_length() {
    let (port, mut heads) =
        raw_server(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"]).await;
    let client = client_for(port);
    let request = Request::new(Method::POST, "/path?q=1")
        .header("X-Token", "s3cret")
        .body("abc");
    let response = bounded(client.send(request)).await.unwrap();
    assert_eq!(
        &bounded(response.body.read_to_end(10)).await.unwrap()[..],
        b"ok"
    );
    let head = heads.recv().await.unwrap().to_ascii_lowercase();
    assert!(head.starts_with("post /path?q=1 http/1.1\r\n"), "{head}");
    assert!(
        head.contains(&format!("host: 127.0.0.1:{port}\r\n")),
        "{head}"
    );
    assert!(head.contains("x-token: s3cret\r\n"), "{head}");
    assert!(head.contains("content-length: 3\r\n"), "{head}");
}

#[tokio::test]
async fn a_refusal_carries_its_status_and_retry_after() {
    let (port, _heads) = raw_server(vec![
        b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\nContent-Length: 0\r\n\r\n",
    ])
    .await;
    let client = client_for(port);
    let response = bounded(client.send(Request::new(Method::GET, "/")))
        .await
        .unwrap();
    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    let refusal = response.refusal("the server refused the stream");
    assert_eq!(refusal.code, 503);
    assert_eq!(refusal.end, End::HandshakeStatus(503));
    assert_eq!(refusal.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(
        refusal.message,
        "the server refused the stream: HTTP 503 Service Unavailable"
    );
}

#[tokio::test]
async fn an_answer_that_is_not_http_is_a_handshake_error() {
    let (port, _heads) = raw_server(vec![b"SSH-2.0-OpenSSH_9.6\r\n\r\n"]).await;
    let error = bounded(client_for(port).send(Request::new(Method::GET, "/")))
        .await
        .unwrap_err();
    assert_eq!(error.code, error_code::HANDSHAKE, "{error:?}");
    assert_eq!(error.end, End::Lost);
}

#[tokio::test]
async fn a_body_cut_short_is_a_lost_connection() {
    let (port, _heads) = raw_server(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part",
    ])
    .await;
    let response = bounded(client_for(port).send(Request::new(Method::GET, "/")))
        .await
        .unwrap();
    let error = bounded(response.body.read_to_end(1000)).await.unwrap_err();
    assert_eq!(error.code, error_code::CONNECTION_LOST, "{error:?}");
    assert_eq!(error.end, End::Lost);
}

#[tokio::test]
async fn a_refused_port_is_a_connect_failure() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let error = bounded(client_for(port).send(Request::new(Method::GET, "/")))
        .await
        .unwrap_err();
    assert_eq!(error.code, error_code::CONNECT);
    assert_eq!(error.end, End::ConnectFailed);
}

#[tokio::test]
async fn a_pooled_connection_the_server_closed_is_replaced() {
    // Keep-alive answers, but the server hangs up after each.
    let answer: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let (port, _heads) = raw_server(vec![answer, answer]).await;
    let client = client_for(port);
    for _ in 0..2 {
        let response = bounded(client.send(Request::new(Method::GET, "/")))
            .await
            .unwrap();
        assert_eq!(
            &bounded(response.body.read_to_end(10)).await.unwrap()[..],
            b"ok"
        );
    }
}

#[tokio::test]
async fn bad_header_names_and_values_are_refused_without_echoing_values() {
    let client = client_for(9);
    let error = bounded(client.send(Request::new(Method::GET, "/").header("bad name", "x")))
        .await
        .unwrap_err();
    assert_eq!(error.end, End::Configuration);
    let error = bounded(client.send(Request::new(Method::GET, "/").header("X-Token", "s3cret\n")))
        .await
        .unwrap_err();
    assert!(!error.message.contains("s3cret"), "{}", error.message);
}

#[test]
fn a_reset_as_the_connection_opens_is_a_lost_connection_and_a_refusal_a_failed_connect() {
    let endpoint = Endpoint::parse("ws://127.0.0.1:9/").unwrap();
    let tcp = |kind| ConnectError::Tcp(std::io::Error::from(kind));
    for kind in [
        std::io::ErrorKind::ConnectionReset,
        std::io::ErrorKind::ConnectionAborted,
    ] {
        let error = connect_error(tcp(kind), &endpoint);
        assert_eq!(
            (error.end, error.code),
            (End::Lost, error_code::CONNECTION_LOST),
            "{kind:?}"
        );
    }
    let refused = connect_error(tcp(std::io::ErrorKind::ConnectionRefused), &endpoint);
    assert_eq!(
        (refused.end, refused.code),
        (End::ConnectFailed, error_code::CONNECT)
    );
    assert!(refused.message.contains("cannot connect to 127.0.0.1:9"));
}
