//! Stacking per-expert MoE tensors into one `[n_expert, out, in]` tensor per projection.
//! The reference buffers a layer's expert tensors and emits the stacks where the layer's
//! last expert tensor arrives in the global order (converter-spec §5.1.5, §5.5).

use std::collections::BTreeMap;

use super::text::Item;
use super::ArchError;
use crate::plan::{ElemOp, PlannedTensor, RowOrder, TensorSource};

/// Per-layer buffer of expert tensors: (source index, shape) by HF name.
#[derive(Default)]
pub struct ExpertStacks {
    by_layer: BTreeMap<u64, BTreeMap<String, (usize, Vec<u64>)>>,
}

impl ExpertStacks {
    /// Buffers `item` (named `name`). Once its layer holds `n_experts` tensors of each of
    /// `kinds`, returns one stack per kind in `kinds` order: expert `x`'s tensor of kind `k`
    /// is `hf_name(bid, x, k)`; the stack is named `gguf_name(bid, k)`.
    pub fn add(
        &mut self,
        name: &str,
        item: &Item,
        n_experts: u64,
        kinds: &[&str],
        hf_name: impl Fn(u64, u64, &str) -> String,
        gguf_name: impl Fn(u64, &str) -> Result<String, ArchError>,
    ) -> Result<Vec<PlannedTensor>, ArchError> {
        let bid = item.bid.ok_or_else(|| ArchError::Tensor {
            name: name.into(),
            reason: "expert tensor without a layer number".into(),
        })?;
        let layer = self.by_layer.entry(bid).or_default();
        layer.insert(name.to_string(), (item.index, item.tensor.shape.clone()));
        if (layer.len() as u64) < n_experts * kinds.len() as u64 {
            return Ok(Vec::new());
        }
        kinds
            .iter()
            .map(|kind| {
                let names = (0..n_experts).map(|x| hf_name(bid, x, kind));
                let (parts, rows, cols) = take_layer_experts(layer, names)?;
                Ok(PlannedTensor {
                    name: gguf_name(bid, kind)?,
                    shape: vec![n_experts, rows, cols],
                    source: TensorSource::Rows {
                        parts,
                        order: RowOrder::Identity,
                        rows_per_part: rows,
                        row_len: cols,
                        op: ElemOp::None,
                    },
                })
            })
            .collect()
    }

    /// The reference's "Unprocessed experts" check: every buffered tensor was stacked.
    pub fn check_empty(&self) -> Result<(), ArchError> {
        match self.by_layer.values().flat_map(|l| l.keys()).next() {
            None => Ok(()),
            Some(n) => {
                Err(ArchError::Tensor { name: n.clone(), reason: "unprocessed expert (layer incomplete)".into() })
            }
        }
    }
}

/// Removes the named 2-D expert tensors from a layer's buffer: their source indices and
/// their common (rows, cols).
fn take_layer_experts(
    layer: &mut BTreeMap<String, (usize, Vec<u64>)>,
    names: impl Iterator<Item = String>,
) -> Result<(Vec<usize>, u64, u64), ArchError> {
    let mut parts = Vec::new();
    let mut shape: Option<Vec<u64>> = None;
    for ename in names {
        let (idx, s) = layer
            .remove(&ename)
            .ok_or_else(|| ArchError::Tensor { name: ename.clone(), reason: "missing expert tensor".into() })?;
        if s.len() != 2 || shape.as_ref().is_some_and(|p| *p != s) {
            return Err(ArchError::Tensor { name: ename, reason: format!("unexpected expert shape {s:?}") });
        }
        shape = Some(s);
        parts.push(idx);
    }
    let s = shape.unwrap_or_default();
    Ok((parts, s.first().copied().unwrap_or(0), s.get(1).copied().unwrap_or(0)))
}
