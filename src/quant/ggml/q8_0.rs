//! Q8_0 as ggml quantizes it (`quantize_row_q8_0_ref`): `roundf`, i.e. half away from
//! zero, where gguf-py's numpy version (`crate::quant`'s Q8_0) rounds half to even.

use super::kquant::{cvtt, fp16};

pub(super) const BLOCK: usize = 32;
pub(super) const BLOCK_BYTES: usize = 34;

/// Quantizes whole blocks; `out` holds exactly `x.len() / 32 * 34` bytes.
#[inline(always)]
pub(super) fn quantize_blocks(x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        let mut amax = 0f32;
        for &v in xb {
            // C's MAX(amax, fabsf(v)) macro, NaN behaviour included.
            amax = if amax > v.abs() { amax } else { v.abs() };
        }
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        ob[0..2].copy_from_slice(&fp16(d).to_le_bytes());
        for (o, &v) in ob[2..].iter_mut().zip(xb) {
            *o = cvtt((v * id).round()) as u8;
        }
    }
}
