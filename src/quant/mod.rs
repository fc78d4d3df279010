//! Element conversions bit-exact with the reference: dtype → F32/F16/BF16/Q8_0. To be completed.

use crate::gguf::GgmlType;
use crate::plan::ElemOp;
use crate::safetensors::Dtype;

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error("not implemented")]
    NotImplemented,
}

/// Converts raw source elements to `dst`, applying `op` in the working dtype.
pub fn convert_row(
    _src: Dtype,
    _input: &[u8],
    _op: ElemOp,
    _dst: GgmlType,
    _out: &mut Vec<u8>,
) -> Result<(), QuantError> {
    Err(QuantError::NotImplemented)
}

/// Converts f32 values to `dst`.
pub fn convert_f32_row(_input: &[f32], _dst: GgmlType, _out: &mut Vec<u8>) -> Result<(), QuantError> {
    Err(QuantError::NotImplemented)
}
