//! The GGUF v3 container: value types, tensor types, an exact header writer and a reader.

pub mod reader;
pub mod value;
pub mod writer;

pub use value::{KvMap, Value, ValueType};

/// `GGUF` as a little-endian u32.
pub const MAGIC: u32 = 0x4655_4747;
/// The only version the reference writes.
pub const VERSION: u32 = 3;
/// The reference never writes `general.alignment`, so the implicit 32 always applies.
pub const ALIGNMENT: u64 = 32;

/// ggml tensor types that ggufs writes or reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2K,
    Q3K,
    Q4K,
    Q5K,
    Q6K,
    BF16,
}

impl GgmlType {
    /// The type code in tensor-info records.
    pub fn code(self) -> u32 {
        use GgmlType::*;
        match self {
            F32 => 0,
            F16 => 1,
            Q4_0 => 2,
            Q4_1 => 3,
            Q5_0 => 6,
            Q5_1 => 7,
            Q8_0 => 8,
            Q2K => 10,
            Q3K => 11,
            Q4K => 12,
            Q5K => 13,
            Q6K => 14,
            BF16 => 30,
        }
    }

    /// Decodes a type code read from a file.
    pub fn from_code(code: u32) -> Option<Self> {
        use GgmlType::*;
        [
            F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2K, Q3K, Q4K, Q5K, Q6K, BF16,
        ]
        .into_iter()
        .find(|t| t.code() == code)
    }

    /// The ggml name (`F16`, `Q8_0`, `Q4_K`...).
    pub fn name(self) -> &'static str {
        use GgmlType::*;
        match self {
            F32 => "F32",
            F16 => "F16",
            Q4_0 => "Q4_0",
            Q4_1 => "Q4_1",
            Q5_0 => "Q5_0",
            Q5_1 => "Q5_1",
            Q8_0 => "Q8_0",
            Q2K => "Q2_K",
            Q3K => "Q3_K",
            Q4K => "Q4_K",
            Q5K => "Q5_K",
            Q6K => "Q6_K",
            BF16 => "BF16",
        }
    }

    /// (elements per block, bytes per block).
    pub fn block(self) -> (u64, u64) {
        use GgmlType::*;
        match self {
            F32 => (1, 4),
            F16 | BF16 => (1, 2),
            Q4_0 => (32, 18),
            Q4_1 => (32, 20),
            Q5_0 => (32, 22),
            Q5_1 => (32, 24),
            Q8_0 => (32, 34),
            Q2K => (256, 84),
            Q3K => (256, 110),
            Q4K => (256, 144),
            Q5K => (256, 176),
            Q6K => (256, 210),
        }
    }

    /// Bytes taken by `n` elements (n must be a multiple of the block size).
    pub fn bytes_for(self, n: u64) -> u64 {
        let (be, bb) = self.block();
        n / be * bb
    }
}

/// `pad(x, n)` as the reference defines it.
pub fn pad(x: u64, n: u64) -> u64 {
    x.div_ceil(n) * n
}

/// One tensor-info record: name, dims in ggml order (`ne`, innermost first), type, and
/// offset relative to the data section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub ne: Vec<u64>,
    pub ty: GgmlType,
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.ne.iter().product()
    }

    /// Bytes of tensor data (without padding).
    pub fn nbytes(&self) -> u64 {
        self.ty.bytes_for(self.n_elements())
    }
}
