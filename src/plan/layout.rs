//! The virtual file layout: the exact header bytes and where each tensor's bytes sit.
//! Built from a `SourceModel` with no I/O (converter-spec §1-§4).

use std::sync::Arc;

use crate::arch::{self, ArchError, Architecture, ModelCtx};
use crate::gguf::{self, writer, GgmlType, KvMap, TensorInfo, Value};
use crate::metadata::{self, MetadataError, MetadataInput};
use crate::source::SourceModel;

use super::{ElemOp, OutType, PlannedTensor};

/// Why a virtual file cannot be laid out.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{repo}: {source}")]
    Arch { repo: String, source: ArchError },
    #[error("{repo}: model card/metadata: {source}")]
    Metadata { repo: String, source: MetadataError },
    #[error("{repo}: tensor {name}: {reason}")]
    Tensor { repo: String, name: String, reason: String },
}

/// One tensor of the virtual file: its record, where its bytes start in the file, and how
/// they are made.
#[derive(Debug, Clone)]
pub struct LaidTensor {
    pub info: TensorInfo,
    /// Absolute offset of the first data byte in the file.
    pub file_offset: u64,
    pub plan: PlannedTensor,
    /// What f32-valued data (transposed or generated tensors, which carry no `ElemOp` in
    /// their plan) goes through before encoding: `RoundF16` when llama-quantize
    /// re-quantizes the tensor from the F16 file.
    pub f32_op: ElemOp,
}

impl LaidTensor {
    /// Data bytes (without alignment padding).
    pub fn nbytes(&self) -> u64 {
        self.info.nbytes()
    }
}

/// A complete virtual GGUF file: header bytes plus tensor extents. Immutable.
#[derive(Debug, Clone)]
pub struct Layout {
    pub repo_id: String,
    pub commit: String,
    pub outtype: OutType,
    pub gguf_arch: &'static str,
    /// The HF class name the architecture was chosen by.
    pub hf_arch: String,
    /// The metadata `header` was written from; empty once `shed_kv` ran.
    pub kv: KvMap,
    /// Bytes `[0, header.len())`: magic to the end of the padding before the data section.
    pub header: Vec<u8>,
    pub tensors: Vec<LaidTensor>,
    /// Total file size.
    pub size: u64,
}

impl Layout {
    /// Drops the KV map, keeping what serving the file needs (the header bytes hold the same
    /// metadata): a mount keeps eight layouts per repo, and the maps of a large vocabulary
    /// take tens of MB each.
    pub fn shed_kv(&mut self) {
        self.kv = KvMap::new();
    }
}

/// Lays out the virtual file for `source` and `outtype`, in the order the reference emits
/// KVs (converter-spec §2.1): architecture, extra-tensor KVs, general block, architecture
/// block, quantization version, tokenizer block.
pub fn build(source: &SourceModel, outtype: OutType) -> Result<Layout, PlanError> {
    if outtype.is_llama_quantize() {
        return super::llama_quant::quantize(&build(source, OutType::F16)?, outtype);
    }
    let repo = || source.repo_id.clone();
    let arch_err = |e| PlanError::Arch { repo: repo(), source: e };
    let ctx = ModelCtx::new(source, outtype).map_err(arch_err)?;
    let arch = arch::lookup(&ctx.hf_arch).map_err(arch_err)?;

    let mut kv = KvMap::new();
    kv.set("general.architecture", Value::str(arch.gguf_arch()));
    let mut planned = arch.extra_tensors(&ctx, &mut kv).map_err(arch_err)?;
    planned.extend(arch.tensors(&ctx).map_err(arch_err)?);

    let shapes: Vec<(&str, &[u64])> = planned.iter().map(|t| (t.name.as_str(), t.shape.as_slice())).collect();
    let params = metadata::count_parameters(shapes);
    let meta = MetadataInput { files: &source.files, repo_id: &source.repo_id, commit: &source.commit, params };
    metadata::write_general(&meta, &mut kv).map_err(|e| PlanError::Metadata { repo: repo(), source: e })?;
    arch.set_parameters(&ctx, &mut kv).map_err(arch_err)?;
    kv.set("general.quantization_version", Value::U32(QUANTIZATION_VERSION));
    arch.set_vocab(&ctx, &mut kv).map_err(arch_err)?;

    Ok(assemble(source.repo_id.clone(), source.commit.clone(), arch, ctx.hf_arch.clone(), kv, planned, outtype))
}

/// The same model as another output type. Only `general.file_type` and the tensor types
/// (hence offsets) differ between output types, so the vocabulary and metadata work of
/// `build` is not repeated.
///
/// llama-quantize types are made from the F16 layout; `layout` itself must be a converter
/// type (a quantized layout has lost the converter's tensor order and KVs).
pub fn retype(layout: &Layout, outtype: OutType) -> Result<Layout, PlanError> {
    if layout.outtype.is_llama_quantize() {
        let reason = format!("cannot re-type a {} layout", layout.outtype.name());
        return Err(PlanError::Tensor { repo: layout.repo_id.clone(), name: String::new(), reason });
    }
    if outtype.is_llama_quantize() {
        let f16 = if layout.outtype == OutType::F16 { layout.clone() } else { retype(layout, OutType::F16)? };
        return super::llama_quant::quantize(&f16, outtype);
    }
    let arch =
        arch::lookup(&layout.hf_arch).map_err(|e| PlanError::Arch { repo: layout.repo_id.clone(), source: e })?;
    let mut kv = layout.kv.clone();
    if kv.get("general.file_type").is_some() {
        kv.set("general.file_type", Value::U32(outtype.file_type()));
    }
    let planned = layout.tensors.iter().map(|t| t.plan.clone()).collect();
    Ok(assemble(layout.repo_id.clone(), layout.commit.clone(), arch, layout.hf_arch.clone(), kv, planned, outtype))
}

