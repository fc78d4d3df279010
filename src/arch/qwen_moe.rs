//! Qwen2-MoE and Qwen3-MoE (`Qwen2MoeModel`/`Qwen3MoeModel`, GGUF archs `qwen2moe`/`qwen3moe`):
//! Qwen attention (biases for Qwen2, q/k norms for Qwen3), a router `mlp.gate`, an optional
//! shared expert, and per-expert projections stacked per layer in the order down, gate, up
//! once a layer's last expert tensor has been read.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::names::{NameMap, COMMON, LLAMA_BLOCK, QK_NORM_BLOCK, QWEN_MOE_BLOCK};
use super::text::{self, Item};
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::KvMap;
use crate::plan::{ElemOp, PlannedTensor, RowOrder, TensorSource};
use crate::vocab::{self, VocabInput};

/// The Qwen MoE families; `arch` is the GGUF architecture name (`qwen2moe` or `qwen3moe`).
pub struct QwenMoe {
    pub arch: &'static str,
}

/// `Qwen2MoeForCausalLM`.
pub const QWEN2MOE: QwenMoe = QwenMoe { arch: "qwen2moe" };
/// `Qwen3MoeForCausalLM`.
pub const QWEN3MOE: QwenMoe = QwenMoe { arch: "qwen3moe" };

impl Architecture for QwenMoe {
    fn gguf_arch(&self) -> &'static str {
        self.arch
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map = NameMap { tables: &[COMMON, LLAMA_BLOCK, QK_NORM_BLOCK, QWEN_MOE_BLOCK], n_blocks: ctx.n_blocks()? };
        let n_experts = ctx.find_u64(&["num_local_experts", "num_experts"])?;
        let mut experts = ExpertStacks::default();
        let out = text::walk(ctx, text::base_filter, |item| {
            if is_fused_expert(&item.name) {
                return Err(ArchError::Unsupported("fused 3-D Qwen MoE expert tensors".into(), "per-expert".into()));
            }
            if item.name.contains("experts") {
                return experts.add(&map, n_experts, item);
            }
            Ok(vec![text::rows(map.map(&item.name)?, item, RowOrder::Identity, ElemOp::None)])
        })?;
        experts.check_empty()?;
        Ok(out)
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let arch = self.arch;
        text::set_common_parameters(ctx, arch, kv)?;
        let moe_ff = ctx.hparams.get("moe_intermediate_size");
        text::put_u32_opt(kv, format!("{arch}.expert_feed_forward_length"), moe_ff)?;
        let shared_ff = ctx.hparams.get("shared_expert_intermediate_size");
        text::put_u32_opt(kv, format!("{arch}.expert_shared_feed_forward_length"), shared_ff)
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        // only Qwen3-MoE routes InternS1 checkpoints to their own vocabulary
        if self.arch == "qwen3moe"
            && ctx.raw_config.get("architectures").and_then(|a| a.get(0)).and_then(Json::as_str)
                == Some("InternS1ForConditionalGeneration")
        {
            return Err(ArchError::Unsupported("InternS1 vocabulary".into(), "Qwen BPE".into()));
        }
        vocab::set_vocab_gpt2(&VocabInput { files: &ctx.source.files, hparams: &ctx.hparams }, kv)?;
        Ok(())
    }
}

/// Newer checkpoints store experts already stacked; the pinned reference splits those too,
/// which needs a column-split tensor source we do not have yet.
fn is_fused_expert(name: &str) -> bool {
    let base = name.strip_suffix(".weight").unwrap_or(name);
    base.ends_with("mlp.experts.down_proj") || base.ends_with("mlp.experts.gate_up_proj")
}

/// Per-layer buffer of expert tensors: (source index, shape) by HF name.
#[derive(Default)]
struct ExpertStacks {
    by_layer: BTreeMap<u64, BTreeMap<String, (usize, Vec<u64>)>>,
}

impl ExpertStacks {
    fn add(&mut self, map: &NameMap, n_experts: u64, item: &Item) -> Result<Vec<PlannedTensor>, ArchError> {
        let bid = item.bid.ok_or_else(|| ArchError::Tensor {
            name: item.name.clone(),
            reason: "expert tensor without a layer number".into(),
        })?;
        let layer = self.by_layer.entry(bid).or_default();
        layer.insert(item.name.clone(), (item.index, item.tensor.shape.clone()));
        if (layer.len() as u64) < n_experts * 3 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for w in ["down_proj", "gate_proj", "up_proj"] {
            let mut parts = Vec::new();
            let mut shape: Option<Vec<u64>> = None;
            for xid in 0..n_experts {
                let ename = format!("model.layers.{bid}.mlp.experts.{xid}.{w}.weight");
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
            let (rows, cols) = (s.first().copied().unwrap_or(0), s.get(1).copied().unwrap_or(0));
            out.push(PlannedTensor {
                name: map.map(&format!("model.layers.{bid}.mlp.experts.{w}.weight"))?,
                shape: vec![n_experts, rows, cols],
                source: TensorSource::Rows {
                    parts,
                    order: RowOrder::Identity,
                    rows_per_part: rows,
                    row_len: cols,
                    op: ElemOp::None,
                },
            });
        }
        Ok(out)
    }

    fn check_empty(&self) -> Result<(), ArchError> {
        match self.by_layer.values().flat_map(|l| l.keys()).next() {
            None => Ok(()),
            Some(n) => {
                Err(ArchError::Tensor { name: n.clone(), reason: "unprocessed expert (layer incomplete)".into() })
            }
        }
    }
}
