//! A small in-memory LRU of CONVERTED output chunks, shared by every open file of a mount.
//!
//! It exists for the prefetcher: chunks produced ahead of a reader wait here until read, and
//! concurrent readers of the same chunk (mmap faults on several threads, two handles of one
//! file) share one production (single flight). It is deliberately small: what was already
//! served lives in the kernel page cache, and source bytes live in the disk cache. A chunk a
//! sequential stream has left behind is removed at once rather than aged out, so that a
//! streaming copy recycles a few chunks' buffers instead of filling the whole cache with
//! fresh memory it will never read again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use lru::LruCache;

use crate::vfile::ReadError;

/// Default cap (`--memory-cache`): 256 MiB holds the largest prefetch window (64 MiB) of four
/// files read at once, a fraction of the RAM of any machine that runs a model it reads.
pub const DEFAULT_MEMORY_CACHE: u64 = 256 << 20;

/// Which chunk: the virtual file (repo, commit, output type) and the chunk index in it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChunkKey {
    pub file: Arc<str>,
    pub index: u64,
}

/// A chunk being produced or already there; awaiting it never starts work twice.
pub type ChunkFuture = Shared<BoxFuture<'static, Result<Bytes, ReadError>>>;

/// The converted-chunk LRU with its in-flight table.
pub struct MemoryCache {
    max_bytes: u64,
    inner: Mutex<Inner>,
}

struct Inner {
    lru: LruCache<ChunkKey, Bytes>,
    used: u64,
    inflight: HashMap<ChunkKey, ChunkFuture>,
}

impl MemoryCache {
    /// A cache holding at most `max_bytes` of finished chunks (0 disables keeping any).
    pub fn new(max_bytes: u64) -> Self {
        let inner = Inner { lru: LruCache::unbounded(), used: 0, inflight: HashMap::new() };
        Self { max_bytes, inner: Mutex::new(inner) }
    }

    /// The cap.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes of finished chunks held now.
    pub fn used_bytes(&self) -> u64 {
        self.lock().used
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The finished chunk `key`, if held (and marks it recently used).
    pub fn get(&self, key: &ChunkKey) -> Option<Bytes> {
        self.lock().lru.get(key).cloned()
    }

    /// Drops chunk `key` if held: its reader is done with it (see `PrefetchingFile`), and its
    /// buffer is better recycled for the next chunk than kept until the LRU reaches it.
    pub fn remove(&self, key: &ChunkKey) {
        let mut inner = self.lock();
        if let Some(old) = inner.lru.pop(key) {
            inner.used -= old.len() as u64;
        }
    }

    /// Whether `key` is held or being produced.
    pub fn contains_or_inflight(&self, key: &ChunkKey) -> bool {
        let inner = self.lock();
        inner.lru.contains(key) || inner.inflight.contains_key(key)
    }

    /// Keeps `bytes` as chunk `key`, dropping least recently used chunks beyond the cap.
    pub fn insert(&self, key: ChunkKey, bytes: Bytes) {
        let mut inner = self.lock();
        self.put_locked(&mut inner, key, bytes);
    }

    fn put_locked(&self, inner: &mut Inner, key: ChunkKey, bytes: Bytes) {
        let len = bytes.len() as u64;
        if len > self.max_bytes {
            return;
        }
        if let Some(old) = inner.lru.put(key, bytes) {
            inner.used -= old.len() as u64;
        }
        inner.used += len;
        while inner.used > self.max_bytes {
            match inner.lru.pop_lru() {
                Some((_, old)) => inner.used -= old.len() as u64,
                None => break,
            }
        }
    }

    /// Chunk `key`: held, joined if in flight, or produced by `produce` on a tokio task of its
    /// own (so it completes and is kept even if every waiter goes away). Must be called inside a
    /// tokio runtime.
    pub fn get_or_produce<F>(self: &Arc<Self>, key: ChunkKey, produce: F) -> ChunkFuture
    where
        F: Future<Output = Result<Bytes, ReadError>> + Send + 'static,
    {
        let mut inner = self.lock();
        if let Some(b) = inner.lru.get(&key) {
            return futures::future::ready(Ok(b.clone())).boxed().shared();
        }
        if let Some(f) = inner.inflight.get(&key) {
            return f.clone();
        }
        let cache = self.clone();
        let task_key = key.clone();
        // The chunk's source reads are counted for the file whose read asked for it first.
        let scope = crate::stats::current_file();
        let task = tokio::spawn(async move {
            let result = crate::stats::maybe_in_file(scope, produce).await;
            // One critical section: a chunk is always either in flight or held (or dropped),
            // so a concurrent request never starts a second production in between.
            let mut inner = cache.lock();
            inner.inflight.remove(&task_key);
            if let Ok(bytes) = &result {
                cache.put_locked(&mut inner, task_key, bytes.clone());
            }
            drop(inner);
            result
        });
        let shared = async move {
            task.await.unwrap_or_else(|e| {
                Err(ReadError::Source {
                    repo: String::new(),
                    source: crate::vfile::SourceReadError::Io(format!("chunk task failed: {e}")),
                })
            })
        }
        .boxed()
        .shared();
        inner.inflight.insert(key, shared.clone());
        shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(i: u64) -> ChunkKey {
        ChunkKey { file: Arc::from("org/m@c/F16"), index: i }
    }

    #[test]
    fn least_recently_used_chunks_go_first_and_the_cap_holds() {
        let c = MemoryCache::new(10);
        c.insert(key(0), Bytes::from(vec![0u8; 4]));
        c.insert(key(1), Bytes::from(vec![1u8; 4]));
        assert!(c.get(&key(0)).is_some()); // 1 is now the oldest
        c.insert(key(2), Bytes::from(vec![2u8; 4]));
        assert!(c.get(&key(1)).is_none());
        assert!(c.get(&key(0)).is_some() && c.get(&key(2)).is_some());
        assert_eq!(c.used_bytes(), 8);
        c.insert(key(3), Bytes::from(vec![3u8; 11]));
        assert!(c.get(&key(3)).is_none(), "a chunk larger than the cap is not kept");
        assert_eq!(c.used_bytes(), 8);
        c.remove(&key(0));
        c.remove(&key(0));
        assert!(c.get(&key(0)).is_none());
        assert_eq!(c.used_bytes(), 4, "a removed chunk's bytes are no longer counted");
    }

    #[test]
    fn concurrent_requests_for_one_chunk_produce_it_once() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let c = Arc::new(MemoryCache::new(1 << 20));
        let runs = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let futs: Vec<ChunkFuture> = (0..8)
                .map(|_| {
                    let runs = runs.clone();
                    c.get_or_produce(key(7), async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        Ok(Bytes::from_static(b"chunk"))
                    })
                })
                .collect();
            for f in futs {
                assert_eq!(f.await.unwrap(), Bytes::from_static(b"chunk"));
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        });
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(c.get(&key(7)), Some(Bytes::from_static(b"chunk")));
        assert!(!c.lock().inflight.contains_key(&key(7)));
    }
}
