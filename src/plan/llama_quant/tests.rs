//! The quantized layouts against what the reference llama-quantize wrote for every fixture
//! (tests/fixtures/kquant, made by scripts/fixtures/make_kquant_expect.sh).

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::gguf::writer::encode_value;
use crate::plan::layout::{build, retype, Layout};
use crate::plan::OutType;
use crate::testutil::{fixture_source, FIXTURES};

/// Fixtures whose headers are checked here: the two k-quant fixtures (real Q4_K/Q5_K/Q6_K
/// tensors) and GPT-2 (fused QKV, transposed weights). tests/kquant.rs checks every
/// fixture's whole file; this is the quick, explained check of the type rules.
/// The k-quant fixtures: rows of 256 (whole super-blocks) and a 2048-wide ffn_down.
const KQ_256: &str = "TinyLlama/TinyLlama-1.1B-Chat-v0.6";
const KQ_2048: &str = "HuggingFaceTB/SmolLM2-360M-Instruct";
const HEADER_FIXTURES: [&str; 3] = [KQ_256, KQ_2048, FIXTURES[4]];

/// The name llama-quantize's TYPE argument (and the expected JSON) uses.
fn quantize_arg(t: OutType) -> &'static str {
    if t == OutType::LlamaQ8_0 {
        "Q8_0"
    } else {
        t.name()
    }
}

fn expected(repo: &str, t: OutType) -> Json {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kquant").join(format!("{repo}.json"));
    let doc: Json = serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    doc["outputs"][quantize_arg(t)].clone()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// The first KV or tensor record where `layout` differs from the expected description.
fn first_header_difference(layout: &Layout, want: &Json) -> String {
    let kvs = want["kv"].as_array().cloned().unwrap_or_default();
    for (i, exp) in kvs.iter().enumerate() {
        let Some((key, v)) = layout.kv.entries().get(i) else {
            return format!("KV #{i} {} missing", exp["key"]);
        };
        let mut bytes = Vec::new();
        encode_value(v, &mut bytes);
        if exp["key"].as_str() != Some(key) || exp["type"].as_u64() != Some(v.value_type() as u64) {
            return format!(
                "KV #{i}: ours {key} ({:?}), expected {} (type {})",
                v.value_type(),
                exp["key"],
                exp["type"]
            );
        }
        if exp["sha256"].as_str() != Some(sha(&bytes).as_str()) {
            return format!("KV {key}: value differs (ours {v:?})");
        }
    }
    if layout.kv.len() != kvs.len() {
        return format!("{} KVs, expected {}", layout.kv.len(), kvs.len());
    }
    let tensors = want["tensors"].as_array().cloned().unwrap_or_default();
    for (i, exp) in tensors.iter().enumerate() {
        let Some(t) = layout.tensors.get(i) else {
            return format!("tensor #{i} {} missing", exp["name"]);
        };
        let ne: Vec<u64> =
            exp["ne"].as_array().map(|a| a.iter().filter_map(Json::as_u64).collect()).unwrap_or_default();
        if exp["name"].as_str() != Some(t.info.name.as_str())
            || exp["type"].as_str() != Some(t.info.ty.name())
            || ne != t.info.ne
            || exp["offset"].as_u64() != Some(t.info.offset)
        {
            return format!(
                "tensor #{i}: ours {} {} {:?} @{}, expected {} {} {:?} @{}",
                t.info.name,
                t.info.ty.name(),
                t.info.ne,
                t.info.offset,
                exp["name"],
                exp["type"],
                ne,
                exp["offset"]
            );
        }
    }
    format!("{} tensors, expected {}", layout.tensors.len(), tensors.len())
}

/// Every fixture's quantized header (KVs, tensor order, types, shapes, offsets) and file size
/// equal llama-quantize's.
#[test]
fn headers_and_sizes_equal_llama_quantize() {
    let mut failures = Vec::new();
    for repo in HEADER_FIXTURES {
        let f16 = build(&fixture_source(repo), OutType::F16).unwrap_or_else(|e| panic!("{repo}: {e}"));
        for t in OutType::QUANTIZED {
            let layout = super::quantize(&f16, t).unwrap_or_else(|e| panic!("{repo} {t:?}: {e}"));
            let want = expected(repo, t);
            if want["header_sha256"].as_str() != Some(sha(&layout.header).as_str()) {
                failures.push(format!("{repo} {}: {}", t.name(), first_header_difference(&layout, &want)));
            } else if want["size"].as_u64() != Some(layout.size) {
                failures.push(format!("{repo} {}: size {} != {}", t.name(), layout.size, want["size"]));
            }
        }
    }
    assert!(failures.is_empty(), "{} headers differ:\n{}", failures.len(), failures.join("\n"));
}

/// `build` and `retype` (from any converter type) give the same quantized layout.
#[test]
fn build_and_retype_agree() {
    let source = fixture_source(KQ_256);
    let bf16 = build(&source, OutType::BF16).unwrap();
    let built = build(&source, OutType::Q4KM).unwrap();
    assert_eq!(built.outtype, OutType::Q4KM);
    assert_eq!(retype(&bf16, OutType::Q4KM).unwrap().header, built.header);
}

/// A quantized layout cannot be re-typed (it has lost the converter's order and KVs).
#[test]
fn quantized_layouts_are_not_retyped() {
    let source = fixture_source(KQ_2048);
    let f16 = build(&source, OutType::F16).unwrap();
    let q = super::quantize(&f16, OutType::Q4KM).unwrap();
    assert!(retype(&q, OutType::F16).is_err());
    assert!(super::quantize(&q, OutType::Q6K).is_err());
}

/// Requantized tensors read the F16 file's values: F16 tensors get RoundF16, F32-kept
/// tensors (norms) are copied unchanged.
#[test]
fn requantized_f16_tensors_round_through_f16() {
    use crate::gguf::GgmlType;
    use crate::plan::{ElemOp, TensorSource};
    let source = fixture_source(KQ_256);
    let q = retype(&build(&source, OutType::F16).unwrap(), OutType::Q4KM).unwrap();
    for t in &q.tensors {
        let TensorSource::Rows { op, .. } = &t.plan.source else { continue };
        let quantized = !matches!(t.info.ty, GgmlType::F32 | GgmlType::F16);
        assert_eq!(op.rounds_f16(), quantized, "{}", t.info.name);
        assert_eq!(t.f32_op == ElemOp::RoundF16, quantized, "{}", t.info.name);
    }
    assert!(q.tensors.iter().any(|t| t.info.ty == GgmlType::Q4K));
    assert!(q.tensors.iter().any(|t| t.info.ty == GgmlType::Q6K));
}
