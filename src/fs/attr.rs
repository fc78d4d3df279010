//! What the kernel sees of an entry: attributes, cache lifetimes and errno values.

use std::time::{Duration, SystemTime};

use fuser::{FileAttr, FileType};
use libc::c_int;

use crate::vfs::{EntryKind, VfsError};

/// How long the kernel may trust attributes and positive lookups. The namespace serves
/// immutable content (a changed file shows up as a new inode, see `inodes`), so the only
/// reason not to cache forever is to let the kernel drop memory; one hour is what
/// mountpoint-s3/gcsfuse use for immutable objects, and it makes `stat` storms free.
pub const POSITIVE_TTL: Duration = Duration::from_secs(3600);

/// How long the kernel may remember that a name does not exist (only for a definite
/// `NotFound`, never for `AccessDenied`/`Io`). Tools probe missing names in bursts
/// (llama.cpp looking for split shards, shells completing, `stat` before `open`), and each
/// miss may cost a Hub round trip, so a few seconds absorb the burst; yet a repo that was
/// just uploaded or a gate just accepted should appear on the user's next retry, so it
/// stays short. 5 s is the low end of the 5–10 s the FUSE notes recommend.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// `st_blksize`: llama.cpp's `O_DIRECT` loader aligns reads to it, so keep the page size.
const BLOCK_SIZE: u32 = 4096;

/// Timestamps: the namespace has none, and a fixed value keeps `rsync -t`/`make` from
/// seeing a change on every remount.
const FIXED_TIME: SystemTime = SystemTime::UNIX_EPOCH;

/// Who owns every entry: the user who mounted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// The effective user and group of this process.
    pub fn current() -> Self {
        // SAFETY: geteuid/getegid cannot fail and touch no memory.
        unsafe { Owner { uid: libc::geteuid(), gid: libc::getegid() } }
    }
}

/// Attributes of inode `ino` of `kind`: read-only modes, exact size.
pub fn attr_for(ino: u64, kind: EntryKind, owner: Owner) -> FileAttr {
    let (file_type, perm, nlink, size) = match kind {
        EntryKind::Dir => (FileType::Directory, 0o555, 2, 0),
        EntryKind::File { size } => (FileType::RegularFile, 0o444, 1, size),
    };
    FileAttr {
        ino,
        size,
        // 512-byte units; a short count would make tools treat the file as sparse.
        blocks: size.div_ceil(512),
        atime: FIXED_TIME,
        mtime: FIXED_TIME,
        ctime: FIXED_TIME,
        crtime: FIXED_TIME,
        kind: file_type,
        perm,
        nlink,
        uid: owner.uid,
        gid: owner.gid,
        rdev: 0,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

/// The `d_type` of a directory entry.
pub fn file_type_of(kind: EntryKind) -> FileType {
    match kind {
        EntryKind::Dir => FileType::Directory,
        EntryKind::File { .. } => FileType::RegularFile,
    }
}

/// The errno the kernel should see for a namespace error.
pub fn errno_of(err: &VfsError) -> c_int {
    match err {
        VfsError::NotFound(_) => libc::ENOENT,
        VfsError::AccessDenied(_) => libc::EACCES,
        VfsError::Io(_) => libc::EIO,
    }
}

/// True when `open` flags ask for anything but reading.
pub fn wants_write(flags: i32) -> bool {
    flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: Owner = Owner { uid: 7, gid: 8 };

    #[test]
    fn files_are_read_only_with_exact_size_and_block_count() {
        let attr = attr_for(5, EntryKind::File { size: 1025 }, OWNER);
        assert_eq!(attr.kind, FileType::RegularFile);
        assert_eq!(attr.perm, 0o444);
        assert_eq!(attr.size, 1025);
        assert_eq!(attr.blocks, 3);
        assert_eq!((attr.uid, attr.gid, attr.ino), (7, 8, 5));
    }

    #[test]
    fn directories_are_0555() {
        let attr = attr_for(1, EntryKind::Dir, OWNER);
        assert_eq!(attr.kind, FileType::Directory);
        assert_eq!(attr.perm, 0o555);
        assert_eq!(attr.nlink, 2);
    }

    #[test]
    fn errors_map_to_errno() {
        assert_eq!(errno_of(&VfsError::NotFound("x".into())), libc::ENOENT);
        assert_eq!(errno_of(&VfsError::AccessDenied("x".into())), libc::EACCES);
        assert_eq!(errno_of(&VfsError::Io("x".into())), libc::EIO);
    }

    /// The whole chain the kernel sees: a Hub failure → `VfsError` → errno. Not found is ENOENT,
    /// refused access EACCES, everything else (after retries) EIO.
    #[test]
    fn hub_failures_reach_the_kernel_as_the_documented_errno() {
        use crate::hub::HubError;
        use crate::source::SourceError;
        let (r, p) = (String::from("o/r"), String::from("config.json"));
        let http = |status| HubError::Http {
            repo: r.clone(),
            path: p.clone(),
            status,
            message: "m".into(),
            retry_after: None,
        };
        let table: Vec<(HubError, c_int)> = vec![
            (HubError::RepoNotFound { repo: r.clone() }, libc::ENOENT),
            (HubError::RevisionNotFound { repo: r.clone(), revision: "x".into() }, libc::ENOENT),
            (HubError::EntryNotFound { repo: r.clone(), path: p.clone() }, libc::ENOENT),
            (http(404), libc::ENOENT),
            (HubError::GatedRepo { repo: r.clone(), message: "m".into() }, libc::EACCES),
            (HubError::Disabled { repo: r.clone() }, libc::EACCES),
            (http(401), libc::EACCES),
            (http(403), libc::EACCES),
            (http(500), libc::EIO),
            (http(503), libc::EIO),
            (http(416), libc::EIO),
            (HubError::RateLimited { repo: r.clone(), path: p.clone(), retry_after: None }, libc::EIO),
            (HubError::CdnRefused { repo: r.clone(), path: p.clone(), status: 403, message: "m".into() }, libc::EIO),
            (HubError::TimedOut { repo: r.clone(), path: p.clone(), what: "w", waited: Duration::ZERO }, libc::EIO),
            (HubError::Integrity { repo: r.clone(), path: p.clone(), reason: "m".into() }, libc::EIO),
            (HubError::Truncated { repo: r.clone(), path: p.clone(), received: 1, expected: 2 }, libc::EIO),
            (HubError::BadResponse { repo: r.clone(), path: p.clone(), reason: "m".into() }, libc::EIO),
            (HubError::TooLarge { repo: r.clone(), path: p.clone(), size: 2, limit: 1 }, libc::EIO),
            (HubError::InvalidRequest { repo: r.clone(), path: p.clone(), reason: "m".into() }, libc::EIO),
        ];
        for (err, want) in table {
            let shown = err.to_string();
            let vfs = crate::remote::source_error_to_vfs(SourceError::Hub(err));
            assert_eq!(errno_of(&vfs), want, "{shown}");
        }
    }

    #[test]
    fn write_intent_is_detected() {
        assert!(!wants_write(libc::O_RDONLY));
        assert!(!wants_write(libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOATIME));
        assert!(wants_write(libc::O_WRONLY));
        assert!(wants_write(libc::O_RDWR));
        assert!(wants_write(libc::O_RDONLY | libc::O_TRUNC));
    }

    #[test]
    fn negative_entries_expire_much_sooner_than_positive_ones() {
        assert!(NEGATIVE_TTL < POSITIVE_TTL);
        assert!(NEGATIVE_TTL >= Duration::from_secs(1), "never 0");
    }
}
