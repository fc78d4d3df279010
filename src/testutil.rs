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

include!("../tests/fixtures/breadth_fixtures.rs");

/// This repo's `tests/fixtures` directory.
fn local_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture repo directory (a breadth fixture's is incomplete: see `fixture_files`).
pub fn fixture_dir(repo: &str) -> PathBuf {
    if BREADTH_FIXTURES.contains(&repo) {
        return local_fixtures().join("hub").join(repo);
    }
    shared_dir().join("fixtures/hub").join(repo)
}

/// The tokenizer files a breadth fixture takes from the corpus, as (name, path) pairs.
pub fn corpus_tokenizer_files(repo_dir: &std::path::Path) -> Vec<(String, PathBuf)> {
    let from = repo_dir.join("tokenizer-from.txt");
    let Ok(dir) = std::fs::read_to_string(&from) else {
        return Vec::new();
    };
    // Tokenizers the corpus lacks are committed under tests/fixtures/tokenizers (PROVENANCE-*.md).
    let mut corpus = shared_dir().join("corpus").join(dir.trim());
    if !corpus.is_dir() {
        corpus = local_fixtures().join("tokenizers").join(dir.trim());
    }
    let found: Vec<(String, PathBuf)> =
        TOKENIZER_FILES.iter().map(|n| (n.to_string(), corpus.join(n))).filter(|(_, p)| p.is_file()).collect();
    assert!(!found.is_empty(), "no tokenizer files in {} (named by {})", corpus.display(), from.display());
    found
}

/// The small (non-safetensors) files of a fixture repo, as `source` would fetch them.
pub fn fixture_files(repo: &str) -> RepoFiles {
    let mut files = RepoFiles::new();
    let dir = fixture_dir(repo);
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let generated = name == "tokenizer-from.txt" || name == ggufs_fakehub::synth::MANIFEST;
        if !name.ends_with(".safetensors") && !generated && path.is_file() {
            files.insert(name, std::fs::read(&path).unwrap());
        }
    }
    for (name, path) in corpus_tokenizer_files(&dir) {
        files.insert(name, std::fs::read(&path).unwrap());
    }
    files
}

/// A golden description (`ggufs-golden/1`) for `repo` and file type `ty` (`F16`...).
pub fn golden(repo: &str, ty: &str) -> Json {
    let base = if BREADTH_FIXTURES.contains(&repo) { local_fixtures() } else { shared_dir().join("fixtures") };
    let p = base.join("golden").join(repo).join(format!("{ty}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
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
        return Some(format!("{key}: type {} != golden {gtype}", v.value_type().name()));
    }
    if let Value::Array(et, items) = v {
        let sha = hex::encode(Sha256::digest(array_element_bytes(v)));
        if g["element_type"].as_str() != Some(et.name()) || g["length"].as_u64() != Some(items.len() as u64) {
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
    let theirs: Vec<&Json> =
        golden["kv"].as_array().unwrap().iter().filter(|g| keep(g["key"].as_str().unwrap())).collect();
    let our_keys: Vec<&str> = ours.iter().map(|(k, _)| k.as_str()).collect();
    let their_keys: Vec<&str> = theirs.iter().map(|g| g["key"].as_str().unwrap()).collect();
    assert_eq!(our_keys, their_keys, "KV keys/order differ for {}", golden["repo"]);
    let problems: Vec<String> = ours.iter().zip(&theirs).filter_map(|((k, v), g)| kv_mismatch(k, v, g)).collect();
    assert!(problems.is_empty(), "{} KV mismatches for {}:\n{}", problems.len(), golden["repo"], problems.join("\n"));
}

/// Where a fixture's safetensors shards are: its own directory, or (for a synthetic fixture with a
/// `weights.json`) a directory under the system temp dir keyed by the manifest's sha256, generated
/// once and reused: the same manifest always gives the same bytes.
pub fn fixture_shard_dir(repo: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let dir = fixture_dir(repo);
    let Ok(manifest) = std::fs::read(dir.join(ggufs_fakehub::synth::MANIFEST)) else {
        return dir;
    };
    let key = hex::encode(&Sha256::digest(&manifest)[..12]);
    let out = std::env::temp_dir().join("ggufs-synth-cache").join(key);
    if !out.is_dir() {
        let tmp = out.with_extension(format!("tmp{}-{:?}", std::process::id(), std::thread::current().id()));
        let tmp = PathBuf::from(tmp.to_string_lossy().replace(['(', ')'], ""));
        ggufs_fakehub::synth::materialize(&dir, &tmp).unwrap_or_else(|e| panic!("{}: {e:#}", dir.display()));
        if std::fs::rename(&tmp, &out).is_err() {
            let _ = std::fs::remove_dir_all(&tmp); // another test generated it first
        }
    }
    out
}

/// A `SourceModel` for a fixture repo built from the files on disk (no HTTP): shards sorted by
/// path, tensor names sorted within each shard, first occurrence of a name kept.
pub fn fixture_source(repo: &str) -> crate::source::SourceModel {
    use crate::safetensors::Dtype;
    use crate::source::{Shard, SourceModel, SourceTensor};
    let dir = fixture_shard_dir(repo);
    let mut paths: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    paths.sort();
    let mut shards = Vec::new();
    let mut tensors: Vec<SourceTensor> = Vec::new();
    for (si, path) in paths.iter().enumerate() {
        let bytes = std::fs::read(dir.join(path)).unwrap();
        let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap());
        let header: serde_json::Map<String, Json> = serde_json::from_slice(&bytes[8..8 + hlen as usize]).unwrap();
        let mut names: Vec<&String> = header.keys().filter(|k| *k != "__metadata__").collect();
        names.sort();
        for name in names {
            if tensors.iter().any(|t| &t.name == name) {
                continue;
            }
            let t = &header[name];
            let offs: Vec<u64> = t["data_offsets"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
            tensors.push(SourceTensor {
                name: name.clone(),
                dtype: Dtype::parse(t["dtype"].as_str().unwrap()).unwrap(),
                shape: t["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect(),
                shard: si,
                start: 8 + hlen + offs[0],
                len: offs[1] - offs[0],
            });
        }
        shards.push(Shard { path: path.clone(), size: bytes.len() as u64, sha256: None });
    }
    SourceModel { repo_id: repo.to_string(), commit: fake_commit(repo), files: fixture_files(repo), shards, tensors }
}

/// The data of source tensor `t` of a fixture widened to f32 (bf16 → f32 is a bit shift).
pub fn fixture_tensor_f32(repo: &str, src: &crate::source::SourceModel, t: usize) -> Vec<f32> {
    use crate::safetensors::Dtype;
    let st = &src.tensors[t];
    let bytes = std::fs::read(fixture_shard_dir(repo).join(&src.shards[st.shard].path)).unwrap();
    let data = &bytes[st.start as usize..(st.start + st.len) as usize];
    match st.dtype {
        Dtype::F32 => data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
        Dtype::BF16 => {
            data.chunks_exact(2).map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)).collect()
        }
        Dtype::F16 => data.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
        d => panic!("unsupported fixture dtype {d:?}"),
    }
}
