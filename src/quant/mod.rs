//! Element conversions bit-exact with the reference converter: source dtype → F32/F16/BF16/Q8_0.
//!
//! The reference first widens every dtype except f16/f32 to f32 (`prepare_tensors`), applies
//! model arithmetic in that working dtype (f16 stays f16: hazard H11), then runs gguf-py's
//! numpy `quantize` (F16 via `astype`, BF16 and Q8_0 after a cast to f32). This module
//! reproduces each step bit for bit, a chunk at a time, without per-element allocation.

mod f16c;
pub mod ggml;
mod q8_0;
pub mod scalar;
mod staged;

pub use staged::convert_f32_row_op;

#[cfg(test)]
mod reference_tests;

use rayon::prelude::*;

use crate::gguf::GgmlType;
use crate::plan::ElemOp;
use crate::safetensors::Dtype;
use scalar::{bf16_bits_to_f32, f16_bits_to_f32, f32_to_bf16_bits, f32_to_f16_bits};

/// Why a conversion cannot run. The plan decides types up front, so these are caller bugs
/// or corrupt sources, never data-dependent numeric failures.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuantError {
    #[error("output type {0:?} is not produced by the converter")]
    UnsupportedOutput(GgmlType),
    #[error("{n} elements are not a whole number of {ty:?} blocks ({block} elements each)")]
    PartialBlock { ty: GgmlType, n: usize, block: usize },
    #[error("{len} input bytes are not a whole number of {dtype:?} elements")]
    RaggedInput { dtype: Dtype, len: usize },
    #[error("row length {row_len} does not divide {n} elements")]
    RaggedRows { row_len: usize, n: usize },
}

/// Where conversions append their output: a `Vec` (grown with zeros) or a `PageBuf` (grown
/// with whatever its recycled memory held, which saves a zero-fill pass). Every conversion
/// overwrites each byte it asks for; `tests::dirty_output_buffers_give_identical_bytes` holds
/// them to it.
pub trait OutBuf {
    /// Appends `n` bytes, of a value the caller must not rely on, and returns them.
    fn grow(&mut self, n: usize) -> &mut [u8];
}

impl OutBuf for Vec<u8> {
    fn grow(&mut self, n: usize) -> &mut [u8] {
        let start = self.len();
        self.resize(start + n, 0);
        &mut self[start..]
    }
}

impl OutBuf for crate::pagebuf::PageBuf {
    fn grow(&mut self, n: usize) -> &mut [u8] {
        self.extend_unspecified(n)
    }
}

/// Elements converted per step: a multiple of the Q8_0 block, small enough for the stack
/// buffer to stay in L1.
const CHUNK: usize = 1024;

/// Output bytes for `n` elements of `dst`, checking that the type is one ggufs writes and
/// that `n` fills whole blocks.
pub fn output_len(dst: GgmlType, n: usize) -> Result<usize, QuantError> {
    match dst {
        GgmlType::F32 => Ok(n * 4),
        GgmlType::F16 | GgmlType::BF16 => Ok(n * 2),
        GgmlType::Q8_0 if n.is_multiple_of(q8_0::BLOCK) => Ok(n / q8_0::BLOCK * q8_0::BLOCK_BYTES),
        GgmlType::Q8_0 => Err(QuantError::PartialBlock { ty: dst, n, block: q8_0::BLOCK }),
        other if ggml::supports(other) => {
            let (block, bytes) = other.block();
            if !(n as u64).is_multiple_of(block) {
                return Err(QuantError::PartialBlock { ty: dst, n, block: block as usize });
            }
            Ok((n as u64 / block * bytes) as usize)
        }
        other => Err(QuantError::UnsupportedOutput(other)),
    }
}

