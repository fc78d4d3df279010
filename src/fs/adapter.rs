//! The `fuser::Filesystem` implementation: inode/handle bookkeeping and errno, with every
//! namespace call moved off the session thread (see `task`).

use std::ffi::OsStr;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use fuser::consts::{
    FOPEN_DIRECT_IO, FOPEN_KEEP_CACHE, FUSE_DO_READDIRPLUS, FUSE_PARALLEL_DIROPS, FUSE_READDIRPLUS_AUTO,
};
use fuser::{
    FileAttr, Filesystem, KernelConfig, ReplyAttr, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyXattr, Request,
};
use libc::c_int;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::Semaphore;

use crate::vfs::{EntryKind, Namespace, VfsError};

use super::attr::{attr_for, errno_of, file_type_of, wants_write, Owner, NEGATIVE_TTL, POSITIVE_TTL};
use super::handles::{lock, DirSnapshot, HandleTable, OpenFile};
use super::inodes::{join_path, InodeTable};
use super::task::{read_exact_range, spawn_replying};

/// Requests the kernel may keep queued in the background (readahead, async reads). fuser's
/// default of 16 is low for a filesystem whose reads wait on the network; 64 is what
/// hf-mount and the FUSE notes use.
const MAX_BACKGROUND: u16 = 64;
/// Three quarters of `MAX_BACKGROUND`, the kernel's own default ratio.
const CONGESTION_THRESHOLD: u16 = 48;

/// What the kernel agreed to in INIT, reported to the mounter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelLimits {
    /// Readahead (bytes) the kernel will use for this mount.
    pub max_readahead: u32,
}

/// Where the tasks run: a runtime the filesystem owns (shut down with it), or a handle to
/// the caller's.
pub struct Executor {
    handle: Handle,
    owned: Option<Runtime>,
}

impl Executor {
    /// Uses the caller's runtime.
    pub fn borrowed(handle: Handle) -> Self {
        Self { handle, owned: None }
    }

    /// Owns `runtime`.
    pub fn owned(runtime: Runtime) -> Self {
        Self { handle: runtime.handle().clone(), owned: Some(runtime) }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Dropping a runtime waits for its blocking work; a stuck read must not hold up
        // the end of the session.
        if let Some(runtime) = self.owned.take() {
            runtime.shutdown_background();
        }
    }
}

/// Settings the adapter needs from the mount options.
#[derive(Debug, Clone, Copy)]
pub struct AdapterSettings {
    pub owner: Owner,
    /// Readahead (bytes) to ask for in INIT; the kernel may offer less.
    pub max_readahead: u32,
    /// Reads running at once; later ones wait in their task, not on the session thread.
    pub max_inflight_reads: usize,
}

/// The FUSE filesystem over a `Namespace`.
pub struct GgufFs {
    ns: Arc<dyn Namespace>,
    executor: Executor,
    settings: AdapterSettings,
    inodes: Arc<Mutex<InodeTable>>,
    files: Arc<Mutex<HandleTable<OpenFile>>>,
    dirs: Arc<Mutex<HandleTable<Arc<DirSnapshot>>>>,
    read_slots: Arc<Semaphore>,
    on_init: Option<Sender<KernelLimits>>,
}

impl GgufFs {
    /// A filesystem serving `ns`; `on_init` hears once INIT has been answered.
    pub fn new(
        ns: Arc<dyn Namespace>,
        executor: Executor,
        settings: AdapterSettings,
        on_init: Sender<KernelLimits>,
    ) -> Self {
        Self {
            ns,
            executor,
            settings,
            inodes: Arc::new(Mutex::new(InodeTable::new())),
            files: Arc::new(Mutex::new(HandleTable::default())),
            dirs: Arc::new(Mutex::new(HandleTable::default())),
            read_slots: Arc::new(Semaphore::new(settings.max_inflight_reads.max(1))),
            on_init: Some(on_init),
        }
    }

