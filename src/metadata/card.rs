//! The model card (`README.md` YAML front matter) as `Metadata.load_model_card` reads it,
//! including its two textual hacks, and the card part of `apply_metadata_heuristic`
//! (converter-spec §2.3).

use super::naming::{get_model_id_components, id_to_title};
use super::pyobj::Py;
use super::yaml11::{self, YamlError};
use super::Fields;

/// Python's `str.splitlines()` boundaries (after universal-newline reading turned `\r\n` and
/// `\r` into `\n`).
fn is_line_boundary(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn python_splitlines(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.split(is_line_boundary).collect();
    if text.ends_with(is_line_boundary) {
        lines.pop();
    }
    lines
}

/// The YAML text the reference hands to `yaml.safe_load`, or `None` when the card has no
/// front matter (first line not exactly `---`). Includes both textual hacks: `- no\n` is quoted
/// (the "Norway problem") and TABs become two spaces.
pub fn front_matter(readme: &str) -> Option<String> {
    let text = readme.replace("\r\n", "\n").replace('\r', "\n");
    let lines = python_splitlines(&text);
    if lines.first() != Some(&"---") {
        return None;
    }
    let body: Vec<&str> = lines[1..].iter().copied().take_while(|l| *l != "---").collect();
    let yaml = body.join("\n") + "\n";
    Some(yaml.replace("- no\n", "- \"no\"\n").replace('\t', "  "))
}

/// `Metadata.load_model_card`: the front matter as a Python dict (`Py::Dict`), or an empty
/// dict when there is none or it is not a mapping. Invalid UTF-8 or invalid YAML raise in
/// the reference, and are errors here.
pub fn load_model_card(readme: Option<&[u8]>) -> Result<Py, CardError> {
    let Some(bytes) = readme else {
        return Ok(Py::Dict(Vec::new()));
    };
    let text = std::str::from_utf8(bytes).map_err(|_| CardError::NotUtf8)?;
    let Some(yaml) = front_matter(text) else {
        return Ok(Py::Dict(Vec::new()));
    };
    match yaml11::safe_load(&yaml)? {
        d @ Py::Dict(_) => Ok(d),
        other => {
            tracing::error!("while reading YAML model card frontmatter, data is {} instead of dict", other.type_name());
            Ok(Py::Dict(Vec::new()))
        }
    }
}

/// Why a model card cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("README.md is not valid UTF-8")]
    NotUtf8,
    #[error("README.md front matter: {0}")]
    Yaml(#[from] YamlError),
}

/// `use_model_card_metadata`: fill if still unset (an explicit null leaves it unset).
fn fill(slot: &mut Option<Py>, card: &Py, key: &str) {
    if slot.is_none() {
        if let Some(v) = card.get(key) {
            *slot = Some(v.clone()).filter(|v| !matches!(v, Py::None));
        }
    }
}

/// `use_array_model_card_metadata`: a str is appended, a list extended; any other non-null
/// value still turns an unset list into `[]`.
fn extend_list(slot: &mut Option<Vec<Py>>, card: &Py, key: &str) {
    let Some(v) = card.get_some(key) else { return };
    let list = slot.get_or_insert_with(Vec::new);
    match v {
        Py::Str(_) => list.push(v.clone()),
        Py::List(items) => list.extend(items.iter().cloned()),
        _ => {}
    }
}

fn hf_url_id(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    // `re.match(r"https?://huggingface.co/([^/]+/[^/]+)$")`: the `.` is any char but newline,
    // and `$` also matches before a final newline.
    let mut chars = rest.char_indices();
    let host_ok = "huggingface".chars().all(|h| chars.next().map(|(_, c)| c) == Some(h))
        && chars.next().is_some_and(|(_, c)| c != '\n')
        && "co/".chars().all(|h| chars.next().map(|(_, c)| c) == Some(h));
    if !host_ok {
        return None;
    }
    // `[^/]+` also matches newlines, and greedy matching reaches the end of the string.
    let id = &rest[chars.offset()..];
    let mut parts = id.split('/');
    let (org, name) = (parts.next()?, parts.next()?);
    (parts.next().is_none() && !org.is_empty() && !name.is_empty()).then_some(id)
}

/// One `base_model`/`datasets` entry as the reference turns it into a dict.
fn source_entry(entry: &Py, total_params: i64) -> Py {
    let mut out: Vec<(Py, Py)> = Vec::new();
    let mut put = |k: &str, v: String| out.push((Py::Str(k.to_string()), Py::Str(v)));
    match entry {
        Py::Str(id) if id.starts_with("http://") || id.starts_with("https://") || id.starts_with("ssh://") => {
            put("repo_url", id.clone());
            if let Some(hf_id) = id.contains("huggingface.co").then(|| hf_url_id(id)).flatten() {
                let c = get_model_id_components(hf_id, total_params);
                if let Some(n) = &c.full_name {
                    put("name", id_to_title(n));
                }
                if let Some(o) = &c.org {
                    put("organization", id_to_title(o));
                }
                if let Some(v) = c.version {
                    put("version", v);
                }
            }
        }
        Py::Str(id) => {
            let c = get_model_id_components(id, total_params);
            if let Some(n) = &c.full_name {
                put("name", id_to_title(n));
            }
            if let Some(o) = &c.org {
                put("organization", id_to_title(o));
            }
            if let Some(v) = c.version {
                put("version", v);
            }
            if let (Some(o), Some(n)) = (&c.org, &c.full_name) {
                put("repo_url", format!("https://huggingface.co/{o}/{n}"));
            }
        }
        d @ Py::Dict(_) => return d.clone(),
        other => tracing::error!("base model/dataset entry of type {} not in a known format", other.type_name()),
    }
    Py::Dict(out)
}

/// The `base_model`/`datasets` lists: present if any of the three keys is present (even with
/// a null value, which gives an empty list and a `count` of 0).
fn source_list(card: &Py, keys: [&str; 3], total_params: i64) -> Option<Vec<Py>> {
    if !keys.iter().any(|k| card.get(k).is_some()) {
        return None;
    }
    let value = card.get(keys[0]).or_else(|| card.get(keys[1])).or_else(|| card.get(keys[2]));
    let entries: Vec<&Py> = match value {
        Some(s @ Py::Str(_)) => vec![s],
        Some(Py::List(items)) => items.iter().collect(),
        _ => Vec::new(),
    };
    Some(entries.into_iter().map(|e| source_entry(e, total_params)).collect())
}

/// Selects one `Metadata` field.
type FieldSlot = fn(&mut Fields) -> &mut Option<Py>;

/// The model-card part of `Metadata.apply_metadata_heuristic`.
pub fn apply_card(f: &mut Fields, card: &Py, total_params: i64) {
    let direct: [(&str, FieldSlot); 12] = [
        ("name", |f| &mut f.name),
        ("author", |f| &mut f.author),
        ("version", |f| &mut f.version),
        ("organization", |f| &mut f.organization),
        ("description", |f| &mut f.description),
        ("finetune", |f| &mut f.finetune),
        ("basename", |f| &mut f.basename),
        ("size_label", |f| &mut f.size_label),
        ("url", |f| &mut f.source_url),
        ("doi", |f| &mut f.source_doi),
        ("uuid", |f| &mut f.source_uuid),
        ("repo_url", |f| &mut f.source_repo_url),
    ];
    for (key, slot) in direct {
        fill(slot(f), card, key);
    }
    for (key, slot) in direct {
        fill(slot(f), card, &format!("model_{key}"));
    }
    fill(&mut f.name, card, "model_name");
    fill(&mut f.author, card, "model_creator");
    fill(&mut f.basename, card, "model_type");

    if let Some(list) = source_list(card, ["base_model", "base_models", "base_model_sources"], total_params) {
        f.base_models.get_or_insert_with(Vec::new).extend(list);
    }
    if let Some(list) = source_list(card, ["datasets", "dataset", "dataset_sources"], total_params) {
        f.datasets.get_or_insert_with(Vec::new).extend(list);
    }

    fill(&mut f.license, card, "license");
    fill(&mut f.license_name, card, "license_name");
    fill(&mut f.license_link, card, "license_link");

    extend_list(&mut f.tags, card, "tags");
    extend_list(&mut f.tags, card, "pipeline_tag");
    extend_list(&mut f.languages, card, "languages");
    extend_list(&mut f.languages, card, "language");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_needs_exact_first_line() {
        assert_eq!(front_matter("---\na: 1\n---\nbody"), Some("a: 1\n".into()));
        assert_eq!(front_matter("--- \na: 1\n---\n"), None);
        assert_eq!(front_matter("\u{feff}---\na: 1\n---\n"), None);
        assert_eq!(front_matter("---\r\na: 1\r\n---\r\n"), Some("a: 1\n".into()));
        // No closing line: everything after the first line.
        assert_eq!(front_matter("---\na: 1\nb: 2"), Some("a: 1\nb: 2\n".into()));
    }

    #[test]
    fn norway_and_tab_hacks() {
        let y = front_matter("---\nlanguage:\n- en\n- no\n\t- x\n---\n").unwrap();
        assert_eq!(y, "language:\n- en\n- \"no\"\n  - x\n");
        // The hack only catches "- no" at the end of a line: the flow form stays a boolean.
        let card = load_model_card(Some(b"---\nlanguage: [en, no]\n---\n")).unwrap();
        assert_eq!(card.get("language"), Some(&Py::List(vec![Py::Str("en".into()), Py::Bool(false)])));
        let card = load_model_card(Some(b"---\nlanguage:\n- en\n- no\n---\n")).unwrap();
        assert_eq!(card.get("language"), Some(&Py::List(vec![Py::Str("en".into()), Py::Str("no".into())])));
    }

    #[test]
    fn non_mapping_front_matter_is_empty() {
        assert_eq!(load_model_card(Some(b"---\n- a\n---\n")).unwrap(), Py::Dict(vec![]));
        assert_eq!(load_model_card(None).unwrap(), Py::Dict(vec![]));
        assert!(load_model_card(Some(b"---\na: [\n---\n")).is_err());
        assert!(load_model_card(Some(b"---\na: \xff\n---\n")).is_err());
    }

    #[test]
    fn base_model_entries() {
        let e = source_entry(&Py::Str("mistralai/Mistral-7B-v0.3".into()), 1000);
        assert_eq!(e.get("name"), Some(&Py::Str("Mistral 7B v0.3".into())));
        assert_eq!(e.get("organization"), Some(&Py::Str("Mistralai".into())));
        assert_eq!(e.get("version"), Some(&Py::Str("v0.3".into())));
        let e = source_entry(&Py::Str("https://huggingface.co/google/gemma-3-1b-pt".into()), 1000);
        assert_eq!(e.get("repo_url"), Some(&Py::Str("https://huggingface.co/google/gemma-3-1b-pt".into())));
        assert_eq!(e.get("name"), Some(&Py::Str("Gemma 3 1b Pt".into())));
        let e = source_entry(&Py::Str("https://huggingface.co/a/b/c".into()), 1000);
        assert_eq!(e.get("name"), None);
    }
}
