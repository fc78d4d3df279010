//! Speed of the ggml quantizers (`crate::quant::ggml`): elements/s on one core and on all
//! cores, next to the reference C quantizers when `GGUFS_QUANT_HARNESS` names the harness
//! built by scripts/quant-vectors/build.sh. Both sides quantize the same generated input in
//! one run (the machine is shared, so only numbers from one run compare), and the bench
//! also checks that our bytes equal the reference's.
//!
//! `cargo bench --bench quant [-- TYPE...]`; `GGUFS_QUANT_BENCH_SECS` sets the time per
//! measurement (default 1).

#[path = "../src/quant/ggml/inputs.rs"]
#[allow(dead_code)]
mod inputs;

use std::process::Command;
use std::time::{Duration, Instant};

use ggufs::gguf::GgmlType;
use ggufs::quant::ggml::quantize_rows_par;
use sha2::{Digest, Sha256};

const TYPES: [GgmlType; 7] =
    [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q4K, GgmlType::Q5K, GgmlType::Q6K];
/// f16-rounded gaussian: what llama-quantize reads from an F16 GGUF.
const DIST: u32 = 7;
const ROWS: usize = 64;
const ROW_LEN: usize = 4096;
const SEED: u64 = 1;

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let secs: f64 = std::env::var("GGUFS_QUANT_BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    let harness = std::env::var("GGUFS_QUANT_HARNESS").ok();
    let x = inputs::make_input(DIST, ROWS, ROW_LEN, SEED);
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("rayon pool");
    let cores = rayon::current_num_threads();
    println!("input: dist {DIST} (f16-rounded gaussian), {ROWS} x {ROW_LEN}; M elements/s");
    println!(
        "{:<6} {:>12} {:>14} {:>12} {:>8}  exact",
        "type",
        "ours 1 core",
        format!("ours {cores} cores"),
        "ref 1 core",
        "ratio"
    );
    for ty in TYPES {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == ty.name()) {
            continue;
        }
        let single = one.install(|| rate(ty, &x, budget));
        let all = rate(ty, &x, budget);
        let (reference, exact) = match &harness {
            Some(h) => (reference_rate(h, ty, secs), exact_vs_reference(h, ty, &x)),
            None => (None, "n/a".to_string()),
        };
        let ratio = reference.map_or("-".to_string(), |r| format!("{:.1}x", single / r));
        let reference = reference.map_or("-".to_string(), |r| format!("{:.1}", r / 1e6));
        println!("{:<6} {:>12.1} {:>14.1} {:>12} {:>8}  {exact}", ty.name(), single / 1e6, all / 1e6, reference, ratio);
    }
}

/// Elements per second of `quantize_rows_par` in the current rayon pool.
fn rate(ty: GgmlType, x: &[f32], budget: Duration) -> f64 {
    let mut out = Vec::with_capacity(x.len());
    quantize_rows_par(ty, x, ROW_LEN, &mut out).expect("quantize");
    let start = Instant::now();
    let mut reps = 0u64;
    while start.elapsed() < budget {
        out.clear();
        quantize_rows_par(ty, x, ROW_LEN, &mut out).expect("quantize");
        std::hint::black_box(&out);
        reps += 1;
    }
    (reps * x.len() as u64) as f64 / start.elapsed().as_secs_f64()
}

/// The reference's single-thread rate on the same input, from `harness bench`.
fn reference_rate(harness: &str, ty: GgmlType, secs: f64) -> Option<f64> {
    let probe =
        run(harness, &["bench", ty.name(), &DIST.to_string(), &ROWS.to_string(), &ROW_LEN.to_string(), "1", "1"])?;
    let first: f64 = String::from_utf8_lossy(&probe).trim().parse().ok()?;
    let reps = ((secs * first) / (ROWS * ROW_LEN) as f64).ceil().max(1.0) as u64;
    let out = run(
        harness,
        &["bench", ty.name(), &DIST.to_string(), &ROWS.to_string(), &ROW_LEN.to_string(), "1", &reps.to_string()],
    )?;
    String::from_utf8_lossy(&out).trim().parse().ok()
}

/// "yes" when our bytes equal the reference's on the bench input and on the mixed set.
fn exact_vs_reference(harness: &str, ty: GgmlType, x: &[f32]) -> String {
    let mixed = inputs::make_input(9, ROWS, ROW_LEN, SEED);
    for (dist, input) in [(DIST, x), (9, &mixed[..])] {
        let mut ours = Vec::new();
        quantize_rows_par(ty, input, ROW_LEN, &mut ours).expect("quantize");
        let args = ["gen", ty.name(), &dist.to_string(), &ROWS.to_string(), &ROW_LEN.to_string(), &SEED.to_string()];
        match run(harness, &args) {
            Some(theirs) if Sha256::digest(&theirs) == Sha256::digest(&ours) => {}
            Some(_) => return format!("NO (dist {dist})"),
            None => return "harness failed".to_string(),
        }
    }
    "yes".to_string()
}

fn run(harness: &str, args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new(harness).args(args).output().ok()?;
    out.status.success().then_some(out.stdout)
}
