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
    // Bit 4 of 8 bytes at a time: the multiply gathers bit 8k of the masked word into bit
    // 56 + k (no two partial products meet), i.e. byte k's bit lands in bit k of the top byte.
    let mut qh = 0u32;
    for (c, chunk) in q.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7]]);
        let bits = ((w >> 4) & 0x0101_0101_0101_0101).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        qh |= (bits as u32) << (8 * c);
    }
    out[0..4].copy_from_slice(&qh.to_le_bytes());
    for (o, (lo, hi)) in out[4..20].iter_mut().zip(q[..16].iter().zip(&q[16..])) {
        *o = (lo & 0xf) | ((hi & 0xf) << 4);
    }
}
