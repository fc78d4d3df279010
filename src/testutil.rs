//! Unit-test helpers: where the shared fixtures are, and comparing KVs with goldens.

use std::path::PathBuf;

use serde_json::Value as Json;
use sha2::{Digest, Sha256};

use crate::gguf::writer::array_element_bytes;
use crate::gguf::{KvMap, Value};
use crate::source::RepoFiles;

/// The project's shared directory (`../shared` beside the repo, or `$GGUFS_SHARED_DIR`).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("GGUFS_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

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

/// A fixture repo directory.
pub fn fixture_dir(repo: &str) -> PathBuf {
    shared_dir().join("fixtures/hub").join(repo)
}

/// The small (non-safetensors) files of a fixture repo, as `source` would fetch them.
pub fn fixture_files(repo: &str) -> RepoFiles {
    let mut files = RepoFiles::new();
    let dir = fixture_dir(repo);
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".safetensors") && path.is_file() {
            files.insert(name, std::fs::read(&path).unwrap());
        }
    }
    files
}

/// A golden description (`ggufs-golden/1`) for `repo` and file type `ty` (`F16`...).
pub fn golden(repo: &str, ty: &str) -> Json {
    let p = shared_dir()
        .join("fixtures/golden")
        .join(repo)
        .join(format!("{ty}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap()
}

/// The fake Hub's commit sha for a repo: sha1("fake-commit:" + repo).
pub fn fake_commit(repo: &str) -> String {
    use sha1::Sha1;
    hex::encode(Sha1::digest(format!("fake-commit:{repo}").as_bytes()))
}

fn scalar_matches(v: &Value, g: &Json) -> bool {
    match v {
        Value::U8(x) => g.as_u64() == Some(*x as u64),
        Value::I8(x) => g.as_i64() == Some(*x as i64),
        Value::U16(x) => g.as_u64() == Some(*x as u64),
        Value::I16(x) => g.as_i64() == Some(*x as i64),
        Value::U32(x) => g.as_u64() == Some(*x as u64),
        Value::I32(x) => g.as_i64() == Some(*x as i64),
        Value::U64(x) => g.as_u64() == Some(*x),
        Value::I64(x) => g.as_i64() == Some(*x),
        Value::F32(x) => g.as_f64().map(|f| f as f32) == Some(*x) || (x.is_nan() && g.is_null()),
        Value::F64(x) => g.as_f64() == Some(*x),
        Value::Bool(x) => g.as_bool() == Some(*x),
        Value::String(s) => match g {
            Json::String(t) => t.as_bytes() == s.as_slice(),
            Json::Object(o) => o.get("hex").and_then(|h| h.as_str()) == Some(&hex::encode(s)),
            _ => false,
        },
        Value::Array(..) => false,
    }
}

/// Describes how one KV differs from its golden entry, or `None` if it matches.
pub fn kv_mismatch(key: &str, v: &Value, g: &Json) -> Option<String> {
    let gtype = g["type"].as_str().unwrap_or("?");
    if gtype != v.value_type().name() {
        return Some(format!(
            "{key}: type {} != golden {gtype}",
            v.value_type().name()
        ));
    }
    if let Value::Array(et, items) = v {
        let sha = hex::encode(Sha256::digest(array_element_bytes(v)));
        if g["element_type"].as_str() != Some(et.name())
            || g["length"].as_u64() != Some(items.len() as u64)
        {
            return Some(format!(
                "{key}: array {}[{}] != golden {}[{}]",
                et.name(),
                items.len(),
                g["element_type"],
                g["length"]
            ));
        }
        if g["sha256"].as_str() != Some(&sha) {
            let head: Vec<String> = items.iter().take(5).map(|x| format!("{x:?}")).collect();
            return Some(format!(
                "{key}: array sha differs; ours starts {head:?}, golden head {}",
                g.get("head").or(g.get("values")).unwrap_or(&Json::Null)
            ));
        }
        return None;
    }
    if !scalar_matches(v, &g["value"]) {
        return Some(format!("{key}: {v:?} != golden {}", g["value"]));
    }
    None
}

/// Asserts that the KVs of `kv` whose key satisfies `keep` equal the golden's, in order.
pub fn assert_kvs_match(kv: &KvMap, golden: &Json, keep: impl Fn(&str) -> bool) {
    let ours: Vec<&(String, Value)> = kv.entries().iter().filter(|(k, _)| keep(k)).collect();
    let theirs: Vec<&Json> = golden["kv"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|g| keep(g["key"].as_str().unwrap()))
        .collect();
    let our_keys: Vec<&str> = ours.iter().map(|(k, _)| k.as_str()).collect();
    let their_keys: Vec<&str> = theirs.iter().map(|g| g["key"].as_str().unwrap()).collect();
    assert_eq!(
        our_keys, their_keys,
        "KV keys/order differ for {}",
        golden["repo"]
    );
    let problems: Vec<String> = ours
        .iter()
        .zip(&theirs)
        .filter_map(|((k, v), g)| kv_mismatch(k, v, g))
        .collect();
    assert!(
        problems.is_empty(),
        "{} KV mismatches for {}:\n{}",
        problems.len(),
        golden["repo"],
        problems.join("\n")
    );
}
