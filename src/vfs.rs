//! What the FUSE adapter serves: a read-only tree of directories and immutable files,
//! addressed by path. The FUSE layer (`fs`) turns paths into inodes and errors into errno;
//! the engine behind this trait knows the Hub and the conversion.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;

/// Why a filesystem operation failed, as far as the kernel needs to know.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VfsError {
    /// ENOENT: no such repo, revision, file, or not a convertible model.
    #[error("not found: {0}")]
    NotFound(String),
    /// EACCES: gated or private without an accepted token.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// EIO: anything else, after retries.
    #[error("I/O error: {0}")]
    Io(String),
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
}

/// A directory, or a file with its exact size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File { size: u64 },
}

/// An open virtual file: immutable content of a known size.
pub trait VirtualFile: Send + Sync {
    /// Exact size in bytes.
    fn size(&self) -> u64;
    /// Bytes `[offset, offset + len)` clamped to the size. Never short inside the file:
    /// either all the bytes or an error.
    fn read(&self, offset: u64, len: u64) -> BoxFuture<'_, Result<Bytes, VfsError>>;
    /// True for a live report (a status file) whose content and size differ on each open: the
    /// FUSE layer then bypasses the page cache and accepts a size other than the one looked up,
    /// and reads past the content end at EOF.
    fn volatile(&self) -> bool {
        false
    }
}

/// The tree the mount serves. Paths are relative, `/`-separated, without a leading slash;
/// the root is `""`.
pub trait Namespace: Send + Sync + 'static {
    /// What `path` is.
    fn lookup(&self, path: &str) -> BoxFuture<'_, Result<EntryKind, VfsError>>;
    /// The entries of directory `path`.
    fn list(&self, path: &str) -> BoxFuture<'_, Result<Vec<DirEntry>, VfsError>>;
    /// Opens file `path`.
    fn open(&self, path: &str) -> BoxFuture<'_, Result<Arc<dyn VirtualFile>, VfsError>>;
}
