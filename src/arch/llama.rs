//! Llama, Mistral and Mixtral (`LlamaModel`, GGUF arch `llama`): Q/K rows un-permuted to the
//! interleaved RoPE layout, Mixtral experts stacked per layer, Llama-3 `rope_freqs`.

use serde_json::Value as Json;

use super::experts::ExpertStacks;
use super::names::{NameMap, COMMON, LLAMA_BLOCK, MIXTRAL_BLOCK};
use super::text::{self, Item};
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::{KvMap, Value};
use crate::plan::{ElemOp, PlannedTensor, RowOrder, TensorSource};
use crate::vocab::{self, VocabError, VocabInput};

/// The `llama` family.
pub struct Llama;

impl Architecture for Llama {
    fn gguf_arch(&self) -> &'static str {
        "llama"
    }

    fn extra_tensors(&self, ctx: &ModelCtx, _kv: &mut KvMap) -> Result<Vec<PlannedTensor>, ArchError> {
        let rp = ctx.rope_full();
        if rp.is_empty() {
            return Ok(Vec::new());
        }
        let is_llama3 = rp.get("rope_type").and_then(Json::as_str).is_some_and(|t| t.eq_ignore_ascii_case("llama3"));
        if !is_llama3 {
            return Ok(Vec::new());
        }
        let factors = llama3_rope_factors(ctx)?;
        let n = factors.len() as u64;
        Ok(vec![PlannedTensor {
            name: "rope_freqs.weight".into(),
            shape: vec![n],
            source: TensorSource::Generated(factors),
        }])
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map = NameMap { tables: &[COMMON, LLAMA_BLOCK, MIXTRAL_BLOCK], n_blocks: ctx.n_blocks()? };
        let n_head = ctx.find_u64(&["n_heads", "num_attention_heads"])?;
        let n_kv = ctx.find_u64(&["n_kv_heads", "num_key_value_heads"])?;
        let prefix_model = ctx.hf_arch == "LlamaModel";
        let mut experts = ExpertStacks::default();
        let out = text::walk(
            ctx,
            |n| text::base_filter(&n.replace("text_model.", "")),
            |item| {
                let name = if prefix_model { format!("model.{}", item.name) } else { item.name.clone() };
                if name.contains("block_sparse_moe.experts") {
                    let n_experts = ctx.find_u64(&["num_local_experts"])?;
                    return experts.add(
                        &name,
                        item,
                        n_experts,
                        &["w1", "w2", "w3"],
                        |bid, x, w| format!("model.layers.{bid}.block_sparse_moe.experts.{x}.{w}.weight"),
                        |bid, w| map.map(&format!("layers.{bid}.feed_forward.experts.{w}.weight")),
                    );
                }
                let order = if name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias") {
                    permute(&name, item, n_head)?
                } else if name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias") {
                    permute(&name, item, n_kv)?
                } else {
                    RowOrder::Identity
                };
                Ok(vec![text::rows(map.map(&name)?, item, order, ElemOp::None)])
            },
        )?;
        experts.check_empty()?;
        Ok(out)
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        text::set_common_parameters(ctx, "llama", kv)?;
        let vocab_size = ctx.hparams.get("vocab_size").unwrap_or(&Json::Null);
        text::put_u32(kv, "llama.vocab_size".into(), vocab_size)?;
        let rope_dim = match ctx.hparams.get("head_dim").filter(|v| !v.is_null()) {
            Some(hd) => hd.clone(),
            None => Json::from(head_dim_from_sizes(ctx)?),
        };
        text::put_u32(kv, "llama.rope.dimension_count".into(), &rope_dim)
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let files = &ctx.source.files;
        if files.contains("tekken.json") && !files.contains("tokenizer.json") {
            return Err(ArchError::Unsupported(
                "Mistral tekken.json vocabulary".into(),
                "tokenizer.json/tokenizer.model".into(),
            ));
        }
        if let Some(Ok(tc)) = files.json("tokenizer_config.json") {
            if let Some(aps) = tc.get("add_prefix_space").filter(|v| !v.is_null()) {
                let b = aps.as_bool().ok_or_else(|| ArchError::Config(format!("add_prefix_space: {aps}")))?;
                kv.set("tokenizer.ggml.add_space_prefix", Value::Bool(b));
            }
            if tc.get("tokenizer_class").and_then(Json::as_str) == Some("HybridDNATokenizer") {
                return Err(ArchError::Unsupported("HybridDNATokenizer".into(), "BPE/SentencePiece".into()));
            }
        }
        let inp = VocabInput { files, hparams: &ctx.hparams };
        let info = match vocab::set_vocab_sentencepiece(&inp, kv) {
            Err(VocabError::NotFound(_)) => match vocab::set_vocab_llama_hf(&inp, kv) {
                Err(VocabError::NotFound(_) | VocabError::WrongKind(_)) => vocab::set_vocab_gpt2(&inp, kv)?,
                r => r?,
            },
            r => r?,
        };
        let vocab_size = ctx.hparams.get("vocab_size").and_then(Json::as_u64).unwrap_or(32000);
        if vocab_size == 32016 {
            let types = [("prefix", 32007), ("suffix", 32008), ("middle", 32009), ("eot", 32010)];
            vocab::add_extra_special_tokens(&inp, kv, &types, info.n_tokens)?;
        }
        if vocab_size == 49152 {
            kv.set("tokenizer.ggml.add_bos_token", Value::Bool(false));
        }
        Ok(())
    }
}

