use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::cache::block;
use crate::source::{RepoFiles, Shard};

const SHA: &str = "ab00000000000000000000000000000000000000000000000000000000000001";
const BS: u64 = 1024;
const SIZE: u64 = 10 * BS + 100;

/// An in-memory shard that records every range asked of it.
struct Fake {
    data: Vec<u8>,
    calls: Mutex<Vec<Range<u64>>>,
    delay: Duration,
}

impl Fake {
    fn new(delay: Duration) -> Arc<Fake> {
        let data = (0..SIZE).map(|i| (i * 7 % 251) as u8).collect();
        Arc::new(Fake { data, calls: Mutex::new(Vec::new()), delay })
    }

    fn take_calls(&self) -> Vec<Range<u64>> {
        std::mem::take(&mut self.calls.lock().unwrap())
    }
}

impl SourceReader for Fake {
    fn read(&self, _shard: usize, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, SourceReadError>> {
        async move {
            self.calls.lock().unwrap().push(range.clone());
            tokio::time::sleep(self.delay).await;
            Ok(Bytes::copy_from_slice(&self.data[range.start as usize..range.end as usize]))
        }
        .boxed()
    }
}

fn source(sha: Option<&str>) -> Arc<SourceModel> {
    Arc::new(SourceModel {
        repo_id: "org/model".into(),
        commit: "c".repeat(40),
        files: RepoFiles::new(),
        shards: vec![Shard { path: "model.safetensors".into(), size: SIZE, sha256: sha.map(String::from) }],
        tensors: Vec::new(),
    })
}

fn cache(dir: &std::path::Path, max: u64) -> Arc<DiskCache> {
    Arc::new(DiskCache::open_with_block_size(dir, max, BS).unwrap())
}

fn reader(fake: &Arc<Fake>, cache: &Arc<DiskCache>) -> CachedReader {
    CachedReader::new(Some(fake.clone() as Arc<dyn SourceReader>), cache.clone(), source(Some(SHA)))
}

/// Reads `range`, then waits for the background writer, so the disk shows what the read stored.
async fn read(r: &CachedReader, range: Range<u64>) -> Bytes {
    let bytes = r.read(0, range).await.unwrap();
    r.cache.wait_for_stores().await;
    bytes
}

#[tokio::test]
async fn reads_return_the_source_bytes_and_a_second_pass_makes_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Duration::ZERO);
    let r = reader(&fake, &cache(dir.path(), u64::MAX));
    for range in [0..1, 5..3000, 1023..1025, SIZE - 1..SIZE, 0..SIZE, 4096..4096] {
        assert_eq!(read(&r, range.clone()).await.as_ref(), &fake.data[range.start as usize..range.end as usize]);
    }
    assert!(!fake.take_calls().is_empty());
    let again = reader(&fake, &cache(dir.path(), u64::MAX));
    assert_eq!(read(&again, 0..SIZE).await.as_ref(), fake.data.as_slice());
    assert_eq!(read(&again, 700..9000).await.as_ref(), &fake.data[700..9000]);
    assert_eq!(fake.take_calls(), Vec::<Range<u64>>::new(), "a cached shard was fetched again");
}

#[tokio::test]
async fn missing_blocks_are_fetched_whole_and_clamped_to_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Duration::ZERO);
    let r = reader(&fake, &cache(dir.path(), u64::MAX));
    read(&r, 1500..3500).await;
    let mut calls = fake.take_calls();
    calls.sort_by_key(|c| c.start);
    assert_eq!(calls, vec![BS..2 * BS, 2 * BS..3 * BS, 3 * BS..4 * BS], "blocks 1-3, one request each");
    read(&r, 0..5000).await;
    assert_eq!(fake.take_calls(), vec![0..BS, 4 * BS..5 * BS], "only the two missing blocks");
    read(&r, SIZE - 10..SIZE).await;
    assert_eq!(fake.take_calls(), vec![10 * BS..SIZE], "the last block ends at the shard's end");
}

#[tokio::test]
async fn out_of_range_reads_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Duration::ZERO);
    let r = reader(&fake, &cache(dir.path(), u64::MAX));
    assert!(r.read(0, SIZE - 1..SIZE + 1).await.is_err());
    assert!(r.read(1, 0..1).await.is_err());
    assert!(fake.take_calls().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_of_a_missing_block_fetch_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Duration::from_millis(100));
    let r = Arc::new(reader(&fake, &cache(dir.path(), u64::MAX)));
    let tasks: Vec<_> = (0..8u64)
        .map(|k| {
            let r = r.clone();
            tokio::spawn(async move { r.read(0, 2 * BS + k * 10..2 * BS + k * 10 + 50).await.unwrap() })
        })
        .collect();
    for (k, t) in tasks.into_iter().enumerate() {
        let start = (2 * BS + k as u64 * 10) as usize;
        assert_eq!(t.await.unwrap().as_ref(), &fake.data[start..start + 50]);
    }
    assert_eq!(fake.take_calls(), vec![2 * BS..3 * BS]);
}

#[tokio::test]
async fn offline_serves_cached_blocks_and_refuses_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Duration::ZERO);
    let c = cache(dir.path(), u64::MAX);
    read(&reader(&fake, &c), 0..2 * BS).await;
    let offline = CachedReader::new(None, c, source(Some(SHA)));
    assert_eq!(read(&offline, 10..2000).await.as_ref(), &fake.data[10..2000]);
    let err = offline.read(0, 2000..2 * BS + 1).await.unwrap_err();
    assert_eq!(err, SourceReadError::Io("not in cache (offline)".into()));
}

