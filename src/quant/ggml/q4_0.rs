//! Q4_0 (`quantize_row_q4_0_ref`): 32-element blocks, `d = max / -8`, levels by
//! truncating `x·id + 8.5`.

use super::kquant::{cvtt, fp16};

pub(super) const BLOCK: usize = 32;
pub(super) const BLOCK_BYTES: usize = 18;

/// Quantizes whole blocks; `out` holds exactly `x.len() / 32 * 18` bytes.
#[inline(always)]
pub(super) fn quantize_blocks(x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let (d, id) = signed_max_scale(xb, -8.0);
        ob[0..2].copy_from_slice(&fp16(d).to_le_bytes());
        for j in 0..16 {
            let q0 = level(xb[j] * id + 8.5, 15);
            let q1 = level(xb[j + 16] * id + 8.5, 15);
            ob[2 + j] = q0 | (q1 << 4);
        }
    }
}

/// `d = max / div` for the first element of largest |x| (sign kept) and `id = 1/d`.
#[inline(always)]
pub(super) fn signed_max_scale(xb: &[f32], div: f32) -> (f32, f32) {
    let mut amax = 0f32;
    let mut max = 0f32;
    for &v in xb {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / div;
    (d, if d != 0.0 { 1.0 / d } else { 0.0 })
}

/// C's `MIN(top, (int8_t)v)` stored in a `uint8_t`: x86 truncation to a byte, signed min.
#[inline(always)]
pub(super) fn level(v: f32, top: i8) -> u8 {
    (cvtt(v) as i8).min(top) as u8
}
