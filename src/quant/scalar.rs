//! Bit-exact scalar conversions between f32 and the 16- and 8-bit float formats, written
//! branch-free (selects only) so the row loops that call them auto-vectorize.
//!
//! "numpy" below means numpy 2.2's software casts, which the reference converter runs
//! (`astype(np.float16)`, `astype(np.float32)`); they differ from `half` and from F16C only
//! in NaN payloads (hazard H12).

/// f32 → f16 bits, round to nearest even, as numpy's `astype(np.float16)`.
///
/// Finite and infinite inputs use the float-arithmetic rounding trick (the hardware's own
/// RNE does the work; no FTZ in Rust). NaN keeps the top 10 payload bits without quieting,
/// and a payload that would vanish becomes 1, so the result stays a NaN (numpy's rule).
#[inline(always)]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let w = x.to_bits();
    let sign = (w >> 16) & 0x8000;
    let abs = w & 0x7fff_ffff;
    // Scaling by 2^112 then 2^-110 makes every value ≥ 65520 overflow to inf and puts the
    // rest where adding the bias below rounds at the f16 mantissa boundary.
    let scaled = (f32::from_bits(abs) * f32::from_bits(0x7780_0000)) * f32::from_bits(0x0880_0000);
    let two_w = w.wrapping_shl(1);
    let exp_bits = two_w & 0xff00_0000;
    let bias = if exp_bits < 0x7100_0000 { 0x7100_0000 } else { exp_bits };
    let rounded = (f32::from_bits((bias >> 1) + 0x0780_0000) + scaled).to_bits();
    let finite = ((rounded >> 13) & 0x7c00) + (rounded & 0x0fff);
    let nan_payload = 0x7c00 | ((abs >> 13) & 0x03ff);
    let nan = if nan_payload == 0x7c00 { 0x7c01 } else { nan_payload };
    let magnitude = if abs > 0x7f80_0000 { nan } else { finite };
    (sign | magnitude) as u16
}

/// f16 bits → f32, exact; NaN payloads are shifted over unchanged (numpy and torch alike).
#[inline(always)]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let h = h as u32;
    let sign = (h & 0x8000) << 16;
    let exp = (h >> 10) & 0x1f;
    let man = h & 0x03ff;
    let normal = ((exp + 112) << 23) | (man << 13);
    let special = 0x7f80_0000 | (man << 13);
    // Subnormals (and zero): man · 2^-24 is exact in f32.
    let subnormal = (man as f32 * f32::from_bits(0x3380_0000)).to_bits();
    let magnitude = if exp == 0x1f {
        special
    } else if exp == 0 {
        subnormal
    } else {
        normal
    };
    f32::from_bits(sign | magnitude)
}

/// f32 → bf16 bits as gguf-py's `BF16.quantize_blocks` (= ggml's `fp32_to_bf16`): NaN is
/// truncated with the quiet bit forced, everything else rounds to nearest even (and may
/// round up to inf).
#[inline(always)]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let w = x.to_bits();
    let quieted = (w & 0xffff_0000) | 0x0040_0000;
    let n = if (w & 0x7fff_ffff) > 0x7f80_0000 { quieted } else { w };
    ((n as u64 + 0x7fff + ((n >> 16) & 1) as u64) >> 16) as u16
}

/// bf16 bits → f32: exact (torch's `.to(float32)` is a shift).
#[inline(always)]
pub fn bf16_bits_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// float8 e4m3fn (no infinities; S.1111.111 is NaN) → f32, exact as torch.
pub fn f8e4m3_to_f32(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let exp = ((b >> 3) & 0x0f) as i32;
    let man = (b & 0x07) as f32;
    if exp == 0x0f && b & 0x07 == 0x07 {
        // torch keeps the sign and the mantissa bits: S.11111111.111000…
        return f32::from_bits(((b as u32 & 0x80) << 24) | 0x7ff0_0000);
    }
    let magnitude = if exp == 0 { man * 2f32.powi(-9) } else { (1.0 + man / 8.0) * 2f32.powi(exp - 7) };
    sign * magnitude
}