#[tokio::test]
async fn shards_without_a_content_key_pass_through_uncached() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Duration::ZERO);
    for sha in [None, Some("not-a-sha"), Some("../../../../etc/passwd")] {
        let c = cache(dir.path(), u64::MAX);
        let r = CachedReader::new(Some(fake.clone() as Arc<dyn SourceReader>), c.clone(), source(sha));
        for _ in 0..2 {
            assert_eq!(read(&r, 100..200).await.as_ref(), &fake.data[100..200]);
        }
        assert_eq!(fake.take_calls(), vec![100..200, 100..200], "{sha:?}");
        assert_eq!(c.used_bytes(), 0);
        let offline = CachedReader::new(None, c, source(sha));
        assert!(offline.read(0, 0..1).await.is_err());
    }
}

#[tokio::test]
async fn a_corrupt_block_is_deleted_and_refetched_never_served() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Duration::ZERO);
    let c = cache(dir.path(), u64::MAX);
    let r = reader(&fake, &c);
    read(&r, 0..3 * BS).await;
    fake.take_calls();
    let path = c.block_path(SHA, 1);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[block::HEADER_LEN + 5] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    c.recent.clear(); // as in a new process: the disk copy is all there is
    assert_eq!(read(&r, 0..3 * BS).await.as_ref(), &fake.data[..3 * BS as usize]);
    assert_eq!(fake.take_calls(), vec![BS..2 * BS], "only the corrupt block is refetched");
    assert!(matches!(c.get(SHA, 1, BS as usize), Lookup::Hit(_)), "the refetched block is stored again");
    std::fs::write(&path, &bytes[..100]).unwrap(); // torn
    c.recent.clear();
    assert_eq!(read(&r, BS..BS + 10).await.as_ref(), &fake.data[BS as usize..BS as usize + 10]);
    assert_eq!(fake.take_calls(), vec![BS..2 * BS]);
}

#[tokio::test]
async fn eviction_keeps_the_cache_under_its_cap_dropping_least_recently_used_first() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Duration::ZERO);
    let cap = 4 * block::file_len(BS as usize) as u64;
    let c = cache(dir.path(), cap);
    let r = reader(&fake, &c);
    let pause = || tokio::time::sleep(Duration::from_millis(20));
    for i in 0..4 {
        read(&r, i * BS..i * BS + 1).await;
        pause().await;
    }
    read(&r, 0..1).await; // block 0 is now the most recently used of the four
    pause().await;
    read(&r, 5 * BS..5 * BS + 1).await;
    let on_disk = |i: u64| c.block_path(SHA, i).exists();
    assert!(on_disk(0) && on_disk(5), "recently used blocks were evicted");
    assert!(!on_disk(1), "the least recently used block survived");
    assert!(c.used_bytes() <= cap);
    for i in 0..SIZE / BS {
        read(&r, i * BS..i * BS + 1).await;
        let total: u64 =
            (0..=SIZE / BS).filter_map(|j| std::fs::metadata(c.block_path(SHA, j)).ok()).map(|m| m.len()).sum();
        assert!(total <= cap, "cache holds {total} > cap {cap}");
    }
}

#[tokio::test]
async fn the_cache_is_private_to_the_user() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("nested/ggufs");
    let fake = Fake::new(Duration::ZERO);
    let c = cache(&root, u64::MAX);
    read(&reader(&fake, &c), 0..1).await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    let block = c.block_path(SHA, 0);
    assert_eq!(mode(&block), 0o600);
    assert_eq!(mode(block.parent().unwrap()), 0o700);
    assert_eq!(mode(&root.join("lock")), 0o600);
}

/// Fails its first request, then serves like `Fake`.
struct FailsOnce {
    fake: Arc<Fake>,
    failed: Mutex<bool>,
}

impl SourceReader for FailsOnce {
    fn read(&self, shard: usize, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, SourceReadError>> {
        let fail = !std::mem::replace(&mut *self.failed.lock().unwrap(), true);
        if fail {
            return async { Err(SourceReadError::Io("boom".into())) }.boxed();
        }
        self.fake.read(shard, range)
    }
}

#[tokio::test]
async fn a_failed_fetch_is_reported_stores_nothing_and_is_retried_by_the_next_read() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Duration::ZERO);
    let c = cache(dir.path(), u64::MAX);
    let inner = Arc::new(FailsOnce { fake: fake.clone(), failed: Mutex::new(false) });
    let r = CachedReader::new(Some(inner as Arc<dyn SourceReader>), c.clone(), source(Some(SHA)));
    assert_eq!(r.read(0, 0..10).await.unwrap_err(), SourceReadError::Io("boom".into()));
    assert!(c.inflight.lock().unwrap().is_empty(), "a failed fetch left in-flight entries");
    assert!(!c.block_path(SHA, 0).exists());
    assert_eq!(read(&r, 0..10).await.as_ref(), &fake.data[..10]);
    assert_eq!(fake.take_calls(), vec![0..BS]);
}

#[tokio::test]
async fn the_next_read_of_a_block_just_used_is_served_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(Duration::ZERO);
    let c = cache(dir.path(), u64::MAX);
    let r = reader(&fake, &c);
    read(&r, BS - 10..BS + 10).await; // a chunk ending inside block 1
    fake.take_calls();
    // The next chunk starts inside block 1: neither the disk nor the Hub is asked for it.
    std::fs::remove_file(c.block_path(SHA, 1)).unwrap();
    assert_eq!(read(&r, BS + 10..BS + 30).await.as_ref(), &fake.data[BS as usize + 10..BS as usize + 30]);
    assert!(fake.take_calls().is_empty(), "a block held in memory was fetched again");
}
