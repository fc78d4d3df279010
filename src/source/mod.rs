//! The source description of a Hub model: everything ggufs knows about a repo at a pinned
//! commit before it reads a single tensor byte. It is pure data, built by `source::fetch`
//! from the Hub (or by tests from a directory), and consumed by `plan`.

use std::collections::BTreeMap;

use crate::safetensors::Dtype;

mod fetch;

pub use fetch::{fetch_source, is_remote_metadata_file, SourceError, SHARD_HEADER_PROBE};

/// Small repo files (config.json, tokenizer files, README.md...) by repo path.
#[derive(Debug, Clone, Default)]
pub struct RepoFiles {
    files: BTreeMap<String, Vec<u8>>,
}

impl RepoFiles {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file.
    pub fn insert(&mut self, path: impl Into<String>, bytes: Vec<u8>) {
        self.files.insert(path.into(), bytes);
    }

    /// The bytes of `path`, if the repo has it.
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).map(|v| v.as_slice())
    }

    /// True if the repo has `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.files.contains_key(path)
    }

    /// `path` parsed as JSON: `None` if absent, `Some(Err)` if malformed.
    pub fn json(&self, path: &str) -> Option<Result<serde_json::Value, serde_json::Error>> {
        self.get(path).map(serde_json::from_slice)
    }

    /// Paths in byte order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(|s| s.as_str())
    }
}

/// One safetensors file of the repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// Repo path, e.g. `model-00001-of-00002.safetensors`.
    pub path: String,
    /// File size in bytes.
    pub size: u64,
    /// LFS sha256 (content key for the cache), when the Hub reported one.
    pub sha256: Option<String>,
}

/// One tensor stored in a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTensor {
    /// HF name as stored.
    pub name: String,
    pub dtype: Dtype,
    /// numpy order (outermost first).
    pub shape: Vec<u64>,
    /// Index into `SourceModel::shards`.
    pub shard: usize,
    /// Absolute byte offset of the data in the shard file.
    pub start: u64,
    /// Byte length of the data.
    pub len: u64,
}

impl SourceTensor {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// A Hub model at a pinned commit, described from metadata alone.
#[derive(Debug, Clone)]
pub struct SourceModel {
    /// `org/name`.
    pub repo_id: String,
    /// The 40-hex commit every read is pinned to.
    pub commit: String,
    /// Small metadata files.
    pub files: RepoFiles,
    /// Safetensors files, sorted by path (the reference's part order).
    pub shards: Vec<Shard>,
    /// Tensors in the reference's order: shards in path order, names sorted by code point
    /// within a shard; a name seen again in a later shard keeps its first position.
    pub tensors: Vec<SourceTensor>,
}

impl SourceModel {
    /// Index of the tensor named `name`.
    pub fn tensor_index(&self, name: &str) -> Option<usize> {
        self.tensors.iter().position(|t| t.name == name)
    }
}

#[cfg(test)]
mod fuzz_tests;