fn assemble(
    repo_id: String,
    commit: String,
    arch: &'static dyn Architecture,
    hf_arch: String,
    kv: KvMap,
    planned: Vec<PlannedTensor>,
    outtype: OutType,
) -> Layout {
    let infos = tensor_infos(arch, &planned, outtype);
    let header = writer::header_bytes(&kv, &infos);
    let data_start = header.len() as u64;
    let size = data_start + infos.last().map_or(0, |t| t.offset + gguf::pad(t.nbytes(), gguf::ALIGNMENT));
    let tensors = infos
        .into_iter()
        .zip(planned)
        .map(|(info, plan)| LaidTensor { file_offset: data_start + info.offset, info, plan, f32_op: ElemOp::None })
        .collect();
    Layout { repo_id, commit, outtype, gguf_arch: arch.gguf_arch(), hf_arch, kv, header, tensors, size }
}

/// `general.quantization_version`: GGML_QUANT_VERSION, always 2 in the reference.
const QUANTIZATION_VERSION: u32 = 2;

fn tensor_infos(arch: &dyn Architecture, planned: &[PlannedTensor], outtype: OutType) -> Vec<TensorInfo> {
    let types: Vec<GgmlType> = planned.iter().map(|t| tensor_type(arch, t, outtype)).collect();
    let nbytes = planned.iter().zip(&types).map(|(t, ty)| ty.bytes_for(t.shape.iter().product()));
    let offsets = writer::tensor_offsets(nbytes);
    planned
        .iter()
        .zip(types)
        .zip(offsets)
        .map(|((t, ty), offset)| TensorInfo {
            name: t.name.clone(),
            ne: t.shape.iter().rev().copied().collect(),
            ty,
            offset,
        })
        .collect()
}

/// The reference's per-tensor type decision (converter-spec §3.2 steps 3-7): 1-D tensors,
/// norms, non-`.weight` tensors and the architecture's forced tensors stay F32; Q8_0 falls
/// back to F16 when a row is not a whole number of blocks.
pub fn tensor_type(arch: &dyn Architecture, t: &PlannedTensor, outtype: OutType) -> GgmlType {
    let name = t.name.as_str();
    if t.shape.len() <= 1 || name.ends_with("_norm.weight") {
        return GgmlType::F32;
    }
    let suffix = name.get(name.len().saturating_sub(7)..).unwrap_or("");
    if arch.is_forced_f32(name) || !matches!(suffix, ".weight" | ".lora_a" | ".lora_b") {
        return GgmlType::F32;
    }
    let ty = outtype.ggml_type();
    let row = t.shape.last().copied().unwrap_or(1);
    if row % ty.block().0 != 0 {
        return GgmlType::F16;
    }
    ty
}

/// A shared, immutable layout.
pub type SharedLayout = Arc<Layout>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::reader::read_header;
    use crate::testutil::{assert_kvs_match, fixture_source, golden, shared_dir, FIXTURES};

    /// The whole header of every fixture's F16 file equals the reference's bytes; on a
    /// mismatch, the first differing KV or tensor is named.
    #[test]
    fn f16_headers_equal_the_reference_bytes() {
        for repo in FIXTURES {
            let source = fixture_source(repo);
            let layout = build(&source, OutType::F16).unwrap_or_else(|e| panic!("{repo}: {e}"));
            let want = std::fs::read(shared_dir().join("fixtures/golden").join(repo).join("F16.header.bin")).unwrap();
            if layout.header != want {
                let g = golden(repo, "F16");
                assert_kvs_match(&layout.kv, &g, |_| true);
                let theirs = read_header(&want).unwrap();
                let ours: Vec<_> = layout.tensors.iter().map(|t| t.info.clone()).collect();
                for (a, b) in ours.iter().zip(&theirs.tensors) {
                    assert_eq!(a, b, "{repo}: first differing tensor");
                }
                panic!("{repo}: header bytes differ (len {} vs {})", layout.header.len(), want.len());
            }
        }
    }

    /// Sizes and tensor records of every output type equal the goldens', whether built
    /// directly or re-typed from another type's layout.
    #[test]
    fn every_type_has_the_golden_size_and_tensor_table() {
        for repo in FIXTURES {
            let source = fixture_source(repo);
            let f16 = build(&source, OutType::F16).unwrap();
            for t in OutType::ALL {
                let layout = build(&source, t).unwrap_or_else(|e| panic!("{repo} {t:?}: {e}"));
                let retyped = retype(&f16, t).unwrap();
                assert_eq!(retyped.header, layout.header, "{repo} {t:?}: retype differs from build");
                assert_eq!(retyped.size, layout.size);
                let g = golden(repo, t.name());
                assert_eq!(layout.size, g["file"]["size"].as_u64().unwrap(), "{repo} {t:?} size");
                for (ours, theirs) in layout.tensors.iter().zip(g["tensors"].as_array().unwrap()) {
                    assert_eq!(ours.info.name, theirs["name"].as_str().unwrap());
                    assert_eq!(ours.info.ty.name(), theirs["type"].as_str().unwrap(), "{repo} {}", ours.info.name);
                    assert_eq!(ours.info.offset, theirs["offset"].as_u64().unwrap(), "{repo} {}", ours.info.name);
                }
                assert_kvs_match(&layout.kv, &g, |_| true);
            }
        }
    }
}
