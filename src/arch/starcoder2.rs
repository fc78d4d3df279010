//! StarCoder2 (`StarCoder2Model`, GGUF arch `starcoder2`): the plain `TextModel` rules over a
//! Llama-style block with biases everywhere and a GPT-style `c_fc`/`c_proj` MLP.

use super::names::{NameMap, COMMON, LLAMA_BLOCK, STARCODER2_BLOCK};
use super::text;
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::KvMap;
use crate::plan::{ElemOp, PlannedTensor, RowOrder};
use crate::vocab::{self, VocabInput};

/// The `starcoder2` family.
pub struct Starcoder2;

impl Architecture for Starcoder2 {
    fn gguf_arch(&self) -> &'static str {
        "starcoder2"
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map = NameMap { tables: &[COMMON, LLAMA_BLOCK, STARCODER2_BLOCK], n_blocks: ctx.n_blocks()? };
        text::walk(ctx, text::base_filter, |item| {
            Ok(vec![text::rows(map.map(&item.name)?, item, RowOrder::Identity, ElemOp::None)])
        })
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        text::set_common_parameters(ctx, "starcoder2", kv)
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        vocab::set_vocab_gpt2(&VocabInput { files: &ctx.source.files, hparams: &ctx.hparams }, kv)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt_style_mlp_maps_to_up_and_down() {
        let m = NameMap { tables: &[COMMON, LLAMA_BLOCK, STARCODER2_BLOCK], n_blocks: 1 };
        assert_eq!(m.map("model.layers.0.mlp.c_fc.bias").unwrap(), "blk.0.ffn_up.bias");
        assert_eq!(m.map("model.layers.0.mlp.c_proj.weight").unwrap(), "blk.0.ffn_down.weight");
        assert_eq!(m.map("model.layers.0.input_layernorm.bias").unwrap(), "blk.0.attn_norm.bias");
    }
}
