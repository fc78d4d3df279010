//! `gguf.SpecialVocab`: merges, special token ids, `add_*_token` flags, chat templates and
//! normalizer flags, read from tokenizer.json / tokenizer_config.json / config.json (converter-spec §6.6,
//! with the pinned tree's post-processor rules).

use serde_json::{Map, Value as Json};

use super::chat_template::{add_chat_template, chat_template, ChatTemplate};
use super::{read_json, VocabError};
use crate::gguf::{KvMap, Value};
use crate::source::RepoFiles;

/// The default special token types, in the reference's order.
const DEFAULT_TYPES: [&str; 7] = ["bos", "eos", "unk", "sep", "pad", "cls", "mask"];

/// Special-token facts gathered the way the reference's `SpecialVocab` does; architectures
/// that add extra passes (CodeLlama, Gemma) build one and call `add_to_gguf`.
#[derive(Debug, Clone, Default)]
pub struct SpecialVocab {
    /// BPE merges (`"a b"`), when requested.
    pub merges: Vec<String>,
    /// Special ids in resolution order (the reference's dict order).
    pub special_token_ids: Vec<(String, u32)>,
    /// `add_{typ}_token` flags in resolution order.
    pub add_special_token: Vec<(String, bool)>,
    /// The chat template, if any.
    pub chat_template: Option<ChatTemplate>,
    normalizer_lowercase: Option<bool>,
    normalizer_strip_accents: Option<bool>,
    n_vocab: Option<usize>,
    load_merges: bool,
    special_token_types: Vec<String>,
}

/// Python truthiness of a JSON value.
fn truthy(v: Option<&Json>) -> bool {
    match v {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(Json::Number(n)) => n.as_f64() != Some(0.0),
        Some(Json::String(s)) => !s.is_empty(),
        Some(Json::Array(a)) => !a.is_empty(),
        Some(Json::Object(o)) => !o.is_empty(),
    }
}

/// `d.get(key, {}).get('id')` on a template item.
fn item_id<'a>(item: Option<&'a Json>, key: &str) -> Option<&'a Json> {
    item.and_then(|i| i.get(key)).and_then(|t| t.get("id"))
}

/// Python `a in (b, c)` / `a == b` on optional JSON values (None == None).
fn same(a: Option<&Json>, b: Option<&Json>) -> bool {
    a.unwrap_or(&Json::Null) == b.unwrap_or(&Json::Null)
}

fn set_ordered<T>(list: &mut Vec<(String, T)>, key: &str, value: T) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => list.push((key.to_string(), value)),
    }
}

impl SpecialVocab {
    /// Loads everything from the repo files (`SpecialVocab(dir, load_merges, types, n_vocab)`).
    pub fn load(
        files: &RepoFiles,
        load_merges: bool,
        special_token_types: Option<Vec<String>>,
        n_vocab: Option<usize>,
    ) -> Result<Self, VocabError> {
        let tokenizer = read_json(files, "tokenizer.json")?;
        Self::load_with(files, tokenizer.as_ref(), load_merges, special_token_types, n_vocab)
    }

