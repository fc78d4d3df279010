//! Mountpoint checks and unmounting, usable without a running session (`ggufs unmount`,
//! `--force` after a crash).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::FsError;

/// How an unmount ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnmountOutcome {
    /// The mount is gone and the session has ended.
    Clean,
    /// The mount was busy (a file open or mapped), so it was detached lazily: it vanished
    /// from the tree, and the daemon keeps serving the remaining users until they let go.
    Detached,
}

/// Unmounts `mountpoint`: a normal unmount, or a lazy one (`MNT_DETACH`) when busy.
/// As root this needs no `fusermount`.
pub fn unmount(mountpoint: &Path) -> Result<UnmountOutcome, FsError> {
    match umount2(mountpoint, 0) {
        Ok(()) => Ok(UnmountOutcome::Clean),
        Err(err) if err.raw_os_error() == Some(libc::EBUSY) => {
            tracing::info!(mountpoint = %mountpoint.display(), "mount busy, detaching lazily");
            umount2(mountpoint, libc::MNT_DETACH)
                .map(|()| UnmountOutcome::Detached)
                .map_err(|source| unmount_error(mountpoint, source))
        }
        Err(err) => Err(unmount_error(mountpoint, err)),
    }
}

/// True when `path` is a FUSE mount whose daemon is gone: an operation that must reach the
/// daemon fails with `ENOTCONN` ("Transport endpoint is not connected"). `stat` alone is not
/// enough: the kernel may answer it from attributes it cached before the daemon died, so a
/// mount point is also listed (`opendir` always goes to the daemon).
pub fn is_stale_mount(path: &Path) -> bool {
    let not_connected = |err: &io::Error| err.raw_os_error() == Some(libc::ENOTCONN);
    match std::fs::metadata(path) {
        Err(err) => not_connected(&err),
        Ok(_) if is_mount_point(path) => std::fs::read_dir(path).err().is_some_and(|e| not_connected(&e)),
        Ok(_) => false,
    }
}

/// Detaches `path` if it is a stale mount; returns whether it was one.
pub fn clear_stale_mount(path: &Path) -> Result<bool, FsError> {
    if !is_stale_mount(path) {
        return Ok(false);
    }
    tracing::warn!(mountpoint = %path.display(), "clearing stale mount");
    umount2(path, libc::MNT_DETACH).map_err(|source| unmount_error(path, source))?;
    Ok(true)
}

/// True when something is mounted exactly at `path` (per `/proc/self/mountinfo`).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let wanted = path.as_os_str().as_bytes();
    info.lines().filter_map(|line| line.split(' ').nth(4)).any(|field| unescape_mountinfo(field).as_slice() == wanted)
}

/// Makes sure `path` can take a new mount: a directory, not already mounted; a stale
/// mount is cleared only when `force` is set.
pub fn prepare_mountpoint(path: &Path, force: bool) -> Result<(), FsError> {
    if is_stale_mount(path) {
        if !force {
            return Err(FsError::StaleMount(path.to_owned()));
        }
        clear_stale_mount(path)?;
    }
    if is_mount_point(path) {
        return Err(FsError::AlreadyMounted(path.to_owned()));
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(FsError::NotADirectory(path.to_owned())),
        Err(source) => Err(FsError::Mountpoint { path: path.to_owned(), source }),
    }
}

fn umount2(path: &Path, flags: libc::c_int) -> io::Result<()> {
    let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `c_path` is a valid NUL-terminated string for the duration of the call.
    let rc = unsafe { libc::umount2(c_path.as_ptr(), flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn unmount_error(path: &Path, source: io::Error) -> FsError {
    if source.raw_os_error() == Some(libc::EINVAL) {
        FsError::NotMounted(path.to_owned())
    } else {
        FsError::Unmount { path: path.to_owned(), source }
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|_| bytes[i] == b'\\')
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/mnt/a\\040b"), b"/mnt/a b");
        assert_eq!(unescape_mountinfo("/x\\134y"), b"/x\\y");
        assert_eq!(unescape_mountinfo("/plain"), b"/plain");
        assert_eq!(unescape_mountinfo("/bad\\9"), b"/bad\\9");
    }

    #[test]
    fn root_is_a_mount_point_and_a_fresh_dir_is_not() {
        assert!(is_mount_point(Path::new("/")));
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!is_mount_point(dir.path()));
        assert!(!is_stale_mount(dir.path()));
        prepare_mountpoint(dir.path(), false).expect("fresh dir is fine");
    }

    #[test]
    fn unmounting_a_plain_directory_says_not_mounted() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(unmount(dir.path()), Err(FsError::NotMounted(_))));
    }

    #[test]
    fn a_file_is_not_a_mountpoint() {
        let file = tempfile::NamedTempFile::new().expect("file");
        assert!(matches!(prepare_mountpoint(file.path(), false), Err(FsError::NotADirectory(_))));
    }
}
