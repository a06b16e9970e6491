//! Client data frames built whole off the runtime thread (RFC 6455 5.2,
//! 5.3): the frame of a direct send (queue::DirectWrite), and the frame of
//! a large message over plain TCP, framed and masked by its sender. Pure:
//! the wire writes them.

use std::sync::{Arc, Weak};

use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::Bytes;

/// A whole client data frame, built and masked on the sender's thread: a
/// large message's payload is copied once, straight into the frame the
/// socket takes, instead of into a message there and into tungstenite's
/// buffer again on the runtime thread (whose one core is what a stream of
/// large messages waits for). Only for plain ws:// without the outbox,
/// where the task can write the frame as it is.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct MaskedFrame {
    frame: Bytes,
    /// Where the payload starts (after the header and its mask).
    payload_at: usize,
    kind: Data,
}

impl MaskedFrame {
    /// `payload` framed as one final frame of `kind`, with a fresh random mask.
    pub fn new(kind: Data, payload: &[u8]) -> MaskedFrame {
        let frame = masked_frame(kind, payload, rand::random());
        MaskedFrame {
            payload_at: frame.len() - payload.len(),
            frame: Bytes::from(frame),
            kind,
        }
    }

    /// As `new`, in a buffer of `buffers` (one freed by an earlier frame
    /// if there is one).
    pub fn in_buffers(kind: Data, payload: &[u8], buffers: &FrameBuffers) -> MaskedFrame {
        let Some(mut buffer) = buffers.take(MAX_HEADER_BYTES + payload.len()) else {
            return MaskedFrame::new(kind, payload);
        };
        let (len, payload_at) = write_masked_frame(&mut buffer, kind, payload, rand::random());
        MaskedFrame {
            payload_at,
            frame: Bytes::from_owner(PooledFrame {
                buffer,
                len,
                pool: Arc::downgrade(&buffers.free),
            }),
            kind,
        }
    }

    pub fn payload_len(&self) -> usize {
        self.frame.len() - self.payload_at
    }

    /// The payload again (unmasked), for where the frame cannot go as it
    /// is: the outbox, a writer that cannot write past tungstenite.
    pub fn payload(&self) -> Vec<u8> {
        let mut mask = [0; 4];
        mask.copy_from_slice(&self.frame[self.payload_at - 4..self.payload_at]);
        let masked = &self.frame[self.payload_at..];
        let mut payload = vec![0; masked.len()];
        mask_into(&mut payload, masked, mask);
        payload
    }

    pub fn is_text(&self) -> bool {
        self.kind == Data::Text
    }

    /// The whole frame, as the socket takes it.
    pub fn frame(&self) -> &Bytes {
        &self.frame
    }
}

impl std::fmt::Debug for MaskedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskedFrame")
            .field("kind", &self.kind)
            .field("payload_len", &self.payload_len())
            .finish()
    }
}

/// Buffers frames masked at send are built in, each reused once the
/// frame built in it was written and dropped: a stream of large sends
/// neither pages in fresh memory for every frame nor writes to memory no
/// cache holds (the frame's bytes are read again by the socket's copy).
/// The buffer freed last is reused first, as tungstenite reuses its one
/// write buffer. At most [`FRAME_BUFFERS`] free buffers of at most
/// [`POOLED_FRAME_MAX_BYTES`] each are kept, for the client's life.
#[derive(Debug, Default)]
pub(crate) struct FrameBuffers {
    /// Buffers no frame holds, the one freed last at the end. Each is as
    /// long as its capacity, its bytes initialised (by an earlier frame or
    /// zeroed once), so that a frame is masked straight into it.
    free: Arc<parking_lot::Mutex<Vec<Vec<u8>>>>,
}

/// Enough for a window of 1 MiB sends in flight on loopback.
const FRAME_BUFFERS: usize = 4;

/// A larger frame is built in memory of its own, freed when it is written.
pub(crate) const POOLED_FRAME_MAX_BYTES: usize = 2 * 1024 * 1024;

impl FrameBuffers {
    /// A buffer of at least `len` bytes, if `len` is pooled.
    fn take(&self, len: usize) -> Option<Vec<u8>> {
        if len > POOLED_FRAME_MAX_BYTES {
            return None;
        }
        let mut buffer = self.free.lock().pop().unwrap_or_default();
        if buffer.len() < len {
            buffer.resize(len, 0);
        }
        Some(buffer)
    }

    #[cfg(test)]
    fn free_count(&self) -> usize {
        self.free.lock().len()
    }
}

