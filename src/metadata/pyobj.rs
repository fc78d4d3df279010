//! The Python objects that PyYAML and `json.load` hand the reference, and how its `GGUFWriter`
//! packs them. The writer does not check types up front: an `add_string` of an int or an
//! `add_int32` of a float only fails when the file is written, which aborts the conversion.
//! These rules decide which odd model cards convert and which make the reference raise.

use crate::gguf::{Value, ValueType};

use super::MetadataError;

/// A Python value as far as the metadata code can observe it.
#[derive(Debug, Clone, PartialEq)]
pub enum Py {
    None,
    Bool(bool),
    /// Python ints are unbounded; beyond i128 the value saturates (it only matters for
    /// truthiness and for range errors, which saturation preserves).
    Int(i128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Py>),
    /// Insertion-ordered pairs; a later duplicate key wins on lookup, as in a Python dict.
    Dict(Vec<(Py, Py)>),
    /// Objects the writer can never pack (date, datetime, set, tuple): the type name and
    /// whether the object is truthy.
    Opaque(&'static str, bool),
}

impl Py {
    /// Python truthiness (`not val` in `add_string`).
    pub fn truthy(&self) -> bool {
        match self {
            Py::None => false,
            Py::Bool(b) => *b,
            Py::Int(i) => *i != 0,
            Py::Float(f) => *f != 0.0,
            Py::Str(s) => !s.is_empty(),
            Py::Bytes(b) => !b.is_empty(),
            Py::List(v) => !v.is_empty(),
            Py::Dict(v) => !v.is_empty(),
            Py::Opaque(_, t) => *t,
        }
    }

