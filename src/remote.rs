//! The Hub as a model provider: source descriptions from `source::fetch_source`, shard
//! bytes from Range reads pinned to the resolved commit.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;

use crate::catalog::ModelProvider;
use crate::hub::{HubClient, HubError};
use crate::source::SourceModel;
use crate::source::{fetch_source, SourceError};
use crate::vfile::{SourceReadError, SourceReader};
use crate::vfs::VfsError;

/// Serves models straight from the Hub.
pub struct HubProvider {
    client: Arc<HubClient>,
}

impl HubProvider {
    /// A provider over `client`.
    pub fn new(client: Arc<HubClient>) -> Self {
        Self { client }
    }
}

impl ModelProvider for HubProvider {
    fn source(&self, repo: &str, revision: &str) -> BoxFuture<'_, Result<Arc<SourceModel>, VfsError>> {
        let (repo, revision) = (repo.to_string(), revision.to_string());
        async move { fetch_source(&self.client, &repo, &revision).await.map(Arc::new).map_err(source_error_to_vfs) }
            .boxed()
    }

    fn reader(&self, source: &Arc<SourceModel>) -> Arc<dyn SourceReader> {
        hub_reader(&self.client, source)
    }

    fn gguf_files(&self, repo: &str, revision: &str) -> BoxFuture<'_, Result<Option<Arc<SourceModel>>, VfsError>> {
        let (repo, revision) = (repo.to_string(), revision.to_string());
        async move {
            list_gguf_files(&self.client, &repo, &revision)
                .await
                .map(|m| Some(Arc::new(m)))
                .map_err(|e| source_error_to_vfs(SourceError::Hub(e)))
        }
        .boxed()
    }
}

/// The Hub reader of `source`'s shards, behind the user's huggingface_hub cache when the
/// client's config names one (shards already downloaded are read from disk).
pub fn hub_reader(client: &Arc<HubClient>, source: &Arc<SourceModel>) -> Arc<dyn SourceReader> {
    let net: Arc<dyn SourceReader> = Arc::new(HubShardReader::new(client.clone(), source.clone()));
    crate::hfcache::HfCacheReader::wrap(Some(net.clone()), source, client.config().hub_cache.as_deref()).unwrap_or(net)
}

/// The `.gguf` files of `repo` at `revision`, as a source whose shards are those files (pinned
/// to the commit, sorted by path, no tensors): what the mount passes through unconverted.
pub async fn list_gguf_files(client: &HubClient, repo: &str, revision: &str) -> Result<SourceModel, HubError> {
    let commit = client.resolve_revision(repo, revision).await?;
    let shards = client
        .list_files(repo, &commit)
        .await?
        .into_iter()
        .filter(|f| f.path.to_ascii_lowercase().ends_with(".gguf"))
        .map(|f| crate::source::Shard { path: f.path, size: f.size, sha256: f.lfs_sha256 })
        .collect();
    Ok(SourceModel {
        repo_id: repo.to_string(),
        commit,
        files: crate::source::RepoFiles::new(),
        shards,
        tensors: Vec::new(),
    })
}

/// Reads shard bytes of one source model from the Hub.
pub struct HubShardReader {
    client: Arc<HubClient>,
    source: Arc<SourceModel>,
}

impl HubShardReader {
    /// A reader for `source`'s shards.
    pub fn new(client: Arc<HubClient>, source: Arc<SourceModel>) -> Self {
        Self { client, source }
    }
}

/// Range requests to the Hub in flight at once in this process, over every file and mount:
/// enough to fill a fast link (each request is one or a few 4 MiB blocks), few enough that a
/// process reading many files does not open hundreds of connections or trip the Hub's limits.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 32;

static REQUEST_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_REQUESTS_IN_FLIGHT);

impl SourceReader for HubShardReader {
    fn read(&self, shard: usize, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, SourceReadError>> {
        async move {
            let _slot =
                REQUEST_SLOTS.acquire().await.map_err(|_| SourceReadError::Io("request limiter closed".into()))?;
            let s = &self.source;
            let info = s.shards.get(shard).ok_or_else(|| SourceReadError::Io(format!("no shard {shard}")))?;
            // A read of the whole shard (small shards through the block cache) is checked
            // against its LFS sha256; partial ranges have no published digest.
            let whole = info.sha256.as_deref().map(|sha256| (info.size, sha256));
            let _in_flight = crate::stats::fetch_started();
            let bytes = self
                .client
                .read_range_verified(&s.repo_id, &s.commit, &info.path, range, whole)
                .await
                .map_err(|e| hub_error_to_read(&e))?;
            crate::stats::record_fetched(bytes.len() as u64);
            Ok(bytes)
        }
        .boxed()
    }
}

/// The errno classes of hub-spec §2.2 / fuse-notes §6.8: "does not exist" (ENOENT), "not
/// allowed" (EACCES), and everything else after retries (EIO).
fn hub_error_to_read(e: &HubError) -> SourceReadError {
    if e.is_not_found() {
        SourceReadError::NotFound(e.to_string())
    } else if e.is_access_denied() {
        SourceReadError::AccessDenied(e.to_string())
    } else {
        SourceReadError::Io(e.to_string())
    }
}

/// Maps a failure to describe a repo to what the filesystem reports: missing or
/// unconvertible repos are ENOENT, gated ones EACCES, the rest EIO.
pub fn source_error_to_vfs(e: SourceError) -> VfsError {
    match &e {
        SourceError::Hub(h) => match hub_error_to_read(h) {
            SourceReadError::NotFound(m) => VfsError::NotFound(m),
            SourceReadError::AccessDenied(m) => VfsError::AccessDenied(m),
            SourceReadError::Io(m) => VfsError::Io(m),
        },
        _ => VfsError::NotFound(e.to_string()),
    }
}

/// Why a virtual file could not be opened from the Hub.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Plan(#[from] crate::plan::layout::PlanError),
}

/// Opens the virtual GGUF of `repo@revision` as `outtype` straight from the Hub (what
/// `pull` uses; the mount goes through the catalog instead).
pub async fn open_file(
    client: Arc<HubClient>,
    repo: &str,
    revision: &str,
    outtype: crate::plan::OutType,
) -> Result<crate::vfile::GgufFile, OpenError> {
    let source = Arc::new(fetch_source(&client, repo, revision).await?);
    let reader = hub_reader(&client, &source);
    Ok(open_source(source, outtype, reader).await?)
}

/// Lays out `source` as `outtype` (off the async threads: vocabularies can be large) and
/// opens it over `reader`.
pub async fn open_source(
    source: Arc<SourceModel>,
    outtype: crate::plan::OutType,
    reader: Arc<dyn SourceReader>,
) -> Result<crate::vfile::GgufFile, crate::plan::layout::PlanError> {
    let layout = {
        let source = source.clone();
        tokio::task::spawn_blocking(move || crate::plan::layout::build(&source, outtype))
            .await
            .expect("layout task panicked")?
    };
    Ok(crate::vfile::GgufFile::new(Arc::new(layout), source, reader))
}