    /// As `load`, with tokenizer.json already parsed (it can be tens of megabytes).
    pub(crate) fn load_with(
        files: &RepoFiles,
        tokenizer: Option<&Json>,
        load_merges: bool,
        special_token_types: Option<Vec<String>>,
        n_vocab: Option<usize>,
    ) -> Result<Self, VocabError> {
        let mut sv = SpecialVocab {
            n_vocab,
            load_merges,
            special_token_types: special_token_types
                .unwrap_or_else(|| DEFAULT_TYPES.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        };
        sv.load_from_tokenizer_json(files, tokenizer)?;
        sv.load_from_config_json(files)?;
        if sv.load_merges && sv.merges.is_empty() {
            sv.load_merges_txt(files);
        }
        Ok(sv)
    }

    /// `_set_special_token`: the first assignment of a type wins; ids beyond `n_vocab` are skipped.
    pub fn set_special_token(&mut self, typ: &str, tid: i64) -> Result<(), VocabError> {
        if tid < 0 {
            return Err(VocabError::invalid(
                "special tokens",
                format!("invalid value for special token type {typ}: {tid}"),
            ));
        }
        let Ok(id) = u32::try_from(tid) else {
            tracing::warn!(typ, tid, "special token id out of range - skipping");
            return Ok(());
        };
        if self.n_vocab.is_some_and(|n| id as usize >= n) {
            tracing::warn!(typ, id, "special token id out of range - skipping");
            return Ok(());
        }
        if !self.special_token_ids.iter().any(|(t, _)| t == typ) {
            self.special_token_ids.push((typ.to_string(), id));
        }
        Ok(())
    }

    /// `_set_special_token` with a JSON value: only integers count (Python bools are ints).
    fn set_special_token_json(&mut self, typ: &str, tid: Option<&Json>) -> Result<(), VocabError> {
        match tid {
            Some(Json::Number(n)) if n.is_i64() || n.is_u64() => match n.as_i64() {
                Some(v) => self.set_special_token(typ, v),
                None => Ok(()),
            },
            Some(Json::Bool(b)) => self.set_special_token(typ, i64::from(*b)),
            _ => Ok(()),
        }
    }

    fn load_merges_txt(&mut self, files: &RepoFiles) {
        let Some(bytes) = files.get("merges.txt") else {
            return;
        };
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.lines().peekable();
        if lines.peek().is_some_and(|l| l.trim().starts_with('#')) {
            lines.next();
        }
        self.merges = lines
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .filter_map(|l| {
                let parts: Vec<&str> = l.split_whitespace().collect();
                (parts.len() == 2).then(|| format!("{} {}", parts[0], parts[1]))
            })
            .collect();
    }

    fn load_merges_from(&mut self, tokenizer: &Json) -> Result<(), VocabError> {
        let Some(Json::Array(merges)) = tokenizer.get("model").and_then(|m| m.get("merges")) else {
            return Ok(());
        };
        let bad = || VocabError::invalid("tokenizer.json", "Unknown tokenizer merges format");
        match merges.first() {
            None => {}
            Some(Json::String(_)) => {
                self.merges =
                    merges.iter().map(|m| m.as_str().map(str::to_string).ok_or_else(bad)).collect::<Result<_, _>>()?;
            }
            Some(Json::Array(first)) if first.len() == 2 && first[0].is_string() => {
                self.merges =
                    merges.iter().map(|m| merge_pair_to_string(m).ok_or_else(bad)).collect::<Result<_, _>>()?;
            }
            Some(_) => return Err(bad()),
        }
        Ok(())
    }

    fn parse_normalizer(&mut self, normalizer: &Json) {
        match normalizer.get("type").and_then(Json::as_str) {
            Some("Lowercase") => self.normalizer_lowercase = Some(true),
            Some("StripAccents") => self.normalizer_strip_accents = Some(true),
            Some("BertNormalizer") => {
                if let Some(v) = normalizer.get("lowercase") {
                    self.normalizer_lowercase = v.as_bool();
                }
                if let Some(v) = normalizer.get("strip_accents") {
                    self.normalizer_strip_accents = v.as_bool();
                }
            }
            Some("Sequence") => {
                if let Some(Json::Array(list)) = normalizer.get("normalizers") {
                    for n in list {
                        self.parse_normalizer(n);
                    }
                }
            }
            _ => {}
        }
    }

    fn load_from_tokenizer_json(&mut self, files: &RepoFiles, tokenizer: Option<&Json>) -> Result<(), VocabError> {
        let empty = Vec::new();
        let mut added_tokens: &Vec<Json> = &empty;
        if let Some(tok) = tokenizer {
            if self.load_merges {
                self.load_merges_from(tok)?;
            }
            if let Some(n) = tok.get("normalizer").filter(|n| truthy(Some(n))) {
                self.parse_normalizer(n);
            }
            if let Some(Json::Array(a)) = tok.get("added_tokens") {
                added_tokens = a;
            }
        }
        let mut config: Option<Map<String, Json>> = match read_json(files, "tokenizer_config.json")? {
            Some(Json::Object(o)) => Some(o),
            Some(_) => return Err(VocabError::invalid("tokenizer_config.json", "not a JSON object")),
            None => None,
        };
        if let Some(tok) = tokenizer.filter(|t| truthy(Some(t))) {
            self.parse_post_processor(tok, &mut config);
        }
        let Some(config) = config.filter(|c| !c.is_empty()) else {
            return Ok(());
        };
        self.chat_template = chat_template(files, &config)?;
        let types = self.special_token_types.clone();
        for typ in &types {
            if let Some(Json::Bool(b)) = config.get(&format!("add_{typ}_token")) {
                if !self.add_special_token.iter().any(|(t, _)| t == typ) {
                    self.add_special_token.push((typ.clone(), *b));
                }
            }
            let content = match config.get(&format!("{typ}_token")) {
                Some(Json::String(s)) => s.as_str(),
                Some(Json::Object(o)) => match o.get("content") {
                    Some(Json::String(s)) => s.as_str(),
                    _ => continue,
                },
                _ => continue,
            };
            let id = added_tokens
                .iter()
                .find(|a| a.get("content").and_then(Json::as_str) == Some(content))
                .and_then(|a| a.get("id"));
            self.set_special_token_json(typ, id)?;
        }
        Ok(())
    }

    /// The crude post-processor parse (`vocab.py:227-324`): add_bos/add_eos/add_sep and the
    /// bos/cls/eos/sep contents it implies, written back into the tokenizer_config copy.
    fn parse_post_processor(&mut self, tokenizer: &Json, config: &mut Option<Map<String, Json>>) {
        let cfg_get = |c: &Option<Map<String, Json>>, k: &str| c.as_ref().and_then(|c| c.get(k)).cloned();
        let cfg_truthy = |c: &Option<Map<String, Json>>| c.as_ref().is_some_and(|c| !c.is_empty());
        let mut bos = cfg_get(config, "bos_token");
        let mut cls = cfg_get(config, "cls_token");
        let mut eos = cfg_get(config, "eos_token");
        let mut sep = cfg_get(config, "sep_token");
        if !truthy(bos.as_ref()) && truthy(cls.as_ref()) && cfg_truthy(config) {
            bos = cls.clone();
            set_cfg(config, "bos_token", bos.clone());
        }
        if !truthy(eos.as_ref()) && truthy(sep.as_ref()) && cfg_truthy(config) {
            eos = sep.clone();
            set_cfg(config, "eos_token", eos.clone());
        }
        let Some(pp) = tokenizer.get("post_processor").filter(|p| truthy(Some(p))) else {
            return;
        };
        let single_list = [pp.clone()];
        let processors: &[Json] = match pp.get("processors") {
            Some(Json::Array(a)) => a,
            _ => &single_list,
        };
        for processor in processors {
            match processor.get("type").and_then(Json::as_str) {
                Some("ByteLevel") => {
                    for t in ["bos", "eos"] {
                        if !self.add_special_token.iter().any(|(k, _)| k == t) {
                            self.add_special_token.push((t.to_string(), false));
                        }
                    }
                }
                Some("RobertaProcessing") => {
                    for t in ["bos", "eos", "sep"] {
                        set_ordered(&mut self.add_special_token, t, true);
                    }
                    if !truthy(cls.as_ref()) && cfg_truthy(config) {
                        cls = processor.get("cls").and_then(|c| c.get(0)).cloned().or(bos.clone());
                        set_cfg(config, "cls_token", cls.clone());
                    }
                    if !truthy(sep.as_ref()) && cfg_truthy(config) {
                        sep = processor.get("sep").and_then(|c| c.get(0)).cloned().or(eos.clone());
                        set_cfg(config, "sep_token", sep.clone());
                    }
                }
                Some("TemplateProcessing") => {
                    let mut st = TemplateState { bos: &mut bos, cls: &mut cls, eos: &mut eos, sep: &mut sep };
                    self.parse_template(processor, config, &mut st);
                }
                _ => {}
            }
        }
    }

    fn parse_template(&mut self, processor: &Json, config: &mut Option<Map<String, Json>>, st: &mut TemplateState) {
        let empty = Vec::new();
        let single = processor.get("single").and_then(Json::as_array).unwrap_or(&empty);
        let pair = processor.get("pair").and_then(Json::as_array).unwrap_or(&empty);
        let has_cfg = config.as_ref().is_some_and(|c| !c.is_empty());
        let mut first: Option<Json> = None;
        let mut last: Option<Json> = None;
        if single.len() > 1 {
            first = item_id(single.first(), "SpecialToken").filter(|v| truthy(Some(v))).cloned();
            if let Some(f) = &first {
                let f = Some(f);
                if !has_cfg {
                    *st.bos = f.cloned();
                } else if !same(f, st.bos.as_ref()) && !same(f, st.cls.as_ref()) {
                    if !truthy(st.bos.as_ref()) {
                        *st.bos = f.cloned();
                        set_cfg(config, "bos_token", f.cloned());
                    }
                    if !truthy(st.cls.as_ref()) {
                        *st.cls = f.cloned();
                        set_cfg(config, "cls_token", f.cloned());
                    }
                }
                let add = same(f, st.bos.as_ref()) || same(f, st.cls.as_ref());
                set_ordered(&mut self.add_special_token, "bos", add);
            }
            last = item_id(single.last(), "SpecialToken").filter(|v| truthy(Some(v))).cloned();
            if let Some(l) = &last {
                let l = Some(l);
                if !has_cfg {
                    *st.eos = l.cloned();
                } else if !same(l, st.eos.as_ref()) {
                    if !self.special_token_types.iter().any(|t| t == "eot") {
                        self.special_token_types.push("eot".into());
                        set_cfg(config, "eot_token", st.eos.clone());
                    } else if !self.special_token_types.iter().any(|t| t == "eom") {
                        self.special_token_types.push("eom".into());
                        set_cfg(config, "eom_token", st.eos.clone());
                    }
                    *st.eos = l.cloned();
                    set_cfg(config, "eos_token", l.cloned());
                }
                let add = same(l, st.eos.as_ref());
                set_ordered(&mut self.add_special_token, "eos", add);
            }
        }
        if pair.is_empty() {
            return;
        }
        let start = usize::from(first.is_some() && same(item_id(pair.first(), "SpecialToken"), first.as_ref()));
        let stop =
            pair.len() - usize::from(last.is_some() && same(item_id(pair.last(), "SpecialToken"), last.as_ref()));
        let Some(sliced) = pair.get(start..stop.max(start)).filter(|s| !s.is_empty()) else {
            return;
        };
        let a = item_id(sliced.first(), "Sequence").and_then(Json::as_str);
        let b = item_id(sliced.last(), "Sequence").and_then(Json::as_str);
        if a != Some("A") || b != Some("B") || sliced.len() < 3 {
            return;
        }
        let middle = &sliced[1..sliced.len() - 1];
        let is_sep_or_eos = |e: &Json| same(Some(e), st.sep.as_ref()) || same(Some(e), st.eos.as_ref());
        let mut add_sep = false;
        if let Some(e) = item_id(middle.first(), "SpecialToken").filter(|v| truthy(Some(v))) {
            if is_sep_or_eos(e) && last.is_none() {
                add_sep = true;
            }
        }
        if middle.len() == 2 {
            if let Some(e) = item_id(middle.get(1), "SpecialToken").filter(|v| truthy(Some(v))) {
                if is_sep_or_eos(e) {
                    add_sep = true;
                }
            }
        }
        set_ordered(&mut self.add_special_token, "sep", add_sep);
        if add_sep && !truthy(st.sep.as_ref()) && has_cfg {
            set_cfg(config, "sep_token", st.eos.clone());
        }
    }

    fn load_from_config_json(&mut self, files: &RepoFiles) -> Result<(), VocabError> {
        let Some(config) = read_json(files, "config.json")? else {
            return Ok(());
        };
        let types = self.special_token_types.clone();
        for typ in &types {
            let key = format!("{typ}_token_id");
            let mut id = config.get(&key).filter(|v| !v.is_null());
            if id.is_none() {
                if let Some(tc) = config.get("text_config") {
                    id = tc.get(&key);
                }
            }
            self.set_special_token_json(typ, id)?;
        }
        Ok(())
    }

    /// `add_to_gguf`: merges, ids, add flags, chat template, normalizer flags, in that order.
    pub fn add_to_gguf(&self, kv: &mut KvMap) {
        if !self.merges.is_empty() {
            kv.set("tokenizer.ggml.merges", Value::str_array(&self.merges));
        } else if self.load_merges {
            tracing::warn!("Adding merges requested but no merges found, output may be non-functional.");
        }
        for (typ, id) in &self.special_token_ids {
            match id_key(typ) {
                Some(key) => kv.set(key, Value::U32(*id)),
                None => tracing::debug!(typ, id, "no handler for special token type - skipping"),
            }
        }
        for (typ, value) in &self.add_special_token {
            if matches!(typ.as_str(), "bos" | "eos" | "sep") {
                kv.set(format!("tokenizer.ggml.add_{typ}_token"), Value::Bool(*value));
            }
        }
        if let Some(t) = &self.chat_template {
            add_chat_template(kv, t);
        }
        if let Some(v) = self.normalizer_lowercase {
            kv.set("tokenizer.ggml.normalizer.lowercase", Value::Bool(v));
        }
        if let Some(v) = self.normalizer_strip_accents {
            kv.set("tokenizer.ggml.normalizer.strip_accents", Value::Bool(v));
        }
    }
}

struct TemplateState<'a> {
    bos: &'a mut Option<Json>,
    cls: &'a mut Option<Json>,
    eos: &'a mut Option<Json>,
    sep: &'a mut Option<Json>,
}

