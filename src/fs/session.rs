//! Mount lifecycle: start a FUSE session in the background, wait until the kernel has
//! initialised it, and end it cleanly (lazily when a reader still has a file mapped).
//!
//! We drive `fuser::Session` on our own thread rather than through `spawn_mount2`'s
//! `BackgroundSession`: the latter unmounts non-lazily on drop and then joins, which hangs
//! forever when llama.cpp still has a file mapped, and after a lazy detach it would retry
//! `umount` on the path, possibly hitting a newer mount there. Here we unmount ourselves
//! (lazily if busy) and only join a session that has actually ended.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fuser::MountOption;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::vfs::Namespace;

use super::adapter::{AdapterSettings, Executor, GgufFs, KernelLimits};
use super::attr::Owner;
use super::mountpoint::{prepare_mountpoint, unmount, UnmountOutcome};
use super::FsError;

/// How long `mount` waits for the kernel's INIT before giving up (it normally takes
/// milliseconds; only a wedged kernel or daemon thread takes longer).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a clean unmount waits for the session thread to finish before leaving it
/// detached (it exits as soon as the kernel closes the connection).
const SESSION_END_TIMEOUT: Duration = Duration::from_secs(5);

/// How the mount should behave.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Let other users see the mount (`allow_other`; non-root needs `user_allow_other`).
    pub allow_other: bool,
    /// Device name shown in `/proc/mounts` and `df`.
    pub fsname: String,
    /// Clear a stale mount (dead daemon) at the mountpoint instead of refusing.
    pub force: bool,
    /// Kernel readahead wanted, in bytes. INIT cannot exceed the kernel's offer (its
    /// default 128 KiB), so when running as root the rest is set through sysfs after INIT.
    pub max_readahead: u32,
    /// Namespace reads running at once; more wait in their tasks.
    pub max_inflight_reads: usize,
    /// Worker threads of the runtime the mount creates when `runtime` is None.
    pub worker_threads: usize,
    /// Run namespace calls on this runtime (e.g. the one the engine's HTTP client lives
    /// on) instead of a private one.
    pub runtime: Option<Handle>,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            allow_other: false,
            fsname: "ggufs".to_owned(),
            force: false,
            // Large sequential reads amortise Hub round trips; 1 MiB is also the largest
            // single FUSE READ with the default `max_pages_limit`.
            max_readahead: 1024 * 1024,
            max_inflight_reads: 256,
            worker_threads: 4,
            runtime: None,
        }
    }
}

/// A live mount. Dropping it unmounts (lazily if busy).
#[derive(Debug)]
pub struct MountHandle {
    mountpoint: PathBuf,
    thread: Option<JoinHandle<()>>,
    ended: watch::Receiver<bool>,
    limits: KernelLimits,
}

/// Mounts `ns` read-only at `mountpoint` and returns once the kernel has initialised the
/// mount, so callers can use it at once.
pub fn mount(ns: Arc<dyn Namespace>, mountpoint: &Path, opts: MountOptions) -> Result<MountHandle, FsError> {
    prepare_mountpoint(mountpoint, opts.force)?;
    let mountpoint =
        mountpoint.canonicalize().map_err(|source| FsError::Mountpoint { path: mountpoint.to_owned(), source })?;
    let executor = match &opts.runtime {
        Some(handle) => Executor::borrowed(handle.clone()),
        None => Executor::owned(build_runtime(opts.worker_threads)?),
    };
    let settings = AdapterSettings {
        owner: Owner::current(),
        max_readahead: opts.max_readahead,
        max_inflight_reads: opts.max_inflight_reads,
    };
    let (init_tx, init_rx) = mpsc::channel();
    let fs = GgufFs::new(ns, executor, settings, init_tx);
    let session = fuser::Session::new(fs, &mountpoint, &mount_options(&opts))
        .map_err(|source| FsError::Mount { path: mountpoint.clone(), source })?;
    let (ended_tx, ended) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("ggufs-fuse".to_owned())
        .spawn(move || serve(session, ended_tx))
        .map_err(FsError::Runtime)?;
    let mut handle = MountHandle { mountpoint, thread: Some(thread), ended, limits: KernelLimits { max_readahead: 0 } };
    handle.limits = init_rx.recv_timeout(INIT_TIMEOUT).map_err(|_| FsError::InitTimeout(handle.mountpoint.clone()))?;
    if handle.limits.max_readahead < opts.max_readahead {
        raise_bdi_readahead(&handle.mountpoint, opts.max_readahead);
    }
    tracing::info!(mountpoint = %handle.mountpoint.display(), "mounted");
    Ok(handle)
}

/// Mounts, serves until SIGINT/SIGTERM/SIGHUP (or an external unmount), then unmounts.
/// For `ggufs mount` in the foreground. Blocks the calling thread.
pub fn run_foreground(
    ns: Arc<dyn Namespace>,
    mountpoint: &Path,
    opts: MountOptions,
) -> Result<UnmountOutcome, FsError> {
    let handle = mount(ns, mountpoint, opts)?;
    let ended = handle.ended.clone();
    // A private thread, so this works whether or not the caller is inside a runtime.
    let waiter = std::thread::Builder::new()
        .name("ggufs-signals".to_owned())
        .spawn(move || wait_for_shutdown(ended))
        .map_err(FsError::Runtime)?;
    match waiter.join() {
        Ok(Ok(reason)) => tracing::info!(reason, "shutting down"),
        Ok(Err(err)) => return Err(FsError::Runtime(err)),
        Err(_) => tracing::error!("signal waiter panicked; shutting down"),
    }
    handle.unmount()
}

