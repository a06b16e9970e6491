//! The WebSocket wire as a server writes and reads it by hand (RFC 6455):
//! frame headers and frames, the `Sec-WebSocket-Accept` key, the client's
//! masked frames and its HTTP request head. Pure: no I/O.

/// Frame header bits and opcodes (RFC 6455 §5.2).
pub const FIN: u8 = 0x80;
pub const RSV1: u8 = 0x40;
pub const RSV2: u8 = 0x20;
pub const RSV3: u8 = 0x10;
pub const OP_CONTINUATION: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// `Sec-WebSocket-Accept` for `key`: base64(SHA-1(key + GUID)), RFC 6455 §4.2.2.
pub fn accept_key(key: &str) -> String {
    use base64::Engine;
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// A frame header: `b0` is FIN, RSV bits and opcode as one byte; the
/// length in its shortest encoding; `mask` adds a masking key.
pub fn header(b0: u8, len: u64, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= u64::from(u16::MAX) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    out
}

/// An unmasked frame (what a server sends).
pub fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(b0, payload.len() as u64, None);
    out.extend_from_slice(payload);
    out
}

/// A masked frame (what a client sends, and a server must never).
pub fn masked_frame(b0: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut out = header(b0, payload.len() as u64, Some(key));
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

pub fn text(s: &str) -> Vec<u8> {
    frame(FIN | OP_TEXT, s.as_bytes())
}

pub fn binary(b: &[u8]) -> Vec<u8> {
    frame(FIN | OP_BINARY, b)
}

pub fn ping(p: &[u8]) -> Vec<u8> {
    frame(FIN | OP_PING, p)
}

/// A Close frame with a code and raw reason bytes.
pub fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    frame(FIN | OP_CLOSE, &payload)
}

/// `payload` as a message of `pieces` frames (a first frame of `opcode`,
/// then continuations, FIN on the last); at least one frame, at most one
/// per byte.
pub fn fragmented(opcode: u8, payload: &[u8], pieces: usize) -> Vec<u8> {
    let pieces = pieces.clamp(1, payload.len().max(1));
    let size = payload.len().div_ceil(pieces).max(1);
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![&[]]
    } else {
        payload.chunks(size).collect()
    };
    let last = chunks.len() - 1;
    let mut out = Vec::with_capacity(payload.len() + 10 * chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let op = if i == 0 { opcode } else { OP_CONTINUATION };
        let fin = if i == last { FIN } else { 0 };
        out.extend(frame(fin | op, chunk));
    }
    out
}

/// A frame read from the wire, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    /// The three RSV bits, as in the header byte (0x70 mask).
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    /// The payload length announced.
    pub len: u64,
    /// The payload, unmasked (at most the `kept` bytes given to
    /// [`parse_frame`]).
    pub payload: Vec<u8>,
}

impl Frame {
    /// The code of a Close frame (`None`: not a Close, or one without a
    /// code).
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == OP_CLOSE && self.payload.len() >= 2)
            .then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// What [`parse_frame`] found at the start of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A whole frame, and how many bytes of the buffer it took.
    Frame(Frame, usize),
    /// Not enough bytes yet.
    Incomplete,
    /// A frame announcing more than the limit: the stream cannot be read on.
    Junk,
}

/// Parses the frame at the start of `buf`. A frame announcing more than
/// `max_len` bytes is [`Parsed::Junk`]; at most `kept` payload bytes are
/// kept in [`Frame::payload`].
pub fn parse_frame(buf: &[u8], max_len: u64, kept: usize) -> Parsed {
    if buf.len() < 2 {
        return Parsed::Incomplete;
    }
    let (b0, b1) = (buf[0], buf[1]);
    let masked = b1 & 0x80 != 0;
    let (len, mut pos) = match b1 & 0x7f {
        126 if buf.len() < 4 => return Parsed::Incomplete,
        126 => (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() < 10 => return Parsed::Incomplete,
        127 => {
            let mut be = [0u8; 8];
            be.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(be), 10)
        }
        n => (u64::from(n), 2),
    };
    if len > max_len {
        return Parsed::Junk;
    }
    let mask = if masked {
        if buf.len() < pos + 4 {
            return Parsed::Incomplete;
        }
        let key = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(key)
    } else {
        None
    };
    let Ok(len_usize) = usize::try_from(len) else {
        return Parsed::Junk;
    };
    if buf.len() - pos < len_usize {
        return Parsed::Incomplete;
    }
    let payload = buf[pos..pos + len_usize.min(kept)]
        .iter()
        .enumerate()
        .map(|(i, b)| match mask {
            Some(key) => b ^ key[i % 4],
            None => *b,
        })
        .collect();
    Parsed::Frame(
        Frame {
            fin: b0 & FIN != 0,
            rsv: b0 & 0x70,
            opcode: b0 & 0x0f,
            masked,
            len,
            payload,
        },
        pos + len_usize,
    )
}

