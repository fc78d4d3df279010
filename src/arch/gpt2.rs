//! GPT-2 (`GPT2Model`, GGUF arch `gpt2`): Conv1D weights stored `[in, out]` are transposed.

use serde_json::Value as Json;

use super::names::{NameMap, GPT2};
use super::text;
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::{KvMap, Value};
use crate::plan::{ElemOp, PlannedTensor, RowOrder, TensorSource};
use crate::vocab::{self, VocabInput};

/// The `gpt2` family.
pub struct Gpt2;

impl Architecture for Gpt2 {
    fn gguf_arch(&self) -> &'static str {
        "gpt2"
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map = NameMap { tables: &[GPT2], n_blocks: ctx.n_blocks()? };
        text::walk(ctx, text::base_filter, |item| {
            // The causal-mask buffers: the pinned reference fails on them ("Can not map
            // tensor"), the intended behaviour is to drop them, which we do.
            if item.name.ends_with(".attn.bias") || item.name.ends_with(".attn.masked_bias") {
                tracing::debug!("dropping GPT-2 mask buffer {}", item.name);
                return Ok(Vec::new());
            }
            let name = map.map(&item.name)?;
            let conv1d = [".c_attn.weight", ".c_proj.weight", ".c_fc.weight"];
            if conv1d.iter().any(|s| item.name.ends_with(s)) {
                let s = &item.tensor.shape;
                if s.len() != 2 {
                    return Err(ArchError::Tensor {
                        name: item.name.clone(),
                        reason: format!("Conv1D weight of shape {s:?}"),
                    });
                }
                return Ok(vec![PlannedTensor {
                    name,
                    shape: vec![s[1], s[0]],
                    source: TensorSource::Transposed { src: item.index },
                }]);
            }
            Ok(vec![text::rows(name, item, RowOrder::Identity, ElemOp::None)])
        })
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let hp = |k: &str| ctx.hparams.get(k).cloned().unwrap_or(Json::Null);
        kv.set("gpt2.block_count", Value::U32(u32::try_from(ctx.n_blocks()?).unwrap_or(u32::MAX)));
        text::put_u32(kv, "gpt2.context_length".into(), &hp("n_ctx"))?;
        let n_embd = hp("n_embd");
        text::put_u32(kv, "gpt2.embedding_length".into(), &n_embd)?;
        let ff = n_embd.as_u64().and_then(|n| n.checked_mul(4)).map(Json::from).unwrap_or(Json::Null);
        text::put_u32(kv, "gpt2.feed_forward_length".into(), &ff)?;
        text::put_u32(kv, "gpt2.attention.head_count".into(), &hp("n_head"))?;
        text::put_f32(kv, "gpt2.attention.layer_norm_epsilon".into(), &hp("layer_norm_epsilon"))?;
        text::put_file_type(ctx, kv);
        Ok(())
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        vocab::set_vocab_gpt2(&VocabInput { files: &ctx.source.files, hparams: &ctx.hparams }, kv)?;
        Ok(())
    }
}
