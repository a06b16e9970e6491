//! Client data frames built whole off the runtime thread (RFC 6455 5.2,
//! 5.3): the frame of a direct send (queue::DirectWrite), and the frame of
//! a large message over plain TCP, framed and masked by its sender. Pure:
//! the wire writes them.

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

/// One final client frame of `payload`, masked with `mask` (RFC 6455 5.3).
pub(crate) fn masked_frame(kind: Data, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let header = FrameHeader {
        opcode: OpCode::Data(kind),
        mask: Some(mask),
        ..FrameHeader::default()
    };
    let len = payload.len() as u64;
    let mut frame = Vec::with_capacity(header.len(len) + payload.len());
    header
        .format(len, &mut frame)
        .expect("a frame header always fits a Vec");
    let start = frame.len();
    frame.extend_from_slice(payload);
    apply_mask(&mut frame[start..], mask);
    frame
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

    #[test]
    fn a_masked_frame_parses_as_one_final_frame_and_unmasks_to_its_payload() {
        use std::io::Cursor;
        for len in [16 * 1024 + 1, 65_535, 65_536, 100_003] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 13 + 1) as u8).collect();
            for kind in [Data::Text, Data::Binary] {
                let payload = match kind {
                    Data::Text => vec![b'a' + (len % 26) as u8; len],
                    _ => payload.clone(),
                };
                let masked = MaskedFrame::new(kind, &payload);
                assert_eq!(masked.payload_len(), len);
                let mut cursor = Cursor::new(&masked.frame[..]);
                let (header, parsed_len) = FrameHeader::parse(&mut cursor).unwrap().unwrap();
                assert!(header.is_final);
                assert_eq!(header.opcode, OpCode::Data(kind));
                assert!(header.mask.is_some(), "a client frame is masked");
                assert_eq!(parsed_len, len as u64);
                assert_eq!(cursor.position() as usize, masked.payload_at);
                assert_ne!(&masked.frame[masked.payload_at..], &payload[..]);
                assert_eq!(masked.payload(), payload);
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
