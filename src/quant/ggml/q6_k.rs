//! Q6_K (`quantize_row_q6_K_ref`): 256-element super-blocks of sixteen 16-element
//! sub-blocks with signed 8-bit scales and 6-bit levels.

use super::kquant::{f16_value, fp16, make_qx_lanes, mask, nearest_int, pick};

pub(super) const BLOCK: usize = 256;
pub(super) const BLOCK_BYTES: usize = 210;

/// Quantizes whole super-blocks; `out` holds exactly `x.len() / 256 * 210` bytes.
#[inline(always)]
pub(super) fn quantize_blocks(x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        quantize_block(xb, ob);
    }
}

#[inline(always)]
fn quantize_block(xb: &[f32], ob: &mut [u8]) {
    // Sub-block `ib` becomes lane `ib`: xt[i][ib] = x[16ib + i].
    let mut xt = [[0f32; 16]; 16];
    for (ib, sub) in xb.chunks_exact(16).enumerate() {
        for (i, &v) in sub.iter().enumerate() {
            xt[i][ib] = v;
        }
    }
    let mut levels = [[0f32; 16]; 16];
    let scales = make_qx_lanes(32, &xt, &mut levels);
    let mut max_scale = 0f32;
    let mut max_abs_scale = 0f32;
    for &s in &scales {
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = s;
        }
    }
    if max_abs_scale < 1e-15 {
        ob.fill(0);
        return;
    }
    let iscale = -128.0f32 / max_scale;
    let d = fp16(1.0 / iscale);
    let mut sc = [0i8; 16];
    for (o, &s) in sc.iter_mut().zip(&scales) {
        *o = nearest_int(iscale * s).min(127) as i8;
    }
    requantize(&xt, d, &sc, &mut levels);
    pack(&levels, ob);
    for (o, &s) in ob[192..208].iter_mut().zip(&sc) {
        *o = s as u8;
    }
    ob[208..210].copy_from_slice(&d.to_le_bytes());
}

/// Levels from the stored scales by division; lanes whose scale is 0 keep their search
/// levels (including the no-offset zeros of an all-zero sub-block).
#[inline(always)]
fn requantize(xt: &[[f32; 16]; 16], d: u16, sc: &[i8; 16], levels: &mut [[f32; 16]; 16]) {
    let mut dq = [0f32; 16];
    let mut keep = [0u32; 16];
    for k in 0..16 {
        dq[k] = f16_value(d) * sc[k] as f32;
        keep[k] = mask(dq[k] == 0.0);
    }
    for (lr, xr) in levels.iter_mut().zip(xt) {
        for k in 0..16 {
            let l = (nearest_int(xr[k] / dq[k]).clamp(-32, 31) + 32) as f32;
            lr[k] = pick(keep[k], lr[k], l);
        }
    }
}

/// `ql` (low 4 bits) and `qh` (high 2 bits) as the reference interleaves them.
#[inline(always)]
fn pack(levels: &[[f32; 16]; 16], ob: &mut [u8]) {
    let mut bytes = [[0u8; 16]; 16];
    for (br, lr) in bytes.iter_mut().zip(levels) {
        for k in 0..16 {
            br[k] = lr[k] as u8;
        }
    }
    let q = |e: usize| bytes[e % 16][e / 16];
    let (ql, rest) = ob.split_at_mut(128);
    let qh = &mut rest[..64];
    for h in 0..2 {
        let j = 128 * h;
        for l in 0..32 {
            let (q1, q2, q3, q4) = (q(j + l), q(j + l + 32), q(j + l + 64), q(j + l + 96));
            ql[64 * h + l] = (q1 & 0xf) | ((q3 & 0xf) << 4);
            ql[64 * h + l + 32] = (q2 & 0xf) | ((q4 & 0xf) << 4);
            qh[32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
}
