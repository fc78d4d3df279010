//! Repo descriptions kept on disk so `--offline` can open a repo seen before with no network:
//! per (repo, commit) the whole `SourceModel`, per (repo, revision) the commit it resolved to.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::warn;

use super::{make_private_dir, write_atomic, CacheError};
use crate::hub::HubClient;
use crate::safetensors::Dtype;
use crate::source::{fetch_source, RepoFiles, Shard, SourceError, SourceModel, SourceTensor};
use crate::vfs::VfsError;

/// Bump when `StoredModel` changes; older entries then read as absent.
const FORMAT: u32 = 1;

/// Source descriptions and resolved revisions under `<dir>/meta`.
pub struct MetadataCache {
    models: PathBuf,
    revisions: PathBuf,
}

/// Why `fetch_source_cached` has no description.
#[derive(Debug, thiserror::Error)]
pub enum FetchCachedError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("{repo}@{revision}: not in the metadata cache (offline); open it once online first")]
    NotCached { repo: String, revision: String },
}

impl FetchCachedError {
    /// What the filesystem reports: an uncached repo offline is ENOENT.
    pub fn into_vfs(self) -> VfsError {
        match self {
            FetchCachedError::Source(e) => crate::remote::source_error_to_vfs(e),
            e @ FetchCachedError::NotCached { .. } => VfsError::NotFound(e.to_string()),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct StoredRevision {
    repo: String,
    revision: String,
    commit: String,
}

#[derive(Serialize, Deserialize)]
struct StoredModel {
    format: u32,
    repo_id: String,
    commit: String,
    /// (path, hex bytes).
    files: Vec<(String, String)>,
    shards: Vec<StoredShard>,
    tensors: Vec<StoredTensor>,
}

#[derive(Serialize, Deserialize)]
struct StoredShard {
    path: String,
    size: u64,
    sha256: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct StoredTensor {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    shard: usize,
    start: u64,
    len: u64,
}

impl MetadataCache {
    /// Opens (creating, mode 0700) the metadata cache under `dir` (the same root as `DiskCache`).
    pub fn open(dir: &Path) -> Result<MetadataCache, CacheError> {
        make_private_dir(dir)?;
        let models = dir.join("meta").join("models");
        let revisions = dir.join("meta").join("revisions");
        make_private_dir(&models)?;
        make_private_dir(&revisions)?;
        Ok(MetadataCache { models, revisions })
    }

    /// The commit `revision` of `repo` resolved to when last seen online.
    pub fn load_commit(&self, repo: &str, revision: &str) -> Option<String> {
        let bytes = std::fs::read(self.revisions.join(entry_name(repo, revision))).ok()?;
        let stored: StoredRevision = serde_json::from_slice(&bytes).ok()?;
        (stored.repo == repo && stored.revision == revision && is_commit(&stored.commit)).then_some(stored.commit)
    }

    /// Remembers that `revision` of `repo` resolved to `commit`.
    pub fn store_commit(&self, repo: &str, revision: &str, commit: &str) -> Result<(), CacheError> {
        let stored = StoredRevision { repo: repo.into(), revision: revision.into(), commit: commit.into() };
        let json = serde_json::to_vec(&stored).unwrap_or_default();
        write_atomic(&self.revisions.join(entry_name(repo, revision)), &json)
    }

    /// The description of `repo` at `commit`, if stored and intact.
    pub fn load_model(&self, repo: &str, commit: &str) -> Option<SourceModel> {
        let path = self.models.join(entry_name(repo, commit));
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice::<StoredModel>(&bytes).map_err(|e| e.to_string()).and_then(from_stored) {
            Ok(m) if m.repo_id == repo && m.commit == commit => Some(m),
            Ok(_) => None,
            Err(reason) => {
                warn!(repo, commit, %reason, "unreadable cached metadata ignored");
                None
            }
        }
    }

    /// Stores `model` under its repo and commit.
    pub fn store_model(&self, model: &SourceModel) -> Result<(), CacheError> {
        let json = serde_json::to_vec(&to_stored(model)).unwrap_or_default();
        write_atomic(&self.models.join(entry_name(&model.repo_id, &model.commit)), &json)
    }
}

/// Describes `repo@revision` from the Hub and remembers it (`client` given), or from what was
/// remembered (`client = None`, offline). Online, a commit already described costs one request.
pub async fn fetch_source_cached(
    client: Option<&HubClient>,
    cache: &MetadataCache,
    repo: &str,
    revision: &str,
) -> Result<SourceModel, FetchCachedError> {
    let not_cached = || FetchCachedError::NotCached { repo: repo.into(), revision: revision.into() };
    let Some(client) = client else {
        let commit = if is_commit(revision) { Some(revision.to_string()) } else { cache.load_commit(repo, revision) };
        return commit.and_then(|c| cache.load_model(repo, &c)).ok_or_else(not_cached);
    };
    let commit = client.resolve_revision(repo, revision).await.map_err(SourceError::from)?;
    let model = match cache.load_model(repo, &commit) {
        Some(m) => m,
        None => {
            let m = fetch_source(client, repo, &commit).await?;
            if let Err(e) = cache.store_model(&m) {
                warn!(repo, error = %e, "could not store metadata in the cache");
            }
            m
        }
    };
    if let Err(e) = cache.store_commit(repo, revision, &model.commit) {
        warn!(repo, error = %e, "could not store the resolved revision in the cache");
    }
    Ok(model)
}

/// A fixed-length file name for any (repo, key) pair, safe whatever characters they hold.
fn entry_name(repo: &str, key: &str) -> String {
    let mut h = Sha256::new();
    h.update(repo.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    format!("{}.json", hex::encode(h.finalize()))
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn to_stored(m: &SourceModel) -> StoredModel {
    StoredModel {
        format: FORMAT,
        repo_id: m.repo_id.clone(),
        commit: m.commit.clone(),
        files: m.files.paths().map(|p| (p.to_string(), hex::encode(m.files.get(p).unwrap_or(&[])))).collect(),
        shards: m
            .shards
            .iter()
            .map(|s| StoredShard { path: s.path.clone(), size: s.size, sha256: s.sha256.clone() })
            .collect(),
        tensors: m
            .tensors
            .iter()
            .map(|t| StoredTensor {
                name: t.name.clone(),
                dtype: t.dtype.name().into(),
                shape: t.shape.clone(),
                shard: t.shard,
                start: t.start,
                len: t.len,
            })
            .collect(),
    }
}

fn from_stored(s: StoredModel) -> Result<SourceModel, String> {
    if s.format != FORMAT {
        return Err(format!("format {} (expected {FORMAT})", s.format));
    }
    let mut files = RepoFiles::new();
    for (path, hexed) in s.files {
        let bytes = hex::decode(&hexed).map_err(|e| format!("{path}: {e}"))?;
        files.insert(path, bytes);
    }
    let shards: Vec<Shard> =
        s.shards.into_iter().map(|x| Shard { path: x.path, size: x.size, sha256: x.sha256 }).collect();
    let tensors = s
        .tensors
        .into_iter()
        .map(|t| {
            let dtype = Dtype::parse(&t.dtype).ok_or_else(|| format!("{}: dtype {}", t.name, t.dtype))?;
            let in_bounds =
                shards.get(t.shard).is_some_and(|sh| t.start.checked_add(t.len).is_some_and(|e| e <= sh.size));
            if !in_bounds {
                return Err(format!("{}: outside its shard", t.name));
            }
            Ok(SourceTensor { name: t.name, dtype, shape: t.shape, shard: t.shard, start: t.start, len: t.len })
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(SourceModel { repo_id: s.repo_id, commit: s.commit, files, shards, tensors })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> SourceModel {
        let mut files = RepoFiles::new();
        files.insert("config.json", b"{\"a\":1}".to_vec());
        files.insert("tokenizer.model", vec![0, 255, 7]);
        SourceModel {
            repo_id: "org/m".into(),
            commit: "a".repeat(40),
            files,
            shards: vec![Shard { path: "model.safetensors".into(), size: 100, sha256: Some("b".repeat(64)) }],
            tensors: vec![SourceTensor {
                name: "w".into(),
                dtype: Dtype::BF16,
                shape: vec![2, 3],
                shard: 0,
                start: 8,
                len: 12,
            }],
        }
    }

    #[test]
    fn a_model_and_its_revision_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let c = MetadataCache::open(dir.path()).unwrap();
        let m = model();
        c.store_model(&m).unwrap();
        c.store_commit("org/m", "main", &m.commit).unwrap();
        let back = c.load_model("org/m", &m.commit).unwrap();
        assert_eq!(back.shards, m.shards);
        assert_eq!(back.tensors, m.tensors);
        assert_eq!(back.files.get("tokenizer.model"), Some(&[0u8, 255, 7][..]));
        assert_eq!(back.files.paths().count(), 2);
        assert_eq!(c.load_commit("org/m", "main"), Some(m.commit.clone()));
        assert_eq!(c.load_commit("org/m", "dev"), None);
        assert!(c.load_model("org/other", &m.commit).is_none());
    }

    #[test]
    fn offline_without_metadata_is_a_clear_error_naming_the_repo() {
        let dir = tempfile::tempdir().unwrap();
        let c = MetadataCache::open(dir.path()).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let err = rt.block_on(fetch_source_cached(None, &c, "org/never", "main")).unwrap_err();
        assert!(err.to_string().contains("org/never"), "{err}");
        assert!(matches!(err.into_vfs(), VfsError::NotFound(_)));
    }

    #[test]
    fn offline_serves_a_stored_model_by_revision_or_commit() {
        let dir = tempfile::tempdir().unwrap();
        let c = MetadataCache::open(dir.path()).unwrap();
        let m = model();
        c.store_model(&m).unwrap();
        c.store_commit("org/m", "main", &m.commit).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        assert_eq!(rt.block_on(fetch_source_cached(None, &c, "org/m", "main")).unwrap().commit, m.commit);
        assert_eq!(rt.block_on(fetch_source_cached(None, &c, "org/m", &m.commit)).unwrap().tensors, m.tensors);
    }

    #[test]
    fn a_damaged_entry_reads_as_absent() {
        let dir = tempfile::tempdir().unwrap();
        let c = MetadataCache::open(dir.path()).unwrap();
        let m = model();
        c.store_model(&m).unwrap();
        let path = c.models.join(entry_name("org/m", &m.commit));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(c.load_model("org/m", &m.commit).is_none());
    }
}
