//! The conversion plan: which GGUF tensors a virtual file holds, where their bytes sit,
//! and how each output row is produced from source rows.

pub mod layout;
pub mod llama_quant;

use crate::gguf::GgmlType;

/// The output types a virtual file can have (the reference's `--outtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutType {
    F32,
    F16,
    BF16,
    Q8_0,
    /// llama-quantize's `Q4_K_M` of the reference F16 file (not a converter type).
    Q4KM,
    /// llama-quantize's `Q5_K_M` of the reference F16 file.
    Q5KM,
    /// llama-quantize's `Q6_K` of the reference F16 file.
    Q6K,
    /// llama-quantize's `Q4_0` of the reference F16 file.
    Q4_0,
    /// llama-quantize's `Q8_0` of the reference F16 file: differs from the converter's own
    /// Q8_0 (F16 rounding first, llama-quantize's layout), so it exists for parity checks.
    LlamaQ8_0,
}

impl OutType {
    /// The converter's output types (`convert_hf_to_gguf.py --outtype`).
    pub const ALL: [OutType; 4] = [OutType::F32, OutType::F16, OutType::BF16, OutType::Q8_0];

    /// The types made by `llama-quantize` from the F16 file.
    pub const QUANTIZED: [OutType; 5] = [OutType::Q4KM, OutType::Q5KM, OutType::Q6K, OutType::Q4_0, OutType::LlamaQ8_0];

    /// What the mount lists, in order (the parity-only `LlamaQ8_0` is left out: its name
    /// would clash with the converter's Q8_0 in users' minds).
    pub const MOUNTED: [OutType; 8] = [
        OutType::F32,
        OutType::F16,
        OutType::BF16,
        OutType::Q8_0,
        OutType::Q4KM,
        OutType::Q5KM,
        OutType::Q6K,
        OutType::Q4_0,
    ];

    /// True for the types llama-quantize makes from the F16 file.
    pub fn is_llama_quantize(self) -> bool {
        Self::QUANTIZED.contains(&self)
    }

    /// Upper-case name used in file names (`F16`, `Q8_0`).
    pub fn name(self) -> &'static str {
        match self {
            OutType::F32 => "F32",
            OutType::F16 => "F16",
            OutType::BF16 => "BF16",
            OutType::Q8_0 => "Q8_0",
            OutType::Q4KM => "Q4_K_M",
            OutType::Q5KM => "Q5_K_M",
            OutType::Q6K => "Q6_K",
            OutType::Q4_0 => "Q4_0",
            OutType::LlamaQ8_0 => "Q8_0-LQ",
        }
    }

    /// Parses `f16`, `F16`, `q8_0`, `q4_k_m`, `q8_0-lq`...
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().chain(Self::QUANTIZED).find(|t| t.name().eq_ignore_ascii_case(s))
    }

    /// `general.file_type` (LlamaFileType).
    pub fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::BF16 => 32,
            OutType::Q8_0 | OutType::LlamaQ8_0 => 7,
            OutType::Q4KM => 15,
            OutType::Q5KM => 17,
            OutType::Q6K => 18,
            OutType::Q4_0 => 2,
        }
    }

    /// The ggml type a quantizable tensor gets (for llama-quantize types: the ftype's
    /// default, before llama-quantize's per-tensor rules).
    pub fn ggml_type(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::BF16 => GgmlType::BF16,
            OutType::Q8_0 | OutType::LlamaQ8_0 => GgmlType::Q8_0,
            OutType::Q4KM => GgmlType::Q4K,
            OutType::Q5KM => GgmlType::Q5K,
            OutType::Q6K => GgmlType::Q6K,
            OutType::Q4_0 => GgmlType::Q4_0,
        }
    }
}

