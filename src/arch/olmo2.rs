//! OLMo-2 (`Olmo2Model`, GGUF arch `olmo2`): a Llama-style block without pre-norms, with
//! post-attention / post-feed-forward norms and full-width Q/K RMSNorms; no Q/K permutation.

use super::names::{NameMap, COMMON, LLAMA_BLOCK, OLMO2_BLOCK, QK_NORM_BLOCK};
use super::text;
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::{KvMap, Value, ValueType};
use crate::plan::{ElemOp, PlannedTensor, RowOrder};
use crate::vocab::{self, VocabInput};

/// The `olmo2` family.
pub struct Olmo2;

impl Architecture for Olmo2 {
    fn gguf_arch(&self) -> &'static str {
        "olmo2"
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map = NameMap { tables: &[COMMON, LLAMA_BLOCK, QK_NORM_BLOCK, OLMO2_BLOCK], n_blocks: ctx.n_blocks()? };
        text::walk(ctx, text::base_filter, |item| {
            Ok(vec![text::rows(map.map(&item.name)?, item, RowOrder::Identity, ElemOp::None)])
        })
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        text::set_common_parameters(ctx, "olmo2", kv)?;
        let Some(window) = ctx.hparams.get("sliding_window") else {
            return Ok(());
        };
        text::put_u32(kv, "olmo2.attention.sliding_window".into(), window)?;
        let pattern = sliding_window_pattern(ctx)?;
        kv.set(
            "olmo2.attention.sliding_window_pattern",
            Value::Array(ValueType::Bool, pattern.into_iter().map(Value::Bool).collect()),
        );
        Ok(())
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        vocab::set_vocab_gpt2(&VocabInput { files: &ctx.source.files, hparams: &ctx.hparams }, kv)?;
        Ok(())
    }
}

/// Which layers use the sliding window: `layer_types` when given, else OLMo-3's default of
/// every layer but each fourth.
fn sliding_window_pattern(ctx: &ModelCtx) -> Result<Vec<bool>, ArchError> {
    if let Some(types) = ctx.hparams.get("layer_types") {
        let types = types.as_array().ok_or_else(|| ArchError::Config(format!("layer_types: {types}")))?;
        return Ok(types.iter().map(|t| t.as_str() == Some("sliding_attention")).collect());
    }
    let n = ctx.find_u64(&["num_hidden_layers"])?;
    Ok((0..n).map(|i| (i + 1) % 4 != 0).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::names::NameMap;

    #[test]
    fn post_attention_layernorm_is_a_post_norm() {
        let m = NameMap { tables: &[COMMON, LLAMA_BLOCK, QK_NORM_BLOCK, OLMO2_BLOCK], n_blocks: 2 };
        assert_eq!(
            m.map("model.layers.1.post_attention_layernorm.weight").unwrap(),
            "blk.1.post_attention_norm.weight"
        );
        assert_eq!(m.map("model.layers.0.post_feedforward_layernorm.weight").unwrap(), "blk.0.post_ffw_norm.weight");
        assert_eq!(m.map("model.layers.0.self_attn.k_norm.weight").unwrap(), "blk.0.attn_k_norm.weight");
    }
}
