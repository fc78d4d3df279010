//! Opening models through the caches: what `pull` and the mount use once caching is wired in.

use std::sync::Arc;

use futures::future::{BoxFuture, FutureExt};

use super::{fetch_source_cached, CachedReader, DiskCache, FetchCachedError, MetadataCache};
use crate::catalog::ModelProvider;
use crate::hub::HubClient;
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
    let reader = cached_reader(client, disk, &source);
    Ok(crate::remote::open_source(source, outtype, reader).await?)
}

fn cached_reader(
    client: Option<Arc<HubClient>>,
    disk: Arc<DiskCache>,
    source: &Arc<SourceModel>,
) -> Arc<dyn SourceReader> {
    let inner = client.map(|c| Arc::new(HubShardReader::new(c, source.clone())) as Arc<dyn SourceReader>);
    Arc::new(CachedReader::new(inner, disk, source.clone()))
}

/// The Hub (or, with no client, only what was cached) as the mount's model provider, with
/// descriptions and source bytes cached on disk.
pub struct CachedProvider {
    client: Option<Arc<HubClient>>,
    disk: Arc<DiskCache>,
    meta: Arc<MetadataCache>,
}

impl CachedProvider {
    /// A provider over `client` (`None` = offline) and the two caches.
    pub fn new(client: Option<Arc<HubClient>>, disk: Arc<DiskCache>, meta: Arc<MetadataCache>) -> Self {
        Self { client, disk, meta }
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
        cached_reader(self.client.clone(), self.disk.clone(), source)
    }
}
