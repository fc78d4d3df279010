//! GPT-NeoX / Pythia (`GPTNeoXModel`, GGUF arch `gptneox`): its own KV list (no
//! `general.file_type`), and the fused QKV rows regrouped from per-head `[H, 3, d]` to
//! `[Q all heads; K; V]`, for the weight and the bias alike.

use super::names::{NameMap, GPTNEOX};
use super::text;
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::{KvMap, Value};
use crate::plan::{ElemOp, PlannedTensor, RowOrder};
use crate::vocab::{self, VocabInput};

/// The `gptneox` family.
pub struct GptNeox;

impl Architecture for GptNeox {
    fn gguf_arch(&self) -> &'static str {
        "gptneox"
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map = NameMap { tables: &[GPTNEOX], n_blocks: ctx.n_blocks()? };
        let n_head = ctx.find_u64(&["n_head", "num_attention_heads"])?;
        let n_embd = ctx.find_u64(&["hidden_size", "n_embed"])?;
        text::walk(ctx, text::base_filter, |item| {
            let name = map.map(&item.name)?;
            let is_qkv = item.name.starts_with("gpt_neox.layers.")
                && (item.name.ends_with(".attention.query_key_value.weight")
                    || item.name.ends_with(".attention.query_key_value.bias"));
            if !is_qkv {
                return Ok(vec![text::rows(name, item, RowOrder::Identity, ElemOp::None)]);
            }
            let rows = item.tensor.shape.first().copied().unwrap_or(0);
            if n_head == 0 || n_embd % n_head != 0 || rows != 3 * n_embd {
                let reason = format!("{rows} rows are not 3 x {n_embd} split into {n_head} heads");
                return Err(ArchError::Tensor { name: item.name.clone(), reason });
            }
            Ok(vec![text::rows(name, item, RowOrder::NeoxQkv { n_head }, ElemOp::None)])
        })
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let k = |s: &str| format!("gptneox.{s}");
        text::put_neox_shape(ctx, "gptneox", kv)?;
        let pct = text::required(ctx, "rotary_pct")?;
        kv.set(k("rope.dimension_count"), Value::U32(text::partial_rope_dims(ctx, pct.as_f64(), "rotary_pct")?));
        text::put_u32(kv, k("attention.head_count"), &text::required(ctx, "num_attention_heads")?)?;
        kv.set(k("use_parallel_residual"), Value::Bool(text::use_parallel_residual(ctx)?));
        text::put_f32(kv, k("attention.layer_norm_epsilon"), &text::required(ctx, "layer_norm_eps")?)
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        vocab::set_vocab_gpt2(&VocabInput { files: &ctx.source.files, hparams: &ctx.hparams }, kv)?;
        Ok(())
    }
}
