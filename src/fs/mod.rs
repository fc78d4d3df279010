//! The FUSE adapter: serves a `vfs::Namespace` as a read-only kernel filesystem.
//!
//! It knows inodes, handles and errno, nothing about models. Design points (see
//! `docs/fuse-notes.md`): content behind an inode never changes, so every open keeps the
//! page cache (`FOPEN_KEEP_CACHE`) and attributes are cached for an hour; `direct_io` is
//! never used because it breaks shared mmap (llama.cpp); reads are answered with exactly
//! the requested length except at EOF; namespace calls run on a tokio runtime so a slow
//! read never stalls the single FUSE session thread; handler panics become `EIO`.
//!
//! - `inodes`: path ↔ inode table. `handles`: open file/dir tables. `attr`: attributes,
//!   TTLs, errno. `task`: off-thread execution and exact-length reads. `adapter`: the
//!   `fuser::Filesystem` impl. `session`: mount/unmount lifecycle. `mountpoint`: stale and
//!   live mount detection, standalone unmount.

mod adapter;
mod attr;
mod handles;
mod inodes;
mod mountpoint;
mod session;
mod task;

use std::io;
use std::path::PathBuf;

pub use attr::{NEGATIVE_TTL, POSITIVE_TTL};
pub use mountpoint::{clear_stale_mount, is_mount_point, is_stale_mount, prepare_mountpoint, unmount, UnmountOutcome};
pub use session::{mount, run_foreground, MountHandle, MountOptions};

/// Why mounting or unmounting failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// Refuse to stack a second mount on a live one.
    #[error("{0} is already mounted")]
    AlreadyMounted(PathBuf),
    /// A previous daemon died without unmounting; `--force` clears it.
    #[error("{0} is a stale mount (transport endpoint is not connected); use --force to clear it")]
    StaleMount(PathBuf),
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("{0} is not mounted")]
    NotMounted(PathBuf),
    #[error("mountpoint {path}: {source}")]
    Mountpoint { path: PathBuf, source: io::Error },
    #[error("mounting {path}: {source}")]
    Mount { path: PathBuf, source: io::Error },
    #[error("unmounting {path}: {source}")]
    Unmount { path: PathBuf, source: io::Error },
    /// The tokio runtime or the session thread could not be started.
    #[error("starting the FUSE workers: {0}")]
    Runtime(io::Error),
    /// The kernel never sent INIT (or the session died before answering it).
    #[error("the kernel did not initialise the mount at {0} in time")]
    InitTimeout(PathBuf),
}
