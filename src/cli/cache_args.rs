//! Cache options shared by `mount` and `pull`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use ggufs::cache::{default_dir, DiskCache, MemoryCache, MetadataCache};

/// The source-byte cache's default cap: room for a few 7B-class models' weights.
pub const DEFAULT_CACHE_SIZE: &str = "50G";
/// `--memory-cache` default; see `ggufs::cache::DEFAULT_MEMORY_CACHE` for why.
pub const DEFAULT_MEMORY_CACHE: &str = "256M";

/// Where and how much to cache, and whether to use the network at all.
#[derive(Args, Clone)]
pub struct CacheArgs {
    /// Cache directory (default: $XDG_CACHE_HOME/ggufs or ~/.cache/ggufs).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Cap on cached source bytes, e.g. 500M, 20G (LRU eviction beyond it).
    #[arg(long, default_value = DEFAULT_CACHE_SIZE, value_parser = parse_size)]
    cache_size: u64,
    /// Do not cache: every read goes to the Hub.
    #[arg(long, conflicts_with = "offline")]
    no_cache: bool,
    /// Serve only from the cache, never touching the network (also HF_HUB_OFFLINE=1).
    #[arg(long)]
    offline: bool,
    /// Memory for converted data read ahead, e.g. 64M, 1G (mount: an LRU of converted chunks
    /// shared by all open files, each file's prefetch window is at most a quarter of it; pull: output
    /// chunks converted ahead of the writer).
    #[arg(long, default_value = DEFAULT_MEMORY_CACHE, value_parser = parse_size)]
    memory_cache: u64,
}

/// The opened caches.
pub struct Caches {
    pub disk: Arc<DiskCache>,
    pub meta: Arc<MetadataCache>,
}

impl CacheArgs {
    /// True when the network must not be used (`--offline` or `HF_HUB_OFFLINE`).
    pub fn offline(&self) -> bool {
        self.offline || ggufs::hub::offline_from_env()
    }

    /// The mount's converted-chunk LRU, sized by `--memory-cache`.
    pub fn memory_cache(&self) -> Arc<MemoryCache> {
        Arc::new(MemoryCache::new(self.memory_cache))
    }

    /// Chunks `pull` converts ahead of its writer within `--memory-cache` (at least 2 so that
    /// fetching and converting overlap, at most 16).
    pub fn pull_concurrency(&self) -> usize {
        // 64 MiB in flight already keeps the network busy (measured on a 1 GB pull: 4 and 16
        // chunks of 16 MiB took the same time); more only costs memory.
        (self.memory_cache / (4 * ggufs::pull::PULL_CHUNK)).clamp(2, 16) as usize
    }

    /// Opens the caches, or `None` with `--no-cache`.
    pub fn open(&self) -> anyhow::Result<Option<Caches>> {
        if self.no_cache {
            return Ok(None);
        }
        let dir = match &self.cache_dir {
            Some(d) => d.clone(),
            None => default_dir()?,
        };
        let disk = DiskCache::open(&dir, self.cache_size).with_context(|| format!("cache {}", dir.display()))?;
        let meta = MetadataCache::open(&dir).with_context(|| format!("cache {}", dir.display()))?;
        Ok(Some(Caches { disk: Arc::new(disk), meta: Arc::new(meta) }))
    }
}

/// Parses `123`, `500K`, `20M`, `50G`, `1T` (binary multiples).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size suffix in {s:?}")),
            };
            (&s[..i], m)
        }
        _ => (s, 1),
    };
    let n: u64 = num.trim().parse().map_err(|_| format!("not a size: {s:?}"))?;
    n.checked_mul(mult).ok_or_else(|| format!("size too large: {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("20M").unwrap(), 20 << 20);
        assert_eq!(parse_size("50g").unwrap(), 50 << 30);
        assert!(parse_size("1X").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn the_default_memory_cache_matches_the_library_default() {
        assert_eq!(parse_size(DEFAULT_MEMORY_CACHE).unwrap(), ggufs::cache::DEFAULT_MEMORY_CACHE);
    }
}
