//! The channel's byte layout on the stream (CH-2, CH-4): records, and the chunks that carry a
//! message inside transport records. Pure functions over byte slices, shared by the state
//! machine, its tests and the fuzz target `channel_handshake`.
//!
//! ```text
//! stream    = record*
//! record    = len:u16 BE ‖ body            1 ≤ len ≤ 65535 (one Noise message)
//! plaintext = flag:u8 ‖ chunk              of a transport record; flag 0x00 more, 0x01 last
//! ```
//!
//! Never: accept a zero-length record, a flag other than 0 or 1, or a message that grows past
//! its limit (checked before the chunk is copied).

use super::error::ChannelError;

/// Bytes of a record's length prefix.
pub const RECORD_PREFIX_BYTES: usize = 2;
/// Largest record body: the Noise protocol's largest message.
pub const RECORD_BODY_MAX_BYTES: usize = 65_535;
/// Bytes of the Poly1305 tag that ends every transport record.
pub const TAG_BYTES: usize = 16;
/// Bytes of the flag in front of every chunk.
pub const FLAG_BYTES: usize = 1;
/// Largest chunk of a message in one transport record.
pub const CHUNK_MAX_BYTES: usize = RECORD_BODY_MAX_BYTES - TAG_BYTES - FLAG_BYTES;
/// Flag: more chunks of this message follow.
pub const FLAG_MORE: u8 = 0x00;
/// Flag: this chunk ends the message.
pub const FLAG_LAST: u8 = 0x01;

const _: () = assert!(RECORD_BODY_MAX_BYTES == u16::MAX as usize);
const _: () = assert!(CHUNK_MAX_BYTES + FLAG_BYTES + TAG_BYTES == RECORD_BODY_MAX_BYTES);

/// Splits the first whole record off `buf`: `Ok(None)` while it is incomplete, else its body
/// and the bytes it used (prefix included).
///
/// # Errors
/// [`ChannelError::Malformed`] for a zero-length record.
pub fn split_record(buf: &[u8]) -> Result<Option<(&[u8], usize)>, ChannelError> {
    let Some((prefix, rest)) = buf.split_first_chunk::<RECORD_PREFIX_BYTES>() else {
        return Ok(None);
    };
    let len = usize::from(u16::from_be_bytes(*prefix));
    if len == 0 {
        return Err(ChannelError::Malformed("zero-length record"));
    }
    Ok(rest.get(..len).map(|body| (body, RECORD_PREFIX_BYTES + len)))
}

/// Appends `body` as one record.
///
/// # Errors
/// [`ChannelError::Malformed`] if `body` is empty or over [`RECORD_BODY_MAX_BYTES`] (a bug of
/// the caller: the state machine never builds one).
pub fn put_record(out: &mut Vec<u8>, body: &[u8]) -> Result<(), ChannelError> {
    let len = u16::try_from(body.len()).map_err(|_| ChannelError::Malformed("record too long"))?;
    if len == 0 {
        return Err(ChannelError::Malformed("zero-length record"));
    }
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
}

/// The flag and chunk of a transport record's plaintext: `(last, chunk)`.
///
/// # Errors
/// [`ChannelError::Malformed`] for an empty plaintext or an unknown flag.
pub fn parse_chunk(plaintext: &[u8]) -> Result<(bool, &[u8]), ChannelError> {
    match plaintext.split_first() {
        Some((&FLAG_LAST, chunk)) => Ok((true, chunk)),
        Some((&FLAG_MORE, chunk)) => Ok((false, chunk)),
        Some(_) => Err(ChannelError::Malformed("unknown chunk flag")),
        None => Err(ChannelError::Malformed("empty transport record")),
    }
}

