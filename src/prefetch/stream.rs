//! Sequential-stream detection for one open file: decides whether a read continues a stream
//! (and how far ahead to prefetch) or is a random access (fetch only what covers it).
//!
//! Readers of a virtual GGUF are rarely perfectly ordered: the kernel's readahead arrives on
//! several FUSE requests at once and out of order, llama.cpp's `MAP_POPULATE` faults pages from
//! one thread while `cp` streams from another, and mmap readers jump between tensors. So a read
//! joins a stream when it lands a little behind or ahead of where the stream expects to be
//! (mountpoint-s3's tolerances: 1 MiB back, 16 MiB forward), several streams are tracked at
//! once, and anything else starts a new stream with the smallest window.

use std::ops::Range;

/// A read this far behind a stream's expected offset still belongs to it (one out-of-order
/// Linux readahead is at most 256 KiB back).
pub const BACKWARD_TOLERANCE: u64 = 1 << 20;
/// A read this far ahead of a stream's expected offset still belongs to it (readahead requests
/// overtaking each other, several threads faulting a mapping in order).
pub const FORWARD_TOLERANCE: u64 = 16 << 20;
/// Bytes further than this behind a stream's frontier are done with (`Advice::passed`). Not
/// `BACKWARD_TOLERANCE`: the kernel keeps several readahead requests of a stream in flight and
/// they are served in parallel, so a request handled late may land several MiB behind a
/// frontier its successors already moved; such a read is no longer part of the stream, but
/// the chunk it needs must still be held. The same reach as the forward reordering allowed.
pub const LEFT_BEHIND: u64 = FORWARD_TOLERANCE;
/// Streams tracked per file; the least recently used is forgotten first.
pub const MAX_STREAMS: usize = 4;

/// A stream's reach: where its window starts, the most it may grow to, and how far behind
/// its frontier bytes are done with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Prefetch distance of a new stream.
    pub initial: u64,
    /// Largest prefetch distance.
    pub max: u64,
    /// Distance behind the frontier from which bytes are passed (`LEFT_BEHIND` in a mount).
    pub left_behind: u64,
}

/// What to do for one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// The stream the read belongs to (for `stalled`).
    pub stream: u64,
    /// True when the read continues a stream; false for the first read of a new one.
    pub sequential: bool,
    /// Bytes to have fetched ahead of the reader (empty for a non-sequential read).
    pub ahead: Range<u64>,
    /// Bytes this read left behind the stream for good: they are now `LEFT_BEHIND` or more
    /// behind its frontier, further than a reordered read of the stream lands (empty unless
    /// the frontier moved).
    pub passed: Range<u64>,
}

#[derive(Debug, Clone)]
struct Stream {
    id: u64,
    /// Where the next read is expected: the furthest end read so far.
    next: u64,
    window: u64,
    last_used: u64,
}

/// The streams of one open file.
#[derive(Debug)]
pub struct StreamDetector {
    limits: StreamLimits,
    streams: Vec<Stream>,
    clock: u64,
    next_id: u64,
}

impl StreamDetector {
    /// A detector with no stream yet.
    pub fn new(limits: StreamLimits) -> Self {
        let initial = limits.initial.max(1);
        let limits = StreamLimits { initial, max: limits.max.max(initial), ..limits };
        Self { limits, streams: Vec::new(), clock: 0, next_id: 1 }
    }

    /// Records a read of `range` and says whether it is sequential and what to prefetch.
    pub fn observe(&mut self, range: Range<u64>) -> Advice {
        self.clock += 1;
        let clock = self.clock;
        if let Some(s) =
            self.streams.iter_mut().filter(|s| joins(s.next, range.start)).min_by_key(|s| s.next.abs_diff(range.start))
        {
            let before = s.next;
            s.next = s.next.max(range.end);
            s.last_used = clock;
            let behind = |next: u64| next.saturating_sub(self.limits.left_behind);
            return Advice {
                stream: s.id,
                sequential: true,
                ahead: s.next..s.next.saturating_add(s.window),
                passed: behind(before)..behind(s.next),
            };
        }
        let id = self.next_id;
        self.next_id += 1;
        let stream = Stream { id, next: range.end, window: self.limits.initial, last_used: clock };
        if self.streams.len() < MAX_STREAMS {
            self.streams.push(stream);
        } else if let Some(oldest) = self.streams.iter_mut().min_by_key(|s| s.last_used) {
            *oldest = stream;
        }
        Advice { stream: id, sequential: false, ahead: range.end..range.end, passed: 0..0 }
    }

    /// The reader of `stream` had to wait for data: it keeps up with the prefetcher, so the
    /// window doubles (up to the limit).
    pub fn stalled(&mut self, stream: u64) {
        let max = self.limits.max;
        if let Some(s) = self.streams.iter_mut().find(|s| s.id == stream) {
            s.window = s.window.saturating_mul(2).min(max);
        }
    }

