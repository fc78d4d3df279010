//! `PageBuf`: a growable byte buffer that starts on a page boundary, whose memory is recycled.
//!
//! Source bytes arrive from the Hub into one of these. Because the disk cache's blocks sit at
//! page-multiple offsets of a fetched run, every block is then page-aligned in memory, which is
//! what lets the cache write it with direct I/O straight from this buffer instead of copying
//! it first; `direct_io` also stages its unaligned writes in one (see `direct_io`). Converted
//! chunks are written into them too.
//!
//! A cold copy of a 1 GB model allocates ~2 GB of multi-MiB buffers (fetched runs, converted
//! chunks) that live for milliseconds. From the allocator each one was fresh memory, paid for
//! with a page fault per 4 KiB — measured at ~18 % of the daemon's CPU in a cold `cp`. So
//! large buffers are mapped directly, 2 MiB-aligned and marked for transparent huge pages (one
//! fault per 2 MiB where the system allows it, as `madvise` mode does by default), known to be
//! zero (no clearing pass of ours), and recycled: a freed buffer goes to a small pool and the
//! next one of its size class reuses it, already mapped.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// The alignment of every `PageBuf`: the page size on the platforms ggufs runs on, and the
/// largest logical block size direct I/O asks for.
pub const PAGE: usize = 4096;

/// Smaller buffers come from the allocator and are not pooled: its heap serves them without
/// page faults. Larger ones are mapped directly (see the module comment).
const POOL_MIN: usize = 256 << 10;
/// Room every pooled size class has beyond a round size (see `rounded`).
const CLASS_SLACK: usize = 64 << 10;
/// Buffers of at least a huge page are aligned to one and advised to use them.
const HUGE_PAGE: usize = 2 << 20;
/// Bytes of free buffers kept: what the daemon holds beyond its live buffers. About what a
/// window of chunks in flight frees and allocates at a time: measured on cold copies of the
/// 1 GiB bench model, 32 MiB left ~22k page faults per copy, 64 MiB ~15k, 128 MiB ~12k.
const POOL_BYTES: usize = 64 << 20;

/// An allocation of `cap` bytes, `PAGE`-aligned, whose first `init` bytes have been written.
struct Raw {
    ptr: NonNull<u8>,
    cap: usize,
    init: usize,
}

// SAFETY: a Raw is owned exclusively (by one PageBuf or by the pool), like a Box<[u8]>.
unsafe impl Send for Raw {}

impl Raw {
    fn alloc(cap: usize) -> Raw {
        if cap >= POOL_MIN {
            return Raw { ptr: map(cap), cap, init: cap };
        }
        let layout = layout(cap);
        // SAFETY: the layout has a non-zero size.
        let ptr = NonNull::new(unsafe { alloc(layout) }).unwrap_or_else(|| handle_alloc_error(layout));
        Raw { ptr, cap, init: 0 }
    }

    fn free(self) {
        if self.cap >= POOL_MIN {
            // SAFETY: mapped by `map` with this length, unmapped once (self is consumed).
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.cap) };
            return;
        }
        // SAFETY: allocated in `Raw::alloc` with this layout, freed once (self is consumed).
        unsafe { dealloc(self.ptr.as_ptr(), layout(self.cap)) }
    }
}

/// `cap` bytes of fresh anonymous memory (zero), aligned to a huge page when that large.
fn map(cap: usize) -> NonNull<u8> {
    let align = if cap >= HUGE_PAGE { HUGE_PAGE } else { PAGE };
    let len = cap + align - PAGE;
    // SAFETY: a private anonymous mapping of a fresh range; the parts outside the aligned
    // `cap` bytes are unmapped again before anything refers to them.
    unsafe {
        let base = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if base == libc::MAP_FAILED {
            handle_alloc_error(layout(cap));
        }
        let head = (base as usize).next_multiple_of(align) - base as usize;
        let start = base.cast::<u8>().add(head);
        if head > 0 {
            libc::munmap(base, head);
        }
        if len - head > cap {
            libc::munmap(start.add(cap).cast(), len - head - cap);
        }
        if cap >= HUGE_PAGE {
            // Advice only: without huge pages the memory works the same, faulted by 4 KiB.
            libc::madvise(start.cast(), cap, libc::MADV_HUGEPAGE);
        }
        NonNull::new_unchecked(start)
    }
}

fn layout(cap: usize) -> Layout {
    Layout::from_size_align(cap, PAGE).unwrap_or_else(|_| panic!("PageBuf of {cap} bytes"))
}

/// Free buffers waiting for reuse, at most `limit` bytes of them.
struct Pool {
    free: Vec<Raw>,
    bytes: usize,
    limit: usize,
}

impl Pool {
    const fn new(limit: usize) -> Pool {
        Pool { free: Vec::new(), bytes: 0, limit }
    }