/// Converts raw little-endian source elements of dtype `src` to `dst`, applying `op` in the
/// reference's working dtype first, and appends the result to `out`.
///
/// For Q8_0, blocks are taken from the start of `input`; pass whole rows (or a row-aligned
/// run of rows) so that blocks never straddle rows.
pub fn convert_row(
    src: Dtype,
    input: &[u8],
    op: ElemOp,
    dst: GgmlType,
    out: &mut impl OutBuf,
) -> Result<(), QuantError> {
    let size = src.size() as usize;
    if !input.len().is_multiple_of(size) {
        return Err(QuantError::RaggedInput { dtype: src, len: input.len() });
    }
    if is_staged(op, dst) {
        return staged::convert(src, input, op, dst, out);
    }
    let n = input.len() / size;
    convert_into(src, input, op, dst, out.grow(output_len(dst, n)?));
    Ok(())
}

/// Converts already-f32 values (generated tensors, transposed data) to `dst`, appending to `out`.
pub fn convert_f32_row(input: &[f32], dst: GgmlType, out: &mut impl OutBuf) -> Result<(), QuantError> {
    if is_staged(ElemOp::None, dst) {
        return staged::encode(input, dst, out);
    }
    let step = output_len(dst, CHUNK)?;
    let o = out.grow(output_len(dst, input.len())?);
    for (x, o) in input.chunks(CHUNK).zip(o.chunks_mut(step)) {
        encode_f32(x, dst, o);
    }
    Ok(())
}

/// Converts many rows of `row_len` elements in parallel (rayon), appending to `out`.
/// The bytes equal those of `convert_row` on the whole input: conversions are per element
/// or per block, and rows never share a block.
pub fn convert_rows_par(
    src: Dtype,
    input: &[u8],
    row_len: usize,
    op: ElemOp,
    dst: GgmlType,
    out: &mut impl OutBuf,
) -> Result<(), QuantError> {
    let size = src.size() as usize;
    if !input.len().is_multiple_of(size) {
        return Err(QuantError::RaggedInput { dtype: src, len: input.len() });
    }
    let n = input.len() / size;
    if row_len == 0 || !n.is_multiple_of(row_len) {
        return Err(QuantError::RaggedRows { row_len, n });
    }
    if is_staged(op, dst) {
        output_len(dst, row_len)?;
        return staged::convert(src, input, op, dst, out);
    }
    let row_out = output_len(dst, row_len)?;
    let o = out.grow(n / row_len * row_out);
    // Batches of rows big enough (≥ 256 KiB of input) to amortize rayon's task overhead.
    let rows_per_task = (256 * 1024 / (row_len * size)).max(1);
    input
        .par_chunks(rows_per_task * row_len * size)
        .zip(o.par_chunks_mut(rows_per_task * row_out))
        .for_each(|(i, o)| convert_into(src, i, op, dst, o));
    Ok(())
}

/// The conversion proper; `out` has exactly the output size (checked by the callers).
fn convert_into(src: Dtype, input: &[u8], op: ElemOp, dst: GgmlType, out: &mut [u8]) {
    match src {
        Dtype::F16 => convert_f16_source(input, op, dst, out),
        Dtype::F32 if op == ElemOp::None && dst == GgmlType::F32 => out.copy_from_slice(input),
        _ => {
            let size = src.size() as usize;
            let step = output_len(dst, CHUNK).unwrap_or(0);
            let mut buf = [0f32; CHUNK];
            for (i, o) in input.chunks(CHUNK * size).zip(out.chunks_mut(step)) {
                let x = &mut buf[..i.len() / size];
                widen_to_f32(src, i, x);
                apply_op(op, x);
                encode_f32(x, dst, o);
            }
        }
    }
}

