//! llama-quantize parity: every fixture's virtual Q4_K_M, Q5_K_M, Q6_K, Q4_0 (and the
//! parity-only Q8_0-LQ) file equals, byte for byte, `llama-quantize <reference F16> TYPE`
//! (expected values in tests/fixtures/kquant, made by scripts/fixtures/make_kquant_expect.sh);
//! and llama.cpp runs a Q4_K_M read straight from a mount.

mod support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use ggufs::catalog::ModelProvider;
use ggufs::gguf::reader::read_header;
use ggufs::plan::layout::build;
use ggufs::plan::llama_quant::quantize;
use ggufs::plan::OutType;
use ggufs::remote::HubProvider;
use ggufs::vfile::GgufFile;
use support::fixtures::assemble_breadth_root;
use support::mount::Mounted;
use support::*;

/// The k-quant fixtures (rows of whole 256-element super-blocks; a 2048-wide row).
const KQUANT_FIXTURES: [&str; 2] = ["TinyLlama/TinyLlama-1.1B-Chat-v0.6", "HuggingFaceTB/SmolLM2-360M-Instruct"];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// What llama-quantize wrote for `repo` as `t` (its TYPE argument names the LQ Q8_0 `Q8_0`).
fn expected(repo: &str, t: OutType) -> serde_json::Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kquant").join(format!("{repo}.json"));
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap();
    let arg = if t == OutType::LlamaQ8_0 { "Q8_0" } else { t.name() };
    doc["outputs"][arg].clone()
}

/// The first KV or tensor (record or data) where `file` differs from the expected output.
fn first_difference(file: &[u8], want: &serde_json::Value) -> String {
    let h = match read_header(file) {
        Ok(h) => h,
        Err(e) => return format!("unreadable header: {e}"),
    };
    let kvs = want["kv"].as_array().cloned().unwrap_or_default();
    let ours: Vec<&str> = h.kv.entries().iter().map(|(k, _)| k.as_str()).collect();
    let theirs: Vec<&str> = kvs.iter().filter_map(|k| k["key"].as_str()).collect();
    if ours != theirs {
        return format!("KV keys differ:\n ours   {ours:?}\n theirs {theirs:?}");
    }
    for ((key, v), exp) in h.kv.entries().iter().zip(&kvs) {
        let mut bytes = Vec::new();
        ggufs::gguf::writer::encode_value(v, &mut bytes);
        if exp["sha256"].as_str() != Some(sha256_hex(&bytes).as_str())
            || exp["type"].as_u64() != Some(v.value_type() as u64)
        {
            return format!("KV {key} differs (ours {:?})", v.value_type());
        }
    }
    let tensors = want["tensors"].as_array().cloned().unwrap_or_default();
    if h.tensors.len() != tensors.len() {
        return format!("{} tensors, expected {}", h.tensors.len(), tensors.len());
    }
    for (t, exp) in h.tensors.iter().zip(&tensors) {
        let ne: Vec<u64> = exp["ne"].as_array().unwrap().iter().filter_map(|x| x.as_u64()).collect();
        if exp["name"].as_str() != Some(&t.name) || exp["type"].as_str() != Some(t.ty.name()) || ne != t.ne {
            return format!(
                "tensor {} {} {:?}, expected {} {} {:?}",
                t.name,
                t.ty.name(),
                t.ne,
                exp["name"],
                exp["type"],
                ne
            );
        }
        let start = (h.header_size + t.offset) as usize;
        let data = file.get(start..start + t.nbytes() as usize).unwrap_or(&[]);
        if exp["sha256"].as_str() != Some(sha256_hex(data).as_str()) {
            return format!("tensor {} ({}) data differs", t.name, t.ty.name());
        }
    }
    "headers and tensor data match; padding differs".into()
}

/// The bytes of the virtual file `f`, read tensor by tensor. A tensor with the same name and
/// type in an earlier file of the same repo (same plan, same type: the same code path) is
/// taken from `seen`, so a big embedding that several types share is converted once.
fn file_bytes(rt: &tokio::runtime::Runtime, f: &GgufFile, seen: &mut HashMap<(String, String), Vec<u8>>) -> Vec<u8> {
    let layout = f.layout();
    let mut out = layout.header.clone();
    for t in &layout.tensors {
        out.resize(t.file_offset as usize, 0);
        let key = (t.info.name.clone(), t.info.ty.name().to_string());
        if !seen.contains_key(&key) {
            let data = rt.block_on(f.read_range(t.file_offset, t.nbytes())).unwrap_or_else(|e| panic!("{e}"));
            seen.insert(key.clone(), data.to_vec());
        }
        out.extend_from_slice(&seen[&key]);
    }
    out.resize(f.size() as usize, 0);
    out
}

