//! Qwen2 (`Qwen2Model`, GGUF arch `qwen2`): Llama names plus q/k/v biases, no permutation
//! (NeoX RoPE at runtime), optional sentence-transformers pooling type.

use serde_json::Value as Json;

use super::names::{NameMap, COMMON, LLAMA_BLOCK};
use super::text;
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::{KvMap, Value};
use crate::plan::{ElemOp, PlannedTensor, RowOrder};
use crate::vocab::{self, VocabError, VocabInput};

/// The `qwen2` family.
pub struct Qwen2;

impl Architecture for Qwen2 {
    fn gguf_arch(&self) -> &'static str {
        "qwen2"
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map = NameMap { tables: &[COMMON, LLAMA_BLOCK], n_blocks: ctx.n_blocks()? };
        let prefix_model = ctx.hf_arch == "Qwen2Model";
        text::walk(ctx, text::base_filter, |item| {
            let name = if prefix_model { format!("model.{}", item.name) } else { item.name.clone() };
            Ok(vec![text::rows(map.map(&name)?, item, RowOrder::Identity, ElemOp::None)])
        })
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        text::set_common_parameters(ctx, "qwen2", kv)?;
        if let Some(p) = pooling_type(ctx)? {
            kv.set("qwen2.pooling_type", Value::U32(p));
        }
        Ok(())
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let inp = VocabInput { files: &ctx.source.files, hparams: &ctx.hparams };
        match vocab::set_vocab_sentencepiece(&inp, kv) {
            Err(VocabError::NotFound(_)) => vocab::set_vocab_gpt2(&inp, kv)?,
            r => r?,
        };
        Ok(())
    }
}

/// `_try_set_pooling_type`: the sentence-transformers pooling module named in modules.json.
pub fn pooling_type(ctx: &ModelCtx) -> Result<Option<u32>, ArchError> {
    let files = &ctx.source.files;
    let Some(modules) = files.json("modules.json") else {
        return Ok(None);
    };
    let modules = modules.map_err(|e| ArchError::Config(format!("modules.json: {e}")))?;
    let path = modules.as_array().into_iter().flatten().find_map(|m| {
        let is_pooling = m.get("type").and_then(Json::as_str).is_some_and(|t| t.ends_with("Pooling"));
        if is_pooling {
            m.get("path").and_then(Json::as_str)
        } else {
            None
        }
    });
    let Some(path) = path else { return Ok(None) };
    let cfg_path = if path.is_empty() { "config.json".to_string() } else { format!("{path}/config.json") };
    let cfg = match files.json(&cfg_path) {
        Some(Ok(c)) => c,
        _ => return Err(ArchError::Config(format!("{cfg_path} (pooling config) missing or malformed"))),
    };
    let flag = |k: &str| cfg.get(k).is_some_and(|v| v.as_bool() == Some(true) || v.as_u64().is_some_and(|n| n != 0));
    let ty = if flag("pooling_mode_mean_tokens") {
        1
    } else if flag("pooling_mode_cls_token") {
        2
    } else if flag("pooling_mode_lasttoken") {
        3
    } else {
        match cfg.get("pooling_mode").and_then(Json::as_str) {
            Some("mean") => 1,
            Some("cls") => 2,
            Some("lasttoken") => 3,
            _ => return Err(ArchError::Config("unsupported pooling type".into())),
        }
    };
    Ok(Some(ty))
}