    /// The most recently freed buffer of capacity `cap` (a size class, see `rounded`) up to
    /// twice that: the sizes a pull or a tensor's conversion asks for vary, and a larger
    /// buffer already mapped is far cheaper than fresh memory.
    fn take(&mut self, cap: usize) -> Option<Raw> {
        let i = self.free.iter().rposition(|r| r.cap >= cap && r.cap <= cap.saturating_mul(2))?;
        let raw = self.free.remove(i);
        self.bytes -= raw.cap;
        Some(raw)
    }

    /// Keeps `raw`, freeing the longest-kept buffers to make room (the sizes in demand change
    /// as reads move from tensor to tensor); hands back what is not worth keeping.
    fn give(&mut self, raw: Raw) -> Option<Raw> {
        if raw.cap < POOL_MIN || raw.cap > self.limit {
            return Some(raw);
        }
        while self.bytes + raw.cap > self.limit {
            let oldest = self.free.remove(0);
            self.bytes -= oldest.cap;
            oldest.free();
        }
        self.bytes += raw.cap;
        self.free.push(raw);
        None
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool::new(POOL_BYTES));

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Capacity allocated for a request of `capacity` bytes: for pooled sizes, `CLASS_SLACK` plus the
/// next of four size classes per doubling (at most 25 % unused), so that buffers of nearby sizes
/// are interchangeable: a 4 MiB cache block, a 4 MiB chunk, and the conversion of the rows
/// covering that chunk (a few KiB more) all take the 4 MiB + 64 KiB class.
fn rounded(capacity: usize) -> usize {
    let cap = capacity.max(1).next_multiple_of(PAGE);
    if cap < POOL_MIN {
        return cap;
    }
    let body = cap.saturating_sub(CLASS_SLACK).max(PAGE);
    let step = (1usize << body.ilog2()) / 4;
    body.next_multiple_of(step.max(PAGE)) + CLASS_SLACK
}

/// An append-only buffer of initialized bytes starting at a `PAGE`-aligned address.
pub struct PageBuf {
    raw: Option<Raw>,
    len: usize,
}

impl PageBuf {
    /// An empty buffer with room for at least `capacity` bytes (a recycled one if the pool
    /// has one of about that size).
    pub fn with_capacity(capacity: usize) -> Self {
        let cap = rounded(capacity);
        let reused = if cap >= POOL_MIN { pool().take(cap) } else { None };
        PageBuf { raw: Some(reused.unwrap_or_else(|| Raw::alloc(cap))), len: 0 }
    }

    /// `len` zero bytes (a reusable aligned buffer, e.g. direct I/O's staging area).
    pub fn zeroed(len: usize) -> Self {
        let mut b = PageBuf::with_capacity(len);
        b.extend_unspecified(len).fill(0);
        b
    }

    fn raw(&self) -> &Raw {
        self.raw.as_ref().expect("a PageBuf holds its allocation until dropped")
    }

    fn raw_mut(&mut self) -> &mut Raw {
        self.raw.as_mut().expect("a PageBuf holds its allocation until dropped")
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

    /// Keeps the first `len` bytes (no-op if fewer are held).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Appends `bytes`, growing (by doubling, still aligned) when needed.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let at = self.len;
        self.reserve(bytes.len());
        // SAFETY: `reserve` made room for `bytes` after `len`; the regions cannot overlap
        // (`bytes` is borrowed from elsewhere while `self` is borrowed mutably).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.raw().ptr.as_ptr().add(at), bytes.len()) };
        self.len = at + bytes.len();
        let raw = self.raw_mut();
        raw.init = raw.init.max(at + bytes.len());
    }

    /// Appends `n` bytes of unspecified value (whatever a recycled buffer held, or zeros) and
    /// returns them. For writers that overwrite every byte they ask for, such as conversions:
    /// it saves zero-filling memory that is about to be written anyway.
    pub fn extend_unspecified(&mut self, n: usize) -> &mut [u8] {
        let at = self.len;
        self.reserve(n);
        let end = at + n;
        let raw = self.raw_mut();
        if end > raw.init {
            // SAFETY: `init..end` lies within the allocation (`reserve`); it has not been
            // written yet, so it is initialized here before a slice covers it.
            unsafe { std::ptr::write_bytes(raw.ptr.as_ptr().add(raw.init), 0, end - raw.init) };
            raw.init = end;
        }
        self.len = end;
        // SAFETY: `at..end` is within the allocation and initialized; `self` is borrowed
        // uniquely for the slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.raw().ptr.as_ptr().add(at), n) }
    }

    /// Makes room for `n` more bytes.
    fn reserve(&mut self, n: usize) {
        let need = self.len + n;
        let cap = self.raw().cap;
        if need > cap {
            let mut bigger = PageBuf::with_capacity(need.max(cap * 2));
            bigger.extend_from_slice(self.as_ref());
            *self = bigger;
        }
    }