/// Reads every repo in `repos` as every llama-quantize type from `hub` and checks the sha256;
/// repos run in parallel threads (the F16 layout, built once per repo, is single-threaded work).
fn check_all(hub: &ggufs_fakehub::FakeHub, repos: &[&str]) -> Vec<String> {
    let rt = runtime();
    let provider = {
        let _guard = rt.enter();
        HubProvider::new(Arc::new(client(hub)))
    };
    let check_repo = |repo: &str| {
        let mut failures = Vec::new();
        let source = rt.block_on(provider.source(repo, "main")).unwrap_or_else(|e| panic!("{repo}: {e}"));
        let f16 = build(&source, OutType::F16).unwrap_or_else(|e| panic!("{repo}: {e}"));
        let mut seen = HashMap::new();
        for t in OutType::QUANTIZED {
            let want = expected(repo, t);
            let layout = quantize(&f16, t).unwrap_or_else(|e| panic!("{repo} {t:?}: {e}"));
            let f = GgufFile::new(Arc::new(layout), source.clone(), provider.reader(&source));
            let bytes = file_bytes(&rt, &f, &mut seen);
            if want["sha256"].as_str() != Some(sha256_hex(&bytes).as_str()) {
                failures.push(format!("{repo} {}: {}", t.name(), first_difference(&bytes, &want)));
            }
        }
        failures
    };
    std::thread::scope(|s| {
        let handles: Vec<_> = repos.iter().map(|repo| s.spawn(|| check_repo(repo))).collect();
        handles.into_iter().flat_map(|h| h.join().expect("repo check panicked")).collect()
    })
}

/// One whole-file pull per type (the path `ggufs pull` takes) agrees with the tensor-wise reads.
#[test]
fn pull_writes_the_llama_quantize_file() {
    let root = assemble_breadth_root();
    let hub = start_hub_at(root.path());
    let rt = runtime();
    let client = Arc::new(client(&hub));
    let repo = KQUANT_FIXTURES[1];
    for t in [OutType::Q4KM, OutType::LlamaQ8_0] {
        let f = rt.block_on(ggufs::remote::open_file(client.clone(), repo, "main", t)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out.gguf");
        rt.block_on(ggufs::pull::pull_to(&f, &dest, |_| {})).expect("pull");
        let bytes = std::fs::read(&dest).unwrap();
        let want = expected(repo, t);
        assert_eq!(Some(sha256_hex(&bytes).as_str()), want["sha256"].as_str(), "{}", first_difference(&bytes, &want));
    }
}

#[test]
fn public_fixtures_equal_llama_quantize_output() {
    let hub = start_hub();
    let failures = check_all(&hub, &FIXTURES);
    assert!(failures.is_empty(), "{} files differ from llama-quantize:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn kquant_fixtures_equal_llama_quantize_output() {
    let root = assemble_breadth_root();
    let hub = start_hub_at(root.path());
    let failures = check_all(&hub, &KQUANT_FIXTURES);
    assert!(failures.is_empty(), "{} files differ from llama-quantize:\n{}", failures.len(), failures.join("\n"));
}

/// The mount lists the llama-quantize files, and llama.cpp loads and runs a Q4_K_M (real
/// Q4_K/Q6_K tensors) straight from it.
#[test]
fn llama_cpp_runs_a_q4_k_m_from_the_mount() {
    let root = assemble_breadth_root();
    let hub = start_hub_at(root.path());
    let m = Mounted::new(&hub, &[]);
    let repo = KQUANT_FIXTURES[0];
    let listed: Vec<String> = std::fs::read_dir(m.dir.path().join(repo))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    for t in ["F32", "F16", "BF16", "Q8_0", "Q4_K_M", "Q5_K_M", "Q6_K", "Q4_0"] {
        assert!(listed.contains(&format!("TinyLlama-1.1B-Chat-v0.6-{t}.gguf")), "{t} not in {listed:?}");
    }
    let path = m.file(repo, "Q4_K_M");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        expected(repo, OutType::Q4KM)["size"].as_u64().unwrap(),
        "size at lookup"
    );
    let prompt = "The capital of France is";
    let (stdout, stderr) = support::llama::generate(&path, prompt, 8);
    let generated = stdout.split_once(prompt).map(|(_, rest)| rest.trim()).unwrap_or("");
    assert!(!generated.is_empty(), "no completion printed: {stdout:?}\n{stderr}");
    let log = format!("{stdout}{stderr}");
    assert!(log.contains("/     7 runs"), "llama.cpp did not generate 8 tokens:\n{log}");
}
