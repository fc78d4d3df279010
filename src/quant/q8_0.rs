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
    for (xb, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        if let (Ok(xb), Ok(ob)) = (<&[f32; BLOCK]>::try_from(xb), <&mut [u8; BLOCK_BYTES]>::try_from(ob)) {
            quantize_block(xb, ob);
        }
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
    fn infinity_gives_zero_inverse_scale() {
        let out = q(&block(|i| if i == 0 { f32::INFINITY } else { 1.0 }));
        assert_eq!(u16::from_le_bytes([out[0], out[1]]), 0x7c00);
        assert!(out[2..].iter().all(|&b| b == 0));
    }
}
