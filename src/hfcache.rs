//! Reuse of what the user already downloaded with `huggingface_hub` (`hf download`,
//! `transformers`): a shard whose blob sits in `$HF_HUB_CACHE/models--org--name/blobs/<sha256>`
//! is read from disk instead of the network.
//!
//! A blob is trusted only after its size matches the Hub's and its content hashes to the LFS
//! sha256 the Hub reports (the blob's name). The hash is computed once per blob per process
//! (on the first read that needs it); a blob that fails is ignored with a warning and the
//! network is used.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use crate::pieces::Pieces;
use crate::source::SourceModel;
use crate::vfile::{SourceReadError, SourceReader};

/// The repo's folder in a huggingface_hub cache: `models--` + the id with `/` → `--`.
pub fn repo_folder(hub_cache: &Path, repo_id: &str) -> PathBuf {
    hub_cache.join(format!("models--{}", repo_id.replace('/', "--")))
}

/// Where the blob with LFS sha256 `sha` of `repo_id` lives in the cache.
pub fn blob_path(hub_cache: &Path, repo_id: &str, sha: &str) -> Option<PathBuf> {
    let valid = sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit());
    valid.then(|| repo_folder(hub_cache, repo_id).join("blobs").join(sha.to_ascii_lowercase()))
}

/// A blob's identity on disk, so a verification is redone if the file is replaced.
type BlobKey = (PathBuf, u64, Option<SystemTime>);

/// Verdicts of blobs already hashed in this process.
fn verdicts() -> &'static Mutex<HashMap<BlobKey, bool>> {
    static VERDICTS: OnceLock<Mutex<HashMap<BlobKey, bool>>> = OnceLock::new();
    VERDICTS.get_or_init(Default::default)
}

/// Reads shards from the HF cache when a verified blob is there, else from `inner`.
pub struct HfCacheReader {
    inner: Option<Arc<dyn SourceReader>>,
    source: Arc<SourceModel>,
    hub_cache: PathBuf,
    /// Per shard: the verified blob file, or `None` (not there / not usable).
    blobs: Vec<OnceCell<Option<Arc<std::fs::File>>>>,
}

impl HfCacheReader {
    /// A reader over the cache at `hub_cache`, falling back to `inner` (`None`: no fallback).
    pub fn new(inner: Option<Arc<dyn SourceReader>>, source: Arc<SourceModel>, hub_cache: PathBuf) -> Self {
        let blobs = source.shards.iter().map(|_| OnceCell::new()).collect();
        Self { inner, source, hub_cache, blobs }
    }

    /// `inner` wrapped with the HF cache at `hub_cache`, or `inner` itself when there is no cache
    /// directory or the repo has no folder in it (the common case costs one `stat`).
    pub fn wrap(
        inner: Option<Arc<dyn SourceReader>>,
        source: &Arc<SourceModel>,
        hub_cache: Option<&Path>,
    ) -> Option<Arc<dyn SourceReader>> {
        match hub_cache {
            Some(dir) if repo_folder(dir, &source.repo_id).join("blobs").is_dir() => {
                Some(Arc::new(Self::new(inner, source.clone(), dir.to_path_buf())))
            }
            _ => inner,
        }
    }

    async fn blob(&self, shard: usize) -> Option<Arc<std::fs::File>> {
        let cell = self.blobs.get(shard)?;
        cell.get_or_init(|| async {
            let s = self.source.shards.get(shard)?;
            let path = blob_path(&self.hub_cache, &self.source.repo_id, s.sha256.as_deref()?)?;
            let (size, sha) = (s.size, s.sha256.clone()?);
            tokio::task::spawn_blocking(move || open_verified(&path, size, &sha)).await.ok().flatten()
        })
        .await
        .clone()
    }

    async fn read_blob(file: Arc<std::fs::File>, range: Range<u64>) -> Option<Bytes> {
        tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            let len = usize::try_from(range.end.checked_sub(range.start)?).ok()?;
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, range.start).ok()?;
            Some(Bytes::from(buf))
        })
        .await
        .ok()
        .flatten()
    }
}

/// Bytes `range` of a shard from the user's HF cache, if its blob is there and verified (size
/// and sha256): lets the safetensors header probe skip the network for downloaded shards too.
pub async fn read_verified_range(
    hub_cache: &Path,
    repo_id: &str,
    shard: &crate::source::Shard,
    range: Range<u64>,
) -> Option<Bytes> {
    if range.end > shard.size {
        return None;
    }
    let path = blob_path(hub_cache, repo_id, shard.sha256.as_deref()?)?;
    let (size, sha) = (shard.size, shard.sha256.clone()?);
    let file = tokio::task::spawn_blocking(move || open_verified(&path, size, &sha)).await.ok().flatten()?;
    let bytes = HfCacheReader::read_blob(file, range).await?;
    crate::stats::record_hf_cache(bytes.len() as u64);
    Some(bytes)
}

impl HfCacheReader {
    /// Bytes `range` of `shard` from its verified blob, if the HF cache has it.
    async fn read_from_blob(&self, shard: usize, range: Range<u64>) -> Option<Bytes> {
        let in_bounds = self.source.shards.get(shard).is_some_and(|s| range.end <= s.size);
        if !in_bounds {
            return None;
        }
        let bytes = Self::read_blob(self.blob(shard).await?, range).await?;
        crate::stats::record_hf_cache(bytes.len() as u64);
        Some(bytes)
    }

    fn inner(&self, shard: usize) -> Result<&Arc<dyn SourceReader>, SourceReadError> {
        self.inner.as_ref().ok_or_else(|| {
            SourceReadError::Io(format!(
                "{}: shard {shard} is not in the HF cache and the network is off",
                self.source.repo_id
            ))
        })
    }
}