/// float8 e5m2 → f32, exact: it is the top byte of an f16 (torch quiets its NaNs).
pub fn f8e5m2_to_f32(b: u8) -> f32 {
    let x = f16_bits_to_f32((b as u16) << 8);
    if x.is_nan() {
        f32::from_bits(x.to_bits() | 0x0040_0000)
    } else {
        x
    }
}

/// Round half away from zero, then the C/numpy float → int8 cast on x86-64 (`cvttss2si`
/// then the low byte): NaN, ±inf and values outside i32 give 0; 128 gives -128.
/// gguf-py's `np_roundf` then `astype(np.int8)` behave exactly like this.
#[inline]
pub fn round_away_to_i8_wrapping(v: f32) -> i8 {
    let r = v.round();
    if (-2_147_483_648.0..2_147_483_648.0).contains(&r) {
        r as i32 as i8
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_known_points_match_numpy() {
        // Points the converter spec verified against numpy.
        let cases: [(f32, u16); 8] = [
            (65519.99, 0x7bff),
            (65520.0, 0x7c00),
            (2f32.powi(-25), 0x0000),
            (3.0 * 2f32.powi(-26), 0x0001),
            (1.0 + 3.0 * 2f32.powi(-11), 0x3c02),
            (-0.0, 0x8000),
            (f32::NEG_INFINITY, 0xfc00),
            (f32::from_bits(0x7f80_0001), 0x7c01),
        ];
        for (x, want) in cases {
            assert_eq!(f32_to_f16_bits(x), want, "{x:e}");
        }
    }

    #[test]
    fn f16_matches_half_on_every_non_nan_f16_neighbourhood() {
        // Every f16 value and the f32 values just around each rounding midpoint.
        for h in 0..=u16::MAX {
            let x = half::f16::from_bits(h).to_f32();
            if x.is_nan() {
                continue;
            }
            for d in -3i32..=3 {
                let y = f32::from_bits(x.to_bits().wrapping_add_signed(d * 0x1000));
                if y.is_nan() {
                    continue;
                }
                assert_eq!(f32_to_f16_bits(y), half::f16::from_f32(y).to_bits(), "{:#x}", y.to_bits());
            }
        }
    }

    #[test]
    fn f16_widening_keeps_nan_payload() {
        assert_eq!(f16_bits_to_f32(0x7c01).to_bits(), 0x7f80_2000);
        assert_eq!(f16_bits_to_f32(0xfd23).to_bits(), 0xffa4_6000);
        assert_eq!(f16_bits_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_bits_to_f32(0x8000).to_bits(), 0x8000_0000);
        for h in 0..=u16::MAX {
            let x = f16_bits_to_f32(h);
            if !x.is_nan() {
                assert_eq!(x, half::f16::from_bits(h).to_f32());
                assert_eq!(f32_to_f16_bits(x), h);
            }
        }
    }

    #[test]
    fn bf16_rounds_to_even_and_quiets_nan() {
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x7f7f_ffff)), 0x7f80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x7f80_0001)), 0x7fc0);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0xff81_2345)), 0xffc1);
    }

    #[test]
    fn int8_cast_wraps_like_cvttss2si() {
        assert_eq!(round_away_to_i8_wrapping(127.5), -128);
        assert_eq!(round_away_to_i8_wrapping(-2.5), -3);
        assert_eq!(round_away_to_i8_wrapping(-129.0), 127);
        assert_eq!(round_away_to_i8_wrapping(300.0), 44);
        assert_eq!(round_away_to_i8_wrapping(f32::NAN), 0);
        assert_eq!(round_away_to_i8_wrapping(f32::INFINITY), 0);
        assert_eq!(round_away_to_i8_wrapping(1e10), 0);
    }

    #[test]
    fn f8_formats_decode_exactly() {
        assert_eq!(f8e4m3_to_f32(0x38), 1.0);
        assert_eq!(f8e4m3_to_f32(0x7e), 448.0);
        assert_eq!(f8e4m3_to_f32(0x01), 2f32.powi(-9));
        assert!(f8e4m3_to_f32(0x7f).is_nan());
        assert_eq!(f8e5m2_to_f32(0x3c), 1.0);
        assert_eq!(f8e5m2_to_f32(0xfc), f32::NEG_INFINITY);
    }
}
