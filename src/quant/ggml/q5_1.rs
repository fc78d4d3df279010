//! Q5_1 (`quantize_row_q5_1_ref`): 32-element blocks with a scale and a min, levels by
//! truncating `(x - min)·id + 0.5` with no clamp.

use super::kquant::{cvtt, fp16};

pub(super) const BLOCK: usize = 32;
pub(super) const BLOCK_BYTES: usize = 24;

/// Quantizes whole blocks; `out` holds exactly `x.len() / 32 * 24` bytes.
#[inline(always)]
pub(super) fn quantize_blocks(x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let mut min = f32::MAX;
        let mut max = -f32::MAX;
        for &v in xb {
            if v < min {
                min = v;
            }
            if v > max {
                max = v;
            }
        }
        let d = (max - min) / 31.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        ob[0..2].copy_from_slice(&fp16(d).to_le_bytes());
        ob[2..4].copy_from_slice(&fp16(min).to_le_bytes());
        let mut qh = 0u32;
        for j in 0..16 {
            let q0 = cvtt((xb[j] - min) * id + 0.5) as u8;
            let q1 = cvtt((xb[j + 16] - min) * id + 0.5) as u8;
            ob[8 + j] = (q0 & 0xf) | ((q1 & 0xf) << 4);
            qh |= (((q0 & 0x10) >> 4) as u32) << j;
            qh |= (((q1 & 0x10) >> 4) as u32) << (j + 16);
        }
        ob[4..8].copy_from_slice(&qh.to_le_bytes());
    }
}
