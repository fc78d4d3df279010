//! Materializing a virtual file to disk through the same engine the mount uses.

use std::io::Write;
use std::path::Path;

use futures::{StreamExt, TryStreamExt};

use crate::vfile::{GgufFile, ReadError};

/// Output bytes produced per engine call: large enough to batch source requests, small
/// enough to bound memory (`PULL_CONCURRENCY` of them are in flight).
pub const PULL_CHUNK: u64 = 16 << 20;
/// Chunks converted concurrently.
pub const PULL_CONCURRENCY: usize = 4;

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}: {source}")]
    Write { path: String, source: std::io::Error },
}

/// Writes the whole of `file` to `dest` (via a temporary file renamed into place, so an
/// interrupted pull never leaves a truncated GGUF under the final name). `progress` is
/// called with the number of bytes written so far.
pub async fn pull_to(file: &GgufFile, dest: &Path, progress: impl FnMut(u64)) -> Result<u64, PullError> {
    pull_to_with(file, dest, PULL_CONCURRENCY, progress).await
}

/// `pull_to` with `concurrency` chunks of `PULL_CHUNK` in flight (what `--memory-cache` buys:
/// converted bytes buffered ahead of the writer).
pub async fn pull_to_with(
    file: &GgufFile,
    dest: &Path,
    concurrency: usize,
    mut progress: impl FnMut(u64),
) -> Result<u64, PullError> {
    let werr = |source| PullError::Write { path: dest.display().to_string(), source };
    let tmp = dest.with_extension("gguf.partial");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).map_err(werr)?);
    let size = file.size();
    let chunks = (0..size.div_ceil(PULL_CHUNK)).map(|i| {
        let start = i * PULL_CHUNK;
        file.read_range(start, PULL_CHUNK.min(size - start))
    });
    let mut stream = futures::stream::iter(chunks).buffered(concurrency.max(1));
    let mut written = 0;
    while let Some(bytes) = stream.try_next().await? {
        out.write_all(&bytes).map_err(werr)?;
        written += bytes.len() as u64;
        progress(written);
    }
    out.into_inner().map_err(|e| werr(e.into_error()))?.sync_all().map_err(werr)?;
    std::fs::rename(&tmp, dest).map_err(werr)?;
    Ok(written)
}
