//! The byte stream under tungstenite on a WebSocket connection: it reads
//! ahead while data keeps coming, and it lifts large binary frames past
//! tungstenite.
//!
//! tungstenite reads at most its `read_buffer_size` per call (kept at 1 KiB,
//! since it stays allocated for the connection's life), zero-fills what it
//! reads into, and copies out of its own buffer nothing: a frame's payload
//! is the part of that buffer it was read into. Two things here make a
//! stream of large messages cost about what the socket costs:
//! - Reads go straight into tungstenite's buffer until one fills it; then
//!   through a 64 KiB buffer, freed as soon as the data stops coming, so a
//!   large frame costs a few system calls instead of hundreds.
//! - A final, unmasked binary frame of at least [`LIFT_MIN_BYTES`], without
//!   extension bits, within the size limits, outside a fragmented message
//!   and before any Close, never reaches tungstenite: its payload is read
//!   from the socket straight into a buffer of its own size (not zero-filled
//!   first, not copied again) and handed to the reader through [`Lifted`].
//!   It is lifted only where tungstenite has had every byte before the frame
//!   and none after it, and it is taken before tungstenite reads on, so
//!   messages keep their order. Every other frame goes to tungstenite byte
//!   for byte: the protocol's checks and its answers stay there.

use std::io::{self, Cursor};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::{BufMut, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_util::io::poll_read_buf;

use crate::frame::MAX_HEADER_BYTES;

/// Bytes read from the socket per system call while data keeps coming.
const READ_AHEAD_BYTES: usize = 64 * 1024;

/// A read that fills at least this much of the caller's buffer suggests
/// more is waiting: the next reads go through the read-ahead buffer.
const WIDE_READ_MIN: usize = 1024;

/// Binary frames from this size on are lifted: below it a frame is a copy
/// of a few KiB in tungstenite, less than the lift's own turn costs.
pub(crate) const LIFT_MIN_BYTES: u64 = 16 * 1024;

/// A lifted frame's payload on its way to the reader (the connection's
/// `WebSocketReader`), which takes it when tungstenite's read is pending.
#[derive(Debug, Default)]
pub(crate) struct Lifted {
    frame: Mutex<Option<Bytes>>,
    /// `frame` holds one: the reader looks without locking.
    waiting: AtomicBool,
    /// Frames lifted so far (tests check which path a frame took).
    #[cfg(test)]
    count: std::sync::atomic::AtomicUsize,
}

impl Lifted {
    fn put(&self, frame: Bytes) {
        let earlier = self.frame.lock().replace(frame);
        debug_assert!(earlier.is_none(), "a lifted frame was never taken");
        self.waiting.store(true, Ordering::Release);
        #[cfg(test)]
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The lifted frame's payload, if one waits.
    pub fn take(&self) -> Option<Bytes> {
        if !self.waiting.load(Ordering::Acquire) {
            return None;
        }
        self.waiting.store(false, Ordering::Relaxed);
        self.frame.lock().take()
    }

    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }
}

/// What the front of the bytes at hand is, for tungstenite.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Give it this many bytes (at least one).
    Give(usize),
    /// A frame to lift starts here: skip its header, read its payload.
    Lift {
        header_len: usize,
        payload_len: usize,
    },
    /// The start of a header that may be a frame to lift: wait for the rest.
    NeedMore,
}

/// Whether the bytes at a frame's start begin a frame to lift.
#[derive(Debug, PartialEq, Eq)]
enum Peek {
    Lift {
        header_len: usize,
        payload_len: usize,
    },
    Incomplete,
    No,
}

/// Where the bytes given to tungstenite stand in the sequence of frames,
/// read from their headers as they go by (pure: no I/O).
#[derive(Debug, Default)]
struct FrameScan {
    /// The header of the frame being given, until it is whole.
    header: [u8; MAX_HEADER_BYTES],
    header_len: usize,
    /// The current frame's payload bytes tungstenite has still to get.
    payload_left: u64,
    /// Inside a fragmented message: its first frame was not final.
    fragmented: bool,
    /// A Close frame went by, or the stream ended: nothing more is lifted.
    done: bool,
}

