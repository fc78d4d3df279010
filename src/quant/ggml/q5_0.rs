//! Q5_0 (`quantize_row_q5_0_ref`): Q4_0 with `d = max / -16`, `+16.5` and the fifth bit
//! of each level in a 32-bit `qh`.

use super::kquant::fp16;
use super::q4_0::{levels, signed_max_scale};

pub(super) const BLOCK: usize = 32;
pub(super) const BLOCK_BYTES: usize = 22;

/// Quantizes whole blocks; `out` holds exactly `x.len() / 32 * 22` bytes.
#[inline(always)]
pub(super) fn quantize_blocks(x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let (d, id) = signed_max_scale(xb, -16.0);
        ob[0..2].copy_from_slice(&fp16(d).to_le_bytes());
        let q = levels(xb, id, 16.5, 31);
        pack5(&q, &mut ob[2..22]);
    }
}

/// `qh` (bit i = bit 4 of level i, one u32 LE) then `qs` (low nibbles, j with j+16).
#[inline(always)]
pub(super) fn pack5(q: &[u8; 32], out: &mut [u8]) {
    let mut qh = 0u32;
    for (i, &l) in q.iter().enumerate() {
        qh |= (((l & 0x10) >> 4) as u32) << i;
    }
    out[0..4].copy_from_slice(&qh.to_le_bytes());
    for (o, (lo, hi)) in out[4..20].iter_mut().zip(q[..16].iter().zip(&q[16..])) {
        *o = (lo & 0xf) | ((hi & 0xf) << 4);
    }
}
