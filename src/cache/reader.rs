//! `CachedReader`: a `SourceReader` that serves shard bytes from the disk cache and fetches only
//! missing blocks (whole, single-flighted, up to `MAX_RUN_BLOCKS` per request) from the reader
//! it wraps.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use tracing::warn;

use super::{DiskCache, Lookup};
use crate::pieces::Pieces;
use crate::source::SourceModel;
use crate::vfile::{SourceReadError, SourceReader};

/// Longest run of missing blocks fetched with one request; longer runs become several
/// requests, fetched concurrently. One block: a chunk's blocks then arrive in parallel (on the
/// bench model, interleaved runs, cold Q8_0 cp 1.61 -> 1.28 s median, F16 unchanged, at 16
/// blocks per request before) and every fetched buffer is one recycled size class. A 4 MiB
/// request is still long enough that its latency is small beside its transfer, and the
/// prefetch window keeps dozens in flight.
const MAX_RUN_BLOCKS: u64 = 1;
/// Rounds of "plan, read disk, await fetches" before giving up on blocks that keep vanishing
/// (evicted or found corrupt between planning and reading).
const MAX_ATTEMPTS: usize = 3;
/// What offline mode answers for bytes that were never cached.
const OFFLINE_MISS: &str = "not in cache (offline)";

type RunFuture = Shared<BoxFuture<'static, Result<Bytes, SourceReadError>>>;

/// A block being fetched: the request for its run, and where in that run's bytes it lies.
#[derive(Clone)]
pub(crate) struct Inflight {
    run: RunFuture,
    offset: usize,
    len: usize,
}

/// Serves one model's shard bytes through the disk cache. Shards without an LFS sha256 have no
/// content key and pass straight through to `inner`.
pub struct CachedReader {
    inner: Option<Arc<dyn SourceReader>>,
    cache: Arc<DiskCache>,
    source: Arc<SourceModel>,
}

/// How one missing block will be obtained.
enum Plan {
    Held(u64, Bytes),
    Disk(u64),
    Join(u64, Inflight),
}

impl CachedReader {
    /// A reader of `source`'s shards through `cache`, fetching misses from `inner`; `inner = None`
    /// is offline mode, where a block that is not cached is an error.
    pub fn new(inner: Option<Arc<dyn SourceReader>>, cache: Arc<DiskCache>, source: Arc<SourceModel>) -> CachedReader {
        CachedReader { inner, cache, source }
    }

    async fn read_cached(&self, shard: usize, range: Range<u64>) -> Result<Pieces, SourceReadError> {
        let s = self.source.shards.get(shard).ok_or_else(|| SourceReadError::Io(format!("no shard {shard}")))?;
        if range.start > range.end || range.end > s.size {
            return Err(SourceReadError::Io(format!(
                "{}: range {}..{} outside the shard ({} bytes)",
                s.path, range.start, range.end, s.size
            )));
        }
        if range.is_empty() {
            return Ok(Pieces::default());
        }
        let Some(sha) = s.sha256.as_deref().filter(|sha| super::content_key(sha).is_some()) else {
            return match &self.inner {
                Some(inner) => inner.read_pieces(shard, range).await,
                None => Err(SourceReadError::Io(OFFLINE_MISS.into())),
            };
        };
        let bs = self.cache.block_size();
        let first = range.start / bs;
        let blocks = self.blocks(shard, sha, s.size, first..range.end.div_ceil(bs)).await?;
        let skip = (range.start - first * bs) as usize;
        Ok(Pieces::from_vec(blocks).slice(skip..skip + (range.end - range.start) as usize))
    }

