//! `PageBuf`: a growable byte buffer that starts on a page boundary.
//!
//! Source bytes arrive from the Hub into one of these. Because the disk cache's blocks sit at
//! page-multiple offsets of a fetched run, every block is then page-aligned in memory, which is
//! what lets the cache write it with direct I/O straight from this buffer instead of copying
//! it first; `direct_io` also stages its unaligned writes in one (see `direct_io`).

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

use bytes::Bytes;

/// The alignment of every `PageBuf`: the page size on the platforms ggufs runs on, and the
/// largest logical block size direct I/O asks for.
pub const PAGE: usize = 4096;

/// An append-only buffer of initialized bytes starting at a `PAGE`-aligned address.
pub struct PageBuf {
    ptr: NonNull<u8>,
    cap: usize,
    len: usize,
}

// SAFETY: PageBuf owns its allocation exclusively, like Vec<u8>.
unsafe impl Send for PageBuf {}
// SAFETY: shared access only reads initialized bytes.
unsafe impl Sync for PageBuf {}

impl PageBuf {
    /// An empty buffer with room for at least `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let cap = capacity.max(1).next_multiple_of(PAGE);
        let layout = Self::layout(cap);
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc(layout) }).unwrap_or_else(|| handle_alloc_error(layout));
        PageBuf { ptr, cap, len: 0 }
    }

    /// `len` zero bytes (a reusable aligned buffer, e.g. direct I/O's staging area).
    pub fn zeroed(len: usize) -> Self {
        let mut b = PageBuf::with_capacity(len);
        // SAFETY: `len <= cap`; the bytes are initialized (to zero) before `len` covers them.
        unsafe { std::ptr::write_bytes(b.ptr.as_ptr(), 0, len) };
        b.len = len;
        b
    }

    fn layout(cap: usize) -> Layout {
        Layout::from_size_align(cap, PAGE).unwrap_or_else(|_| panic!("PageBuf of {cap} bytes"))
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the bytes held, keeping the allocation.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Appends `bytes`, growing (by doubling, still aligned) when needed.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let need = self.len + bytes.len();
        if need > self.cap {
            self.grow(need.max(self.cap * 2));
        }
        // SAFETY: `need <= cap`, the regions cannot overlap (`bytes` is borrowed from
        // elsewhere while `self` is borrowed mutably).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(self.len), bytes.len()) };
        self.len = need;
    }

    fn grow(&mut self, capacity: usize) {
        let mut bigger = PageBuf::with_capacity(capacity);
        bigger.extend_from_slice(self.as_ref());
        *self = bigger;
    }

    /// The bytes as an immutable, cheaply cloned `Bytes` (no copy; still aligned).
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PageBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialized and owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::Deref for PageBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_ref()
    }
}

impl std::ops::DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: the first `len` bytes are initialized and owned by self, borrowed uniquely.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `with_capacity` with this layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), Self::layout(self.cap)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_keeps_bytes_and_alignment() {
        let mut b = PageBuf::with_capacity(10);
        assert!(b.is_empty());
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        for piece in data.chunks(777) {
            b.extend_from_slice(piece);
            assert_eq!(b.as_ref().as_ptr() as usize % PAGE, 0);
        }
        assert_eq!(b.as_ref(), data.as_slice());
        b.clear();
        assert_eq!(b.len(), 0);
        b.extend_from_slice(b"abc");
        let frozen = b.freeze();
        assert_eq!(&frozen[..], b"abc");
        assert_eq!(frozen.as_ptr() as usize % PAGE, 0);
    }

    #[test]
    fn zeroed_buffers_are_zero_and_writable() {
        let mut z = PageBuf::zeroed(PAGE + 3);
        assert_eq!(z.len(), PAGE + 3);
        assert!(z.iter().all(|&b| b == 0));
        z[PAGE + 2] = 7;
        assert_eq!(z[PAGE + 2], 7);
        assert_eq!(z.as_ptr() as usize % PAGE, 0);
    }
}
