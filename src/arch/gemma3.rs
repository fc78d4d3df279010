//! Gemma 3 (`Gemma3Model`, GGUF arch `gemma3`): RMSNorm weights stored as w−1 get +1, the
//! embedding is cut to the real vocabulary, and several KVs are re-added after the common ones.

use serde_json::Value as Json;

use super::names::{NameMap, COMMON, GEMMA3_BLOCK, LLAMA_BLOCK};
use super::text;
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::{KvMap, Value};
use crate::plan::{ElemOp, PlannedTensor, RowOrder, TensorSource};
use crate::vocab::{self, VocabInput};

/// The `gemma3` family.
pub struct Gemma3;

impl Architecture for Gemma3 {
    fn gguf_arch(&self) -> &'static str {
        "gemma3"
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map = NameMap { tables: &[COMMON, LLAMA_BLOCK, GEMMA3_BLOCK], n_blocks: ctx.n_blocks()? };
        let mut n_vocab_real: Option<u64> = None;
        text::walk(ctx, text::base_filter, |item| {
            let op = if item.name.ends_with("norm.weight") { ElemOp::AddOne } else { ElemOp::None };
            let name = map.map(&item.name)?;
            if !item.name.contains("embed_tokens.weight") {
                return Ok(vec![text::rows(name, item, RowOrder::Identity, op)]);
            }
            let n_real = match n_vocab_real {
                Some(n) => n,
                None => *n_vocab_real.insert(vocab_real_size(ctx)?),
            };
            let mut shape = item.tensor.shape.clone();
            let row_len = shape.iter().skip(1).product::<u64>();
            let Some(rows) = shape.first_mut() else {
                return Err(ArchError::Tensor { name: item.name.clone(), reason: "0-d embedding".into() });
            };
            // data_torch[:n] keeps at most the rows there are
            *rows = (*rows).min(n_real);
            let rows_per_part = *rows;
            let source =
                TensorSource::Rows { parts: vec![item.index], order: RowOrder::Identity, rows_per_part, row_len, op };
            Ok(vec![PlannedTensor { name, shape, source }])
        })
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        text::set_common_parameters(ctx, "gemma3", kv)?;
        let hp = &ctx.hparams;
        let get = |k: &str, d: Json| hp.get(k).cloned().unwrap_or(d);
        text::put_u32(kv, "gemma3.context_length".into(), &get("max_position_embeddings", Json::from(131072)))?;
        text::put_u32(kv, "gemma3.attention.head_count".into(), &get("num_attention_heads", Json::from(8)))?;
        let eps = get("rms_norm_eps", Json::from(1e-6));
        text::put_f32(kv, "gemma3.attention.layer_norm_rms_epsilon".into(), &eps)?;
        let head_dim = get("head_dim", Json::from(256));
        text::put_u32(kv, "gemma3.attention.key_length".into(), &head_dim)?;
        text::put_u32(kv, "gemma3.attention.value_length".into(), &head_dim)?;
        let theta = ctx.rope_full().get("rope_theta").cloned().unwrap_or(Json::from(1_000_000.0));
        text::put_f32(kv, "gemma3.rope.freq_base".into(), &theta)?;
        if hp.get("attn_logit_softcapping").is_some_and(|v| !v.is_null()) {
            return Err(ArchError::Config("attn_logit_softcapping must be null for Gemma 3".into()));
        }
        if let Some(cap) = hp.get("final_logit_softcapping").filter(|v| is_truthy(v)) {
            text::put_f32(kv, "gemma3.final_logit_softcapping".into(), cap)?;
        }
        if hp.get("sliding_window_pattern") != Some(&Json::from(1)) {
            let sw = hp.get("sliding_window").ok_or_else(|| ArchError::Config("sliding_window is required".into()))?;
            text::put_u32(kv, "gemma3.attention.sliding_window".into(), sw)?;
        }
        text::put_u32(kv, "gemma3.attention.head_count_kv".into(), &get("num_key_value_heads", Json::from(4)))
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let inp = VocabInput { files: &ctx.source.files, hparams: &ctx.hparams };
        if ctx.source.files.contains("tokenizer.model") {
            vocab::set_vocab_sentencepiece(&inp, kv)?;
            kv.set("tokenizer.ggml.add_space_prefix", Value::Bool(false));
        } else {
            vocab::set_vocab_gpt2(&inp, kv)?;
        }
        Ok(())
    }
}

/// Python truthiness of a JSON value (`if x:`).
fn is_truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64() != Some(0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// The number of embedding rows Gemma 3 keeps (its `modify_tensors`): the SentencePiece
/// token list length when tokenizer.model exists, else tokenizer.json's vocab + added tokens.
/// Computed here because the planner asks for tensors before the vocabulary is built.
pub fn vocab_real_size(ctx: &ModelCtx) -> Result<u64, ArchError> {
    let files = &ctx.source.files;
    if files.contains("tokenizer.model") {
        let v = ctx.find(&["vocab_size_per_layer_input", "vocab_size"]).and_then(Json::as_u64).filter(|n| *n != 0);
        return v.ok_or_else(|| ArchError::Config("vocab_size is required with tokenizer.model".into()));
    }
    let tj = match files.json("tokenizer.json") {
        Some(Ok(t)) => t,
        Some(Err(e)) => return Err(ArchError::Config(format!("tokenizer.json: {e}"))),
        None => return Err(ArchError::Config("neither tokenizer.model nor tokenizer.json".into())),
    };
    let vocab = tj.pointer("/model/vocab").and_then(|v| match v {
        Json::Object(m) => Some(m.len()),
        Json::Array(a) => Some(a.len()),
        _ => None,
    });
    let added = tj.get("added_tokens").and_then(Json::as_array).map(|a| a.len());
    match (vocab, added) {
        (Some(v), Some(a)) => Ok((v + a) as u64),
        _ => Err(ArchError::Config("tokenizer.json lacks model.vocab or added_tokens".into())),
    }
}
