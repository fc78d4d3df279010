//! The virtual GGUF end to end through the fake Hub: every public fixture in every output
//! type is byte-identical to the reference converter's file; byte ranges come out right and
//! cost only the source rows they need; headers need metadata requests only.

mod support;

use std::sync::Arc;

use ggufs::plan::OutType;
use ggufs::remote::open_file;
use support::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn open(hub: &ggufs_fakehub::FakeHub, repo: &str, t: OutType) -> ggufs::vfile::GgufFile {
    let client = Arc::new(client(hub));
    runtime().block_on(open_file(client, repo, "main", t)).unwrap_or_else(|e| panic!("{repo} {t:?}: {e}"))
}

fn whole_file(rt: &tokio::runtime::Runtime, f: &ggufs::vfile::GgufFile) -> Vec<u8> {
    rt.block_on(f.read_range(0, f.size())).expect("read whole file").to_vec()
}

#[test]
fn every_fixture_and_type_is_byte_identical_to_the_reference() {
    let hub = start_hub();
    let rt = runtime();
    let mut failures = Vec::new();
    for repo in FIXTURES {
        for t in OutType::ALL {
            let g = golden(repo, t.name());
            let f = open(&hub, repo, t);
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("out.gguf");
            rt.block_on(ggufs::pull::pull_to(&f, &dest, |_| {})).expect("pull");
            let bytes = std::fs::read(&dest).unwrap();
            if sha256_hex(&bytes) != g["file"]["sha256"].as_str().unwrap() {
                failures.push(format!("{repo} {}: {}", t.name(), first_difference(&bytes, &g)));
            }
        }
    }
    assert!(failures.is_empty(), "not byte-identical:\n{}", failures.join("\n"));
}

#[test]
fn the_header_needs_metadata_requests_only() {
    let hub = start_hub();
    for repo in ["mistralai/Mixtral-8x7B-v0.1", "openai-community/gpt2"] {
        hub.take_log();
        let f = open(&hub, repo, OutType::Q8_0);
        let log = hub.take_log();
        let data_reads: Vec<_> =
            log.iter().filter(|e| e.range.is_some() && e.range.as_deref() != Some("bytes=0-99999")).collect();
        assert!(data_reads.is_empty(), "{repo}: header build read tensor data: {data_reads:?}");
        let header_reads = log.iter().filter(|e| e.listener == "cdn" && e.range.is_some()).count();
        assert!(header_reads >= 1, "{repo}: no safetensors header was read: {log:?}");
        let rt = runtime();
        let header = rt.block_on(f.read_range(0, f.layout().header.len() as u64)).unwrap();
        assert_eq!(header.as_ref(), f.layout().header.as_slice());
        assert!(hub.take_log().is_empty(), "{repo}: reading the header made requests");
    }
}

/// A tiny deterministic generator (no rand dependency needed for test offsets).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 11
    }
}

#[test]
fn random_ranges_equal_the_same_windows_of_the_whole_file() {
    let hub = start_hub();
    let rt = runtime();
    for (repo, t) in [("openai-community/gpt2", OutType::Q8_0), ("microsoft/Phi-3.5-mini-instruct", OutType::F16)] {
        let f = open(&hub, repo, t);
        let whole = whole_file(&rt, &f);
        assert_eq!(sha256_hex(&whole), golden(repo, t.name())["file"]["sha256"].as_str().unwrap());
        let mut rng = Lcg(7);
        for _ in 0..200 {
            let off = rng.next() % f.size();
            let len = 1 + rng.next() % 300_000;
            let got = rt.block_on(f.read_range(off, len)).unwrap();
            let end = (off + len).min(f.size()) as usize;
            assert_eq!(got.as_ref(), &whole[off as usize..end], "{repo} window {off}+{len}");
        }
    }
}

#[test]
fn a_window_inside_one_tensor_fetches_only_the_rows_it_needs() {
    let hub = start_hub();
    let rt = runtime();
    let repo = "Qwen/Qwen2.5-0.5B-Instruct";
    let f = open(&hub, repo, OutType::F16);
    let t = f.layout().tensors.iter().find(|t| t.info.name == "token_embd.weight").unwrap();
    let row_bytes = t.info.ne[0] * 2; // bf16 source and F16 output: 2 bytes per element
    let (off, len) = (t.file_offset + t.nbytes() / 2 + 10, 1000);
    hub.take_log();
    let got = rt.block_on(f.read_range(off, len)).unwrap();
    assert_eq!(got.len(), len as usize);
    let fetched: u64 =
        hub.take_log().iter().filter(|e| e.listener == "cdn").map(|e| range_len(e.range.as_deref())).sum();
    assert!(fetched <= len + 2 * row_bytes, "fetched {fetched} source bytes for a {len}-byte window");
    assert!(fetched >= len, "fetched {fetched} bytes, fewer than the window");
}

fn range_len(r: Option<&str>) -> u64 {
    let spec = r.and_then(|r| r.strip_prefix("bytes=")).expect("ranged request");
    let (a, b) = spec.split_once('-').unwrap();
    b.parse::<u64>().unwrap() - a.parse::<u64>().unwrap() + 1
}

#[test]
fn an_unsupported_architecture_is_a_clear_error_naming_it() {
    let tmp = unsupported_arch_repo("HuggingFaceTB/SmolLM2-135M-Instruct", "acme/odd-model");
    let hub = start_hub_at(tmp.path());
    let client = Arc::new(client(&hub));
    let err = runtime().block_on(open_file(client, "acme/odd-model", "main", OutType::F16)).err().expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains("FrobnicatorForCausalLM") && msg.contains("LlamaForCausalLM"), "unclear error: {msg}");
}

/// A copy of the SmolLM2 fixture under `acme/<name>` with one file changed or removed.
fn smollm_variant(name: &str, edit: impl FnOnce(&std::path::Path)) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture_dir("HuggingFaceTB/SmolLM2-135M-Instruct");
    let dst = tmp.path().join("acme").join(name);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
    }
    edit(&dst);
    tmp
}

fn open_err(root: &std::path::Path, repo: &str) -> String {
    let hub = start_hub_at(root);
    let client = Arc::new(client(&hub));
    runtime().block_on(open_file(client, repo, "main", OutType::F16)).err().expect("must fail").to_string()
}

#[test]
fn an_unknown_or_missing_tokenizer_is_a_clear_error() {
    let unknown = smollm_variant("odd-tokenizer", |dir| {
        let p = dir.join("tokenizer.json");
        let mut tok: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        tok["normalizer"] = serde_json::json!({"type": "Lowercase"});
        std::fs::write(&p, tok.to_string()).unwrap();
    });
    let msg = open_err(unknown.path(), "acme/odd-tokenizer");
    assert!(msg.contains("pre-tokenizer") && msg.contains("not recognized"), "unclear error: {msg}");

    let missing = smollm_variant("no-tokenizer", |dir| std::fs::remove_file(dir.join("tokenizer.json")).unwrap());
    let msg = open_err(missing.path(), "acme/no-tokenizer");
    assert!(msg.contains("tokenizer"), "unclear error: {msg}");
}
