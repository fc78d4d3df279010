//! The `ggufs` binary against the fake Hub.

mod support;

use std::process::Command;

use support::*;

#[test]
fn inspect_prints_commit_architecture_and_tensors_as_json() {
    const REPO: &str = "openai-community/gpt2";
    let hub = start_hub();
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ggufs"))
        .args(["inspect", REPO, "--endpoint", &hub.endpoint(), "--json"])
        .env_remove("HF_TOKEN")
        .env_remove("HUGGING_FACE_HUB_TOKEN")
        .env_remove("HF_TOKEN_PATH")
        .env("HF_HOME", home.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["commit"], fake_commit(REPO));
    assert_eq!(report["architectures"], serde_json::json!(["GPT2LMHeadModel"]));
    let raw = raw_tensors(&fixture_dir(REPO).join("model.safetensors"));
    let tensors = report["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), raw.len());
    for (t, r) in tensors.iter().zip(&raw) {
        assert_eq!(t["name"], r.name.as_str());
        assert_eq!(t["dtype"], r.dtype.as_str());
        assert_eq!(t["start"], r.start);
        assert_eq!(t["end"], r.start + r.len);
    }
    let params: u64 = raw.iter().map(|r| r.shape.iter().product::<u64>()).sum();
    assert_eq!(report["parameters"], params);
    // Only metadata was read: no request for tensor data beyond the header probe.
    let log = hub.take_log();
    assert!(
        log.iter().filter(|e| e.listener == "cdn").all(|e| e.range.as_deref() == Some("bytes=0-99999")),
        "{log:#?}"
    );
}

#[test]
fn inspect_reports_a_missing_repo_and_fails() {
    let hub = start_hub();
    let out = Command::new(env!("CARGO_BIN_EXE_ggufs"))
        .args(["inspect", "nobody/nothing", "--endpoint", &hub.endpoint()])
        .env_remove("HF_TOKEN")
        .env("HF_HOME", tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nobody/nothing") && err.contains("not found"), "{err}");
}

/// `pull` fills the cache; `pull --offline` then rebuilds another output type from the
/// cache alone, with the Hub gone.
#[test]
fn pull_offline_from_a_warm_cache_needs_no_hub() {
    let repo = "mistralai/Mixtral-8x7B-v0.1";
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let hub = support::start_hub();
    let online = std::process::Command::new(env!("CARGO_BIN_EXE_ggufs"))
        .args(["pull", repo, "--outtype", "f16", "-o"])
        .arg(tmp.path().join("a.gguf"))
        .arg("--cache-dir")
        .arg(&cache)
        .env("HF_ENDPOINT", hub.endpoint())
        .status()
        .unwrap();
    assert!(online.success());
    drop(hub);
    let offline = std::process::Command::new(env!("CARGO_BIN_EXE_ggufs"))
        .args(["pull", repo, "--outtype", "q8_0", "--offline", "-o"])
        .arg(tmp.path().join("b.gguf"))
        .arg("--cache-dir")
        .arg(&cache)
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));
    let bytes = std::fs::read(tmp.path().join("b.gguf")).unwrap();
    assert_eq!(support::sha256_hex(&bytes), support::golden(repo, "Q8_0")["file"]["sha256"].as_str().unwrap());
}
