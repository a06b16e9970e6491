//! Tether's test kit: a WebSocket server for the unit tests of apps,
//! started on 127.0.0.1 with a free port by one call (`ws://`, or `wss://`
//! with a test CA made at start), with scripted handshakes (TLS faults
//! included), a recorder of what clients send, per-connection handles
//! and faults, and network conditions applied and lifted while running.
//! [`SocketIoTestServer`] is the same for Socket.IO clients (Engine.IO v4
//! over WebSocket and long-polling, Socket.IO v5 namespaces and acks).
//! [`SseTestServer`] is its Server-Sent Events personality: scripted
//! answers (accept, 503 + `Retry-After`, 204, wrong `Content-Type`), the
//! same recorder and network conditions, and a handle per open stream
//! (events, comments, raw bytes, end, reset, stall).
//!
//! Shipped apart from the `tether` library (its own crate, C header
//! `include/tether_testkit.h` and Maven module), so production apps do not
//! carry it.
//!
//! ```no_run
//! use std::time::Duration;
//! use tether_testkit::{Reply, TestServer};
//!
//! let server = TestServer::start().unwrap();
//! server.push_reply(Reply::refuse(503, &[("Retry-After", "1")])).unwrap();
//! // … connect the client under test to server.url("/chat") …
//! let request = server.await_request(Duration::from_secs(5)).unwrap();
//! assert_eq!(request.path, "/chat");
//! ```

mod connection;
pub mod ffi;
#[cfg(feature = "jni")]
mod jni;
mod link;
mod listener;
mod record;
mod script;
mod server;
mod sio;
mod sse;
mod tls;
pub mod wire;

pub use connection::Connection;
pub use record::{ClientClose, Message, MessageKind, Request};
pub use script::{Faults, Network, Reply, MAX_DELAY};
pub use server::TestServer;
pub use sio::{
    AckAnswer, ClientDisconnect, ConnectReply, EngineSession, NamespaceConnect, PendingAck,
    ReceivedEvent, ServerSocket, SioTransport, SocketIoConfig, SocketIoTestServer,
};
pub use sse::{SseEvent, SseReply, SseStream, SseTestServer};
