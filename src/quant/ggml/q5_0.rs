//! Q5_0 (`quantize_row_q5_0_ref`): Q4_0 with `d = max / -16`, `+16.5` and the fifth bit
//! of each level in a 32-bit `qh`.

use super::kquant::fp16;
use super::q4_0::{level, signed_max_scale};

pub(super) const BLOCK: usize = 32;
pub(super) const BLOCK_BYTES: usize = 22;

/// Quantizes whole blocks; `out` holds exactly `x.len() / 32 * 22` bytes.
#[inline(always)]
pub(super) fn quantize_blocks(x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let (d, id) = signed_max_scale(xb, -16.0);
        ob[0..2].copy_from_slice(&fp16(d).to_le_bytes());
        let mut qh = 0u32;
        for j in 0..16 {
            let q0 = level(xb[j] * id + 16.5, 31);
            let q1 = level(xb[j + 16] * id + 16.5, 31);
            ob[6 + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
            qh |= (((q0 & 0x10) >> 4) as u32) << j;
            qh |= (((q1 & 0x10) >> 4) as u32) << (j + 16);
        }
        ob[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}
