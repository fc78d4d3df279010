//! Safetensors headers: parsing and validation (shape × dtype == span, spans in bounds and
//! disjoint). Pure: the bytes come from `source`.

/// Element types a safetensors file may hold (the reference accepts these; U16/U32/U64 it refuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    F64,
    F32,
    BF16,
    F16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
    F8E4M3,
    F8E5M2,
}

impl Dtype {
    /// Parses the header's dtype string.
    pub fn parse(s: &str) -> Option<Self> {
        use Dtype::*;
        Some(match s {
            "F64" => F64,
            "F32" => F32,
            "BF16" => BF16,
            "F16" => F16,
            "I64" => I64,
            "I32" => I32,
            "I16" => I16,
            "I8" => I8,
            "U8" => U8,
            "BOOL" => Bool,
            "F8_E4M3" => F8E4M3,
            "F8_E5M2" => F8E5M2,
            _ => return None,
        })
    }

    /// The header's spelling.
    pub fn name(self) -> &'static str {
        use Dtype::*;
        match self {
            F64 => "F64",
            F32 => "F32",
            BF16 => "BF16",
            F16 => "F16",
            I64 => "I64",
            I32 => "I32",
            I16 => "I16",
            I8 => "I8",
            U8 => "U8",
            Bool => "BOOL",
            F8E4M3 => "F8_E4M3",
            F8E5M2 => "F8_E5M2",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> u64 {
        use Dtype::*;
        match self {
            F64 | I64 => 8,
            F32 | I32 => 4,
            BF16 | F16 | I16 => 2,
            I8 | U8 | Bool | F8E4M3 | F8E5M2 => 1,
        }
    }
}

/// Largest header ggufs accepts: safetensors itself caps headers at 100 MB.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// One tensor entry of a safetensors header, with offsets made absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderTensor {
    pub name: String,
    pub dtype: Dtype,
    /// numpy order (outermost first).
    pub shape: Vec<u64>,
    /// Absolute file offset of the first data byte (`8 + header_len + data_offsets[0]`).
    pub start: u64,
    /// Byte length of the data.
    pub len: u64,
}

/// Why a safetensors header is unusable; each says which tensor and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SafetensorsError {
    #[error("file too short for a safetensors header: {0} bytes")]
    TooShort(usize),
    #[error("header length {0} is over the 100000000-byte limit")]
    HeaderTooLong(u64),
    #[error("header ({header_len} bytes) does not fit in the {file_size}-byte file")]
    HeaderPastEnd { header_len: u64, file_size: u64 },
    #[error("header is not valid JSON: {0}")]
    Json(String),
    #[error("header is not a JSON object")]
    NotAnObject,
    #[error("tensor {name:?}: {problem}")]
    Tensor { name: String, problem: String },
    #[error("tensors {first:?} and {second:?} overlap")]
    Overlap { first: String, second: String },
    /// The safetensors format forbids holes: the tensors must cover the data section exactly.
    /// A header whose length or offsets were altered (bit rot, a bad proxy) shows up here, so
    /// shifted data is never read as tensors.
    #[error("tensors do not cover the {data_len}-byte data section exactly: {problem}")]
    NotContiguous { data_len: u64, problem: String },
}

/// The JSON header's length, from the first 8 bytes of a file (little-endian u64).
pub fn header_len(prefix: &[u8]) -> Result<u64, SafetensorsError> {
    let bytes: [u8; 8] =
        prefix.get(..8).and_then(|b| b.try_into().ok()).ok_or(SafetensorsError::TooShort(prefix.len()))?;
    let len = u64::from_le_bytes(bytes);
    if len > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLong(len));
    }
    Ok(len)
}

/// Parses and validates the header JSON (`json` = the `header_len` bytes after the length) of a
/// `file_size`-byte file. Returns the tensors sorted by name (code point order, as the
/// reference converter orders them); `__metadata__` is ignored.
pub fn parse_header(json: &[u8], file_size: u64) -> Result<Vec<HeaderTensor>, SafetensorsError> {
    let header_len = json.len() as u64;
    if header_len > MAX_HEADER_LEN {
        return Err(SafetensorsError::HeaderTooLong(header_len));
    }
    let data_start = 8 + header_len;
    if data_start > file_size {
        return Err(SafetensorsError::HeaderPastEnd { header_len, file_size });
    }
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| SafetensorsError::Json(e.to_string()))?;
    let map = value.as_object().ok_or(SafetensorsError::NotAnObject)?;
    let data_len = file_size - data_start;
    let mut tensors = Vec::with_capacity(map.len());
    for (name, entry) in map.iter().filter(|(k, _)| k.as_str() != "__metadata__") {
        let bad = |problem: String| SafetensorsError::Tensor { name: name.clone(), problem };
        let (dtype, shape, begin, end) = parse_entry(entry).map_err(bad)?;
        let n_bytes = shape
            .iter()
            .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
        if end - begin != n_bytes {
            return Err(bad(format!(
                "shape {shape:?} of {} needs {n_bytes} bytes but data_offsets [{begin}, {end}] span {}",
                dtype.name(),
                end - begin
            )));
        }
        if end > data_len {
            return Err(bad(format!("data_offsets [{begin}, {end}] run past the {data_len}-byte data section")));
        }
        tensors.push(HeaderTensor { name: name.clone(), dtype, shape, start: data_start + begin, len: n_bytes });
    }
    check_disjoint(&tensors)?;
    check_contiguous(&tensors, data_start, data_len)?;
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tensors)
}