/// The frame header at the front of `bytes`, parsed by tungstenite: its
/// length in bytes, the header, and its payload's length. None while it is
/// not whole; Err for an opcode tungstenite fails the connection for.
fn parse_header(bytes: &[u8]) -> Result<Option<(usize, FrameHeader, u64)>, ()> {
    let mut cursor = Cursor::new(bytes);
    match FrameHeader::parse(&mut cursor) {
        Ok(Some((header, payload_len))) => {
            Ok(Some((cursor.position() as usize, header, payload_len)))
        }
        Ok(None) => Ok(None),
        Err(_) => Err(()),
    }
}

/// `bytes` at a frame's start: a frame to lift (final, binary, no
/// extension bits, unmasked, `LIFT_MIN_BYTES..=max` long)?
fn peek(bytes: &[u8], max: usize) -> Peek {
    const FINAL_BINARY: u8 = 0x82;
    // Only the first two bytes decide whether to wait for the rest: an
    // unmasked frame with a 16- or 64-bit length (a masked or short one is
    // never lifted, so tungstenite gets it as it comes).
    match (bytes.first(), bytes.get(1)) {
        (None, _) | (Some(&FINAL_BINARY), None) => return Peek::Incomplete,
        (Some(&FINAL_BINARY), Some(126..=127)) => {}
        _ => return Peek::No,
    }
    match parse_header(bytes) {
        Ok(None) => Peek::Incomplete,
        Ok(Some((header_len, _, payload_len)))
            if (LIFT_MIN_BYTES..=max as u64).contains(&payload_len) =>
        {
            Peek::Lift {
                header_len,
                payload_len: payload_len as usize,
            }
        }
        _ => Peek::No,
    }
}

impl FrameScan {
    fn at_frame_start(&self) -> bool {
        self.header_len == 0 && self.payload_left == 0
    }

    /// How much of `bytes` (the next bytes of the stream) goes to
    /// tungstenite now, at most `limit`, or whether a frame to lift starts
    /// at its front. What it gives is counted as given.
    fn next(&mut self, bytes: &[u8], limit: usize, max: usize) -> Next {
        let limit = limit.min(bytes.len());
        let mut given = 0;
        while given < limit {
            if self.at_frame_start() && !self.fragmented && !self.done {
                match peek(&bytes[given..], max) {
                    Peek::Lift {
                        header_len,
                        payload_len,
                    } if given == 0 => {
                        return Next::Lift {
                            header_len,
                            payload_len,
                        }
                    }
                    Peek::Incomplete if given == 0 => return Next::NeedMore,
                    Peek::Lift { .. } | Peek::Incomplete => break,
                    Peek::No => {}
                }
            }
            given += self.give(&bytes[given..limit]);
        }
        Next::Give(given)
    }

    /// Counts the front of `bytes` (not empty) as given: the rest of a
    /// payload, or header bytes. Returns how many.
    fn give(&mut self, bytes: &[u8]) -> usize {
        if self.done {
            // Nothing more is lifted: the frames no longer matter.
            return bytes.len();
        }
        if self.payload_left > 0 {
            let n = self.payload_left.min(bytes.len() as u64);
            self.payload_left -= n;
            return n as usize;
        }
        // Header bytes, as many as fit; those past its end are not given.
        let had = self.header_len;
        let n = (MAX_HEADER_BYTES - had).min(bytes.len());
        self.header[had..had + n].copy_from_slice(&bytes[..n]);
        self.header_len += n;
        match parse_header(&self.header[..self.header_len]) {
            // Still short of a whole header: all of it was header.
            Ok(None) => n,
            Ok(Some((header_len, header, payload_len))) => {
                self.header_done(&header, payload_len);
                header_len - had
            }
            // tungstenite fails the connection at this frame.
            Err(()) => {
                self.done = true;
                n
            }
        }
    }

    fn header_done(&mut self, header: &FrameHeader, payload_len: u64) {
        match header.opcode {
            // A continuation: a final one ends the fragmented message.
            OpCode::Data(Data::Continue) => self.fragmented &= !header.is_final,
            OpCode::Data(_) => self.fragmented = !header.is_final,
            OpCode::Control(Control::Close) => self.done = true,
            // Ping, Pong.
            OpCode::Control(_) => {}
        }
        self.payload_left = payload_len;
        self.header_len = 0;
    }

