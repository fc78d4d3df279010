//! Conversion throughput per core (`cargo bench --bench convert`): the kernels a virtual file
//! runs on every byte it serves, single-threaded, in GB/s of OUTPUT (what the reader sees).
//! A plain harness (no criterion): one warm-up pass, then the best of several timed passes
//! over 64 MiB of pseudo-random but realistic weights (normal-ish values, no NaN/Inf).

use std::time::{Duration, Instant};

use ggufs::gguf::GgmlType;
use ggufs::plan::ElemOp;
use ggufs::quant::convert_row;
use ggufs::safetensors::Dtype;

/// Source elements per pass: 32 Mi elements (64 MiB of BF16).
const ELEMENTS: usize = 32 << 20;
const ROW: usize = 4096;
/// Timed passes per case; the best is reported (least disturbed by other processes).
const PASSES: usize = 5;

fn weights(n: usize) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // Sum of uniforms: roughly normal, std ~0.02 like trained weights.
            let u = |s: u64, k: u32| ((s >> k) & 0xffff) as f32 / 65536.0 - 0.5;
            (u(state, 0) + u(state, 16) + u(state, 32) + u(state, 48)) * 0.04
        })
        .collect()
}

fn encode(values: &[f32], dtype: Dtype) -> Vec<u8> {
    match dtype {
        Dtype::BF16 => values.iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect(),
        Dtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        _ => unreachable!("benchmarked sources are BF16 and F32"),
    }
}

fn bench(name: &str, src: Dtype, dst: GgmlType, input: &[u8]) {
    let row_bytes = ROW * src.size() as usize;
    let run = |out: &mut Vec<u8>| {
        out.clear();
        for row in input.chunks(row_bytes) {
            convert_row(src, row, ElemOp::None, dst, out).expect("conversion");
        }
    };
    let mut out = Vec::with_capacity(input.len() * 2);
    run(&mut out);
    let mut best = Duration::MAX;
    for _ in 0..PASSES {
        let t = Instant::now();
        run(&mut out);
        best = best.min(t.elapsed());
        std::hint::black_box(&out);
    }
    let gbps = out.len() as f64 / best.as_secs_f64() / 1e9;
    let in_gbps = input.len() as f64 / best.as_secs_f64() / 1e9;
    println!("convert {name}: {gbps:.2} GB/s output per core ({in_gbps:.2} GB/s input)");
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects cases by name.
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let values = weights(ELEMENTS);
    let bf16 = encode(&values, Dtype::BF16);
    let f32s = encode(&values, Dtype::F32);
    let cases: [(&str, Dtype, GgmlType, &[u8]); 4] = [
        ("BF16->F16", Dtype::BF16, GgmlType::F16, &bf16),
        ("BF16->F32", Dtype::BF16, GgmlType::F32, &bf16),
        ("F32->F16", Dtype::F32, GgmlType::F16, &f32s),
        ("BF16->Q8_0", Dtype::BF16, GgmlType::Q8_0, &bf16),
    ];
    for (name, src, dst, input) in cases {
        if filter.as_deref().is_none_or(|f| name.contains(f)) {
            bench(name, src, dst, input);
        }
    }
}
