//! Chat templates: where the reference finds them (tokenizer_config.json, chat_template.jinja,
//! additional_chat_templates/, chat_template.json) and how its writer stores them.

use serde_json::{Map, Value as Json};

use super::{read_json, VocabError};
use crate::gguf::{KvMap, Value, ValueType};
use crate::source::RepoFiles;

/// A chat template as tokenizer_config.json (or its side files) gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatTemplate {
    /// One template: `tokenizer.chat_template`.
    Single(String),
    /// A list of `{name, template}` objects (named templates).
    Named(Vec<Json>),
}

/// The chat template: tokenizer_config's key wins, else chat_template.jinja (+ additional
/// templates), else chat_template.json.
pub(crate) fn chat_template(files: &RepoFiles, config: &Map<String, Json>) -> Result<Option<ChatTemplate>, VocabError> {
    let value = match config.get("chat_template") {
        Some(v) => v.clone(),
        None => alternative_chat_template(files)?,
    };
    Ok(match value {
        Json::String(s) => Some(ChatTemplate::Single(s)),
        Json::Array(a) => Some(ChatTemplate::Named(a)),
        Json::Null => None,
        _ => {
            tracing::warn!("Bad type for chat_template field in tokenizer_config.json - ignoring");
            None
        }
    })
}

fn alternative_chat_template(files: &RepoFiles) -> Result<Json, VocabError> {
    let text = |p: &str| files.get(p).map(|b| String::from_utf8_lossy(b).into_owned());
    if let Some(default) = text("chat_template.jinja") {
        // The reference uses filesystem glob order; path order is the deterministic stand-in.
        let extra: Vec<&str> = files
            .paths()
            .filter(|p| {
                p.strip_prefix("additional_chat_templates/").is_some_and(|n| n.ends_with(".jinja") && !n.contains('/'))
            })
            .collect();
        if extra.is_empty() {
            return Ok(Json::String(default));
        }
        let mut list = vec![serde_json::json!({"name": "default", "template": default})];
        for p in extra {
            let stem = p.trim_start_matches("additional_chat_templates/").trim_end_matches(".jinja");
            list.push(serde_json::json!({"name": stem, "template": text(p).unwrap_or_default()}));
        }
        return Ok(Json::Array(list));
    }
    Ok(read_json(files, "chat_template.json")?.and_then(|j| j.get("chat_template").cloned()).unwrap_or(Json::Null))
}

/// `GGUFWriter.add_chat_template`: named templates become `tokenizer.chat_template.{name}` plus
/// the `tokenizer.chat_templates` list; the reference lists them from a Python set (random
/// order, hazard H4), here in first-seen order.
pub(crate) fn add_chat_template(kv: &mut KvMap, t: &ChatTemplate) {
    let list = match t {
        ChatTemplate::Single(s) => {
            kv.set("tokenizer.chat_template", Value::str(s));
            return;
        }
        ChatTemplate::Named(list) => list,
    };
    let mut default = None;
    let mut names: Vec<String> = Vec::new();
    for choice in list {
        let name: String = choice
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or("")
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let Some(template) = choice.get("template").and_then(Json::as_str) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        if name == "default" {
            default = Some(template.to_string());
        } else {
            if !names.contains(&name) {
                names.push(name.clone());
            }
            kv.set(format!("tokenizer.chat_template.{name}"), Value::str(template));
        }
    }
    if !names.is_empty() {
        kv.set("tokenizer.chat_templates", Value::Array(ValueType::String, names.iter().map(Value::str).collect()));
    }
    if let Some(d) = default {
        kv.set("tokenizer.chat_template", Value::str(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_templates_are_sanitised_and_default_goes_last() {
        let mut kv = KvMap::new();
        let list = serde_json::json!([
            {"name": "default", "template": "D"},
            {"name": "tool use", "template": "T"},
            {"name": "", "template": "skipped"},
            {"name": "rag", "template": null}
        ]);
        add_chat_template(&mut kv, &ChatTemplate::Named(list.as_array().unwrap().clone()));
        let keys: Vec<&str> = kv.entries().iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["tokenizer.chat_template.tool_use", "tokenizer.chat_templates", "tokenizer.chat_template"]);
        assert_eq!(kv.get("tokenizer.chat_template").and_then(Value::as_str), Some("D"));
    }

    #[test]
    fn config_key_wins_over_jinja_file() {
        let mut files = RepoFiles::new();
        files.insert("chat_template.jinja", b"J".to_vec());
        let cfg: Map<String, Json> = serde_json::from_str(r#"{"chat_template": "C"}"#).unwrap();
        assert_eq!(chat_template(&files, &cfg).unwrap(), Some(ChatTemplate::Single("C".into())));
        assert_eq!(chat_template(&files, &Map::new()).unwrap(), Some(ChatTemplate::Single("J".into())));
    }
}