    /// Everything from here goes to tungstenite as it comes.
    fn stop_lifting(&mut self) {
        self.done = true;
    }
}

/// Reads ahead of a small caller buffer while data keeps coming, holds
/// nothing while the link is idle, and lifts large binary frames (see the
/// module's comment).
pub(crate) struct ReadAhead<S> {
    inner: S,
    /// Empty, or `READ_AHEAD_BYTES` long (zeroed once, then reused), or
    /// the handshake's leftover at first.
    ahead: Vec<u8>,
    /// Unread bytes are `ahead[start..end]`.
    start: usize,
    end: usize,
    /// The last read filled what was asked: read wide.
    wide: bool,
    frames: FrameScan,
    /// The largest payload a lifted frame may have (the frame and message
    /// limits: tungstenite fails a larger one).
    lift_max: usize,
    /// Payload bytes the frame being lifted still lacks, while one is.
    lifting: Option<usize>,
    /// Lifted payloads are read into it and split off, as tungstenite reuses
    /// its buffer: its memory is reused once the app dropped the last one.
    lift_buf: BytesMut,
    lifted: std::sync::Arc<Lifted>,
}

impl<S> ReadAhead<S> {
    /// `leftover`: bytes read past the handshake's response (they come
    /// first). Frames up to `lift_max` bytes may be lifted.
    pub(crate) fn new(inner: S, leftover: Vec<u8>, lift_max: usize) -> ReadAhead<S> {
        ReadAhead {
            inner,
            start: 0,
            end: leftover.len(),
            ahead: leftover,
            wide: false,
            frames: FrameScan::default(),
            lift_max,
            lifting: None,
            lift_buf: BytesMut::new(),
            lifted: Default::default(),
        }
    }

    /// Where lifted frames wait for the reader.
    pub(crate) fn lifted(&self) -> std::sync::Arc<Lifted> {
        self.lifted.clone()
    }

    fn narrow(&mut self) {
        self.wide = false;
        self.ahead = Vec::new();
        (self.start, self.end) = (0, 0);
    }

    /// Starts lifting the frame whose header begins `ahead[start..]`,
    /// taking what of its payload is already there.
    fn start_lift(&mut self, header_len: usize, payload_len: usize) {
        self.start += header_len;
        self.lift_buf.reserve(payload_len);
        let there = payload_len.min(self.end - self.start);
        self.lift_buf
            .extend_from_slice(&self.ahead[self.start..self.start + there]);
        self.start += there;
        self.lifting = Some(payload_len - there);
    }

    /// Moves `ahead[start..end]` to the front of a read-ahead buffer, so
    /// that a wide read can follow it.
    fn make_room(&mut self) {
        let held = self.end - self.start;
        if self.ahead.len() < READ_AHEAD_BYTES {
            let mut ahead = vec![0; READ_AHEAD_BYTES];
            ahead[..held].copy_from_slice(&self.ahead[self.start..self.end]);
            self.ahead = ahead;
        } else {
            self.ahead.copy_within(self.start..self.end, 0);
        }
        (self.start, self.end) = (0, held);
    }
}

