//! GGUF metadata values and the insertion-ordered KV map the reference writer keeps.

/// GGUF value type codes as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    /// Decodes a type code read from a file.
    pub fn from_u32(v: u32) -> Option<Self> {
        use ValueType::*;
        Some(match v {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The name goldens and gguf-dump use (`UINT32`, `STRING`, ...).
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "UINT8",
            I8 => "INT8",
            U16 => "UINT16",
            I16 => "INT16",
            U32 => "UINT32",
            I32 => "INT32",
            F32 => "FLOAT32",
            Bool => "BOOL",
            String => "STRING",
            Array => "ARRAY",
            U64 => "UINT64",
            I64 => "INT64",
            F64 => "FLOAT64",
        }
    }
}

/// One GGUF metadata value. Strings are bytes because the reference writes `bytes` tokens raw
/// (SentencePiece pieces need not be valid UTF-8).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(Vec<u8>),
    U64(u64),
    I64(i64),
    F64(f64),
    /// Homogeneous array: element type plus elements (each of that type).
    Array(ValueType, Vec<Value>),
}

impl Value {
    /// A STRING value from text.
    pub fn str(s: impl AsRef<str>) -> Self {
        Value::String(s.as_ref().as_bytes().to_vec())
    }

    /// A STRING array from texts.
    pub fn str_array<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Self {
        Value::Array(
            ValueType::String,
            items.into_iter().map(Value::str).collect(),
        )
    }

    /// The type code of this value.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
            Value::Array(..) => ValueType::Array,
        }
    }

    /// The text of a STRING value, if it is one and valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// The KV list of a GGUF file with the reference writer's semantics (hazard H10): insertion
/// order, and re-adding a key replaces its value in place, keeping its first position.
/// Empty strings and empty arrays are not added (the reference's `add_string`/`add_array` skip them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KvMap {
    entries: Vec<(String, Value)>,
}

impl KvMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces `key`, following the reference's skip-if-empty rule.
    pub fn set(&mut self, key: impl Into<String>, value: Value) {
        let skip = match &value {
            Value::String(s) => s.is_empty(),
            Value::Array(_, v) => v.is_empty(),
            _ => false,
        };
        if skip {
            return;
        }
        self.set_raw(key.into(), value);
    }

    /// Adds or replaces `key` unconditionally (used by readers, which keep what the file has).
    pub fn set_raw(&mut self, key: String, value: Value) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Removes a key (the reference's `add_chat_template(None)`).
    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|(k, _)| k != key);
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// All entries in file order.
    pub fn entries(&self) -> &[(String, Value)] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no entry was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readding_a_key_keeps_its_first_position() {
        let mut kv = KvMap::new();
        kv.set("a", Value::U32(1));
        kv.set("b", Value::U32(2));
        kv.set("a", Value::F32(3.0));
        assert_eq!(kv.entries()[0], ("a".to_string(), Value::F32(3.0)));
        assert_eq!(kv.entries()[1].0, "b");
    }

    #[test]
    fn empty_strings_and_arrays_are_not_added() {
        let mut kv = KvMap::new();
        kv.set("s", Value::str(""));
        kv.set("a", Value::Array(ValueType::I32, vec![]));
        assert!(kv.is_empty());
    }
}
