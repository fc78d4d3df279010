//! The last few source blocks a reader obtained (fetched or read from disk), kept in memory.
//!
//! Output chunks do not line up with source blocks, so the block a chunk's source range ends
//! in is usually where the next chunk's begins. Without this, that second chunk finds the block
//! already written and retired from the in-flight table, and reads it back: from the device
//! itself, since blocks are written with direct I/O, and through a checksum pass. On the bench
//! model a cold copy did that for ~100 of ~260 blocks.

use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use lru::LruCache;

/// Blocks kept: a sequential reader needs the block before the one it is fetching; chunks
/// produced in parallel (a prefetch window) reach a few blocks further back.
pub(crate) const RECENT_BLOCKS: NonZeroUsize = NonZeroUsize::new(8).unwrap();

/// An LRU of (shard sha256, block index) → verified block bytes.
pub(crate) struct RecentBlocks {
    lru: Mutex<LruCache<(String, u64), Bytes>>,
}

impl RecentBlocks {
    /// Holds up to `blocks` blocks.
    pub(crate) fn new(blocks: NonZeroUsize) -> Self {
        Self { lru: Mutex::new(LruCache::new(blocks)) }
    }

    /// Block `index` of the shard `sha`, if held.
    pub(crate) fn get(&self, sha: &str, index: u64) -> Option<Bytes> {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner).get(&(sha.to_string(), index)).cloned()
    }

    /// Keeps `bytes` as block `index` of `sha` (bytes already verified or just fetched).
    pub(crate) fn put(&self, sha: &str, index: u64, bytes: Bytes) {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner).put((sha.to_string(), index), bytes);
    }

    /// Drops every block (a test that changes the disk underneath wants the disk read).
    #[cfg(test)]
    pub(crate) fn clear(&self) {
        self.lru.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_recent_blocks_are_kept() {
        let r = RecentBlocks::new(NonZeroUsize::new(2).unwrap());
        r.put("a", 0, Bytes::from_static(b"0"));
        r.put("a", 1, Bytes::from_static(b"1"));
        r.put("b", 1, Bytes::from_static(b"b1"));
        assert_eq!(r.get("a", 0), None, "the oldest block is dropped");
        assert_eq!(r.get("a", 1), Some(Bytes::from_static(b"1")));
        assert_eq!(r.get("b", 1), Some(Bytes::from_static(b"b1")));
        assert_eq!(r.get("b", 0), None);
    }
}