    /// The current window of `stream` (tests, logs).
    pub fn window(&self, stream: u64) -> Option<u64> {
        self.streams.iter().find(|s| s.id == stream).map(|s| s.window)
    }
}

fn joins(expected: u64, start: u64) -> bool {
    start.saturating_add(BACKWARD_TOLERANCE) >= expected && start <= expected.saturating_add(FORWARD_TOLERANCE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const LIMITS: StreamLimits = StreamLimits { initial: MIB, max: 64 * MIB, left_behind: LEFT_BEHIND };

    #[test]
    fn the_first_read_is_random_and_the_next_in_order_is_sequential() {
        let mut d = StreamDetector::new(LIMITS);
        let first = d.observe(0..128 << 10);
        assert!(!first.sequential);
        assert!(first.ahead.is_empty());
        let second = d.observe(128 << 10..256 << 10);
        assert!(second.sequential);
        assert_eq!(second.stream, first.stream);
        assert_eq!(second.ahead, (256 << 10)..(256 << 10) + MIB);
    }

    #[test]
    fn slightly_out_of_order_reads_stay_in_the_stream() {
        let mut d = StreamDetector::new(LIMITS);
        let s = d.observe(0..MIB).stream;
        // Readahead overtaking: a later block first, then the one before it.
        let ahead = d.observe(MIB + (512 << 10)..2 * MIB);
        let behind = d.observe(MIB..MIB + (512 << 10));
        assert!(ahead.sequential && behind.sequential);
        assert_eq!((ahead.stream, behind.stream), (s, s));
        assert_eq!(behind.ahead.start, 2 * MIB, "the stream's frontier never moves back");
        // A jump forward within the tolerance (another thread faulting further on) too.
        assert!(d.observe(10 * MIB..11 * MIB).sequential);
    }

    #[test]
    fn bytes_are_passed_once_the_frontier_is_far_enough_beyond_them() {
        let mut d = StreamDetector::new(LIMITS);
        let far = LEFT_BEHIND;
        assert!(d.observe(0..MIB).passed.is_empty(), "a new stream passes nothing");
        assert!(d.observe(MIB..far).passed.is_empty(), "nothing is that far behind yet");
        assert!(d.observe(far..far + MIB).passed == (0..MIB));
        // A reordered read behind the frontier moves nothing.
        assert!(d.observe(far - 4096..far).passed.is_empty());
        assert!(d.observe(far + MIB..far + 4 * MIB).passed == (MIB..4 * MIB));
    }

    #[test]
    fn the_window_doubles_on_stalls_up_to_the_limit() {
        let mut d = StreamDetector::new(LIMITS);
        let s = d.observe(0..MIB).stream;
        let mut seen = vec![d.window(s).unwrap()];
        for _ in 0..10 {
            d.stalled(s);
            seen.push(d.window(s).unwrap());
        }
        assert_eq!(&seen[..8], &[MIB, 2 * MIB, 4 * MIB, 8 * MIB, 16 * MIB, 32 * MIB, 64 * MIB, 64 * MIB]);
        assert_eq!(*seen.last().unwrap(), 64 * MIB);
    }

    #[test]
    fn a_real_seek_starts_a_new_stream_with_the_initial_window() {
        let mut d = StreamDetector::new(LIMITS);
        let s = d.observe(0..MIB).stream;
        assert!(d.observe(MIB..3 * MIB).sequential);
        for _ in 0..5 {
            d.stalled(s);
        }
        let far = d.observe(500 * MIB..501 * MIB);
        assert!(!far.sequential);
        assert_ne!(far.stream, s);
        assert_eq!(d.window(far.stream), Some(MIB));
        let backwards = d.observe(0..4096);
        assert!(!backwards.sequential, "3 MiB behind the first stream is a seek, not reordering");
        // The old stream is still known: a reader coming back to it keeps its window.
        let resumed = d.observe(3 * MIB..4 * MIB);
        assert_eq!((resumed.stream, resumed.sequential), (s, true));
        assert_eq!(resumed.ahead.end - resumed.ahead.start, 32 * MIB);
    }

    #[test]
    fn interleaved_readers_keep_separate_streams_and_old_ones_are_forgotten() {
        let mut d = StreamDetector::new(LIMITS);
        let a = d.observe(0..MIB).stream;
        let b = d.observe(1000 * MIB..1001 * MIB).stream;
        assert!(d.observe(MIB..2 * MIB).sequential);
        assert!(d.observe(1001 * MIB..1002 * MIB).sequential);
        assert_ne!(a, b);
        for i in 0..MAX_STREAMS as u64 {
            d.observe((2000 + 100 * i) * MIB..(2001 + 100 * i) * MIB);
        }
        assert!(d.window(a).is_none() && d.window(b).is_none(), "least recently used streams are dropped");
    }
}
