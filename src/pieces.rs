//! `Pieces`: one range of bytes held in several buffers, in order.
//!
//! A source range read through the disk cache usually spans two cache blocks (a 4 MiB chunk of
//! output rarely starts on a block boundary). Gathering it into one buffer cost a copy of every
//! byte of a cold read (~6 % of the daemon's CPU); conversion instead walks the pieces and
//! gathers only the few bytes of the one element or quant block cut in two by a boundary.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

/// Bytes held as consecutive pieces (never empty ones).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pieces(Vec<Bytes>);

impl Pieces {
    /// One buffer.
    pub fn one(bytes: Bytes) -> Pieces {
        Pieces::from_vec(vec![bytes])
    }

    /// Consecutive buffers.
    pub fn from_vec(mut parts: Vec<Bytes>) -> Pieces {
        parts.retain(|p| !p.is_empty());
        Pieces(parts)
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.0.iter().map(Bytes::len).sum()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes `range` (clamped to what is held), sharing the buffers.
    pub fn slice(&self, range: Range<usize>) -> Pieces {
        let mut out = Vec::new();
        let mut pos = 0usize;
        for p in &self.0 {
            let (lo, hi) = (range.start.max(pos), range.end.min(pos + p.len()));
            if lo < hi {
                out.push(p.slice(lo - pos..hi - pos));
            }
            pos += p.len();
        }
        Pieces(out)
    }

    /// The bytes in one buffer: shared when there is one piece, gathered otherwise.
    pub fn into_contiguous(self) -> Bytes {
        match <[Bytes; 1]>::try_from(self.0) {
            Ok([one]) => one,
            Err(parts) => {
                let mut out = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
                parts.iter().for_each(|p| out.extend_from_slice(p));
                out.freeze()
            }
        }
    }

    /// Calls `f` on consecutive slices that together are the bytes in order, each (but a
    /// ragged last one) a whole number of `unit` bytes; only a unit cut in two by a piece
    /// boundary is gathered, into a small buffer.
    pub fn for_each_aligned<E>(&self, unit: usize, mut f: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let unit = unit.max(1);
        let mut carry: Vec<u8> = Vec::new();
        for p in &self.0 {
            let mut rest: &[u8] = p;
            if !carry.is_empty() {
                let take = (unit - carry.len()).min(rest.len());
                carry.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if carry.len() < unit {
                    continue;
                }
                f(&carry)?;
                carry.clear();
            }
            let whole = rest.len() / unit * unit;
            if whole > 0 {
                f(&rest[..whole])?;
            }
            carry.extend_from_slice(&rest[whole..]);
        }
        if !carry.is_empty() {
            f(&carry)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(data: &[u8], cuts: &[usize]) -> Pieces {
        let mut parts = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&data.len())) {
            parts.push(Bytes::copy_from_slice(&data[at..c]));
            at = c;
        }
        Pieces::from_vec(parts)
    }

    #[test]
    fn aligned_walk_sees_every_byte_once_in_whole_units() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 256) as u8).collect();
        for cuts in [vec![], vec![1], vec![500], vec![7, 8, 9, 600], vec![32, 64, 999], vec![3, 990, 995]] {
            for unit in [1, 2, 32, 64, 250] {
                let p = pieces(&data, &cuts);
                let mut seen = Vec::new();
                let mut ragged = 0;
                p.for_each_aligned(unit, |s| {
                    assert_eq!(ragged, 0, "only the last slice may be ragged: cuts {cuts:?} unit {unit}");
                    ragged = s.len() % unit;
                    seen.extend_from_slice(s);
                    Ok::<(), ()>(())
                })
                .unwrap();
                assert_eq!(seen, data, "cuts {cuts:?} unit {unit}");
                assert_eq!(ragged, data.len() % unit);
            }
        }
    }

    #[test]
    fn a_ragged_tail_is_passed_last_and_errors_stop_the_walk() {
        let p = pieces(&[1, 2, 3, 4, 5], &[2]);
        let mut calls = Vec::new();
        p.for_each_aligned(2, |s| {
            calls.push(s.to_vec());
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(calls, vec![vec![1, 2], vec![3, 4], vec![5]]);
        let mut n = 0;
        assert_eq!(
            p.for_each_aligned(2, |_| {
                n += 1;
                Err("stop")
            }),
            Err("stop")
        );
        assert_eq!(n, 1);
    }

    #[test]
    fn slices_and_gathers() {
        let data: Vec<u8> = (0..100).collect();
        let p = pieces(&data, &[10, 40]);
        assert_eq!(p.len(), 100);
        assert_eq!(p.slice(5..45).into_contiguous(), Bytes::copy_from_slice(&data[5..45]));
        assert_eq!(p.slice(12..30).0.len(), 1, "within one piece: no copy needed");
        assert_eq!(p.slice(90..200).into_contiguous(), Bytes::copy_from_slice(&data[90..]));
        assert!(p.slice(100..120).is_empty());
        assert!(Pieces::from_vec(vec![Bytes::new()]).is_empty());
    }
}
