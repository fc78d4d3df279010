//! `get_vocab_base_pre`: the BPE pre-tokenizer is named by hashing the ids the tokenizer gives
//! for a fixed check text (converter-spec §6.2, hazard H5).

use sha2::{Digest, Sha256};

use super::hf::HfTokenizer;
use super::pre_table::PRE_TOKENIZER_HASHES;
use super::VocabError;

/// The reference's `chktxt` (350 code points).
pub(crate) const CHECK_TEXT: &str = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\u{1f680} (normal) \u{1f636}\u{200d}\u{1f32b}\u{fe0f} (multiple emojis concatenated) \u{2705} \u{1f999}\u{1f999} 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \u{1780}\u{17b6}\u{1793}\u{17cb}\u{178f}\u{17c2}\u{1796}\u{17b7}\u{179f}\u{17c1}\u{179f}\u{17a2}\u{17b6}\u{1785}\u{1f601} ?\u{6211}\u{60f3}\u{5728}apple\u{5de5}\u{4f5c}1314151\u{5929}\u{ff5e} ------======= \u{43d}\u{435}\u{449}\u{43e} \u{43d}\u{430} \u{411}\u{44a}\u{43b}\u{433}\u{430}\u{440}\u{441}\u{43a}\u{438} ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

/// `sha256(str(ids))` with Python's list repr (`[1, 2, 3]`).
pub(crate) fn hash_ids(ids: &[u32]) -> String {
    let repr = format!("[{}]", ids.iter().map(u32::to_string).collect::<Vec<_>>().join(", "));
    hex::encode(Sha256::digest(repr.as_bytes()))
}

/// The table's name for a hash; a duplicated hash resolves to its last entry, like the
/// reference's chain of independent `if`s.
pub(crate) fn pre_name_for_hash(chkhsh: &str) -> Option<&'static str> {
    PRE_TOKENIZER_HASHES.iter().rev().find(|(h, _)| *h == chkhsh).map(|(_, n)| *n)
}

/// The `tokenizer.ggml.pre` value for a tokenizer (`UnknownPreTokenizer` when unlisted).
pub(crate) fn detect_pre_tokenizer(tok: &HfTokenizer) -> Result<&'static str, VocabError> {
    let ids = tok.encode(CHECK_TEXT, true)?;
    let chkhsh = hash_ids(&ids);
    tracing::debug!(%chkhsh, "pre-tokenizer fingerprint");
    pre_name_for_hash(&chkhsh).ok_or(VocabError::UnknownPreTokenizer(chkhsh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_text_matches_the_reference_digest() {
        assert_eq!(CHECK_TEXT.chars().count(), 350);
        assert_eq!(
            hex::encode(Sha256::digest(CHECK_TEXT.as_bytes())),
            "a36179c1e2b1cfcfbfad1dc779addad2ffc778201e4cf0d538bddeafa2c526da"
        );
    }

    #[test]
    fn ids_are_hashed_as_a_python_list_repr() {
        assert_eq!(hash_ids(&[1, 22]), hex::encode(Sha256::digest(b"[1, 22]")));
        assert_eq!(hash_ids(&[]), hex::encode(Sha256::digest(b"[]")));
    }

    #[test]
    fn table_has_all_entries_and_the_last_duplicate_wins() {
        assert_eq!(PRE_TOKENIZER_HASHES.len(), 97);
        let h = PRE_TOKENIZER_HASHES.iter().find(|(_, n)| *n == "bert-bge").map(|(h, _)| *h).unwrap();
        assert_eq!(pre_name_for_hash(h), Some("jina-v2-en"));
        assert_eq!(pre_name_for_hash("00"), None);
    }
}
