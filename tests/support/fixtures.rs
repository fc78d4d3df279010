//! The breadth fixtures committed under `tests/fixtures/hub`: small files only, completed by
//! the corpus tokenizer files their `tokenizer-from.txt` names and, for synthetic fixtures, the
//! shards their `weights.json` describes. Assembled into a temp Hub root.

use std::path::{Path, PathBuf};

use super::shared_dir;

include!("../fixtures/breadth_fixtures.rs");

/// This repo's `tests/fixtures`.
pub fn local_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A temp Hub root holding every breadth repo, complete (small files + corpus tokenizer files).
pub fn assemble_breadth_root() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tempdir");
    for repo in BREADTH_FIXTURES {
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
