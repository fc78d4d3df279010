//! A persistent disk cache of SOURCE bytes (safetensors shard data), so a model read once is
//! served from disk afterwards, across files of the same repo, restarts, and `--offline`.
//!
//! Blocks are keyed by content: (LFS sha256 of the shard, block index). A new commit that keeps a
//! shard unchanged therefore reuses its blocks, and no key can ever go stale. Each block is one
//! file `<dir>/blocks/bs<block size>/<sha[..2]>/<sha>/<index>`, written to a temp name and renamed
//! (readers never see a partial block) and checked against its digest on every read. The size
//! cap is enforced by LRU over file mtimes (reads touch them), under an `flock` on `<dir>/lock`
//! so two daemons can share a directory. `meta` adds the repo descriptions `--offline` needs.

mod block;
pub mod memory;
mod meta;
mod open;
mod reader;
mod recent;

use std::collections::HashMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use tracing::{debug, warn};

use crate::mapped::Mapped;

pub use memory::{MemoryCache, DEFAULT_MEMORY_CACHE};
pub use meta::{fetch_source_cached, FetchCachedError, MetadataCache};
pub use open::{open_file_cached, CachedProvider, OpenCachedError};
pub use reader::CachedReader;

/// Block size: 4 MiB. Large enough that a block's transfer time dominates the Hub's per-request
/// latency (~50-100 ms at typical CDN speeds) and that a 15 GB model is only ~3,600 files; small
/// enough that a random read of a few KB costs at most 8 MiB of download and that one safetensors
/// row run (≤ 8 MiB in `vfile`) spans at most three blocks.
pub const BLOCK_SIZE: u64 = 4 << 20;
/// Largest block size `open_with_block_size` accepts (bounds the memory one block needs).
pub const MAX_BLOCK_SIZE: u64 = 64 << 20;
/// MiB of fetched blocks that may wait for the disk at once (the memory the background writer
/// may hold; a fetch answers only once its blocks fit). Three blocks: measured on a 1 GB cold
/// copy with a 64 MiB memory cache, 12 MiB gave a lower peak RSS (266-279 vs 279-328 MiB) and
/// no slower copy than 32 MiB, since direct-I/O block writes keep up with the network.
pub(crate) const STORE_BUDGET_MIB: usize = 12;
/// Eviction frees down to this fraction of the cap, so it does not rescan on every write.
const EVICT_TARGET_PERCENT: u64 = 90;
/// Temp files older than this were left by a writer that died; eviction removes them.
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);
const TEMP_MARKER: &str = ".tmp.";

/// Why the cache could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no cache directory: neither $XDG_CACHE_HOME nor $HOME is set")]
    NoDefaultDir,
    #[error("cache block size {0} is not between 1 and {MAX_BLOCK_SIZE}")]
    BadBlockSize(u64),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io { path: path.to_path_buf(), source }
}

/// Where the cache lives unless the user says otherwise: `$XDG_CACHE_HOME/ggufs`, else
/// `~/.cache/ggufs` (the XDG base-directory convention).
pub fn default_dir() -> Result<PathBuf, CacheError> {
    let xdg = std::env::var_os("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute());
    let home = || std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".cache"));
    xdg.or_else(home).map(|base| base.join("ggufs")).ok_or(CacheError::NoDefaultDir)
}

/// What looking a block up found.
#[derive(Debug)]
pub enum Lookup {
    /// The verified data.
    Hit(Bytes),
    /// No such block.
    Miss,
    /// The file was unusable (torn, corrupt, misnamed) and has been deleted.
    Corrupt(String),
}

/// A directory of content-keyed source blocks with a size cap.
pub struct DiskCache {
    root: PathBuf,
    blocks_dir: PathBuf,
    block_size: u64,
    max_bytes: u64,
    /// Approximate bytes in `blocks_dir` (exact after each eviction scan).
    used: AtomicU64,
    lock_file: File,
    evicting: Mutex<()>,
    temp_counter: AtomicU64,
    /// Blocks being fetched right now (single flight), shared by every reader of this cache.
    pub(crate) inflight: Mutex<HashMap<(String, u64), reader::Inflight>>,
    /// Fetched runs waiting to be written (bounds the memory they hold).
    pub(crate) stores: Arc<tokio::sync::Semaphore>,
    /// Blocks just fetched or read, for the next chunk that starts inside them.
    pub(crate) recent: recent::RecentBlocks,
}