/// `(dtype, shape, begin, end)` of one header entry, or what is wrong with it.
fn parse_entry(entry: &serde_json::Value) -> Result<(Dtype, Vec<u64>, u64, u64), String> {
    let obj = entry.as_object().ok_or("entry is not a JSON object")?;
    let dtype_str = obj.get("dtype").and_then(|d| d.as_str()).ok_or("missing or non-string dtype")?;
    let dtype = Dtype::parse(dtype_str).ok_or_else(|| format!("unsupported dtype {dtype_str:?}"))?;
    let shape = obj
        .get("shape")
        .and_then(|s| s.as_array())
        .ok_or("missing or non-array shape")?
        .iter()
        .map(|d| d.as_u64().ok_or_else(|| format!("shape entry {d} is not a non-negative integer")))
        .collect::<Result<Vec<u64>, String>>()?;
    let offsets = obj.get("data_offsets").and_then(|o| o.as_array()).ok_or("missing or non-array data_offsets")?;
    let (begin, end) = match offsets.as_slice() {
        [b, e] => (b.as_u64(), e.as_u64()),
        _ => return Err(format!("data_offsets has {} entries, expected 2", offsets.len())),
    };
    let (begin, end) = begin.zip(end).ok_or("data_offsets are not non-negative integers")?;
    if begin > end {
        return Err(format!("data_offsets [{begin}, {end}] are reversed"));
    }
    Ok((dtype, shape, begin, end))
}

/// Tensors (disjoint, checked before) must tile `[data_start, data_start + data_len)`.
fn check_contiguous(tensors: &[HeaderTensor], data_start: u64, data_len: u64) -> Result<(), SafetensorsError> {
    let mut spans: Vec<(u64, u64)> = tensors.iter().filter(|t| t.len > 0).map(|t| (t.start, t.len)).collect();
    spans.sort_unstable();
    let mut at = data_start;
    for (start, len) in spans {
        if start != at {
            let problem = format!("hole of {} bytes at data offset {}", start.saturating_sub(at), at - data_start);
            return Err(SafetensorsError::NotContiguous { data_len, problem });
        }
        at = start + len;
    }
    if at != data_start + data_len {
        let problem = format!("{} bytes after the last tensor", data_start + data_len - at);
        return Err(SafetensorsError::NotContiguous { data_len, problem });
    }
    Ok(())
}

