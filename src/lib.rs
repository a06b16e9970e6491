//! Tether: one resilient WebSocket client for Android, iOS and C/C++ apps.
//!
//! The Rust API ([`Client`]) is what the C ABI in [`ffi`] wraps. All
//! connection work runs on one shared runtime thread; callers poll events.

pub mod backoff;
mod client;
pub mod error;
pub mod event;
pub mod ffi;
mod frame;
mod heartbeat;
mod http;
#[cfg(feature = "jni")]
mod jni;
pub mod logging;
pub mod options;
mod outbox;
mod queue;
mod runtime;
mod session;
mod socketio;
pub mod state;
mod tls;
mod transport;
mod wire;

pub use client::{Client, SseClient, Stats};
pub use error::error_code;
pub use error::Error;
pub use event::{Event, ServerSentEvent};
pub use options::Options;
pub use socketio::SocketIoClient;
pub use state::State;
pub use tls::spki_sha256_base64;
pub use wire::sse::SseOptions;

/// The library version, as in Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// See the `mimalloc` feature in Cargo.toml: large messages reuse memory
/// instead of faulting in fresh pages for each one.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
