//! The on-disk format of one cached block: a header naming what the block is, the data, and a
//! SHA-256 over both. The header lets a read reject a file that landed under the wrong name;
//! the digest rejects torn writes and bit rot.
//!
//! SHA-256 rather than CRC32: `sha2` is already a dependency, uses the CPU's SHA extensions
//! where present (GB/s, far above what the Hub delivers), and a strong digest also makes a
//! block written for different content impossible to accept by accident.

use sha2::{Digest, Sha256};

/// Identifies the format; bump when the layout changes (old blocks then read as corrupt).
const MAGIC: &[u8; 8] = b"GGUFSBK1";
/// Magic, shard content key (32 bytes), block index, data length.
pub(super) const HEADER_LEN: usize = 8 + 32 + 8 + 8;
const DIGEST_LEN: usize = 32;

/// Bytes of the file that stores `data_len` bytes of data.
pub(super) fn file_len(data_len: usize) -> usize {
    HEADER_LEN + data_len + DIGEST_LEN
}

/// The file contents for block `index` of the shard whose content key is `key`.
pub(super) fn encode(key: &[u8; 32], index: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(file_len(data.len()));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(key);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&(data.len() as u64).to_le_bytes());
    out.extend_from_slice(data);
    let digest = Sha256::digest(&out);
    out.extend_from_slice(&digest);
    out
}

/// Checks `file` is block `index` of `key` holding exactly `expected_len` bytes with a matching
/// digest; on success the data's position in `file`, otherwise why it is unusable.
pub(super) fn verify(file: &[u8], key: &[u8; 32], index: u64, expected_len: usize) -> Result<usize, String> {
    if file.len() != file_len(expected_len) {
        return Err(format!("file is {} bytes, expected {}", file.len(), file_len(expected_len)));
    }
    let (body, digest) = file.split_at(file.len() - DIGEST_LEN);
    if Sha256::digest(body).as_slice() != digest {
        return Err("checksum mismatch".into());
    }
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(key);
    header.extend_from_slice(&index.to_le_bytes());
    header.extend_from_slice(&(expected_len as u64).to_le_bytes());
    if body.get(..HEADER_LEN) != Some(header.as_slice()) {
        return Err("header names another block".into());
    }
    Ok(HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn a_block_round_trips() {
        let f = encode(&KEY, 3, b"hello");
        let at = verify(&f, &KEY, 3, 5).unwrap();
        assert_eq!(&f[at..at + 5], b"hello");
    }

    #[test]
    fn any_flipped_byte_is_rejected() {
        let f = encode(&KEY, 3, b"hello world");
        for i in 0..f.len() {
            let mut bad = f.clone();
            bad[i] ^= 0x40;
            assert!(verify(&bad, &KEY, 3, 11).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn truncated_or_misnamed_blocks_are_rejected() {
        let f = encode(&KEY, 3, b"hello world");
        assert!(verify(&f[..f.len() - 1], &KEY, 3, 11).is_err());
        assert!(verify(&f, &KEY, 4, 11).is_err());
        assert!(verify(&f, &[8; 32], 3, 11).is_err());
        assert!(verify(&f, &KEY, 3, 10).is_err());
    }
}