impl SourceReader for HfCacheReader {
    fn read(&self, shard: usize, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, SourceReadError>> {
        async move {
            match self.read_from_blob(shard, range.clone()).await {
                Some(bytes) => Ok(bytes),
                None => self.inner(shard)?.read(shard, range).await,
            }
        }
        .boxed()
    }

    fn read_pieces(&self, shard: usize, range: Range<u64>) -> BoxFuture<'_, Result<Pieces, SourceReadError>> {
        async move {
            match self.read_from_blob(shard, range.clone()).await {
                Some(bytes) => Ok(Pieces::one(bytes)),
                None => self.inner(shard)?.read_pieces(shard, range).await,
            }
        }
        .boxed()
    }
}

/// Opens `path` if it is a regular file of `size` bytes whose sha256 is `sha` (hashing it at
/// most once per process); warns about a blob that is there but wrong.
fn open_verified(path: &Path, size: u64, sha: &str) -> Option<Arc<std::fs::File>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        return None;
    }
    if meta.len() != size {
        tracing::warn!(path = %path.display(), have = meta.len(), want = size, "HF cache blob has the wrong size; ignored");
        return None;
    }
    let key: BlobKey = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let file = std::fs::File::open(path).ok()?;
    let known = verdicts().lock().unwrap_or_else(|e| e.into_inner()).get(&key).copied();
    let good = match known {
        Some(v) => v,
        None => {
            let started = std::time::Instant::now();
            let v = sha256_of(&file).is_some_and(|h| h.eq_ignore_ascii_case(sha));
            tracing::info!(path = %path.display(), ok = v, elapsed = ?started.elapsed(), "HF cache blob verified");
            verdicts().lock().unwrap_or_else(|e| e.into_inner()).insert(key, v);
            v
        }
    };
    if !good {
        tracing::warn!(path = %path.display(), "HF cache blob does not match its sha256; ignored, using the network");
        return None;
    }
    Some(Arc::new(file))
}

fn sha256_of(file: &std::fs::File) -> Option<String> {
    use std::io::Read;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut r = file;
    loop {
        let n = r.read(&mut buf).ok()?;
        if n == 0 {
            return Some(hex::encode(h.finalize()));
        }
        h.update(buf.get(..n)?);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{RepoFiles, Shard};

    struct Net(Mutex<u32>);

    impl SourceReader for Net {
        fn read(&self, _shard: usize, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, SourceReadError>> {
            *self.0.lock().unwrap() += 1;
            async move { Ok(Bytes::from(vec![0xEE; (range.end - range.start) as usize])) }.boxed()
        }
    }

    fn model(content: &[u8]) -> Arc<SourceModel> {
        let sha = hex::encode(Sha256::digest(content));
        Arc::new(SourceModel {
            repo_id: "o/r".into(),
            commit: "c".repeat(40),
            files: RepoFiles::new(),
            shards: vec![Shard { path: "model.safetensors".into(), size: content.len() as u64, sha256: Some(sha) }],
            tensors: vec![],
        })
    }

    fn put_blob(cache: &Path, sha: &str, content: &[u8]) {
        let dir = repo_folder(cache, "o/r").join("blobs");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(sha), content).unwrap();
    }

    #[tokio::test]
    async fn a_matching_blob_is_read_from_disk_and_a_corrupt_one_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let content: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        let m = model(&content);
        let sha = m.shards[0].sha256.clone().unwrap();
        put_blob(tmp.path(), &sha, &content);
        let net = Arc::new(Net(Mutex::new(0)));
        let r = HfCacheReader::wrap(Some(net.clone()), &m, Some(tmp.path())).unwrap();
        assert_eq!(&r.read(0, 10..4000).await.unwrap()[..], &content[10..4000]);
        assert_eq!(*net.0.lock().unwrap(), 0);

        let mut bad = content.clone();
        bad[4321] ^= 1;
        let tmp2 = tempfile::tempdir().unwrap();
        put_blob(tmp2.path(), &sha, &bad);
        let r = HfCacheReader::wrap(Some(net.clone()), &m, Some(tmp2.path())).unwrap();
        assert_eq!(&r.read(0, 0..8).await.unwrap()[..], &[0xEE; 8]);
        assert_eq!(*net.0.lock().unwrap(), 1, "the corrupt blob sent the read to the network");
    }

    #[tokio::test]
    async fn a_wrong_size_or_missing_folder_means_the_network() {
        let tmp = tempfile::tempdir().unwrap();
        let content = vec![7u8; 100];
        let m = model(&content);
        let net: Arc<dyn SourceReader> = Arc::new(Net(Mutex::new(0)));
        assert!(Arc::ptr_eq(&HfCacheReader::wrap(Some(net.clone()), &m, Some(tmp.path())).unwrap(), &net));
        put_blob(tmp.path(), m.shards[0].sha256.as_deref().unwrap(), &content[..99]);
        let r = HfCacheReader::wrap(Some(net), &m, Some(tmp.path())).unwrap();
        assert_eq!(&r.read(0, 0..4).await.unwrap()[..], &[0xEE; 4]);
    }

    #[test]
    fn blob_paths_follow_the_hub_cache_layout() {
        let sha = "a".repeat(64);
        assert_eq!(
            blob_path(Path::new("/c"), "Org/Name", &sha).unwrap(),
            PathBuf::from(format!("/c/models--Org--Name/blobs/{sha}"))
        );
        assert_eq!(blob_path(Path::new("/c"), "o/r", "../../etc/passwd"), None);
    }
}
