//! What every text family shares: the `TextModel.set_gguf_parameters` keys (converter-spec
//! §4.3 as the pinned tree has them), typed KV writers that fail like the reference's
//! `struct.pack` would, the generic tensor filters, and the walk over source tensors.

use serde_json::Value as Json;

use super::{ArchError, ModelCtx};
use crate::gguf::{KvMap, Value};
use crate::plan::{ElemOp, PlannedTensor, RowOrder};
use crate::source::SourceTensor;

fn bad(key: &str, v: &Json, want: &str) -> ArchError {
    ArchError::Config(format!("{key}: expected {want}, got {v}"))
}

/// Writes a UINT32 KV (the reference's `add_uint32`: an integer in u32 range).
pub fn put_u32(kv: &mut KvMap, key: String, v: &Json) -> Result<(), ArchError> {
    let n = v.as_u64().and_then(|n| u32::try_from(n).ok()).ok_or_else(|| bad(&key, v, "a u32 integer"))?;
    kv.set(key, Value::U32(n));
    Ok(())
}

/// Writes a FLOAT32 KV from any JSON number (Python float → f32, rounding to nearest).
pub fn put_f32(kv: &mut KvMap, key: String, v: &Json) -> Result<(), ArchError> {
    let f = v.as_f64().ok_or_else(|| bad(&key, v, "a number"))?;
    kv.set(key, Value::F32(f as f32));
    Ok(())
}

/// Writes the u32 KV `key` when `v` is present (not null).
pub fn put_u32_opt(kv: &mut KvMap, key: String, v: Option<&Json>) -> Result<(), ArchError> {
    match v.filter(|v| !v.is_null()) {
        Some(v) => put_u32(kv, key, v),
        None => Ok(()),
    }
}

/// Writes the f32 KV `key` when `v` is present (not null).
pub fn put_f32_opt(kv: &mut KvMap, key: String, v: Option<&Json>) -> Result<(), ArchError> {
    match v.filter(|v| !v.is_null()) {
        Some(v) => put_f32(kv, key, v),
        None => Ok(()),
    }
}

/// `general.file_type` for the context's output type.
pub fn put_file_type(ctx: &ModelCtx, kv: &mut KvMap) {
    kv.set("general.file_type", Value::U32(ctx.outtype.file_type()));
}

/// The required hyper-parameter `key` (the reference indexes `hparams[key]`).
pub fn required(ctx: &ModelCtx, key: &str) -> Result<Json, ArchError> {
    ctx.hparams.get(key).cloned().ok_or_else(|| ArchError::Config(format!("{key} is required")))
}

/// What GPT-NeoX and StableLM write first, in their order: context, embedding, block count,
/// feed-forward width, all from required hyper-parameters.
pub fn put_neox_shape(ctx: &ModelCtx, arch: &str, kv: &mut KvMap) -> Result<(), ArchError> {
    let k = |s: &str| format!("{arch}.{s}");
    put_u32(kv, k("context_length"), &required(ctx, "max_position_embeddings")?)?;
    put_u32(kv, k("embedding_length"), &required(ctx, "hidden_size")?)?;
    let bc = u32::try_from(ctx.n_blocks()?).map_err(|_| ArchError::Config("block count over u32".into()))?;
    kv.set(k("block_count"), Value::U32(bc));
    put_u32(kv, k("feed_forward_length"), &required(ctx, "intermediate_size")?)
}

/// `int(fraction * (hidden_size // num_attention_heads))` in Python doubles: the rotary
/// dimensions of partially rotary models; `what` names the fraction's key in errors.
pub fn partial_rope_dims(ctx: &ModelCtx, fraction: Option<f64>, what: &str) -> Result<u32, ArchError> {
    let (hidden, heads) = (required(ctx, "hidden_size")?, required(ctx, "num_attention_heads")?);
    let dims = match (fraction, hidden.as_u64(), heads.as_u64()) {
        (Some(f), Some(h), Some(n)) if n != 0 => (f * (h / n) as f64).trunc(),
        _ => return Err(ArchError::Config(format!("{what}/hidden_size/num_attention_heads"))),
    };
    if !(0.0..=f64::from(u32::MAX)).contains(&dims) {
        return Err(ArchError::Config(format!("rope dimension count {dims}")));
    }
    Ok(dims as u32)
}

/// `hparams.get("use_parallel_residual", True)`.
pub fn use_parallel_residual(ctx: &ModelCtx) -> Result<bool, ArchError> {
    match ctx.hparams.get("use_parallel_residual") {
        None => Ok(true),
        Some(v) => v.as_bool().ok_or_else(|| ArchError::Config(format!("use_parallel_residual: {v}"))),
    }
}