    /// The bytes as an immutable, cheaply cloned `Bytes` (no copy; still aligned). The memory
    /// returns to the pool when the last clone drops.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for PageBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes are initialized and owned by self.
        unsafe { std::slice::from_raw_parts(self.raw().ptr.as_ptr(), self.len) }
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
        unsafe { std::slice::from_raw_parts_mut(self.raw().ptr.as_ptr(), self.len) }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        if let Some(raw) = self.raw.take() {
            if let Some(unkept) = pool().give(raw) {
                unkept.free();
            }
        }
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
        // Zeroed even when the memory is recycled and held other bytes.
        let mut dirty = PageBuf::with_capacity(1 << 20);
        dirty.extend_unspecified(1 << 20).fill(0xee);
        drop(dirty);
        assert!(PageBuf::zeroed(1 << 20).iter().all(|&b| b == 0));
    }

    #[test]
    fn unspecified_growth_covers_fresh_and_written_memory() {
        let mut b = PageBuf::with_capacity(PAGE);
        b.extend_from_slice(&[1, 2, 3]);
        let tail = b.extend_unspecified(PAGE * 3);
        assert_eq!(tail.len(), PAGE * 3);
        tail.fill(9);
        assert_eq!(&b[..4], &[1, 2, 3, 9]);
        assert_eq!(b.len(), 3 + PAGE * 3);
        b.clear();
        assert_eq!(b.extend_unspecified(10).len(), 10);
    }

    fn raw(cap: usize) -> Raw {
        Raw::alloc(cap)
    }

    #[test]
    fn pool_reuses_its_size_class_and_keeps_what_was_written() {
        let mut pool = Pool::new(16 << 20);
        let class = rounded(4 << 20);
        let mut r = raw(class);
        r.init = 1000;
        let ptr = r.ptr;
        assert!(pool.give(r).is_none());
        assert!(pool.take(rounded(5 << 20)).is_none());
        let back = pool.take(rounded((7 << 19) + CLASS_SLACK + 1)).expect("just above the 3.5 MiB class");
        assert_eq!((back.ptr, back.cap, back.init), (ptr, class, 1000));
        assert_eq!(pool.bytes, 0);
        // A smaller request may take it, down to half its class; not below.
        assert!(pool.give(back).is_none());
        assert!(pool.take(rounded(3 << 19)).is_none(), "1.5 MiB would waste over half of 4 MiB");
        let smaller = pool.take(rounded(5 << 19)).expect("2.5 MiB takes the 4 MiB buffer");
        assert_eq!(smaller.ptr, ptr);
        smaller.free();
    }

    #[test]
    fn a_full_pool_frees_its_oldest_buffers_and_never_keeps_small_ones() {
        let mut pool = Pool::new(10 << 20);
        let first = raw(4 << 20);
        let first_ptr = first.ptr;
        assert!(pool.give(first).is_none());
        assert!(pool.give(raw(5 << 20)).is_none());
        assert!(pool.give(raw(4 << 20)).is_none(), "room is made by freeing the oldest");
        assert_eq!(pool.bytes, 9 << 20);
        let r = pool.take(4 << 20).expect("the newer 4 MiB buffer");
        assert_ne!(r.ptr, first_ptr);
        r.free();
        pool.give(raw(PAGE)).expect("small buffers are not pooled").free();
        pool.give(raw(16 << 20)).expect("larger than the whole pool").free();
        pool.take(5 << 20).expect("still kept").free();
        assert_eq!(pool.bytes, 0);
    }

    #[test]
    fn capacities_round_to_size_classes() {
        assert_eq!(rounded(1), PAGE);
        assert_eq!(rounded(PAGE + 1), 2 * PAGE);
        const MIB: usize = 1 << 20;
        assert_eq!(rounded(POOL_MIN), POOL_MIN);
        assert_eq!(rounded(POOL_MIN + 1), POOL_MIN + (32 << 10));
        // A block, a chunk, and a chunk's covering rows share a class; the next is 1 MiB up.
        for n in [4 * MIB, 4 * MIB + 8192, 4 * MIB + CLASS_SLACK] {
            assert_eq!(rounded(n), 4 * MIB + CLASS_SLACK, "{n}");
        }
        assert_eq!(rounded(4 * MIB + CLASS_SLACK + 1), 5 * MIB + CLASS_SLACK);
        assert_eq!(rounded(8 * MIB), 8 * MIB + CLASS_SLACK);
        for n in (1..400).map(|i| i * 77_777) {
            let c = rounded(n);
            assert!(c >= n && c.is_multiple_of(PAGE), "{n} -> {c}");
            assert!(c < POOL_MIN || c - n <= n / 4 + CLASS_SLACK + PAGE, "{n} -> {c}");
        }
    }
}
