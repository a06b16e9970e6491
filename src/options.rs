//! The options JSON of `ws_connect`: parsing, defaults and validation.
//!
//! Every key is optional; unknown keys are rejected so that a typo in an
//! app's configuration is an error at connect time, not a silent default.

use std::collections::BTreeMap;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;

use crate::error::Error;

/// All options of one client. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// Extra HTTP headers of the upgrade request (Authorization, Cookie, …).
    pub headers: BTreeMap<String, String>,
    /// Subprotocols offered, in order of preference.
    pub subprotocols: Vec<String>,
    /// Bound on DNS + TCP + TLS + HTTP upgrade of one attempt.
    pub connect_timeout_ms: u64,
    /// Interval between protocol Ping frames; 0 disables the heartbeat.
    pub ping_interval_ms: u64,
    /// Silence after a Ping after which the link is declared dead.
    pub pong_timeout_ms: u64,
    /// How long a close handshake may wait for the peer's Close frame.
    pub close_timeout_ms: u64,
    pub reconnect: ReconnectOptions,
    pub queue: QueueOptions,
    /// Largest incoming message (after reassembly of fragments).
    pub max_message_bytes: usize,
    /// Largest single incoming frame payload.
    pub max_frame_bytes: usize,
    /// Bytes of received, not yet polled messages past which the socket is
    /// no longer read (incoming backpressure). Nothing is dropped.
    pub max_unpolled_bytes: usize,
    pub tls: TlsOptions,
    /// Whether cleartext `ws://` is allowed; false accepts only `wss://`
    /// (like Android's cleartext traffic policy).
    pub allow_insecure: bool,
    /// HTTP proxy for CONNECT tunnels: `http://[user:password@]host:port`.
    pub proxy: Option<String>,
    /// The durable outbox; `None`: the queue is in memory only.
    pub outbox: Option<OutboxOptions>,
}

/// `"outbox"`: where and how sent messages are kept until delivered.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboxOptions {
    /// The SQLite file (created if missing).
    pub path: String,
    pub max_messages: usize,
    pub max_bytes: usize,
    pub fsync: Fsync,
}

/// When the outbox reaches stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// Before `ws_send` returns: survives power loss.
    Always,
    /// At least every 100 ms: survives the app being killed at once, a
    /// power loss up to the last sync.
    Batch,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            path: String::new(),
            max_messages: 10_000,
            max_bytes: 64 << 20,
            fsync: Fsync::Always,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectOptions {
    pub enabled: bool,
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
    pub multiplier: f64,
    /// Fraction of each delay that is randomised: 0 = none, 1 = full jitter.
    pub jitter: f64,
    /// `None` retries forever.
    pub max_attempts: Option<u32>,
    /// A connection that stayed open this long resets the attempt counter.
    pub reset_after_ms: u64,
    /// Seed of the jitter source; `None` seeds from the clock. For tests.
    pub jitter_seed: Option<u64>,
    /// The longest a server's `Retry-After` may hold the next attempt back.
    pub max_retry_after_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// `ws_send` fails with `WS_ERR_QUEUE_FULL` and takes nothing.
    Reject,
    /// The oldest queued message is dropped (and reported) to make room.
    DropOldest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flush {
    /// The backlog goes out as soon as a connection opens.
    OnOpen,
    /// The backlog waits after an open until `ws_flush`.
    Manual,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueOptions {
    pub max_messages: usize,
    pub max_bytes: usize,
    pub overflow: Overflow,
    pub flush: Flush,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Roots {
    /// Mozilla's roots, bundled (webpki-roots).
    Webpki,
    /// The operating system's trust store.
    Platform,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsOptions {
    pub roots: Roots,
    /// PEM text of extra trusted CA certificates.
    pub extra_ca_pem: Option<String>,
    /// Base64 SHA-256 hashes of SubjectPublicKeyInfo, one of which the
    /// server's chain must contain.
    pub pin_sha256: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            headers: BTreeMap::new(),
            subprotocols: Vec::new(),
            connect_timeout_ms: 10_000,
            ping_interval_ms: 30_000,
            pong_timeout_ms: 10_000,
            close_timeout_ms: 5_000,
            reconnect: ReconnectOptions::default(),
            queue: QueueOptions::default(),
            max_message_bytes: 64 << 20,
            max_frame_bytes: 16 << 20,
            max_unpolled_bytes: 16 << 20,
            tls: TlsOptions::default(),
            allow_insecure: true,
            proxy: None,
            outbox: None,
        }
    }
}

impl Default for ReconnectOptions {
    fn default() -> Self {
        ReconnectOptions {
            enabled: true,
            initial_delay_ms: 1_000,
            max_delay_ms: 30_000,
            multiplier: 2.0,
            jitter: 0.5,
            max_attempts: None,
            reset_after_ms: 5_000,
            jitter_seed: None,
            max_retry_after_ms: 300_000,
        }
    }
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            max_messages: 1_000,
            max_bytes: 16 << 20,
            overflow: Overflow::Reject,
            flush: Flush::OnOpen,
        }
    }
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            roots: Roots::Webpki,
            extra_ca_pem: None,
            pin_sha256: Vec::new(),
        }
    }
}

