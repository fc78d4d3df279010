//! A bounds-checked GGUF header reader, for `inspect`, tests and round-trip checks of the
//! writer. It never trusts a count or length from the file: every allocation is bounded by
//! the bytes that remain, so corrupt or hostile headers give errors, not panics or OOM.

use super::{pad, GgmlType, KvMap, TensorInfo, Value, ValueType, ALIGNMENT, MAGIC};

/// Why a buffer is not a readable GGUF header.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("not a GGUF file (magic {0:#010x})")]
    BadMagic(u32),
    #[error("unsupported GGUF version {0}")]
    BadVersion(u32),
    /// `needed_len` is a lower bound on the buffer length that could hold the header.
    #[error("header truncated at byte {at}: the buffer must hold at least {needed_len} bytes")]
    Truncated { at: usize, needed_len: usize },
    #[error("{what} count {count} at byte {at} exceeds what the remaining bytes can hold")]
    CountTooLarge { what: &'static str, count: u64, at: usize },
    #[error("unknown value type {code} at byte {at}")]
    BadValueType { code: u32, at: usize },
    #[error("unknown ggml type {code} for tensor {name:?}")]
    BadTensorType { code: u32, name: String },
    #[error("{what} at byte {at} is not UTF-8")]
    NotUtf8 { what: &'static str, at: usize },
    #[error("arrays nested deeper than {MAX_NESTING} levels at byte {at}")]
    TooDeep { at: usize },
    #[error("general.alignment {0} is not a usable power of two")]
    BadAlignment(u64),
}

/// The parsed header of a GGUF file.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufHeader {
    pub version: u32,
    /// KVs exactly as stored (no skip-if-empty rule), in file order.
    pub kv: KvMap,
    pub tensors: Vec<TensorInfo>,
    /// Where the data section starts: the end of the tensor infos padded to the alignment.
    pub header_size: u64,
    /// `general.alignment` if present, else 32.
    pub alignment: u64,
}

/// Arrays inside arrays are legal GGUF but never written by the reference; a small cap keeps
/// recursion bounded.
const MAX_NESTING: usize = 4;
/// tensor n_dims above this is corrupt (ggml's GGML_MAX_DIMS is 4).
const MAX_DIMS: u32 = 8;

/// Parses the header from the start of a GGUF file. `bytes` may hold the whole file or just
/// a prefix; a prefix that is too short gives `Truncated` (retry with more bytes).
pub fn read_header(bytes: &[u8]) -> Result<GgufHeader, ReadError> {
    let mut r = Cursor { bytes, at: 0 };
    let magic = r.u32()?;
    if magic != MAGIC {
        return Err(ReadError::BadMagic(magic));
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return Err(ReadError::BadVersion(version));
    }
    // Each tensor info takes ≥ 24 bytes and each KV ≥ 12, which bounds the counts.
    let n_tensors = r.count("tensor", 24)?;
    let n_kv = r.count("kv", 12)?;
    let mut kv = KvMap::new();
    for _ in 0..n_kv {
        let key = r.string("key")?;
        let ty = r.value_type()?;
        let value = r.value(ty, 0)?;
        kv.set_raw(key, value);
    }
    let mut tensors = Vec::with_capacity(n_tensors);
    for _ in 0..n_tensors {
        tensors.push(r.tensor_info()?);
    }
    let alignment = match kv.get("general.alignment") {
        None => ALIGNMENT,
        Some(Value::U32(a)) if a.is_power_of_two() => *a as u64,
        Some(Value::U32(a)) => return Err(ReadError::BadAlignment(*a as u64)),
        Some(_) => return Err(ReadError::BadAlignment(0)),
    };
    Ok(GgufHeader { version, kv, tensors, header_size: pad(r.at as u64, alignment), alignment })
}

