//! Qwen3 (`Qwen3Model`, GGUF arch `qwen3`): Qwen2 plus per-head `q_norm`/`k_norm` RMSNorm
//! weights. The reference's reranker variant (which rewrites the output head and adds a
//! chat template) is refused rather than converted wrongly.

use serde_json::Value as Json;

use super::names::{NameMap, COMMON, LLAMA_BLOCK, QK_NORM_BLOCK};
use super::qwen2::{pooling_type, Qwen2};
use super::text;
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::{KvMap, Value};
use crate::plan::{ElemOp, PlannedTensor, RowOrder};

/// The `qwen3` family.
pub struct Qwen3;

impl Architecture for Qwen3 {
    fn gguf_arch(&self) -> &'static str {
        "qwen3"
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        refuse_reranker(ctx)?;
        let map = NameMap { tables: &[COMMON, LLAMA_BLOCK, QK_NORM_BLOCK], n_blocks: ctx.n_blocks()? };
        let prefix_model = ctx.hf_arch == "Qwen3Model";
        text::walk(ctx, text::base_filter, |item| {
            let name = if prefix_model { format!("model.{}", item.name) } else { item.name.clone() };
            Ok(vec![text::rows(map.map(&name)?, item, RowOrder::Identity, ElemOp::None)])
        })
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        refuse_reranker(ctx)?;
        text::set_common_parameters(ctx, "qwen3", kv)?;
        if let Some(p) = pooling_type(ctx)? {
            kv.set("qwen3.pooling_type", Value::U32(p));
        }
        Ok(())
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        if ctx.raw_config.get("architectures").and_then(|a| a.get(0)).and_then(Json::as_str)
            == Some("InternS1ForConditionalGeneration")
        {
            return Err(ArchError::Unsupported("InternS1 vocabulary".into(), "Qwen3 BPE/SentencePiece".into()));
        }
        Qwen2.set_vocab(ctx, kv)
    }
}

/// `_is_qwen3_reranker`: those conversions build a classifier head from tokenizer lookups we
/// do not emulate, so they are an explicit error instead of a silently different file.
fn refuse_reranker(ctx: &ModelCtx) -> Result<(), ArchError> {
    let readme = ctx.source.files.get("README.md").map(|b| String::from_utf8_lossy(b).to_lowercase());
    let in_readme = readme.is_some_and(|r| r.contains("# qwen3-reranker") || r.contains("# qwen3-vl-reranker"));
    let hint = |k: &str| ctx.hparams.get(k).and_then(Json::as_str).unwrap_or("").to_lowercase();
    let origin = ctx.raw_config.get("architectures").and_then(|a| a.get(0)).and_then(Json::as_str).unwrap_or("");
    // the reference also checks its snapshot directory name: a commit sha, never a hint
    let hints = [hint("_name_or_path"), hint("model_type"), origin.to_lowercase()];
    let named = hints.iter().any(|h| h.contains("qwen3-reranker") || h.contains("qwen3-vl-reranker"));
    if in_readme || named || origin.to_lowercase().contains("sequenceclassification") {
        return Err(ArchError::Unsupported("Qwen3 reranker".into(), "Qwen3 causal LM".into()));
    }
    Ok(())
}
