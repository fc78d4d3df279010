//! Byte-exactness against the reference quantizers (llama-quantize's own libggml-base),
//! through vectors produced by scripts/quant-vectors/gen.sh.

use sha2::{Digest, Sha256};

use super::inputs::{make_input, DISTS};
use super::{quantize_row, quantize_rows_par, supports};
use crate::gguf::GgmlType;
use crate::quant::QuantError;

const VECTORS: &str = include_str!("testdata/vectors.txt");

struct Case<'a> {
    kind: &'a str,
    ty: &'a str,
    dist: u32,
    nrows: usize,
    n: usize,
    seed: u64,
    value: &'a str,
}

fn cases() -> Vec<Case<'static>> {
    VECTORS
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            assert_eq!(f.len(), 7, "bad vector line {line}");
            Case {
                kind: f[0],
                ty: f[1],
                dist: f[2].parse().unwrap(),
                nrows: f[3].parse().unwrap(),
                n: f[4].parse().unwrap(),
                seed: f[5].parse().unwrap(),
                value: f[6],
            }
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn generator_matches_the_c_harness() {
    let inputs: Vec<_> = cases().into_iter().filter(|c| c.kind == "input").collect();
    assert_eq!(inputs.len(), DISTS as usize);
    for c in inputs {
        let x = make_input(c.dist, c.nrows, c.n, c.seed);
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(sha256_hex(&bytes), c.value, "input dist {}", c.dist);
    }
}

/// Every reference vector of `ty`: sha256 cases through the parallel path, hex cases
/// through `quantize_row`, reporting the first differing block.
fn check_type(ty: GgmlType) {
    let (block, bytes) = ty.block();
    let mut checked = 0;
    for c in cases().into_iter().filter(|c| c.ty == ty.name()) {
        let x = make_input(c.dist, c.nrows, c.n, c.seed);
        let mut out = Vec::new();
        if c.kind == "hex" {
            quantize_row(ty, &x, &mut out).unwrap();
            let want = hex::decode(c.value).unwrap();
            let bad = out.chunks(bytes as usize).zip(want.chunks(bytes as usize)).position(|(a, b)| a != b);
            assert_eq!(bad, None, "{} dist {}: first differing block", c.ty, c.dist);
            assert_eq!(out.len(), want.len());
        } else {
            quantize_rows_par(ty, &x, c.n, &mut out).unwrap();
            assert_eq!(out.len() as u64, (c.nrows * c.n) as u64 / block * bytes);
            assert_eq!(sha256_hex(&out), c.value, "{} dist {} ({}x{})", c.ty, c.dist, c.nrows, c.n);
        }
        checked += 1;
    }
    assert_eq!(checked, 14, "vectors for {}", ty.name());
}

#[test]
fn q8_0_matches_reference() {
    check_type(GgmlType::Q8_0);
}

#[test]
fn q4_0_matches_reference() {
    check_type(GgmlType::Q4_0);
}

#[test]
fn q5_0_matches_reference() {
    check_type(GgmlType::Q5_0);
}

#[test]
fn q5_1_matches_reference() {
    check_type(GgmlType::Q5_1);
}

#[test]
fn q4_k_matches_reference() {
    check_type(GgmlType::Q4K);
}

#[test]
fn q5_k_matches_reference() {
    check_type(GgmlType::Q5K);
}

#[test]
fn q6_k_matches_reference() {
    check_type(GgmlType::Q6K);
}

#[test]
fn parallel_rows_equal_sequential_and_append() {
    let x = make_input(9, 8, 512, 77);
    for ty in [GgmlType::Q4K, GgmlType::Q5_0] {
        let mut seq = vec![0xAA];
        quantize_row(ty, &x, &mut seq).unwrap();
        let mut par = vec![0xAA];
        quantize_rows_par(ty, &x, 512, &mut par).unwrap();
        assert_eq!(seq, par);
        assert_eq!(seq[0], 0xAA);
    }
}

#[test]
fn rejects_partial_blocks_ragged_rows_and_unsupported_types() {
    let x = vec![0.5f32; 320];
    let mut out = Vec::new();
    assert_eq!(
        quantize_row(GgmlType::Q4K, &x, &mut out),
        Err(QuantError::PartialBlock { ty: GgmlType::Q4K, n: 320, block: 256 })
    );
    assert_eq!(
        quantize_rows_par(GgmlType::Q8_0, &x, 96, &mut out),
        Err(QuantError::RaggedRows { row_len: 96, n: 320 })
    );
    assert_eq!(
        quantize_rows_par(GgmlType::Q4K, &x, 160, &mut out),
        Err(QuantError::PartialBlock { ty: GgmlType::Q4K, n: 160, block: 256 })
    );
    assert_eq!(quantize_row(GgmlType::Q2K, &x, &mut out), Err(QuantError::UnsupportedOutput(GgmlType::Q2K)));
    assert!(out.is_empty());
    assert!(supports(GgmlType::Q6K) && !supports(GgmlType::F16));
}

#[test]
fn generic_build_equals_dispatched_build() {
    let x = make_input(10, 2, 512, 99);
    let generic: [(GgmlType, super::BlockKernel); 7] = [
        (GgmlType::Q8_0, super::q8_0::quantize_blocks),
        (GgmlType::Q4_0, super::q4_0::quantize_blocks),
        (GgmlType::Q5_0, super::q5_0::quantize_blocks),
        (GgmlType::Q5_1, super::q5_1::quantize_blocks),
        (GgmlType::Q4K, super::q4_k::quantize_blocks),
        (GgmlType::Q5K, super::q5_k::quantize_blocks),
        (GgmlType::Q6K, super::q6_k::quantize_blocks),
    ];
    for (ty, kernel) in generic {
        let mut dispatched = Vec::new();
        quantize_row(ty, &x, &mut dispatched).unwrap();
        let mut plain = vec![0u8; dispatched.len()];
        kernel(&x, &mut plain);
        assert_eq!(plain, dispatched, "{}", ty.name());
    }
}