/// The plaintexts (flag ‖ chunk) that carry `message`: at least one (an empty message is one
/// record with flag [`FLAG_LAST`]), each chunk at most [`CHUNK_MAX_BYTES`].
pub fn chunk_plaintexts(message: &[u8]) -> Vec<Vec<u8>> {
    let count = message.len().div_ceil(CHUNK_MAX_BYTES).max(1);
    (0..count)
        .map(|i| {
            let start = i * CHUNK_MAX_BYTES;
            let end = (start + CHUNK_MAX_BYTES).min(message.len());
            let flag = if i + 1 == count { FLAG_LAST } else { FLAG_MORE };
            let mut p = Vec::with_capacity(FLAG_BYTES + end - start);
            p.push(flag);
            p.extend_from_slice(message.get(start..end).unwrap_or_default());
            p
        })
        .collect()
}

/// Reassembles chunks into messages, refusing one that grows past `max_bytes` before copying.
#[derive(Debug, Default)]
pub struct Assembler {
    buf: Vec<u8>,
}

impl Assembler {
    /// Adds one chunk: the whole message when `last`, else `None`.
    ///
    /// # Errors
    /// [`ChannelError::MessageTooLarge`] once the message would exceed `max_bytes`.
    pub fn push(
        &mut self,
        last: bool,
        chunk: &[u8],
        max_bytes: usize,
    ) -> Result<Option<Vec<u8>>, ChannelError> {
        let size_bytes = self.buf.len() + chunk.len();
        if size_bytes > max_bytes {
            return Err(ChannelError::MessageTooLarge { size_bytes, max_bytes });
        }
        self.buf.extend_from_slice(chunk);
        Ok(last.then(|| std::mem::take(&mut self.buf)))
    }

    /// Bytes of the message being assembled.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// No message is being assembled.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_whole_and_in_pieces() {
        let mut buf = Vec::new();
        put_record(&mut buf, b"abc").unwrap();
        put_record(&mut buf, &[7; 300]).unwrap();
        assert_eq!(&buf[..5], &[0, 3, b'a', b'b', b'c']);
        for cut in 0..5 {
            assert_eq!(split_record(&buf[..cut]), Ok(None));
        }
        let (body, used) = split_record(&buf).unwrap().unwrap();
        assert_eq!((body, used), (&b"abc"[..], 5));
        let (body, used) = split_record(&buf[5..]).unwrap().unwrap();
        assert_eq!((body.len(), used), (300, 302));
        assert!(split_record(&[0, 0, 1]).is_err());
        assert!(put_record(&mut buf, &[]).is_err());
        assert!(put_record(&mut buf, &vec![0; RECORD_BODY_MAX_BYTES + 1]).is_err());
    }

    #[test]
    fn chunks_cover_the_message_and_reassemble() {
        for len in [0, 1, CHUNK_MAX_BYTES - 1, CHUNK_MAX_BYTES, CHUNK_MAX_BYTES + 1, 200_000] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let plains = chunk_plaintexts(&msg);
            assert_eq!(plains.len(), len.div_ceil(CHUNK_MAX_BYTES).max(1));
            let mut a = Assembler::default();
            let mut out = None;
            for (i, p) in plains.iter().enumerate() {
                assert!(p.len() <= CHUNK_MAX_BYTES + FLAG_BYTES);
                let (last, chunk) = parse_chunk(p).unwrap();
                assert_eq!(last, i + 1 == plains.len());
                out = a.push(last, chunk, len).unwrap();
            }
            assert_eq!(out, Some(msg));
            assert!(a.is_empty());
        }
    }

    #[test]
    fn oversized_messages_and_bad_flags_are_refused() {
        let mut a = Assembler::default();
        assert_eq!(a.push(false, &[0; 10], 15), Ok(None));
        assert_eq!(
            a.push(true, &[0; 6], 15),
            Err(ChannelError::MessageTooLarge { size_bytes: 16, max_bytes: 15 })
        );
        assert_eq!(a.len(), 10, "nothing copied past the limit");
        assert!(parse_chunk(&[]).is_err());
        assert!(parse_chunk(&[2, 1]).is_err());
    }
}
