//! A GGUF header described the way gguf-py's `gguf_dump.py` describes a file, so that people
//! (and scripts) used to `gguf_dump` can read `ggufs inspect` for a virtual file before any
//! byte of it exists: the same pseudo-fields (`GGUF.version`, `GGUF.tensor_count`,
//! `GGUF.kv_count`), the same record offsets, type names and value rendering, both for the
//! text form and for `--json` (with `--json-array` and `--no-tensors`).

use serde_json::{json, Map, Value as Json};

use crate::gguf::reader::{read_header, GgufHeader, ReadError};
use crate::gguf::Value;

/// Which parts of the dump to produce (gguf_dump's flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpOptions {
    /// Include array contents in JSON (`--json-array`); without it arrays carry only their types.
    pub json_array: bool,
    /// Leave the tensor list out (`--no-tensors`).
    pub no_tensors: bool,
}

/// One KV record as gguf_dump lists it: the header pseudo-fields first, then the file's KVs.
struct Field<'a> {
    name: &'a str,
    value: Value,
    /// Byte offset of the record in the file.
    offset: u64,
}

/// Magic (4) + version (4) + tensor count (8) + KV count (8).
const FIRST_KV_OFFSET: u64 = 24;

/// The gguf_dump `--json` document for the header in `bytes`, under the name `filename`.
pub fn dump_json(bytes: &[u8], filename: &str, opts: DumpOptions) -> Result<Json, ReadError> {
    let header = read_header(bytes)?;
    let mut metadata = Map::new();
    for (index, f) in fields(&header).iter().enumerate() {
        let mut entry = Map::new();
        entry.insert("index".into(), json!(index));
        entry.insert("type".into(), json!(f.value.value_type().name()));
        entry.insert("offset".into(), json!(f.offset));
        if let Value::Array(et, _) = &f.value {
            entry.insert("array_types".into(), json!([et.name()]));
            if !opts.json_array {
                metadata.insert(f.name.to_string(), Json::Object(entry));
                continue;
            }
        }
        entry.insert("value".into(), json_value(&f.value));
        metadata.insert(f.name.to_string(), Json::Object(entry));
    }
    let mut tensors = Map::new();
    if !opts.no_tensors {
        for (index, (t, offset)) in header.tensors.iter().zip(tensor_offsets(&header)).enumerate() {
            tensors
                .insert(t.name.clone(), json!({"index": index, "shape": t.ne, "type": t.ty.name(), "offset": offset}));
        }
    }
    Ok(json!({"filename": filename, "endian": "LITTLE", "metadata": metadata, "tensors": tensors}))
}

/// The gguf_dump text listing (without its `--markdown` mode) for the header in `bytes`.
pub fn dump_text(bytes: &[u8], opts: DumpOptions) -> Result<String, ReadError> {
    let header = read_header(bytes)?;
    let fields = fields(&header);
    let mut out = String::from("* File is LITTLE endian, script is running on a LITTLE endian host.\n");
    out.push_str(&format!("* Dumping {} key/value pair(s)\n", fields.len()));
    for (n, f) in fields.iter().enumerate() {
        let (pretty_type, count) = match &f.value {
            Value::Array(et, items) => (format!("[{}]", et.name()), items.len()),
            v => (v.value_type().name().to_string(), 1),
        };
        out.push_str(&format!("  {:5}: {pretty_type:10} | {count:8} | {} = {}\n", n + 1, f.name, text_value(&f.value)));
    }
    if opts.no_tensors {
        return Ok(out);
    }
    out.push_str(&format!("* Dumping {} tensor(s)\n", header.tensors.len()));
    for (n, t) in header.tensors.iter().enumerate() {
        let dims: Vec<String> =
            t.ne.iter()
                .copied()
                .chain(std::iter::repeat(1))
                .take(t.ne.len().max(4))
                .map(|d| format!("{d:5}"))
                .collect();
        out.push_str(&format!(
            "  {:5}: {:10} | {} | {:7} | {}\n",
            n + 1,
            t.n_elements(),
            dims.join(", "),
            t.ty.name(),
            t.name
        ));
    }
    Ok(out)
}