pub fn head_dim_from_sizes(ctx: &ModelCtx) -> Result<u64, ArchError> {
    let hidden = ctx.find_u64(&["hidden_size"])?;
    let heads = ctx.find_u64(&["num_attention_heads"])?;
    hidden.checked_div(heads).ok_or_else(|| ArchError::Config("num_attention_heads is 0".into()))
}

/// `LlamaModel.permute` as a row order (Granite shares it), checking that the rows split into 2·`n_head` blocks.
pub fn permute(name: &str, item: &Item, n_head: u64) -> Result<RowOrder, ArchError> {
    let rows = item.tensor.shape.first().copied().unwrap_or(0);
    // `n_head` comes from config.json: a huge value must be an error, not an overflow.
    if n_head.checked_mul(2).is_none_or(|blocks| blocks == 0 || rows % blocks != 0) {
        let reason = format!("{rows} rows do not split into {n_head} heads of even size");
        return Err(ArchError::Tensor { name: name.into(), reason });
    }
    Ok(RowOrder::PermuteQk { n_head })
}

/// `generate_extra_tensors` for `rope_type == "llama3"` with torch's float32 semantics
/// (converter-spec §5.1.4, hazard H3): pow is correctly rounded via f64, then f32 steps.
fn llama3_rope_factors(ctx: &ModelCtx) -> Result<Vec<f32>, ArchError> {
    let rp = ctx.rope_full();
    let num = |k: &str, d: f64| -> Result<f64, ArchError> {
        match rp.get(k) {
            None => Ok(d),
            Some(v) => v.as_f64().ok_or_else(|| ArchError::Config(format!("rope_scaling.{k}: {v}"))),
        }
    };
    let base = num("rope_theta", 10000.0)?;
    let dim = match ctx.hparams.get("head_dim").and_then(Json::as_u64) {
        Some(d) => d,
        None => head_dim_from_sizes(ctx)?,
    };
    let (factor, lo, hi) = (num("factor", 8.0)?, num("low_freq_factor", 1.0)?, num("high_freq_factor", 4.0)?);
    let old = num("original_max_position_embeddings", 8192.0)?;
    Ok(rope_factors(base, dim, factor, lo, hi, old))
}

/// The llama3 factor per frequency, each step rounded to f32 as torch does.
pub fn rope_factors(base: f64, dim: u64, factor: f64, lo: f64, hi: f64, old: f64) -> Vec<f32> {
    let (high_wl, low_wl) = ((old / hi) as f32, (old / lo) as f32);
    let two_pi = (2.0 * std::f64::consts::PI) as f32;
    (0..dim.div_ceil(2))
        .map(|k| {
            let e = (2 * k) as f32 / dim as f32;
            let p = (base as f32 as f64).powf(e as f64) as f32;
            let freq = 1.0f32 / p;
            let wavelen = (1.0f32 / freq) * two_pi;
            if wavelen < high_wl {
                1.0
            } else if wavelen > low_wl {
                factor as f32
            } else {
                let x = (1.0f32 / wavelen) * old as f32;
                let smooth = (x - lo as f32) / (hi - lo) as f32;
                1.0f32 / ((1.0f32 - smooth) / factor as f32 + smooth)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::rope_factors;

    fn sha(v: &[f32]) -> String {
        hex::encode(Sha256::digest(v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>()))
    }

    /// Expected values: the reference's torch code run on Llama-3.2 (dim 64) and Llama-3.1 (dim 128) settings.
    #[test]
    fn llama3_rope_factors_match_torch() {
        let v = rope_factors(500000.0, 64, 32.0, 1.0, 4.0, 8192.0);
        assert_eq!(v.len(), 32);
        assert_eq!(sha(&v), "d25a6d176d9313062b8f86440c88649f9e568d573ea66bfa4e85e2424cf35633");
        let v = rope_factors(500000.0, 128, 8.0, 1.0, 4.0, 8192.0);
        assert_eq!(sha(&v), "8b516af9cb5db26ed32831eb6f493dd620843d1cd69ca7bbad760c76061cd565");
    }
}
