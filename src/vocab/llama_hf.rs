//! `_set_vocab_llama_hf` / `LlamaHfVocab`: SentencePiece-converted byte-fallback BPE
//! tokenizer.json without tokenizer.model (converter-spec §6.4).

use serde_json::Value as Json;

use super::hf::{token_content, HfTokenizer};
use super::special::SpecialVocab;
use super::token_type::{BYTE, CONTROL, NORMAL, USER_DEFINED};
use super::{read_json, TokenArrays, VocabError, VocabInfo, VocabInput};
use crate::gguf::KvMap;
use crate::source::RepoFiles;

/// The special-token attributes transformers collects into `all_special_tokens`.
const SPECIAL_ATTRIBUTES: [&str; 7] =
    ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

/// The reference's pre-check: Llama-3-style BPE is `WrongKind`, anything else not a
/// byte-fallback BPE with a `Sequence` decoder is `NotFound`.
fn check_kind(json: &Json) -> Result<(), VocabError> {
    let model = json.get("model").ok_or_else(|| VocabError::invalid("tokenizer.json", "no model"))?;
    let is_bpe = model.get("type").and_then(Json::as_str) == Some("BPE");
    let flag = |k: &str, default: bool| model.get(k).and_then(Json::as_bool).unwrap_or(default);
    if is_bpe && flag("ignore_merges", false) && !flag("byte_fallback", true) {
        return Err(VocabError::WrongKind("Llama 3 must be converted with BpeVocab".into()));
    }
    let decoder_is_sequence =
        json.get("decoder").and_then(|d| d.get("type")).and_then(Json::as_str) == Some("Sequence");
    if !is_bpe || !flag("byte_fallback", false) || !decoder_is_sequence {
        return Err(VocabError::NotFound("Llama BPE tokenizer".into()));
    }
    Ok(())
}

/// `tokenizer.all_special_tokens`: special_tokens_map.json over tokenizer_config.json.
fn all_special_tokens(files: &RepoFiles, hf: &HfTokenizer) -> Result<Vec<String>, VocabError> {
    let map = read_json(files, "special_tokens_map.json")?.unwrap_or(Json::Null);
    let pick = |k: &str| map.get(k).filter(|v| !v.is_null()).or_else(|| hf.config.get(k).filter(|v| !v.is_null()));
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    for attr in SPECIAL_ATTRIBUTES {
        if let Some(c) = pick(attr).and_then(token_content) {
            push(c);
        }
    }
    if let Some(Json::Array(extra)) = pick("additional_special_tokens") {
        for c in extra.iter().filter_map(token_content) {
            push(c);
        }
    }
    Ok(out)
}

fn is_byte_token(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 6 && t.starts_with("<0x") && b[5] == b'>' && b[3].is_ascii_hexdigit() && b[4].is_ascii_hexdigit()
}

/// `_set_vocab_llama_hf`.
pub(super) fn set_vocab_llama_hf(inp: &VocabInput, kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    let raw = read_json(inp.files, "tokenizer.json")?.ok_or_else(|| VocabError::NotFound("tokenizer.json".into()))?;
    check_kind(&raw)?;
    let hf = HfTokenizer::load(inp.files)?;
    let base = hf.tokenizer.get_vocab_size(false);
    let vocab = hf.tokenizer.get_vocab(true);
    let unk = hf.tokenizer.token_to_id("<unk>");
    let special_ids: Vec<u32> =
        all_special_tokens(inp.files, &hf)?.iter().filter_map(|t| hf.tokenizer.token_to_id(t).or(unk)).collect();

    let mut reverse: Vec<Option<&str>> = vec![None; base];
    for (tok, id) in &vocab {
        if let Some(slot) = reverse.get_mut(*id as usize) {
            *slot = Some(tok.as_str());
        }
    }
    let mut arr = TokenArrays {
        tokens: Vec::with_capacity(base),
        scores: Some(Vec::with_capacity(base)),
        types: Vec::with_capacity(base),
    };
    for (id, tok) in reverse.iter().enumerate() {
        let tok = tok.ok_or_else(|| VocabError::invalid("tokenizer.json", format!("no token for id {id}")))?;
        let ty = if is_byte_token(tok) {
            BYTE
        } else if special_ids.contains(&(id as u32)) {
            CONTROL
        } else {
            NORMAL
        };
        arr.tokens.push(tok.as_bytes().to_vec());
        arr.types.push(ty);
    }
    let mut added: Vec<(u32, String)> = hf
        .tokenizer
        .get_added_tokens_decoder()
        .into_iter()
        .filter(|(id, _)| *id as usize >= base)
        .map(|(id, t)| (id, t.content))
        .collect();
    added.sort();
    let special_contents = all_special_tokens(inp.files, &hf)?;
    for (_, content) in added {
        let ty = if special_contents.contains(&content) { CONTROL } else { USER_DEFINED };
        arr.tokens.push(content.into_bytes());
        arr.types.push(ty);
    }
    arr.scores = Some(vec![-1000.0; arr.tokens.len()]);
    let n_tokens = arr.tokens.len();
    arr.write(kv, "llama", "default");
    SpecialVocab::load_with(inp.files, Some(&hf.json), false, None, Some(n_tokens))?.add_to_gguf(kv);
    Ok(VocabInfo { n_tokens, n_vocab_real: Some(n_tokens) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_tokens_are_recognized() {
        assert!(is_byte_token("<0x0A>"));
        assert!(is_byte_token("<0xfF>"));
        assert!(!is_byte_token("<0x0G>"));
        assert!(!is_byte_token("<0x0A>x"));
    }

    #[test]
    fn llama3_style_bpe_is_the_wrong_kind() {
        let j = serde_json::json!({"model": {"type": "BPE", "ignore_merges": true, "byte_fallback": false}});
        assert!(matches!(check_kind(&j), Err(VocabError::WrongKind(_))));
        let j = serde_json::json!({"model": {"type": "BPE"}, "decoder": {"type": "ByteLevel"}});
        assert!(matches!(check_kind(&j), Err(VocabError::NotFound(_))));
    }
}
