//! ggml's own quantization kernels, byte-exact with what `llama-quantize` writes.
//!
//! Unlike the converter path (`crate::quant`, numpy Q8_0), these reproduce the C kernels in
//! ggml-quants.c that llama-quantize runs without an importance matrix (the `_ref` row
//! quantizers, x86-64 build: f32 arithmetic in C order, no FMA), so that a virtual
//! Q4_K_M/Q5_K_M file equals the one llama-quantize would produce from the F16 GGUF.

mod kquant;
mod q4_0;
mod q4_k;
mod q5_0;
mod q5_1;
mod q5_k;
mod q6_k;
mod q8_0;

#[cfg(test)]
mod inputs;
#[cfg(test)]
mod tests;

use rayon::prelude::*;

use super::{OutBuf, QuantError};
use crate::gguf::GgmlType;

/// One format's block kernel: `out` holds exactly the bytes of `x`'s whole blocks.
type BlockKernel = fn(&[f32], &mut [u8]);

/// Wraps a block kernel (inlined, generic code) in a function that runs an AVX2 build of
/// it when the CPU has AVX2. The lane-wise loops then use 8-wide vectors instead of
/// SSE2's 4; the arithmetic is the same IEEE f32 operations either way (AVX2 does not
/// include FMA, and rustc never fuses multiply-adds on its own), so the bytes are too.
macro_rules! with_avx2 {
    ($kernel:path) => {{
        fn run(x: &[f32], out: &mut [u8]) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2(x: &[f32], out: &mut [u8]) {
                    $kernel(x, out)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { avx2(x, out) };
                }
            }
            $kernel(x, out)
        }
        run as BlockKernel
    }};
}

/// (elements per block, bytes per block, kernel) of the types implemented here.
fn kernel(ty: GgmlType) -> Option<(usize, usize, BlockKernel)> {
    Some(match ty {
        GgmlType::Q8_0 => (q8_0::BLOCK, q8_0::BLOCK_BYTES, with_avx2!(q8_0::quantize_blocks)),
        GgmlType::Q4_0 => (q4_0::BLOCK, q4_0::BLOCK_BYTES, with_avx2!(q4_0::quantize_blocks)),
        GgmlType::Q5_0 => (q5_0::BLOCK, q5_0::BLOCK_BYTES, with_avx2!(q5_0::quantize_blocks)),
        GgmlType::Q5_1 => (q5_1::BLOCK, q5_1::BLOCK_BYTES, with_avx2!(q5_1::quantize_blocks)),
        GgmlType::Q4K => (q4_k::BLOCK, q4_k::BLOCK_BYTES, with_avx2!(q4_k::quantize_blocks)),
        GgmlType::Q5K => (q5_k::BLOCK, q5_k::BLOCK_BYTES, with_avx2!(q5_k::quantize_blocks)),
        GgmlType::Q6K => (q6_k::BLOCK, q6_k::BLOCK_BYTES, with_avx2!(q6_k::quantize_blocks)),
        _ => return None,
    })
}

/// Whether `quantize_row` implements `ty` (callers pick a fallback type when it does not).
pub fn supports(ty: GgmlType) -> bool {
    kernel(ty).is_some()
}

/// Quantizes `src` (a whole number of `ty` blocks) as llama-quantize does, appending the
/// block bytes to `out`.
pub fn quantize_row(ty: GgmlType, src: &[f32], out: &mut impl OutBuf) -> Result<(), QuantError> {
    let (block, bytes, run) = kernel(ty).ok_or(QuantError::UnsupportedOutput(ty))?;
    if !src.len().is_multiple_of(block) {
        return Err(QuantError::PartialBlock { ty, n: src.len(), block });
    }
    run(src, out.grow(src.len() / block * bytes));
    Ok(())
}

/// Quantizes many rows of `row_len` elements in parallel (rayon), appending to `out`; the
/// bytes equal those of `quantize_row` over the whole input because every block is
/// quantized on its own and rows never share a block.
pub fn quantize_rows_par(ty: GgmlType, src: &[f32], row_len: usize, out: &mut impl OutBuf) -> Result<(), QuantError> {
    let (block, bytes, run) = kernel(ty).ok_or(QuantError::UnsupportedOutput(ty))?;
    if row_len == 0 || !src.len().is_multiple_of(row_len) {
        return Err(QuantError::RaggedRows { row_len, n: src.len() });
    }
    if !row_len.is_multiple_of(block) {
        return Err(QuantError::PartialBlock { ty, n: row_len, block });
    }
    let o = out.grow(src.len() / block * bytes);
    // Tasks of at least 16 Ki elements (whole rows): enough work to amortize rayon's
    // per-task cost even for the fast legacy formats.
    let rows_per_task = (16 * 1024 / row_len).max(1);
    let task_out = rows_per_task * row_len / block * bytes;
    src.par_chunks(rows_per_task * row_len).zip(o.par_chunks_mut(task_out)).for_each(|(x, o)| run(x, o));
    Ok(())
}