/// How the rows of one source tensor are reordered or selected to give output rows.
/// A "row" is `row_len` consecutive elements (the last numpy dimension, or 1 element when
/// a 1-D tensor is permuted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOrder {
    /// Output row r is source row r.
    Identity,
    /// Llama's Q/K un-permutation with `n_head` heads: rows move whole.
    /// With d = rows/n_head: out[h*d + 2*i + j] = in[h*d + j*(d/2) + i].
    PermuteQk { n_head: u64 },
    /// GPT-NeoX fused QKV: per-head interleaved [H, 3, d] rows become [Q all; K all; V all].
    NeoxQkv { n_head: u64 },
    /// Output row r is source row r + start (splitting fused tensors, truncating embeddings).
    Offset { start: u64 },
    /// A slice of every block of `block` source rows: `take` rows from row `start` of each
    /// block (one half of a fused gate‖up projection stored per expert; the V rows of each head
    /// of DeepSeek's `kv_b_proj`).
    Strided { block: u64, start: u64, take: u64 },
}

impl RowOrder {
    /// The source row feeding output row `r` of a part with `rows` rows.
    pub fn source_row(&self, r: u64, rows: u64) -> u64 {
        match *self {
            RowOrder::Identity => r,
            RowOrder::PermuteQk { n_head } => {
                let d = rows / n_head;
                let (h, w) = (r / d, r % d);
                let (i, j) = (w / 2, w % 2);
                h * d + j * (d / 2) + i
            }
            RowOrder::NeoxQkv { n_head } => {
                let d = rows / n_head / 3;
                let (which, rest) = (r / (n_head * d), r % (n_head * d));
                let (h, i) = (rest / d, rest % d);
                h * 3 * d + which * d + i
            }
            RowOrder::Offset { start } => r + start,
            RowOrder::Strided { block, start, take } => (r / take.max(1)) * block + start + r % take.max(1),
        }
    }
}

/// Element-wise arithmetic the reference applies in `modify_tensors`, in the working dtype
/// (f16 for f16 sources, f32 otherwise: hazard H11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElemOp {
    None,
    /// Gemma RMSNorm weights are stored as w-1.
    AddOne,
    /// llama-quantize reads the F16 file: the values are rounded to F16 (as the converter's
    /// F16 output) before they are widened and quantized.
    RoundF16,
    /// `AddOne` in the working dtype, then `RoundF16`.
    AddOneRoundF16,
}

impl ElemOp {
    /// This op followed by rounding to F16 (what llama-quantize's input holds).
    pub fn then_round_f16(self) -> Self {
        match self {
            ElemOp::None | ElemOp::RoundF16 => ElemOp::RoundF16,
            ElemOp::AddOne | ElemOp::AddOneRoundF16 => ElemOp::AddOneRoundF16,
        }
    }

    /// The model arithmetic alone, without the F16 staging.
    pub fn model_op(self) -> Self {
        match self {
            ElemOp::None | ElemOp::RoundF16 => ElemOp::None,
            ElemOp::AddOne | ElemOp::AddOneRoundF16 => ElemOp::AddOne,
        }
    }

    /// True when the values pass through F16 before the final encoding.
    pub fn rounds_f16(self) -> bool {
        matches!(self, ElemOp::RoundF16 | ElemOp::AddOneRoundF16)
    }
}

/// Where the data of one output tensor comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorSource {
    /// Output rows are the rows of `parts` (source tensor indices), concatenated along a new
    /// or existing outer axis, each part reordered by `order`; `rows_per_part` output rows
    /// come from each part.
    Rows { parts: Vec<usize>, order: RowOrder, rows_per_part: u64, row_len: u64, op: ElemOp },
    /// A 2-D source transposed (GPT-2 Conv1D): needs the whole source tensor.
    Transposed { src: usize },
    /// A 2-D source `[heads·group, cols]` viewed as `[heads, group, cols]`; rows
    /// `start..start+len` of each head, transposed per head to `[heads, cols, len]`
    /// (DeepSeek's MLA `k_b` split out of `kv_b_proj`). Needs the whole source tensor.
    HeadTransposed { src: usize, group: u64, start: u64, len: u64 },
    /// A 3-D source `[experts, rows, cols]` stored input-major (Llama 4's fused expert
    /// projections): each expert's matrix transposed to `[cols, rows]`, keeping rows
    /// `start..start+len` of it (source columns), giving `[experts, len, rows]`. Needs the whole
    /// source tensor.
    ExpertsTransposed { src: usize, start: u64, len: u64 },
    /// Data generated from the config (rope factors), already in f32.
    Generated(Vec<f32>),
}