impl Options {
    /// Parses and validates the options JSON. `None`, an empty string and
    /// `{}` all give the defaults.
    /// Parses and validates the options JSON (`None` or empty: defaults).
    pub fn from_json(json: Option<&str>) -> Result<Options, Error> {
        let options = Options::parse_json(json)?;
        options.validate()?;
        Ok(options)
    }

    /// Parses the options JSON without checking its values: for callers
    /// that hand the options to `Client::connect` next, which checks them
    /// while parsing pins, CAs and the proxy once.
    pub(crate) fn parse_json(json: Option<&str>) -> Result<Options, Error> {
        let text = json.map(str::trim).unwrap_or("");
        if text.is_empty() {
            return Ok(Options::default());
        }
        let bad = |e: serde_json::Error| Error::InvalidArgument(format!("options JSON: {e}"));
        let value: serde_json::Value = serde_json::from_str(text).map_err(bad)?;
        // serde would also accept a struct written as an array.
        if !value.is_object() {
            return Err(Error::InvalidArgument(
                "options JSON: expected an object like {\"ping_interval_ms\": 15000}".into(),
            ));
        }
        serde_json::from_value(value).map_err(bad)
    }

    /// Checks what the types alone cannot. Messages name the offending key
    /// but never echo a header value (it may be a secret).
    /// Checks every value; [`Client::connect`](crate::Client::connect)
    /// does the same, so calling this first is optional.
    pub fn validate(&self) -> Result<(), Error> {
        self.resolve().map(drop)
    }

    /// The checks of plain values (numbers, names, tokens).
    fn validate_values(&self) -> Result<(), Error> {
        let invalid = |msg: String| Err(Error::InvalidArgument(format!("options: {msg}")));
        for (name, value) in &self.headers {
            validate_header(name, Some(value))
                .map_err(|why| Error::InvalidArgument(format!("options: headers: {why}")))?;
        }
        for protocol in &self.subprotocols {
            if protocol.is_empty() || !protocol.bytes().all(is_token_byte) {
                return invalid(format!(
                    "subprotocols: {protocol:?} is not a valid token (RFC 6455 §4.1)"
                ));
            }
        }
        if self.connect_timeout_ms == 0 {
            return invalid("connect_timeout_ms must be greater than 0".into());
        }
        if self.ping_interval_ms > 0 && self.pong_timeout_ms == 0 {
            return invalid("pong_timeout_ms must be greater than 0 when pings are on".into());
        }
        let r = &self.reconnect;
        if r.initial_delay_ms > r.max_delay_ms {
            return invalid(format!(
                "reconnect.initial_delay_ms ({}) is above reconnect.max_delay_ms ({})",
                r.initial_delay_ms, r.max_delay_ms
            ));
        }
        if !(r.multiplier.is_finite() && r.multiplier >= 1.0) {
            return invalid("reconnect.multiplier must be a number ≥ 1".into());
        }
        if !(0.0..=1.0).contains(&r.jitter) {
            return invalid("reconnect.jitter must be between 0 and 1".into());
        }
        if self.queue.max_messages == 0 || self.queue.max_bytes == 0 {
            return invalid("queue.max_messages and queue.max_bytes must be greater than 0".into());
        }
        if self.max_message_bytes == 0 || self.max_frame_bytes == 0 {
            return invalid("max_message_bytes and max_frame_bytes must be greater than 0".into());
        }
        if self.max_unpolled_bytes == 0 {
            return invalid("max_unpolled_bytes must be greater than 0".into());
        }
        if let Some(outbox) = &self.outbox {
            if outbox.path.is_empty() {
                return invalid("outbox.path is required (the outbox's SQLite file)".into());
            }
            if outbox.max_messages == 0 || outbox.max_bytes == 0 {
                return invalid(
                    "outbox.max_messages and outbox.max_bytes must be greater than 0".into(),
                );
            }
            if !cfg!(feature = "outbox") {
                return invalid(
                    "outbox: this build of Tether has no outbox (cargo feature `outbox`)".into(),
                );
            }
        }
        Ok(())
    }

