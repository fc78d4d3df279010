//! Q5_K (`quantize_row_q5_K_ref`): Q4_K's scale layout with 5-bit levels (4 low bits in
//! `qs`, the fifth in `qh`).

use super::kquant::{make_qkx2_lanes, Qkx2};
use super::q4_k::{pack_scales, requantize, transpose, weights};

pub(super) const BLOCK: usize = 256;
pub(super) const BLOCK_BYTES: usize = 176;

const SEARCH: Qkx2 = Qkx2 { nmax: 31, rmin: -0.5, rdelta: 0.1, nstep: 15 };

/// Quantizes whole super-blocks; `out` holds exactly `x.len() / 256 * 176` bytes.
pub(super) fn quantize_blocks(x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(xb, ob);
    }
}

fn quantize_block(xb: &[f32], ob: &mut [u8]) {
    let xt = transpose(xb);
    let w = weights(&xt);
    let mut levels = [[0u8; 8]; 32];
    let sm = make_qkx2_lanes(&SEARCH, &xt, &w, &mut levels);
    let (d, dmin, scales) = pack_scales(&sm.scale, &sm.the_min);
    ob[0..2].copy_from_slice(&d.to_le_bytes());
    ob[2..4].copy_from_slice(&dmin.to_le_bytes());
    ob[4..16].copy_from_slice(&scales);
    requantize(&xt, d, dmin, &scales, 31, &mut levels);
    let (qh, qs) = ob[16..176].split_at_mut(32);
    qh.fill(0);
    for c in 0..4 {
        for l in 0..32 {
            let (lo, hi) = (levels[l][2 * c], levels[l][2 * c + 1]);
            qh[l] |= ((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1));
            qs[32 * c + l] = (lo & 0xf) | ((hi & 0xf) << 4);
        }
    }
}
