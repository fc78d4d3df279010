//! Llama 4 (`Llama4Model`, GGUF arch `llama4`): the text model of
//! `Llama4ForConditionalGeneration` (vision tensors dropped). Q/K stay as stored (no
//! un-permutation), the vocabulary is always byte-level BPE, and the MoE layers keep every
//! expert in one fused 3-D tensor stored input-major (`gate_up_proj [experts, hidden, 2·ff]`,
//! `down_proj [experts, ff, hidden]`): each expert's matrix is transposed, and gate/up split.

use serde_json::{Map, Value as Json};

use super::llama::{self, Llama};
use super::names::{NameMap, NameRule, COMMON, LLAMA_BLOCK};
use super::text::{self, Item};
use super::{ArchError, Architecture, ModelCtx};
use crate::gguf::{KvMap, Value};
use crate::plan::{ElemOp, PlannedTensor, RowOrder, TensorSource};
use crate::vocab::{self, VocabInput};

/// The `llama4` family.
pub struct Llama4;

/// Llama 4's feed-forward names: the dense MLP, the router, the (renamed) expert stacks and the
/// shared expert, all under `feed_forward`.
const LLAMA4_BLOCK: &[NameRule] = &[
    ("model.layers.{bid}.feed_forward.gate_proj", "blk.{bid}.ffn_gate"),
    ("model.layers.{bid}.feed_forward.up_proj", "blk.{bid}.ffn_up"),
    ("model.layers.{bid}.feed_forward.down_proj", "blk.{bid}.ffn_down"),
    ("model.layers.{bid}.feed_forward.router", "blk.{bid}.ffn_gate_inp"),
    ("model.layers.{bid}.feed_forward.experts.gate_proj", "blk.{bid}.ffn_gate_exps"),
    ("model.layers.{bid}.feed_forward.experts.up_proj", "blk.{bid}.ffn_up_exps"),
    ("model.layers.{bid}.feed_forward.experts.down_proj", "blk.{bid}.ffn_down_exps"),
    ("model.layers.{bid}.feed_forward.shared_expert.gate_proj", "blk.{bid}.ffn_gate_shexp"),
    ("model.layers.{bid}.feed_forward.shared_expert.up_proj", "blk.{bid}.ffn_up_shexp"),
    ("model.layers.{bid}.feed_forward.shared_expert.down_proj", "blk.{bid}.ffn_down_shexp"),
];

impl Architecture for Llama4 {
    fn gguf_arch(&self) -> &'static str {
        "llama4"
    }

    fn extra_tensors(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<Vec<PlannedTensor>, ArchError> {
        Llama.extra_tensors(ctx, kv)
    }

    fn tensors(&self, ctx: &ModelCtx) -> Result<Vec<PlannedTensor>, ArchError> {
        let map = NameMap { tables: &[COMMON, LLAMA_BLOCK, LLAMA4_BLOCK], n_blocks: ctx.n_blocks()? };
        text::walk(
            ctx,
            |n| text::base_filter(&n.replace("text_model.", "")),
            |item| {
                let name = &item.name;
                if name.contains("gate_up_proj") {
                    return split_gate_up(&map, item);
                }
                if name.ends_with("down_proj") {
                    let out = map.map(&format!("{name}.weight"))?;
                    return Ok(vec![experts_transposed(out, item, Half::All)?]);
                }
                Ok(vec![text::rows(map.map(name)?, item, RowOrder::Identity, ElemOp::None)])
            },
        )
    }

    fn set_parameters(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let ctx = &with_dense_intermediate_size(ctx)?;
        text::set_common_parameters(ctx, "llama4", kv)?;
        let hp = &ctx.hparams;
        text::put_u32(kv, "llama4.vocab_size".into(), hp.get("vocab_size").unwrap_or(&Json::Null))?;
        let rope_dim = match hp.get("head_dim").filter(|v| !v.is_null()) {
            Some(hd) => hd.clone(),
            None => Json::from(llama::head_dim_from_sizes(ctx)?),
        };
        text::put_u32(kv, "llama4.rope.dimension_count".into(), &rope_dim)?;
        let step = hp.get("interleave_moe_layer_step").unwrap_or(&Json::Null);
        text::put_u32(kv, "llama4.interleave_moe_layer_step".into(), step)?;
        let moe_ff = hp.get("intermediate_size_moe").unwrap_or(&Json::Null);
        text::put_u32(kv, "llama4.expert_feed_forward_length".into(), moe_ff)?;
        if let Some(Json::Array(types)) = hp.get("layer_types") {
            if types.iter().all(|t| t.as_str() == Some("full_attention")) {
                kv.set("llama4.attention.sliding_window", Value::U32(0));
            }
        }
        Ok(())
    }

    fn set_vocab(&self, ctx: &ModelCtx, kv: &mut KvMap) -> Result<(), ArchError> {
        let inp = VocabInput { files: &ctx.source.files, hparams: &ctx.hparams };
        vocab::set_vocab_gpt2(&inp, kv)?;
        Ok(())
    }
}