    /// Validates everything and parses the values that need parsing (pins,
    /// CA certificates, the proxy URL) into typed ones: once per connect.
    pub(crate) fn resolve(&self) -> Result<Resolved, Error> {
        self.validate_values()?;
        let pins = self
            .tls
            .pin_sha256
            .iter()
            .map(|pin| parse_pin(pin))
            .collect::<Result<Vec<_>, _>>()?;
        let extra_cas = match &self.tls.extra_ca_pem {
            Some(pem) => parse_pem_certificates(pem)?,
            None => Vec::new(),
        };
        let proxy = self.proxy.as_deref().map(ProxyConfig::parse).transpose()?;
        Ok(Resolved {
            tls: TlsTrust {
                roots: self.tls.roots,
                extra_cas,
                pins,
            },
            proxy,
        })
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn close_timeout(&self) -> Duration {
        Duration::from_millis(self.close_timeout_ms)
    }
}

/// Checks a header the app sets (`value` `None`: one it removes). The
/// message names the header, never its value (it may be a secret).
pub(crate) fn validate_header(name: &str, value: Option<&str>) -> Result<(), String> {
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!("{name:?} is not a valid header name"));
    }
    let Some(value) = value else {
        return Ok(());
    };
    if is_reserved_header(name) {
        let hint = if name.eq_ignore_ascii_case("sec-websocket-protocol") {
            "; use the subprotocols option"
        } else {
            ""
        };
        return Err(format!(
            "{name:?} is set by the WebSocket handshake itself{hint}"
        ));
    }
    if HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "the value of {name:?} has characters not allowed in a header"
        ));
    }
    Ok(())
}

/// Headers the handshake sets itself; an app value would break it.
pub(crate) fn is_reserved_header(name: &str) -> bool {
    const RESERVED: [&str; 8] = [
        "host",
        "connection",
        "upgrade",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
        "sec-websocket-accept",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// RFC 7230 token characters (what a subprotocol name may contain).
/// The option values that need parsing, parsed once by
/// [`Options::resolve`].
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub tls: TlsTrust,
    pub proxy: Option<ProxyConfig>,
}

/// What the TLS verifier trusts: `tls.*` as typed values.
#[derive(Debug, Clone)]
pub(crate) struct TlsTrust {
    pub roots: Roots,
    pub extra_cas: Vec<CertificateDer<'static>>,
    /// SHA-256 hashes of pinned SubjectPublicKeyInfos.
    pub pins: Vec<[u8; 32]>,
}

/// Parses the certificates of a PEM text; at least one is required.
pub(crate) fn parse_pem_certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidArgument(format!("options: tls.extra_ca_pem: {e}")))?;
    if certs.is_empty() {
        return Err(Error::InvalidArgument(
            "options: tls.extra_ca_pem holds no CERTIFICATE block".into(),
        ));
    }
    // A block must hold a certificate usable as a trust anchor.
    for (i, cert) in certs.iter().enumerate() {
        webpki::anchor_from_trusted_cert(cert).map_err(|e| {
            Error::InvalidArgument(format!(
                "options: tls.extra_ca_pem: CERTIFICATE block {} is not a certificate ({e})",
                i + 1
            ))
        })?;
    }
    Ok(certs)
}