/// One tensor of the output file as an architecture declares it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedTensor {
    /// GGUF name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// numpy order (outermost first), after the transform.
    pub shape: Vec<u64>,
    pub source: TensorSource,
}

impl PlannedTensor {
    /// A tensor copied from source tensor `src` with its rows reordered by `order`.
    pub fn rows(name: impl Into<String>, shape: Vec<u64>, src: usize, order: RowOrder, op: ElemOp) -> Self {
        let row_len = if shape.len() <= 1 { 1 } else { *shape.last().unwrap() };
        let n: u64 = shape.iter().product();
        PlannedTensor {
            name: name.into(),
            shape,
            source: TensorSource::Rows { parts: vec![src], order, rows_per_part: n / row_len.max(1), row_len, op },
        }
    }
}

impl TensorSource {
    /// `ExpertsTransposed`: the source element (flat index into `[experts, rows, cols]`) that
    /// output element `i` of `[experts, len, rows]` holds; `None` outside the source.
    pub fn experts_transposed_index(i: u64, rows: u64, cols: u64, start: u64, len: u64) -> Option<u64> {
        let per_expert = len.checked_mul(rows).filter(|&n| n > 0)?;
        let (e, rem) = (i / per_expert, i % per_expert);
        let (j, r) = (rem / rows, rem % rows);
        if start + j >= cols {
            return None;
        }
        Some(e * rows * cols + r * cols + start + j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experts_transposed_takes_columns_of_each_expert() {
        // 2 experts of [rows 2, cols 4] (gate cols 0..2 | up cols 2..4); the up half of
        // expert 1 transposed: out[1][j][r] = src[1][r][2 + j]
        let idx = |i| TensorSource::experts_transposed_index(i, 2, 4, 2, 2);
        let got: Vec<Option<u64>> = (0..8).map(idx).collect();
        let want = [2, 6, 3, 7, 10, 14, 11, 15].map(Some);
        assert_eq!(got, want);
        assert_eq!(TensorSource::experts_transposed_index(0, 2, 4, 3, 2).map(|_| ()), Some(()));
        assert_eq!(TensorSource::experts_transposed_index(2, 2, 4, 3, 2), None);
        assert_eq!(TensorSource::experts_transposed_index(0, 0, 4, 0, 2), None);
    }

    #[test]
    fn permute_qk_matches_reshape_swapaxes() {
        // 2 heads, d = 4: out[h*4 + 2i + j] = in[h*4 + j*2 + i]
        let p = RowOrder::PermuteQk { n_head: 2 };
        let got: Vec<u64> = (0..8).map(|r| p.source_row(r, 8)).collect();
        assert_eq!(got, vec![0, 2, 1, 3, 4, 6, 5, 7]);
    }

    #[test]
    fn strided_takes_one_slice_of_each_block() {
        // 2 experts of [gate 0..2 | up 2..4]: the up halves are rows 2, 3, 6, 7
        let p = RowOrder::Strided { block: 4, start: 2, take: 2 };
        let got: Vec<u64> = (0..4).map(|r| p.source_row(r, 4)).collect();
        assert_eq!(got, vec![2, 3, 6, 7]);
    }

    #[test]
    fn neox_qkv_groups_q_then_k_then_v() {
        // 2 heads, d = 1: rows [q0 k0 v0 q1 k1 v1] -> [q0 q1 k0 k1 v0 v1]
        let p = RowOrder::NeoxQkv { n_head: 2 };
        let got: Vec<u64> = (0..6).map(|r| p.source_row(r, 6)).collect();
        assert_eq!(got, vec![0, 3, 1, 4, 2, 5]);
    }
}