/// f16 sources stay f16 through `op` (torch f16 arithmetic: exact f32 result rounded once,
/// which equals a correctly rounded f16 operation), and are widened only for BF16/Q8_0/F32.
fn convert_f16_source(input: &[u8], op: ElemOp, dst: GgmlType, out: &mut [u8]) {
    if op == ElemOp::None && dst == GgmlType::F16 {
        out.copy_from_slice(input);
        return;
    }
    let step = output_len(dst, CHUNK).unwrap_or(0);
    let mut bits = [0u16; CHUNK];
    let mut buf = [0f32; CHUNK];
    for (i, o) in input.chunks(CHUNK * 2).zip(out.chunks_mut(step)) {
        let h = &mut bits[..i.len() / 2];
        for (b, c) in h.iter_mut().zip(i.chunks_exact(2)) {
            *b = u16::from_le_bytes([c[0], c[1]]);
        }
        if op == ElemOp::AddOne {
            for b in h.iter_mut() {
                *b = f32_to_f16_bits(f16_bits_to_f32(*b) + 1.0);
            }
        }
        if dst == GgmlType::F16 {
            for (c, b) in o.chunks_exact_mut(2).zip(h.iter()) {
                c.copy_from_slice(&b.to_le_bytes());
            }
            continue;
        }
        let x = &mut buf[..h.len()];
        for (v, b) in x.iter_mut().zip(h.iter()) {
            *v = f16_bits_to_f32(*b);
        }
        encode_f32(x, dst, o);
    }
}

/// The reference's `data_torch.to(torch.float32)`: exact for bf16/f8/small ints, round to
/// nearest even for f64 and wide ints.
fn widen_to_f32(src: Dtype, input: &[u8], x: &mut [f32]) {
    macro_rules! each {
        ($n:literal, |$c:ident| $e:expr) => {
            for (v, $c) in x.iter_mut().zip(input.chunks_exact($n)) {
                *v = $e;
            }
        };
    }
    match src {
        Dtype::F32 => each!(4, |c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        Dtype::BF16 => each!(2, |c| bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]))),
        Dtype::F16 => each!(2, |c| f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]))),
        Dtype::F64 => {
            each!(8, |c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
        }
        Dtype::I64 => {
            each!(8, |c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32)
        }
        Dtype::I32 => each!(4, |c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f32),
        Dtype::I16 => each!(2, |c| i16::from_le_bytes([c[0], c[1]]) as f32),
        Dtype::I8 => each!(1, |c| c[0] as i8 as f32),
        Dtype::U8 => each!(1, |c| c[0] as f32),
        Dtype::Bool => each!(1, |c| (c[0] != 0) as u8 as f32),
        Dtype::F8E4M3 => each!(1, |c| scalar::f8e4m3_to_f32(c[0])),
        Dtype::F8E5M2 => each!(1, |c| scalar::f8e5m2_to_f32(c[0])),
    }
}

fn apply_op(op: ElemOp, x: &mut [f32]) {
    if op.model_op() == ElemOp::AddOne {
        x.iter_mut().for_each(|v| *v += 1.0);
    }
}

/// Whether `dst` is made the llama-quantize way (F16 file values, then ggml's kernels)
/// rather than directly by the converter's encoders.
fn is_staged(op: ElemOp, dst: GgmlType) -> bool {
    op.rounds_f16() || !matches!(dst, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::Q8_0)
}

/// Converts into a stack buffer first and stores the bytes in a second pass: two simple
/// loops vectorize where one mixing float math and byte stores does not.
#[inline(always)]
fn encode_u16(x: &[f32], out: &mut [u8], f: impl Fn(f32) -> u16) {
    let mut bits = [0u16; CHUNK];
    for (xs, os) in x.chunks(CHUNK).zip(out.chunks_mut(CHUNK * 2)) {
        for (b, &v) in bits.iter_mut().zip(xs) {
            *b = f(v);
        }
        for (c, b) in os.chunks_exact_mut(2).zip(bits) {
            c.copy_from_slice(&b.to_le_bytes());
        }
    }
}

/// f32 → `dst` bytes; `out` has exactly `output_len(dst, x.len())` bytes.
fn encode_f32(x: &[f32], dst: GgmlType, out: &mut [u8]) {
    match dst {
        GgmlType::F32 => {
            for (c, v) in out.chunks_exact_mut(4).zip(x) {
                c.copy_from_slice(&v.to_le_bytes());
            }
        }
        GgmlType::F16 => f16c::encode_f16(x, out),
        GgmlType::BF16 => encode_u16(x, out, f32_to_bf16_bits),
        GgmlType::Q8_0 => q8_0::quantize_blocks(x, out),
        // output_len rejected every other type before any buffer was sized.
        _ => {}
    }
}