/// Decodes a pin: base64 of a SHA-256 hash, optionally prefixed
/// `sha256/` as OkHttp's CertificatePinner writes them.
pub(crate) fn parse_pin(pin: &str) -> Result<[u8; 32], Error> {
    use base64::Engine;
    let text = pin.strip_prefix("sha256/").unwrap_or(pin);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| Error::InvalidArgument(format!("options: tls.pin_sha256: {pin:?}: {e}")))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        Error::InvalidArgument(format!(
            "options: tls.pin_sha256: {pin:?} is {} bytes; a SHA-256 hash is 32",
            b.len()
        ))
    })
}

/// An HTTP proxy that tunnels with CONNECT (RFC 9110 §9.3.6): the
/// `proxy` option, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProxyConfig {
    pub host: String,
    pub port: u16,
    /// `Proxy-Authorization` value (Basic), from the URL's user info.
    pub authorization: Option<String>,
}

impl ProxyConfig {
    /// Parses `http://[user:password@]host:port`. Errors never echo the
    /// URL: it may carry a password.
    pub fn parse(url: &str) -> Result<ProxyConfig, Error> {
        use tokio_tungstenite::tungstenite::http::Uri;
        let invalid = |why: &str| {
            Err(Error::InvalidArgument(format!(
                "options: proxy: {why} (expected http://[user:password@]host:port)"
            )))
        };
        let Ok(uri) = url.parse::<Uri>() else {
            return invalid("malformed URL");
        };
        if uri.scheme_str() != Some("http") {
            return invalid("only http:// proxies (CONNECT) are supported");
        }
        let Some(authority) = uri.authority() else {
            return invalid("missing host");
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return invalid("a proxy URL has no path");
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        if host.is_empty() {
            return invalid("missing host");
        }
        let authorization = authority.as_str().rsplit_once('@').map(|(userinfo, _)| {
            use base64::Engine;
            let decoded = percent_decode(userinfo);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(decoded)
            )
        });
        let Some(port) = authority_port(authority.as_str(), 80) else {
            return invalid("the port must be between 1 and 65535");
        };
        Ok(ProxyConfig {
            host: host.to_string(),
            port,
            authorization,
        })
    }
}

