//! Writing large files with direct I/O (`O_DIRECT`), bypassing the page cache: the disk
//! cache's block files and `pull`'s output.
//!
//! A cold read stores every source byte it fetches. Through the page cache that store is a
//! copy into freshly allocated cache pages, which on a 2-core VM cost about a third of the
//! daemon's CPU while copying a model at network speed (and pushes the user's own files out of
//! memory for blocks that are rarely read back soon: the kernel already caches what the mount
//! served). `pull` writes its whole output the same way. Direct I/O lets the device take the
//! bytes from the caller's page-aligned memory or a reused aligned buffer. When the
//! filesystem refuses `O_DIRECT` (tmpfs on older kernels, some network filesystems), the
//! ordinary buffered write is used instead.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::pagebuf::PageBuf;

/// Alignment of buffer address, file offset and length that direct I/O needs: the largest
/// logical block size in common use.
const ALIGN: usize = crate::pagebuf::PAGE;
/// Bytes staged per direct write (a reused buffer per writing thread).
const STAGE: usize = 1 << 20;

/// Whether direct I/O is still worth trying (cleared after the filesystem refuses it once).
static DIRECT_OK: AtomicBool = AtomicBool::new(true);

/// Creates `path` (mode 0600, must not exist) holding `parts` one after the other.
pub fn write_new_file(path: &Path, parts: &[&[u8]]) -> std::io::Result<()> {
    if DIRECT_OK.load(Ordering::Relaxed) {
        match open_new(path, libc::O_DIRECT) {
            Ok(f) => {
                let stage = STAGING.with(|s| s.borrow_mut().take()).unwrap_or_else(|| PageBuf::zeroed(STAGE));
                let mut w = DirectAppender { file: f, offset: 0, stage, filled: 0 };
                let result = parts.iter().try_for_each(|p| w.append(p)).and_then(|()| w.flush_tail());
                STAGING.with(|s| *s.borrow_mut() = Some(w.stage));
                return result;
            }
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

/// Appends to a file with direct I/O: stretches of page-aligned memory that land at
/// page-aligned file offsets go straight from the caller's memory, everything else through an
/// aligned staging buffer, whose last, partial page is padded and then cut off the file.
pub struct DirectAppender {
    file: File,
    /// File offset of the staging buffer's first byte (always a multiple of `ALIGN`).
    offset: u64,
    stage: PageBuf,
    filled: usize,
}

impl DirectAppender {
    /// Switches `file` to direct I/O and appends from `offset` on; gives the file back
    /// unchanged when direct I/O is unavailable there or `offset` is not aligned.
    pub fn new(file: File, offset: u64) -> Result<Self, File> {
        if !offset.is_multiple_of(ALIGN as u64) || set_direct(&file, true).is_err() {
            return Err(file);
        }
        Ok(DirectAppender { file, offset, stage: PageBuf::zeroed(STAGE), filled: 0 })
    }

    /// Appends `bytes`.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let aligned = rest.len() >= ALIGN && (rest.as_ptr() as usize).is_multiple_of(ALIGN);
            if aligned && self.filled.is_multiple_of(ALIGN) {
                self.flush_whole_pages()?;
                let n = rest.len() / ALIGN * ALIGN;
                write_all_at(&self.file, &rest[..n], self.offset)?;
                self.offset += n as u64;
                rest = &rest[n..];
                continue;
            }
            let n = rest.len().min(STAGE - self.filled);
            self.stage[self.filled..self.filled + n].copy_from_slice(&rest[..n]);
            self.filled += n;
            rest = &rest[n..];
            if self.filled == STAGE {
                self.flush_whole_pages()?;
            }
        }
        Ok(())
    }

    /// Writes the staged bytes; they must fill whole pages.
    fn flush_whole_pages(&mut self) -> std::io::Result<()> {
        debug_assert!(self.filled.is_multiple_of(ALIGN));
        write_all_at(&self.file, &self.stage[..self.filled], self.offset)?;
        self.offset += self.filled as u64;
        self.filled = 0;
        Ok(())
    }

    /// Puts every byte appended so far in the file: the whole staged pages, and the last
    /// partial page padded with zeros (rewritten by later writes, cut off by `finish`); a caller
    /// that records progress (pull's checksums) calls this first.
    pub fn flush(&mut self) -> std::io::Result<()> {
        let whole = self.filled / ALIGN * ALIGN;
        if whole > 0 {
            let stage = &mut self.stage[..];
            write_all_at(&self.file, &stage[..whole], self.offset)?;
            stage.copy_within(whole..self.filled, 0);
            self.offset += whole as u64;
            self.filled -= whole;
        }
        if self.filled > 0 {
            let stage = &mut self.stage[..];
            stage[self.filled..ALIGN].fill(0);
            write_all_at(&self.file, &stage[..ALIGN], self.offset)?;
        }
        Ok(())
    }

    /// Writes what is staged, padded to a page, and cuts the file to its real length.
    fn flush_tail(&mut self) -> std::io::Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        let (filled, padded) = (self.filled, self.filled.next_multiple_of(ALIGN));
        self.stage[filled..padded].fill(0);
        write_all_at(&self.file, &self.stage[..padded], self.offset)?;
        self.file.set_len(self.offset + filled as u64)?;
        self.offset += filled as u64;
        self.filled = 0;
        Ok(())
    }

    /// Writes everything staged and returns the file, back in buffered mode.
    pub fn finish(mut self) -> std::io::Result<File> {
        self.flush_tail()?;
        set_direct(&self.file, false)?;
        Ok(self.file)
    }
}