impl MountHandle {
    /// Where the filesystem is mounted (canonical path).
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The readahead (bytes) the kernel agreed to in INIT (before any sysfs raise).
    pub fn negotiated_readahead(&self) -> u32 {
        self.limits.max_readahead
    }

    /// False once the session has ended (unmounted, possibly by someone else).
    pub fn is_running(&self) -> bool {
        !*self.ended.borrow()
    }

    /// Unmounts: cleanly when idle, lazily when a file is still open or mapped (the
    /// daemon then keeps serving those users until they let go). Never hangs.
    pub fn unmount(mut self) -> Result<UnmountOutcome, FsError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<UnmountOutcome, FsError> {
        let Some(thread) = self.thread.take() else {
            return Ok(UnmountOutcome::Clean);
        };
        if !self.is_running() {
            // Already unmounted from outside; do not touch whatever is at the path now.
            join_bounded(thread, &self.mountpoint);
            return Ok(UnmountOutcome::Clean);
        }
        let outcome = match unmount(&self.mountpoint) {
            Ok(outcome) => outcome,
            Err(FsError::NotMounted(_)) => UnmountOutcome::Clean,
            Err(err) => {
                self.thread = Some(thread);
                return Err(err);
            }
        };
        match outcome {
            UnmountOutcome::Clean => join_bounded(thread, &self.mountpoint),
            // The session ends by itself when the last user lets go.
            UnmountOutcome::Detached => drop(thread),
        }
        tracing::info!(mountpoint = %self.mountpoint.display(), ?outcome, "unmounted");
        Ok(outcome)
    }
}

impl Drop for MountHandle {
    fn drop(&mut self) {
        if let Err(err) = self.shutdown() {
            tracing::error!(%err, "unmount on drop failed");
        }
    }
}

fn serve(mut session: fuser::Session<GgufFs>, ended: watch::Sender<bool>) {
    if let Err(err) = session.run() {
        tracing::error!(%err, "FUSE session ended with an error");
    }
    // Dropping the session destroys the filesystem and shuts its runtime down.
    drop(session);
    let _ = ended.send(true);
}

fn join_bounded(thread: JoinHandle<()>, mountpoint: &Path) {
    let deadline = Instant::now() + SESSION_END_TIMEOUT;
    while !thread.is_finished() {
        if Instant::now() >= deadline {
            tracing::warn!(mountpoint = %mountpoint.display(), "session thread still running; leaving it");
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if thread.join().is_err() {
        tracing::error!("FUSE session thread panicked");
    }
}

fn mount_options(opts: &MountOptions) -> Vec<MountOption> {
    let mut options = vec![
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::NoAtime,
        MountOption::DefaultPermissions,
        MountOption::FSName(opts.fsname.clone()),
        MountOption::Subtype("ggufs".to_owned()),
    ];
    // No AutoUnmount: fuser implements it only through the fusermount helper, which
    // defeats the helper-free root mount; Drop and the signal handler unmount instead.
    if opts.allow_other {
        options.push(MountOption::AllowOther);
    }
    options
}

fn build_runtime(worker_threads: usize) -> Result<tokio::runtime::Runtime, FsError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads.max(1))
        .thread_name("ggufs-io")
        .enable_all()
        .build()
        .map_err(FsError::Runtime)
}

/// Raises the mount's readahead through `/sys/class/bdi/<maj>:<min>/read_ahead_kb`, the
/// only way above the kernel's INIT offer. Needs root; failure only costs speed.
fn raise_bdi_readahead(mountpoint: &Path, bytes: u32) {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let dev = match std::fs::metadata(mountpoint) {
        Ok(meta) => meta.dev(),
        Err(err) => {
            tracing::warn!(%err, "cannot stat mountpoint to tune readahead");
            return;
        }
    };
    let sysfs = format!("/sys/class/bdi/{}:{}/read_ahead_kb", libc::major(dev), libc::minor(dev));
    let kib = bytes.div_ceil(1024);
    match std::fs::write(&sysfs, kib.to_string()) {
        Ok(()) => tracing::info!(sysfs, kib, "raised kernel readahead"),
        Err(err) => tracing::warn!(sysfs, %err, "cannot raise kernel readahead"),
    }
}

/// Waits for a termination signal or the end of the session; says which.
fn wait_for_shutdown(mut ended: watch::Receiver<bool>) -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async move {
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        let mut hangup = signal(SignalKind::hangup())?;
        let reason = tokio::select! {
            _ = interrupt.recv() => "SIGINT",
            _ = terminate.recv() => "SIGTERM",
            _ = hangup.recv() => "SIGHUP",
            _ = ended.wait_for(|ended| *ended) => "unmounted externally",
        };
        Ok(reason)
    })
}
