//! The kit's Socket.IO server against a hand-written Engine.IO client
//! (std TCP, HTTP and WebSocket frames by hand): what Tether's client does
//! not exercise, such as a poll held while the session upgrades. Every read
//! has a timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tether_testkit::wire::{self, Head, Parsed, FIN, OP_TEXT};
use tether_testkit::{SioTransport, SocketIoConfig, SocketIoTestServer};

const WAIT: Duration = Duration::from_secs(10);

fn connect(addr: SocketAddr) -> TcpStream {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp
}

/// Reads one HTTP answer: (status line, body).
fn answer(tcp: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = Head::end(&buf) {
            break end;
        }
        let n = tcp.read(&mut chunk).expect("no answer in time");
        assert!(n > 0, "the server hung up");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = Head::parse(String::from_utf8_lossy(&buf[..end]).into_owned());
    let length: usize = head
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    while buf.len() < end + length {
        let n = tcp.read(&mut chunk).expect("no body in time");
        assert!(n > 0, "the server hung up");
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = head.raw.lines().next().unwrap_or("").to_string();
    (
        status,
        String::from_utf8_lossy(&buf[end..end + length]).into_owned(),
    )
}

fn get(addr: SocketAddr, target: &str) -> (String, String) {
    let mut tcp = connect(addr);
    write!(tcp, "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    answer(&mut tcp)
}

/// The next text frame's payload (the server's frames are unmasked).
fn text_frame(tcp: &mut TcpStream, buf: &mut Vec<u8>) -> String {
    let mut chunk = [0u8; 4096];
    loop {
        if let Parsed::Frame(frame, used) = wire::parse_frame(buf, 1 << 20, 1 << 20) {
            buf.drain(..used);
            assert_eq!(frame.opcode, OP_TEXT, "{frame:?}");
            return String::from_utf8(frame.payload).unwrap();
        }
        let n = tcp.read(&mut chunk).expect("no frame in time");
        assert!(n > 0, "the server hung up");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn send_text(tcp: &mut TcpStream, text: &str) {
    tcp.write_all(&wire::masked_frame(
        FIN | OP_TEXT,
        text.as_bytes(),
        [7, 1, 9, 3],
    ))
    .unwrap();
}

#[test]
fn a_polling_session_upgrades_and_its_held_poll_gets_a_noop() {
    let server = SocketIoTestServer::start_with(SocketIoConfig {
        ping_interval: Duration::from_secs(30),
        ..SocketIoConfig::default()
    })
    .unwrap();
    let addr = server.addr();
    let (status, open) = get(addr, "/socket.io/?EIO=4&transport=polling&t=1");
    assert!(status.contains(" 200 "), "{status}");
    let open: serde_json::Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(open["pingInterval"], 30_000);
    let sid = open["sid"].as_str().unwrap().to_string();
    assert_eq!(
        server.await_session(WAIT).unwrap().transport,
        SioTransport::Polling
    );

    // A poll held open while the upgrade runs.
    let target = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let held = std::thread::spawn(move || get(addr, &target));

    let mut ws = connect(addr);
    write!(
        ws,
        "GET /socket.io/?EIO=4&transport=websocket&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = Head::end(&buf) {
            break end;
        }
        let n = ws.read(&mut chunk).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    buf.drain(..end);

    send_text(&mut ws, "2probe");
    assert_eq!(text_frame(&mut ws, &mut buf), "3probe");
    let (status, body) = held.join().unwrap();
    assert_eq!((status.contains(" 200 "), body.as_str()), (true, "6"));
    send_text(&mut ws, "5");
    send_text(&mut ws, r#"40{"token":"raw"}"#);
    let connected = text_frame(&mut ws, &mut buf);
    assert!(connected.starts_with(r#"40{"sid":""#), "{connected}");
    let socket = server.await_socket(WAIT).unwrap();
    assert_eq!(socket.transport(), SioTransport::WebSocket);
    assert_eq!(
        server.await_connect(WAIT).unwrap().auth,
        Some(serde_json::json!({"token": "raw"}))
    );

    // Server emits go over the WebSocket now; a poll on the old transport
    // is answered with a noop.
    assert!(socket.emit("news", &[serde_json::json!(1)]));
    assert_eq!(text_frame(&mut ws, &mut buf), r#"42["news",1]"#);
    let (_, body) = get(
        addr,
        &format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
    );
    assert_eq!(body, "6");
}

#[test]
fn bad_requests_get_engine_io_errors() {
    let server = SocketIoTestServer::start_with(SocketIoConfig {
        websocket: false,
        ..SocketIoConfig::default()
    })
    .unwrap();
    let addr = server.addr();
    let cases = [
        (
            "/socket.io/?EIO=3&transport=polling",
            " 400 ",
            r#""code":5"#,
        ),
        (
            "/socket.io/?EIO=4&transport=websocket",
            " 400 ",
            r#""code":0"#,
        ),
        (
            "/socket.io/?EIO=4&transport=polling&sid=nope",
            " 400 ",
            r#""code":1"#,
        ),
        ("/elsewhere/?EIO=4&transport=polling", " 404 ", "not found"),
    ];
    for (target, status, body) in cases {
        let (got_status, got_body) = get(addr, target);
        assert!(got_status.contains(status), "{target}: {got_status}");
        assert!(got_body.contains(body), "{target}: {got_body}");
    }
    assert_eq!(server.session_count(), 0);
    // A session, then a POST over maxPayload ends it with a 413.
    let (_, open) = get(addr, "/socket.io/?EIO=4&transport=polling");
    let open: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
    let sid = open["sid"].as_str().unwrap();
    let mut tcp = connect(addr);
    let body = "4".repeat(1_000_001);
    write!(
        tcp,
        "POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    assert!(answer(&mut tcp).0.contains(" 413 "));
    assert_eq!(server.live_sessions(), 0);
}

#[test]
fn a_closed_polling_session_hands_its_close_packet_to_the_next_poll() {
    let server = SocketIoTestServer::start().unwrap();
    let addr = server.addr();
    let (_, open) = get(addr, "/socket.io/?EIO=4&transport=polling");
    let open: serde_json::Value = serde_json::from_str(&open[1..]).unwrap();
    let target = format!(
        "/socket.io/?EIO=4&transport=polling&sid={}",
        open["sid"].as_str().unwrap()
    );
    let mut tcp = connect(addr);
    write!(
        tcp,
        "POST {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n\r\n40"
    )
    .unwrap();
    assert_eq!(answer(&mut tcp).1, "ok");
    let socket = server.await_socket(WAIT).unwrap();
    assert!(socket.close_session());
    assert_eq!(server.live_sessions(), 0);
    // No poll was held: the next one takes what was queued, close last.
    let (_, body) = get(addr, &target);
    let packets: Vec<&str> = body.split('\x1e').collect();
    assert_eq!(packets.len(), 2, "{body:?}");
    assert!(packets[0].starts_with("40{"), "{body:?}");
    assert_eq!(packets[1], "1");
    let (status, _) = get(addr, &target);
    assert!(status.contains(" 400 "), "{status}");
}
