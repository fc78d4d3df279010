//! DeepSeek V2 and V3 (`DeepseekV2Model`, GGUF arch `deepseek2`): multi-head latent attention
//! (low-rank `q_a`/`q_b` and `kv_a_mqa`, with `kv_b_proj` split per head into a transposed
//! `k_b` and a `v_b`), routed experts stacked per layer, shared experts, and V3's router
//! score-correction bias. Multi-token-prediction layers past `num_hidden_layers` are dropped.

use serde_json::Value as Json;

use super::experts::ExpertStacks;
use super::names::{NameMap, NameRule, COMMON, LLAMA_BLOCK, QWEN_MOE_BLOCK};
use super::text::{self, Item};
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::{KvMap, Value};
use crate::plan::{ElemOp, PlannedTensor, RowOrder, TensorSource};
use crate::vocab::{self, VocabInput};

/// The `deepseek2` family (`DeepseekV2ForCausalLM`, `DeepseekV3ForCausalLM`).
pub struct Deepseek2;

const ARCH: &str = "deepseek2";

/// MLA projections, the router bias and the shared experts.
const DEEPSEEK2_BLOCK: &[NameRule] = &[
    ("model.layers.{bid}.self_attn.q_a_proj", "blk.{bid}.attn_q_a"),
    ("model.layers.{bid}.self_attn.q_a_layernorm", "blk.{bid}.attn_q_a_norm"),
    ("model.layers.{bid}.self_attn.q_b_proj", "blk.{bid}.attn_q_b"),
    ("model.layers.{bid}.self_attn.kv_a_proj_with_mqa", "blk.{bid}.attn_kv_a_mqa"),
    ("model.layers.{bid}.self_attn.kv_a_layernorm", "blk.{bid}.attn_kv_a_norm"),
    ("model.layers.{bid}.self_attn.k_b_proj", "blk.{bid}.attn_k_b"),
    ("model.layers.{bid}.self_attn.v_b_proj", "blk.{bid}.attn_v_b"),
    ("model.layers.{bid}.mlp.gate.e_score_correction", "blk.{bid}.exp_probs_b"),
    ("model.layers.{bid}.mlp.shared_experts.gate_proj", "blk.{bid}.ffn_gate_shexp"),
    ("model.layers.{bid}.mlp.shared_experts.up_proj", "blk.{bid}.ffn_up_shexp"),
    ("model.layers.{bid}.mlp.shared_experts.down_proj", "blk.{bid}.ffn_down_shexp"),
];

