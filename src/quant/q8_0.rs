//! Q8_0 blocks exactly as gguf-py's `Q8_0.quantize_blocks` computes them in numpy f32:
//! `d = amax/127`, `id = d == 0 ? 0 : 1/d`, `q = roundf(x·id)` cast to int8, scale `f16(d)`.

use super::scalar::{f32_to_f16_bits, round_away_to_i8_wrapping};

/// Elements per Q8_0 block.
pub const BLOCK: usize = 32;
/// Bytes per Q8_0 block: the f16 scale then 32 int8.
pub const BLOCK_BYTES: usize = 34;

/// numpy's `abs(x).max()`: NaN if any element is NaN (numpy's max propagates NaN).
/// Eight independent lanes let the compiler use vector max; max of non-NaN values is exact,
/// so the order does not change the result.
#[inline(always)]
fn numpy_amax(x: &[f32; BLOCK]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut nan = [false; 8];
    for chunk in x.chunks_exact(8) {
        for ((m, n), &v) in lanes.iter_mut().zip(nan.iter_mut()).zip(chunk) {
            let a = v.abs();
            *m = if a > *m { a } else { *m };
            *n |= v.is_nan();
        }
    }
    if nan.iter().any(|&n| n) {
        return f32::NAN;
    }
    lanes.iter().fold(0.0f32, |m, &a| if a > m { a } else { m })
}

/// Quantizes one block of 32 values into 34 bytes.
#[inline]
pub fn quantize_block(x: &[f32; BLOCK], out: &mut [u8; BLOCK_BYTES]) {
    let d = numpy_amax(x) / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let (scale, qs) = out.split_at_mut(2);
    scale.copy_from_slice(&f32_to_f16_bits(d).to_le_bytes());
    // With d normal and finite (or zero), |x·id| ≤ ~127.0001: inside the fast rounding's
    // range and without int8 wrap-around. Subnormal, infinite or NaN scales take the exact path.
    if d == 0.0 || (d.is_normal() && d.is_finite()) {
        quantize_in_range(x, id, qs);
    } else {
        for (q, &v) in qs.iter_mut().zip(x) {
            *q = round_away_to_i8_wrapping(v * id) as u8;
        }
    }
}

/// Round half away from zero for |x·id| < 2^22 with float adds and integer ops only, so it
/// vectorizes: adding 1.5·2^23 rounds to nearest even and leaves the integer in the low
/// mantissa bits; exact ties that went toward zero are then moved away from zero (every
/// subtraction here is exact).
#[inline(always)]
fn quantize_in_range(x: &[f32; BLOCK], id: f32, qs: &mut [u8]) {
    const MAGIC: f32 = 12_582_912.0;
    let mut q = [0i32; BLOCK];
    for (r, &v) in q.iter_mut().zip(x) {
        let p = v * id;
        let biased = p + MAGIC;
        let even = (biased.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000;
        let diff = p - (biased - MAGIC);
        *r = even + (diff == 0.5 && p > 0.0) as i32 - (diff == -0.5 && p < 0.0) as i32;
    }
    for (o, r) in qs.iter_mut().zip(q) {
        *o = r as i8 as u8;
    }
}

/// Quantizes whole blocks: `x.len()` must be a multiple of 32, `out` 34 bytes per block.
pub fn quantize_blocks(x: &[f32], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was just detected on this CPU.
        unsafe { x86::quantize_blocks(x, out) };
        return;
    }
    quantize_blocks_scalar(x, out);
}

fn quantize_blocks_scalar(x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        if let (Ok(xb), Ok(ob)) = (<&[f32; BLOCK]>::try_from(xb), <&mut [u8; BLOCK_BYTES]>::try_from(ob)) {
            quantize_block(xb, ob);
        }
    }
}

