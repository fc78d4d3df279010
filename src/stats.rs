//! Per-file read counters for `.ggufs/status` and `ggufs status`: what a user needs to see why
//! a load is slow (served vs fetched bytes, cache hits, requests in flight, errors).
//!
//! The read path records without threading a handle through every layer: the catalog runs
//! each read of a virtual file inside a task-local scope naming the file's counters, and the
//! layers below (the Hub reader, the HF-cache reader) record into whatever scope they run in.
//! Work spawned onto other tasks records nothing (it is not attributed, never misattributed).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Counters of one virtual file, shared by every open of it.
#[derive(Debug, Default)]
pub struct FileStats {
    served: AtomicU64,
    reads: AtomicU64,
    source_reads: AtomicU64,
    cache_hits: AtomicU64,
    fetched: AtomicU64,
    fetch_requests: AtomicU64,
    hf_cache_bytes: AtomicU64,
    in_flight: AtomicU64,
    errors: AtomicU64,
}

/// A point-in-time copy of `FileStats`, as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FileSnapshot {
    /// Bytes of the virtual file returned to readers.
    pub bytes_served: u64,
    /// Read calls answered.
    pub reads: u64,
    /// Source (shard) reads the conversion asked for.
    pub source_reads: u64,
    /// Source reads answered without any network request (disk cache or HF cache).
    pub cache_hits: u64,
    /// Source bytes received from the Hub.
    pub bytes_fetched: u64,
    /// Range requests sent to the Hub.
    pub fetch_requests: u64,
    /// Source bytes read from the user's huggingface_hub cache instead of the network.
    pub hf_cache_bytes: u64,
    /// Hub requests running now.
    pub in_flight: u64,
    /// Reads that failed.
    pub errors: u64,
}

impl FileStats {
    /// A copy of the counters.
    pub fn snapshot(&self) -> FileSnapshot {
        FileSnapshot {
            bytes_served: self.served.load(Relaxed),
            reads: self.reads.load(Relaxed),
            source_reads: self.source_reads.load(Relaxed),
            cache_hits: self.cache_hits.load(Relaxed),
            bytes_fetched: self.fetched.load(Relaxed),
            fetch_requests: self.fetch_requests.load(Relaxed),
            hf_cache_bytes: self.hf_cache_bytes.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            errors: self.errors.load(Relaxed),
        }
    }

    /// A read of the virtual file returned `bytes` bytes (or failed).
    pub fn record_read(&self, result: Result<u64, ()>) {
        match result {
            Ok(bytes) => {
                self.reads.fetch_add(1, Relaxed);
                self.served.fetch_add(bytes, Relaxed);
            }
            Err(()) => {
                self.errors.fetch_add(1, Relaxed);
            }
        }
    }
}

/// Every virtual file's counters, by mount path. One per mount.
#[derive(Debug, Default)]
pub struct Stats {
    files: Mutex<BTreeMap<String, Arc<FileStats>>>,
}

/// What `.ggufs/status` holds (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatusReport {
    /// Format tag, so `ggufs status` can refuse what it does not understand.
    pub format: String,
    /// Sums over all files.
    pub total: FileSnapshot,
    /// Per virtual file (mount-relative path), only files opened at least once.
    pub files: BTreeMap<String, FileSnapshot>,
}

/// The `format` of a `StatusReport`.
pub const STATUS_FORMAT: &str = "ggufs-status/1";

impl Stats {
    /// Empty counters.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counters of virtual file `path` (created on first use).
    pub fn file(&self, path: &str) -> Arc<FileStats> {
        self.files.lock().unwrap_or_else(|e| e.into_inner()).entry(path.to_string()).or_default().clone()
    }

    /// All counters now.
    pub fn report(&self) -> StatusReport {
        let files: BTreeMap<String, FileSnapshot> = self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.snapshot()))
            .collect();
        let mut total = FileSnapshot::default();
        for s in files.values() {
            total.bytes_served += s.bytes_served;
            total.reads += s.reads;
            total.source_reads += s.source_reads;
            total.cache_hits += s.cache_hits;
            total.bytes_fetched += s.bytes_fetched;
            total.fetch_requests += s.fetch_requests;
            total.hf_cache_bytes += s.hf_cache_bytes;
            total.in_flight += s.in_flight;
            total.errors += s.errors;
        }
        StatusReport { format: STATUS_FORMAT.to_string(), total, files }
    }
}

/// What one source read (below the catalog) did, to tell cache hits from fetches.
#[derive(Debug, Default)]
struct CallCounters {
    network_requests: AtomicU64,
}

