//! Qwen2-MoE and Qwen3-MoE (`Qwen2MoeModel`/`Qwen3MoeModel`, GGUF archs `qwen2moe`/`qwen3moe`):
//! Qwen attention (biases for Qwen2, q/k norms for Qwen3), a router `mlp.gate`, an optional
//! shared expert, and per-expert projections stacked per layer in the order down, gate, up
//! once a layer's last expert tensor has been read.

use serde_json::Value as Json;

use super::experts::ExpertStacks;
use super::names::{NameMap, COMMON, LLAMA_BLOCK, QK_NORM_BLOCK, QWEN_MOE_BLOCK};
use super::text;
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::KvMap;
use crate::plan::{ElemOp, PlannedTensor, RowOrder};
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
                return experts.add(
                    &item.name,
                    item,
                    n_experts,
                    &["down_proj", "gate_proj", "up_proj"],
                    |bid, x, w| format!("model.layers.{bid}.mlp.experts.{x}.{w}.weight"),
                    |bid, w| map.map(&format!("model.layers.{bid}.mlp.experts.{w}.weight")),
                );
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
