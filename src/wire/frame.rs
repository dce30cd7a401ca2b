//! The native frame codec: `u32` big-endian length, one type byte, payload.
//!
//! Every native soquete protocol is a sequence of these frames after a short
//! preamble (see `docs/protocol.md`). This module knows nothing of what the
//! type bytes mean; `wire::chat` does. No I/O here: `decode` takes a buffer
//! and returns `Ok(None)` when it needs more bytes, and the maximum length
//! is checked before anything is reserved.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;

/// Default largest frame body (type byte + payload) a peer may send: 64 KiB.
/// Costs at most this much buffer per connection while a frame is in flight.
pub const DEFAULT_MAX_FRAME: usize = 64 * 1024;

/// One decoded frame: its type byte and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// What the payload is; meaning defined by the protocol using the codec.
    pub kind: u8,
    /// The payload, without the length prefix or type byte.
    pub payload: Bytes,
}

/// Why a byte stream is not a valid frame sequence.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// The length prefix announces more than the configured maximum.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLong { len: usize, max: usize },
    /// A length prefix of zero: every frame has at least its type byte.
    #[error("empty frame (length 0)")]
    Empty,
}

/// Splits a byte stream into [`Frame`]s and writes frames back.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    /// Largest accepted body (type byte + payload), checked before reserving.
    max_frame: usize,
}

impl FrameCodec {
    /// A codec that rejects frames whose body exceeds `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        Self { max_frame }
    }

    /// The configured maximum body length.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Takes one frame off the front of `src`, or `Ok(None)` if incomplete.
    pub fn decode_frame(&self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < LEN_BYTES {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len == 0 {
            return Err(FrameError::Empty);
        }
        if len > self.max_frame {
            return Err(FrameError::TooLong {
                len,
                max: self.max_frame,
            });
        }
        let total = LEN_BYTES + len;
        if src.len() < total {
            // Reserve only what this (bounded) frame still needs.
            src.reserve(total - src.len());
            return Ok(None);
        }
        src.advance(LEN_BYTES);
        let kind = src.get_u8();
        let payload = src.split_to(len - 1).freeze();
        Ok(Some(Frame { kind, payload }))
    }
}

/// Appends one frame (`kind` + `payload`) to `dst`.
pub fn encode_frame(kind: u8, payload: &[u8], dst: &mut BytesMut) {
    dst.reserve(LEN_BYTES + 1 + payload.len());
    dst.put_u32((payload.len() + 1) as u32);
    dst.put_u8(kind);
    dst.put_slice(payload);
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        self.decode_frame(src)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: Frame, dst: &mut BytesMut) -> Result<(), Self::Error> {
        if item.payload.len() + 1 > self.max_frame {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                FrameError::TooLong {
                    len: item.payload.len() + 1,
                    max: self.max_frame,
                },
            ));
        }
        encode_frame(item.kind, &item.payload, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_stream() -> (Vec<u8>, Vec<Frame>) {
        let frames = vec![
            Frame {
                kind: 1,
                payload: Bytes::from_static(b"hello"),
            },
            Frame {
                kind: 0x82,
                payload: Bytes::new(),
            },
            Frame {
                kind: 7,
                payload: Bytes::from(vec![0xAB; 300]),
            },
        ];
        let mut out = BytesMut::new();
        for f in &frames {
            encode_frame(f.kind, &f.payload, &mut out);
        }
        (out.to_vec(), frames)
    }

    #[test]
    fn decodes_when_split_at_every_byte_boundary() {
        let (bytes, frames) = sample_stream();
        let codec = FrameCodec::new(DEFAULT_MAX_FRAME);
        for cut in 0..=bytes.len() {
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in [&bytes[..cut], &bytes[cut..]] {
                buf.extend_from_slice(part);
                while let Some(f) = codec.decode_frame(&mut buf).unwrap() {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "cut at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn decodes_when_fed_one_byte_at_a_time() {
        let (bytes, frames) = sample_stream();
        let codec = FrameCodec::new(DEFAULT_MAX_FRAME);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in bytes {
            buf.extend_from_slice(&[b]);
            while let Some(f) = codec.decode_frame(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn oversized_length_is_rejected_before_allocating() {
        let codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&[0xFF, 0xFF, 0xFF, 0xFF, 1][..]);
        let cap_before = buf.capacity();
        assert_eq!(
            codec.decode_frame(&mut buf),
            Err(FrameError::TooLong {
                len: 0xFFFF_FFFF,
                max: 1024
            })
        );
        assert_eq!(buf.capacity(), cap_before);
    }

    #[test]
    fn zero_length_is_an_error() {
        let codec = FrameCodec::new(1024);
        let mut buf = BytesMut::from(&[0, 0, 0, 0][..]);
        assert_eq!(codec.decode_frame(&mut buf), Err(FrameError::Empty));
    }

    #[test]
    fn frame_at_exact_limit_is_accepted() {
        let codec = FrameCodec::new(10);
        let mut buf = BytesMut::new();
        encode_frame(3, &[0; 9], &mut buf);
        assert_eq!(
            codec.decode_frame(&mut buf).unwrap().unwrap().payload.len(),
            9
        );
    }
}