/// How many bytes a caller should read before `read_header` can succeed: `Ok(None)` when
/// `bytes` already holds the whole header, `Ok(Some(n))` for a lower bound on the prefix
/// length to retry with (grow geometrically), or the real error for corrupt data.
pub fn needed_prefix(bytes: &[u8]) -> Result<Option<usize>, ReadError> {
    match read_header(bytes) {
        Ok(_) => Ok(None),
        Err(ReadError::Truncated { needed_len, .. }) => Ok(Some(needed_len)),
        Err(e) => Err(e),
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let rest = self.bytes.get(self.at..).unwrap_or_default();
        match rest.get(..n) {
            Some(s) => {
                self.at += n;
                Ok(s)
            }
            None => Err(ReadError::Truncated { at: self.at, needed_len: self.at.saturating_add(n) }),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, ReadError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ReadError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.at)
    }

    /// A u64 count of items that take at least `min_size` bytes each, refused if the
    /// remaining bytes cannot hold that many (a truncated prefix reads as `Truncated`).
    fn count(&mut self, what: &'static str, min_size: usize) -> Result<usize, ReadError> {
        let at = self.at;
        let count = self.u64()?;
        let need = count.saturating_mul(min_size as u64);
        if need > self.remaining() as u64 {
            if need <= usize::MAX as u64 / 2 && count <= u32::MAX as u64 {
                return Err(ReadError::Truncated { at: self.at, needed_len: self.at.saturating_add(need as usize) });
            }
            return Err(ReadError::CountTooLarge { what, count, at });
        }
        Ok(count as usize)
    }

    fn bytes_with_len(&mut self) -> Result<&'a [u8], ReadError> {
        let at = self.at;
        let len = self.u64()?;
        let len =
            usize::try_from(len).map_err(|_| ReadError::CountTooLarge { what: "string length", count: len, at })?;
        self.take(len)
    }

    fn string(&mut self, what: &'static str) -> Result<String, ReadError> {
        let at = self.at;
        let b = self.bytes_with_len()?;
        String::from_utf8(b.to_vec()).map_err(|_| ReadError::NotUtf8 { what, at })
    }

    fn value_type(&mut self) -> Result<ValueType, ReadError> {
        let at = self.at;
        let code = self.u32()?;
        ValueType::from_u32(code).ok_or(ReadError::BadValueType { code, at })
    }

    fn value(&mut self, ty: ValueType, depth: usize) -> Result<Value, ReadError> {
        Ok(match ty {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array()?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array()?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array()?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array()?)),
            ValueType::U32 => Value::U32(self.u32()?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array()?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array()?)),
            ValueType::Bool => Value::Bool(self.array::<1>()?[0] != 0),
            ValueType::String => Value::String(self.bytes_with_len()?.to_vec()),
            ValueType::U64 => Value::U64(self.u64()?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array()?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array()?)),
            ValueType::Array => self.array_value(depth)?,
        })
    }

    fn array_value(&mut self, depth: usize) -> Result<Value, ReadError> {
        if depth >= MAX_NESTING {
            return Err(ReadError::TooDeep { at: self.at });
        }
        let et = self.value_type()?;
        let n = self.count("array element", min_encoded_size(et))?;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.value(et, depth + 1)?);
        }
        Ok(Value::Array(et, items))
    }

    fn tensor_info(&mut self) -> Result<TensorInfo, ReadError> {
        let name = self.string("tensor name")?;
        let at = self.at;
        let n_dims = self.u32()?;
        if n_dims > MAX_DIMS {
            return Err(ReadError::CountTooLarge { what: "tensor dimension", count: n_dims as u64, at });
        }
        let ne = (0..n_dims).map(|_| self.u64()).collect::<Result<Vec<_>, _>>()?;
        let code = self.u32()?;
        let ty = GgmlType::from_code(code).ok_or_else(|| ReadError::BadTensorType { code, name: name.clone() })?;
        let offset = self.u64()?;
        Ok(TensorInfo { name, ne, ty, offset })
    }
}

