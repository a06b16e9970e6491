//! Client data frames built whole off the runtime thread (RFC 6455 5.2,
//! 5.3): the frame of a direct send (queue::DirectWrite), and the frame of
//! a large message over plain TCP, framed and masked by its sender. Pure:
//! the wire writes them.

use bytes::{BufMut, BytesMut};
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

    /// As `new`, in one of `buffers` if one is free again.
    pub fn in_buffers(kind: Data, payload: &[u8], buffers: &FrameBuffers) -> MaskedFrame {
        let Some(mut buffer) = buffers.take(MAX_HEADER_BYTES + payload.len()) else {
            return MaskedFrame::new(kind, payload);
        };
        let payload_at = put_masked_frame(&mut buffer, kind, payload, rand::random());
        let frame = buffer.split().freeze();
        buffers.give_back(buffer);
        MaskedFrame {
            payload_at,
            frame,
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
        let mut payload = self.frame[self.payload_at..].to_vec();
        apply_mask(&mut payload, mask);
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

/// Buffers frames masked at send are built in, each reused once every
/// frame built in it was written and dropped: a stream of large sends
/// neither pages in fresh memory for every frame nor copies into memory
/// no cache holds (the frame's bytes are read again by the socket's copy).
/// Kept for the client's life: at most [`FRAME_BUFFERS`] of at most
/// [`POOLED_FRAME_MAX_BYTES`] each, as tungstenite keeps its write buffer at
/// the size of the largest frame it wrote.
#[derive(Debug, Default)]
pub(crate) struct FrameBuffers {
    /// Each the empty end of a buffer whose frames were split off it.
    tails: parking_lot::Mutex<Vec<BytesMut>>,
}

/// Enough for a window of 1 MiB sends in flight on loopback: with 4, 91 %
/// of the bench's sends found a buffer free again, with 3, 75 %.
const FRAME_BUFFERS: usize = 4;

/// A larger frame is built in memory of its own, freed when it is written.
pub(crate) const POOLED_FRAME_MAX_BYTES: usize = 2 * 1024 * 1024;

impl FrameBuffers {
    /// A buffer with room for `len` bytes at its start, if `len` is pooled
    /// and one is free (or may be added).
    fn take(&self, len: usize) -> Option<BytesMut> {
        if len > POOLED_FRAME_MAX_BYTES {
            return None;
        }
        let mut tails = self.tails.lock();
        if let Some(i) = tails.iter_mut().position(|tail| tail.try_reclaim(len)) {
            return Some(tails.swap_remove(i));
        }
        (tails.len() < FRAME_BUFFERS).then(|| BytesMut::with_capacity(len))
    }

    /// `tail`: a buffer taken, after its frame was split off.
    fn give_back(&self, tail: BytesMut) {
        self.tails.lock().push(tail);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.tails.lock().len()
    }
}

/// The longest frame header: 2 bytes, a 64-bit length, a mask.
pub(crate) const MAX_HEADER_BYTES: usize = 14;

/// One final client frame of `payload`, masked with `mask` (RFC 6455 5.3).
pub(crate) fn masked_frame(kind: Data, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(MAX_HEADER_BYTES + payload.len());
    put_masked_frame(&mut frame, kind, payload, mask);
    frame
}

/// Appends that frame to `out`; returns where in `out` its payload starts.
fn put_masked_frame<B: BufMut + AsMut<[u8]>>(
    out: &mut B,
    kind: Data,
    payload: &[u8],
    mask: [u8; 4],
) -> usize {
    let header = FrameHeader {
        opcode: OpCode::Data(kind),
        mask: Some(mask),
        ..FrameHeader::default()
    };
    let mut bytes = [0; MAX_HEADER_BYTES];
    let mut rest = &mut bytes[..];
    header
        .format(payload.len() as u64, &mut rest)
        .expect("a client frame header is at most 14 bytes");
    let header_len = MAX_HEADER_BYTES - rest.len();
    out.put_slice(&bytes[..header_len]);
    let payload_at = out.as_mut().len();
    out.put_slice(payload);
    apply_mask(&mut out.as_mut()[payload_at..], mask);
    payload_at
}

/// XORs `bytes` with `mask` repeated (RFC 6455 5.3), eight bytes at a time.
fn apply_mask(bytes: &mut [u8], mask: [u8; 4]) {
    let [a, b, c, d] = mask;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = bytes.chunks_exact_mut(8);
    for word in &mut words {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    // The rest starts at a multiple of 8, so at the mask's first byte.
    for (byte, m) in words.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= m;
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
        drop(first);
        // The first buffer is free again: the third frame is built in it.
        let third = MaskedFrame::in_buffers(Data::Binary, &payload(3, 90_000), &buffers);
        assert_eq!(
            third.frame().as_ptr(),
            first_at,
            "a free buffer was not reused"
        );
        assert_frame_of(&second, Data::Text, &[b'x'; 70_000]);
        assert_frame_of(&third, Data::Binary, &payload(3, 90_000));
        // Too long for the free room of any: a buffer of its own, pooled.
        let fourth = MaskedFrame::in_buffers(Data::Binary, &payload(4, 200_000), &buffers);
        assert_frame_of(&fourth, Data::Binary, &payload(4, 200_000));
        assert_eq!(buffers.len(), 3);
        // While all are held, more frames than buffers: the pool stays bounded.
        let held: Vec<MaskedFrame> = (0..2 * FRAME_BUFFERS)
            .map(|i| MaskedFrame::in_buffers(Data::Binary, &payload(10 + i, 20_000 + i), &buffers))
            .collect();
        assert_eq!(buffers.len(), FRAME_BUFFERS);
        for (i, frame) in held.iter().enumerate() {
            assert_frame_of(frame, Data::Binary, &payload(10 + i, 20_000 + i));
        }
        assert_frame_of(&second, Data::Text, &[b'x'; 70_000]);
        assert_frame_of(&third, Data::Binary, &payload(3, 90_000));
        // A frame above the pooled size is built in memory of its own.
        drop((held, second, third, fourth));
        let huge =
            MaskedFrame::in_buffers(Data::Binary, &vec![7; POOLED_FRAME_MAX_BYTES], &buffers);
        assert_frame_of(&huge, Data::Binary, &vec![7; POOLED_FRAME_MAX_BYTES]);
        // Every frame dropped: every buffer is free again.
        let mut tails = buffers.tails.lock();
        assert!(tails.iter_mut().all(|tail| tail.try_reclaim(20_000)));
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
            let mut masked = data.clone();
            apply_mask(&mut masked, mask);
            let expected: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(masked, expected, "length {len}");
        }
    }
}
