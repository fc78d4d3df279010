//! `generation_config.json` → `general.sampling.*` (converter-spec §2.2 item 4, pinned-tree
//! difference 8: `repetition_penalty` feeds `penalty_repeat`).

use super::pyobj::Py;
use super::MetadataError;

/// The sampling fields in the reference's emission order: (GGUF key suffix, JSON keys tried in
/// order, how the writer packs the value).
pub(super) const SAMPLING_FIELDS: [(&str, &[&str], Kind); 12] = [
    ("sequence", &["sequence"], Kind::Str),
    ("top_k", &["top_k"], Kind::Int),
    ("top_p", &["top_p"], Kind::Float),
    ("min_p", &["min_p"], Kind::Float),
    ("xtc_probability", &["xtc_probability"], Kind::Float),
    ("xtc_threshold", &["xtc_threshold"], Kind::Float),
    ("temp", &["temperature"], Kind::Float),
    ("penalty_last_n", &["penalty_last_n"], Kind::Int),
    ("penalty_repeat", &["penalty_repeat", "repetition_penalty"], Kind::Float),
    ("mirostat", &["mirostat"], Kind::Int),
    ("mirostat_tau", &["mirostat_tau"], Kind::Float),
    ("mirostat_eta", &["mirostat_eta"], Kind::Float),
];

/// How the writer packs a sampling field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Str,
    Int,
    Float,
}

/// `Metadata.load_generation_config`: malformed JSON is ignored (`{}`), but bytes that are not
/// UTF-8 raise in the reference (`UnicodeDecodeError` is not caught).
pub fn load_generation_config(bytes: Option<&[u8]>) -> Result<Py, MetadataError> {
    let Some(bytes) = bytes else {
        return Ok(Py::Dict(Vec::new()));
    };
    let text = std::str::from_utf8(bytes).map_err(|_| MetadataError::NotUtf8("generation_config.json"))?;
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => Ok(Py::from_json(&v)),
        Err(e) => match parse_with_python_constants(text) {
            Some(v) => Ok(v),
            None => {
                tracing::debug!("generation_config.json ignored: {e}");
                Ok(Py::Dict(Vec::new()))
            }
        },
    }
}

const SENTINEL: &str = "\u{0}ggufs-python-json-constant:";

/// Python's `json` also accepts the bare constants `NaN`, `Infinity` and `-Infinity`, which
/// serde_json rejects: they are swapped for sentinel strings outside string literals, parsed,
/// and turned back into floats.
fn parse_with_python_constants(text: &str) -> Option<Py> {
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped, mut replaced) = (false, false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if c == '"' {
            in_string = true;
        } else if let Some(name) = ["-Infinity", "Infinity", "NaN"].into_iter().find(|n| rest.starts_with(n)) {
            out.push_str(&format!("\"\\u0000ggufs-python-json-constant:{name}\""));
            rest = &rest[name.len()..];
            replaced = true;
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    if !replaced {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    Some(restore_constants(Py::from_json(&v)))
}

fn restore_constants(v: Py) -> Py {
    match v {
        Py::Str(s) => match s.strip_prefix(SENTINEL) {
            Some("NaN") => Py::Float(f64::NAN),
            Some("Infinity") => Py::Float(f64::INFINITY),
            Some("-Infinity") => Py::Float(f64::NEG_INFINITY),
            _ => Py::Str(s),
        },
        Py::List(items) => Py::List(items.into_iter().map(restore_constants).collect()),
        Py::Dict(pairs) => Py::Dict(pairs.into_iter().map(|(k, v)| (k, restore_constants(v))).collect()),
        other => other,
    }
}

/// The sampling values set from the generation config, one per `SAMPLING_FIELDS` entry.
/// A truthy non-dict (e.g. a JSON list) makes the reference's `.get` raise.
pub fn sampling_values(gen: &Py) -> Result<Vec<Option<Py>>, MetadataError> {
    if !gen.truthy() {
        return Ok(vec![None; SAMPLING_FIELDS.len()]);
    }
    if !matches!(gen, Py::Dict(_)) {
        return Err(MetadataError::WrongType {
            key: "generation_config.json".into(),
            expected: "dict".into(),
            found: gen.type_name().into(),
        });
    }
    Ok(SAMPLING_FIELDS
        .iter()
        .map(|(_, keys, _)| keys.iter().find_map(|k| gen.get(k)).filter(|v| !matches!(v, Py::None)).cloned())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repetition_penalty_is_the_fallback() {
        let g = load_generation_config(Some(br#"{"repetition_penalty": 1.1, "top_k": 20}"#)).unwrap();
        let v = sampling_values(&g).unwrap();
        assert_eq!(v[1], Some(Py::Int(20)));
        assert_eq!(v[8], Some(Py::Float(1.1)));
        let g = load_generation_config(Some(br#"{"penalty_repeat": null, "repetition_penalty": 1.1}"#)).unwrap();
        // `gen.get("penalty_repeat", ...)` returns the explicit null.
        assert_eq!(sampling_values(&g).unwrap()[8], None);
    }

    #[test]
    fn broken_json_is_ignored_but_lists_raise() {
        let g = load_generation_config(Some(b"{not json")).unwrap();
        assert!(sampling_values(&g).unwrap().iter().all(Option::is_none));
        let g = load_generation_config(Some(b"[1]")).unwrap();
        assert!(sampling_values(&g).is_err());
        assert!(load_generation_config(Some(b"{\"a\": \"\xff\"}")).is_err());
    }

    #[test]
    fn python_json_constants_are_accepted() {
        let g =
            load_generation_config(Some(br#"{"temperature": NaN, "top_p": -Infinity, "sequence": "NaN\"x"}"#)).unwrap();
        let v = sampling_values(&g).unwrap();
        assert!(matches!(v[6], Some(Py::Float(f)) if f.is_nan()));
        assert_eq!(v[2], Some(Py::Float(f64::NEG_INFINITY)));
        assert_eq!(v[0], Some(Py::Str("NaN\"x".into())));
    }
}
