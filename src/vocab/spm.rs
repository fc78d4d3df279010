//! SentencePiece `tokenizer.model` (a protobuf `ModelProto`) read directly, and
//! `_set_vocab_sentencepiece` (converter-spec §6.3).

use serde_json::Value as Json;

use super::special::SpecialVocab;
use super::token_type::{BYTE, CONTROL, NORMAL, UNKNOWN, UNUSED, USER_DEFINED};
use super::{
    does_token_look_special, hparam_usize, padded_spm_arrays, read_json, TokenArrays, VocabError, VocabInfo, VocabInput,
};
use crate::gguf::KvMap;
use crate::source::RepoFiles;

const FILE: &str = "tokenizer.model";

/// One `SentencePiece` entry of the model.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Piece {
    pub piece: Vec<u8>,
    pub score: f32,
    /// SentencePiece type: NORMAL=1, UNKNOWN=2, CONTROL=3, USER_DEFINED=4, UNUSED=5, BYTE=6.
    pub kind: u64,
}

impl Piece {
    /// The GGUF type with the reference's priority (unknown > control > unused > byte > normal);
    /// user-defined pieces become NORMAL.
    pub(crate) fn gguf_type(&self) -> i32 {
        match self.kind {
            2 => UNKNOWN,
            3 => CONTROL,
            5 => UNUSED,
            6 => BYTE,
            _ => NORMAL,
        }
    }
}

/// A bounds-checked protobuf wire-format reader.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn malformed(what: &str) -> VocabError {
    VocabError::invalid(FILE, format!("malformed protobuf: {what}"))
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn varint(&mut self) -> Result<u64, VocabError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.pos).ok_or_else(|| malformed("truncated varint"))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed("varint too long"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], VocabError> {
        let end =
            self.pos.checked_add(n).filter(|e| *e <= self.buf.len()).ok_or_else(|| malformed("truncated field"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next `(field number, wire type)`.
    fn key(&mut self) -> Result<(u64, u8), VocabError> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }

    fn bytes(&mut self) -> Result<&'a [u8], VocabError> {
        let n = usize::try_from(self.varint()?).map_err(|_| malformed("length too large"))?;
        self.take(n)
    }

    fn fixed32(&mut self) -> Result<[u8; 4], VocabError> {
        let s = self.take(4)?;
        Ok([s[0], s[1], s[2], s[3]])
    }

    fn skip(&mut self, wire: u8) -> Result<(), VocabError> {
        match wire {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.bytes().map(drop),
            5 => self.take(4).map(drop),
            _ => Err(malformed("unsupported wire type")),
        }
    }
}

