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