/// The fewest bytes one encoded element of `ty` can take (strings and arrays: their u64 length).
fn min_encoded_size(ty: ValueType) -> usize {
    use ValueType::*;
    match ty {
        U8 | I8 | Bool => 1,
        U16 | I16 => 2,
        U32 | I32 | F32 => 4,
        U64 | I64 | F64 | String => 8,
        Array => 12,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::writer::header_bytes;
    use crate::testutil::{assert_kvs_match, golden, shared_dir, FIXTURES};
    use proptest::prelude::*;

    fn header_bin(repo: &str) -> Vec<u8> {
        let p = shared_dir().join("fixtures/golden").join(repo).join("F16.header.bin");
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn golden_headers_parse_and_reencode_byte_identically() {
        for repo in FIXTURES {
            let bin = header_bin(repo);
            let g = golden(repo, "F16");
            let h = read_header(&bin).unwrap_or_else(|e| panic!("{repo}: {e}"));
            assert_eq!(h.version, 3);
            assert_eq!(h.header_size, g["file"]["header_size"].as_u64().unwrap(), "{repo}");
            assert_eq!(h.header_size, bin.len() as u64, "{repo}");
            assert_kvs_match(&h.kv, &g, |_| true);
            let want: Vec<(String, String, Vec<u64>, u64)> = g["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let ne = t["ne"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect();
                    (
                        t["name"].as_str().unwrap().into(),
                        t["type"].as_str().unwrap().into(),
                        ne,
                        t["offset"].as_u64().unwrap(),
                    )
                })
                .collect();
            let got: Vec<(String, String, Vec<u64>, u64)> =
                h.tensors.iter().map(|t| (t.name.clone(), t.ty.name().into(), t.ne.clone(), t.offset)).collect();
            assert_eq!(got, want, "{repo} tensor table");
            assert!(header_bytes(&h.kv, &h.tensors) == bin, "{repo}: writer output differs from the reference header");
            assert_eq!(needed_prefix(&bin), Ok(None));
        }
    }

    #[test]
    fn prefixes_ask_for_more_bytes() {
        let bin = header_bin("HuggingFaceTB/SmolLM2-135M-Instruct");
        let mut len = 16;
        let mut rounds = 0;
        while let Some(need) = needed_prefix(&bin[..len]).expect("a prefix is not corrupt") {
            assert!(need > len, "progress");
            len = need.max(len * 2).min(bin.len());
            rounds += 1;
        }
        assert!(rounds > 3);
        assert_eq!(read_header(&bin[..len]).unwrap().header_size, bin.len() as u64);
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(read_header(b"GGML\x03\0\0\0"), Err(ReadError::BadMagic(0x4c4d_4747)));
        let mut huge = b"GGUF\x03\0\0\0".to_vec();
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        huge.extend_from_slice(&0u64.to_le_bytes());
        assert!(matches!(read_header(&huge), Err(ReadError::CountTooLarge { .. })));
    }

    fn small_header() -> &'static [u8] {
        static BIN: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        // A real header without its big vocabulary arrays, so each case parses quickly.
        BIN.get_or_init(|| {
            let h = read_header(&header_bin("microsoft/Phi-3.5-mini-instruct")).unwrap();
            let mut kv = KvMap::new();
            for (k, v) in h.kv.entries() {
                if !matches!(v, Value::Array(_, items) if items.len() > 64) {
                    kv.set_raw(k.clone(), v.clone());
                }
            }
            header_bytes(&kv, &h.tensors)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn corrupt_headers_never_panic(cuts in 0usize..4096, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
            let mut bin = small_header().to_vec();
            for (at, byte) in edits {
                let i = at % bin.len();
                bin[i] = byte;
            }
            let len = bin.len().saturating_sub(cuts * 7);
            let _ = read_header(&bin[..len]);
            let _ = needed_prefix(&bin[..len]);
        }
    }
}
