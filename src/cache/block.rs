//! The on-disk format of one cached block: a one-page header naming what the block is and
//! carrying a checksum, then the data (page-aligned in the file, so it can be written with
//! direct I/O straight from the page-aligned buffer it was fetched into). The header lets a read reject a file that landed under the wrong
//! name; the checksum (over the header fields and the data) rejects torn writes and bit rot.
//!
//! XXH3-128 rather than SHA-256: the checksum guards against accidents (torn writes, bit rot,
//! a file under the wrong name), not adversaries — whoever can write the cache directory can
//! write anything — and at ~10+ GB/s per core it costs a cold read almost nothing, where
//! SHA-256 took a tenth of the daemon's CPU while copying a model at network speed. The data
//! follows the header unchanged, so a block is written from the fetched buffer without a copy.

use xxhash_rust::xxh3::Xxh3;

/// Identifies the format; bump when the layout changes (old blocks then read as corrupt and are
/// refetched).
const MAGIC: &[u8; 8] = b"GGUFSBK2";
/// Magic, shard content key (32 bytes), block index, data length: what the checksum covers
/// besides the data.
const NAME_LEN: usize = 8 + 32 + 8 + 8;
const CHECKSUM_LEN: usize = 16;
/// The header: the name fields, the checksum, zeros to the end of the page.
pub(super) const HEADER_LEN: usize = crate::pagebuf::PAGE;

/// Bytes of the file that stores `data_len` bytes of data.
pub(super) fn file_len(data_len: usize) -> usize {
    HEADER_LEN + data_len
}

fn name(key: &[u8; 32], index: u64, data_len: usize) -> [u8; NAME_LEN] {
    let mut out = [0u8; NAME_LEN];
    out[..8].copy_from_slice(MAGIC);
    out[8..40].copy_from_slice(key);
    out[40..48].copy_from_slice(&index.to_le_bytes());
    out[48..].copy_from_slice(&(data_len as u64).to_le_bytes());
    out
}

fn checksum(name: &[u8; NAME_LEN], data: &[u8]) -> [u8; CHECKSUM_LEN] {
    let mut h = Xxh3::new();
    h.update(name);
    h.update(data);
    h.digest128().to_le_bytes()
}

/// The header of block `index` of the shard whose content key is `key`; the file is this
/// header followed by `data`.
pub(super) fn header(key: &[u8; 32], index: u64, data: &[u8]) -> Vec<u8> {
    let name = name(key, index, data.len());
    let mut out = vec![0u8; HEADER_LEN];
    out[..NAME_LEN].copy_from_slice(&name);
    out[NAME_LEN..NAME_LEN + CHECKSUM_LEN].copy_from_slice(&checksum(&name, data));
    out
}

/// Checks `file` is block `index` of `key` holding exactly `expected_len` bytes with a matching
/// checksum; on success the data's position in `file`, otherwise why it is unusable.
pub(super) fn verify(file: &[u8], key: &[u8; 32], index: u64, expected_len: usize) -> Result<usize, String> {
    if file.len() != file_len(expected_len) {
        return Err(format!("file is {} bytes, expected {}", file.len(), file_len(expected_len)));
    }
    let name = name(key, index, expected_len);
    if file[..NAME_LEN] != name {
        return Err("header names another block".into());
    }
    if file[NAME_LEN + CHECKSUM_LEN..HEADER_LEN].iter().any(|&b| b != 0) {
        return Err("header padding is not zero".into());
    }
    if file[NAME_LEN..NAME_LEN + CHECKSUM_LEN] != checksum(&name, &file[HEADER_LEN..]) {
        return Err("checksum mismatch".into());
    }
    Ok(HEADER_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn encode(key: &[u8; 32], index: u64, data: &[u8]) -> Vec<u8> {
        [&header(key, index, data)[..], data].concat()
    }

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
