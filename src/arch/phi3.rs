//! Phi-3 (`Phi3MiniModel`, GGUF arch `phi3`): its own KV list, fused qkv/gate_up tensors kept
//! as they are, and for long-context (longrope) configs the `rope_factors_long/short` tensors
//! plus `phi3.rope.scaling.attn_factor` (hazard H2: present under transformers 4.57.6).

use serde_json::Value as Json;

use super::names::{NameMap, COMMON, LLAMA_BLOCK, PHI3_BLOCK};
use super::text;
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::{KvMap, Value};
use crate::plan::{ElemOp, PlannedTensor, RowOrder, TensorSource};
use crate::vocab::{self, VocabInput};

/// The `phi3` family.
pub struct Phi3;

/// The sizes both the KVs and the rope factors need.
struct Dims {
    n_embd: u64,
    n_head: u64,
    max_pos: Json,
    orig_max_pos: Json,
    rope_dims: u64,
}

fn dims(ctx: &ModelCtx) -> Result<Dims, ArchError> {
    let n_embd = ctx.find_u64(&["hidden_size", "n_embd"])?;
    let n_head = ctx.find_u64(&["num_attention_heads", "n_head"])?;
    let max_pos = ctx.find(&["n_positions", "max_position_embeddings"]).cloned().unwrap_or(Json::Null);
    let orig_max_pos = ctx
        .rope_parameters
        .get("original_max_position_embeddings")
        .cloned()
        .ok_or_else(|| ArchError::Config("original_max_position_embeddings is required for Phi-3".into()))?;
    let rot_pct = match ctx.rope_parameters.get("partial_rotary_factor") {
        Some(v) => v.as_f64().ok_or_else(|| ArchError::Config(format!("partial_rotary_factor: {v}")))?,
        None => 1.0,
    };
    if n_head == 0 {
        return Err(ArchError::Config("num_attention_heads is 0".into()));
    }
    // int(rot_pct * n_embd) // n_head, in Python doubles
    let rope_dims = (rot_pct * n_embd as f64).trunc() as u64 / n_head;
    Ok(Dims { n_embd, n_head, max_pos, orig_max_pos, rope_dims })
}

impl Architecture for Phi3 {
    fn gguf_arch(&self) -> &'static str {
        "phi3"
    }

    fn extra_tensors(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<Vec<PlannedTensor>, ArchError> {
        let d = dims(ctx)?;
        let rp = &ctx.rope_parameters;
        let truthy = |v: Option<&Json>| v.and_then(Json::as_array).is_some_and(|a| !a.is_empty());
        if !truthy(rp.get("long_factor")) {
            return Ok(Vec::new());
        }
        let as_f64 = |v: &Json, what: &str| v.as_f64().ok_or_else(|| ArchError::Config(format!("{what}: {v}")));
        let scale = as_f64(&d.max_pos, "max_position_embeddings")?
            / as_f64(&d.orig_max_pos, "original_max_position_embeddings")?;
        let ty = rp.get("rope_type").and_then(Json::as_str).unwrap_or("").to_lowercase();
        let orig = as_f64(&d.orig_max_pos, "original_max_position_embeddings")?;
        let attn_factor = match ty.as_str() {
            "" => return Err(ArchError::Config("missing the required key rope_scaling.type".into())),
            "su" | "longrope" if scale > 1.0 => (1.0 + scale.ln() / orig.ln()).sqrt(),
            "yarn" if scale > 1.0 => 0.1 * scale.ln() + 1.0,
            "su" | "longrope" | "yarn" => 1.0,
            t => return Err(ArchError::Config(format!("rope scaling type {t} is not supported"))),
        };
        kv.set("phi3.rope.scaling.attn_factor", Value::F32(attn_factor as f32));
        let long = factor_list(rp.get("long_factor"), "long_factor")?;
        let short = factor_list(rp.get("short_factor"), "short_factor")?;
        if long.len() != short.len() || long.len() as f64 != d.rope_dims as f64 / 2.0 {
            return Err(ArchError::Config(format!(
                "the rope long and short factors must have {} elements (got {} and {})",
                d.rope_dims as f64 / 2.0,
                long.len(),
                short.len()
            )));
        }
        let tensor = |name: &str, v: Vec<f32>| PlannedTensor {
            name: name.into(),
            shape: vec![v.len() as u64],
            source: TensorSource::Generated(v),
        };
        Ok(vec![tensor("rope_factors_long.weight", long), tensor("rope_factors_short.weight", short)])
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map = NameMap { tables: &[COMMON, LLAMA_BLOCK, PHI3_BLOCK], n_blocks: ctx.n_blocks()? };
        text::walk(ctx, text::base_filter, |item| {
            Ok(vec![text::rows(map.map(&item.name)?, item, RowOrder::Identity, ElemOp::None)])
        })
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let d = dims(ctx)?;
        let k = |s: &str| format!("phi3.{s}");
        let req = |keys: &[&str]| ctx.find(keys).cloned().unwrap_or(Json::Null);
        text::put_u32(kv, k("context_length"), &d.max_pos)?;
        text::put_u32(kv, k("rope.scaling.original_context_length"), &d.orig_max_pos)?;
        kv.set(k("embedding_length"), Value::U32(to_u32(d.n_embd)?));
        text::put_u32(kv, k("feed_forward_length"), &req(&["intermediate_size"]))?;
        let bc = ctx.n_blocks()?;
        kv.set(k("block_count"), Value::U32(to_u32(bc)?));
        kv.set(k("attention.head_count"), Value::U32(to_u32(d.n_head)?));
        text::put_u32(kv, k("attention.head_count_kv"), &req(&["num_key_value_heads", "n_head_kv"]))?;
        text::put_f32(kv, k("attention.layer_norm_rms_epsilon"), &req(&["rms_norm_eps"]))?;
        kv.set(k("rope.dimension_count"), Value::U32(to_u32(d.rope_dims)?));
        let theta = ctx.rope_full().get("rope_theta").cloned().unwrap_or(Json::Null);
        text::put_f32(kv, k("rope.freq_base"), &theta)?;
        text::put_file_type(ctx, kv);
        let sw = ctx.hparams.get("sliding_window").filter(|v| !v.is_null()).cloned().unwrap_or(Json::from(0));
        text::put_u32(kv, k("attention.sliding_window"), &sw)
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let files = &ctx.source.files;
        let inp = VocabInput { files, hparams: &ctx.hparams };
        if let Some(tc) = files.json("tokenizer_config.json") {
            let tc = tc.map_err(|e| ArchError::Config(format!("tokenizer_config.json: {e}")))?;
            let class = tc
                .get("tokenizer_class")
                .ok_or_else(|| ArchError::Config("tokenizer_config.json has no tokenizer_class".into()))?;
            if class.as_str() == Some("GPT2Tokenizer") {
                vocab::set_vocab_gpt2(&inp, kv)?;
                return Ok(());
            }
        }
        vocab::set_vocab_phi3(&inp, kv)?;
        Ok(())
    }
}

fn to_u32(n: u64) -> Result<u32, ArchError> {
    u32::try_from(n).map_err(|_| ArchError::Config(format!("{n} does not fit a u32")))
}

fn factor_list(v: Option<&Json>, what: &str) -> Result<Vec<f32>, ArchError> {
    let bad = || ArchError::Config(format!("rope_scaling.{what} must be a list of numbers"));
    let arr = v.and_then(Json::as_array).ok_or_else(bad)?;
    arr.iter().map(|x| x.as_f64().map(|f| f as f32).ok_or_else(bad)).collect()
}
