//! The breadth fixtures committed under `tests/fixtures/hub`: small files only, completed by
//! the corpus tokenizer files their `tokenizer-from.txt` names and, for synthetic fixtures, the
//! shards their `weights.json` describes. Assembled into a temp Hub root.

use std::path::{Path, PathBuf};

use super::shared_dir;

/// The breadth fixture repos (families beyond the seven public fixtures).
pub const BREADTH: [&str; 21] = [
    "Qwen/Qwen3-0.6B",
    "meta-llama/Llama-3.2-1B-Instruct",
    "EleutherAI/pythia-70m",
    "Qwen/Qwen3-30B-A3B",
    "Qwen/Qwen1.5-MoE-A2.7B",
    "TinyLlama/TinyLlama-1.1B-Chat-v0.6",
    "HuggingFaceTB/SmolLM2-360M-Instruct",
    "allenai/OLMo-2-1124-7B-Instruct",
    "ibm-granite/granite-3.1-2b-instruct",
    "ibm-granite/granite-3.1-1b-a400m-instruct",
    "stabilityai/stablelm-3b-4e1t",
    "bigcode/starcoder2-3b",
    "ggufs-fixtures/tinyllama-f32-weights",
    "ggufs-fixtures/tinyllama-f16-weights",
    "ggufs-fixtures/tinyllama-mixed-weights",
    "ggufs-fixtures/gemma-3-f16-weights",
    "google/gemma-2b",
    "google/gemma-2-2b-it",
    "deepseek-ai/DeepSeek-V3",
    "deepseek-ai/DeepSeek-V2-Lite",
    "meta-llama/Llama-4-Scout-17B-16E-Instruct",
];

const TOKENIZER_FILES: [&str; 7] = [
    "tokenizer.json",
    "tokenizer.model",
    "merges.txt",
    "vocab.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
];

/// This repo's `tests/fixtures`.
pub fn local_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A temp Hub root holding every breadth repo, complete (small files + corpus tokenizer files).
pub fn assemble_breadth_root() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for repo in BREADTH {
        assemble_repo(&local_fixtures().join("hub").join(repo), &tmp.path().join(repo));
    }
    tmp
}

fn assemble_repo(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    let entries = std::fs::read_dir(src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    for entry in entries {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().expect("file name").to_owned();
        if name != "tokenizer-from.txt" && name != ggufs_fakehub::synth::MANIFEST {
            std::fs::copy(&path, dst.join(&name)).expect("copy fixture file");
        }
    }
    if src.join(ggufs_fakehub::synth::MANIFEST).is_file() {
        ggufs_fakehub::synth::materialize(src, dst).unwrap_or_else(|e| panic!("{}: {e:#}", src.display()));
    }
    let from = std::fs::read_to_string(src.join("tokenizer-from.txt"))
        .unwrap_or_else(|e| panic!("{}/tokenizer-from.txt: {e}", src.display()));
    // Tokenizers the corpus lacks are committed under tests/fixtures/tokenizers (PROVENANCE-*.md).
    let mut corpus = shared_dir().join("corpus").join(from.trim());
    if !corpus.is_dir() {
        corpus = local_fixtures().join("tokenizers").join(from.trim());
    }
    let mut copied = 0;
    for f in TOKENIZER_FILES {
        if corpus.join(f).is_file() {
            std::fs::copy(corpus.join(f), dst.join(f)).expect("copy corpus file");
            copied += 1;
        }
    }
    assert!(copied > 0, "no tokenizer files in {}", corpus.display());
}

/// A breadth golden (`ggufs-golden/1`) for `repo` and file type `ty`.
pub fn breadth_golden(repo: &str, ty: &str) -> serde_json::Value {
    let p = local_fixtures().join("golden").join(repo).join(format!("{ty}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).expect("golden JSON")
}
