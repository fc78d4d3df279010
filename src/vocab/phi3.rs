//! Phi-3's own SentencePiece loader (converter-spec §5.10): like `_create_vocab_sentencepiece`
//! but added tokens from tokenizer_config.json and tokenizer.json are taken verbatim.

use serde_json::Value as Json;

use super::special::SpecialVocab;
use super::spm::{apply_added_tokens_json, decoder_entries, load_pieces};
use super::token_type::{CONTROL, USER_DEFINED};
use super::{hparam_usize, padded_spm_arrays, read_json, TokenArrays, VocabError, VocabInfo, VocabInput};
use crate::gguf::KvMap;

/// Sets one token; unlike the generic SPM path an id beyond the list is an error (the
/// reference raises IndexError).
fn put(arr: &mut TokenArrays, file: &str, id: u64, content: &str, special: bool) -> Result<(), VocabError> {
    let i = usize::try_from(id).ok().filter(|i| *i < arr.tokens.len());
    let i = i.ok_or_else(|| VocabError::invalid(file, format!("added token id {id} is beyond the vocabulary")))?;
    arr.tokens[i] = content.as_bytes().to_vec();
    arr.types[i] = if special { CONTROL } else { USER_DEFINED };
    if let Some(s) = arr.scores.as_mut() {
        s[i] = -1000.0;
    }
    Ok(())
}

/// Phi3MiniModel.set_vocab.
pub(super) fn set_vocab_phi3(inp: &VocabInput, kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    let config = read_json(inp.files, "tokenizer_config.json")?;
    if let Some(cfg) = &config {
        let class = cfg.get("tokenizer_class").ok_or_else(|| {
            VocabError::invalid("tokenizer_config.json", "no tokenizer_class (KeyError in the reference)")
        })?;
        if class.as_str() == Some("GPT2Tokenizer") {
            return super::set_vocab_gpt2(inp, kv);
        }
    }
    let pieces = load_pieces(inp.files)?;
    let vocab_size = hparam_usize(inp.hparams, "vocab_size").unwrap_or(pieces.len());
    if pieces.len() > vocab_size {
        return Err(VocabError::invalid(
            "tokenizer.model",
            format!("{} pieces exceed vocab_size {vocab_size}", pieces.len()),
        ));
    }
    let mut arr = padded_spm_arrays(vocab_size);
    let scores = arr.scores.get_or_insert_with(Vec::new);
    for (id, p) in pieces.iter().enumerate() {
        arr.tokens[id] = p.piece.clone();
        scores[id] = p.score;
        arr.types[id] = p.gguf_type();
    }
    apply_added_tokens_json(inp.files, &mut arr)?;
    if let Some(cfg) = &config {
        for (id, content, special) in decoder_entries(cfg)? {
            put(&mut arr, "tokenizer_config.json", id, &content, special)?;
        }
    }
    if let Some(tok) = read_json(inp.files, "tokenizer.json")? {
        for at in tok.get("added_tokens").and_then(Json::as_array).into_iter().flatten() {
            let bad = || VocabError::invalid("tokenizer.json", "bad added_tokens entry");
            let id = at.get("id").and_then(Json::as_u64).ok_or_else(bad)?;
            let content = at.get("content").and_then(Json::as_str).ok_or_else(bad)?;
            let special = at.get("special").is_some_and(|s| s.as_bool().unwrap_or(!s.is_null()));
            put(&mut arr, "tokenizer.json", id, content, special)?;
        }
    }
    let n_tokens = arr.tokens.len();
    arr.write(kv, "llama", "default");
    SpecialVocab::load(inp.files, false, None, Some(n_tokens))?.add_to_gguf(kv);
    Ok(VocabInfo { n_tokens, n_vocab_real: Some(n_tokens) })
}
