//! f32 → f16 with the CPU's F16C instruction where present: the conversion every F16 file
//! spends most of its CPU on, and the step between the network and a cold `cp`.
//!
//! F16C's round-to-nearest-even is IEEE's, so for every non-NaN input it writes exactly what
//! numpy's software cast writes (subnormals, overflow to inf, signed zeros included). NaNs
//! differ (F16C quiets them, numpy keeps the payload), so any group of eight holding a NaN is
//! redone with the scalar conversion.

use super::scalar::f32_to_f16_bits;

/// Writes `x` as little-endian f16 into `out` (`2 * x.len()` bytes), bit-exact with
/// `scalar::f32_to_f16_bits`.
pub fn encode_f16(x: &[f32], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("f16c") && std::arch::is_x86_feature_detected!("avx") {
        // SAFETY: the features the function enables were just detected on this CPU.
        unsafe { x86::encode_f16(x, out) };
        return;
    }
    encode_f16_scalar(x, out);
}

fn encode_f16_scalar(x: &[f32], out: &mut [u8]) {
    for (c, &v) in out.chunks_exact_mut(2).zip(x) {
        c.copy_from_slice(&f32_to_f16_bits(v).to_le_bytes());
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::encode_f16_scalar;

    #[target_feature(enable = "avx,f16c")]
    pub(super) unsafe fn encode_f16(x: &[f32], out: &mut [u8]) {
        let whole = x.len() / 8 * 8;
        for (xs, os) in x[..whole].chunks_exact(8).zip(out.chunks_exact_mut(16)) {
            // SAFETY: `xs` holds 8 f32 and `os` 16 bytes; unaligned loads and stores.
            unsafe {
                let v = _mm256_loadu_ps(xs.as_ptr());
                if _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v)) != 0 {
                    encode_f16_scalar(xs, os);
                    continue;
                }
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
                _mm_storeu_si128(os.as_mut_ptr().cast(), h);
            }
        }
        encode_f16_scalar(&x[whole..], &mut out[2 * whole..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(x: &[f32]) -> (Vec<u8>, Vec<u8>) {
        let mut fast = vec![0u8; 2 * x.len()];
        let mut slow = vec![0u8; 2 * x.len()];
        encode_f16(x, &mut fast);
        encode_f16_scalar(x, &mut slow);
        (fast, slow)
    }

    #[test]
    fn every_bf16_value_converts_as_the_scalar_path() {
        // Every BF16 bit pattern (the weights of most Hub models), NaNs and infs included.
        let x: Vec<f32> = (0..=u16::MAX).map(|b| f32::from_bits((b as u32) << 16)).collect();
        let (fast, slow) = both(&x);
        assert_eq!(fast, slow);
    }

    #[test]
    fn f32_values_near_every_f16_boundary_convert_as_the_scalar_path() {
        // For each f16 value: the f32s just around it and around the midpoints to its
        // neighbours (where rounding decides), plus a deterministic spread of other bits.
        let mut x = Vec::new();
        for h in 0..=u16::MAX {
            let w = super::super::scalar::f16_bits_to_f32(h).to_bits();
            for d in [0u32, 1, 0x0fff, 0x1000, 0x1001, 0x1fff] {
                x.push(f32::from_bits(w.wrapping_add(d)));
                x.push(f32::from_bits(w.wrapping_sub(d)));
            }
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1 << 20 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            x.push(f32::from_bits((state >> 32) as u32));
        }
        // Lengths not a multiple of 8 exercise the tail.
        x.push(1.0);
        let (fast, slow) = both(&x);
        assert_eq!(fast, slow);
    }
}