impl Architecture for Deepseek2 {
    fn gguf_arch(&self) -> &'static str {
        ARCH
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map =
            NameMap { tables: &[COMMON, LLAMA_BLOCK, QWEN_MOE_BLOCK, DEEPSEEK2_BLOCK], n_blocks: ctx.n_blocks()? };
        let tied = ctx.hparams.get("tie_word_embeddings") == Some(&Json::Bool(true));
        let n_layers = ctx.find_u64(&["num_hidden_layers"])?;
        let mut experts = ExpertStacks::default();
        let filter = |n: &str| {
            if n.contains("sam_model") || n.contains("qwen2_model") {
                return None;
            }
            text::base_filter(n)
        };
        let out = text::walk(ctx, filter, |item| {
            let name = item.name.as_str();
            if tied && (name == "lm_head.weight" || name == "model.lm_head.weight") {
                return Ok(Vec::new());
            }
            if mtp_layer(name).is_some_and(|l| l >= n_layers) {
                return Ok(Vec::new());
            }
            if name.contains("mlp.experts") {
                let n_experts = ctx.find_u64(&["n_routed_experts"])?;
                return experts.add(
                    name,
                    item,
                    n_experts,
                    &["down_proj", "gate_proj", "up_proj"],
                    |bid, x, w| format!("model.layers.{bid}.mlp.experts.{x}.{w}.weight"),
                    |bid, w| map.map(&format!("model.layers.{bid}.mlp.experts.{w}.weight")),
                );
            }
            if name.ends_with("kv_b_proj.weight") {
                return split_kv_b(ctx, &map, item);
            }
            Ok(vec![text::rows(map.map(name)?, item, RowOrder::Identity, ElemOp::None)])
        })?;
        experts.check_empty()?;
        Ok(out)
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let k = |s: &str| format!("{ARCH}.{s}");
        let hp = &ctx.hparams;
        let req = |key: &str| hp.get(key).ok_or_else(|| ArchError::Config(format!("{key} is required")));
        text::set_common_parameters(ctx, ARCH, kv)?;
        // MLA is converted as MQA: the reference sets num_key_value_heads = 1 before the common keys
        kv.set(k("attention.head_count_kv"), Value::U32(1));
        let has_moe = hp.get("n_routed_experts").is_some_and(|v| !v.is_null());
        let dense = match hp.get("first_k_dense_replace").filter(|v| !v.is_null()) {
            Some(v) => v.clone(),
            None if has_moe => Json::from(0),
            None => req("num_hidden_layers")?.clone(),
        };
        text::put_u32(kv, k("leading_dense_block_count"), &dense)?;
        let kv_lora = hp.get("kv_lora_rank").cloned().unwrap_or(Json::from(512));
        text::put_u32(kv, k("vocab_size"), req("vocab_size")?)?;
        text::put_u32_opt(kv, k("attention.q_lora_rank"), hp.get("q_lora_rank"))?;
        let rope_dim = req("qk_rope_head_dim")?;
        let sum = |a: &Json, b: &Json| match (a.as_u64(), b.as_u64()) {
            (Some(a), Some(b)) => Ok(Json::from(a + b)),
            _ => Err(ArchError::Config(format!("MLA head sizes must be integers: {a}, {b}"))),
        };
        text::put_u32(kv, k("attention.kv_lora_rank"), &kv_lora)?;
        text::put_u32(kv, k("attention.key_length"), &sum(&kv_lora, rope_dim)?)?;
        text::put_u32(kv, k("attention.value_length"), &kv_lora)?;
        text::put_u32(kv, k("attention.key_length_mla"), &sum(req("qk_nope_head_dim")?, rope_dim)?)?;
        text::put_u32(kv, k("attention.value_length_mla"), req("v_head_dim")?)?;
        let moe_ff = ctx
            .find(&["moe_intermediate_size", "intermediate_size"])
            .ok_or_else(|| ArchError::Config("moe_intermediate_size is required".into()))?;
        text::put_u32(kv, k("expert_feed_forward_length"), moe_ff)?;
        text::put_u32_opt(kv, k("expert_count"), hp.get("n_routed_experts"))?;
        text::put_u32(kv, k("expert_shared_count"), hp.get("n_shared_experts").unwrap_or(&Json::from(0)))?;
        text::put_f32_opt(kv, k("expert_weights_scale"), hp.get("routed_scaling_factor"))?;
        if hp.get("norm_topk_prob").is_some_and(is_truthy) {
            kv.set(k("expert_weights_norm"), Value::Bool(true));
        }
        text::put_u32(kv, k("rope.dimension_count"), rope_dim)?;
        if let Some(m) = ctx.rope_parameters.get("mscale_all_dim").filter(|v| !v.is_null()) {
            let m = m.as_f64().ok_or_else(|| ArchError::Config(format!("mscale_all_dim: {m}")))?;
            kv.set(k("rope.scaling.yarn_log_multiplier"), Value::F32((0.1 * m) as f32));
        }
        Ok(())
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        // the reference's fallback after a failed BPE load only serves Kimi-K2's tiktoken vocabulary
        vocab::set_vocab_gpt2(&VocabInput { files: &ctx.source.files, hparams: &ctx.hparams }, kv)?;
        Ok(())
    }
}

/// The layer number of a `model.layers.N...` name (the reference's MTP check).
fn mtp_layer(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("model")?.get(1..)?.strip_prefix("layers")?.get(1..)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `kv_b_proj` viewed as `[kv_heads, nope + v, in]`: `k_b` (the nope rows, transposed per
/// head to `[kv_heads, in, nope]`) and `v_b` (the v rows, `[kv_heads, v, in]`).
fn split_kv_b(ctx: &ModelCtx, map: &NameMap, item: &Item) -> Result<Vec<PlannedTensor>, ArchError> {
    let n_kv = ctx.find_u64(&["num_key_value_heads"])?;
    let v = ctx.find_u64(&["v_head_dim"])?;
    let nope = ctx.find_u64(&["qk_nope_head_dim"])?;
    let group = v + nope;
    let (rows, cols) = match item.tensor.shape.as_slice() {
        [r, c] => (*r, *c),
        s => return Err(ArchError::Tensor { name: item.name.clone(), reason: format!("expected 2-D, got {s:?}") }),
    };
    if rows != n_kv * group {
        let reason = format!("{rows} rows, expected {n_kv} heads × ({nope} + {v})");
        return Err(ArchError::Tensor { name: item.name.clone(), reason });
    }
    let k_b = PlannedTensor {
        name: map.map(&item.name.replace("kv_b_proj", "k_b_proj"))?,
        shape: vec![n_kv, cols, nope],
        source: TensorSource::HeadTransposed { src: item.index, group, start: 0, len: nope },
    };
    let v_b = PlannedTensor::rows(
        map.map(&item.name.replace("kv_b_proj", "v_b_proj"))?,
        vec![n_kv, v, cols],
        item.index,
        RowOrder::Strided { block: group, start: nope, take: v },
        ElemOp::None,
    );
    Ok(vec![k_b, v_b])
}

/// Python truthiness of a JSON value (`if x:`).
fn is_truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64() != Some(0.0),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::mtp_layer;

    #[test]
    fn mtp_layer_reads_the_leading_layer_number() {
        assert_eq!(mtp_layer("model.layers.61.eh_proj.weight"), Some(61));
        assert_eq!(mtp_layer("model.norm.weight"), None);
        assert_eq!(mtp_layer("lm_head.weight"), None);
    }
}