/// The pseudo-fields and KVs with the offsets of their records.
fn fields(header: &GgufHeader) -> Vec<Field<'_>> {
    let mut out = vec![
        Field { name: "GGUF.version", value: Value::U32(header.version), offset: 4 },
        Field { name: "GGUF.tensor_count", value: Value::U64(header.tensors.len() as u64), offset: 8 },
        Field { name: "GGUF.kv_count", value: Value::U64(header.kv.len() as u64), offset: 16 },
    ];
    let mut offset = FIRST_KV_OFFSET;
    for (key, value) in header.kv.entries() {
        out.push(Field { name: key, value: value.clone(), offset });
        offset += 8 + key.len() as u64 + 4 + value_len(value);
    }
    out
}

/// Offsets of the tensor-info records, which follow the last KV.
fn tensor_offsets(header: &GgufHeader) -> Vec<u64> {
    let mut offset =
        FIRST_KV_OFFSET + header.kv.entries().iter().map(|(k, v)| 8 + k.len() as u64 + 4 + value_len(v)).sum::<u64>();
    header
        .tensors
        .iter()
        .map(|t| {
            let at = offset;
            offset += 8 + t.name.len() as u64 + 4 + 8 * t.ne.len() as u64 + 4 + 8;
            at
        })
        .collect()
}

/// Encoded size of a value (after its type tag).
fn value_len(v: &Value) -> u64 {
    match v {
        Value::U8(_) | Value::I8(_) | Value::Bool(_) => 1,
        Value::U16(_) | Value::I16(_) => 2,
        Value::U32(_) | Value::I32(_) | Value::F32(_) => 4,
        Value::U64(_) | Value::I64(_) | Value::F64(_) => 8,
        Value::String(b) => 8 + b.len() as u64,
        Value::Array(_, items) => 4 + 8 + items.iter().map(value_len).sum::<u64>(),
    }
}

/// A value as gguf-py's `contents()` gives it to `json.dump`.
fn json_value(v: &Value) -> Json {
    match v {
        Value::U8(x) => json!(x),
        Value::I8(x) => json!(x),
        Value::U16(x) => json!(x),
        Value::I16(x) => json!(x),
        Value::U32(x) => json!(x),
        Value::I32(x) => json!(x),
        Value::U64(x) => json!(x),
        Value::I64(x) => json!(x),
        Value::F32(x) => json!(*x as f64),
        Value::F64(x) => json!(x),
        Value::Bool(b) => json!(b),
        Value::String(b) => json!(String::from_utf8_lossy(b)),
        Value::Array(_, items) => Json::Array(items.iter().map(json_value).collect()),
    }
}

/// A value as gguf_dump prints it: strings cut to 60 characters and `repr`'d, arrays as the
/// `repr` of their first 6 elements with `, ...]` when longer.
fn text_value(v: &Value) -> String {
    match v {
        Value::String(b) => {
            let s = String::from_utf8_lossy(b);
            if s.chars().count() > 60 {
                py_repr_str(&format!("{}...", s.chars().take(57).collect::<String>()))
            } else {
                py_repr_str(&s)
            }
        }
        Value::Array(_, items) => {
            let shown: Vec<String> = items.iter().take(6).map(py_repr).collect();
            if items.len() > 6 {
                format!("[{}, ...]", shown.join(", "))
            } else {
                format!("[{}]", shown.join(", "))
            }
        }
        scalar => py_repr(scalar),
    }
}

