//! The layout `llama-quantize F16.gguf OUT TYPE` writes, derived from the F16 layout
//! (itself byte-identical to the reference converter's F16 file): tensors re-ordered by
//! layer, per-tensor types from llama-quantize's rules, trailing size-1 dims dropped, and
//! `general.quantization_version`/`general.file_type` moved to the end of the KVs.

pub mod select;

use crate::gguf::{self, writer, GgmlType, KvMap, TensorInfo, Value};
use crate::plan::layout::{LaidTensor, Layout, PlanError};
use crate::plan::{ElemOp, OutType, PlannedTensor, TensorSource};

pub use select::{ModelFacts, Selector};

/// `GGML_QNT_VERSION`, which llama-quantize always writes.
const QUANTIZATION_VERSION: u32 = 2;

/// The llama-quantize output of type `outtype` for the F16 layout `f16`.
pub fn quantize(f16: &Layout, outtype: OutType) -> Result<Layout, PlanError> {
    let repo = || f16.repo_id.clone();
    if f16.outtype != OutType::F16 || !outtype.is_llama_quantize() {
        let reason = format!("llama-quantize {} needs the F16 layout, not {}", outtype.name(), f16.outtype.name());
        return Err(PlanError::Tensor { repo: repo(), name: String::new(), reason });
    }
    let kv = output_kv(&f16.kv, outtype);
    let facts = model_facts(&f16.kv);
    let order = output_order(&f16.tensors);
    let mut selector = Selector::new(outtype, facts, f16.tensors.iter().map(|t| t.info.name.as_str()));
    let mut chosen = Vec::with_capacity(order.len());
    for &i in &order {
        let t = &f16.tensors[i];
        let ne = trimmed_ne(&t.info.ne);
        let ty = selector.choose(&t.info.name, &ne, t.info.ty).map_err(|e| PlanError::Tensor {
            repo: repo(),
            name: t.info.name.clone(),
            reason: e.to_string(),
        })?;
        chosen.push((t, ne, ty));
    }
    let offsets = writer::tensor_offsets(chosen.iter().map(|(t, _, ty)| ty.bytes_for(t.info.n_elements())));
    let infos: Vec<TensorInfo> = chosen
        .iter()
        .zip(offsets)
        .map(|((t, ne, ty), offset)| TensorInfo { name: t.info.name.clone(), ne: ne.clone(), ty: *ty, offset })
        .collect();
    let header = writer::header_bytes(&kv, &infos);
    let data_start = header.len() as u64;
    let size = data_start + infos.last().map_or(0, |t| t.offset + gguf::pad(t.nbytes(), gguf::ALIGNMENT));
    let tensors = chosen
        .into_iter()
        .zip(infos)
        .map(|((t, _, ty), info)| {
            let requantized = ty != t.info.ty;
            let staged_f16 = requantized && t.info.ty == GgmlType::F16;
            LaidTensor {
                file_offset: data_start + info.offset,
                info,
                plan: if staged_f16 { through_f16(&t.plan) } else { t.plan.clone() },
                f32_op: if staged_f16 { ElemOp::RoundF16 } else { ElemOp::None },
            }
        })
        .collect();
    Ok(Layout {
        repo_id: f16.repo_id.clone(),
        commit: f16.commit.clone(),
        outtype,
        gguf_arch: f16.gguf_arch,
        hf_arch: f16.hf_arch.clone(),
        kv,
        header,
        tensors,
        size,
    })
}

/// The input KVs in order, then quantization_version and file_type re-set (gguf's setters
/// remove a key and append it), split keys removed.
fn output_kv(input: &KvMap, outtype: OutType) -> KvMap {
    let mut kv = input.clone();
    for key in ["general.quantization_version", "general.file_type", "split.no", "split.count", "split.tensors.count"] {
        kv.remove(key);
    }
    kv.set_raw("general.quantization_version".into(), Value::U32(QUANTIZATION_VERSION));
    kv.set_raw("general.file_type".into(), Value::U32(outtype.file_type()));
    kv
}

/// What llama.cpp's `load_hparams` reads that the rules use.
pub fn model_facts(kv: &KvMap) -> ModelFacts {
    let arch = kv.get("general.architecture").and_then(Value::as_str).unwrap_or("").to_string();
    let uint = |key: &str| match kv.get(&format!("{arch}.{key}")) {
        Some(Value::U32(v)) => Some(u64::from(*v)),
        Some(Value::U64(v)) => Some(*v),
        Some(Value::I32(v)) => u64::try_from(*v).ok(),
        _ => None,
    };
    let n_layer = uint("block_count").unwrap_or(0);
    let n_head = uint("attention.head_count");
    let n_head_kv = uint("attention.head_count_kv").or(n_head);
    let is_70b = match arch.as_str() {
        "llama" => n_layer == 80 && n_head != n_head_kv,
        "qwen2" | "olmo" | "deci" => n_layer == 80,
        "jais2" => n_layer == 68,
        _ => false,
    };
    ModelFacts { n_layer, n_expert: uint("expert_count").unwrap_or(0), is_70b, arch }
}

/// Indices of `tensors` in llama.cpp's `weights_map` order: non-block tensors first, then by
/// block number, names compared byte-wise within a block.
fn output_order(tensors: &[LaidTensor]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    let key = |i: &usize| {
        let name = tensors[*i].info.name.as_str();
        (select::block_number(name).unwrap_or(-1), name.as_bytes())
    };
    order.sort_by(|a, b| key(a).cmp(&key(b)));
    order
}

/// `ggml_n_dims`: trailing dimensions of size 1 are not written (at least one stays).
fn trimmed_ne(ne: &[u64]) -> Vec<u64> {
    let keep = ne.iter().rposition(|&d| d != 1).map_or(1, |p| p + 1);
    ne.iter().copied().take(keep.max(1)).collect()
}

/// The plan with F16 rounding after the model arithmetic (llama-quantize's input is the F16 file).
fn through_f16(plan: &PlannedTensor) -> PlannedTensor {
    let mut plan = plan.clone();
    if let TensorSource::Rows { op, .. } = &mut plan.source {
        *op = op.then_round_f16();
    }
    plan
}

#[cfg(test)]
mod tests;
