//! Running llama.cpp's `llama-completion` on a model, as the tests that load virtual files do.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `llama-completion`, built by `scripts/llama-tools.sh` (which CI runs).
pub fn llama_completion() -> PathBuf {
    let bin = std::env::var_os("GGUFS_LLAMA_BIN").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/ggufs-llama/build/bin/llama-completion")
    });
    assert!(bin.is_file(), "{} missing: run scripts/llama-tools.sh (or set GGUFS_LLAMA_BIN)", bin.display());
    bin
}

/// Attempts per generation: llama.cpp logs (and prints the generated text) through an
/// asynchronous logger whose pending lines can be lost at exit on a loaded machine — seen as an
/// exit status 0 with the output cut after any line, also on a mount whose bytes a previous run
/// had just generated from. A run whose output lacks llama.cpp's closing performance summary is
/// therefore repeated; the callers' assertions apply to the complete run.
const ATTEMPTS: usize = 3;

/// Greedy, single-threaded (with two threads llama.cpp's sums are not reproducible run to run)
/// generation of `n` tokens after `prompt`, end-of-text ignored; `(stdout, stderr)` of the
/// first run whose output is complete (or of the last attempt).
pub fn generate(model: &Path, prompt: &str, n: u32) -> (String, String) {
    let mut last = (String::new(), String::new());
    for attempt in 1..=ATTEMPTS {
        let out = Command::new(llama_completion())
            .arg("-m")
            .arg(model)
            .args(["-p", prompt, "-n", &n.to_string(), "--temp", "0", "--seed", "7", "-t", "1"])
            .args(["--ignore-eos", "-no-cnv", "--no-warmup"])
            .output()
            .expect("run llama-completion");
        let (stdout, stderr) =
            (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned());
        assert!(out.status.success(), "llama.cpp failed on {}: {stderr}", model.display());
        if stderr.lines().any(|l| l.contains("common_perf_print:") && l.contains("total time")) {
            return (stdout, stderr);
        }
        eprintln!("llama.cpp output cut short (attempt {attempt} of {ATTEMPTS}): {stdout:?}");
        last = (stdout, stderr);
    }
    last
}
