//! The families beyond the public fixtures (Qwen3, Llama 3.x with llama3 rope, GPT-NeoX, Qwen3-MoE, Qwen2-MoE,
//! OLMo-2, Granite, Granite MoE, StableLM, StarCoder2, Gemma, Gemma 2, DeepSeek V3, DeepSeek V2) and the
//! source-dtype paths (f32, f16, mixed weights):
//! each breadth fixture in each output type, served by the fake Hub and pulled through the
//! engine, is byte-identical to the reference converter's file.

mod support;

use std::sync::Arc;

use ggufs::plan::OutType;
use ggufs::remote::open_file;
use support::fixtures::{assemble_breadth_root, breadth_golden, BREADTH_FIXTURES};
use support::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn every_breadth_fixture_and_type_is_byte_identical_to_the_reference() {
    let root = assemble_breadth_root();
    let hub = start_hub_at(root.path());
    let rt = runtime();
    let client = Arc::new(client(&hub));
    let mut failures = Vec::new();
    let mut checked = 0;
    // GGUFS_BREADTH_ONLY=repo,repo narrows a local run while a new fixture is being made
    let only = std::env::var("GGUFS_BREADTH_ONLY").ok();
    let selected: Vec<&str> = BREADTH_FIXTURES
        .into_iter()
        .filter(|r| only.as_deref().is_none_or(|o| o.split(',').any(|x| x == *r)))
        .collect();
    for repo in selected.iter().copied() {
        for t in OutType::ALL {
            let g = breadth_golden(repo, t.name());
            assert_eq!(g["hub"]["commit_sha"].as_str(), Some(fake_commit(repo).as_str()), "{repo}");
            let f =
                rt.block_on(open_file(client.clone(), repo, "main", t)).unwrap_or_else(|e| panic!("{repo} {t:?}: {e}"));
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("out.gguf");
            rt.block_on(ggufs::pull::pull_to(&f, &dest, |_| {})).expect("pull");
            let bytes = std::fs::read(&dest).unwrap();
            checked += 1;
            if sha256_hex(&bytes) != g["file"]["sha256"].as_str().unwrap() {
                failures.push(format!("{repo} {}: {}", t.name(), first_difference(&bytes, &g)));
            }
        }
    }
    assert_eq!(checked, selected.len() * 4);
    assert!(checked > 0, "GGUFS_BREADTH_ONLY selected no fixture");
    assert!(failures.is_empty(), "not byte-identical:\n{}", failures.join("\n"));
}
