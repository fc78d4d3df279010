//! Opening models through the caches: what `pull` and the mount use once caching is wired in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};

use super::{fetch_source_cached, CachedReader, DiskCache, FetchCachedError, MetadataCache};
use crate::catalog::ModelProvider;
use crate::hfcache::HfCacheReader;
use crate::hub::{HfEnv, HubClient};
use crate::remote::HubShardReader;
use crate::source::SourceModel;
use crate::vfile::{GgufFile, SourceReader};
use crate::vfs::VfsError;

/// Why a virtual file could not be opened through the caches.
#[derive(Debug, thiserror::Error)]
pub enum OpenCachedError {
    #[error(transparent)]
    Source(#[from] FetchCachedError),
    #[error(transparent)]
    Plan(#[from] crate::plan::layout::PlanError),
}

/// Opens the virtual GGUF of `repo@revision` as `outtype` with source bytes through `disk` and
/// the description through `meta`; `client = None` works offline from what was cached.
pub async fn open_file_cached(
    client: Option<Arc<HubClient>>,
    disk: Arc<DiskCache>,
    meta: &MetadataCache,
    repo: &str,
    revision: &str,
    outtype: crate::plan::OutType,
) -> Result<GgufFile, OpenCachedError> {
    let source = Arc::new(fetch_source_cached(client.as_deref(), meta, repo, revision).await?);
    let hub_cache = default_hub_cache(client.as_deref());
    let reader = cached_reader(client, disk, &source, hub_cache.as_deref());
    Ok(crate::remote::open_source(source, outtype, reader).await?)
}

/// The reader chain: the user's huggingface_hub cache first (verified blobs are read in
/// place, never copied into ours), then our block cache, then the Hub.
fn cached_reader(
    client: Option<Arc<HubClient>>,
    disk: Arc<DiskCache>,
    source: &Arc<SourceModel>,
    hub_cache: Option<&Path>,
) -> Arc<dyn SourceReader> {
    let inner = client.map(|c| Arc::new(HubShardReader::new(c, source.clone())) as Arc<dyn SourceReader>);
    let cached: Arc<dyn SourceReader> = Arc::new(CachedReader::new(inner, disk, source.clone()));
    HfCacheReader::wrap(Some(cached.clone()), source, hub_cache).unwrap_or(cached)
}

/// The HF cache to reuse: the client's (from its config), or with no client (offline) the
/// one this process's environment names.
fn default_hub_cache(client: Option<&HubClient>) -> Option<PathBuf> {
    match client {
        Some(c) => c.config().hub_cache.clone(),
        None => Some(HfEnv::from_process().hub_cache),
    }
}

/// The Hub (or, with no client, only what was cached) as the mount's model provider, with
/// descriptions and source bytes cached on disk.
pub struct CachedProvider {
    client: Option<Arc<HubClient>>,
    disk: Arc<DiskCache>,
    meta: Arc<MetadataCache>,
    hub_cache: Option<PathBuf>,
}

impl CachedProvider {
    /// A provider over `client` (`None` = offline) and the two caches.
    pub fn new(client: Option<Arc<HubClient>>, disk: Arc<DiskCache>, meta: Arc<MetadataCache>) -> Self {
        let hub_cache = default_hub_cache(client.as_deref());
        Self { client, disk, meta, hub_cache }
    }

    /// Uses the huggingface_hub cache at `dir` (`None`: none) instead of the default.
    pub fn with_hub_cache(mut self, dir: Option<PathBuf>) -> Self {
        self.hub_cache = dir;
        self
    }
}

impl ModelProvider for CachedProvider {
    fn source(&self, repo: &str, revision: &str) -> BoxFuture<'_, Result<Arc<SourceModel>, VfsError>> {
        let (repo, revision) = (repo.to_string(), revision.to_string());
        async move {
            fetch_source_cached(self.client.as_deref(), &self.meta, &repo, &revision)
                .await
                .map(Arc::new)
                .map_err(FetchCachedError::into_vfs)
        }
        .boxed()
    }

    fn reader(&self, source: &Arc<SourceModel>) -> Arc<dyn SourceReader> {
        cached_reader(self.client.clone(), self.disk.clone(), source, self.hub_cache.as_deref())
    }

    fn gguf_files(&self, repo: &str, revision: &str) -> BoxFuture<'_, Result<Option<Arc<SourceModel>>, VfsError>> {
        let (repo, revision) = (repo.to_string(), revision.to_string());
        async move {
            // Offline there is no listing to find them in (the metadata cache keeps sources only).
            let Some(client) = &self.client else { return Ok(None) };
            crate::remote::list_gguf_files(client, &repo, &revision)
                .await
                .map(|m| Some(Arc::new(m)))
                .map_err(|e| crate::remote::source_error_to_vfs(crate::source::SourceError::Hub(e)))
        }
        .boxed()
    }
}
