//! Fixture tests: each fixture's tokenizer block, built the way its architecture builds it,
//! equals the reference's golden KVs.

use serde_json::{Map, Value as Json};

use super::*;
use crate::gguf::{KvMap, Value};
use crate::testutil::{assert_kvs_match, fixture_files, golden};

fn hparams(files: &RepoFiles) -> Map<String, Json> {
    match files.json("config.json") {
        Some(Ok(Json::Object(o))) => o,
        other => panic!("config.json: {other:?}"),
    }
}

/// LlamaModel.set_vocab (no tekken/mistral-format/HybridDNA handling).
fn llama_chain(inp: &VocabInput, kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    if let Some(Json::Bool(b)) =
        read_json(inp.files, "tokenizer_config.json")?.as_ref().and_then(|c| c.get("add_prefix_space"))
    {
        kv.set("tokenizer.ggml.add_space_prefix", Value::Bool(*b));
    }
    let info = match set_vocab_sentencepiece(inp, kv) {
        Err(VocabError::NotFound(_)) => match set_vocab_llama_hf(inp, kv) {
            Err(VocabError::NotFound(_) | VocabError::WrongKind(_)) => set_vocab_gpt2(inp, kv)?,
            other => other?,
        },
        other => other?,
    };
    let vocab_size = inp.hparams.get("vocab_size").and_then(Json::as_u64).unwrap_or(32000);
    if vocab_size == 32016 {
        add_extra_special_tokens(
            inp,
            kv,
            &[("prefix", 32007), ("suffix", 32008), ("middle", 32009), ("eot", 32010)],
            info.n_tokens,
        )?;
    }
    if vocab_size == 49152 {
        kv.set("tokenizer.ggml.add_bos_token", Value::Bool(false));
    }
    Ok(info)
}

/// Qwen2Model.set_vocab.
fn qwen2_chain(inp: &VocabInput, kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    match set_vocab_sentencepiece(inp, kv) {
        Err(VocabError::NotFound(_)) => set_vocab_gpt2(inp, kv),
        other => other,
    }
}

/// Gemma3Model.set_vocab.
fn gemma3_chain(inp: &VocabInput, kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    if inp.files.contains("tokenizer.model") {
        let info = set_vocab_sentencepiece(inp, kv)?;
        kv.set("tokenizer.ggml.add_space_prefix", Value::Bool(false));
        Ok(info)
    } else {
        set_vocab_gpt2(inp, kv)
    }
}

fn check_fixture(repo: &str, chain: fn(&VocabInput, &mut KvMap) -> Result<VocabInfo, VocabError>) -> VocabInfo {
    let files = fixture_files(repo);
    let hp = hparams(&files);
    let inp = VocabInput { files: &files, hparams: &hp };
    let mut kv = KvMap::new();
    let start = std::time::Instant::now();
    let info = chain(&inp, &mut kv).unwrap_or_else(|e| panic!("{repo}: {e}"));
    eprintln!("{repo}: vocab built in {:?}", start.elapsed());
    assert_kvs_match(&kv, &golden(repo, "F16"), |k| k.starts_with("tokenizer."));
    info
}

#[test]
fn smollm2_llama_chain_falls_back_to_gpt2() {
    let info = check_fixture("HuggingFaceTB/SmolLM2-135M-Instruct", llama_chain);
    assert_eq!(info.n_tokens, 49152);
}

#[test]
fn qwen25_uses_gpt2() {
    check_fixture("Qwen/Qwen2.5-0.5B-Instruct", qwen2_chain);
}

#[test]
fn mistral_v03_uses_sentencepiece() {
    check_fixture("mistralai/Mistral-7B-Instruct-v0.3", llama_chain);
}

#[test]
fn phi35_bespoke_loader() {
    check_fixture("microsoft/Phi-3.5-mini-instruct", set_vocab_phi3);
}

#[test]
fn gpt2_vocab() {
    check_fixture("openai-community/gpt2", set_vocab_gpt2);
}

#[test]
fn mixtral_uses_llama_hf() {
    check_fixture("mistralai/Mixtral-8x7B-v0.1", llama_chain);
}

#[test]
fn gemma3_without_tokenizer_model_uses_gpt2() {
    let info = check_fixture("google/gemma-3-1b-it", gemma3_chain);
    // The reference counts model.vocab + added_tokens even where they overlap.
    assert_eq!(info.n_vocab_real, Some(262144 + 6415));
}

#[test]
fn tokens_that_look_special() {
    for t in ["<pad>", "<|im_end|>", "<\u{ff5c}x\u{ff5c}>", "<unused12>", "[@BOS@]"] {
        assert!(does_token_look_special(t), "{t}");
    }
    for t in ["<s>", "<|x", "pad", "<unused"] {
        assert!(!does_token_look_special(t), "{t}");
    }
}