#[derive(Clone)]
struct Scope {
    file: Arc<FileStats>,
    call: Option<Arc<CallCounters>>,
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// Runs `fut` (a read of a virtual file) with its source reads recorded into `file`.
pub async fn in_file<F: Future>(file: Arc<FileStats>, fut: F) -> F::Output {
    SCOPE.scope(Scope { file, call: None }, fut).await
}

/// The file whose read is running on this task, to carry the scope into tasks it spawns.
pub fn current_file() -> Option<Arc<FileStats>> {
    SCOPE.try_with(|s| s.file.clone()).ok()
}

/// `in_file` when there is a file to count into (see `current_file`), else `fut` as it is.
pub async fn maybe_in_file<F: Future>(file: Option<Arc<FileStats>>, fut: F) -> F::Output {
    match file {
        Some(file) => in_file(file, fut).await,
        None => fut.await,
    }
}

/// Runs `fut` (one source read) and counts it, as a cache hit if it sent no network request.
pub async fn source_read<T, E, F: Future<Output = Result<T, E>>>(fut: F) -> Result<T, E> {
    let Ok(file) = SCOPE.try_with(|s| s.file.clone()) else { return fut.await };
    let call = Arc::new(CallCounters::default());
    let out = SCOPE.scope(Scope { file: file.clone(), call: Some(call.clone()) }, fut).await;
    file.source_reads.fetch_add(1, Relaxed);
    if out.is_ok() && call.network_requests.load(Relaxed) == 0 {
        file.cache_hits.fetch_add(1, Relaxed);
    }
    out
}

fn with_scope(f: impl FnOnce(&Scope)) {
    let _ = SCOPE.try_with(f);
}

/// Marks a Hub request as running until the guard drops; call it from the network layer.
pub fn fetch_started() -> InFlight {
    let mut file = None;
    with_scope(|s| {
        s.file.in_flight.fetch_add(1, Relaxed);
        s.file.fetch_requests.fetch_add(1, Relaxed);
        if let Some(c) = &s.call {
            c.network_requests.fetch_add(1, Relaxed);
        }
        file = Some(s.file.clone());
    });
    InFlight { file }
}

/// `bytes` source bytes arrived from the Hub.
pub fn record_fetched(bytes: u64) {
    with_scope(|s| {
        s.file.fetched.fetch_add(bytes, Relaxed);
    });
}

/// `bytes` source bytes came from the user's huggingface_hub cache.
pub fn record_hf_cache(bytes: u64) {
    with_scope(|s| {
        s.file.hf_cache_bytes.fetch_add(bytes, Relaxed);
    });
}

/// A running Hub request (see `fetch_started`).
pub struct InFlight {
    file: Option<Arc<FileStats>>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            f.in_flight.fetch_sub(1, Relaxed);
        }
    }
}

/// The report as people read it: one block per file, sizes in MB.
pub fn render_text(report: &StatusReport) -> String {
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    let mut out = String::new();
    let mut block = |name: &str, s: &FileSnapshot| {
        out.push_str(&format!(
            "{name}\n  served {} in {} reads, fetched {} in {} requests ({} in flight), \
             source reads {} ({} cache hits), from HF cache {}, errors {}\n",
            mb(s.bytes_served),
            s.reads,
            mb(s.bytes_fetched),
            s.fetch_requests,
            s.in_flight,
            s.source_reads,
            s.cache_hits,
            mb(s.hf_cache_bytes),
            s.errors
        ));
    };
    for (name, s) in &report.files {
        block(name, s);
    }
    block("total", &report.total);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scoped_reads_record_into_their_file_only() {
        let stats = Stats::new();
        let (a, b) = (stats.file("o/r/a.gguf"), stats.file("o/r/b.gguf"));
        in_file(a.clone(), async {
            let r: Result<(), ()> = source_read(async {
                let _g = fetch_started();
                assert_eq!(a.snapshot().in_flight, 1);
                record_fetched(100);
                Ok(())
            })
            .await;
            r.unwrap();
            let hit: Result<(), ()> = source_read(async {
                record_hf_cache(7);
                Ok(())
            })
            .await;
            hit.unwrap();
        })
        .await;
        a.record_read(Ok(50));
        b.record_read(Err(()));
        let sa = a.snapshot();
        assert_eq!((sa.bytes_fetched, sa.fetch_requests, sa.in_flight), (100, 1, 0));
        assert_eq!((sa.source_reads, sa.cache_hits, sa.hf_cache_bytes), (2, 1, 7));
        assert_eq!((sa.bytes_served, sa.reads), (50, 1));
        assert_eq!(b.snapshot().errors, 1);
        let report = stats.report();
        assert_eq!(report.total.bytes_fetched, 100);
        assert_eq!(report.total.errors, 1);
        assert!(render_text(&report).contains("o/r/a.gguf"));
    }

    #[tokio::test]
    async fn outside_a_scope_nothing_is_recorded_and_nothing_fails() {
        let _g = fetch_started();
        record_fetched(5);
        let r: Result<u8, ()> = source_read(async { Ok(1) }).await;
        assert_eq!(r, Ok(1));
    }
}
