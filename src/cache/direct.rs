//! Writing block files with direct I/O (`O_DIRECT`), bypassing the page cache.
//!
//! A cold read stores every source byte it fetches. Through the page cache that store is a
//! copy into freshly allocated cache pages, which on a 2-core VM cost about a third of the
//! daemon's CPU while copying a model at network speed (and pushes the user's own files out of
//! memory for blocks that are rarely read back soon: the kernel already caches what the mount
//! served). Direct I/O lets the device take the bytes from a reused, page-aligned buffer. When
//! the filesystem refuses `O_DIRECT` (tmpfs on older kernels, some network filesystems), the
//! ordinary buffered write is used instead.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Alignment of buffer address, file offset and length that direct I/O needs: the largest
/// logical block size in common use.
const ALIGN: usize = crate::pagebuf::PAGE;
/// Bytes staged per direct write (a reused buffer per writing thread).
const STAGE: usize = 1 << 20;

/// Whether direct I/O is still worth trying (cleared after the filesystem refuses it once).
static DIRECT_OK: AtomicBool = AtomicBool::new(true);

/// Creates `path` (mode 0600, must not exist) holding `parts` one after the other.
pub(super) fn write_new_file(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    if DIRECT_OK.load(Ordering::Relaxed) {
        match open_new(path, libc::O_DIRECT) {
            Ok(f) => return write_direct(f, parts),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::debug!(dir = %path.parent().unwrap_or(path).display(), "no direct I/O here; using buffered writes");
                DIRECT_OK.store(false, Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
    let mut f = open_new(path, 0)?;
    parts.iter().try_for_each(|p| f.write_all(p))
}

fn open_new(path: &Path, flags: libc::c_int) -> std::io::Result<File> {
    OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(flags).open(path)
}

/// Writes `parts` in order: aligned stretches (page-aligned memory at a page-aligned file
/// offset) straight from the caller's memory, everything else through the aligned staging
/// buffer; the last write is padded to `ALIGN` and the file then cut to its real length.
fn write_direct(f: File, parts: &[&[u8]]) -> std::io::Result<()> {
    STAGING.with(|cell| {
        let mut stage = cell.borrow_mut();
        let buf = stage.get_or_insert_with(AlignedBuf::new).as_mut_slice();
        let mut filled = 0usize;
        let mut written = 0u64;
        for part in parts {
            let mut rest: &[u8] = part;
            while !rest.is_empty() {
                if filled.is_multiple_of(ALIGN) && rest.len() >= ALIGN && (rest.as_ptr() as usize).is_multiple_of(ALIGN)
                {
                    write_all_at(&f, &buf[..filled], written)?;
                    written += filled as u64;
                    filled = 0;
                    let n = rest.len() / ALIGN * ALIGN;
                    write_all_at(&f, &rest[..n], written)?;
                    written += n as u64;
                    rest = &rest[n..];
                    continue;
                }
                let n = rest.len().min(STAGE - filled);
                buf[filled..filled + n].copy_from_slice(&rest[..n]);
                filled += n;
                rest = &rest[n..];
                if filled == STAGE {
                    write_all_at(&f, &buf[..STAGE], written)?;
                    written += STAGE as u64;
                    filled = 0;
                }
            }
        }
        if filled > 0 {
            let padded = filled.next_multiple_of(ALIGN);
            buf[filled..padded].fill(0);
            write_all_at(&f, &buf[..padded], written)?;
            f.set_len(written + filled as u64)?;
        }
        Ok(())
    })
}

fn write_all_at(f: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    while !buf.is_empty() {
        let n = f.write_at(buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

thread_local! {
    static STAGING: RefCell<Option<AlignedBuf>> = const { RefCell::new(None) };
}

/// `STAGE` bytes aligned to `ALIGN`, as direct I/O needs.
struct AlignedBuf(*mut u8);

impl AlignedBuf {
    const LAYOUT: Layout = match Layout::from_size_align(STAGE, ALIGN) {
        Ok(l) => l,
        Err(_) => panic!("bad staging layout"),
    };

    fn new() -> Self {
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(Self::LAYOUT) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(Self::LAYOUT);
        }
        AlignedBuf(ptr)
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the pointer is a live allocation of STAGE initialized bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.0, STAGE) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout, freed once.
        unsafe { dealloc(self.0, Self::LAYOUT) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_every_awkward_length_hold_exactly_their_parts() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..3 * STAGE + 5000).map(|i| (i * 7 + i / 4096) as u8).collect();
        for (i, len) in [0, 1, 4095, 4096, 4097, STAGE - 1, STAGE, STAGE + 1, 3 * STAGE + 5000].into_iter().enumerate()
        {
            let path = dir.path().join(format!("f{i}"));
            let header = [0xabu8; 72];
            write_new_file(&path, &[&header, &data[..len]]).unwrap();
            let got = std::fs::read(&path).unwrap();
            assert_eq!(got.len(), 72 + len, "length {len}");
            assert_eq!(&got[..72], &header);
            assert_eq!(&got[72..], &data[..len], "length {len}");
        }
    }

    #[test]
    fn aligned_data_after_a_page_header_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = crate::pagebuf::PageBuf::with_capacity(STAGE + 3 * ALIGN);
        let bytes: Vec<u8> = (0..STAGE + 2 * ALIGN + 100).map(|i| (i * 13 + 1) as u8).collect();
        data.extend_from_slice(&bytes);
        let header = vec![9u8; ALIGN];
        for (i, len) in [ALIGN, STAGE + 2 * ALIGN + 100, 100].into_iter().enumerate() {
            let path = dir.path().join(format!("a{i}"));
            write_new_file(&path, &[&header, &data[..len]]).unwrap();
            let got = std::fs::read(&path).unwrap();
            assert_eq!(got.len(), ALIGN + len);
            assert_eq!(&got[..ALIGN], &header[..]);
            assert_eq!(&got[ALIGN..], &bytes[..len]);
        }
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"keep").unwrap();
        assert!(write_new_file(&path, &[b"new"]).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"keep");
    }
}