    /// The Python type name, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Py::None => "NoneType",
            Py::Bool(_) => "bool",
            Py::Int(_) => "int",
            Py::Float(_) => "float",
            Py::Str(_) => "str",
            Py::Bytes(_) => "bytes",
            Py::List(_) => "list",
            Py::Dict(_) => "dict",
            Py::Opaque(name, _) => name,
        }
    }

    /// `d.get(key)` for a dict with a string key: `Some(value)` if the key is present
    /// (the value may be `Py::None`), `None` if absent or not a dict.
    pub fn get(&self, key: &str) -> Option<&Py> {
        match self {
            Py::Dict(pairs) => pairs.iter().rev().find(|(k, _)| matches!(k, Py::Str(s) if s == key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// `d.get(key)` treating an explicit null like an absent key.
    pub fn get_some(&self, key: &str) -> Option<&Py> {
        self.get(key).filter(|v| !matches!(v, Py::None))
    }

    /// The text of a `str`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Py::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Converts parsed JSON (`json.load`) into Python objects.
    pub fn from_json(v: &serde_json::Value) -> Py {
        use serde_json::Value as J;
        match v {
            J::Null => Py::None,
            J::Bool(b) => Py::Bool(*b),
            J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Py::Int(i as i128),
                (None, Some(u), _) => Py::Int(u as i128),
                (None, None, Some(f)) => Py::Float(f),
                _ => Py::None,
            },
            J::String(s) => Py::Str(s.clone()),
            J::Array(a) => Py::List(a.iter().map(Py::from_json).collect()),
            J::Object(o) => Py::Dict(o.iter().map(|(k, v)| (Py::Str(k.clone()), Py::from_json(v))).collect()),
        }
    }
}

fn type_error(key: &str, what: &str, v: &Py) -> MetadataError {
    MetadataError::WrongType { key: key.to_string(), expected: what.to_string(), found: v.type_name().to_string() }
}

/// `add_string(key, val)`: falsy values are skipped; `str` is UTF-8 encoded, `bytes` written
/// raw; anything else makes the writer raise.
pub fn string_value(key: &str, v: &Py) -> Result<Option<Value>, MetadataError> {
    if !v.truthy() {
        return Ok(None);
    }
    match v {
        Py::Str(s) => Ok(Some(Value::str(s))),
        Py::Bytes(b) => Ok(Some(Value::String(b.clone()))),
        other => Err(type_error(key, "str", other)),
    }
}

/// `struct.pack('<i', val)`: ints (and bools) in range only.
pub fn int32_value(key: &str, v: &Py) -> Result<Value, MetadataError> {
    let n = match v {
        Py::Bool(b) => i128::from(*b),
        Py::Int(i) => *i,
        other => return Err(type_error(key, "int", other)),
    };
    i32::try_from(n)
        .map(Value::I32)
        .map_err(|_| MetadataError::OutOfRange { key: key.to_string(), value: n.to_string() })
}

fn int_to_f64(n: i128) -> Option<f64> {
    // Python's int → float is correctly rounded; i128 → f64 `as` is too. Saturated values
    // stand for ints too large for a float.
    (n != i128::MAX && n != i128::MIN).then_some(n as f64)
}

/// `struct.pack('<f', val)`: numbers, rounded to nearest f32; a finite value that rounds to
/// infinity raises OverflowError.
pub fn float32_value(key: &str, v: &Py) -> Result<Value, MetadataError> {
    let x = match v {
        Py::Bool(b) => f64::from(u8::from(*b)),
        Py::Int(i) => {
            int_to_f64(*i).ok_or_else(|| MetadataError::OutOfRange { key: key.to_string(), value: i.to_string() })?
        }
        Py::Float(f) => *f,
        other => return Err(type_error(key, "float", other)),
    };
    let y = x as f32;
    if y.is_infinite() && !x.is_infinite() {
        return Err(MetadataError::OutOfRange { key: key.to_string(), value: x.to_string() });
    }
    Ok(Value::F32(y))
}

/// `GGUFValueType.get_type(val)`: the element type of an array item.
fn element_type(key: &str, v: &Py) -> Result<ValueType, MetadataError> {
    Ok(match v {
        Py::Str(_) | Py::Bytes(_) => ValueType::String,
        Py::List(_) => ValueType::Array,
        Py::Float(_) => ValueType::F32,
        Py::Bool(_) => ValueType::Bool,
        Py::Int(_) => ValueType::I32,
        other => return Err(type_error(key, "array element of str/list/float/bool/int", other)),
    })
}

fn array_item(key: &str, v: &Py, ty: ValueType) -> Result<Value, MetadataError> {
    match (ty, v) {
        (ValueType::String, Py::Str(s)) => Ok(Value::str(s)),
        (ValueType::String, Py::Bytes(b)) => Ok(Value::String(b.clone())),
        (ValueType::Array, Py::List(items)) => nested_array(key, items),
        (ValueType::F32, _) => float32_value(key, v),
        (ValueType::Bool, Py::Bool(b)) => Ok(Value::Bool(*b)),
        (ValueType::I32, _) => int32_value(key, v),
        _ => Err(type_error(key, "uniform array", v)),
    }
}

fn nested_array(key: &str, items: &[Py]) -> Result<Value, MetadataError> {
    let first = items.first().ok_or_else(|| MetadataError::EmptyNestedArray(key.to_string()))?;
    let ty = element_type(key, first)?;
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if element_type(key, item)? != ty {
            return Err(MetadataError::MixedArray(key.to_string()));
        }
        out.push(array_item(key, item, ty)?);
    }
    Ok(Value::Array(ty, out))
}

/// `add_array(key, val)`: empty lists are skipped; the element type is that of the first
/// item and every item must have the same one.
pub fn array_value(key: &str, items: &[Py]) -> Result<Option<Value>, MetadataError> {
    if items.is_empty() {
        return Ok(None);
    }
    nested_array(key, items).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_skip_falsy_and_reject_other_types() {
        assert_eq!(string_value("k", &Py::Int(0)).unwrap(), None);
        assert_eq!(string_value("k", &Py::Str(String::new())).unwrap(), None);
        assert_eq!(string_value("k", &Py::Bytes(b"x\xff".to_vec())).unwrap(), Some(Value::String(b"x\xff".to_vec())));
        assert!(string_value("k", &Py::Float(1.0)).is_err());
        assert!(string_value("k", &Py::Int(3)).is_err());
        assert!(string_value("k", &Py::List(vec![Py::Int(1)])).is_err());
    }

    #[test]
    fn numbers_follow_struct_pack() {
        assert_eq!(int32_value("k", &Py::Bool(true)).unwrap(), Value::I32(1));
        assert!(int32_value("k", &Py::Float(40.0)).is_err());
        assert!(int32_value("k", &Py::Int(1 << 31)).is_err());
        assert_eq!(float32_value("k", &Py::Int(16_777_217)).unwrap(), Value::F32(16_777_216.0));
        assert!(float32_value("k", &Py::Float(1e39)).is_err());
        assert_eq!(float32_value("k", &Py::Float(f64::INFINITY)).unwrap(), Value::F32(f32::INFINITY));
    }

    #[test]
    fn arrays_need_one_element_type() {
        let v = array_value("k", &[Py::Int(2024), Py::Bool(true)]);
        assert!(matches!(v, Err(MetadataError::MixedArray(_))));
        assert_eq!(array_value("k", &[Py::Int(7)]).unwrap(), Some(Value::Array(ValueType::I32, vec![Value::I32(7)])));
        assert_eq!(array_value("k", &[]).unwrap(), None);
        assert!(array_value("k", &[Py::Dict(vec![])]).is_err());
        assert!(array_value("k", &[Py::List(vec![])]).is_err());
    }
}