/// `TextModel.set_gguf_parameters`: the common keys in emission order, ending in
/// `general.file_type`.
pub fn set_common_parameters(ctx: &ModelCtx, arch: &str, kv: &mut KvMap) -> Result<(), ArchError> {
    let k = |s: &str| format!("{arch}.{s}");
    let bc = ctx.block_count.ok_or_else(|| ArchError::Config("no block count (num_hidden_layers)".into()))?;
    kv.set(k("block_count"), Value::U32(u32::try_from(bc).map_err(|_| bad("block_count", &Json::from(bc), "u32"))?));
    let ctx_keys =
        ["max_position_embeddings", "n_ctx", "n_positions", "max_length", "max_sequence_length", "model_max_length"];
    put_u32_opt(kv, k("context_length"), ctx.find(&ctx_keys))?;
    put_u32_opt(kv, k("embedding_length"), ctx.find(&["hidden_size", "n_embd", "dim"]))?;
    let ff =
        ["prefix_dense_intermediate_size", "dense_intermediate_size", "intermediate_size", "n_inner", "hidden_dim"];
    put_u32_opt(kv, k("feed_forward_length"), ctx.find(&ff))?;
    put_u32_opt(kv, k("attention.head_count"), ctx.find(&["num_attention_heads", "n_head", "n_heads"]))?;
    put_u32_opt(kv, k("attention.head_count_kv"), ctx.find(&["num_key_value_heads", "n_kv_heads"]))?;
    if ctx.hparams.get("is_causal") == Some(&Json::Bool(false)) {
        kv.set(k("attention.causal"), Value::Bool(false));
    }
    set_rope_scaling(ctx, arch, kv)?;
    if let Some(Json::Array(sections)) = ctx.rope_parameters.get("mrope_section") {
        let mut v: Vec<Value> = Vec::with_capacity(4);
        for s in sections.iter().chain(std::iter::repeat(&Json::from(0))).take(4) {
            let n = s.as_i64().and_then(|n| i32::try_from(n).ok()).ok_or_else(|| bad("mrope_section", s, "i32"))?;
            v.push(Value::I32(n));
        }
        kv.set(k("rope.dimension_sections"), Value::Array(crate::gguf::ValueType::I32, v));
    }
    put_f32_opt(kv, k("rope.freq_base"), ctx.rope_full().get("rope_theta"))?;
    let swa = ctx.rope_parameters.get("sliding_attention").and_then(|s| s.get("rope_theta"));
    put_f32_opt(kv, k("rope.freq_base_swa"), swa)?;
    put_f32_opt(kv, k("attention.layer_norm_rms_epsilon"), ctx.find(&["rms_norm_eps", "norm_eps"]))?;
    let ln = ["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"];
    put_f32_opt(kv, k("attention.layer_norm_epsilon"), ctx.find(&ln))?;
    set_experts(ctx, arch, kv)?;
    if let Some(hd) = ctx.hparams.get("head_dim").filter(|v| !v.is_null()) {
        put_u32(kv, k("attention.key_length"), hd)?;
        put_u32(kv, k("attention.value_length"), hd)?;
    }
    put_file_type(ctx, kv);
    Ok(())
}

fn set_rope_scaling(ctx: &ModelCtx, arch: &str, kv: &mut KvMap) -> Result<(), ArchError> {
    let rp = ctx.rope_full();
    let Some(ty) = rp.get("rope_type").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let ty = ty.as_str().ok_or_else(|| bad("rope_type", ty, "a string"))?;
    let factor = rp.get("factor").filter(|v| !v.is_null());
    let k = |s: &str| format!("{arch}.{s}");
    match (ty, factor) {
        ("linear", Some(f)) => {
            kv.set(k("rope.scaling.type"), Value::str("linear"));
            put_f32(kv, k("rope.scaling.factor"), f)?;
        }
        ("yarn", Some(f)) => {
            kv.set(k("rope.scaling.type"), Value::str("yarn"));
            put_f32(kv, k("rope.scaling.factor"), f)?;
            let orig = rp.get("original_max_position_embeddings").unwrap_or(&Json::Null);
            put_u32(kv, k("rope.scaling.original_context_length"), orig)?;
            put_f32_opt(kv, k("rope.scaling.yarn_ext_factor"), rp.get("extrapolation_factor"))?;
            let attn = rp.get("attention_factor").or_else(|| rp.get("attn_factor"));
            put_f32_opt(kv, k("rope.scaling.yarn_attn_factor"), attn)?;
            put_f32_opt(kv, k("rope.scaling.yarn_beta_fast"), rp.get("beta_fast"))?;
            put_f32_opt(kv, k("rope.scaling.yarn_beta_slow"), rp.get("beta_slow"))?;
        }
        ("su" | "longrope", _) => kv.set(k("rope.scaling.type"), Value::str("longrope")),
        _ => tracing::debug!("rope type {ty:?}: no rope.scaling KVs"),
    }
    Ok(())
}