impl DiskCache {
    /// Opens (creating, mode 0700) the cache at `dir`, holding at most about `max_bytes` of blocks.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<DiskCache, CacheError> {
        Self::open_with_block_size(dir, max_bytes, BLOCK_SIZE)
    }

    /// Like `open` with another block size (tests, tuning). Blocks of different sizes live in
    /// separate subdirectories, so changing it never misreads old blocks.
    pub fn open_with_block_size(dir: &Path, max_bytes: u64, block_size: u64) -> Result<DiskCache, CacheError> {
        if block_size == 0 || block_size > MAX_BLOCK_SIZE {
            return Err(CacheError::BadBlockSize(block_size));
        }
        make_private_dir(dir)?;
        let blocks_dir = dir.join("blocks").join(format!("bs{block_size}"));
        make_private_dir(&blocks_dir)?;
        let lock_path = dir.join("lock");
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io_err(&lock_path))?;
        let cache = DiskCache {
            root: dir.to_path_buf(),
            blocks_dir,
            block_size,
            max_bytes,
            used: AtomicU64::new(0),
            lock_file,
            evicting: Mutex::new(()),
            temp_counter: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            stores: Arc::new(tokio::sync::Semaphore::new(STORE_BUDGET_MIB)),
            recent: recent::RecentBlocks::new(recent::RECENT_BLOCKS),
        };
        cache.refresh_usage();
        Ok(cache)
    }

    /// Waits until every fetched block handed to the background writer is on disk (or failed):
    /// what a process that is about to exit (`pull`) calls so its blocks are not lost.
    pub async fn wait_for_stores(&self) {
        if let Ok(all) = self.stores.acquire_many(STORE_BUDGET_MIB as u32).await {
            drop(all);
        }
    }

    /// The cache directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Bytes per block (the last block of a shard is shorter).
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// The size cap.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Bytes of block files on disk, as last counted (other daemons' writes show after an eviction).
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The file of block `index` of the shard with LFS sha256 `sha` (64 lowercase hex).
    pub fn block_path(&self, sha: &str, index: u64) -> PathBuf {
        self.blocks_dir.join(sha.get(..2).unwrap_or("__")).join(sha).join(format!("{index:010}"))
    }

    /// Block `index` of shard `sha`, which must hold `len` bytes; verified, and touched so LRU
    /// eviction sees the access. An unusable file is deleted.
    pub fn get(&self, sha: &str, index: u64, len: usize) -> Lookup {
        let Some(key) = content_key(sha) else { return Lookup::Miss };
        let path = self.block_path(sha, index);
        let Ok(file) = File::open(&path) else { return Lookup::Miss };
        let bytes = match read_block_file(&file, block::file_len(len)) {
            Ok(b) => b,
            Err(e) => return self.discard(&path, format!("read failed: {e}")),
        };
        match block::verify(&bytes, &key, index, len) {
            Ok(at) => {
                // Best effort: a failed touch only makes this block look older to eviction.
                let _ = file.set_modified(SystemTime::now());
                Lookup::Hit(bytes.slice(at..at + len))
            }
            Err(reason) => self.discard(&path, reason),
        }
    }

    /// Marks block `index` of `sha` used now, for a read served from memory (`recent`), so
    /// that LRU eviction ranks it as if it had been read from disk. Best effort.
    pub(crate) fn touch(&self, sha: &str, index: u64) {
        if let Ok(file) = File::open(self.block_path(sha, index)) {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    fn discard(&self, path: &Path, reason: String) -> Lookup {
        if let Err(e) = std::fs::remove_file(path) {
            debug!(path = %path.display(), error = %e, "could not delete a bad cache block");
        }
        Lookup::Corrupt(reason)
    }

    /// Stores block `index` of shard `sha` atomically (temp file, then rename), then evicts if
    /// the cache is over its cap.
    pub fn put(&self, sha: &str, index: u64, data: &[u8]) -> Result<(), CacheError> {
        let Some(key) = content_key(sha) else { return Ok(()) };
        let path = self.block_path(sha, index);
        let dir = path.parent().unwrap_or(&self.blocks_dir);
        make_private_dir(dir)?;
        let temp = dir.join(format!(
            "{index:010}{TEMP_MARKER}{}.{}",
            std::process::id(),
            self.temp_counter.fetch_add(1, Ordering::Relaxed)
        ));
        let header = block::header(&key, index, data);
        // No fsync: a block torn by a crash fails its checksum and is refetched, which is cheaper
        // than syncing every 4 MiB on the read path.
        if let Err(e) = crate::direct_io::write_new_file(&temp, &[&header, data]) {
            let _ = std::fs::remove_file(&temp);
            return Err(CacheError::Io { path: temp, source: e });
        }
        if let Err(e) = std::fs::rename(&temp, &path) {
            let _ = std::fs::remove_file(&temp);
            return Err(CacheError::Io { path, source: e });
        }
        let written = block::file_len(data.len()) as u64;
        let used = self.used.fetch_add(written, Ordering::Relaxed) + written;
        if used > self.max_bytes {
            self.evict();
        }
        Ok(())
    }

    /// If the cache is over its cap, deletes least recently used blocks until it is under (with
    /// some slack).
    /// Blocks being fetched and temp files still being written are never touched.
    pub fn evict(&self) {
        // One evictor per process at a time; a waiter that finds the cache already freed returns.
        let _guard = self.evicting.lock().unwrap_or_else(|p| p.into_inner());
        if self.used.load(Ordering::Relaxed) <= self.max_bytes {
            return;
        }
        let _flock = FlockGuard::exclusive(&self.lock_file);
        // Blocks stored while this runs add to `used` themselves; only the difference between
        // the scan and the count taken just before it is applied at the end, so that their
        // additions are never overwritten (which let the cache end over its cap).
        let counted = self.used.load(Ordering::Relaxed);
        let mut files = self.scan();
        let protected: Vec<PathBuf> = match self.inflight.lock() {
            Ok(m) => m.keys().map(|(sha, i)| self.block_path(sha, *i)).collect(),
            Err(_) => Vec::new(),
        };
        let mut total: u64 = files.iter().map(|f| f.size).sum();
        let target = self.max_bytes / 100 * EVICT_TARGET_PERCENT;
        files.sort_by(|a, b| (a.modified, &a.path).cmp(&(b.modified, &b.path)));
        let mut removed = 0usize;
        for f in files {
            if total <= target {
                break;
            }
            if protected.contains(&f.path) {
                continue;
            }
            match std::fs::remove_file(&f.path) {
                Ok(()) => {
                    total -= f.size;
                    removed += 1;
                    if let Some(parent) = f.path.parent() {
                        let _ = std::fs::remove_dir(parent); // only succeeds once empty
                    }
                }
                Err(e) => debug!(path = %f.path.display(), error = %e, "eviction could not delete"),
            }
        }
        if total >= counted {
            self.used.fetch_add(total - counted, Ordering::Relaxed);
        } else {
            let _ = self
                .used
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| Some(u.saturating_sub(counted - total)));
        }
        debug!(removed, total, max = self.max_bytes, "cache eviction");
    }

    /// Recounts the bytes on disk (other daemons' writes included).
    pub fn refresh_usage(&self) {
        let used = self.scan().iter().map(|f| f.size).sum();
        self.used.store(used, Ordering::Relaxed);
    }

    /// Every block file with its size and last access; removes stale temp files on the way.
    fn scan(&self) -> Vec<BlockFile> {
        let mut out = Vec::new();
        let now = SystemTime::now();
        for prefix in read_dir_paths(&self.blocks_dir) {
            for shard_dir in read_dir_paths(&prefix) {
                for path in read_dir_paths(&shard_dir) {
                    let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
                    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    let is_temp = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains(TEMP_MARKER));
                    if is_temp {
                        if now.duration_since(modified).is_ok_and(|age| age > STALE_TEMP_AGE) {
                            let _ = std::fs::remove_file(&path);
                        }
                    } else if meta.is_file() {
                        out.push(BlockFile { path, size: meta.len(), modified });
                    }
                }
            }
        }
        out
    }
}