/// Python's `repr` of a scalar value.
fn py_repr(v: &Value) -> String {
    match v {
        Value::F32(x) => py_repr_float(*x as f64),
        Value::F64(x) => py_repr_float(*x),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(b) => py_repr_str(&String::from_utf8_lossy(b)),
        Value::Array(..) => text_value(v),
        Value::U8(x) => x.to_string(),
        Value::I8(x) => x.to_string(),
        Value::U16(x) => x.to_string(),
        Value::I16(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
    }
}

/// Python's `repr(float)`: the shortest round-trip digits, positional for exponents in
/// [-4, 16), otherwise `d.ddde±XX`.
pub fn py_repr_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // Rust's `{:e}` gives the same shortest round-trip digits Python uses.
    let sci = format!("{x:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else { return sci };
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..16).contains(&exp) {
        let s = format!("{x}");
        if s.contains('.') {
            s
        } else {
            format!("{s}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

/// Python's `repr(str)`: single quotes unless the text has `'` and no `"`; backslash escapes
/// for the quote, `\\`, `\n`, `\r`, `\t` and non-printable characters.
pub fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !py_printable(c) => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable` for one character, approximately: controls, separators other
/// than the space, and the common format characters are not printable.
fn py_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    let format_char = matches!(c as u32, 0xad | 0x200b..=0x200f | 0x2028..=0x202e | 0x2060..=0x2064 | 0xfeff);
    !(c.is_control() || c.is_whitespace() || format_char)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::ValueType;

    #[test]
    fn floats_print_like_python_repr() {
        assert_eq!(py_repr_float(1e-5f32 as f64), "9.999999747378752e-06");
        assert_eq!(py_repr_float(100000.0), "100000.0");
        assert_eq!(py_repr_float(0.5), "0.5");
        assert_eq!(py_repr_float(1e16), "1e+16");
        assert_eq!(py_repr_float(0.0001), "0.0001");
        assert_eq!(py_repr_float(-2.5e-7), "-2.5e-07");
    }

    #[test]
    fn strings_print_like_python_repr() {
        assert_eq!(py_repr_str("llama"), "'llama'");
        assert_eq!(py_repr_str("it's"), "\"it's\"");
        assert_eq!(py_repr_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr_str("x\ny\\"), "'x\\ny\\\\'");
        assert_eq!(py_repr_str("Ġt\u{0}\u{a0}"), "'Ġt\\x00\\xa0'");
    }

    #[test]
    fn arrays_show_six_elements_then_an_ellipsis() {
        let v = Value::Array(ValueType::I32, (0..8).map(Value::I32).collect());
        assert_eq!(text_value(&v), "[0, 1, 2, 3, 4, 5, ...]");
        let v = Value::str_array(["a", "b"]);
        assert_eq!(text_value(&v), "['a', 'b']");
    }

    /// The reference converter's own header bytes, dumped by us, equal what gguf_dump printed
    /// for the same file (JSON as values, text byte for byte).
    #[test]
    fn the_golden_header_dumps_exactly_like_gguf_dump() {
        let repo = "HuggingFaceTB/SmolLM2-135M-Instruct";
        let header = crate::testutil::shared_dir().join("fixtures/golden").join(repo).join("F16.header.bin");
        let bytes = std::fs::read(&header).unwrap_or_else(|e| panic!("{}: {e}", header.display()));
        let expected = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inspect");
        let want: Json =
            serde_json::from_slice(&std::fs::read(expected.join("SmolLM2-135M-Instruct-F16.dump.json")).unwrap())
                .unwrap();
        let got = dump_json(&bytes, "SmolLM2-135M-Instruct-F16.gguf", DumpOptions::default()).unwrap();
        assert_eq!(got, want);
        let want_text = std::fs::read_to_string(expected.join("SmolLM2-135M-Instruct-F16.dump.txt")).unwrap();
        assert_eq!(dump_text(&bytes, DumpOptions::default()).unwrap(), want_text);
    }

    #[test]
    fn json_arrays_and_tensors_follow_the_flags() {
        let repo = "HuggingFaceTB/SmolLM2-135M-Instruct";
        let header = crate::testutil::shared_dir().join("fixtures/golden").join(repo).join("F16.header.bin");
        let bytes = std::fs::read(&header).unwrap();
        let got = dump_json(&bytes, "x", DumpOptions { json_array: true, no_tensors: true }).unwrap();
        assert_eq!(got["metadata"]["tokenizer.ggml.tokens"]["value"].as_array().map(Vec::len), Some(49152));
        assert_eq!(got["metadata"]["tokenizer.ggml.token_type"]["value"][0], 3);
        assert_eq!(got["tensors"], json!({}));
        let text = dump_text(&bytes, DumpOptions { json_array: false, no_tensors: true }).unwrap();
        assert!(!text.contains("tensor(s)") && text.contains("key/value pair(s)"));
    }
}
