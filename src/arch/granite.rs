//! IBM Granite (`GraniteModel`, GGUF arch `granite`) and Granite MoE (`GraniteMoeModel`,
//! `granitemoe`): Llama conversion (Q/K un-permuted, Llama vocabulary rules) without `head_dim`,
//! plus the four multiplier KVs. The MoE variant stores each layer's experts as one 3-D tensor
//! with gate and up fused along the rows; they are split back into two stacks.

use serde_json::{Map, Value as Json};

use super::llama::{self, Llama};
use super::names::{NameMap, COMMON, GRANITE_MOE_BLOCK, LLAMA_BLOCK};
use super::text::{self, Item};
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::KvMap;
use crate::plan::{ElemOp, PlannedTensor, RowOrder};

/// The Granite families; `arch` is the GGUF architecture name.
pub struct Granite {
    pub arch: &'static str,
}

/// `GraniteForCausalLM`.
pub const GRANITE: Granite = Granite { arch: "granite" };
/// `GraniteMoeForCausalLM`.
pub const GRANITE_MOE: Granite = Granite { arch: "granitemoe" };

impl Architecture for Granite {
    fn gguf_arch(&self) -> &'static str {
        self.arch
    }

    fn extra_tensors(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<Vec<PlannedTensor>, ArchError> {
        Llama.extra_tensors(ctx, kv)
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map = NameMap { tables: &[COMMON, LLAMA_BLOCK, GRANITE_MOE_BLOCK], n_blocks: ctx.n_blocks()? };
        let n_head = ctx.find_u64(&["n_heads", "num_attention_heads"])?;
        let n_kv = ctx.find_u64(&["n_kv_heads", "num_key_value_heads"])?;
        text::walk(ctx, granite_filter, |item| {
            let name = &item.name;
            if name.ends_with("block_sparse_moe.input_linear.weight") {
                return split_gate_up(ctx, item);
            }
            if name.contains("shared_mlp.") || name.contains("block_sparse_moe.experts") {
                let reason = "shared-expert / per-expert Granite MoE layouts are not supported".into();
                return Err(ArchError::Tensor { name: name.clone(), reason });
            }
            let order = if name.ends_with("q_proj.weight") || name.ends_with("q_proj.bias") {
                llama::permute(name, item, n_head)?
            } else if name.ends_with("k_proj.weight") || name.ends_with("k_proj.bias") {
                llama::permute(name, item, n_kv)?
            } else {
                RowOrder::Identity
            };
            Ok(vec![text::rows(map.map(name)?, item, order, ElemOp::None)])
        })
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        // Granite ignores `head_dim`: the key/value lengths and rope dims come from the sizes
        let ctx = &without_head_dim(ctx);
        let arch = self.arch;
        text::set_common_parameters(ctx, arch, kv)?;
        let vocab_size = ctx.hparams.get("vocab_size").unwrap_or(&Json::Null);
        text::put_u32(kv, format!("{arch}.vocab_size"), vocab_size)?;
        text::put_u32(kv, format!("{arch}.rope.dimension_count"), &Json::from(llama::head_dim_from_sizes(ctx)?))?;
        let scales = [
            ("attention_multiplier", "attention.scale"),
            ("embedding_multiplier", "embedding_scale"),
            ("residual_multiplier", "residual_scale"),
            ("logits_scaling", "logit_scale"),
        ];
        for (hf, gguf) in scales {
            // Python truthiness: absent, null and zero add nothing
            if let Some(v) = ctx.hparams.get(hf).filter(|v| v.as_f64().is_some_and(|f| f != 0.0)) {
                text::put_f32(kv, format!("{arch}.{gguf}"), v)?;
            }
        }
        if self.arch == "granitemoe" {
            let shared = ctx.hparams.get("shared_intermediate_size").filter(|v| v.as_u64().is_some_and(|n| n != 0));
            text::put_u32_opt(kv, format!("{arch}.expert_shared_feed_forward_length"), shared)?;
        }
        Ok(())
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        Llama.set_vocab(ctx, kv)
    }
}

/// `GraniteModel.filter_tensors`: Granite-vision tensors are dropped before the generic rules.
fn granite_filter(name: &str) -> Option<String> {
    let vision = name.starts_with("encoder.")
        || ["image_", "layerwise_projectors", "spatial_projectors"].iter().any(|p| name.contains(p));
    if vision {
        return None;
    }
    text::base_filter(name)
}

/// The context with `head_dim` removed (the reference pops it before the common keys).
fn without_head_dim<'a>(ctx: &ModelCtx<'a>) -> ModelCtx<'a> {
    let mut hparams: Map<String, Json> = ctx.hparams.clone();
    hparams.remove("head_dim");
    ctx.with_hparams(hparams)
}

/// `[n_expert, 2·ffn, hidden]` → the gate stack (first `ffn` rows of each expert), then the up
/// stack (the last `ffn` rows).
fn split_gate_up(ctx: &ModelCtx, item: &Item) -> Result<Vec<PlannedTensor>, ArchError> {
    let ffn = ctx.find_u64(&["intermediate_size"])?;
    let bid = item.bid.ok_or_else(|| ArchError::Tensor {
        name: item.name.clone(),
        reason: "expert tensor without a layer number".into(),
    })?;
    let (n_expert, rows, cols) = match item.tensor.shape.as_slice() {
        [e, r, c] if *r == 2 * ffn && ffn > 0 => (*e, *r, *c),
        s => {
            let reason = format!("shape {s:?} is not [experts, 2 x intermediate_size {ffn}, hidden]");
            return Err(ArchError::Tensor { name: item.name.clone(), reason });
        }
    };
    Ok(["ffn_gate_exps", "ffn_up_exps"]
        .iter()
        .zip([0, ffn])
        .map(|(kind, start)| {
            let order = RowOrder::Strided { block: rows, start, take: ffn };
            let name = format!("blk.{bid}.{kind}.weight");
            PlannedTensor::rows(name, vec![n_expert, ffn, cols], item.index, order, ElemOp::None)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vision_tensors_are_dropped() {
        assert_eq!(granite_filter("encoder.layers.0.x.weight"), None);
        assert_eq!(granite_filter("model.image_newline"), None);
        assert_eq!(granite_filter("model.norm.weight").as_deref(), Some("model.norm.weight"));
    }

    #[test]
    fn router_and_output_linear_names() {
        let m = NameMap { tables: &[COMMON, LLAMA_BLOCK, GRANITE_MOE_BLOCK], n_blocks: 2 };
        assert_eq!(m.map("model.layers.1.block_sparse_moe.router.layer.weight").unwrap(), "blk.1.ffn_gate_inp.weight");
        assert_eq!(
            m.map("model.layers.0.block_sparse_moe.output_linear.weight").unwrap(),
            "blk.0.ffn_down_exps.weight"
        );
    }
}
