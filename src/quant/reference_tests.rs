//! Conversions compared with what the reference's numpy/torch code produced: tricky vectors and
//! exhaustive 16-bit inputs (made by `testdata/make_vectors.py`), and real tensors of the
//! fixture repos against the goldens' per-tensor sha256.

use sha2::{Digest, Sha256};

use super::*;
use crate::testutil::{fixture_dir, golden};

const HASHES: &str = include_str!("testdata/hashes.json");

fn expected_hash(key: &str) -> String {
    let hashes: serde_json::Value = serde_json::from_str(HASHES).expect("hashes.json");
    hashes[key].as_str().unwrap_or_else(|| panic!("no hash {key}")).to_string()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn convert(src: Dtype, input: &[u8], op: ElemOp, dst: GgmlType) -> Vec<u8> {
    let mut out = Vec::new();
    convert_row(src, input, op, dst, &mut out).expect("convert");
    out
}

/// Index of the first differing element (of `width` bytes) for a readable failure.
fn first_difference(ours: &[u8], theirs: &[u8], width: usize) -> Option<usize> {
    ours.chunks(width).zip(theirs.chunks(width)).position(|(a, b)| a != b)
}

#[test]
fn tricky_f32_values_match_numpy() {
    let input = include_bytes!("testdata/tricky_f32.bin");
    let cases: [(GgmlType, &[u8], usize); 3] = [
        (GgmlType::F16, include_bytes!("testdata/tricky_f16.bin"), 2),
        (GgmlType::BF16, include_bytes!("testdata/tricky_bf16.bin"), 2),
        (GgmlType::Q8_0, include_bytes!("testdata/tricky_q8_0.bin"), 34),
    ];
    for (dst, want, width) in cases {
        let got = convert(Dtype::F32, input, ElemOp::None, dst);
        assert_eq!(got.len(), want.len(), "{dst:?} length");
        assert_eq!(first_difference(&got, want, width), None, "{dst:?} differs from numpy");
        let values: Vec<f32> = input.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let mut from_f32 = Vec::new();
        convert_f32_row(&values, dst, &mut from_f32).expect("convert_f32_row");
        assert_eq!(from_f32, want, "{dst:?} via convert_f32_row");
    }
    assert_eq!(convert(Dtype::F32, input, ElemOp::None, GgmlType::F32), input);
}

#[test]
fn f64_narrows_like_torch() {
    let input = include_bytes!("testdata/f64_in.bin");
    assert_eq!(sha(&convert(Dtype::F64, input, ElemOp::None, GgmlType::F32)), expected_hash("f64_to_f32"));
}

fn all_16_bit_patterns() -> Vec<u8> {
    (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect()
}

#[test]
fn every_bf16_and_f16_pattern_matches_the_reference() {
    let input = all_16_bit_patterns();
    let mut failures = Vec::new();
    for (src, name) in [(Dtype::BF16, "bf16"), (Dtype::F16, "f16")] {
        for (op, suffix) in [(ElemOp::None, ""), (ElemOp::AddOne, "_addone")] {
            for dst in [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0] {
                let key = format!("{name}{suffix}_to_{}", dst.name());
                if sha(&convert(src, &input, op, dst)) != expected_hash(&key) {
                    failures.push(key);
                }
            }
        }
    }
    assert!(failures.is_empty(), "differ from the reference: {failures:?}");
}

#[test]
fn parallel_conversion_equals_sequential() {
    let input = all_16_bit_patterns();
    for dst in [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0] {
        let mut par = vec![7u8];
        convert_rows_par(Dtype::BF16, &input, 256, ElemOp::AddOne, dst, &mut par).expect("par");
        assert_eq!(par[0], 7, "appends");
        assert_eq!(par[1..], convert(Dtype::BF16, &input, ElemOp::AddOne, dst), "{dst:?}");
    }
}

#[test]
fn bad_inputs_are_errors() {
    let mut out = Vec::new();
    assert!(matches!(
        convert_row(Dtype::F32, &[0; 6], ElemOp::None, GgmlType::F16, &mut out),
        Err(QuantError::RaggedInput { .. })
    ));
    assert!(matches!(
        convert_row(Dtype::F32, &[0; 4 * 33], ElemOp::None, GgmlType::Q8_0, &mut out),
        Err(QuantError::PartialBlock { .. })
    ));
    // k-quants are made by quant::ggml now; Q2_K has no kernel
    assert!(matches!(
        convert_f32_row(&[0.0; 256], GgmlType::Q2K, &mut out),
        Err(QuantError::UnsupportedOutput(GgmlType::Q2K))
    ));
    assert!(matches!(
        convert_rows_par(Dtype::F32, &[0; 4 * 64], 48, ElemOp::None, GgmlType::F16, &mut out),
        Err(QuantError::RaggedRows { .. })
    ));
    assert!(out.is_empty());
}

/// A tensor of a fixture repo's `model.safetensors`: dtype and raw bytes.
fn fixture_tensor(repo: &str, name: &str) -> (Dtype, Vec<u8>) {
    let path = fixture_dir(repo).join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let entry = &header[name];
    let dtype = Dtype::parse(entry["dtype"].as_str().unwrap()).unwrap();
    let offsets: Vec<usize> =
        entry["data_offsets"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    (dtype, bytes[8 + n + offsets[0]..8 + n + offsets[1]].to_vec())
}

fn golden_sha(repo: &str, ty: &str, tensor: &str) -> (String, String) {
    let g = golden(repo, ty);
    let t = g["tensors"].as_array().unwrap().iter().find(|t| t["name"] == tensor).unwrap_or_else(|| panic!("{tensor}"));
    (t["type"].as_str().unwrap().to_string(), t["sha256"].as_str().unwrap().to_string())
}

/// Converts an identity-mapped source tensor to each output file type and compares with the
/// golden tensor of that file.
fn assert_matches_goldens(repo: &str, source: &str, gguf_name: &str, op: ElemOp) {
    let (dtype, data) = fixture_tensor(repo, source);
    for file_type in ["F32", "F16", "BF16", "Q8_0"] {
        let (ty, want) = golden_sha(repo, file_type, gguf_name);
        let dst = [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0]
            .into_iter()
            .find(|t| t.name() == ty)
            .unwrap();
        assert_eq!(sha(&convert(dtype, &data, op, dst)), want, "{repo} {gguf_name} in {file_type} ({ty})");
    }
}

#[test]
fn bf16_weights_match_smollm2_goldens() {
    let repo = "HuggingFaceTB/SmolLM2-135M-Instruct";
    assert_matches_goldens(repo, "model.layers.0.mlp.down_proj.weight", "blk.0.ffn_down.weight", ElemOp::None);
    assert_matches_goldens(
        repo,
        "model.layers.1.post_attention_layernorm.weight",
        "blk.1.ffn_norm.weight",
        ElemOp::None,
    );
}

#[test]
fn f32_weights_match_gpt2_goldens() {
    let repo = "openai-community/gpt2";
    assert_matches_goldens(repo, "transformer.wte.weight", "token_embd.weight", ElemOp::None);
    assert_matches_goldens(repo, "transformer.h.0.mlp.c_proj.bias", "blk.0.ffn_down.bias", ElemOp::None);
}

#[test]
fn gemma_norm_shift_matches_goldens() {
    let repo = "google/gemma-3-1b-it";
    assert_matches_goldens(repo, "model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight", ElemOp::AddOne);
    assert_matches_goldens(repo, "model.layers.1.mlp.down_proj.weight", "blk.1.ffn_down.weight", ElemOp::None);
}

#[test]
fn narrow_and_integer_dtypes_convert_by_value_like_torch() {
    let all8: Vec<u8> = (0..=255).collect();
    let cases: [(Dtype, &[u8], &str); 6] = [
        (Dtype::F8E4M3, &all8, "f8e4m3_to_F32"),
        (Dtype::F8E5M2, &all8, "f8e5m2_to_F32"),
        (Dtype::I8, &all8, "i8_to_F32"),
        (Dtype::U8, &all8, "u8_to_F32"),
        (Dtype::Bool, &all8[..2], "bool_to_F32"),
        (Dtype::I64, include_bytes!("testdata/i64_in.bin"), "i64_to_F32"),
    ];
    let failures: Vec<&str> = cases
        .iter()
        .filter(|(dtype, input, key)| sha(&convert(*dtype, input, ElemOp::None, GgmlType::F32)) != expected_hash(key))
        .map(|(_, _, key)| *key)
        .collect();
    assert!(failures.is_empty(), "differ from torch: {failures:?}");
}

/// Conversions into recycled memory (a `PageBuf` grows with stale bytes) must write every byte
/// they ask for: each output type, op and entry point gives the same bytes in a buffer full of
/// garbage as in a zeroed `Vec`.
#[test]
fn dirty_output_buffers_give_identical_bytes() {
    use crate::pagebuf::PageBuf;
    let dirty = || {
        let mut b = PageBuf::with_capacity(1 << 20);
        b.extend_unspecified(1 << 20).fill(0xa5);
        b.clear();
        b
    };
    let values: Vec<f32> = (0..4096).map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.003).collect();
    let input: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let types = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q4K,
        GgmlType::Q5K,
        GgmlType::Q6K,
    ];
    for dst in types {
        for op in [ElemOp::None, ElemOp::RoundF16, ElemOp::AddOne] {
            if op == ElemOp::None && ggml::supports(dst) && dst != GgmlType::Q8_0 {
                continue; // k-quants are only made through the F16 stage
            }
            let mut want = Vec::new();
            convert_row(Dtype::F32, &input, op, dst, &mut want).unwrap();
            let mut got = dirty();
            convert_row(Dtype::F32, &input, op, dst, &mut got).unwrap();
            assert_eq!(&got[..], &want[..], "convert_row {dst:?} {op:?}");
            let mut got = dirty();
            convert_rows_par(Dtype::F32, &input, 256, op, dst, &mut got).unwrap();
            assert_eq!(&got[..], &want[..], "convert_rows_par {dst:?} {op:?}");
        }
        let mut want = Vec::new();
        convert_f32_row(&values, dst, &mut want).unwrap();
        let mut got = dirty();
        convert_f32_row(&values, dst, &mut got).unwrap();
        assert_eq!(&got[..], &want[..], "convert_f32_row {dst:?}");
    }
}