/// The pieces of a `ModelProto` (field 1), in id order.
pub(crate) fn parse_model(buf: &[u8]) -> Result<Vec<Piece>, VocabError> {
    let mut r = Reader::new(buf);
    let mut pieces = Vec::new();
    while !r.done() {
        match r.key()? {
            (1, 2) => pieces.push(parse_piece(r.bytes()?)?),
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(pieces)
}

fn parse_piece(buf: &[u8]) -> Result<Piece, VocabError> {
    let mut r = Reader::new(buf);
    let mut p = Piece { piece: Vec::new(), score: 0.0, kind: 1 };
    while !r.done() {
        match r.key()? {
            (1, 2) => p.piece = r.bytes()?.to_vec(),
            (2, 5) => p.score = f32::from_le_bytes(r.fixed32()?),
            (3, 0) => p.kind = r.varint()?,
            (_, wire) => r.skip(wire)?,
        }
    }
    Ok(p)
}

/// tokenizer.model's pieces (`NotFound` when the repo has none).
pub(crate) fn load_pieces(files: &RepoFiles) -> Result<Vec<Piece>, VocabError> {
    let buf = files.get(FILE).ok_or_else(|| VocabError::NotFound(FILE.into()))?;
    parse_model(buf)
}

/// `_create_vocab_sentencepiece`: tokens, scores and types, padded to the model's vocab size.
pub(crate) fn create_vocab_sentencepiece(inp: &VocabInput) -> Result<TokenArrays, VocabError> {
    let pieces = load_pieces(inp.files)?;
    let vocab_size = ["vocab_size_per_layer_input", "vocab_size"]
        .iter()
        .find(|k| inp.hparams.contains_key(**k))
        .and_then(|k| hparam_usize(inp.hparams, k))
        .filter(|n| *n > 0)
        .unwrap_or(pieces.len());
    let mut arr = padded_spm_arrays(vocab_size);
    let scores = arr.scores.get_or_insert_with(Vec::new);
    for (id, p) in pieces.iter().enumerate().take(vocab_size) {
        arr.tokens[id] = p.piece.clone();
        scores[id] = p.score;
        arr.types[id] = p.gguf_type();
    }
    if pieces.len() > vocab_size {
        tracing::warn!(vocab_size, "ignoring SentencePiece tokens beyond vocab_size");
    }
    apply_added_tokens_json(inp.files, &mut arr)?;
    apply_added_tokens_decoder(inp.files, &mut arr)?;
    Ok(arr)
}

/// added_tokens.json entries inside the vocabulary become USER_DEFINED (−1000).
pub(crate) fn apply_added_tokens_json(files: &RepoFiles, arr: &mut TokenArrays) -> Result<(), VocabError> {
    let Some(Json::Object(added)) = read_json(files, "added_tokens.json")? else {
        return Ok(());
    };
    for (content, id) in added {
        let id =
            id.as_u64().ok_or_else(|| VocabError::invalid("added_tokens.json", format!("bad id for {content:?}")))?;
        set_token(arr, id, content.into_bytes(), USER_DEFINED);
    }
    Ok(())
}

/// Writes one token when `id` is inside the list (the reference ignores the others).
fn set_token(arr: &mut TokenArrays, id: u64, token: Vec<u8>, ty: i32) {
    let Ok(i) = usize::try_from(id) else { return };
    if i >= arr.tokens.len() {
        tracing::warn!(id, "ignoring added token: id is out of range");
        return;
    }
    arr.tokens[i] = token;
    arr.types[i] = ty;
    if let Some(s) = arr.scores.as_mut() {
        s[i] = -1000.0;
    }
}

/// An `added_tokens_decoder` entry: `(id, content, special)`.
pub(crate) fn decoder_entries(config: &Json) -> Result<Vec<(u64, String, bool)>, VocabError> {
    let Some(Json::Object(dec)) = config.get("added_tokens_decoder") else {
        return Ok(Vec::new());
    };
    let bad = |k: &str| VocabError::invalid("tokenizer_config.json", format!("bad added_tokens_decoder entry {k:?}"));
    dec.iter()
        .map(|(k, v)| {
            let id: u64 = k.trim().parse().map_err(|_| bad(k))?;
            let content = v.get("content").and_then(Json::as_str).ok_or_else(|| bad(k))?;
            let special = v.get("special").is_some_and(|s| s.as_bool().unwrap_or(!s.is_null()));
            Ok((id, content.to_string(), special))
        })
        .collect()
}

fn apply_added_tokens_decoder(files: &RepoFiles, arr: &mut TokenArrays) -> Result<(), VocabError> {
    let Some(config) = read_json(files, "tokenizer_config.json")? else {
        return Ok(());
    };
    for (id, content, special) in decoder_entries(&config)? {
        if special || does_token_look_special(&content) {
            set_token(arr, id, content.into_bytes(), CONTROL);
        } else {
            set_token(arr, id, content.replace('\u{2581}', " ").into_bytes(), USER_DEFINED);
        }
    }
    Ok(())
}

/// `_set_vocab_sentencepiece`.
pub(super) fn set_vocab_sentencepiece(inp: &VocabInput, kv: &mut KvMap) -> Result<VocabInfo, VocabError> {
    let arr = create_vocab_sentencepiece(inp)?;
    let n_tokens = arr.tokens.len();
    arr.write(kv, "llama", "default");
    SpecialVocab::load(inp.files, false, None, Some(n_tokens))?.add_to_gguf(kv);
    Ok(VocabInfo { n_tokens, n_vocab_real: Some(n_tokens) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece_bytes(piece: &str, score: f32, kind: Option<u8>) -> Vec<u8> {
        let mut b = vec![0x0a, piece.len() as u8];
        b.extend_from_slice(piece.as_bytes());
        b.push(0x15);
        b.extend_from_slice(&score.to_le_bytes());
        if let Some(k) = kind {
            b.extend_from_slice(&[0x18, k]);
        }
        b
    }

    #[test]
    fn parses_pieces_and_skips_other_fields() {
        let mut model = Vec::new();
        for (p, s, k) in [("<unk>", 0.0, Some(2)), ("\u{2581}a", -1.5, None), ("<0x0A>", 0.0, Some(6))] {
            let inner = piece_bytes(p, s, k);
            model.push(0x0a);
            model.push(inner.len() as u8);
            model.extend(inner);
        }
        model.extend_from_slice(&[0x12, 0x02, 0x08, 0x01]); // trainer_spec, skipped
        let pieces = parse_model(&model).unwrap();
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[1].piece, "\u{2581}a".as_bytes());
        assert_eq!(pieces[1].score, -1.5);
        assert_eq!(pieces.iter().map(Piece::gguf_type).collect::<Vec<_>>(), vec![UNKNOWN, NORMAL, BYTE]);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        assert!(parse_model(&[0x0a, 0x10, 0x0a]).is_err());
        assert!(parse_model(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]).is_err());
        assert!(parse_model(&[0x0b]).is_err());
    }

    #[test]
    fn user_defined_pieces_become_normal() {
        assert_eq!(Piece { piece: vec![], score: 0.0, kind: 4 }.gguf_type(), NORMAL);
        assert_eq!(Piece { piece: vec![], score: 0.0, kind: 5 }.gguf_type(), UNUSED);
        assert_eq!(Piece { piece: vec![], score: 0.0, kind: 3 }.gguf_type(), CONTROL);
    }
}
