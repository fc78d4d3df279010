//! The disk cache end to end through the fake Hub: a second read of a virtual file costs no data
//! request, corrupt blocks are refetched, offline mode serves whole files with the Hub gone,
//! random reads do not over-fetch, eviction honours the cap, and the cache is private.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ggufs::cache::{open_file_cached, DiskCache, MetadataCache, BLOCK_SIZE};
use ggufs::hub::HubClient;
use ggufs::plan::OutType;
use ggufs::vfile::GgufFile;
use ggufs_fakehub::LogEntry;
use support::*;

const REPO: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Opens `repo` as `t` through caches at `dir` (`client = None`: offline).
fn open(
    rt: &tokio::runtime::Runtime,
    client: Option<Arc<HubClient>>,
    dir: &Path,
    disk: Arc<DiskCache>,
    repo: &str,
    t: OutType,
) -> GgufFile {
    let meta = MetadataCache::open(dir).unwrap();
    rt.block_on(open_file_cached(client, disk, &meta, repo, "main", t)).unwrap_or_else(|e| panic!("{repo}: {e}"))
}

fn whole(rt: &tokio::runtime::Runtime, f: &GgufFile) -> Vec<u8> {
    rt.block_on(f.read_range(0, f.size())).expect("read whole file").to_vec()
}

fn golden_sha(repo: &str, t: OutType) -> String {
    golden(repo, t.name())["file"]["sha256"].as_str().unwrap().to_string()
}

fn data_requests(log: &[LogEntry]) -> Vec<&LogEntry> {
    log.iter().filter(|e| e.listener == "cdn" || e.range.is_some()).collect()
}

fn range_len(e: &LogEntry) -> u64 {
    let spec = e.range.as_deref().and_then(|r| r.strip_prefix("bytes=")).expect("ranged request");
    let (a, b) = spec.split_once('-').unwrap();
    b.parse::<u64>().unwrap() - a.parse::<u64>().unwrap() + 1
}

/// Ranged CDN reads (data and safetensors headers alike), as byte counts.
fn fetched_bytes(log: &[LogEntry]) -> u64 {
    log.iter().filter(|e| e.listener == "cdn" && e.range.is_some()).map(range_len).sum()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        }
        out.push(p);
    }
    out
}

fn block_files(dir: &Path) -> Vec<PathBuf> {
    files_under(&dir.join("blocks")).into_iter().filter(|p| p.is_file()).collect()
}

#[test]
fn a_second_read_through_the_cache_makes_no_data_request() {
    let hub = start_hub();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let client = Arc::new(client(&hub));
    let first = open(
        &rt,
        Some(client.clone()),
        dir.path(),
        Arc::new(DiskCache::open(dir.path(), u64::MAX).unwrap()),
        REPO,
        OutType::F16,
    );
    assert_eq!(sha256_hex(&whole(&rt, &first)), golden_sha(REPO, OutType::F16));
    assert!(fetched_bytes(&hub.take_log()) > 0);
    // A new cache instance on the same directory, as after a restart; another output type too.
    for t in [OutType::F16, OutType::Q8_0] {
        let disk = Arc::new(DiskCache::open(dir.path(), u64::MAX).unwrap());
        let again = open(&rt, Some(client.clone()), dir.path(), disk, REPO, t);
        assert_eq!(sha256_hex(&whole(&rt, &again)), golden_sha(REPO, t));
        let log = hub.take_log();
        let data = data_requests(&log);
        assert!(data.is_empty(), "{t:?}: the cached repo was fetched again: {data:?}");
    }
}

#[test]
fn a_corrupt_block_is_detected_and_refetched() {
    let hub = start_hub();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let client = Arc::new(client(&hub));
    let disk = Arc::new(DiskCache::open(dir.path(), u64::MAX).unwrap());
    whole(&rt, &open(&rt, Some(client.clone()), dir.path(), disk, REPO, OutType::F16));
    let blocks = block_files(dir.path());
    assert!(blocks.len() >= 2, "expected several blocks: {blocks:?}");
    let victim = &blocks[blocks.len() / 2];
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(victim, &bytes).unwrap();
    hub.take_log();
    let disk = Arc::new(DiskCache::open(dir.path(), u64::MAX).unwrap());
    let f = open(&rt, Some(client), dir.path(), disk, REPO, OutType::F16);
    assert_eq!(sha256_hex(&whole(&rt, &f)), golden_sha(REPO, OutType::F16), "corrupt bytes were served");
    let log = hub.take_log();
    let reads: Vec<u64> = log.iter().filter(|e| e.listener == "cdn" && e.range.is_some()).map(range_len).collect();
    assert_eq!(reads.len(), 1, "exactly the corrupt block is refetched: {log:?}");
    assert!(reads[0] <= BLOCK_SIZE);
    assert_ne!(std::fs::read(victim).unwrap(), bytes, "the block file was not replaced");
}

