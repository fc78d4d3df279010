//! The conversion plan: which GGUF tensors a virtual file holds, where their bytes sit,
//! and how each output row is produced from source rows.

pub mod layout;

use crate::gguf::GgmlType;

/// The output types a virtual file can have (the reference's `--outtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutType {
    F32,
    F16,
    BF16,
    Q8_0,
}

impl OutType {
    /// All output types, in the order the mount lists them.
    pub const ALL: [OutType; 4] = [OutType::F32, OutType::F16, OutType::BF16, OutType::Q8_0];

    /// Upper-case name used in file names (`F16`, `Q8_0`).
    pub fn name(self) -> &'static str {
        match self {
            OutType::F32 => "F32",
            OutType::F16 => "F16",
            OutType::BF16 => "BF16",
            OutType::Q8_0 => "Q8_0",
        }
    }

    /// Parses `f16`, `F16`, `q8_0`...
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(s))
    }

    /// `general.file_type` (LlamaFileType).
    pub fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::BF16 => 32,
            OutType::Q8_0 => 7,
        }
    }

    /// The ggml type a quantizable tensor gets.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::BF16 => GgmlType::BF16,
            OutType::Q8_0 => GgmlType::Q8_0,
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
    /// Rows grouped per head, `group` rows a head; each head keeps its rows `start..start+len`
    /// (DeepSeek's `kv_b_proj` viewed as [heads, nope+v, in], the V part split off).
    HeadSlice { group: u64, start: u64, len: u64 },
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
            RowOrder::HeadSlice { group, start, len } => (r / len) * group + start + r % len,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_qk_matches_reshape_swapaxes() {
        // 2 heads, d = 4: out[h*4 + 2i + j] = in[h*4 + j*2 + i]
        let p = RowOrder::PermuteQk { n_head: 2 };
        let got: Vec<u64> = (0..8).map(|r| p.source_row(r, 8)).collect();
        assert_eq!(got, vec![0, 2, 1, 3, 4, 6, 5, 7]);
    }

    #[test]
    fn head_slice_keeps_each_heads_tail() {
        // 2 heads of 3 rows, keep rows 1..3 of each: [1 2 4 5]
        let p = RowOrder::HeadSlice { group: 3, start: 1, len: 2 };
        let got: Vec<u64> = (0..4).map(|r| p.source_row(r, 4)).collect();
        assert_eq!(got, vec![1, 2, 4, 5]);
    }

    #[test]
    fn neox_qkv_groups_q_then_k_then_v() {
        // 2 heads, d = 1: rows [q0 k0 v0 q1 k1 v1] -> [q0 q1 k0 k1 v0 v1]
        let p = RowOrder::NeoxQkv { n_head: 2 };
        let got: Vec<u64> = (0..6).map(|r| p.source_row(r, 6)).collect();
        assert_eq!(got, vec![0, 3, 1, 4, 2, 5]);
    }
}
