//! Synthetic fixture weights: a fixture repo commits `weights.json` (tensor names, dtypes, shapes,
//! value scale) instead of its safetensors shards, and `materialize` writes the shards from a
//! seeded generator. Test fixtures with real vocabularies (150k+ embedding rows) then weigh a few
//! kilobytes in git, and the goldens stay valid because the bytes are the same on every machine.
//!
//! Values are pure integer/float arithmetic (no libm calls), so every platform produces the same bits.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, ensure, Context};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The manifest file a synthetic fixture commits.
pub const MANIFEST: &str = "weights.json";
const FORMAT: &str = "ggufs-synth/1";

#[derive(Deserialize)]
struct Manifest {
    format: String,
    seed: u64,
    files: Vec<ShardSpec>,
}

#[derive(Deserialize)]
struct ShardSpec {
    name: String,
    tensors: Vec<TensorSpec>,
}

#[derive(Deserialize)]
struct TensorSpec {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    /// Values are `mean + std * z`, z roughly standard normal.
    mean: f64,
    std: f64,
}

/// Writes the shards `fixture_dir/weights.json` describes into `out_dir` (plus
/// `model.safetensors.index.json` when there are several). Returns the shard file names.
pub fn materialize(fixture_dir: &Path, out_dir: &Path) -> anyhow::Result<Vec<String>> {
    let path = fixture_dir.join(MANIFEST);
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let manifest: Manifest = serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    ensure!(manifest.format == FORMAT, "{}: format {:?}, expected {FORMAT:?}", path.display(), manifest.format);
    std::fs::create_dir_all(out_dir)?;
    let mut weight_map = BTreeMap::new();
    let mut total = 0u64;
    for shard in &manifest.files {
        ensure!(is_plain_file_name(&shard.name), "bad shard name {:?}", shard.name);
        total += write_shard(&out_dir.join(&shard.name), shard, manifest.seed)?;
        for t in &shard.tensors {
            weight_map.insert(t.name.clone(), shard.name.clone());
        }
    }
    if manifest.files.len() > 1 {
        let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
        std::fs::write(out_dir.join("model.safetensors.index.json"), serde_json::to_string_pretty(&index)? + "\n")?;
    }
    Ok(manifest.files.iter().map(|f| f.name.clone()).collect())
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('/') && name != "." && name != ".."
}

/// Writes one safetensors file (tensors in name order, header padded with spaces to 8 bytes);
/// returns the tensor data size.
fn write_shard(path: &Path, shard: &ShardSpec, seed: u64) -> anyhow::Result<u64> {
    let mut tensors: Vec<&TensorSpec> = shard.tensors.iter().collect();
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!({"format": "pt"}));
    let mut offset = 0u64;
    for t in &tensors {
        let len = element_count(t)? * dtype_size(&t.dtype)?;
        header.insert(
            t.name.clone(),
            json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let mut header = serde_json::to_vec(&Value::Object(header))?;
    while header.len() % 8 != 0 {
        header.push(b' ');
    }
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(&(header.len() as u64).to_le_bytes())?;
    out.write_all(&header)?;
    for t in &tensors {
        write_values(&mut out, t, seed)?;
    }
    out.flush()?;
    Ok(offset)
}

fn element_count(t: &TensorSpec) -> anyhow::Result<u64> {
    t.shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= 1 << 32)
        .with_context(|| format!("{}: shape {:?} too large", t.name, t.shape))
}

fn dtype_size(dtype: &str) -> anyhow::Result<u64> {
    Ok(match dtype {
        "F32" => 4,
        "F16" | "BF16" => 2,
        other => bail!("synthetic dtype {other} not supported"),
    })
}

