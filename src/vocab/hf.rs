//! tokenizer.json loaded the way transformers' `AutoTokenizer` presents it to the reference:
//! the raw JSON (for vocab/added tokens/merges) plus an HF `tokenizers` instance for encoding,
//! with the post-processor rewrite that Llama/Gemma fast tokenizers apply at load time.

use serde::Deserialize;
use serde_json::{json, Map, Value as Json};
use tokenizers::Tokenizer;

use super::{read_json, VocabError};
use crate::source::RepoFiles;

/// A loaded tokenizer.json with the tokenizer_config.json that shapes its behaviour.
pub(crate) struct HfTokenizer {
    /// tokenizer.json as JSON.
    pub json: Json,
    /// The executable tokenizer (post-processor as transformers would set it).
    pub tokenizer: Tokenizer,
    /// tokenizer_config.json (empty when absent).
    pub config: Map<String, Json>,
}

/// Tokenizer classes whose fast implementation rebuilds the post-processor from
/// `add_bos_token`/`add_eos_token` (defaults true/false) when loaded.
const BOS_EOS_REWRITING_CLASSES: [&str; 6] = [
    "LlamaTokenizer",
    "LlamaTokenizerFast",
    "GemmaTokenizer",
    "GemmaTokenizerFast",
    "CodeLlamaTokenizer",
    "CodeLlamaTokenizerFast",
];

/// `model_type`s whose AutoTokenizer default is one of the rewriting classes (used when
/// tokenizer_config.json names no class).
const REWRITING_MODEL_TYPES: [&str; 7] = ["llama", "mistral", "mixtral", "gemma", "gemma2", "gemma3", "gemma3_text"];

impl HfTokenizer {
    /// Loads tokenizer.json (`NotFound` if absent) and applies transformers' load-time changes.
    pub(crate) fn load(files: &RepoFiles) -> Result<Self, VocabError> {
        let bytes = files.get("tokenizer.json").ok_or_else(|| VocabError::NotFound("tokenizer.json".into()))?;
        let json: Json = serde_json::from_slice(bytes).map_err(|e| VocabError::invalid("tokenizer.json", e))?;
        // Deserializing from the parsed value avoids parsing tens of megabytes twice.
        let mut tokenizer = Tokenizer::deserialize(&json).map_err(|e| VocabError::invalid("tokenizer.json", e))?;
        let config = match read_json(files, "tokenizer_config.json")? {
            Some(Json::Object(o)) => o,
            _ => Map::new(),
        };
        if rewrites_post_processor(files, &config)? {
            rewrite_post_processor(&mut tokenizer, files, &config)?;
        }
        Ok(HfTokenizer { json, tokenizer, config })
    }

    /// `tokenizer.encode(text)` ids.
    pub(crate) fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, VocabError> {
        let enc =
            self.tokenizer.encode(text, add_special_tokens).map_err(|e| VocabError::invalid("tokenizer.json", e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// `tokenizer.decode(ids)` as transformers does it (special tokens kept, optional clean-up).
    pub(crate) fn decode(&self, ids: &[u32]) -> Result<String, VocabError> {
        let text = self.tokenizer.decode(ids, false).map_err(|e| VocabError::invalid("tokenizer.json", e))?;
        let clean = self.config.get("clean_up_tokenization_spaces").and_then(Json::as_bool).unwrap_or(false);
        Ok(if clean { clean_up_tokenization(&text) } else { text })
    }

    /// The content of a special token attribute (`bos_token`...) from the tokenizer config,
    /// falling back to special_tokens_map.json.
    pub(crate) fn special_content(
        files: &RepoFiles,
        config: &Map<String, Json>,
        key: &str,
    ) -> Result<Option<String>, VocabError> {
        if let Some(c) = config.get(key).and_then(token_content) {
            return Ok(Some(c));
        }
        let map = read_json(files, "special_tokens_map.json")?;
        Ok(map.as_ref().and_then(|m| m.get(key)).and_then(token_content))
    }
}

/// A special-token entry: a string or an AddedToken dict.
pub(crate) fn token_content(v: &Json) -> Option<String> {
    match v {
        Json::String(s) => Some(s.clone()),
        Json::Object(o) => o.get("content").and_then(Json::as_str).map(str::to_string),
        _ => None,
    }
}

fn rewrites_post_processor(files: &RepoFiles, config: &Map<String, Json>) -> Result<bool, VocabError> {
    if let Some(class) = config.get("tokenizer_class").and_then(Json::as_str) {
        return Ok(BOS_EOS_REWRITING_CLASSES.contains(&class));
    }
    let model_type =
        read_json(files, "config.json")?.and_then(|c| c.get("model_type").and_then(Json::as_str).map(str::to_string));
    Ok(model_type.is_some_and(|m| REWRITING_MODEL_TYPES.contains(&m.as_str())))
}

/// `LlamaTokenizerFast.update_post_processor`: `[bos] $A [eos]` from add_bos_token/add_eos_token.
fn rewrite_post_processor(
    tokenizer: &mut Tokenizer,
    files: &RepoFiles,
    config: &Map<String, Json>,
) -> Result<(), VocabError> {
    let add_bos = config.get("add_bos_token").and_then(Json::as_bool).unwrap_or(true);
    let add_eos = config.get("add_eos_token").and_then(Json::as_bool).unwrap_or(false);
    let mut single = Vec::new();
    let mut pair = Vec::new();
    let mut specials = Map::new();
    let mut special = |key: &str, type_id: u32| -> Result<Json, VocabError> {
        let content = HfTokenizer::special_content(files, config, key)?.ok_or_else(|| {
            VocabError::invalid("tokenizer_config.json", format!("add_{key} is set but {key} is None"))
        })?;
        let id = tokenizer.token_to_id(&content).ok_or_else(|| {
            VocabError::invalid("tokenizer.json", format!("{key} {content:?} is not in the vocabulary"))
        })?;
        specials.insert(content.clone(), json!({"id": content, "ids": [id], "tokens": [content]}));
        Ok(json!({"SpecialToken": {"id": content, "type_id": type_id}}))
    };
    let seq = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    if add_bos {
        single.push(special("bos_token", 0)?);
    }
    single.push(seq("A", 0));
    if add_eos {
        single.push(special("eos_token", 0)?);
    }
    pair.extend(single.iter().cloned());
    if add_bos {
        pair.push(special("bos_token", 1)?);
    }
    pair.push(seq("B", 1));
    if add_eos {
        pair.push(special("eos_token", 1)?);
    }
    let pp = json!({"type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials});
    let pp: tokenizers::PostProcessorWrapper = serde_json::from_value(pp)
        .map_err(|e| VocabError::invalid("tokenizer_config.json", format!("post-processor: {e}")))?;
    tokenizer.with_post_processor(Some(pp));
    Ok(())
}

/// `PreTrainedTokenizerBase.clean_up_tokenization`.
fn clean_up_tokenization(s: &str) -> String {
    s.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
}
