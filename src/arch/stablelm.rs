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
        let req = |k: &str| ctx.hparams.get(k).cloned().ok_or_else(|| ArchError::Config(format!("{k} is required")));
        let k = |s: &str| format!("stablelm.{s}");
        text::put_u32(kv, k("context_length"), &req("max_position_embeddings")?)?;
        let hidden = req("hidden_size")?;
        text::put_u32(kv, k("embedding_length"), &hidden)?;
        let bc = u32::try_from(ctx.n_blocks()?).map_err(|_| ArchError::Config("block count over u32".into()))?;
        kv.set(k("block_count"), Value::U32(bc));
        text::put_u32(kv, k("feed_forward_length"), &req("intermediate_size")?)?;
        let heads = req("num_attention_heads")?;
        let factor = ctx.rope_parameters.get("partial_rotary_factor").and_then(Json::as_f64);
        let rope_dims = match (factor, hidden.as_u64(), heads.as_u64()) {
            // int(partial_rotary_factor * (hidden // heads)) in Python doubles
            (Some(f), Some(h), Some(n)) if n != 0 => (f * (h / n) as f64).trunc(),
            _ => return Err(ArchError::Config("partial_rotary_factor/hidden_size/num_attention_heads".into())),
        };
        if !(0.0..=f64::from(u32::MAX)).contains(&rope_dims) {
            return Err(ArchError::Config(format!("rope dimension count {rope_dims}")));
        }
        kv.set(k("rope.dimension_count"), Value::U32(rope_dims as u32));
        text::put_u32(kv, k("attention.head_count"), &heads)?;
        text::put_u32(kv, k("attention.head_count_kv"), &req("num_key_value_heads")?)?;
        let parallel = match ctx.hparams.get("use_parallel_residual") {
            None => true,
            Some(v) => v.as_bool().ok_or_else(|| ArchError::Config(format!("use_parallel_residual: {v}")))?,
        };
        kv.set(k("use_parallel_residual"), Value::Bool(parallel));
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
