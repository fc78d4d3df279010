//! Exact GGUF header bytes, as the reference `GGUFWriter` lays them out (converter-spec §1).

use super::{pad, KvMap, TensorInfo, Value, ALIGNMENT, MAGIC, VERSION};

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

/// Appends the encoding of `v` without its type tag (arrays: element type, count, elements).
pub fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_str(out, s),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Array(et, items) => {
            out.extend_from_slice(&(*et as u32).to_le_bytes());
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            // Nested arrays carry their own element type and count, which encode_value writes.
            for item in items {
                encode_value(item, out);
            }
        }
    }
}

/// The element bytes of an array value (what goldens hash): everything after the element
/// type and count.
pub fn array_element_bytes(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    if let Value::Array(_, items) = v {
        for item in items {
            encode_value(item, &mut out);
        }
    }
    out
}

/// Offsets for tensors of the given byte sizes: each tensor starts at the previous one's
/// end padded to the alignment.
pub fn tensor_offsets(nbytes: impl IntoIterator<Item = u64>) -> Vec<u64> {
    let mut next = 0;
    nbytes
        .into_iter()
        .map(|n| {
            let at = next;
            next += pad(n, ALIGNMENT);
            at
        })
        .collect()
}

/// The header: magic, version, counts, KV records, tensor infos, zero padding to the
/// alignment. Its length is where the data section starts.
pub fn header_bytes(kv: &KvMap, tensors: &[TensorInfo]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(kv.len() as u64).to_le_bytes());
    for (key, value) in kv.entries() {
        put_str(&mut out, key.as_bytes());
        out.extend_from_slice(&(value.value_type() as u32).to_le_bytes());
        encode_value(value, &mut out);
    }
    for t in tensors {
        put_str(&mut out, t.name.as_bytes());
        out.extend_from_slice(&(t.ne.len() as u32).to_le_bytes());
        for d in &t.ne {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ty.code().to_le_bytes());
        out.extend_from_slice(&t.offset.to_le_bytes());
    }
    out.resize(pad(out.len() as u64, ALIGNMENT) as usize, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgmlType;

    #[test]
    fn header_is_padded_and_counts_are_right() {
        let mut kv = KvMap::new();
        kv.set("general.architecture", Value::str("llama"));
        let t = TensorInfo {
            name: "a".into(),
            ne: vec![32, 2],
            ty: GgmlType::F16,
            offset: 0,
        };
        let h = header_bytes(&kv, &[t]);
        assert_eq!(h.len() % 32, 0);
        assert_eq!(&h[0..4], b"GGUF");
        assert_eq!(u64::from_le_bytes(h[8..16].try_into().unwrap()), 1);
        assert_eq!(u64::from_le_bytes(h[16..24].try_into().unwrap()), 1);
    }

    #[test]
    fn offsets_are_aligned() {
        assert_eq!(tensor_offsets([10, 64, 1]), vec![0, 32, 96]);
    }
}