/// `Llama4Model.__init__`: config.json's `intermediate_size` is the experts' width; the dense
/// MLP's is `intermediate_size_mlp`. The reference swaps them before any KV is written.
fn with_dense_intermediate_size<'a>(ctx: &ModelCtx<'a>) -> Result<ModelCtx<'a>, ArchError> {
    let mut hparams: Map<String, Json> = ctx.hparams.clone();
    let get = |k: &str| hparams.get(k).cloned().ok_or_else(|| ArchError::Config(format!("llama4 config without {k}")));
    let (moe, mlp) = (get("intermediate_size")?, get("intermediate_size_mlp")?);
    hparams.insert("intermediate_size_moe".into(), moe);
    hparams.insert("intermediate_size".into(), mlp);
    Ok(ctx.with_hparams(hparams))
}

/// Which columns of each expert's `[rows, cols]` source matrix an output stack takes.
#[derive(Clone, Copy)]
enum Half {
    All,
    First,
    Second,
}

/// `gate_up_proj [experts, hidden, 2·ff]` → the gate stack then the up stack, each
/// `[experts, ff, hidden]`.
fn split_gate_up(map: &NameMap, item: &Item) -> Result<Vec<PlannedTensor>, ArchError> {
    let gate = map.map(&item.name.replace("gate_up_proj", "gate_proj.weight"))?;
    let up = map.map(&item.name.replace("gate_up_proj", "up_proj.weight"))?;
    Ok(vec![experts_transposed(gate, item, Half::First)?, experts_transposed(up, item, Half::Second)?])
}

/// The 3-D source transposed per expert, keeping `half` of its columns.
fn experts_transposed(name: String, item: &Item, half: Half) -> Result<PlannedTensor, ArchError> {
    let (experts, rows, cols) = match item.tensor.shape.as_slice() {
        [e, r, c] => (*e, *r, *c),
        s => {
            let reason = format!("shape {s:?} is not [experts, rows, cols]");
            return Err(ArchError::Tensor { name: item.name.clone(), reason });
        }
    };
    // `split(cols // 2)`: for an odd width the second piece is the remainder
    let (start, len) = match half {
        Half::All => (0, cols),
        Half::First => (0, cols / 2),
        Half::Second => (cols / 2, cols - cols / 2),
    };
    if len == 0 {
        let reason = format!("no columns to take from shape {:?}", item.tensor.shape);
        return Err(ArchError::Tensor { name: item.name.clone(), reason });
    }
    Ok(PlannedTensor {
        name,
        shape: vec![experts, len, rows],
        source: TensorSource::ExpertsTransposed { src: item.index, start, len },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safetensors::Dtype;
    use crate::source::SourceTensor;

    fn tensor(name: &str, shape: Vec<u64>) -> SourceTensor {
        SourceTensor { name: name.into(), dtype: Dtype::BF16, shape, shard: 0, start: 0, len: 0 }
    }

    fn map() -> NameMap {
        NameMap { tables: &[COMMON, LLAMA_BLOCK, LLAMA4_BLOCK], n_blocks: 2 }
    }

    #[test]
    fn gate_up_is_split_into_transposed_halves() {
        let t = tensor("model.layers.1.feed_forward.experts.gate_up_proj", vec![4, 32, 64]);
        let item = Item { index: 7, name: t.name.clone(), tensor: &t, bid: Some(1) };
        let out = split_gate_up(&map(), &item).unwrap();
        assert_eq!(out[0].name, "blk.1.ffn_gate_exps.weight");
        assert_eq!(out[1].name, "blk.1.ffn_up_exps.weight");
        assert_eq!(out[0].shape, vec![4, 32, 32]);
        assert_eq!(out[0].source, TensorSource::ExpertsTransposed { src: 7, start: 0, len: 32 });
        assert_eq!(out[1].source, TensorSource::ExpertsTransposed { src: 7, start: 32, len: 32 });
    }

    #[test]
    fn down_proj_is_transposed_whole_and_2d_is_rejected() {
        let t = tensor("model.layers.1.feed_forward.experts.down_proj", vec![4, 16, 32]);
        let item = Item { index: 3, name: t.name.clone(), tensor: &t, bid: Some(1) };
        let out = experts_transposed("x".into(), &item, Half::All).unwrap();
        assert_eq!(out.shape, vec![4, 32, 16]);
        let flat = tensor("model.layers.1.feed_forward.experts.down_proj", vec![16, 32]);
        let item = Item { index: 3, name: flat.name.clone(), tensor: &flat, bid: Some(1) };
        assert!(experts_transposed("x".into(), &item, Half::All).is_err());
    }

    #[test]
    fn feed_forward_names() {
        let m = map();
        assert_eq!(m.map("model.layers.0.feed_forward.down_proj.weight").unwrap(), "blk.0.ffn_down.weight");
        assert_eq!(m.map("model.layers.1.feed_forward.router.weight").unwrap(), "blk.1.ffn_gate_inp.weight");
        assert_eq!(
            m.map("model.layers.1.feed_forward.shared_expert.up_proj.weight").unwrap(),
            "blk.1.ffn_up_shexp.weight"
        );
    }
}
