//! The llama-quantize pipeline: the reference F16 file holds each tensor as F16 (or F32
//! for the tensors the converter keeps in F32); llama-quantize widens those values to f32
//! and runs ggml's quantizers on them. Reproducing the F16 rounding first is what makes a
//! virtual Q4_K_M equal `llama-quantize` run on the F16 conversion.

use crate::gguf::GgmlType;
use crate::plan::ElemOp;
use crate::safetensors::Dtype;

use super::scalar::{f16_bits_to_f32, f32_to_f16_bits};
use super::{convert_row, ggml, output_len, OutBuf, QuantError};

/// Source elements → the values of the F16 file (after `op`'s model arithmetic) → `dst`.
pub(super) fn convert(
    src: Dtype,
    input: &[u8],
    op: ElemOp,
    dst: GgmlType,
    out: &mut impl OutBuf,
) -> Result<(), QuantError> {
    let stage = if op.rounds_f16() { GgmlType::F16 } else { GgmlType::F32 };
    let mut staged = Vec::new();
    convert_row(src, input, op.model_op(), stage, &mut staged)?;
    let values: Vec<f32> = match stage {
        GgmlType::F16 => staged.chunks_exact(2).map(|c| f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
        _ => staged.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
    };
    encode(&values, dst, out)
}

/// Already-f32 values (transposed or generated tensors) through `op` (model arithmetic in
/// f32, then F16 rounding when it asks for it) to `dst`.
pub fn convert_f32_row_op(input: &[f32], op: ElemOp, dst: GgmlType, out: &mut impl OutBuf) -> Result<(), QuantError> {
    let mut values = input.to_vec();
    super::apply_op(op, &mut values);
    if op.rounds_f16() {
        values.iter_mut().for_each(|v| *v = f16_bits_to_f32(f32_to_f16_bits(*v)));
    }
    encode(&values, dst, out)
}

/// f32 values (already staged) → `dst`: ggml's quantizers for quantized types, the plain
/// encoders for float types (llama-quantize's F16 fallback rounds the same way).
pub(super) fn encode(values: &[f32], dst: GgmlType, out: &mut impl OutBuf) -> Result<(), QuantError> {
    output_len(dst, values.len())?;
    if !ggml::supports(dst) {
        return super::convert_f32_row(values, dst, out);
    }
    if values.is_empty() {
        return Ok(());
    }
    // Every block is quantized on its own, so blocks serve as rows for the parallel split.
    let block = dst.block().0 as usize;
    ggml::quantize_rows_par(dst, values, block, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32_bytes(x: &[f32]) -> Vec<u8> {
        x.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.0123).collect()
    }

    /// RoundF16 quantizes the F16-rounded values, not the raw f32 ones.
    #[test]
    fn round_f16_quantizes_the_f16_values() {
        let x = ramp(512);
        let rounded: Vec<f32> = x.iter().map(|v| f16_bits_to_f32(f32_to_f16_bits(*v))).collect();
        for ty in [GgmlType::Q4K, GgmlType::Q6K, GgmlType::Q4_0, GgmlType::Q8_0] {
            let mut want = Vec::new();
            ggml::quantize_row(ty, &rounded, &mut want).unwrap();
            let mut got = Vec::new();
            convert_row(Dtype::F32, &f32_bytes(&x), ElemOp::RoundF16, ty, &mut got).unwrap();
            assert_eq!(got, want, "{ty:?}");
            let mut via_f32 = Vec::new();
            convert_f32_row_op(&x, ElemOp::RoundF16, ty, &mut via_f32).unwrap();
            assert_eq!(via_f32, want, "{ty:?} (f32 input)");
        }
    }

    /// Without RoundF16 a k-quant destination quantizes the f32 values as they are (the
    /// tensors the F16 file keeps in F32).
    #[test]
    fn unstaged_kquant_quantizes_f32_values() {
        let x = ramp(256);
        let mut want = Vec::new();
        ggml::quantize_row(GgmlType::Q5K, &x, &mut want).unwrap();
        let mut got = Vec::new();
        convert_row(Dtype::F32, &f32_bytes(&x), ElemOp::None, GgmlType::Q5K, &mut got).unwrap();
        assert_eq!(got, want);
    }

    /// A row that is not a whole number of super-blocks is refused, not truncated.
    #[test]
    fn partial_superblocks_are_refused() {
        let mut out = Vec::new();
        let err = convert_row(Dtype::F32, &f32_bytes(&ramp(64)), ElemOp::RoundF16, GgmlType::Q4K, &mut out);
        assert!(matches!(err, Err(QuantError::PartialBlock { block: 256, .. })), "{err:?}");
    }

    /// F16 staging of a float destination equals the converter's F16 bytes.
    #[test]
    fn round_f16_to_f16_is_the_converter_f16() {
        let x = f32_bytes(&ramp(96));
        let (mut a, mut b) = (Vec::new(), Vec::new());
        convert_row(Dtype::F32, &x, ElemOp::RoundF16, GgmlType::F16, &mut a).unwrap();
        convert_row(Dtype::F32, &x, ElemOp::None, GgmlType::F16, &mut b).unwrap();
        assert_eq!(a, b);
    }
}
