//! Builds a `SourceModel` from the Hub with metadata requests only: the small files the reference
//! converter downloads in `--remote` mode, and each shard's safetensors header by Range.

use std::collections::HashMap;

use futures::stream::{self, StreamExt, TryStreamExt};
use tracing::debug;

use super::{RepoFiles, Shard, SourceModel, SourceTensor};
use crate::hub::{HubClient, HubError, RepoFile};
use crate::safetensors::{self, HeaderTensor, SafetensorsError};

/// Bytes asked for in the first header request of a shard: covers most headers in one round trip
/// (huggingface_hub uses the same figure).
pub const SHARD_HEADER_PROBE: u64 = 100_000;
/// Shards whose headers are read at once; bounded so 100+-shard repos do not trip rate limits.
const HEADER_CONCURRENCY: usize = 16;
/// Small files fetched at once.
const FILE_CONCURRENCY: usize = 8;
/// `allow_patterns` of the reference's `snapshot_download` in remote mode (converter-spec §4.1).
const METADATA_PATTERNS: [&str; 5] = ["LICENSE", "*.json", "*.md", "*.txt", "tokenizer.model"];
const SINGLE_FILE: &str = "model.safetensors";
const INDEX_FILE: &str = "model.safetensors.index.json";

/// Why a repo could not be described.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("{repo}: {path}: {source}")]
    Safetensors {
        repo: String,
        path: String,
        #[source]
        source: SafetensorsError,
    },
    #[error("{repo}: neither model.safetensors nor model.safetensors.index.json exists; only safetensors models are supported")]
    NotSafetensors { repo: String },
    #[error("{repo}: model.safetensors.index.json: {reason}")]
    BadIndex { repo: String, reason: String },
    #[error("{repo}: model.safetensors.index.json names {path:?}, which is not in the repo")]
    MissingShard { repo: String, path: String },
}

/// Describes `repo` at `revision` from metadata: pins the commit, lists the files, downloads the
/// small metadata files, and reads every shard's header concurrently.
pub async fn fetch_source(client: &HubClient, repo: &str, revision: &str) -> Result<SourceModel, SourceError> {
    let commit = client.resolve_revision(repo, revision).await?;
    let listing = client.list_files(repo, &commit).await?;
    debug!(repo, %commit, files = listing.len(), "listed");
    let files = fetch_metadata_files(client, repo, &commit, &listing).await?;
    let shards = find_shards(repo, &listing, &files)?;
    // Futures are built eagerly (not in a `map` closure) so this future stays `Send` for
    // callers that box it: closures over borrowed items trip the compiler's lifetime inference.
    let reads: Vec<_> = shards.iter().map(|shard| read_shard_header(client, repo, &commit, shard)).collect();
    let headers: Vec<Vec<HeaderTensor>> = stream::iter(reads).buffered(HEADER_CONCURRENCY).try_collect().await?;
    let tensors = reference_order(headers);
    Ok(SourceModel { repo_id: repo.to_string(), commit, files, shards, tensors })
}

/// True for the paths the reference's remote mode downloads: Python `fnmatch` on the full path,
/// where `*` also matches `/`.
pub fn is_remote_metadata_file(path: &str) -> bool {
    METADATA_PATTERNS.iter().any(|p| match p.strip_prefix('*') {
        Some(suffix) => path.ends_with(suffix),
        None => path == *p,
    })
}

async fn fetch_metadata_files(
    client: &HubClient,
    repo: &str,
    commit: &str,
    listing: &[RepoFile],
) -> Result<RepoFiles, SourceError> {
    let wanted: Vec<String> =
        listing.iter().filter(|f| is_remote_metadata_file(&f.path)).map(|f| f.path.clone()).collect();
    let fetches: Vec<_> = wanted
        .into_iter()
        .map(|path| async move {
            let bytes = client.fetch_small(repo, commit, &path).await?;
            Ok::<_, HubError>((path, bytes.to_vec()))
        })
        .collect();
    let fetched: Vec<(String, Vec<u8>)> =
        stream::iter(fetches).buffer_unordered(FILE_CONCURRENCY).try_collect().await?;
    let mut files = RepoFiles::new();
    for (path, bytes) in fetched {
        files.insert(path, bytes);
    }
    Ok(files)
}

/// The reference's remote discovery: `model.safetensors` if present, else the index's
/// `sorted(set(weight_map.values()))`.
fn find_shards(repo: &str, listing: &[RepoFile], files: &RepoFiles) -> Result<Vec<Shard>, SourceError> {
    let by_path: HashMap<&str, &RepoFile> = listing.iter().map(|f| (f.path.as_str(), f)).collect();
    let paths: Vec<String> = if by_path.contains_key(SINGLE_FILE) {
        vec![SINGLE_FILE.to_string()]
    } else if files.contains(INDEX_FILE) {
        index_shards(repo, files)?
    } else {
        return Err(SourceError::NotSafetensors { repo: repo.into() });
    };
    paths
        .into_iter()
        .map(|path| {
            let f = by_path
                .get(path.as_str())
                .ok_or_else(|| SourceError::MissingShard { repo: repo.into(), path: path.clone() })?;
            Ok(Shard { path, size: f.size, sha256: f.lfs_sha256.clone() })
        })
        .collect()
}