fn set_experts(ctx: &ModelCtx, arch: &str, kv: &mut KvMap) -> Result<(), ArchError> {
    let k = |s: &str| format!("{arch}.{s}");
    put_u32_opt(kv, k("expert_count"), ctx.find(&["num_local_experts", "num_experts", "n_routed_experts"]))?;
    let used = ["num_experts_per_tok", "num_experts_per_token", "top_k_experts"];
    put_u32_opt(kv, k("expert_used_count"), ctx.find(&used))?;
    put_u32_opt(kv, k("expert_group_count"), ctx.hparams.get("n_group"))?;
    put_u32_opt(kv, k("expert_group_used_count"), ctx.hparams.get("topk_group"))?;
    let sf = [
        "score_function",
        "scoring_func",
        "score_func",
        "moe_router_activation",
        "moe_router_activation_func",
        "expert_selection_fn",
    ];
    if let Some(f) = ctx.find(&sf) {
        let code = match f.as_str() {
            Some("softmax") => 1,
            Some("sigmoid") => 2,
            Some("sqrtsoftplus") => 4,
            _ => return Err(bad("expert gating function", f, "softmax/sigmoid/sqrtsoftplus")),
        };
        kv.set(k("expert_gating_func"), Value::U32(code));
    }
    Ok(())
}

/// `ModelBase.filter_tensors` + `TextModel.filter_tensors`: renames, and `None` for the
/// multimodal tensors a text conversion drops.
pub fn base_filter(name: &str) -> Option<String> {
    const PREFIXES: [&str; 10] = [
        "mlp",
        "vit.",
        "vpm.",
        "siglip2.",
        "conformer.",
        "merger.",
        "resampler.",
        "sound_encoder.",
        "sound_projection.",
        "speech_embeddings.",
    ];
    const PARTS: [&str; 17] = [
        "visual.",
        "vision.",
        "audio.",
        "talker.",
        "vision_",
        "audio_",
        "token2wav.",
        "code2wav.",
        "projector.",
        "pre_mm_projector_norm",
        "image_newline",
        "view_seperator",
        "patch_embed",
        "patch_embedding",
        "patch_merger.",
        "patch_merge_mlp.",
        "model.connector.",
    ];
    if PREFIXES.iter().any(|p| name.starts_with(p)) || PARTS.iter().any(|p| name.contains(p)) {
        return None;
    }
    let mut name = name.to_string();
    if name.ends_with("e_score_correction_bias") {
        name = name.replace("e_score_correction_bias", "e_score_correction.bias");
    }
    if name.contains("language_model.") {
        name = name.replace("language_model.", "");
    }
    Some(name)
}

/// `prepare_tensors` step 1: buffers that are never written.
pub fn is_skipped_buffer(name: &str) -> bool {
    name.ends_with(".attention.masked_bias")
        || name.ends_with(".attention.bias")
        || name.ends_with(".rotary_emb.inv_freq")
}

/// The layer number: the first dot-separated part that is all decimal digits.
pub fn block_id(name: &str) -> Option<u64> {
    name.split('.').find(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit())).and_then(|p| p.parse().ok())
}

/// One source tensor as `modify_tensors` sees it.
pub struct Item<'a> {
    /// Index into `SourceModel::tensors`.
    pub index: usize,
    /// The name after `filter_tensors`.
    pub name: String,
    pub tensor: &'a SourceTensor,
    pub bid: Option<u64>,
}

/// Runs `modify` over the source tensors in reference order, after `filter` (which should
/// end with `base_filter`) and the buffer skip rule.
pub fn walk<'a>(
    ctx: &ModelCtx<'a>,
    filter: impl Fn(&str) -> Option<String>,
    mut modify: impl FnMut(&Item<'a>) -> Result<Vec<PlannedTensor>, ArchError>,
) -> Result<Vec<PlannedTensor>, ArchError> {
    let mut out = Vec::new();
    for (index, tensor) in ctx.source.tensors.iter().enumerate() {
        let Some(name) = filter(&tensor.name) else {
            continue;
        };
        if is_skipped_buffer(&name) {
            continue;
        }
        let bid = block_id(&name);
        out.extend(modify(&Item { index, name, tensor, bid })?);
    }
    Ok(out)
}

/// The output tensor for a source tensor copied under `name`, rows reordered by `order`.
pub fn rows(name: String, item: &Item, order: RowOrder, op: ElemOp) -> PlannedTensor {
    PlannedTensor::rows(name, item.tensor.shape.clone(), item.index, order, op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_multimodal_and_renames_language_model() {
        assert_eq!(base_filter("model.vision_tower.x.weight"), None);
        assert_eq!(base_filter("multi_modal_projector.linear.weight"), None);
        assert_eq!(
            base_filter("language_model.model.layers.0.mlp.up_proj.weight").as_deref(),
            Some("model.layers.0.mlp.up_proj.weight")
        );
        assert_eq!(
            base_filter("model.layers.0.mlp.up_proj.weight").as_deref(),
            Some("model.layers.0.mlp.up_proj.weight")
        );
    }

    #[test]
    fn block_id_is_the_first_numeric_part() {
        assert_eq!(block_id("model.layers.12.block_sparse_moe.experts.3.w1.weight"), Some(12));
        assert_eq!(block_id("lm_head.weight"), None);
        assert!(is_skipped_buffer("model.layers.0.self_attn.rotary_emb.inv_freq"));
        assert!(!is_skipped_buffer("h.0.attn.bias"));
    }
}
