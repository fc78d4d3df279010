//! Scalar primitives and the k-quant scale searches shared by the ggml quantizers.
//!
//! The searches run "lane-wise": `LANES` independent sub-blocks side by side, element `i`
//! of every lane in `x[i]`. Each lane performs exactly the C reference's operations in the
//! C order (so sums accumulate sequentially per lane, bit for bit), while the loop over
//! lanes is a straight-line array operation the compiler turns into SIMD.

use crate::quant::scalar::f16_bits_to_f32;

/// ggml's `nearest_int`: the 1.5·2^23 magic-add trick, kept literal (not `round_ties_even`)
/// so huge, infinite and NaN inputs give the same garbage as the C code.
#[inline(always)]
pub(super) fn nearest_int(f: f32) -> i32 {
    let v = f + 12_582_912.0f32;
    (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// x86-64 `cvttss2si`: C's float→int truncation, which yields `i32::MIN` for NaN and
/// out-of-range values where Rust's `as` saturates. C then keeps only the low byte when the
/// destination is a char, so callers truncate the result with `as u8` / `as i8`.
#[inline(always)]
pub(super) fn cvtt(f: f32) -> i32 {
    // NaN lies outside every range, so it takes this branch too.
    if !(-2_147_483_648.0..2_147_483_648.0).contains(&f) {
        i32::MIN
    } else {
        f as i32
    }
}

/// ggml-base's software `GGML_FP32_TO_FP16`: round to nearest even for every non-NaN input
/// and `sign|0x7E00` for NaN (payload dropped, unlike `half`).
#[inline(always)]
pub(super) fn fp16(f: f32) -> u16 {
    let scale_to_inf = f32::from_bits(0x7780_0000);
    let scale_to_zero = f32::from_bits(0x0880_0000);
    let mut base = (f.abs() * scale_to_inf) * scale_to_zero;
    let w = f.to_bits();
    let shl1_w = w.wrapping_add(w);
    let sign = w & 0x8000_0000;
    let bias = (shl1_w & 0xff00_0000).max(0x7100_0000);
    base += f32::from_bits((bias >> 1) + 0x0780_0000);
    let bits = base.to_bits();
    let nonsign = ((bits >> 13) & 0x7c00) + (bits & 0x0fff);
    ((sign >> 16) | if shl1_w > 0xff00_0000 { 0x7e00 } else { nonsign }) as u16
}

/// The f32 value of a stored f16, as the requantization passes read it back.
#[inline(always)]
pub(super) fn f16_value(h: u16) -> f32 {
    f16_bits_to_f32(h)
}

/// All-ones when `c` holds: lane masks kept as integers (not `bool` arrays) so that the
/// selects below compile to vector blends.
#[inline(always)]
pub(super) fn mask(c: bool) -> u32 {
    (c as u32).wrapping_neg()
}

/// `m ? a : b` on the bits: exact for every f32, NaN payloads included.
#[inline(always)]
pub(super) fn pick(m: u32, a: f32, b: f32) -> f32 {
    f32::from_bits((a.to_bits() & m) | (b.to_bits() & !m))
}

/// Tuning of `make_qkx2_quants` for one k-quant type (Q4_K: 15, -1, 0.1, 20).
pub(super) struct Qkx2 {
    pub nmax: i32,
    pub rmin: f32,
    pub rdelta: f32,
    pub nstep: i32,
}

/// Results of a lane-wise `make_qkx2_quants`: per lane the scale and `-min` (`the_min`).
pub(super) struct ScaleMin<const LANES: usize> {
    pub scale: [f32; LANES],
    pub the_min: [f32; LANES],
}

/// ggml's `make_qkx2_quants` with `use_mad = false` (the only setting Q4_K/Q5_K use) on
/// `LANES` sub-blocks of `N` elements at once; writes the chosen levels (small integers,
/// as f32) to `levels`.
#[inline(always)]
pub(super) fn make_qkx2_lanes<const N: usize, const LANES: usize>(
    p: &Qkx2,
    x: &[[f32; LANES]; N],
    w: &[[f32; LANES]; N],
    levels: &mut [[f32; LANES]; N],
) -> ScaleMin<LANES> {
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = w[0];
    let mut sum_x = [0f32; LANES];
    for k in 0..LANES {
        sum_x[k] = sum_w[k] * x[0][k];
    }
    for i in 1..N {
        for k in 0..LANES {
            let v = x[i][k];
            min[k] = if v < min[k] { v } else { min[k] };
            max[k] = if v > max[k] { v } else { max[k] };
            sum_w[k] += w[i][k];
            sum_x[k] += w[i][k] * v;
        }
    }
    let mut iscale = [0f32; LANES];
    let mut scale = [0f32; LANES];
    let mut flat = [0u32; LANES];
    for k in 0..LANES {
        min[k] = if min[k] > 0.0 { 0.0 } else { min[k] };
        flat[k] = mask(max[k] == min[k]);
        iscale[k] = p.nmax as f32 / (max[k] - min[k]);
        scale[k] = 1.0 / iscale[k];
    }
    // The levels of a lane are a pure function of the (iscale, min) pair that produced
    // them, so the search remembers the winning pair and recomputes them once at the end
    // rather than copying 32 levels whenever a trial wins.
    let mut best_iscale = iscale;
    let mut best_from = min;
    let mut best_error = [0f32; LANES];
    for i in 0..N {
        for k in 0..LANES {
            let l = nearest_int(iscale[k] * (x[i][k] - min[k])).clamp(0, p.nmax) as f32;
            let diff = scale[k] * l + min[k] - x[i][k];
            best_error[k] += w[i][k] * (diff * diff);
        }
    }
    let mut laux = [[0f32; LANES]; N];
    for is in 0..=p.nstep {
        let num = p.rmin + p.rdelta * is as f32 + p.nmax as f32;
        // `min` moves whenever a trial wins, and later trials measure from the new one.
        for k in 0..LANES {
            iscale[k] = num / (max[k] - min[k]);
        }
        let mut sum_l = [0f32; LANES];
        let mut sum_l2 = [0f32; LANES];
        let mut sum_xl = [0f32; LANES];
        for i in 0..N {
            for k in 0..LANES {
                let l = nearest_int(iscale[k] * (x[i][k] - min[k])).clamp(0, p.nmax) as f32;
                laux[i][k] = l;
                let wl = w[i][k] * l;
                sum_l[k] += wl;
                sum_l2[k] += wl * l;
                sum_xl[k] += wl * x[i][k];
            }
        }
        let mut this_scale = [0f32; LANES];
        let mut this_min = [0f32; LANES];
        let mut ok = [0u32; LANES];
        for k in 0..LANES {
            let d = sum_w[k] * sum_l2[k] - sum_l[k] * sum_l[k];
            ok[k] = mask(d > 0.0);
            let s = (sum_w[k] * sum_xl[k] - sum_x[k] * sum_l[k]) / d;
            let m = (sum_l2[k] * sum_x[k] - sum_l[k] * sum_xl[k]) / d;
            let positive = mask(m > 0.0);
            this_scale[k] = pick(positive, sum_xl[k] / sum_l2[k], s);
            this_min[k] = pick(positive, 0.0, m);
        }
        let mut cur_error = [0f32; LANES];
        for i in 0..N {
            for k in 0..LANES {
                let diff = this_scale[k] * laux[i][k] + this_min[k] - x[i][k];
                cur_error[k] += w[i][k] * (diff * diff);
            }
        }
        for k in 0..LANES {
            let better = ok[k] & mask(cur_error[k] < best_error[k]);
            best_iscale[k] = pick(better, iscale[k], best_iscale[k]);
            best_from[k] = pick(better, min[k], best_from[k]);
            best_error[k] = pick(better, cur_error[k], best_error[k]);
            scale[k] = pick(better, this_scale[k], scale[k]);
            min[k] = pick(better, this_min[k], min[k]);
        }
    }
    // A flat lane (all elements equal and <= 0) returns early in C, before any search,
    // with levels 0; its lane of the search above worked on garbage from a zero range.
    for i in 0..N {
        for k in 0..LANES {
            let l = nearest_int(best_iscale[k] * (x[i][k] - best_from[k])).clamp(0, p.nmax) as f32;
            levels[i][k] = pick(flat[k], 0.0, l);
        }
    }
    let mut the_min = [0f32; LANES];
    for k in 0..LANES {
        scale[k] = pick(flat[k], 0.0, scale[k]);
        the_min[k] = -pick(flat[k], max[k], min[k]);
    }
    ScaleMin { scale, the_min }
}

/// ggml's `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw = NULL)` (the Q6_K search) on
/// `LANES` sub-blocks of `N` elements; writes the `L + nmax` levels (as f32) to `levels`
/// and returns the signed scale of each lane.
#[inline(always)]
pub(super) fn make_qx_lanes<const N: usize, const LANES: usize>(
    nmax: i32,
    x: &[[f32; LANES]; N],
    levels: &mut [[f32; LANES]; N],
) -> [f32; LANES] {
    let mut amax = [0f32; LANES];
    let mut max = [0f32; LANES];
    for row in x {
        for k in 0..LANES {
            let ax = row[k].abs();
            let m = mask(ax > amax[k]);
            amax[k] = pick(m, ax, amax[k]);
            max[k] = pick(m, row[k], max[k]);
        }
    }
    // rmse_type 1 weighs by x²; w and w·x are the same f32 in every pass.
    let mut w = [[0f32; LANES]; N];
    let mut wx = [[0f32; LANES]; N];
    for i in 0..N {
        for k in 0..LANES {
            w[i][k] = x[i][k] * x[i][k];
            wx[i][k] = w[i][k] * x[i][k];
        }
    }
    let mut iscale = [0f32; LANES];
    for k in 0..LANES {
        iscale[k] = -(nmax as f32) / max[k];
    }
    // As in make_qkx2_lanes, remember the winning iscale and recompute levels at the end.
    let mut best_iscale = iscale;
    let (mut sumlx, mut suml2) = qx_sums(nmax, x, &w, &wx, &iscale);
    let mut scale = [0f32; LANES];
    let mut best = [0f32; LANES];
    for k in 0..LANES {
        scale[k] = pick(mask(suml2[k] != 0.0), sumlx[k] / suml2[k], 0.0);
        best[k] = scale[k] * sumlx[k];
    }
    for is in (-9..=9).filter(|&is| is != 0) {
        let num = -(nmax as f32 + 0.1f32 * is as f32);
        for k in 0..LANES {
            iscale[k] = num / max[k];
        }
        (sumlx, suml2) = qx_sums(nmax, x, &w, &wx, &iscale);
        for k in 0..LANES {
            let better = mask(suml2[k] > 0.0) & mask(sumlx[k] * sumlx[k] > best[k] * suml2[k]);
            best_iscale[k] = pick(better, iscale[k], best_iscale[k]);
            scale[k] = pick(better, sumlx[k] / suml2[k], scale[k]);
            best[k] = pick(better, scale[k] * sumlx[k], best[k]);
        }
    }
    // An all-zero lane returns before any search, with levels 0 (no +nmax offset).
    let mut zero = [0u32; LANES];
    for k in 0..LANES {
        zero[k] = mask(amax[k] < 1e-15);
        scale[k] = pick(zero[k], 0.0, scale[k]);
    }
    for i in 0..N {
        for k in 0..LANES {
            let l = nearest_int(best_iscale[k] * x[i][k]).clamp(-nmax, nmax - 1) + nmax;
            levels[i][k] = pick(zero[k], 0.0, l as f32);
        }
    }
    scale
}

/// One pass of `make_qx_quants`: the sums Σ w·x·l and Σ w·l·l over the signed levels for
/// `iscale`, accumulated in element order per lane.
#[inline(always)]
fn qx_sums<const N: usize, const LANES: usize>(
    nmax: i32,
    x: &[[f32; LANES]; N],
    w: &[[f32; LANES]; N],
    wx: &[[f32; LANES]; N],
    iscale: &[f32; LANES],
) -> ([f32; LANES], [f32; LANES]) {
    let mut sumlx = [0f32; LANES];
    let mut suml2 = [0f32; LANES];
    for i in 0..N {
        for k in 0..LANES {
            let lf = nearest_int(iscale[k] * x[i][k]).clamp(-nmax, nmax - 1) as f32;
            sumlx[k] += wx[i][k] * lf;
            suml2[k] += w[i][k] * lf * lf;
        }
    }
    (sumlx, suml2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even_and_keeps_c_garbage() {
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(3.5), 4);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-0.4), 0);
        assert_eq!(nearest_int(f32::INFINITY), -4_194_304);
        assert_eq!(nearest_int(f32::NAN), 0);
    }

    #[test]
    fn cvtt_matches_x86_for_invalid_values() {
        assert_eq!(cvtt(f32::NAN), i32::MIN);
        assert_eq!(cvtt(f32::INFINITY), i32::MIN);
        assert_eq!(cvtt(-3.0e9), i32::MIN);
        assert_eq!(cvtt(-7.9), -7);
        assert_eq!(cvtt(128.0) as i8, -128);
    }

    #[test]
    fn fp16_is_round_to_nearest_even_with_ggml_nan() {
        for x in [0.0f32, -0.0, 1.0, 65504.0, 65520.0, 1e-8, -3.1e-5, 0.1, 1e-7, 6.0e-8] {
            assert_eq!(fp16(x), half::f16::from_f32(x).to_bits(), "{x:e}");
        }
        assert_eq!(fp16(f32::from_bits(0x7fc0_1234)), 0x7e00);
        assert_eq!(fp16(f32::from_bits(0xffc0_0001)), 0xfe00);
    }
}