pub(super) fn index_shards(repo: &str, files: &RepoFiles) -> Result<Vec<String>, SourceError> {
    let bad = |reason: String| SourceError::BadIndex { repo: repo.into(), reason };
    let index = files.json(INDEX_FILE).unwrap_or(Ok(serde_json::Value::Null)).map_err(|e| bad(e.to_string()))?;
    let map = index.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| bad("no weight_map object".into()))?;
    let mut shards = map
        .values()
        .map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad(format!("weight_map value {v} is not a string"))))
        .collect::<Result<Vec<String>, SourceError>>()?;
    shards.sort();
    shards.dedup();
    if shards.is_empty() {
        return Err(bad("weight_map is empty".into()));
    }
    Ok(shards)
}

/// Reads and validates a shard's header. The Hub publishes no digest for a part of a file, so a
/// header that fails validation is read once more: bytes corrupted in transit then come out
/// right, while a really malformed file fails the same way twice.
async fn read_shard_header(
    client: &HubClient,
    repo: &str,
    commit: &str,
    shard: &Shard,
) -> Result<Vec<HeaderTensor>, SourceError> {
    match read_shard_header_once(client, repo, commit, shard).await {
        Err(SourceError::Safetensors { source, .. }) => {
            tracing::info!(repo, shard = %shard.path, error = %source, "invalid safetensors header; reading it again");
            read_shard_header_once(client, repo, commit, shard).await
        }
        other => other,
    }
}

/// One Range request for the first `SHARD_HEADER_PROBE` bytes; a second only for longer headers.
async fn read_shard_header_once(
    client: &HubClient,
    repo: &str,
    commit: &str,
    shard: &Shard,
) -> Result<Vec<HeaderTensor>, SourceError> {
    let st_err = |source| SourceError::Safetensors { repo: repo.into(), path: shard.path.clone(), source };
    let probe = shard_bytes(client, repo, commit, shard, 0..SHARD_HEADER_PROBE.min(shard.size)).await?;
    let len = safetensors::header_len(&probe).map_err(st_err)?;
    let end = 8 + len;
    if end > shard.size {
        return Err(st_err(SafetensorsError::HeaderPastEnd { header_len: len, file_size: shard.size }));
    }
    let json = if end <= probe.len() as u64 {
        probe.slice(8..end as usize)
    } else {
        shard_bytes(client, repo, commit, shard, 8..end).await?
    };
    safetensors::parse_header(&json, shard.size).map_err(st_err)
}

/// Header bytes of a shard: from the user's HF cache when it holds the verified blob, else the Hub.
async fn shard_bytes(
    client: &HubClient,
    repo: &str,
    commit: &str,
    shard: &Shard,
    range: std::ops::Range<u64>,
) -> Result<bytes::Bytes, SourceError> {
    if let Some(dir) = &client.config().hub_cache {
        if let Some(bytes) = crate::hfcache::read_verified_range(dir, repo, shard, range.clone()).await {
            return Ok(bytes);
        }
    }
    Ok(client.read_range(repo, commit, &shard.path, range).await?)
}

/// Shards in path order, names sorted within each; a name repeated in a later shard replaces
/// the entry but keeps its first position (the reference's dict update).
fn reference_order(headers: Vec<Vec<HeaderTensor>>) -> Vec<SourceTensor> {
    let mut tensors: Vec<SourceTensor> = Vec::new();
    let mut position: HashMap<String, usize> = HashMap::new();
    for (shard, header) in headers.into_iter().enumerate() {
        for t in header {
            let entry =
                SourceTensor { name: t.name, dtype: t.dtype, shape: t.shape, shard, start: t.start, len: t.len };
            match position.get(&entry.name) {
                Some(&i) => tensors[i] = entry,
                None => {
                    position.insert(entry.name.clone(), tensors.len());
                    tensors.push(entry);
                }
            }
        }
    }
    tensors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safetensors::Dtype;

    fn ht(name: &str, start: u64) -> HeaderTensor {
        HeaderTensor { name: name.into(), dtype: Dtype::F32, shape: vec![1], start, len: 4 }
    }

    #[test]
    fn metadata_patterns_match_like_fnmatch() {
        for yes in [
            "LICENSE",
            "config.json",
            "sub/x.json",
            "README.md",
            "merges.txt",
            "tokenizer.model",
            "model.safetensors.index.json",
        ] {
            assert!(is_remote_metadata_file(yes), "{yes}");
        }
        for no in
            ["sub/LICENSE", "tokenizer.model.v3", "model.safetensors", ".gitattributes", "sub/tokenizer.model", "x.py"]
        {
            assert!(!is_remote_metadata_file(no), "{no}");
        }
    }

    #[test]
    fn duplicate_names_keep_first_position_and_take_the_later_entry() {
        let order = reference_order(vec![vec![ht("a", 10), ht("c", 20)], vec![ht("a", 99), ht("b", 30)]]);
        let got: Vec<(&str, usize, u64)> = order.iter().map(|t| (t.name.as_str(), t.shard, t.start)).collect();
        assert_eq!(got, [("a", 1, 99), ("c", 0, 20), ("b", 1, 30)]);
    }

    #[test]
    fn index_shards_are_sorted_and_unique() {
        let mut files = RepoFiles::new();
        files.insert(
            INDEX_FILE,
            br#"{"weight_map":{"x":"b.safetensors","y":"a.safetensors","z":"b.safetensors"}}"#.to_vec(),
        );
        assert_eq!(index_shards("o/r", &files).unwrap(), ["a.safetensors", "b.safetensors"]);
        files.insert(INDEX_FILE, b"{}".to_vec());
        assert!(matches!(index_shards("o/r", &files), Err(SourceError::BadIndex { .. })));
    }
}
