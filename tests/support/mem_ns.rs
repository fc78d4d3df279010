//! Helpers for the real-kernel mount tests: an in-memory namespace with misbehaving files,
//! a mount guard that always unmounts, and a watchdog so no test can hang.

use std::collections::HashMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use ggufs::fs::{mount, MountHandle, MountOptions};
use ggufs::vfs::{DirEntry, EntryKind, Namespace, VfsError, VirtualFile};

pub const REPO: &str = "org/repo";
pub const MODEL: &str = "org/repo/file.gguf";
pub const SECOND: &str = "org/repo/second.gguf";
pub const SLOW: &str = "org/repo/slow.gguf";
pub const BROKEN: &str = "org/repo/broken.gguf";
pub const PANICKY: &str = "org/repo/panic.gguf";
pub const GATED: &str = "org/repo/gated.gguf";
pub const MISSING: &str = "org/repo/missing.gguf";

/// Size of the main file: a few MB and deliberately not page-aligned.
pub const MODEL_SIZE: usize = 5 * 1024 * 1024 + 12345;
/// How long each read of the slow file takes.
pub const SLOW_DELAY: Duration = Duration::from_secs(4);

#[derive(Clone, Copy)]
enum Behaviour {
    Normal,
    Slow,
    Fail,
    Panic,
}

struct MemFile {
    data: Bytes,
    behaviour: Behaviour,
}

/// Counters the tests assert on.
#[derive(Default)]
pub struct Stats {
    pub slow_in_flight: AtomicUsize,
    pub reads: AtomicUsize,
}

/// The tree `org/repo/{file,second,slow,broken,panic}.gguf` plus a gated name.
pub struct MemNamespace {
    files: HashMap<String, Arc<MemFile>>,
    pub stats: Arc<Stats>,
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

impl MemNamespace {
    pub fn new() -> Arc<Self> {
        let file = |len, seed, behaviour| Arc::new(MemFile { data: Bytes::from(pseudo_random(len, seed)), behaviour });
        let files = HashMap::from([
            (MODEL.to_owned(), file(MODEL_SIZE, 1, Behaviour::Normal)),
            (SECOND.to_owned(), file(300_000, 2, Behaviour::Normal)),
            (SLOW.to_owned(), file(256 * 1024, 3, Behaviour::Slow)),
            (BROKEN.to_owned(), file(100_000, 4, Behaviour::Fail)),
            (PANICKY.to_owned(), file(100_000, 5, Behaviour::Panic)),
        ]);
        Arc::new(Self { files, stats: Arc::default() })
    }

    /// The bytes of `path` (panics for unknown paths: a test bug).
    pub fn content(&self, path: &str) -> Bytes {
        self.files[path].data.clone()
    }

    fn kind(&self, path: &str) -> Result<EntryKind, VfsError> {
        match path {
            "" | "org" | REPO => Ok(EntryKind::Dir),
            GATED => Err(VfsError::AccessDenied(path.into())),
            _ => self
                .files
                .get(path)
                .map(|f| EntryKind::File { size: f.data.len() as u64 })
                .ok_or_else(|| VfsError::NotFound(path.into())),
        }
    }
}

struct OpenMem {
    file: Arc<MemFile>,
    stats: Arc<Stats>,
}

impl VirtualFile for OpenMem {
    fn size(&self) -> u64 {
        self.file.data.len() as u64
    }

    fn read(&self, offset: u64, len: u64) -> BoxFuture<'_, Result<Bytes, VfsError>> {
        Box::pin(async move {
            self.stats.reads.fetch_add(1, Ordering::SeqCst);
            let size = self.file.data.len() as u64;
            let start = offset.min(size) as usize;
            let end = offset.saturating_add(len).min(size) as usize;
            match self.file.behaviour {
                Behaviour::Normal => {}
                Behaviour::Slow => {
                    self.stats.slow_in_flight.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(SLOW_DELAY).await;
                    self.stats.slow_in_flight.fetch_sub(1, Ordering::SeqCst);
                }
                Behaviour::Fail => return Err(VfsError::Io("injected failure".into())),
                Behaviour::Panic => panic!("injected panic in read"),
            }
            Ok(self.file.data.slice(start..end))
        })
    }
}

