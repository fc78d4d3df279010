//! StableLM (`StableLMModel`, GGUF arch `stablelm`): Llama tensor names with LayerNorm biases,
//! partial rotary embeddings, and its own parameter list.

use serde_json::Value as Json;

use super::names::{NameMap, COMMON, LLAMA_BLOCK};
use super::text;
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::{KvMap, Value};
use crate::plan::{ElemOp, PlannedTensor, RowOrder};
use crate::vocab::{self, VocabInput};

/// The `stablelm` family.
pub struct StableLm;

impl Architecture for StableLm {
    fn gguf_arch(&self) -> &'static str {
        "stablelm"
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map = NameMap { tables: &[COMMON, LLAMA_BLOCK], n_blocks: ctx.n_blocks()? };
        text::walk(ctx, text::base_filter, |item| {
            // converter-spec H14: the pinned reference crashes on per-head norms ("Unprocessed norms")
            if item.name.contains("q_layernorm.norms") || item.name.contains("k_layernorm.norms") {
                return Err(ArchError::Unsupported("StableLM 2 per-head q/k layernorms".into(), "no q/k norms".into()));
            }
            Ok(vec![text::rows(map.map(&item.name)?, item, RowOrder::Identity, ElemOp::None)])
        })
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let k = |s: &str| format!("stablelm.{s}");
        text::put_neox_shape(ctx, "stablelm", kv)?;
        let factor = ctx.rope_parameters.get("partial_rotary_factor").and_then(Json::as_f64);
        kv.set(k("rope.dimension_count"), Value::U32(text::partial_rope_dims(ctx, factor, "partial_rotary_factor")?));
        text::put_u32(kv, k("attention.head_count"), &text::required(ctx, "num_attention_heads")?)?;
        text::put_u32(kv, k("attention.head_count_kv"), &text::required(ctx, "num_key_value_heads")?)?;
        kv.set(k("use_parallel_residual"), Value::Bool(text::use_parallel_residual(ctx)?));
        let eps = ctx.find(&["layer_norm_eps", "norm_eps"]).cloned().unwrap_or(Json::Null);
        text::put_f32(kv, k("attention.layer_norm_epsilon"), &eps)?;
        text::put_file_type(ctx, kv);
        Ok(())
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        if !ctx.source.files.contains("tokenizer.json") {
            return Err(ArchError::Unsupported("StableLM Qwen-style vocabulary".into(), "tokenizer.json".into()));
        }
        vocab::set_vocab_gpt2(&VocabInput { files: &ctx.source.files, hparams: &ctx.hparams }, kv)?;
        Ok(())
    }
}