impl<S: AsyncRead + Unpin> ReadAhead<S> {
    /// Reads the rest of the frame being lifted. Ready(true): it is whole
    /// and waits in `lifted`; Ready(false): the stream ended inside it.
    fn poll_lift(&mut self, cx: &mut Context<'_>, mut left: usize) -> Poll<io::Result<bool>> {
        while left > 0 {
            let mut room = (&mut self.lift_buf).limit(left);
            match poll_read_buf(Pin::new(&mut self.inner), cx, &mut room) {
                Poll::Ready(Ok(0)) => {
                    self.lifting = None;
                    self.lift_buf.clear();
                    return Poll::Ready(Ok(false));
                }
                Poll::Ready(Ok(n)) => left -= n,
                Poll::Ready(Err(e)) => {
                    self.lifting = None;
                    self.lift_buf.clear();
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    self.lifting = Some(left);
                    return Poll::Pending;
                }
            }
        }
        self.lifting = None;
        self.lifted.put(self.lift_buf.split().freeze());
        // Data is coming: the next header is read where it can be seen.
        self.wide = true;
        Poll::Ready(Ok(true))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let wanted = out.remaining();
        if wanted == 0 {
            return Poll::Ready(Ok(()));
        }
        // Every turn returns, or makes progress: it starts a lift (taking a
        // header), or reads bytes, or marks the stream's end.
        loop {
            if let Some(left) = this.lifting {
                return match this.poll_lift(cx, left) {
                    // The reader takes it when this read is pending; tungstenite
                    // reads on after that.
                    Poll::Ready(Ok(true)) => {
                        cx.waker().wake_by_ref();
                        Poll::Pending
                    }
                    // Nothing given: tungstenite sees the end of the stream.
                    Poll::Ready(Ok(false)) => Poll::Ready(Ok(())),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                };
            }
            if this.start < this.end {
                let held = &this.ahead[this.start..this.end];
                match this.frames.next(held, wanted, this.lift_max) {
                    Next::Give(n) => {
                        out.put_slice(&held[..n]);
                        this.start += n;
                        if this.start == this.end && !this.wide {
                            this.narrow();
                        }
                        return Poll::Ready(Ok(()));
                    }
                    Next::Lift {
                        header_len,
                        payload_len,
                    } => {
                        this.start_lift(header_len, payload_len);
                        continue;
                    }
                    // Read the rest of the header after it.
                    Next::NeedMore => {}
                }
            }
            let held = this.end - this.start;
            if held == 0 && (!this.wide || wanted >= READ_AHEAD_BYTES) {
                this.narrow();
                let before = out.filled().len();
                match Pin::new(&mut this.inner).poll_read(cx, out) {
                    Poll::Ready(Ok(())) => {}
                    other => return other,
                }
                let got = out.filled().len() - before;
                this.wide = got == wanted && got >= WIDE_READ_MIN;
                if got == 0 {
                    this.frames.stop_lifting();
                    return Poll::Ready(Ok(()));
                }
                // Take back what starts a frame to lift, and all after it.
                let read = &out.filled()[before..];
                let mut given = 0;
                while given < got {
                    match this.frames.next(&read[given..], got - given, this.lift_max) {
                        Next::Give(n) => given += n,
                        Next::Lift { .. } | Next::NeedMore => break,
                    }
                }
                if given == got {
                    return Poll::Ready(Ok(()));
                }
                this.ahead = read[given..].to_vec();
                (this.start, this.end) = (0, got - given);
                out.set_filled(before + given);
                if given > 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            this.make_room();
            let mut wide = ReadBuf::new(&mut this.ahead[this.end..]);
            match Pin::new(&mut this.inner).poll_read(cx, &mut wide) {
                Poll::Ready(Ok(())) => {
                    let got = wide.filled().len();
                    if got == 0 {
                        // The stream ended: what is held goes to tungstenite
                        // as it is, then the end.
                        this.frames.stop_lifting();
                        if held == 0 {
                            this.narrow();
                            return Poll::Ready(Ok(()));
                        }
                        continue;
                    }
                    this.end += got;
                    // The data stopped coming (or the stream ended): once
                    // this is given, read narrow again.
                    this.wide = got > wanted;
                }
                Poll::Ready(Err(e)) => {
                    if held == 0 {
                        this.narrow();
                    }
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    // Nothing more for now: an idle link keeps no buffer
                    // (unless it holds the start of a header).
                    if held == 0 {
                        this.narrow();
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_testkit::wire::{
        binary, close, fragmented, frame, header, masked_frame, ping, text, FIN, OP_BINARY,
        OP_CONTINUATION, OP_TEXT, RSV1,
    };

    const MAX: usize = 100 * 1024;

    /// A stream of frames, each with whether it is to be lifted.
    fn mixed_frames() -> Vec<(Vec<u8>, bool)> {
        let kib = |n: usize| vec![7u8; n * 1024];
        let mut long_form = vec![FIN | OP_BINARY, 127];
        long_form.extend_from_slice(&(20u64 * 1024).to_be_bytes());
        long_form.extend_from_slice(&kib(20));
        vec![
            (text("hello"), false),
            (binary(&kib(20)), true),
            (binary(&vec![1; LIFT_MIN_BYTES as usize - 1]), false),
            (binary(&vec![2; LIFT_MIN_BYTES as usize]), true),
            (masked_frame(FIN | OP_BINARY, &kib(20), [1, 2, 3, 4]), false),
            (frame(FIN | RSV1 | OP_BINARY, &kib(20)), false),
            (ping(b"p"), false),
            (fragmented(OP_BINARY, &kib(60), 3), false),
            (frame(FIN | OP_TEXT, &kib(20)), false),
            // A fragmented message with a ping between its frames.
            (frame(OP_BINARY, &kib(20)), false),
            (ping(b"q"), false),
            (frame(FIN | OP_CONTINUATION, &kib(20)), false),
            (binary(&kib(70)), true),
            (long_form, true),
            (binary(&vec![3; MAX + 1]), false),
            (binary(&vec![4; MAX]), true),
            (binary(&[]), false),
            (close(1000, b""), false),
            (binary(&kib(20)), false),
        ]
    }

    /// Feeds `stream` to a scan as it arrives `step` bytes at a time, in
    /// calls of at most `limit` bytes (tungstenite's buffer): the bytes
    /// given, and where each lifted frame started and its payload length.
    fn scan(stream: &[u8], step: usize, limit: usize) -> (Vec<u8>, Vec<(usize, usize)>) {
        let mut frames = FrameScan::default();
        let (mut given, mut lifted) = (Vec::new(), Vec::new());
        let (mut at, mut arrived) = (0, step.min(stream.len()));
        for _ in 0..3 * stream.len() + 10 {
            if at == stream.len() {
                break;
            }
            if at == arrived {
                arrived = arrived.saturating_add(step).min(stream.len());
            }
            match frames.next(&stream[at..arrived], limit, MAX) {
                Next::Give(n) => {
                    assert!(n > 0 && n <= limit, "gave {n}");
                    given.extend_from_slice(&stream[at..at + n]);
                    at += n;
                }
                Next::Lift {
                    header_len,
                    payload_len,
                } => {
                    lifted.push((at, payload_len));
                    at += header_len + payload_len;
                    arrived = arrived.max(at);
                }
                Next::NeedMore => {
                    assert!(arrived < stream.len(), "waits for more at the end");
                    arrived = arrived.saturating_add(step).min(stream.len());
                }
            }
        }
        assert_eq!(at, stream.len(), "the scan stopped");
        (given, lifted)
    }

    #[test]
    fn only_final_unmasked_plain_binary_frames_of_lift_size_outside_fragments_before_close_are_lifted(
    ) {
        let frames = mixed_frames();
        let stream: Vec<u8> = frames.iter().flat_map(|(f, _)| f.clone()).collect();
        let mut expected_given = Vec::new();
        let mut expected_lifted = Vec::new();
        let mut at = 0;
        for (f, lift) in &frames {
            if *lift {
                let payload_len = f.len() - if f[1] == 127 { 10 } else { 4 };
                expected_lifted.push((at, payload_len));
            } else {
                expected_given.extend_from_slice(f);
            }
            at += f.len();
        }
        for step in [1, 2, 3, 7, 13, 2048, 65536, usize::MAX] {
            for limit in [1, 5, 2048, usize::MAX] {
                let (given, lifted) = scan(&stream, step, limit);
                assert_eq!(lifted, expected_lifted, "step {step}, limit {limit}");
                assert!(
                    given == expected_given,
                    "step {step}, limit {limit}: tungstenite got other bytes"
                );
            }
        }
    }

    #[test]
    fn headers_of_every_length_form_are_read_whole() {
        for (len, masked) in [
            (0, false),
            (125, true),
            (126, false),
            (65535, true),
            (65536, false),
        ] {
            let mask = masked.then_some([9, 9, 9, 9]);
            let mut stream = header(FIN | OP_TEXT, len, mask);
            stream.extend(vec![0; len as usize]);
            stream.extend(binary(&[5; 20 * 1024]));
            let (given, lifted) = scan(&stream, 1, usize::MAX);
            assert_eq!(
                lifted.len(),
                1,
                "len {len}: the frame after it was not seen"
            );
            assert_eq!(given.len(), stream.len() - 4 - 20 * 1024, "len {len}");
        }
    }

    #[test]
    fn a_frame_above_the_limits_is_left_to_tungstenite_which_fails_it() {
        let mut stream = vec![FIN | OP_BINARY, 127];
        stream.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(peek(&stream, MAX), Peek::No);
        assert_eq!(peek(&stream[..5], MAX), Peek::Incomplete);
        assert_eq!(peek(&[FIN | OP_BINARY], MAX), Peek::Incomplete);
        assert_eq!(peek(&[FIN | OP_TEXT], MAX), Peek::No);
    }

    #[test]
    fn after_a_frame_tungstenite_fails_for_nothing_is_lifted() {
        // Opcode 3 is reserved: tungstenite fails the connection there.
        let mut stream = frame(FIN | 0x3, b"x");
        stream.extend(binary(&[5; 20 * 1024]));
        for step in [1, usize::MAX] {
            let (given, lifted) = scan(&stream, step, usize::MAX);
            assert!(lifted.is_empty(), "step {step}: {lifted:?}");
            assert!(given == stream, "step {step}: tungstenite got other bytes");
        }
    }

    /// Reads `total` bytes through a ReadAhead in reads of at most `chunk`,
    /// the writer sending them in one go (nothing lifted): returns what came
    /// and the ReadAhead.
    async fn read_through(
        total: usize,
        chunk: usize,
    ) -> (Vec<u8>, ReadAhead<tokio::io::DuplexStream>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut writer, reader) = tokio::io::duplex(256 * 1024);
        let sent: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
        let to_send = sent.clone();
        let writing = tokio::spawn(async move {
            writer.write_all(&to_send).await.unwrap();
            writer.shutdown().await.unwrap();
        });
        let mut ahead = ReadAhead::new(reader, Vec::new(), 0);
        let mut got = Vec::new();
        let mut buf = vec![0u8; chunk];
        for _ in 0..total + 2 {
            let n = ahead.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            assert!(n <= chunk);
            got.extend_from_slice(&buf[..n]);
        }
        writing.await.unwrap();
        assert_eq!(got.len(), sent.len());
        assert!(got == sent, "the bytes came out of order or changed");
        (got, ahead)
    }

    #[tokio::test]
    async fn read_ahead_passes_every_byte_in_order_and_ends_with_the_stream() {
        for (total, chunk) in [
            (0, 4096),
            (10, 4096),
            (4096, 4096),
            (1 << 20, 4096),
            (300_000, 1000),
            (70_000, 100_000),
        ] {
            let (_, ahead) = read_through(total, chunk).await;
            assert!(
                ahead.ahead.is_empty(),
                "{total}/{chunk}: a buffer kept after the end"
            );
        }
    }

    #[tokio::test]
    async fn read_ahead_reads_wide_while_data_keeps_coming_and_keeps_nothing_when_idle() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut writer, reader) = tokio::io::duplex(1 << 20);
        let mut ahead = ReadAhead::new(reader, Vec::new(), 0);
        writer.write_all(&vec![1u8; 512 * 1024]).await.unwrap();
        let mut buf = [0u8; 4096];
        assert_eq!(ahead.read(&mut buf).await.unwrap(), 4096);
        assert!(ahead.wide, "a full read switches to wide reads");
        assert_eq!(ahead.read(&mut buf).await.unwrap(), 4096);
        assert_eq!(
            ahead.ahead.len(),
            READ_AHEAD_BYTES,
            "the second read went wide"
        );
        assert_eq!(ahead.end, READ_AHEAD_BYTES);
        let mut left = 512 * 1024 - 8192;
        for _ in 0..1_000 {
            if left == 0 {
                break;
            }
            left -= ahead.read(&mut buf).await.unwrap();
        }
        assert_eq!(left, 0);
        // Nothing more for now: the read is pending, and the link holds no buffer.
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(20), ahead.read(&mut buf)).await;
        assert!(pending.is_err(), "read something that was never sent");
        assert!(ahead.ahead.is_empty() && !ahead.wide);
        // A small message afterwards is read directly.
        writer.write_all(b"hello").await.unwrap();
        assert_eq!(ahead.read(&mut buf).await.unwrap(), 5);
        assert_eq!(&buf[..5], b"hello");
        assert!(ahead.ahead.is_empty() && !ahead.wide);
    }
}
