//! BERT's WordPiece vocabulary (`BertModel.set_vocab`): `get_vocab_base` over the tokenizer
//! transformers builds, then the "phantom space" rewrite (`##x` → `x`, other non-control tokens
//! `▁x`). A repo without tokenizer.json has only vocab.txt; transformers then converts the slow
//! `BertTokenizer` to a fast one, which we rebuild here as the equivalent tokenizer.json.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use tokenizers::Tokenizer;

use super::bpe::get_vocab_base;
use super::hf::HfTokenizer;
use super::special::SpecialVocab;
use super::token_type::CONTROL;
use super::{hparam_usize, read_json, TokenArrays, VocabError, VocabInfo, VocabInput};
use crate::gguf::{KvMap, Value};

/// `BertTokenizer`'s special-token attributes and their defaults, in `SPECIAL_TOKENS_ATTRIBUTES` order.
const SPECIAL_DEFAULTS: [(&str, &str); 5] = [
    ("unk_token", "[UNK]"),
    ("sep_token", "[SEP]"),
    ("pad_token", "[PAD]"),
    ("cls_token", "[CLS]"),
    ("mask_token", "[MASK]"),
];

/// `BertModel.set_vocab`.
pub(super) fn set_vocab_bert(inp: &VocabInput, kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    let has_json = inp.files.contains("tokenizer.json");
    let hf = if has_json { HfTokenizer::load(inp.files)? } else { from_vocab_txt(inp)? };
    let (tokens, types, pre) = get_vocab_base(inp, &hf)?;
    let n_tokens = tokens.len();
    let type_count = hparam_usize(inp.hparams, "type_vocab_size").unwrap_or(1);
    let type_count = u32::try_from(type_count).map_err(|_| VocabError::invalid("config.json", "type_vocab_size"))?;
    kv.set("tokenizer.ggml.token_type_count", Value::U32(type_count));
    let tokens = tokens.into_iter().zip(&types).map(|(t, ty)| phantom(t, *ty).into_bytes()).collect();
    TokenArrays { tokens, scores: None, types }.write(kv, "bert", pre);
    // The reference's SpecialVocab reads the repo's own files: no tokenizer.json when we synthesized it.
    SpecialVocab::load(inp.files, false, None, Some(n_tokens))?.add_to_gguf(kv);
    Ok(VocabInfo { n_tokens, n_vocab_real: None })
}

/// llama.cpp's BERT tokenizer marks word starts with `▁` instead of marking continuations with `##`.
fn phantom(token: String, token_type: i32) -> String {
    if token_type == CONTROL {
        return token;
    }
    match token.strip_prefix("##") {
        Some(rest) => rest.to_string(),
        None => format!("\u{2581}{token}"),
    }
}

/// The fast tokenizer transformers converts from vocab.txt + tokenizer_config.json.
fn from_vocab_txt(inp: &VocabInput) -> Result<HfTokenizer, VocabError> {
    let bytes = inp.files.get("vocab.txt").ok_or_else(|| VocabError::NotFound("tokenizer.json or vocab.txt".into()))?;
    let text = std::str::from_utf8(bytes).map_err(|e| VocabError::invalid("vocab.txt", e))?;
    let config = match read_json(inp.files, "tokenizer_config.json")? {
        Some(Json::Object(o)) => o,
        _ => Map::new(),
    };
    let vocab = load_vocab(text);
    let json = tokenizer_json(inp, &config, &vocab)?;
    let tokenizer = Tokenizer::deserialize(&json).map_err(|e| VocabError::invalid("vocab.txt", e))?;
    Ok(HfTokenizer { json, tokenizer, config })
}

/// `load_vocab`: one token per line (Python universal newlines); a repeated token keeps its last line.
fn load_vocab(text: &str) -> HashMap<String, u32> {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut vocab = HashMap::new();
    for (i, line) in text.split_terminator('\n').enumerate() {
        if let Ok(id) = u32::try_from(i) {
            vocab.insert(line.to_string(), id);
        }
    }
    vocab
}

fn flag(config: &Map<String, Json>, key: &str, default: bool) -> bool {
    config.get(key).and_then(Json::as_bool).unwrap_or(default)
}