/// Two tensors sharing bytes would make one conversion read the other's data.
fn check_disjoint(tensors: &[HeaderTensor]) -> Result<(), SafetensorsError> {
    let mut by_start: Vec<&HeaderTensor> = tensors.iter().filter(|t| t.len > 0).collect();
    by_start.sort_by_key(|t| (t.start, t.len));
    for pair in by_start.windows(2) {
        if let [a, b] = pair {
            if b.start < a.start + a.len {
                return Err(SafetensorsError::Overlap { first: a.name.clone(), second: b.name.clone() });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The header JSON and size of a real fixture file.
    fn fixture_header() -> (Vec<u8>, u64) {
        let path = crate::testutil::fixture_dir("HuggingFaceTB/SmolLM2-135M-Instruct").join("model.safetensors");
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let len = header_len(&bytes).unwrap() as usize;
        (bytes[8..8 + len].to_vec(), bytes.len() as u64)
    }

    fn one(entry: &str, file_size: u64) -> Result<Vec<HeaderTensor>, SafetensorsError> {
        let json = format!(r#"{{"__metadata__":{{"format":"pt"}},{entry}}}"#);
        parse_header(json.as_bytes(), 8 + json.len() as u64 + file_size)
    }

    #[test]
    fn real_fixture_header_parses_sorted_and_consistent() {
        let (json, size) = fixture_header();
        let tensors = parse_header(&json, size).unwrap();
        assert!(tensors.len() > 10);
        assert!(tensors.windows(2).all(|w| w[0].name < w[1].name));
        let embed = tensors.iter().find(|t| t.name == "model.embed_tokens.weight").unwrap();
        assert_eq!((embed.dtype, embed.shape.clone()), (Dtype::BF16, vec![49152, 64]));
        assert_eq!(embed.len, 49152 * 64 * 2);
        assert!(tensors.iter().all(|t| t.start >= 8 + json.len() as u64 && t.start + t.len <= size));
    }

    #[test]
    fn header_len_limits() {
        assert_eq!(header_len(&[1, 0, 0, 0, 0, 0, 0, 0, 9]), Ok(1));
        assert_eq!(header_len(&[1, 2, 3]), Err(SafetensorsError::TooShort(3)));
        let big = (MAX_HEADER_LEN + 1).to_le_bytes();
        assert_eq!(header_len(&big), Err(SafetensorsError::HeaderTooLong(MAX_HEADER_LEN + 1)));
    }

    #[test]
    fn truncated_json_is_rejected() {
        let (json, size) = fixture_header();
        let cut = &json[..json.len() / 2];
        assert!(matches!(parse_header(cut, size), Err(SafetensorsError::Json(_))));
        assert_eq!(parse_header(b"[1,2]", 100), Err(SafetensorsError::NotAnObject));
    }

    #[test]
    fn header_longer_than_file_is_rejected() {
        assert!(matches!(parse_header(b"{}", 9), Err(SafetensorsError::HeaderPastEnd { .. })));
    }

    #[test]
    fn offsets_out_of_range_name_the_tensor() {
        let e = one(r#""w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, 4).unwrap_err();
        assert!(
            matches!(&e, SafetensorsError::Tensor { name, problem } if name == "w" && problem.contains("past")),
            "{e}"
        );
    }

    #[test]
    fn span_must_match_shape_times_dtype() {
        let e = one(r#""w":{"dtype":"F16","shape":[3],"data_offsets":[0,8]}"#, 8).unwrap_err();
        assert!(e.to_string().contains("needs 6 bytes"), "{e}");
        let ok = one(r#""w":{"dtype":"F16","shape":[],"data_offsets":[0,2]}"#, 2).unwrap();
        assert_eq!(ok[0].len, 2);
    }

    #[test]
    fn holes_and_trailing_bytes_are_rejected() {
        let hole = one(
            r#""a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}"#,
            12,
        );
        assert!(matches!(hole, Err(SafetensorsError::NotContiguous { .. })), "{hole:?}");
        let tail = one(r#""a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#, 5);
        assert!(matches!(tail, Err(SafetensorsError::NotContiguous { .. })), "{tail:?}");
        assert!(one(r#""a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#, 4).is_ok());
    }

    /// Regression (fault matrix): a header length off by one that drops a padding space is still
    /// valid JSON; without the contiguity check every tensor would be read one byte off.
    #[test]
    fn a_header_length_off_by_one_is_rejected() {
        let (json, size) = fixture_header();
        assert_eq!(json.last(), Some(&b' '), "fixture header is padded");
        let shorter = &json[..json.len() - 1];
        assert!(matches!(parse_header(shorter, size), Err(SafetensorsError::NotContiguous { .. })));
    }

    #[test]
    fn overlapping_spans_are_rejected() {
        let e = one(
            r#""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}"#,
            12,
        )
        .unwrap_err();
        assert_eq!(e, SafetensorsError::Overlap { first: "a".into(), second: "b".into() });
    }

    #[test]
    fn unknown_dtype_is_rejected() {
        let e = one(r#""w":{"dtype":"U32","shape":[1],"data_offsets":[0,4]}"#, 4).unwrap_err();
        assert!(e.to_string().contains("w") && e.to_string().contains("U32"), "{e}");
    }

    #[test]
    fn shape_overflow_is_an_error_not_a_panic() {
        let e = one(r#""w":{"dtype":"F64","shape":[18446744073709551615,4],"data_offsets":[0,8]}"#, 8).unwrap_err();
        assert!(e.to_string().contains("overflows"), "{e}");
    }

    #[test]
    fn names_sort_by_code_point() {
        let t = one(
            r#""b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"B":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"é":{"dtype":"U8","shape":[0],"data_offsets":[2,2]}"#,
            2,
        )
        .unwrap();
        let names: Vec<&str> = t.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["B", "b", "é"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Random byte edits of a real header never panic, and any error has a non-empty message.
        #[test]
        fn corrupted_headers_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in proptest::option::of(any::<prop::sample::Index>()),
            size_delta in -64i64..64,
        ) {
            let (mut json, size) = fixture_header();
            for (at, byte) in edits {
                let i = at.index(json.len());
                json[i] = byte;
            }
            if let Some(c) = cut {
                json.truncate(c.index(json.len()));
            }
            let size = size.saturating_add_signed(size_delta);
            match parse_header(&json, size) {
                Ok(ts) => {
                    for t in &ts {
                        prop_assert!(t.start + t.len <= size);
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
