//! Tokenizer files → GGUF `tokenizer.*` KVs (converter-spec §6).
//!
//! Each `set_vocab_*` function is one of the reference's vocabulary paths; architectures
//! call them (with their own fallback chains) from `Architecture::set_vocab`.

mod bpe;
mod chat_template;
mod hf;
mod llama_hf;
mod phi3;
mod pre;
mod pre_table;
mod special;
mod spm;
mod wordpiece;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value as Json};

use crate::gguf::{KvMap, Value, ValueType};
use crate::source::RepoFiles;

pub use chat_template::ChatTemplate;
pub use special::SpecialVocab;

/// Why a vocabulary cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    /// A required file is absent (callers use this to fall back, as the reference does).
    #[error("{0} not found")]
    NotFound(String),
    /// The tokenizer is of another kind than this path handles (the reference's TypeError
    /// "Llama 3 must be converted with BpeVocab"); callers fall back.
    #[error("{0}")]
    WrongKind(String),
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
    #[error("BPE pre-tokenizer was not recognized (chkhsh {0}); this tokenizer is not supported")]
    UnknownPreTokenizer(String),
}

impl VocabError {
    pub(crate) fn invalid(file: &str, reason: impl std::fmt::Display) -> Self {
        VocabError::Invalid { file: file.to_string(), reason: reason.to_string() }
    }
}

/// What the vocabulary functions read.
pub struct VocabInput<'a> {
    /// The repo's small files (tokenizer.json, tokenizer_config.json, tokenizer.model, ...).
    pub files: &'a RepoFiles,
    /// Hyper-parameters as the architecture sees them (for `vocab_size`).
    pub hparams: &'a Map<String, Json>,
}

/// Facts about the written vocabulary that architectures need afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VocabInfo {
    /// Length of `tokenizer.ggml.tokens`.
    pub n_tokens: usize,
    /// For tokenizer.json vocabularies: `len(model.vocab) + len(added_tokens)` (Gemma 3's
    /// embedding truncation uses it).
    pub n_vocab_real: Option<usize>,
}

/// GGUF token-type codes (`gguf.TokenType`).
pub(crate) mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// `_set_vocab_gpt2`: BPE from tokenizer.json, `tokenizer.ggml.pre` from the check-text hash.
pub fn set_vocab_gpt2(inp: &VocabInput, kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    bpe::set_vocab_gpt2(inp, kv)
}

/// `_set_vocab_sentencepiece`: needs tokenizer.model (`NotFound` otherwise).
pub fn set_vocab_sentencepiece(inp: &VocabInput, kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    spm::set_vocab_sentencepiece(inp, kv)
}

/// `_set_vocab_llama_hf`: byte-fallback BPE tokenizer.json (`NotFound`/`WrongKind` otherwise).
pub fn set_vocab_llama_hf(inp: &VocabInput, kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    llama_hf::set_vocab_llama_hf(inp, kv)
}

/// BERT's WordPiece vocabulary (tokenizer.json, or vocab.txt alone), written "phantom space" style.
pub fn set_vocab_bert(inp: &VocabInput, kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    wordpiece::set_vocab_bert(inp, kv)
}

/// Phi-3's bespoke SentencePiece loader (converter-spec §5.10).
pub fn set_vocab_phi3(inp: &VocabInput, kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    phi3::set_vocab_phi3(inp, kv)
}

/// A second `SpecialVocab` pass with extra token types and fixed ids (Gemma's eot=107,
/// CodeLlama's), as `(type, id)` pairs; only types with a writer (eot, eom...) produce KVs.
/// `clear_chat_template` mirrors the reference clearing it so it is not written twice.
pub fn add_extra_special_tokens(
    inp: &VocabInput,
    kv: &mut KvMap,
    types: &[(&str, u32)],
    n_vocab: usize,
) -> Result<(), VocabError> {
    // The reference builds this SpecialVocab without n_vocab; `n_vocab` only bounds the fixed ids
    // the caller passes, which the reference never range-checks either.
    let _ = n_vocab;
    let type_names: Vec<String> = types.iter().map(|(t, _)| t.to_string()).collect();
    let mut sv = SpecialVocab::load(inp.files, false, Some(type_names), None)?;
    for (typ, id) in types {
        sv.set_special_token(typ, i64::from(*id))?;
    }
    sv.chat_template = None;
    sv.add_to_gguf(kv);
    Ok(())
}

/// Parses a repo JSON file: `None` when absent, `Invalid` when malformed.
pub(crate) fn read_json(files: &RepoFiles, name: &str) -> Result<Option<Json>, VocabError> {
    match files.json(name) {
        None => Ok(None),
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(e)) => Err(VocabError::invalid(name, e)),
    }
}

/// `TextModel.does_token_look_special`: added tokens that ought to be CONTROL even when
/// their config does not mark them special.
pub(crate) fn does_token_look_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

/// `hparams["vocab_size"]` when it is a non-negative integer.
pub(crate) fn hparam_usize(hparams: &Map<String, Json>, key: &str) -> Option<usize> {
    hparams.get(key).and_then(Json::as_u64).and_then(|v| usize::try_from(v).ok())
}

/// The token list, types and optional scores, written as the reference's writer calls do.
pub(crate) struct TokenArrays {
    pub tokens: Vec<Vec<u8>>,
    pub scores: Option<Vec<f32>>,
    pub types: Vec<i32>,
}

impl TokenArrays {
    /// `add_tokenizer_model`, `add_tokenizer_pre`, `add_token_list`, `add_token_scores`, `add_token_types`.
    pub(crate) fn write(self, kv: &mut KvMap, model: &str, pre: &str) {
        kv.set("tokenizer.ggml.model", Value::str(model));
        kv.set("tokenizer.ggml.pre", Value::str(pre));
        kv.set(
            "tokenizer.ggml.tokens",
            Value::Array(ValueType::String, self.tokens.into_iter().map(Value::String).collect()),
        );
        if let Some(scores) = self.scores {
            kv.set("tokenizer.ggml.scores", Value::Array(ValueType::F32, scores.into_iter().map(Value::F32).collect()));
        }
        kv.set(
            "tokenizer.ggml.token_type",
            Value::Array(ValueType::I32, self.types.into_iter().map(Value::I32).collect()),
        );
    }
}

/// A sentencepiece-style token list pre-filled with `[PAD{i}]` placeholders (score −10000, UNUSED).
pub(crate) fn padded_spm_arrays(n: usize) -> TokenArrays {
    TokenArrays {
        tokens: (0..n).map(|i| format!("[PAD{i}]").into_bytes()).collect(),
        scores: Some(vec![-10000.0; n]),
        types: vec![token_type::UNUSED; n],
    }
}