/// `BertConverter.converted()` as tokenizer.json: BertNormalizer, BertPreTokenizer, WordPiece,
/// `[CLS] $A [SEP]`, with the special tokens (and `added_tokens_decoder`) as added tokens.
fn tokenizer_json(
    inp: &VocabInput,
    config: &Map<String, Json>,
    vocab: &HashMap<String, u32>,
) -> Result<Json, VocabError> {
    let mut special = HashMap::new();
    for (key, default) in SPECIAL_DEFAULTS {
        let content = HfTokenizer::special_content(inp.files, config, key)?.unwrap_or_else(|| default.to_string());
        special.insert(key, content);
    }
    let id_of = |key: &str| -> Result<(String, u32), VocabError> {
        let content = special.get(key).cloned().unwrap_or_default();
        let id = vocab.get(&content).copied().ok_or_else(|| {
            VocabError::invalid("vocab.txt", format!("special token {content:?} ({key}) is not in the vocabulary"))
        })?;
        Ok((content, id))
    };
    let mut added: Vec<Json> = Vec::new();
    for (key, _) in SPECIAL_DEFAULTS {
        let (content, id) = id_of(key)?;
        added.push(added_token(id, &content, true, false));
    }
    if let Some(Json::Object(decoder)) = config.get("added_tokens_decoder") {
        for (id, t) in decoder {
            let id: u32 =
                id.parse().map_err(|_| VocabError::invalid("tokenizer_config.json", "added_tokens_decoder id"))?;
            let content = t.get("content").and_then(Json::as_str).unwrap_or_default();
            if added.iter().any(|a| a["content"] == content) {
                continue;
            }
            let special = t.get("special").and_then(Json::as_bool).unwrap_or(false);
            let normalized = t.get("normalized").and_then(Json::as_bool).unwrap_or(!special);
            added.push(added_token(id, content, special, normalized));
        }
    }
    let (cls, cls_id) = id_of("cls_token")?;
    let (sep, sep_id) = id_of("sep_token")?;
    let (unk, _) = id_of("unk_token")?;
    let strip_accents = config.get("strip_accents").cloned().unwrap_or(Json::Null);
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {
            "type": "BertNormalizer",
            "clean_text": true,
            "handle_chinese_chars": flag(config, "tokenize_chinese_chars", true),
            "strip_accents": strip_accents,
            "lowercase": flag(config, "do_lower_case", true),
        },
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {"type": "BertProcessing", "sep": [sep, sep_id], "cls": [cls, cls_id]},
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": true},
        "model": {
            "type": "WordPiece",
            "unk_token": unk,
            "continuing_subword_prefix": "##",
            "max_input_chars_per_word": 100,
            "vocab": vocab,
        },
    }))
}

fn added_token(id: u32, content: &str, special: bool, normalized: bool) -> Json {
    json!({"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false,
           "normalized": normalized, "special": special})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phantom_marks_word_starts_and_keeps_control_tokens() {
        assert_eq!(phantom("##ing".into(), 1), "ing");
        assert_eq!(phantom("the".into(), 1), "\u{2581}the");
        assert_eq!(phantom("[CLS]".into(), CONTROL), "[CLS]");
    }

    #[test]
    fn vocab_lines_are_ids_and_a_repeated_token_keeps_its_last_line() {
        let v = load_vocab("[PAD]\r\na\nb\na\n");
        assert_eq!(v.get("[PAD]"), Some(&0));
        assert_eq!(v.get("a"), Some(&3));
        assert_eq!(v.len(), 3);
    }

    /// The synthetic WordPiece vocabulary written by scripts/fixtures/make_wordpiece_vocab.py.
    fn synthetic_files() -> crate::source::RepoFiles {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tokenizers/ggufs-fixtures/wordpiece-1k");
        let mut files = crate::source::RepoFiles::new();
        for name in ["vocab.txt", "tokenizer_config.json"] {
            let bytes = std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            files.insert(name, bytes);
        }
        files
    }

    #[test]
    fn vocab_txt_alone_builds_a_lowercasing_wordpiece_tokenizer() {
        let files = synthetic_files();
        let hparams = Map::new();
        let hf = from_vocab_txt(&VocabInput { files: &files, hparams: &hparams }).expect("tokenizer");
        // [CLS] hello ##s [SEP]: lower-cased, split into a word and a continuation piece, specials at BERT's ids.
        let ids = hf.encode("Hellos", true).expect("encode");
        let cls = hf.tokenizer.token_to_id("[CLS]");
        let sep = hf.tokenizer.token_to_id("[SEP]");
        assert_eq!((cls, sep), (Some(101), Some(102)));
        let hello = hf.tokenizer.token_to_id("hello").expect("hello");
        let s = hf.tokenizer.token_to_id("##s").expect("##s");
        assert_eq!(ids, vec![101, hello, s, 102]);
    }

    #[test]
    fn an_unlisted_wordpiece_pre_tokenizer_is_refused_like_the_reference() {
        // The reference converter raises "BPE pre-tokenizer was not recognized" for this vocabulary
        // (its chkhsh is in no list); so must we, rather than guess a pre-tokenizer name.
        let files = synthetic_files();
        let mut hparams = Map::new();
        hparams.insert("vocab_size".into(), json!(896));
        let mut kv = KvMap::default();
        let err = set_vocab_bert(&VocabInput { files: &files, hparams: &hparams }, &mut kv).expect_err("refused");
        assert!(matches!(err, VocabError::UnknownPreTokenizer(_)), "{err}");
    }
}
