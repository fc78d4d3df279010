//! Shared support for integration tests: a fake Hub over the shared fixtures and clients for it.
//! Tests fail (never skip) when the fixtures are missing.
#![allow(dead_code)]

pub mod fixtures;
pub mod llama;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ggufs::hub::{HubClient, HubConfig, RetryConfig};
use ggufs_fakehub::FakeHub;

pub mod mem_ns;
pub mod mount;

/// The seven public fixture repos.
pub const FIXTURES: [&str; 7] = [
    "HuggingFaceTB/SmolLM2-135M-Instruct",
    "Qwen/Qwen2.5-0.5B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "microsoft/Phi-3.5-mini-instruct",
    "openai-community/gpt2",
    "mistralai/Mixtral-8x7B-v0.1",
    "google/gemma-3-1b-it",
];

/// The project's shared directory (`$GGUFS_SHARED_DIR` or `../shared` beside the repo).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("GGUFS_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// `<shared>/fixtures/hub`, checked to hold every fixture repo.
pub fn fixtures_root() -> PathBuf {
    let root = shared_dir().join("fixtures/hub");
    for repo in FIXTURES {
        assert!(root.join(repo).join("config.json").is_file(), "fixture {repo} missing under {}", root.display());
    }
    root
}

/// A fixture repo's directory.
pub fn fixture_dir(repo: &str) -> PathBuf {
    fixtures_root().join(repo)
}

/// A fake Hub serving the shared fixtures.
pub fn start_hub() -> FakeHub {
    start_hub_at(&fixtures_root())
}

/// A fake Hub serving `root`.
pub fn start_hub_at(root: &Path) -> FakeHub {
    FakeHub::start(root).expect("start fake hub")
}

/// Client config for `hub` with fast retries (tests must not sleep for seconds).
pub fn config(hub: &FakeHub) -> HubConfig {
    HubConfig::new(hub.endpoint()).with_retry(RetryConfig {
        max_retries: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(200),
        budget: Duration::from_secs(20),
    })
}

/// An anonymous client for `hub`.
pub fn client(hub: &FakeHub) -> HubClient {
    HubClient::new(config(hub)).expect("client")
}

/// A client for `hub` sending `token`.
pub fn client_with_token(hub: &FakeHub, token: &str) -> HubClient {
    HubClient::new(config(hub).with_token(Some(token.to_string()))).expect("client")
}

/// The fake Hub's commit for `repo`.
pub fn fake_commit(repo: &str) -> String {
    ggufs_fakehub::fake_commit(repo)
}

/// A temp root holding a copy of `repo`'s small files (config.json, README.md) under `new_id`,
/// with `flags` written as its `.fakehub.json`.
pub fn repo_copy_with_flags(repo: &str, new_id: &str, flags: &serde_json::Value) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dst = tmp.path().join(new_id);
    std::fs::create_dir_all(&dst).expect("mkdir");
    for f in ["config.json", "README.md"] {
        std::fs::copy(fixture_dir(repo).join(f), dst.join(f)).expect("copy fixture file");
    }
    std::fs::write(dst.join(".fakehub.json"), flags.to_string()).expect("write flags");
    tmp
}

/// One tensor as an independent reading of a safetensors file sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTensor {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub start: u64,
    pub len: u64,
}

/// Parses a safetensors file without the library: LE u64 length, JSON, absolute offsets.
pub fn raw_tensors(path: &Path) -> Vec<RawTensor> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let mut out: Vec<RawTensor> = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(name, v)| {
            let offs: Vec<u64> = v["data_offsets"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
            RawTensor {
                name: name.clone(),
                dtype: v["dtype"].as_str().unwrap().to_string(),
                shape: v["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect(),
                start: 8 + n as u64 + offs[0],
                len: offs[1] - offs[0],
            }
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The shard files of a fixture repo, in the reference's order.
pub fn fixture_shards(repo: &str) -> Vec<String> {
    let dir = fixture_dir(repo);
    if dir.join("model.safetensors").is_file() {
        return vec!["model.safetensors".into()];
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("model.safetensors.index.json")).unwrap()).unwrap();
    let mut shards: Vec<String> =
        index["weight_map"].as_object().unwrap().values().map(|v| v.as_str().unwrap().to_string()).collect();
    shards.sort();
    shards.dedup();
    shards
}

/// A golden description (`ggufs-golden/1`) of `repo` for file type `ty` (`F16`...).
pub fn golden(repo: &str, ty: &str) -> serde_json::Value {
    let p = shared_dir().join("fixtures/golden").join(repo).join(format!("{ty}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// Hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// Explains how a GGUF file differs from its golden: the first tensor whose bytes differ,
/// or the first KV whose key, type or (scalar) value differs.
pub fn first_difference(file: &[u8], golden: &serde_json::Value) -> String {
    let header = match ggufs::gguf::reader::read_header(file) {
        Ok(h) => h,
        Err(e) => return format!("our file does not parse: {e}"),
    };
    let gkv = golden["kv"].as_array().unwrap();
    for (i, g) in gkv.iter().enumerate() {
        let Some((key, value)) = header.kv.entries().get(i) else {
            return format!("KV #{i} {} missing", g["key"]);
        };
        if g["key"].as_str() != Some(key) || g["type"].as_str() != Some(value.value_type().name()) {
            return format!(
                "KV #{i}: ours {key} ({}) vs golden {} ({})",
                value.value_type().name(),
                g["key"],
                g["type"]
            );
        }
        if let Some(want) = g.get("value") {
            let ours = format!("{value:?}");
            if !ours.contains(&want.to_string().trim_matches('"').to_string()) {
                return format!("KV {key}: ours {ours} vs golden {want}");
            }
        }
    }
    for (t, g) in header.tensors.iter().zip(golden["tensors"].as_array().unwrap()) {
        let start = (header.header_size + t.offset) as usize;
        let bytes = file.get(start..start + t.nbytes() as usize).unwrap_or(&[]);
        if g["name"].as_str() != Some(&t.name) || g["sha256"].as_str() != Some(&sha256_hex(bytes)) {
            return format!("tensor {} (golden {}) differs", t.name, g["name"]);
        }
    }
    "header bytes differ (array contents or padding)".into()
}

/// A temp Hub root holding `new_id`: a copy of fixture `repo`'s weights and tokenizer with
/// `config.json` naming an architecture ggufs does not know (`FrobnicatorForCausalLM`).
pub fn unsupported_arch_repo(repo: &str, new_id: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (src, dst) = (fixture_dir(repo), tmp.path().join(new_id));
    std::fs::create_dir_all(&dst).expect("mkdir");
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dst.join(f)).expect("copy fixture file");
    }
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).expect("config.json")).expect("json");
    config["architectures"] = serde_json::json!(["FrobnicatorForCausalLM"]);
    std::fs::write(dst.join("config.json"), config.to_string()).expect("write config");
    tmp
}

/// Runs `fut` on a fresh current-thread runtime with every `tracing` event at `level` or above
/// written (without colours) into a buffer; returns its output and the log text.
pub fn with_captured_logs<F: std::future::Future>(level: tracing::Level, fut: F) -> (F::Output, String) {
    #[derive(Clone, Default)]
    struct LogBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for LogBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = LogBuf::default();
    let writer = buf.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(level).with_writer(move || writer.clone()).with_ansi(false).finish();
    let out = tracing::subscriber::with_default(subscriber, || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime").block_on(fut)
    });
    let text = String::from_utf8_lossy(&buf.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    (out, text)
}
