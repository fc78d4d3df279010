//! Tokenizer files → GGUF `tokenizer.*` KVs (converter-spec §6). To be completed.

/// Why a vocabulary cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum VocabError {
    /// A required file is absent (callers use this to fall back, as the reference does).
    #[error("{0} not found")]
    NotFound(String),
    #[error("{file}: {reason}")]
    Invalid { file: String, reason: String },
    #[error("BPE pre-tokenizer was not recognized (chkhsh {0})")]
    UnknownPreTokenizer(String),
}
