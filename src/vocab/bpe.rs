//! `get_vocab_base` + `_set_vocab_gpt2`: GPT-2-style BPE vocabularies from tokenizer.json
//! (converter-spec §6.1).

use std::collections::{HashMap, HashSet};

use serde_json::Value as Json;

use super::hf::HfTokenizer;
use super::pre::detect_pre_tokenizer;
use super::special::SpecialVocab;
use super::token_type::{CONTROL, NORMAL, UNUSED, USER_DEFINED};
use super::{does_token_look_special, hparam_usize, TokenArrays, VocabError, VocabInfo, VocabInput};
use crate::gguf::KvMap;

/// `_set_vocab_gpt2`.
pub(super) fn set_vocab_gpt2(inp: &VocabInput, kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    let hf = HfTokenizer::load(inp.files)?;
    let (tokens, types, pre) = get_vocab_base(inp, &hf)?;
    let n_tokens = tokens.len();
    TokenArrays { tokens: tokens.into_iter().map(String::into_bytes).collect(), scores: None, types }
        .write(kv, "gpt2", pre);
    SpecialVocab::load_with(inp.files, Some(&hf.json), true, None, None)?.add_to_gguf(kv);
    Ok(VocabInfo { n_tokens, n_vocab_real: Some(json_vocab_real(&hf.json)) })
}

/// `len(model.vocab) + len(added_tokens)` of tokenizer.json (Gemma 3's embedding rows).
pub(super) fn json_vocab_real(json: &Json) -> usize {
    let count = |v: Option<&Json>| match v {
        Some(Json::Object(o)) => o.len(),
        Some(Json::Array(a)) => a.len(),
        _ => 0,
    };
    count(json.get("model").and_then(|m| m.get("vocab"))) + count(json.get("added_tokens"))
}

/// `get_vocab_base`: token strings and types for ids `0..vocab_size`, and the pre-tokenizer name.
pub(super) fn get_vocab_base(
    inp: &VocabInput,
    hf: &HfTokenizer,
) -> Result<(Vec<String>, Vec<i32>, &'static str), VocabError> {
    let vocab: HashMap<String, u32> = hf.tokenizer.get_vocab(true);
    let vocab_size = hparam_usize(inp.hparams, "vocab_size").unwrap_or(vocab.len());
    if let Some(max) = vocab.values().max() {
        if *max as usize >= vocab_size {
            return Err(VocabError::invalid(
                "tokenizer.json",
                format!("token id {max} is not below vocab_size {vocab_size}"),
            ));
        }
    }
    let pre = detect_pre_tokenizer(hf)?;

    let mut reverse: Vec<Option<String>> = vec![None; vocab_size];
    for (tok, id) in vocab {
        if let Some(slot) = reverse.get_mut(id as usize) {
            *slot = Some(tok);
        }
    }
    let decoder = hf.tokenizer.get_added_tokens_decoder();
    let added_contents: HashSet<&str> = decoder.values().map(|t| t.content.as_str()).collect();

    let mut tokens = Vec::with_capacity(vocab_size);
    let mut types = Vec::with_capacity(vocab_size);
    for (i, slot) in reverse.iter().enumerate() {
        let Some(token) = slot else {
            tokens.push(format!("[PAD{i}]"));
            types.push(UNUSED);
            continue;
        };
        if !added_contents.contains(token.as_str()) {
            tokens.push(token.clone());
            types.push(NORMAL);
            continue;
        }
        let added = decoder.get(&(i as u32)).ok_or_else(|| {
            VocabError::invalid("tokenizer.json", format!("added token {token:?} has no entry for id {i}"))
        })?;
        let mut token = token.clone();
        if !added.normalized {
            // H6: llama.cpp assumes CONTROL/USER_DEFINED tokens are pre-normalized.
            token = hf.decode(&hf.encode(&token, false)?)?;
        }
        if added.special || does_token_look_special(&token) {
            types.push(CONTROL);
        } else {
            token = token.replace('\u{2581}', " ");
            types.push(USER_DEFINED);
        }
        tokens.push(token);
    }
    Ok((tokens, types, pre))
}