/// The same blocks with AVX2, for blocks whose scale is zero or a normal number (all but
/// NaN/inf/subnormal-scale blocks, which take `quantize_block`). Every step is exact or the
/// same IEEE operation as the scalar path: |x| max (order-free without NaN), `amax / 127`,
/// `1 / d`, `x · id` (a plain multiply, never fused), and round half away from zero computed
/// as `floor(|p|) + (|p| - floor(|p|) >= 0.5)`, which is exact.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{quantize_block, BLOCK, BLOCK_BYTES};
    use crate::quant::scalar::f32_to_f16_bits;

    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize_blocks(x: &[f32], out: &mut [u8]) {
        for (xb, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
            let (Ok(xb), Ok(ob)) = (<&[f32; BLOCK]>::try_from(xb), <&mut [u8; BLOCK_BYTES]>::try_from(ob)) else {
                continue;
            };
            // SAFETY: AVX2 is enabled for this function; `xb`/`ob` have the block sizes.
            if !unsafe { quantize_block_avx2(xb, ob) } {
                quantize_block(xb, ob);
            }
        }
    }

    /// Quantizes one block, or returns false (writing nothing) when it needs the exact path.
    #[target_feature(enable = "avx2")]
    unsafe fn quantize_block_avx2(x: &[f32; BLOCK], out: &mut [u8; BLOCK_BYTES]) -> bool {
        // SAFETY (whole body): unaligned loads of 4×8 f32 from a 32-element array, one
        // unaligned 32-byte store into `out[2..34]`.
        unsafe {
            let p = x.as_ptr();
            let v =
                [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24))];
            let unordered = v.map(|a| _mm256_cmp_ps::<_CMP_UNORD_Q>(a, a));
            let any_nan =
                _mm256_or_ps(_mm256_or_ps(unordered[0], unordered[1]), _mm256_or_ps(unordered[2], unordered[3]));
            if _mm256_movemask_ps(any_nan) != 0 {
                return false;
            }
            let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
            let a = v.map(|r| _mm256_and_ps(r, abs_mask));
            let m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
            let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_max_ss(m, _mm_shuffle_ps::<0b01>(m, m));
            let amax = _mm_cvtss_f32(m);
            let d = amax / 127.0;
            if !(d == 0.0 || (d.is_normal() && d.is_finite())) {
                return false;
            }
            let id = if d == 0.0 { 0.0 } else { 1.0 / d };
            out[..2].copy_from_slice(&f32_to_f16_bits(d).to_le_bytes());
            let idv = _mm256_set1_ps(id);
            let half = _mm256_set1_ps(0.5);
            let one = _mm256_set1_ps(1.0);
            let sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN));
            let q = v.map(|r| {
                let prod = _mm256_mul_ps(r, idv);
                let mag = _mm256_and_ps(prod, abs_mask);
                let floor = _mm256_round_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(mag);
                let up = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_sub_ps(mag, floor), half), one);
                let rounded = _mm256_or_ps(_mm256_add_ps(floor, up), _mm256_and_ps(prod, sign_mask));
                _mm256_cvttps_epi32(rounded)
            });
            // |q| <= 127, so the saturating packs are exact; the permute undoes their lane
            // interleaving.
            let words = [_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])];
            let bytes = _mm256_packs_epi16(words[0], words[1]);
            let ordered = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            _mm256_storeu_si256(out.as_mut_ptr().add(2).cast(), ordered);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(f: impl Fn(usize) -> f32) -> [f32; BLOCK] {
        std::array::from_fn(f)
    }

    fn q(x: &[f32; BLOCK]) -> [u8; BLOCK_BYTES] {
        let mut out = [0u8; BLOCK_BYTES];
        quantize_block(x, &mut out);
        out
    }

    #[test]
    fn zero_block_has_zero_scale_and_quants() {
        assert_eq!(q(&block(|_| 0.0)), [0u8; BLOCK_BYTES]);
    }

    #[test]
    fn largest_value_maps_to_127_with_f16_scale() {
        let out = q(&block(|i| i as f32 - 16.0));
        // amax 16 → d = 16/127, stored as f16.
        assert_eq!(u16::from_le_bytes([out[0], out[1]]), f32_to_f16_bits(16.0 / 127.0));
        assert_eq!(out[2] as i8, -127);
        assert_eq!(out[2 + 16] as i8, 0);
        assert_eq!(out[2 + 31] as i8, 119); // 15 * 127/16 = 119.06
    }

    #[test]
    fn fast_rounding_matches_exact_rounding() {
        // Ties: x·id exactly k + 0.5 happens when amax = 127 (id = 1).
        let x = block(|i| if i == 0 { 127.0 } else { (i as f32 - 16.0) + 0.5 });
        let out = q(&x);
        for (i, &v) in x.iter().enumerate() {
            assert_eq!(out[2 + i] as i8, round_away_to_i8_wrapping(v), "{v}");
        }
    }

    #[test]
    fn nan_poisons_the_block_like_numpy() {
        let out = q(&block(|i| if i == 3 { f32::NAN } else { 1.0 }));
        assert_eq!(u16::from_le_bytes([out[0], out[1]]), f32_to_f16_bits(f32::NAN));
        assert!(out[2..].iter().all(|&b| b == 0));
    }

    #[test]
    fn the_vector_path_writes_what_the_scalar_path_writes() {
        // Gaussian-ish blocks at many scales, exact ties, zeros, subnormal and huge values,
        // NaN and inf: every block through both paths.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut rand = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut x: Vec<f32> = Vec::new();
        for b in 0..20_000u32 {
            let scale = f32::powi(2.0, (b % 80) as i32 - 40);
            for i in 0..BLOCK as u32 {
                let r = rand();
                let v = match b % 11 {
                    0 => 0.0,
                    1 => (i as f32 - 16.0) + 0.5, // ties when amax is 127
                    2 if i == 0 => 127.0,
                    3 => f32::from_bits((r >> 40) as u32 & 0x007f_ffff), // subnormals
                    4 if i == 5 => f32::INFINITY,
                    5 if i == 7 => f32::NAN,
                    6 => f32::from_bits(r as u32), // any bits
                    _ => ((r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) as f32 * scale,
                };
                x.push(v);
            }
        }
        let mut fast = vec![0u8; x.len() / BLOCK * BLOCK_BYTES];
        let mut slow = fast.clone();
        quantize_blocks(&x, &mut fast);
        quantize_blocks_scalar(&x, &mut slow);
        for (i, (f, s)) in fast.chunks(BLOCK_BYTES).zip(slow.chunks(BLOCK_BYTES)).enumerate() {
            assert_eq!(f, s, "block {i}: {:?}", &x[i * BLOCK..(i + 1) * BLOCK]);
        }
    }

    #[test]
    fn infinity_gives_zero_inverse_scale() {
        let out = q(&block(|i| if i == 0 { f32::INFINITY } else { 1.0 }));
        assert_eq!(u16::from_le_bytes([out[0], out[1]]), 0x7c00);
        assert!(out[2..].iter().all(|&b| b == 0));
    }
}