    /// Whole blocks `wanted` of the shard, from disk or fetched.
    async fn blocks(
        &self,
        shard: usize,
        sha: &str,
        size: u64,
        wanted: Range<u64>,
    ) -> Result<Vec<Bytes>, SourceReadError> {
        let mut have: Vec<Option<Bytes>> = vec![None; (wanted.end - wanted.start) as usize];
        for _ in 0..MAX_ATTEMPTS {
            let missing: Vec<u64> = wanted.clone().filter(|i| have[(i - wanted.start) as usize].is_none()).collect();
            if missing.is_empty() {
                break;
            }
            let (mut disk, mut joins, mut held) = (Vec::new(), Vec::new(), Vec::new());
            for plan in self.plan(shard, sha, size, &missing)? {
                match plan {
                    Plan::Held(i, b) => {
                        have[(i - wanted.start) as usize] = Some(b);
                        held.push(i);
                    }
                    Plan::Disk(i) => disk.push(i),
                    Plan::Join(i, f) => joins.push((i, f)),
                }
            }
            self.touch_later(sha, held);
            let fetched = futures::future::join_all(joins.into_iter().map(|(i, f)| async move {
                let run = f.run.await?;
                Ok::<_, SourceReadError>((i, run.slice(f.offset..f.offset + f.len)))
            }));
            let (from_disk, fetched) = futures::join!(self.read_disk(sha, size, disk), fetched);
            for (i, b) in from_disk.into_iter().chain(fetched.into_iter().collect::<Result<Vec<_>, _>>()?) {
                have[(i - wanted.start) as usize] = Some(b);
            }
            if self.inner.is_none() && have.iter().any(Option::is_none) {
                return Err(SourceReadError::Io(OFFLINE_MISS.into()));
            }
        }
        have.into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| SourceReadError::Io(format!("{}: cache blocks kept vanishing", self.source.repo_id)))
    }

    /// Decides, under the in-flight lock, where each missing block comes from: a fetch already
    /// under way, the blocks just used, the disk, or a new fetch (up to `MAX_RUN_BLOCKS`
    /// consecutive new blocks share one request). A fetched block enters `recent` before it
    /// leaves the in-flight table, so no block is ever in neither.
    fn plan(&self, shard: usize, sha: &str, size: u64, missing: &[u64]) -> Result<Vec<Plan>, SourceReadError> {
        let mut map = self.cache.inflight.lock().map_err(|_| SourceReadError::Io("cache lock poisoned".into()))?;
        let mut plans = Vec::with_capacity(missing.len());
        let mut runs: Vec<Range<u64>> = Vec::new();
        for &i in missing {
            if let Some(f) = map.get(&(sha.to_string(), i)) {
                plans.push(Plan::Join(i, f.clone()));
            } else if let Some(b) = self.cache.recent.get(sha, i) {
                plans.push(Plan::Held(i, b));
            } else if self.inner.is_none() || self.cache.block_path(sha, i).exists() {
                plans.push(Plan::Disk(i));
            } else {
                match runs.last_mut() {
                    Some(r) if r.end == i && r.end - r.start < MAX_RUN_BLOCKS => r.end += 1,
                    _ => runs.push(i..i + 1),
                }
            }
        }
        let Some(inner) = &self.inner else { return Ok(plans) };
        let bs = self.cache.block_size();
        for run in runs {
            let bytes = run.start * bs..(run.end * bs).min(size);
            let fut = fetch_run(
                inner.clone(),
                self.cache.clone(),
                self.source.clone(),
                shard,
                sha.into(),
                run.clone(),
                bytes.clone(),
            )
            .boxed()
            .shared();
            for i in run {
                let start = i * bs;
                let f = Inflight {
                    run: fut.clone(),
                    offset: (start - bytes.start) as usize,
                    len: ((start + bs).min(size) - start) as usize,
                };
                map.insert((sha.to_string(), i), f.clone());
                plans.push(Plan::Join(i, f));
            }
        }
        Ok(plans)
    }

    /// Touches the disk files of blocks served from memory, off the async threads and without
    /// waiting: only eviction order depends on it.
    fn touch_later(&self, sha: &str, indices: Vec<u64>) {
        if indices.is_empty() {
            return;
        }
        let (cache, sha) = (self.cache.clone(), sha.to_string());
        drop(tokio::task::spawn_blocking(move || indices.into_iter().for_each(|i| cache.touch(&sha, i))));
    }

    /// Reads and verifies `indices` from disk; blocks that are gone or corrupt are left out
    /// (corrupt ones are deleted by the cache and reported here once).
    async fn read_disk(&self, sha: &str, size: u64, indices: Vec<u64>) -> Vec<(u64, Bytes)> {
        if indices.is_empty() {
            return Vec::new();
        }
        let cache = self.cache.clone();
        let sha_owned = sha.to_string();
        let bs = cache.block_size();
        let looked = tokio::task::spawn_blocking(move || {
            indices
                .into_iter()
                .map(|i| {
                    let len = ((i * bs + bs).min(size) - i * bs) as usize;
                    (i, cache.get(&sha_owned, i, len))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let mut out = Vec::with_capacity(looked.len());
        for (i, lookup) in looked {
            match lookup {
                Lookup::Hit(b) => {
                    self.cache.recent.put(sha, i, b.clone());
                    out.push((i, b));
                }
                Lookup::Miss => {}
                Lookup::Corrupt(reason) => {
                    let shard = self.source.shards.iter().find(|s| s.sha256.as_deref() == Some(sha));
                    warn!(
                        repo = %self.source.repo_id,
                        shard = shard.map_or("?", |s| s.path.as_str()),
                        block = i,
                        %reason,
                        "corrupt cache block deleted; refetching"
                    );
                }
            }
        }
        out
    }
}

impl SourceReader for CachedReader {
    fn read(&self, shard: usize, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, SourceReadError>> {
        async move { self.read_cached(shard, range).await.map(Pieces::into_contiguous) }.boxed()
    }

    fn read_pieces(&self, shard: usize, range: Range<u64>) -> BoxFuture<'_, Result<Pieces, SourceReadError>> {
        self.read_cached(shard, range).boxed()
    }
}

/// Fetches blocks `run` (bytes `bytes` of the shard) with one request and answers at once; the
/// blocks are stored by a background task that then retires their in-flight entries — in that
/// order, so a reader that finds no entry finds the file, and one that finds the entry gets the
/// fetched bytes. Disk writes are thus off the read path (a cold read runs at network speed, not
/// at disk-write speed), with at most `STORE_BUDGET_MIB` waiting for the disk.
async fn fetch_run(
    inner: Arc<dyn SourceReader>,
    cache: Arc<DiskCache>,
    source: Arc<SourceModel>,
    shard: usize,
    sha: String,
    run: Range<u64>,
    bytes: Range<u64>,
) -> Result<Bytes, SourceReadError> {
    let want = bytes.end - bytes.start;
    let result = match inner.read(shard, bytes.clone()).await {
        Ok(b) if b.len() as u64 == want => Ok(b),
        Ok(b) => Err(SourceReadError::Io(format!("{}: asked {want} bytes, got {}", source.repo_id, b.len()))),
        Err(e) => Err(e),
    };
    let Ok(data) = &result else {
        retire(&cache, &sha, run);
        return result;
    };
    // One permit per MiB waiting for the disk (a run is up to 64 MiB; the budget bounds memory).
    let mib = (want.div_ceil(1 << 20) as u32).clamp(1, super::STORE_BUDGET_MIB as u32);
    let slot = cache.stores.clone().acquire_many_owned(mib).await.ok();
    let data = data.clone();
    tokio::spawn(async move {
        let (cache2, sha2, run2, data2) = (cache.clone(), sha.clone(), run.clone(), data.clone());
        let stored = tokio::task::spawn_blocking(move || store_run(&cache2, &sha2, run2, bytes.start, &data2)).await;
        let failure = match stored {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(error) = failure {
            warn!(repo = %source.repo_id, %error, "could not store fetched blocks in the cache");
        }
        keep_recent(&cache, &sha, run.clone(), bytes.start, &data);
        retire(&cache, &sha, run);
        // Blocks of this run were protected from the evictions their own writes triggered.
        if cache.used_bytes() > cache.max_bytes() {
            let _ = tokio::task::spawn_blocking(move || cache.evict()).await;
        }
        drop(slot);
    });
    result
}

/// Puts the fetched blocks of `run` (whose bytes start at shard offset `start`) in `recent`.
fn keep_recent(cache: &DiskCache, sha: &str, run: Range<u64>, start: u64, data: &Bytes) {
    let bs = cache.block_size();
    for i in run {
        let from = (i * bs - start) as usize;
        let to = (from + bs as usize).min(data.len());
        if from < to {
            cache.recent.put(sha, i, data.slice(from..to));
        }
    }
}

fn retire(cache: &DiskCache, sha: &str, run: Range<u64>) {
    if let Ok(mut map) = cache.inflight.lock() {
        for i in run {
            map.remove(&(sha.to_string(), i));
        }
    }
}

fn store_run(cache: &DiskCache, sha: &str, run: Range<u64>, start: u64, data: &Bytes) -> Result<(), super::CacheError> {
    let bs = cache.block_size();
    for i in run {
        let from = (i * bs - start) as usize;
        let to = (from + bs as usize).min(data.len());
        if let Some(block) = data.get(from..to) {
            cache.put(sha, i, block)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "reader_tests.rs"]
mod tests;
