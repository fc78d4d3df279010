//! Gemma and Gemma 2 (`GemmaModel`/`Gemma2Model`, GGUF archs `gemma`/`gemma2`): the reference
//! writes their KVs itself (the TextModel keys are not used, so no RoPE base), drops
//! `lm_head.weight`, and adds 1 to every RMSNorm weight (stored as w−1).

use super::names::{NameMap, NameRule, COMMON, GEMMA3_BLOCK, LLAMA_BLOCK};
use super::text;
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::{KvMap, Value};
use crate::plan::{ElemOp, PlannedTensor, RowOrder};
use crate::vocab::{self, VocabInput};

/// One Gemma generation; `arch` is the GGUF architecture name.
pub struct Gemma {
    arch: &'static str,
    tables: &'static [&'static [NameRule]],
}

/// `GemmaForCausalLM`.
pub const GEMMA: Gemma = Gemma { arch: "gemma", tables: &[COMMON, LLAMA_BLOCK] };
/// `Gemma2ForCausalLM`: extra post-attention / pre- and post-feed-forward norms.
pub const GEMMA2: Gemma = Gemma { arch: "gemma2", tables: &[COMMON, LLAMA_BLOCK, GEMMA3_BLOCK] };

/// CodeGemma's fill-in-the-middle ids, which the reference writes for every Gemma 1 model
/// (only `eot` has a GGUF key).
const GEMMA_EXTRA_SPECIAL: [(&str, u32); 5] =
    [("prefix", 67), ("suffix", 69), ("middle", 68), ("fsep", 70), ("eot", 107)];

impl Architecture for Gemma {
    fn gguf_arch(&self) -> &'static str {
        self.arch
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map = NameMap { tables: self.tables, n_blocks: ctx.n_blocks()? };
        // autoawq checkpoints carry an unused lm_head
        let filter = |n: &str| if n == "lm_head.weight" { None } else { text::base_filter(n) };
        text::walk(ctx, filter, |item| {
            let op = if item.name.ends_with("norm.weight") { ElemOp::AddOne } else { ElemOp::None };
            Ok(vec![text::rows(map.map(&item.name)?, item, RowOrder::Identity, op)])
        })
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let k = |s: &str| format!("{}.{s}", self.arch);
        let hp = &ctx.hparams;
        let req = |key: &str| hp.get(key).ok_or_else(|| ArchError::Config(format!("{key} is required")));
        text::put_u32(kv, k("context_length"), req("max_position_embeddings")?)?;
        text::put_u32(kv, k("embedding_length"), req("hidden_size")?)?;
        let bc = ctx.n_blocks()?;
        kv.set(k("block_count"), Value::U32(u32::try_from(bc).map_err(|_| ArchError::Config("block count".into()))?));
        text::put_u32(kv, k("feed_forward_length"), req("intermediate_size")?)?;
        text::put_u32(kv, k("attention.head_count"), req("num_attention_heads")?)?;
        let kv_heads = match hp.get("num_key_value_heads") {
            Some(v) => v,
            None => req("num_attention_heads")?,
        };
        text::put_u32(kv, k("attention.head_count_kv"), kv_heads)?;
        text::put_f32(kv, k("attention.layer_norm_rms_epsilon"), req("rms_norm_eps")?)?;
        text::put_u32(kv, k("attention.key_length"), req("head_dim")?)?;
        text::put_u32(kv, k("attention.value_length"), req("head_dim")?)?;
        text::put_file_type(ctx, kv);
        if self.arch == "gemma2" {
            text::put_f32(kv, k("attn_logit_softcapping"), req("attn_logit_softcapping")?)?;
            text::put_f32(kv, k("final_logit_softcapping"), req("final_logit_softcapping")?)?;
            text::put_u32(kv, k("attention.sliding_window"), req("sliding_window")?)?;
        }
        Ok(())
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let inp = VocabInput { files: &ctx.source.files, hparams: &ctx.hparams };
        let info = vocab::set_vocab_sentencepiece(&inp, kv)?;
        if self.arch == "gemma" {
            vocab::add_extra_special_tokens(&inp, kv, &GEMMA_EXTRA_SPECIAL, info.n_tokens)?;
        }
        kv.set("tokenizer.ggml.add_space_prefix", Value::Bool(false));
        Ok(())
    }
}