/// A client's HTTP request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The head as received, up to and including the blank line.
    pub raw: String,
    pub method: String,
    /// The request target, e.g. `/chat?room=1`.
    pub path: String,
    /// Header names lower-cased, values trimmed, in order.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// Parses a head (up to and including the blank line); lenient: a
    /// line without a colon is skipped.
    pub fn parse(raw: String) -> Head {
        let mut lines = raw.split("\r\n");
        let mut request = lines.next().unwrap_or("").split(' ');
        let method = request.next().unwrap_or("").to_string();
        let path = request.next().unwrap_or("").to_string();
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Head {
            raw,
            method,
            path,
            headers,
        }
    }

    /// Where the head ends in `buf` (the index after the blank line).
    pub fn end(buf: &[u8]) -> Option<usize> {
        buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The client's `Sec-WebSocket-Key` ("" if it sent none).
    pub fn key(&self) -> &str {
        self.header("sec-websocket-key").unwrap_or("")
    }

    /// The right `Sec-WebSocket-Accept` for this request.
    pub fn accept(&self) -> String {
        accept_key(self.key())
    }

    /// A correct `101 Switching Protocols` answer, with `extra` header
    /// lines (each ending in "\r\n") before the blank line.
    pub fn switching(&self, extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n{extra}\r\n",
            self.accept()
        )
        .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_is_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn masked_frames_parse_back_at_every_length_encoding() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let bytes = masked_frame(FIN | OP_BINARY, &payload, [1, 2, 3, 4]);
            let Parsed::Frame(f, used) = parse_frame(&bytes, u64::MAX, usize::MAX) else {
                panic!("no frame at length {len}");
            };
            assert_eq!(
                (used, f.payload, f.masked, f.fin),
                (bytes.len(), payload, true, true)
            );
            assert_eq!(
                parse_frame(&bytes[..bytes.len() - 1], u64::MAX, usize::MAX),
                Parsed::Incomplete
            );
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_junk_and_payloads_are_cut_to_kept() {
        assert_eq!(
            parse_frame(&header(FIN | OP_TEXT, 1 << 40, None), 1 << 20, 8),
            Parsed::Junk
        );
        let Parsed::Frame(f, _) = parse_frame(&text("hello world"), 100, 5) else {
            panic!("no frame")
        };
        assert_eq!((f.payload.as_slice(), f.len), (&b"hello"[..], 11));
    }

    #[test]
    fn fragments_carry_the_payload_in_order_with_fin_on_the_last() {
        let bytes = fragmented(OP_TEXT, b"abcdefg", 3);
        let mut rest = &bytes[..];
        let mut frames = Vec::new();
        while let Parsed::Frame(f, used) = parse_frame(rest, 100, 100) {
            frames.push(f);
            rest = &rest[used..];
        }
        let ops: Vec<_> = frames.iter().map(|f| (f.opcode, f.fin)).collect();
        assert_eq!(
            ops,
            [
                (OP_TEXT, false),
                (OP_CONTINUATION, false),
                (OP_CONTINUATION, true)
            ]
        );
        let joined: Vec<u8> = frames.into_iter().flat_map(|f| f.payload).collect();
        assert_eq!(joined, b"abcdefg");
        assert_eq!(fragmented(OP_BINARY, b"", 4), frame(FIN | OP_BINARY, b""));
    }

    #[test]
    fn heads_parse_path_and_headers() {
        let head = Head::parse("GET /chat?x=1 HTTP/1.1\r\nHost: a\r\nX-Token:  t \r\n\r\n".into());
        assert_eq!(
            (head.method.as_str(), head.path.as_str()),
            ("GET", "/chat?x=1")
        );
        assert_eq!(head.header("x-token"), Some("t"));
        assert_eq!(Head::end(head.raw.as_bytes()), Some(head.raw.len()));
    }
}
