//! Reading an open virtual file at network speed: sequential readers (`cp`, llama.cpp's
//! `MAP_POPULATE`) get converted output produced ahead of them, in aligned chunks, many at a
//! time; random readers get exactly what covers their read.
//!
//! The file is cut into aligned output chunks of `CHUNK_SIZE`. A read that continues a stream
//! (see `stream`) takes its bytes from the chunks covering it and makes sure the chunks of the
//! stream's window ahead of it are being produced; each chunk is produced once (single flight
//! through the mount's `MemoryCache`) on a task of its own, at most `MAX_CHUNKS_IN_FLIGHT` per
//! file at a time. A chunk is `GgufFile::read_range` of its span: source rows fetched (through
//! the disk cache and the process-wide request limit of the Hub reader) and converted off the
//! async threads. The window grows while the reader keeps catching up with the chunks in
//! flight, so a fast reader soon has up to `MAX_WINDOW` in flight and a slow one costs little.

pub mod stream;

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::cache::memory::{ChunkFuture, ChunkKey, MemoryCache};
use crate::pieces::Pieces;
use crate::vfile::{GgufFile, ReadError, SourceReadError};
use stream::{StreamDetector, StreamLimits, LEFT_BEHIND};

/// Output bytes per chunk: a few source requests of about one disk-cache block each, large
/// enough that request latency is amortized, small enough that the first bytes of a stream come
/// quickly and that a window holds many chunks converting in parallel.
pub const CHUNK_SIZE: u64 = 4 << 20;
/// Prefetch distance of a new stream (mountpoint-s3 starts at about 1 MiB).
pub const INITIAL_WINDOW: u64 = 1 << 20;
/// Largest prefetch distance of one stream (further bounded by a quarter of the memory cache,
/// which then also holds chunks the reader has not consumed yet and those of other files).
pub const MAX_WINDOW: u64 = 64 << 20;
/// Chunks produced at once for one open file.
pub const MAX_CHUNKS_IN_FLIGHT: usize = 16;

/// An open virtual file read through the prefetcher.
pub struct PrefetchingFile {
    file: Arc<GgufFile>,
    id: Arc<str>,
    memory: Arc<MemoryCache>,
    streams: Mutex<StreamDetector>,
    slots: Arc<Semaphore>,
}

impl PrefetchingFile {
    /// Reads of `file` prefetched into (and served from) `memory`.
    pub fn new(file: Arc<GgufFile>, memory: Arc<MemoryCache>) -> Self {
        let max = MAX_WINDOW.min(memory.max_bytes() / 4).max(CHUNK_SIZE);
        Self::with_limits(file, memory, StreamLimits { initial: INITIAL_WINDOW, max, left_behind: LEFT_BEHIND })
    }

    /// `new` with other stream limits (tests use small files).
    pub(crate) fn with_limits(file: Arc<GgufFile>, memory: Arc<MemoryCache>, limits: StreamLimits) -> Self {
        let l = file.layout();
        let id: Arc<str> = Arc::from(format!("{}@{}/{}", l.repo_id, l.commit, l.outtype.name()));
        let streams = Mutex::new(StreamDetector::new(limits));
        Self { file, id, memory, streams, slots: Arc::new(Semaphore::new(MAX_CHUNKS_IN_FLIGHT)) }
    }

    /// The file underneath.
    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    /// Total size.
    pub fn size(&self) -> u64 {
        self.file.size()
    }

    /// Bytes `[offset, offset+len)` clamped to the file size.
    pub async fn read(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        let end = offset.saturating_add(len).min(self.size());
        if offset >= end {
            return Ok(Bytes::new());
        }
        let advice = self.streams.lock().unwrap_or_else(PoisonError::into_inner).observe(offset..end);
        let covering = offset / CHUNK_SIZE..(end - 1) / CHUNK_SIZE + 1;
        if !advice.sequential {
            if let Some(held) = self.held(covering.clone()) {
                return Ok(slice_of(held, offset - covering.start * CHUNK_SIZE, end - offset));
            }
            return self.file.read_range(offset, end - offset).await;
        }
        let needed: Vec<ChunkFuture> = covering.clone().map(|k| self.chunk(k)).collect();
        self.retire(advice.passed);
        self.prefetch(advice.ahead.start..advice.ahead.end.min(self.size()));
        if needed.iter().any(|f| f.peek().is_none()) {
            self.streams.lock().unwrap_or_else(PoisonError::into_inner).stalled(advice.stream);
        }
        let chunks = futures::future::try_join_all(needed).await?;
        Ok(slice_of(chunks, offset - covering.start * CHUNK_SIZE, end - offset))
    }

    /// Starts producing the chunks of `ahead` that are neither held nor in flight.
    fn prefetch(&self, ahead: std::ops::Range<u64>) {
        if ahead.is_empty() {
            return;
        }
        for k in ahead.start / CHUNK_SIZE..(ahead.end - 1) / CHUNK_SIZE + 1 {
            if !self.memory.contains_or_inflight(&self.key(k)) {
                // The production runs on its own task; the handle is not needed.
                drop(self.chunk(k));
            }
        }
    }

    /// Drops from memory the chunks that end inside `passed`: the stream is done with them
    /// and the kernel page cache holds what it read (a reader that comes back later gets the
    /// chunk again from the disk cache).
    fn retire(&self, passed: std::ops::Range<u64>) {
        if passed.is_empty() {
            return;
        }
        // Chunk k ends at (k + 1) * CHUNK_SIZE; those ending in (passed.start, passed.end].
        for k in passed.start / CHUNK_SIZE..passed.end / CHUNK_SIZE {
            self.memory.remove(&self.key(k));
        }
    }

    /// The chunks `range` if all are held in memory.
    fn held(&self, range: std::ops::Range<u64>) -> Option<Vec<Bytes>> {
        range.map(|k| self.memory.get(&self.key(k))).collect()
    }

    fn key(&self, index: u64) -> ChunkKey {
        ChunkKey { file: self.id.clone(), index }
    }

    /// Chunk `index`: held, in flight, or produced now.
    fn chunk(&self, index: u64) -> ChunkFuture {
        let (file, slots) = (self.file.clone(), self.slots.clone());
        let start = index * CHUNK_SIZE;
        let len = CHUNK_SIZE.min(file.size().saturating_sub(start));
        self.memory.get_or_produce(self.key(index), async move {
            let _slot = slots.acquire_owned().await.map_err(|_| ReadError::Source {
                repo: file.layout().repo_id.clone(),
                source: SourceReadError::Io("prefetch closed".into()),
            })?;
            let started = std::time::Instant::now();
            let bytes = file.read_range(start, len).await?;
            tracing::trace!(chunk = index, ms = started.elapsed().as_millis() as u64, "chunk produced");
            Ok(bytes)
        })
    }
}

/// `len` bytes starting `skip` bytes into consecutive `chunks` (shared when one chunk holds
/// them, gathered otherwise).
fn slice_of(chunks: Vec<Bytes>, skip: u64, len: u64) -> Bytes {
    let (skip, len) = (skip as usize, len as usize);
    Pieces::from_vec(chunks).slice(skip..skip + len).into_contiguous()
}

#[cfg(test)]
mod tests;