    fn inode(&self, ino: u64) -> Option<(String, EntryKind)> {
        lock(&self.inodes).get(ino).map(|inode| (inode.path.clone(), inode.kind))
    }

    fn negotiate(&self, config: &mut KernelConfig) -> KernelLimits {
        let max_readahead = match config.set_max_readahead(self.settings.max_readahead) {
            Ok(_) => self.settings.max_readahead,
            Err(offered) => {
                // The kernel only accepts up to what it offered (its bdi readahead);
                // `mount` raises the bdi value through sysfs afterwards when it can.
                if let Err(err) = config.set_max_readahead(offered) {
                    tracing::warn!(err, "kernel refused its own readahead offer");
                }
                offered
            }
        };
        if let Err(nearest) = config.set_max_background(MAX_BACKGROUND) {
            tracing::warn!(nearest, "max_background refused");
        }
        if let Err(nearest) = config.set_congestion_threshold(CONGESTION_THRESHOLD) {
            tracing::warn!(nearest, "congestion_threshold refused");
        }
        for (name, flag) in
            [("parallel_dirops", FUSE_PARALLEL_DIROPS), ("readdirplus", FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO)]
        {
            if let Err(missing) = config.add_capabilities(flag) {
                tracing::info!(name, missing, "kernel lacks capability");
            }
        }
        KernelLimits { max_readahead }
    }
}