/// The port of a URL authority (`[user@]host[:port]`): `default` when it
/// names none, `None` when it is not 1..=65535 written in digits (RFC 3986:
/// `port = *DIGIT`; `Uri::port` hides what is not a u16, so it is read here).
pub(crate) fn authority_port(authority: &str, default: u16) -> Option<u16> {
    let host_port = authority.rsplit('@').next().unwrap_or("");
    let text = match host_port.rfind(':') {
        Some(i) if i > host_port.rfind(']').unwrap_or(0) => &host_port[i + 1..],
        _ => return Some(default),
    };
    if text.is_empty() {
        return Some(default);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<u16>().ok().filter(|p| *p > 0)
}

/// `%XX` escapes of URL user info, decoded.
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Exactly two hex digits (no sign: from_str_radix takes "+f").
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(value)) => {
                out.push(value);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(json: &str) -> String {
        match Options::from_json(Some(json)) {
            Err(Error::InvalidArgument(msg)) => msg,
            other => panic!("expected InvalidArgument for {json}, got {other:?}"),
        }
    }

    #[test]
    fn absent_or_empty_gives_defaults() {
        assert_eq!(Options::from_json(None).unwrap(), Options::default());
        assert_eq!(Options::from_json(Some("")).unwrap(), Options::default());
        assert_eq!(
            Options::from_json(Some(" {} ")).unwrap(),
            Options::default()
        );
    }

    #[test]
    fn defaults_match_design() {
        let o = Options::default();
        assert_eq!(o.connect_timeout_ms, 10_000);
        assert_eq!(o.ping_interval_ms, 30_000);
        assert_eq!(o.pong_timeout_ms, 10_000);
        assert!(o.reconnect.enabled);
        assert_eq!(o.reconnect.initial_delay_ms, 1_000);
        assert_eq!(o.reconnect.max_delay_ms, 30_000);
        assert_eq!(o.reconnect.multiplier, 2.0);
        assert_eq!(o.reconnect.jitter, 0.5);
        assert_eq!(o.reconnect.max_attempts, None);
        assert_eq!(o.queue.max_messages, 1_000);
        assert_eq!(o.queue.max_bytes, 16_777_216);
        assert_eq!(o.queue.overflow, Overflow::Reject);
        assert_eq!(o.max_message_bytes, 67_108_864);
        assert_eq!(o.tls.roots, Roots::Webpki);
    }

    #[test]
    fn full_design_example_parses() {
        let o = Options::from_json(Some(
            r#"{
              "headers": {"Authorization": "Bearer abc"},
              "subprotocols": ["chat.v2"],
              "connect_timeout_ms": 5000,
              "ping_interval_ms": 15000,
              "pong_timeout_ms": 5000,
              "reconnect": {"enabled": true, "initial_delay_ms": 500,
                            "max_delay_ms": 10000, "multiplier": 1.5,
                            "jitter": 0.2, "max_attempts": 7},
              "queue": {"max_messages": 10, "max_bytes": 1024,
                        "overflow": "drop_oldest", "flush": "manual"},
              "max_message_bytes": 1048576,
              "tls": {"roots": "webpki", "extra_ca_pem": null, "pin_sha256": []}
            }"#,
        ))
        .unwrap();
        assert_eq!(o.headers["Authorization"], "Bearer abc");
        assert_eq!(o.subprotocols, vec!["chat.v2"]);
        assert_eq!(o.reconnect.max_attempts, Some(7));
        assert_eq!(o.reconnect.multiplier, 1.5);
        assert_eq!(o.queue.overflow, Overflow::DropOldest);
        assert_eq!(o.queue.flush, Flush::Manual);
        assert_eq!(o.max_message_bytes, 1 << 20);
        // Keys not given keep their defaults.
        assert_eq!(o.close_timeout_ms, 5_000);
        assert_eq!(o.reconnect.reset_after_ms, 5_000);
        assert_eq!(o.reconnect.max_retry_after_ms, 300_000);
    }

    #[test]
    fn unknown_keys_are_rejected_at_every_level() {
        assert!(err(r#"{"ping_intervall_ms": 1}"#).contains("unknown field"));
        assert!(err(r#"{"reconnect": {"enable": true}}"#).contains("unknown field"));
        assert!(err(r#"{"queue": {"max": 1}}"#).contains("unknown field"));
        assert!(err(r#"{"tls": {"root": "webpki"}}"#).contains("unknown field"));
    }

    #[test]
    fn malformed_json_and_wrong_types_are_rejected() {
        assert!(err("{").contains("options JSON"));
        assert!(err("[]").contains("options JSON"));
        assert!(err(r#"{"ping_interval_ms": -1}"#).contains("options JSON"));
        assert!(err(r#"{"queue": {"overflow": "explode"}}"#).contains("unknown variant"));
    }

    #[test]
    fn inconsistent_values_are_rejected() {
        assert!(
            err(r#"{"reconnect": {"initial_delay_ms": 5, "max_delay_ms": 1}}"#)
                .contains("initial_delay_ms")
        );
        assert!(err(r#"{"reconnect": {"multiplier": 0.5}}"#).contains("multiplier"));
        assert!(err(r#"{"reconnect": {"jitter": 1.5}}"#).contains("jitter"));
        assert!(err(r#"{"queue": {"max_messages": 0}}"#).contains("max_messages"));
        assert!(err(r#"{"connect_timeout_ms": 0}"#).contains("connect_timeout_ms"));
        assert!(err(r#"{"subprotocols": ["a b"]}"#).contains("subprotocols"));
        assert!(err(r#"{"headers": {"Bad Name": "x"}}"#).contains("Bad Name"));
        assert!(err(r#"{"headers": {"Sec-WebSocket-Key": "x"}}"#).contains("handshake"));
        assert!(err(r#"{"headers": {"host": "x"}}"#).contains("handshake"));
        assert!(err(r#"{"headers": {"Sec-WebSocket-Protocol": "x"}}"#).contains("subprotocols"));
    }

    #[test]
    fn header_value_errors_do_not_echo_the_value() {
        let msg = err(r#"{"headers": {"Authorization": "Bearer sec\nret"}}"#);
        assert!(msg.contains("Authorization"));
        assert!(!msg.contains("sec"), "secret leaked: {msg}");
    }

    #[test]
    fn security_options_parse_and_validate() {
        let o = Options::from_json(Some(
            r#"{"allow_insecure": false, "proxy": "http://u:p@127.0.0.1:3128",
                "tls": {"roots": "platform",
                        "pin_sha256": ["sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]}}"#,
        ))
        .unwrap();
        assert!(!o.allow_insecure);
        assert_eq!(o.tls.roots, Roots::Platform);
        assert!(Options::default().allow_insecure);
        assert!(err(r#"{"tls": {"pin_sha256": ["abc"]}}"#).contains("pin_sha256"));
        assert!(err(r#"{"proxy": "socks5://127.0.0.1:1080"}"#).contains("proxy"));
        assert!(!err(r#"{"proxy": "ftp://user:s3cret@h:1"}"#).contains("s3cret"));
    }

    #[test]
    fn proxy_urls_give_host_port_and_basic_auth() {
        let p = ProxyConfig::parse("http://127.0.0.1:3128").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.authorization),
            ("127.0.0.1", 3128, None)
        );
        let p = ProxyConfig::parse("http://al%40ice:pa%3Ass@proxy.test:8080/").unwrap();
        assert_eq!(p.host, "proxy.test");
        // base64("al@ice:pa:ss")
        assert_eq!(p.authorization.as_deref(), Some("Basic YWxAaWNlOnBhOnNz"));
        for bad in [
            "https://p:1",
            "socks5://p:1",
            "http://",
            "http://p:1/path",
            "p:1",
            "http://127.0.0.1:0",
            "http://127.0.0.1:65536",
            "http://127.0.0.1:18446744073709551617",
            "http://127.0.0.1:+80",
        ] {
            assert!(ProxyConfig::parse(bad).is_err(), "{bad}");
        }
        // `%+f` is no escape: it stays literal.
        let p = ProxyConfig::parse("http://%+f@proxy.test:8080").unwrap();
        assert_eq!(p.authorization.as_deref(), Some("Basic JStm"));
    }

    #[test]
    fn pins_must_be_base64_sha256() {
        use base64::Engine;
        assert!(parse_pin("not base64!").is_err());
        assert!(parse_pin("AAAA").is_err());
        let ok = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(parse_pin(&ok).unwrap(), [7u8; 32]);
        assert_eq!(parse_pin(&format!("sha256/{ok}")).unwrap(), [7u8; 32]);
    }

    #[test]
    fn resolve_parses_each_value_once_into_typed_ones() {
        let r = Options::from_json(Some(
            r#"{"proxy": "http://127.0.0.1:3128",
                "tls": {"pin_sha256": ["sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]}}"#,
        ))
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!(r.tls.pins, vec![[0u8; 32]]);
        assert!(r.tls.extra_cas.is_empty());
        assert_eq!(r.proxy.map(|p| p.port), Some(3128));
    }

    #[test]
    fn outbox_options_parse_with_defaults_and_are_checked() {
        let o = Options::from_json(Some(
            r#"{"outbox": {"path": "/tmp/x.db", "fsync": "batch"}}"#,
        ))
        .unwrap();
        let outbox = o.outbox.unwrap();
        assert_eq!(outbox.path, "/tmp/x.db");
        assert_eq!(outbox.fsync, Fsync::Batch);
        assert_eq!(outbox.max_messages, 10_000);
        assert_eq!(outbox.max_bytes, 64 << 20);
        assert!(err(r#"{"outbox": {}}"#).contains("outbox.path"));
        assert!(err(r#"{"outbox": {"path": "x", "max_messages": 0}}"#).contains("max_messages"));
        assert!(err(r#"{"outbox": {"path": "x", "fsync": "never"}}"#).contains("unknown variant"));
        assert!(err(r#"{"outbox": {"path": "x", "pth": 1}}"#).contains("unknown field"));
    }

    #[test]
    fn bad_pem_is_rejected() {
        assert!(err(r#"{"tls": {"extra_ca_pem": "not a pem"}}"#).contains("extra_ca_pem"));
        let empty = serde_json::json!({"tls": {"extra_ca_pem":
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}});
        assert!(err(&empty.to_string()).contains("not a certificate"));
    }
}
