//! The files a catalog serves: converted GGUF files, `.gguf` files the repo ships (passed
//! through byte for byte), and the live `.ggufs/status` report. Every read of a model file runs
//! inside its `stats` scope so the layers below can count what it cost.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};

use crate::pieces::Pieces;
use crate::prefetch::PrefetchingFile;
use crate::stats::{self, FileStats, Stats};
use crate::vfile::{ReadError, SourceReadError, SourceReader};
use crate::vfs::{VfsError, VirtualFile};

/// A source reader whose reads are counted (as cache hits when they sent no network request).
pub struct CountedReader(pub Arc<dyn SourceReader>);

impl SourceReader for CountedReader {
    fn read(&self, shard: usize, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, SourceReadError>> {
        stats::source_read(self.0.read(shard, range)).boxed()
    }

    fn read_pieces(&self, shard: usize, range: Range<u64>) -> BoxFuture<'_, Result<Pieces, SourceReadError>> {
        stats::source_read(self.0.read_pieces(shard, range)).boxed()
    }
}

/// What a model file's bytes come from.
pub enum Content {
    /// A virtual GGUF converted from safetensors, read through the prefetcher.
    Converted(PrefetchingFile),
    /// A `.gguf` file of the repo, read as it is: shard `shard` of a pass-through source.
    PassThrough { reader: Arc<dyn SourceReader>, shard: usize, size: u64 },
}

/// An open model file with its counters.
pub struct ModelFile {
    pub content: Content,
    pub stats: Arc<FileStats>,
}

impl ModelFile {
    async fn read_content(&self, offset: u64, len: u64) -> Result<Bytes, VfsError> {
        match &self.content {
            Content::Converted(f) => f.read(offset, len).await.map_err(read_error_to_vfs),
            Content::PassThrough { reader, shard, size } => {
                let end = offset.saturating_add(len).min(*size);
                if offset >= end {
                    return Ok(Bytes::new());
                }
                reader.read(*shard, offset..end).await.map_err(|e| {
                    tracing::error!(error = %e, offset, len, "pass-through read failed");
                    source_error_to_vfs(e)
                })
            }
        }
    }
}

impl VirtualFile for ModelFile {
    fn size(&self) -> u64 {
        match &self.content {
            Content::Converted(f) => f.size(),
            Content::PassThrough { size, .. } => *size,
        }
    }

    fn read(&self, offset: u64, len: u64) -> BoxFuture<'_, Result<Bytes, VfsError>> {
        async move {
            let out = stats::in_file(self.stats.clone(), self.read_content(offset, len)).await;
            self.stats.record_read(out.as_ref().map(|b| b.len() as u64).map_err(|_| ()));
            out
        }
        .boxed()
    }
}

fn source_error_to_vfs(e: SourceReadError) -> VfsError {
    match e {
        SourceReadError::NotFound(m) => VfsError::NotFound(m),
        SourceReadError::AccessDenied(m) => VfsError::AccessDenied(m),
        SourceReadError::Io(m) => VfsError::Io(m),
    }
}

fn read_error_to_vfs(e: ReadError) -> VfsError {
    tracing::error!(error = %e, "read failed");
    match e {
        ReadError::Source { source, .. } => source_error_to_vfs(source),
        other => VfsError::Io(other.to_string()),
    }
}

/// `.ggufs/status`: the counters as JSON, taken when the file is opened (so one `cat` sees one
/// consistent snapshot; the next open sees new numbers).
pub struct StatusFile(Bytes);

impl StatusFile {
    /// A snapshot of `stats`.
    pub fn snapshot(stats: &Stats) -> Self {
        let mut json = serde_json::to_vec_pretty(&stats.report()).unwrap_or_default();
        json.push(b'\n');
        Self(Bytes::from(json))
    }
}

impl VirtualFile for StatusFile {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn read(&self, offset: u64, len: u64) -> BoxFuture<'_, Result<Bytes, VfsError>> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(self.0.len());
        let end = usize::try_from(offset.saturating_add(len)).unwrap_or(usize::MAX).min(self.0.len());
        let out = self.0.slice(start..end.max(start));
        async move { Ok(out) }.boxed()
    }

    fn volatile(&self) -> bool {
        true
    }
}