fn set_cfg(config: &mut Option<Map<String, Json>>, key: &str, value: Option<Json>) {
    if let Some(c) = config.as_mut() {
        c.insert(key.to_string(), value.unwrap_or(Json::Null));
    }
}

/// The new (transformers ≥ 4.45) merge format: spaces inside parts become U+0120.
fn merge_pair_to_string(m: &Json) -> Option<String> {
    let pair = m.as_array()?;
    let parts: Option<Vec<String>> = pair.iter().map(|p| p.as_str().map(|s| s.replace(' ', "\u{120}"))).collect();
    Some(parts?.join(" "))
}

/// The writer key of a special token type (`add_{typ}_token_id` handlers).
fn id_key(typ: &str) -> Option<&'static str> {
    Some(match typ {
        "bos" => "tokenizer.ggml.bos_token_id",
        "eos" => "tokenizer.ggml.eos_token_id",
        "unk" => "tokenizer.ggml.unknown_token_id",
        "sep" => "tokenizer.ggml.seperator_token_id",
        "pad" => "tokenizer.ggml.padding_token_id",
        "mask" => "tokenizer.ggml.mask_token_id",
        "eot" => "tokenizer.ggml.eot_token_id",
        "eom" => "tokenizer.ggml.eom_token_id",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(tokenizer: Json, config: Json) -> RepoFiles {
        let mut f = RepoFiles::new();
        f.insert("tokenizer.json", serde_json::to_vec(&tokenizer).unwrap());
        f.insert("tokenizer_config.json", serde_json::to_vec(&config).unwrap());
        f
    }

    #[test]
    fn pair_merges_encode_spaces_as_u0120() {
        let f = files(serde_json::json!({"model": {"merges": [["a b", "c"], ["d", "e"]]}}), serde_json::json!({}));
        let sv = SpecialVocab::load(&f, true, None, None).unwrap();
        assert_eq!(sv.merges, ["a\u{120}b c", "d e"]);
    }

    #[test]
    fn llama3_template_gives_add_bos_and_no_sep() {
        let tok = serde_json::json!({
            "added_tokens": [{"id": 7, "content": "<s>"}],
            "post_processor": {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}]}
        });
        let sv = SpecialVocab::load(
            &files(tok, serde_json::json!({"bos_token": "<s>", "add_eos_token": false})),
            false,
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            sv.add_special_token,
            [("bos".to_string(), true), ("sep".to_string(), false), ("eos".to_string(), false)]
        );
        assert_eq!(sv.special_token_ids, [("bos".to_string(), 7)]);
    }

    #[test]
    fn byte_level_post_processor_defaults_add_flags_to_false_and_ids_respect_n_vocab() {
        let tok =
            serde_json::json!({"added_tokens": [{"id": 9, "content": "<e>"}], "post_processor": {"type": "ByteLevel"}});
        let cfg = serde_json::json!({"eos_token": "<e>", "add_bos_token": true});
        let sv = SpecialVocab::load(&files(tok.clone(), cfg.clone()), false, None, None).unwrap();
        assert_eq!(sv.add_special_token, [("bos".to_string(), false), ("eos".to_string(), false)]);
        assert_eq!(sv.special_token_ids, [("eos".to_string(), 9)]);
        let sv = SpecialVocab::load(&files(tok, cfg), false, None, Some(9)).unwrap();
        assert!(sv.special_token_ids.is_empty());
    }
}