impl Filesystem for GgufFs {
    fn init(&mut self, _req: &Request<'_>, config: &mut KernelConfig) -> Result<(), c_int> {
        let limits = self.negotiate(config);
        tracing::info!(max_readahead = limits.max_readahead, "FUSE session initialised");
        if let Some(on_init) = self.on_init.take() {
            // The mounter may have given up waiting; serving goes on regardless.
            let _ = on_init.send(limits);
        }
        Ok(())
    }

    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        let path = name.to_str().and_then(|name| lock(&self.inodes).child_path(parent, name));
        let Some(path) = path else {
            reply.error(libc::ENOENT);
            return;
        };
        let (ns, inodes, owner) = (self.ns.clone(), self.inodes.clone(), self.settings.owner);
        let work = async move {
            match ns.lookup(&path).await {
                Ok(kind) => {
                    let ino = lock(&inodes).record_lookup(&path, kind);
                    Ok(Some(attr_for(ino, kind, owner)))
                }
                Err(VfsError::NotFound(_)) => Ok(None),
                Err(err) => {
                    tracing::warn!(path, %err, "lookup failed");
                    Err(errno_of(&err))
                }
            }
        };
        spawn_replying(&self.executor.handle, "lookup", work, move |outcome| {
            match outcome {
                Ok(Some(attr)) => reply.entry(&POSITIVE_TTL, &attr, 0),
                // Inode 0 is a negative entry: the kernel caches the absence for the TTL.
                Ok(None) => reply.entry(&NEGATIVE_TTL, &attr_for(0, EntryKind::Dir, owner), 0),
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn forget(&mut self, _req: &Request<'_>, ino: u64, nlookup: u64) {
        lock(&self.inodes).forget(ino, nlookup);
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.inode(ino) {
            Some((_, kind)) => reply.attr(&POSITIVE_TTL, &attr_for(ino, kind, self.settings.owner)),
            None => reply.error(libc::ENOENT),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        if wants_write(flags) {
            reply.error(libc::EROFS);
            return;
        }
        let Some((path, kind)) = self.inode(ino) else {
            reply.error(libc::ENOENT);
            return;
        };
        let EntryKind::File { size } = kind else {
            reply.error(libc::EISDIR);
            return;
        };
        let (ns, files) = (self.ns.clone(), self.files.clone());
        let work = async move {
            let file = ns.open(&path).await.map_err(|err| {
                tracing::warn!(path, %err, "open failed");
                errno_of(&err)
            })?;
            if file.size() != size && !file.volatile() {
                // The path now names other content; ESTALE makes the kernel look it up
                // again, which gives the new content a new inode.
                tracing::warn!(path, size, now = file.size(), "file changed size");
                return Err(libc::ESTALE);
            }
            let flags = if file.volatile() { FOPEN_DIRECT_IO } else { FOPEN_KEEP_CACHE };
            Ok((lock(&files).insert(file), flags))
        };
        spawn_replying(&self.executor.handle, "open", work, move |outcome| {
            match outcome {
                // Content behind an inode never changes, so the page cache stays valid
                // across opens. Never FOPEN_DIRECT_IO for model files: it breaks shared mmap
                // (llama.cpp); only live reports (status) bypass the cache.
                Ok((fh, flags)) => reply.opened(fh, flags),
                Err(errno) => reply.error(errno),
            }
        });
    }

    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock_owner: Option<u64>,
        reply: ReplyData,
    ) {
        let Some(file) = lock(&self.files).get(fh) else {
            reply.error(libc::EBADF);
            return;
        };
        let Ok(offset) = u64::try_from(offset) else {
            reply.error(libc::EINVAL);
            return;
        };
        let slots = self.read_slots.clone();
        let work = async move {
            let _slot = slots.acquire_owned().await.map_err(|_| libc::EIO)?;
            read_exact_range(file.as_ref(), offset, size).await
        };
        spawn_replying(&self.executor.handle, "read", work, move |outcome| match outcome {
            Ok(bytes) => reply.data(&bytes),
            Err(errno) => reply.error(errno),
        });
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // In-flight reads hold their own reference to the file and finish normally.
        lock(&self.files).remove(fh);
        reply.ok();
    }

    fn opendir(&mut self, _req: &Request<'_>, ino: u64, _flags: i32, reply: ReplyOpen) {
        let Some((path, kind)) = self.inode(ino) else {
            reply.error(libc::ENOENT);
            return;
        };
        if kind != EntryKind::Dir {
            reply.error(libc::ENOTDIR);
            return;
        }
        let (ns, inodes, dirs) = (self.ns.clone(), self.inodes.clone(), self.dirs.clone());
        let work = async move {
            let listing = ns.list(&path).await.map_err(|err| {
                tracing::warn!(path, %err, "list failed");
                errno_of(&err)
            })?;
            let snapshot = {
                let mut table = lock(&inodes);
                let mut entries = Vec::with_capacity(listing.len());
                for entry in listing {
                    // Skip names the kernel could never look up ("", ".", "a/b").
                    if table.child_path(ino, &entry.name).is_none() {
                        continue;
                    }
                    let child = table.record(&join_path(&path, &entry.name), entry.kind);
                    entries.push((child, entry));
                }
                DirSnapshot { ino, parent_ino: table.parent_ino(&path), entries }
            };
            Ok(lock(&dirs).insert(Arc::new(snapshot)))
        };
        spawn_replying(&self.executor.handle, "opendir", work, move |outcome| match outcome {
            Ok(fh) => reply.opened(fh, 0),
            Err(errno) => reply.error(errno),
        });
    }

    fn readdir(&mut self, _req: &Request<'_>, _ino: u64, fh: u64, offset: i64, mut reply: ReplyDirectory) {
        let Some(dir) = lock(&self.dirs).get(fh) else {
            reply.error(libc::EBADF);
            return;
        };
        for (index, ino, kind, name) in listing_from(&dir, offset) {
            let next_offset = i64::try_from(index + 1).unwrap_or(i64::MAX);
            if reply.add(ino, next_offset, file_type_of(kind), name) {
                break;
            }
        }
        reply.ok();
    }

    fn readdirplus(&mut self, _req: &Request<'_>, _ino: u64, fh: u64, offset: i64, mut reply: ReplyDirectoryPlus) {
        let Some(dir) = lock(&self.dirs).get(fh) else {
            reply.error(libc::EBADF);
            return;
        };
        let owner = self.settings.owner;
        let mut table = lock(&self.inodes);
        for (index, ino, kind, name) in listing_from(&dir, offset) {
            let next_offset = i64::try_from(index + 1).unwrap_or(i64::MAX);
            let attr: FileAttr = attr_for(ino, kind, owner);
            if reply.add(ino, next_offset, name, &POSITIVE_TTL, &attr, 0) {
                break;
            }
            // The kernel takes a reference on every entry but "." and ".." it receives.
            if index >= 2 {
                if let Some(path) = table.get(ino).map(|inode| inode.path.clone()) {
                    table.record_lookup(&path, kind);
                }
            }
        }
        drop(table);
        reply.ok();
    }

    /// Called on every close(2); nothing is buffered for writing, so there is nothing to do
    /// (without this, fuser logs a warning per close).
    fn flush(&mut self, _req: &Request<'_>, _ino: u64, _fh: u64, _lock_owner: u64, reply: ReplyEmpty) {
        reply.ok();
    }

    fn releasedir(&mut self, _req: &Request<'_>, _ino: u64, fh: u64, _flags: i32, reply: ReplyEmpty) {
        lock(&self.dirs).remove(fh);
        reply.ok();
    }

    fn statfs(&mut self, _req: &Request<'_>, _ino: u64, reply: ReplyStatfs) {
        let files = lock(&self.inodes).count() as u64;
        // Sizes are virtual and nothing can be written: report no space, no free inodes.
        reply.statfs(0, 0, 0, files, 0, 4096, 255, 4096);
    }

    fn getxattr(&mut self, _req: &Request<'_>, ino: u64, _name: &OsStr, _size: u32, reply: ReplyXattr) {
        // Entries exist but carry no extended attributes: ENODATA ("no such attribute")
        // keeps `ls`, `cp -a` and SELinux/ACL probes quiet.
        match self.inode(ino) {
            Some(_) => reply.error(libc::ENODATA),
            None => reply.error(libc::ENOENT),
        }
    }

    fn listxattr(&mut self, _req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        match (self.inode(ino), size) {
            (None, _) => reply.error(libc::ENOENT),
            (Some(_), 0) => reply.size(0),
            (Some(_), _) => reply.data(&[]),
        }
    }
}

/// The entries of `dir` from kernel offset `offset` on, with "." and ".." first, as
/// (index, ino, kind, name).
fn listing_from(dir: &DirSnapshot, offset: i64) -> impl Iterator<Item = (usize, u64, EntryKind, &str)> + '_ {
    let dots = [(dir.ino, "."), (dir.parent_ino, "..")].into_iter().map(|(ino, name)| (ino, EntryKind::Dir, name));
    let children = dir.entries.iter().map(|(ino, entry)| (*ino, entry.kind, entry.name.as_str()));
    let skip = usize::try_from(offset).unwrap_or(0);
    dots.chain(children).enumerate().skip(skip).map(|(index, (ino, kind, name))| (index, ino, kind, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::inodes::ROOT_INO;
    use crate::vfs::DirEntry;

    fn snapshot() -> DirSnapshot {
        DirSnapshot {
            ino: 5,
            parent_ino: ROOT_INO,
            entries: vec![
                (6, DirEntry { name: "a".into(), kind: EntryKind::Dir }),
                (7, DirEntry { name: "b.gguf".into(), kind: EntryKind::File { size: 3 } }),
            ],
        }
    }

    #[test]
    fn listing_starts_with_dots_and_resumes_after_offset() {
        let dir = snapshot();
        let all: Vec<_> = listing_from(&dir, 0).map(|e| (e.0, e.1, e.3)).collect();
        assert_eq!(all, vec![(0, 5, "."), (1, ROOT_INO, ".."), (2, 6, "a"), (3, 7, "b.gguf")]);
        let rest: Vec<_> = listing_from(&dir, 3).map(|e| e.3).collect();
        assert_eq!(rest, vec!["b.gguf"]);
        assert_eq!(listing_from(&dir, 4).count(), 0);
        assert_eq!(listing_from(&dir, -1).count(), 4);
    }
}