#[test]
fn offline_mode_reads_whole_files_with_the_hub_gone() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let repo = "openai-community/gpt2";
    {
        let hub = start_hub();
        let disk = Arc::new(DiskCache::open(dir.path(), u64::MAX).unwrap());
        whole(&rt, &open(&rt, Some(Arc::new(client(&hub))), dir.path(), disk, repo, OutType::Q8_0));
    } // the fake Hub stops here
    for t in [OutType::Q8_0, OutType::F32] {
        let disk = Arc::new(DiskCache::open(dir.path(), u64::MAX).unwrap());
        let f = open(&rt, None, dir.path(), disk, repo, t);
        assert_eq!(sha256_hex(&whole(&rt, &f)), golden_sha(repo, t), "{t:?}");
    }
    let meta = MetadataCache::open(dir.path()).unwrap();
    let disk = Arc::new(DiskCache::open(dir.path(), u64::MAX).unwrap());
    let err =
        rt.block_on(open_file_cached(None, disk, &meta, REPO, "main", OutType::F16)).err().expect("uncached repo");
    assert!(err.to_string().contains(REPO), "unclear error: {err}");
}

/// A tiny deterministic generator for offsets.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 11
    }
}

#[test]
fn random_reads_fetch_at_most_twice_what_they_return_plus_one_block() {
    let hub = start_hub();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let repo = "Qwen/Qwen2.5-0.5B-Instruct"; // bf16 source, F16 output: one source byte per output byte
    let block = 64 << 10;
    let disk = Arc::new(DiskCache::open_with_block_size(dir.path(), u64::MAX, block).unwrap());
    let f = open(&rt, Some(Arc::new(client(&hub))), dir.path(), disk, repo, OutType::F16);
    let header = f.layout().header.len() as u64;
    hub.take_log();
    let (mut returned, mut fetched) = (0u64, 0u64);
    let mut rng = Lcg(11);
    for _ in 0..40 {
        let off = header + rng.next() % (f.size() - header);
        let len = 1 + rng.next() % 200_000;
        returned += rt.block_on(f.read_range(off, len)).unwrap().len() as u64;
        fetched += fetched_bytes(&hub.take_log());
    }
    assert!(fetched <= 2 * returned + block, "fetched {fetched} source bytes to return {returned}");
    assert!(fetched > 0);
}

#[test]
fn eviction_keeps_the_cache_under_its_cap_and_reads_stay_right() {
    let hub = start_hub();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let cap = 3 << 20;
    let disk = Arc::new(DiskCache::open_with_block_size(dir.path(), cap, 1 << 20).unwrap());
    let f = open(&rt, Some(Arc::new(client(&hub))), dir.path(), disk.clone(), REPO, OutType::F16);
    assert_eq!(sha256_hex(&whole(&rt, &f)), golden_sha(REPO, OutType::F16));
    // Blocks are stored (and evictions run) in the background after the read is answered;
    // blocks still being fetched are never evicted, so the cap holds once the stores are done.
    rt.block_on(disk.wait_for_stores());
    let on_disk: u64 = block_files(dir.path()).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert!(on_disk <= cap, "cache holds {on_disk} bytes, cap {cap}");
    assert!(on_disk > 0);
    assert!(disk.used_bytes() <= cap);
}

#[test]
fn cache_directories_are_0700_and_files_0600() {
    let hub = start_hub();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ggufs");
    let disk = Arc::new(DiskCache::open(&root, u64::MAX).unwrap());
    rt.block_on(open(&rt, Some(Arc::new(client(&hub))), &root, disk, REPO, OutType::F16).read_range(1 << 20, 4096))
        .unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    let all = files_under(&root);
    assert!(all.iter().filter(|p| p.is_file()).count() >= 3, "expected lock, blocks and metadata: {all:?}");
    for p in all {
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p), want, "{}", p.display());
    }
}
