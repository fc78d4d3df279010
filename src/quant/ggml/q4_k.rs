//! Q4_K (`quantize_row_q4_K_ref`): 256-element super-blocks of eight 32-element
//! sub-blocks, each with a 6-bit scale and min, 4-bit levels.

use super::kquant::{f16_value, fp16, make_qkx2_lanes, nearest_int, Qkx2};

pub(super) const BLOCK: usize = 256;
pub(super) const BLOCK_BYTES: usize = 144;

const SEARCH: Qkx2 = Qkx2 { nmax: 15, rmin: -1.0, rdelta: 0.1, nstep: 20 };

/// Quantizes whole super-blocks; `out` holds exactly `x.len() / 256 * 144` bytes.
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
    requantize(&xt, d, dmin, &scales, 15, &mut levels);
    let qs = &mut ob[16..144];
    for c in 0..4 {
        for l in 0..32 {
            qs[32 * c + l] = levels[l][2 * c] | (levels[l][2 * c + 1] << 4);
        }
    }
}

/// Sub-block `j` becomes lane `j`: `xt[i][j] = x[32j + i]`.
#[inline(always)]
pub(super) fn transpose(xb: &[f32]) -> [[f32; 8]; 32] {
    let mut xt = [[0f32; 8]; 32];
    for (j, sub) in xb.chunks_exact(32).enumerate() {
        for (i, &v) in sub.iter().enumerate() {
            xt[i][j] = v;
        }
    }
    xt
}

/// The reference's weights `sqrt(Σx²/32) + |x|`, sum taken in element order.
#[inline(always)]
pub(super) fn weights(xt: &[[f32; 8]; 32]) -> [[f32; 8]; 32] {
    let mut sum_x2 = [0f32; 8];
    for row in xt {
        for k in 0..8 {
            sum_x2[k] += row[k] * row[k];
        }
    }
    let mut av_x = [0f32; 8];
    for k in 0..8 {
        av_x[k] = (sum_x2[k] / 32.0).sqrt();
    }
    let mut w = [[0f32; 8]; 32];
    for (wr, xr) in w.iter_mut().zip(xt) {
        for k in 0..8 {
            wr[k] = av_x[k] + xr[k].abs();
        }
    }
    w
}

/// The super-block's f16 `d`, `dmin` and the 12 packed 6-bit (scale, min) bytes.
pub(super) fn pack_scales(scales: &[f32; 8], mins: &[f32; 8]) -> (u16, u16, [u8; 12]) {
    let mut max_scale = 0f32;
    let mut max_min = 0f32;
    for j in 0..8 {
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 { 63.0 / max_scale } else { 0.0 };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut s = [0u8; 12];
    for j in 0..8 {
        // C stores nearest_int in a uint8_t (wraps) before taking MIN(63, ·).
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            s[j] = ls;
            s[j + 4] = lm;
        } else {
            s[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
            s[j - 4] |= (ls >> 4) << 6;
            s[j] |= (lm >> 4) << 6;
        }
    }
    (fp16(max_scale / 63.0), fp16(max_min / 63.0), s)
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j`.
#[inline(always)]
pub(super) fn scale_min(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Levels recomputed from the stored (f16-rounded) scales by division, as the reference
/// does; sub-blocks whose effective scale is 0 keep their search levels.
#[inline(always)]
pub(super) fn requantize(
    xt: &[[f32; 8]; 32],
    d: u16,
    dmin: u16,
    scales: &[u8; 12],
    nmax: i32,
    levels: &mut [[u8; 8]; 32],
) {
    let mut dq = [0f32; 8];
    let mut dm = [0f32; 8];
    let mut keep = [false; 8];
    for j in 0..8 {
        let (sc, m) = scale_min(j, scales);
        dq[j] = f16_value(d) * sc as f32;
        dm[j] = f16_value(dmin) * m as f32;
        keep[j] = dq[j] == 0.0;
    }
    for (lr, xr) in levels.iter_mut().zip(xt) {
        for k in 0..8 {
            let l = nearest_int((xr[k] + dm[k]) / dq[k]).clamp(0, nmax) as u8;
            lr[k] = if keep[k] { lr[k] } else { l };
        }
    }
}
