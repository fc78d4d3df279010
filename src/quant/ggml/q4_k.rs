//! Q4_K (`quantize_row_q4_K_ref`): 256-element super-blocks of eight 32-element
//! sub-blocks, each with a 6-bit scale and min, 4-bit levels. The super-block pipeline here
//! is shared with Q5_K, which differs only in the search tuning and the level packing.

use super::kquant::{f16_value, fp16, make_qkx2_lanes, mask, nearest_int, pick, Qkx2};

pub(super) const BLOCK: usize = 256;
pub(super) const BLOCK_BYTES: usize = 144;

const SEARCH: Qkx2 = Qkx2 { nmax: 15, rmin: -1.0, rdelta: 0.1, nstep: 20 };

/// Quantizes whole super-blocks; `out` holds exactly `x.len() / 256 * 144` bytes.
#[inline(always)]
pub(super) fn quantize_blocks(x: &[f32], out: &mut [u8]) {
    quantize_kx2(&SEARCH, BLOCK_BYTES, pack_levels, x, out);
}

/// Q4_K `qs` of the super-block in lanes `lane0..lane0 + 8`: sub-block 2c in the low nibbles of `qs[32c..]`, 2c+1 in the high ones.
#[inline(always)]
fn pack_levels<const LANES: usize>(levels: &[[u8; LANES]; 32], lane0: usize, ob: &mut [u8]) {
    let qs = &mut ob[16..144];
    for c in 0..4 {
        for l in 0..32 {
            qs[32 * c + l] = levels[l][lane0 + 2 * c] | (levels[l][lane0 + 2 * c + 1] << 4);
        }
    }
}

/// The Q4_K/Q5_K pipeline over whole super-blocks, two at a time where possible: their 16
/// sub-blocks run side by side as the lanes of one search, which keeps twice as many
/// independent accumulation chains in flight.
#[inline(always)]
pub(super) fn quantize_kx2(
    search: &Qkx2,
    block_bytes: usize,
    pack: fn(&[[u8; 16]; 32], usize, &mut [u8]),
    x: &[f32],
    out: &mut [u8],
) {
    let pairs = x.chunks_exact(2 * BLOCK);
    let rest = pairs.remainder();
    let mut outs = out.chunks_exact_mut(2 * block_bytes);
    for (xs, os) in pairs.zip(&mut outs) {
        group::<16>(search, block_bytes, pack, xs, os);
    }
    if !rest.is_empty() {
        // One last super-block: run it in the first 8 of 16 lanes, the rest padded with
        // zeros whose results are dropped (lanes never influence each other).
        let mut padded = [0f32; 2 * BLOCK];
        padded[..BLOCK].copy_from_slice(rest);
        let mut tmp = [0u8; 2 * 176];
        group::<16>(search, block_bytes, pack, &padded, &mut tmp[..2 * block_bytes]);
        outs.into_remainder().copy_from_slice(&tmp[..block_bytes]);
    }
}

#[inline(always)]
fn group<const LANES: usize>(
    search: &Qkx2,
    block_bytes: usize,
    pack: fn(&[[u8; LANES]; 32], usize, &mut [u8]),
    xs: &[f32],
    os: &mut [u8],
) {
    let xt = transpose::<LANES>(xs);
    let w = weights(&xt);
    let mut levels = [[0f32; LANES]; 32];
    let sm = make_qkx2_lanes(search, &xt, &w, &mut levels);
    let mut dq = [0f32; LANES];
    let mut dm = [0f32; LANES];
    for (s, ob) in os.chunks_exact_mut(block_bytes).enumerate() {
        let lanes = 8 * s..8 * s + 8;
        let (d, dmin, scales) = pack_scales(&sm.scale[lanes.clone()], &sm.the_min[lanes]);
        ob[0..2].copy_from_slice(&d.to_le_bytes());
        ob[2..4].copy_from_slice(&dmin.to_le_bytes());
        ob[4..16].copy_from_slice(&scales);
        for j in 0..8 {
            let (sc, m) = scale_min(j, &scales);
            dq[8 * s + j] = f16_value(d) * sc as f32;
            dm[8 * s + j] = f16_value(dmin) * m as f32;
        }
    }
    requantize(&xt, &dq, &dm, search.nmax, &mut levels);
    let mut bytes = [[0u8; LANES]; 32];
    for (br, lr) in bytes.iter_mut().zip(&levels) {
        for k in 0..LANES {
            br[k] = lr[k] as u8;
        }
    }
    for (s, ob) in os.chunks_exact_mut(block_bytes).enumerate() {
        pack(&bytes, 8 * s, ob);
    }
}

/// Sub-block `j` (of consecutive super-blocks) becomes lane `j`: `xt[i][j] = x[32j + i]`.
#[inline(always)]
fn transpose<const LANES: usize>(xs: &[f32]) -> [[f32; LANES]; 32] {
    let mut xt = [[0f32; LANES]; 32];
    for (j, sub) in xs.chunks_exact(32).enumerate().take(LANES) {
        for (i, &v) in sub.iter().enumerate() {
            xt[i][j] = v;
        }
    }
    xt
}

/// The reference's weights `sqrt(Σx²/32) + |x|`, sum taken in element order.
#[inline(always)]
fn weights<const LANES: usize>(xt: &[[f32; LANES]; 32]) -> [[f32; LANES]; 32] {
    let mut sum_x2 = [0f32; LANES];
    for row in xt {
        for k in 0..LANES {
            sum_x2[k] += row[k] * row[k];
        }
    }
    let mut av_x = [0f32; LANES];
    for k in 0..LANES {
        av_x[k] = (sum_x2[k] / 32.0).sqrt();
    }
    let mut w = [[0f32; LANES]; 32];
    for (wr, xr) in w.iter_mut().zip(xt) {
        for k in 0..LANES {
            wr[k] = av_x[k] + xr[k].abs();
        }
    }
    w
}

/// The super-block's f16 `d`, `dmin` and the 12 packed 6-bit (scale, min) bytes.
#[inline(always)]
fn pack_scales(scales: &[f32], mins: &[f32]) -> (u16, u16, [u8; 12]) {
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
fn scale_min(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0xf) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

/// Levels recomputed from the stored (f16-rounded) scales by division, as the reference
/// does; sub-blocks whose effective scale `dq` is 0 keep their search levels.
#[inline(always)]
fn requantize<const LANES: usize>(
    xt: &[[f32; LANES]; 32],
    dq: &[f32; LANES],
    dm: &[f32; LANES],
    nmax: i32,
    levels: &mut [[f32; LANES]; 32],
) {
    let mut keep = [0u32; LANES];
    for k in 0..LANES {
        keep[k] = mask(dq[k] == 0.0);
    }
    for (lr, xr) in levels.iter_mut().zip(xt) {
        for k in 0..LANES {
            let l = nearest_int((xr[k] + dm[k]) / dq[k]).clamp(0, nmax) as f32;
            lr[k] = pick(keep[k], lr[k], l);
        }
    }
}