/// Turns `O_DIRECT` on or off for an open file (Linux accepts it through `F_SETFL`).
fn set_direct(file: &File, on: bool) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor `file` keeps open for the duration of the calls.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let flags = if on { flags | libc::O_DIRECT } else { flags & !libc::O_DIRECT };
        if libc::fcntl(fd, libc::F_SETFL, flags) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Writes all of `buf` at `offset`. A filesystem or device that accepts `O_DIRECT` at open
/// but refuses a write's alignment (EINVAL: larger logical blocks than `ALIGN`) gets the file
/// switched back to buffered mode and the write repeated: positional writes make that safe
/// at any point, and later files skip direct I/O altogether.
fn write_all_at(f: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    match write_all_at_once(f, buf, offset) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            tracing::debug!(error = %e, "direct write refused; continuing with buffered writes");
            DIRECT_OK.store(false, Ordering::Relaxed);
            set_direct(f, false)?;
            write_all_at_once(f, buf, offset)
        }
        other => other,
    }
}

fn write_all_at_once(f: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
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
    static STAGING: RefCell<Option<PageBuf>> = const { RefCell::new(None) };
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
        let mut data = PageBuf::with_capacity(STAGE + 3 * ALIGN);
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
    fn flushed_bytes_are_in_the_file_and_later_appends_continue_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut w = DirectAppender::new(std::fs::File::create(&path).unwrap(), 0).unwrap();
        let data: Vec<u8> = (0..3 * ALIGN + 10).map(|i| (i % 253) as u8).collect();
        w.append(&data[..ALIGN + 5]).unwrap();
        w.flush().unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[..ALIGN + 5], &data[..ALIGN + 5]);
        w.append(&data[ALIGN + 5..]).unwrap();
        w.flush().unwrap();
        w.flush().unwrap();
        let f = w.finish().unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), data);
    }

    #[test]
    fn a_write_the_device_refuses_is_repeated_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let Ok(f) = OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_DIRECT).open(&path) else {
            // No direct I/O on this filesystem: the refusal path cannot arise here.
            return;
        };
        // An odd length at an odd offset from unaligned memory: every direct-I/O rule broken.
        let data = vec![5u8; 3 * ALIGN + 1];
        write_all_at(&f, &data[1..], 7).unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), 7 + 3 * ALIGN);
        assert_eq!(&got[7..], &data[1..]);
        DIRECT_OK.store(true, Ordering::Relaxed); // other tests in this process may use it
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