fn write_values(out: &mut impl Write, t: &TensorSpec, seed: u64) -> anyhow::Result<()> {
    let mut rng = SplitMix64(seed ^ fnv1a64(t.name.as_bytes()));
    let mut buf = Vec::with_capacity(1 << 16);
    for _ in 0..element_count(t)? {
        let v = (t.mean + t.std * rng.next_normalish()) as f32;
        match t.dtype.as_str() {
            "F32" => buf.extend_from_slice(&v.to_le_bytes()),
            "F16" => buf.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
            _ => buf.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
        }
        if buf.len() >= 1 << 16 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    Ok(())
}

/// FNV-1a, to give each tensor its own stream independent of manifest order.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 bits.
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Irwin–Hall of four uniforms, scaled to unit variance: bell-shaped, bounded (|z| < 3.47),
    /// and free of transcendental functions whose last bit could differ across libms.
    fn next_normalish(&mut self) -> f64 {
        let sum = self.next_unit() + self.next_unit() + self.next_unit() + self.next_unit();
        (sum - 2.0) * 3f64.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(dir: &Path, body: Value) {
        std::fs::write(dir.join(MANIFEST), body.to_string()).unwrap();
    }

    #[test]
    fn same_manifest_gives_same_bytes_and_valid_safetensors() {
        let spec = tempfile_dir();
        manifest(
            &spec,
            json!({"format": FORMAT, "seed": 7, "files": [{"name": "model.safetensors", "tensors": [
                {"name": "b.weight", "dtype": "BF16", "shape": [3, 5], "mean": 0.0, "std": 0.02},
                {"name": "a.norm", "dtype": "F32", "shape": [5], "mean": 1.0, "std": 0.1}]}]}),
        );
        let (o1, o2) = (spec.join("o1"), spec.join("o2"));
        materialize(&spec, &o1).unwrap();
        materialize(&spec, &o2).unwrap();
        let bytes = std::fs::read(o1.join("model.safetensors")).unwrap();
        assert_eq!(bytes, std::fs::read(o2.join("model.safetensors")).unwrap());
        let hlen = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(hlen % 8, 0);
        let header: Value = serde_json::from_slice(&bytes[8..8 + hlen]).unwrap();
        assert_eq!(header["a.norm"]["data_offsets"], json!([0, 20]));
        assert_eq!(header["b.weight"]["data_offsets"], json!([20, 50]));
        assert_eq!(bytes.len(), 8 + hlen + 50);
        let norm: Vec<f32> =
            bytes[8 + hlen..8 + hlen + 20].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        assert!(norm.iter().all(|v| (0.6..1.4).contains(v)), "{norm:?}");
        assert!(norm.windows(2).any(|w| w[0] != w[1]));
    }

    #[test]
    fn several_shards_get_an_index() {
        let spec = tempfile_dir();
        manifest(
            &spec,
            json!({"format": FORMAT, "seed": 1, "files": [
                {"name": "model-00001-of-00002.safetensors", "tensors": [
                    {"name": "x", "dtype": "F16", "shape": [4], "mean": 0.0, "std": 1.0}]},
                {"name": "model-00002-of-00002.safetensors", "tensors": [
                    {"name": "y", "dtype": "F32", "shape": [2, 2], "mean": 0.0, "std": 1.0}]}]}),
        );
        let out = spec.join("out");
        materialize(&spec, &out).unwrap();
        let index: Value =
            serde_json::from_slice(&std::fs::read(out.join("model.safetensors.index.json")).unwrap()).unwrap();
        assert_eq!(index["metadata"]["total_size"], json!(24));
        assert_eq!(index["weight_map"]["y"], json!("model-00002-of-00002.safetensors"));
    }

    #[test]
    fn rejects_bad_manifests() {
        let spec = tempfile_dir();
        manifest(&spec, json!({"format": "other", "seed": 1, "files": []}));
        assert!(materialize(&spec, &spec.join("o")).is_err());
        manifest(&spec, json!({"format": FORMAT, "seed": 1, "files": [{"name": "../x", "tensors": []}]}));
        assert!(materialize(&spec, &spec.join("o")).is_err());
        manifest(
            &spec,
            json!({"format": FORMAT, "seed": 1, "files": [{"name": "m.safetensors", "tensors": [
                {"name": "x", "dtype": "I64", "shape": [1], "mean": 0.0, "std": 1.0}]}]}),
        );
        assert!(materialize(&spec, &spec.join("o")).is_err());
    }

    #[test]
    fn generator_is_pinned() {
        // The goldens of synthetic fixtures depend on these exact bits: changing the generator
        // means regenerating them (scripts/fixtures/make_goldens.sh).
        let mut rng = SplitMix64(fnv1a64(b"w"));
        let z: Vec<u64> = (0..3).map(|_| rng.next_normalish().to_bits()).collect();
        let mut again = SplitMix64(fnv1a64(b"w"));
        assert_eq!(z, (0..3).map(|_| again.next_normalish().to_bits()).collect::<Vec<_>>());
        assert_eq!(SplitMix64(0).next_u64(), 0xe220_a839_7b1d_cdaf);
        // Same value from an independent Python transcription of the generator.
        assert_eq!(z[0], 0xbfd2_b207_b9e3_984f);
    }

    fn tempfile_dir() -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let d = std::env::temp_dir().join(format!("ggufs-synth-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