impl Namespace for MemNamespace {
    fn lookup(&self, path: &str) -> BoxFuture<'_, Result<EntryKind, VfsError>> {
        let kind = self.kind(path);
        Box::pin(async move { kind })
    }

    fn list(&self, path: &str) -> BoxFuture<'_, Result<Vec<DirEntry>, VfsError>> {
        let listing = match path {
            "" => Ok(vec![dir_entry("org", EntryKind::Dir)]),
            "org" => Ok(vec![dir_entry("repo", EntryKind::Dir)]),
            REPO => {
                let mut entries: Vec<_> = self
                    .files
                    .iter()
                    .map(|(path, f)| {
                        let name = path.rsplit('/').next().unwrap_or(path);
                        let size = f.data.len() as u64;
                        dir_entry(name, EntryKind::File { size })
                    })
                    .collect();
                entries.sort_by(|a, b| a.name.cmp(&b.name));
                Ok(entries)
            }
            _ => Err(VfsError::NotFound(path.into())),
        };
        Box::pin(async move { listing })
    }

    fn open(&self, path: &str) -> BoxFuture<'_, Result<Arc<dyn VirtualFile>, VfsError>> {
        let opened = self
            .files
            .get(path)
            .cloned()
            .map(|file| Arc::new(OpenMem { file, stats: self.stats.clone() }) as Arc<dyn VirtualFile>)
            .ok_or_else(|| VfsError::NotFound(path.into()));
        Box::pin(async move { opened })
    }
}

fn dir_entry(name: &str, kind: EntryKind) -> DirEntry {
    DirEntry { name: name.to_owned(), kind }
}

/// Test mounts (path, FUSE connection number), torn down by the watchdog before it aborts.
static LIVE_MOUNTS: Mutex<Vec<(PathBuf, u32)>> = Mutex::new(Vec::new());

/// A mounted `MemNamespace` on a fresh temp dir; unmounts on drop, even after a failure.
pub struct TestMount {
    pub ns: Arc<MemNamespace>,
    pub handle: Option<MountHandle>,
    pub dir: tempfile::TempDir,
}

impl TestMount {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ns = MemNamespace::new();
        let handle = mount(ns.clone(), dir.path(), MountOptions::default()).expect("mount");
        let dev = std::fs::metadata(handle.mountpoint()).expect("stat mount").dev();
        LIVE_MOUNTS.lock().unwrap_or_else(|e| e.into_inner()).push((handle.mountpoint().to_owned(), libc::minor(dev)));
        Self { ns, handle: Some(handle), dir }
    }

    /// Absolute path of namespace path `rel` inside the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

impl Drop for TestMount {
    fn drop(&mut self) {
        drop(self.handle.take());
    }
}

/// Aborts the whole test process (after lazily detaching test mounts) if not disarmed
/// within `limit`: a hung FUSE test must fail, not block CI forever.
pub struct Watchdog {
    done: Arc<AtomicBool>,
}

impl Watchdog {
    pub fn start(name: &'static str, limit: Duration) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if flag.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            eprintln!("watchdog: test {name} exceeded {limit:?}; aborting");
            for (path, connection) in LIVE_MOUNTS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                // A thread stuck in a page fault on our own mount would keep the process
                // from dying: abort the connection first so its request fails.
                abort_connection(*connection);
                detach(path);
            }
            std::process::abort();
        });
        Self { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

/// Aborts FUSE connection `connection` through fusectl (mounting fusectl if needed).
pub fn abort_connection(connection: u32) {
    let dir = Path::new("/sys/fs/fuse/connections");
    if std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none()) {
        // SAFETY: valid C strings for the duration of the call.
        unsafe {
            libc::mount(
                c"fusectl".as_ptr(),
                c"/sys/fs/fuse/connections".as_ptr(),
                c"fusectl".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
    }
    let _ = std::fs::write(dir.join(connection.to_string()).join("abort"), "1");
}

/// Lazy unmount, ignoring errors (cleanup only).
pub fn detach(path: &Path) {
    if let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) {
        // SAFETY: valid C string for the duration of the call.
        unsafe { libc::umount2(c_path.as_ptr(), libc::MNT_DETACH) };
    }
}
