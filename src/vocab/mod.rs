//! Tokenizer files → GGUF `tokenizer.*` KVs (converter-spec §6).
//!
//! Each `set_vocab_*` function is one of the reference's vocabulary paths; architectures
//! call them (with their own fallback chains) from `Architecture::set_vocab`.

use serde_json::{Map, Value as Json};

use crate::gguf::KvMap;
use crate::source::RepoFiles;

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
    #[error("not implemented yet: {0}")]
    NotImplemented(&'static str),
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

/// `_set_vocab_gpt2`: BPE from tokenizer.json, `tokenizer.ggml.pre` from the check-text hash.
pub fn set_vocab_gpt2(_inp: &VocabInput, _kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    Err(VocabError::NotImplemented("gpt2 vocabulary"))
}

/// `_set_vocab_sentencepiece`: needs tokenizer.model (`NotFound` otherwise).
pub fn set_vocab_sentencepiece(
    _inp: &VocabInput,
    _kv: &mut KvMap,
) -> Result<VocabInfo, VocabError> {
    Err(VocabError::NotImplemented("sentencepiece vocabulary"))
}

/// `_set_vocab_llama_hf`: byte-fallback BPE tokenizer.json (`NotFound`/`WrongKind` otherwise).
pub fn set_vocab_llama_hf(_inp: &VocabInput, _kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    Err(VocabError::NotImplemented("llama-hf vocabulary"))
}

/// Phi-3's bespoke SentencePiece loader (converter-spec §5.10).
pub fn set_vocab_phi3(_inp: &VocabInput, _kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    Err(VocabError::NotImplemented("phi3 vocabulary"))
}

/// A second `SpecialVocab` pass with extra token types and fixed ids (Gemma's eot=107,
/// CodeLlama's), as `(type, id)` pairs; only types with a writer (eot, eom...) produce KVs.
/// `clear_chat_template` mirrors the reference clearing it so it is not written twice.
pub fn add_extra_special_tokens(
    _inp: &VocabInput,
    _kv: &mut KvMap,
    _types: &[(&str, u32)],
    _n_vocab: usize,
) -> Result<(), VocabError> {
    Err(VocabError::NotImplemented("extra special tokens"))
}
