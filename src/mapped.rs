//! `Mapped`: a read-only mapping of a file's first bytes, to be held as `Bytes`.
//!
//! Reading a disk-cache block with `read(2)` copies it from the page cache into a buffer: on a
//! warm `cp` that copy was the daemon's largest cost (~19 % of its CPU). Mapping the block
//! instead hands out the page cache's own pages. It is safe here because cache files are never
//! changed in place — blocks are written to a temporary file and renamed, evicted or discarded
//! by unlinking — so a mapped file cannot shrink under its reader (the one way a mapping
//! faults).

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::ptr::NonNull;

use bytes::Bytes;

/// A private read-only mapping, unmapped on drop.
pub struct Mapped {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and owned exclusively by this value.
unsafe impl Send for Mapped {}
// SAFETY: shared access only reads.
unsafe impl Sync for Mapped {}

impl Mapped {
    /// The first `len` bytes of `file` (which must hold at least that many), with its pages
    /// read in up front (a block is always read whole at once).
    pub fn first_bytes(file: &File, len: usize) -> std::io::Result<Mapped> {
        if len == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty mapping"));
        }
        // SAFETY: a fresh read-only private mapping of `len` bytes of an open file; the
        // caller checked the file is that long.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| std::io::Error::other("mmap returned null"))?;
        Ok(Mapped { ptr, len })
    }

    /// As shared, immutable bytes; unmapped when the last clone drops.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `len` readable bytes are mapped at `ptr` until drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: mapped in `first_bytes` with this length, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn maps_the_first_bytes_and_outlives_the_file_handle() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        f.write_all(&data).unwrap();
        let m = Mapped::first_bytes(&f, 9_000).unwrap();
        drop(f);
        let b = m.freeze();
        assert_eq!(&b[..], &data[..9_000]);
        assert_eq!(&b.slice(4096..4100)[..], &data[4096..4100]);
    }

    #[test]
    fn an_empty_mapping_is_an_error() {
        let f = tempfile::tempfile().unwrap();
        assert!(Mapped::first_bytes(&f, 0).is_err());
    }
}