/// A frame's bytes, the start of a pooled buffer; the buffer goes back to
/// its pool when the frame's last `Bytes` is dropped (if the client, which
/// owns the pool, is still there and the pool has room).
struct PooledFrame {
    buffer: Vec<u8>,
    len: usize,
    pool: Weak<parking_lot::Mutex<Vec<Vec<u8>>>>,
}

impl AsRef<[u8]> for PooledFrame {
    fn as_ref(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

impl Drop for PooledFrame {
    fn drop(&mut self) {
        let Some(pool) = self.pool.upgrade() else {
            return;
        };
        let mut free = pool.lock();
        if free.len() < FRAME_BUFFERS {
            free.push(std::mem::take(&mut self.buffer));
        }
    }
}

/// The longest frame header: 2 bytes, a 64-bit length, a mask.
pub(crate) const MAX_HEADER_BYTES: usize = 14;

/// One final client frame of `payload`, masked with `mask` (RFC 6455 5.3).
pub(crate) fn masked_frame(kind: Data, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = vec![0; MAX_HEADER_BYTES + payload.len()];
    let (len, _) = write_masked_frame(&mut frame, kind, payload, mask);
    frame.truncate(len);
    frame
}

/// Writes that frame at the start of `out` (at least [`MAX_HEADER_BYTES`]
/// longer than `payload`); returns its length and where its payload starts.
fn write_masked_frame(out: &mut [u8], kind: Data, payload: &[u8], mask: [u8; 4]) -> (usize, usize) {
    let header = FrameHeader {
        opcode: OpCode::Data(kind),
        mask: Some(mask),
        ..FrameHeader::default()
    };
    let mut rest = &mut out[..MAX_HEADER_BYTES];
    header
        .format(payload.len() as u64, &mut rest)
        .expect("a client frame header is at most 14 bytes");
    let payload_at = MAX_HEADER_BYTES - rest.len();
    let len = payload_at + payload.len();
    mask_into(&mut out[payload_at..len], payload, mask);
    (len, payload_at)
}

/// `out` = `payload` XORed with `mask` repeated, in one pass over both
/// (copying first and masking in place would go over `out` twice: a
/// megabyte, more than a cache keeps close).
fn mask_into(out: &mut [u8], payload: &[u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut out_words = out.chunks_exact_mut(8);
    let mut words = payload.chunks_exact(8);
    for (o, w) in (&mut out_words).zip(&mut words) {
        let w = u64::from_ne_bytes(w.try_into().expect("eight bytes"));
        o.copy_from_slice(&(w ^ wide).to_ne_bytes());
    }
    // The rest starts at a multiple of 8, so at the mask's first byte.
    let rest = out_words.into_remainder().iter_mut();
    for ((o, byte), m) in rest.zip(words.remainder()).zip(mask.iter().cycle()) {
        *o = byte ^ m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::Message;

    #[test]
    fn a_direct_frame_is_the_frame_tungstenite_would_write() {
        use tokio_tungstenite::tungstenite::protocol::frame::Frame;
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        // 7-bit, 16-bit and 64-bit lengths; lengths not a multiple of 4.
        for len in [0usize, 1, 5, 125, 126, 1000, 65_535, 65_536, 70_001] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            for (kind, opcode) in [
                (Data::Text, OpCode::Data(Data::Text)),
                (Data::Binary, OpCode::Data(Data::Binary)),
            ] {
                let mut theirs = Frame::message(payload.clone(), opcode, true);
                theirs.header_mut().mask = Some(mask);
                let mut expected = Vec::new();
                theirs.format(&mut expected).unwrap();
                assert_eq!(masked_frame(kind, &payload, mask), expected, "length {len}");
            }
        }
    }

    /// `masked` is one final masked frame of `kind` with `payload`.
    fn assert_frame_of(masked: &MaskedFrame, kind: Data, payload: &[u8]) {
        use std::io::Cursor;
        assert_eq!(masked.payload_len(), payload.len());
        let mut cursor = Cursor::new(&masked.frame[..]);
        let (header, parsed_len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
        assert!(header.is_final);
        assert_eq!(header.opcode, OpCode::Data(kind));
        assert!(header.mask.is_some(), "a client frame is masked");
        assert_eq!(parsed_len, payload.len() as u64);
        assert_eq!(cursor.position() as usize, masked.payload_at);
        assert_eq!(masked.frame.len(), masked.payload_at + payload.len());
        assert!(masked.payload() == payload, "the payload differs");
    }

    #[test]
    fn frames_built_in_reused_buffers_never_overwrite_a_frame_still_held() {
        let buffers = FrameBuffers::default();
        let payload = |i: usize, len: usize| -> Vec<u8> {
            (0..len).map(|j| ((i * 31 + j) % 251) as u8).collect()
        };
        let first = MaskedFrame::in_buffers(Data::Binary, &payload(1, 100_000), &buffers);
        let second = MaskedFrame::in_buffers(Data::Text, &[b'x'; 70_000], &buffers);
        let first_at = first.frame().as_ptr();
        // A clone (a frame the task is still writing) keeps the buffer.
        let first_again = first.clone();
        drop(first);
        assert_eq!(buffers.free_count(), 0);
        drop(first_again);
        assert_eq!(buffers.free_count(), 1);
        // The first buffer is free again: the third frame is built in it,
        // over the first's bytes.
        let third = MaskedFrame::in_buffers(Data::Binary, &payload(3, 90_000), &buffers);
        assert_eq!(
            third.frame().as_ptr(),
            first_at,
            "a free buffer was not reused"
        );
        assert_frame_of(&second, Data::Text, &[b'x'; 70_000]);
        assert_frame_of(&third, Data::Binary, &payload(3, 90_000));
        // A longer frame in a buffer that was shorter: it grows.
        drop(third);
        let fourth = MaskedFrame::in_buffers(Data::Binary, &payload(4, 200_000), &buffers);
        assert_frame_of(&fourth, Data::Binary, &payload(4, 200_000));
        // A shorter frame in a longer buffer: only its own bytes.
        drop(fourth);
        let fifth = MaskedFrame::in_buffers(Data::Text, &[b'y'; 17_000], &buffers);
        assert_frame_of(&fifth, Data::Text, &[b'y'; 17_000]);
        assert_eq!(
            fifth.frame().len(),
            4 + 17_000 + 4,
            "2-byte header, 16-bit length, mask"
        );
        // More frames held than the pool keeps: each is whole, and once
        // all are dropped the pool keeps FRAME_BUFFERS of them.
        let held: Vec<MaskedFrame> = (0..2 * FRAME_BUFFERS)
            .map(|i| MaskedFrame::in_buffers(Data::Binary, &payload(10 + i, 20_000 + i), &buffers))
            .collect();
        for (i, frame) in held.iter().enumerate() {
            assert_frame_of(frame, Data::Binary, &payload(10 + i, 20_000 + i));
        }
        assert_frame_of(&second, Data::Text, &[b'x'; 70_000]);
        assert_frame_of(&fifth, Data::Text, &[b'y'; 17_000]);
        drop((held, second, fifth));
        assert_eq!(buffers.free_count(), FRAME_BUFFERS);
        // A frame above the pooled size is built in memory of its own.
        let huge =
            MaskedFrame::in_buffers(Data::Binary, &vec![7; POOLED_FRAME_MAX_BYTES], &buffers);
        assert_frame_of(&huge, Data::Binary, &vec![7; POOLED_FRAME_MAX_BYTES]);
        assert_eq!(buffers.free_count(), FRAME_BUFFERS);
        // A frame that outlives its client's pool is still whole.
        let orphan = MaskedFrame::in_buffers(Data::Binary, &payload(5, 30_000), &buffers);
        drop(buffers);
        assert_frame_of(&orphan, Data::Binary, &payload(5, 30_000));
    }

    #[test]
    fn a_masked_frame_parses_as_one_final_frame_and_unmasks_to_its_payload() {
        for len in [16 * 1024 + 1, 65_535, 65_536, 100_003] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
            for kind in [Data::Text, Data::Binary] {
                let payload = match kind {
                    Data::Text => vec![b'a' + (len % 26) as u8; len],
                    _ => payload.clone(),
                };
                let masked = MaskedFrame::new(kind, &payload);
                assert_frame_of(&masked, kind, &payload);
                assert_ne!(&masked.frame[masked.payload_at..], &payload[..]);
                let expected = match kind {
                    Data::Text => Message::Text(String::from_utf8(payload).unwrap().into()),
                    _ => Message::Binary(payload.into()),
                };
                assert_eq!(Message::Masked(masked).unmasked(), expected);
            }
        }
    }

    #[test]
    fn masking_eight_bytes_at_a_time_is_the_rfcs_xor() {
        let mask = [0x01, 0x80, 0xfe, 0x5a];
        for len in 0..40 {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let expected: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            // Into a buffer that held other bytes (a reused one).
            let mut out = vec![0xa5; len];
            mask_into(&mut out, &data, mask);
            assert_eq!(out, expected, "into, length {len}");
        }
    }
}