struct BlockFile {
    path: PathBuf,
    size: u64,
    modified: SystemTime,
}

fn read_dir_paths(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) => Vec::new(),
    }
}

/// The binary content key of a well-formed LFS sha256 (64 lowercase hex digits); anything else
/// is not used as a path or key.
pub(crate) fn content_key(sha: &str) -> Option<[u8; 32]> {
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(sha, &mut key).ok()?;
    Some(key)
}

/// Creates `dir` and its missing parents with mode 0700 and makes sure `dir` itself is 0700:
/// cached model bytes and metadata (gated repos included) are the user's alone.
pub(crate) fn make_private_dir(dir: &Path) -> Result<(), CacheError> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_err(dir))?;
    let mode = std::fs::metadata(dir).map_err(io_err(dir))?.permissions().mode() & 0o777;
    if mode != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    }
    Ok(())
}

/// Writes a new file with mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(io_err(path))?;
    if let Err(e) = f.write_all(bytes) {
        let _ = std::fs::remove_file(path);
        return Err(CacheError::Io { path: path.to_path_buf(), source: e });
    }
    Ok(())
}

/// Replaces `path` with `bytes` atomically (0600 temp file in the same directory, then rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = path.with_file_name(format!(
        "{name}{TEMP_MARKER}{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    write_private(&temp, bytes)?;
    std::fs::rename(&temp, path).map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        CacheError::Io { path: path.to_path_buf(), source: e }
    })
}

/// Holds an `flock` on the cache's lock file until dropped, serializing eviction across the
/// daemons that share one directory.
struct FlockGuard<'a>(&'a File);

impl<'a> FlockGuard<'a> {
    fn exclusive(file: &'a File) -> Option<Self> {
        // SAFETY: flock on a valid, open descriptor owned by `file` for the guard's lifetime.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc != 0 {
            warn!(error = %std::io::Error::last_os_error(), "cache lock failed; evicting without it");
            return None;
        }
        Some(FlockGuard(file))
    }
}

impl Drop for FlockGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: as above; unlocking a lock this guard holds.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// A block file's bytes, mapped when it has exactly the expected length (`Mapped` explains why
/// that is safe); any other length is returned as read, for `verify` to report.
fn read_block_file(file: &File, expected: usize) -> std::io::Result<Bytes> {
    let size = file.metadata()?.len();
    if size == expected as u64 && expected > 0 {
        return Ok(Mapped::first_bytes(file, expected)?.freeze());
    }
    // One byte more than a good block holds is enough to tell it is too long.
    let mut bytes = Vec::new();
    file.take(expected as u64 + 1).read_to_end(&mut bytes)?;
    Ok(Bytes::from(bytes))
}

#[cfg(test)]
mod tests;
