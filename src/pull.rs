//! Materializing a virtual file to disk through the same engine the mount uses, resumably.
//!
//! A pull writes `<dest>.partial` and, beside it, `<dest>.partial.sums`: one identity line
//! (repo, commit, output type, size, header hash, chunk size, ggufs version) and then one
//! XXH3-128 checksum per completed chunk, appended after the chunk's bytes are written (the
//! checksum guards against torn writes and bit rot, as the disk cache's does; SHA-256 cost
//! a sizeable share of a pull's CPU). A later pull of
//! the same file re-hashes the chunks the sidecar lists (a local read: far cheaper than
//! fetching and converting again), keeps the verified prefix, and continues from there.
//! Anything that does not match (another commit, another ggufs version, a chunk whose bytes
//! are not what was recorded, a torn last write) is dropped and refetched: the partial file
//! is never trusted by its size alone.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::Xxh3;

use crate::direct_io::DirectAppender;
use crate::vfile::{GgufFile, ReadError};

/// Output bytes produced per engine call: the mount's chunk size, so that every buffer a pull
/// allocates (fetched blocks, converted rows, chunks) is in the one recycled size class
/// (`pagebuf`). At 16 MiB, ~700 MiB of a 1 GB pull's buffers were fresh memory, ~30 % of its
/// CPU spent zeroing pages; at 4 MiB, ~70 MiB (same wall time, which the disk bounds).
pub const PULL_CHUNK: u64 = 4 << 20;
/// Chunks converted concurrently by default.
pub const PULL_CONCURRENCY: usize = 16;
/// Largest chunk accepted: a chunk is held in memory while it is converted.
pub const MAX_CHUNK: u64 = 1 << 30;
/// First line of a sidecar; bump when the sidecar format changes.
const SIDECAR_FORMAT: &str = "ggufs-partial/2";
/// Hex digits of one chunk checksum (XXH3-128).
const SUM_HEX_LEN: usize = 32;
/// Produced chunks waiting for the writer thread: enough to ride out a slow write, few enough
/// to bound memory.
const WRITE_QUEUE: usize = 2;

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("chunk size must be between 1 byte and {MAX_CHUNK} bytes")]
    BadChunk,
}

/// How a pull cuts the file into chunks.
#[derive(Debug, Clone, Copy)]
pub struct PullOptions {
    /// Bytes per chunk (the unit of progress, of resumption and of verification).
    pub chunk: u64,
    /// Chunks produced concurrently.
    pub concurrency: usize,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self { chunk: PULL_CHUNK, concurrency: PULL_CONCURRENCY }
    }
}

/// What a progress callback sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullProgress {
    /// Size of the whole file.
    pub total: u64,
    /// Bytes on disk so far (including a verified resumed prefix).
    pub done: u64,
    /// Bytes kept from an earlier interrupted pull.
    pub resumed: u64,
}

/// The outcome of a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullReport {
    /// Size of the file written.
    pub size: u64,
    /// Bytes kept (verified) from an earlier interrupted pull.
    pub resumed: u64,
}

/// `<dest>.partial`: where an unfinished pull lives.
pub fn partial_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(".partial");
    PathBuf::from(name)
}

/// `<dest>.partial.sums`: the per-chunk checksums of the partial file.
pub fn sidecar_path(dest: &Path) -> PathBuf {
    let mut name = partial_path(dest).into_os_string();
    name.push(".sums");
    PathBuf::from(name)
}

/// Writes the whole of `file` to `dest` with the default chunking; `progress` gets the bytes
/// on disk so far. The simple form of [`pull_resumable`], kept for callers that need no options.
pub async fn pull_to(file: &GgufFile, dest: &Path, mut progress: impl FnMut(u64)) -> Result<u64, PullError> {
    let report = pull_resumable(file, dest, PullOptions::default(), |p| progress(p.done)).await?;
    Ok(report.size)
}

/// Writes the whole of `file` to `dest`, continuing an interrupted pull when one is there.
/// The final name appears only once every byte is written and synced (rename from the
/// partial file), so `dest` is never a truncated GGUF. `progress` is called after the
/// resumed prefix is verified and after each chunk.
pub async fn pull_resumable(
    file: &GgufFile,
    dest: &Path,
    opts: PullOptions,
    mut progress: impl FnMut(PullProgress),
) -> Result<PullReport, PullError> {
    if opts.chunk == 0 || opts.chunk > MAX_CHUNK {
        return Err(PullError::BadChunk);
    }
    let (partial, sums) = (partial_path(dest), sidecar_path(dest));
    let werr = |p: &Path| {
        let path = p.display().to_string();
        move |source| PullError::Write { path, source }
    };
    let identity = identity_line(file, opts.chunk);
    let size = file.size();
    let n_chunks = size.div_ceil(opts.chunk);
    let verified = verified_chunks(&partial, &sums, &identity, opts.chunk).min(n_chunks);
    let out = open_partial(&partial, verified * opts.chunk).map_err(werr(&partial))?;
    let sidecar = rewrite_sidecar(&sums, &identity, &verified_sums(&sums, verified)).map_err(werr(&sums))?;
    let resumed = (verified * opts.chunk).min(size);
    if resumed > 0 {
        tracing::debug!(dest = %dest.display(), resumed, verified, "resuming");
    }
    progress(PullProgress { total: size, done: resumed, resumed });
    let chunks = (verified..n_chunks).map(|i| {
        let start = i * opts.chunk;
        file.read_range(start, opts.chunk.min(size - start))
    });
    let mut stream = futures::stream::iter(chunks).buffered(opts.concurrency.max(1));
    let written = Arc::new(AtomicU64::new(resumed));
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE);
    let writer = {
        let (written, paths) = (written.clone(), (partial.clone(), sums.clone()));
        std::thread::spawn(move || write_chunks(rx, (out, sidecar), resumed, &paths, &written))
    };
    // Chunks are written on a thread of their own so that disk writes and checksums never
    // hold up the async threads fetching the next chunks.
    let produced = async {
        while let Some(bytes) = stream.try_next().await? {
            if tx.send(bytes).await.is_err() {
                break; // the writer failed; its error is reported below
            }
            progress(PullProgress { total: size, done: written.load(Ordering::Relaxed), resumed });
        }
        Ok::<_, PullError>(())
    }
    .await;
    drop(tx);
    let write_result = writer.join().unwrap_or_else(|_| {
        Err(PullError::Write { path: partial.display().to_string(), source: std::io::Error::other("writer panicked") })
    });
    produced?;
    let out = write_result?;
    let done = written.load(Ordering::Relaxed);
    progress(PullProgress { total: size, done, resumed });
    out.sync_all().map_err(werr(&partial))?;
    std::fs::rename(&partial, dest).map_err(werr(dest))?;
    let _ = std::fs::remove_file(&sums);
    Ok(PullReport { size: done, resumed })
}

/// The writer thread: appends each chunk to the partial file (from offset `start`, with direct
/// I/O where the filesystem allows: a pull writes gigabytes nobody reads back at once), then its
/// checksum to the sidecar, counting bytes written; returns the partial file for the final sync.
fn write_chunks(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
    (out, mut sidecar): (File, File),
    start: u64,
    (partial, sums): &(PathBuf, PathBuf),
    written: &AtomicU64,
) -> Result<File, PullError> {
    let err = |p: &Path| {
        let path = p.display().to_string();
        move |source| PullError::Write { path, source }
    };
    let mut out = match DirectAppender::new(out, start) {
        Ok(direct) => Output::Direct(direct),
        Err(file) => Output::Buffered(file),
    };
    while let Some(bytes) = rx.blocking_recv() {
        // The chunk's bytes are in the file before its checksum is recorded.
        match &mut out {
            Output::Direct(d) => d.append(&bytes).and_then(|()| d.flush()),
            Output::Buffered(f) => f.write_all(&bytes),
        }
        .map_err(err(partial))?;
        writeln!(sidecar, "{}", chunk_sum(&bytes)).map_err(err(sums))?;
        written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
    match out {
        Output::Direct(d) => d.finish().map_err(err(partial)),
        Output::Buffered(f) => Ok(f),
    }
}

/// Where the writer thread puts the bytes.
enum Output {
    Direct(DirectAppender),
    Buffered(File),
}

/// The sidecar checksum of one chunk.
fn chunk_sum(bytes: &[u8]) -> String {
    let mut h = Xxh3::new();
    h.update(bytes);
    format!("{:032x}", h.digest128())
}

/// What makes two pulls produce the same bytes: anything else in the sidecar is a mismatch.
fn identity_line(file: &GgufFile, chunk: u64) -> String {
    let l = file.layout();
    serde_json::json!({
        "format": SIDECAR_FORMAT,
        "ggufs": env!("CARGO_PKG_VERSION"),
        "repo": l.repo_id,
        "commit": l.commit,
        "outtype": l.outtype.name(),
        "size": l.size,
        "header_sha256": hex::encode(Sha256::digest(&l.header)),
        "chunk": chunk,
    })
    .to_string()
}

/// How many leading chunks of `partial` match the checksums in `sums` (0 when there is no
/// usable sidecar or it describes another file).
fn verified_chunks(partial: &Path, sums: &Path, identity: &str, chunk: u64) -> u64 {
    let Ok(listed) = read_sidecar(sums, identity) else { return 0 };
    let Ok(mut f) = File::open(partial) else { return 0 };
    let mut buf = vec![0u8; chunk.min(PULL_CHUNK * 4) as usize];
    let mut good = 0;
    for want in &listed {
        if !chunk_matches(&mut f, &mut buf, chunk, want) {
            break;
        }
        good += 1;
    }
    good
}

/// Reads the next `chunk` bytes (or what is left of the file: the last chunk is short) and
/// compares their checksum with `want`.
fn chunk_matches(f: &mut File, buf: &mut [u8], chunk: u64, want: &str) -> bool {
    let mut hasher = Xxh3::new();
    let mut left = chunk;
    while left > 0 {
        let n = buf.len().min(left as usize);
        match f.read(&mut buf[..n]) {
            Ok(0) => break,
            Ok(k) => {
                hasher.update(&buf[..k]);
                left -= k as u64;
            }
            Err(_) => return false,
        }
    }
    left < chunk && format!("{:032x}", hasher.digest128()) == want
}

/// The checksum lines of a sidecar whose identity line is `identity`.
fn read_sidecar(sums: &Path, identity: &str) -> std::io::Result<Vec<String>> {
    let mut lines = BufReader::new(File::open(sums)?).lines();
    let first = lines.next().transpose()?.unwrap_or_default();
    if first != identity {
        tracing::debug!(sidecar = %sums.display(), "partial file is from another pull; starting over");
        return Ok(Vec::new());
    }
    // A torn last line (killed mid-write) is too short and ends the list.
    Ok(lines
        .map_while(Result::ok)
        .take_while(|l| l.len() == SUM_HEX_LEN && l.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect())
}

/// The first `n` checksums of the sidecar (already verified by the caller).
fn verified_sums(sums: &Path, n: u64) -> Vec<String> {
    let Ok(f) = File::open(sums) else { return Vec::new() };
    BufReader::new(f).lines().skip(1).map_while(Result::ok).take(n as usize).collect()
}

/// Opens the partial file cut to its verified prefix, positioned at its end.
fn open_partial(partial: &Path, keep: u64) -> std::io::Result<File> {
    let mut f = OpenOptions::new().create(true).truncate(false).read(true).write(true).open(partial)?;
    f.set_len(keep)?;
    f.seek(SeekFrom::Start(keep))?;
    Ok(f)
}

/// Rewrites the sidecar with only the verified checksums (atomically: temp file + rename),
/// and returns it open for appending.
fn rewrite_sidecar(sums: &Path, identity: &str, kept: &[String]) -> std::io::Result<File> {
    let mut tmp_name = sums.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    {
        let mut f = File::create(&tmp)?;
        writeln!(f, "{identity}")?;
        for s in kept {
            writeln!(f, "{s}")?;
        }
        f.sync_all()?;
    }
    std::fs::rename(&tmp, sums)?;
    OpenOptions::new().append(true).open(sums)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn sidecar_names_sit_beside_the_destination() {
        let d = Path::new("/x/model-F16.gguf");
        assert_eq!(partial_path(d), Path::new("/x/model-F16.gguf.partial"));
        assert_eq!(sidecar_path(d), Path::new("/x/model-F16.gguf.partial.sums"));
    }

    #[test]
    fn only_chunks_whose_bytes_match_their_checksums_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let (partial, sums) = (tmp.path().join("p"), tmp.path().join("s"));
        let data: Vec<u8> = (0..40u8).collect();
        let sum = |r: std::ops::Range<usize>| chunk_sum(&data[r]);
        write(&partial, &data[..35]);
        let mut side = format!("ID\n{}\n{}\n{}\n", sum(0..10), sum(10..20), sum(20..30));
        write(&sums, side.as_bytes());
        assert_eq!(verified_chunks(&partial, &sums, "ID", 10), 3);
        // Another identity: nothing is trusted.
        assert_eq!(verified_chunks(&partial, &sums, "OTHER", 10), 0);
        // A flipped byte in chunk 1 keeps only chunk 0.
        let mut bad = data[..35].to_vec();
        bad[15] ^= 1;
        write(&partial, &bad);
        assert_eq!(verified_chunks(&partial, &sums, "ID", 10), 1);
        // A torn checksum line ends the list; a partial shorter than listed stops at its end.
        write(&partial, &data[..25]);
        side.push_str("abc");
        write(&sums, side.as_bytes());
        assert_eq!(verified_chunks(&partial, &sums, "ID", 10), 2);
    }

    #[test]
    fn the_partial_file_is_cut_to_the_verified_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        let partial = tmp.path().join("p");
        write(&partial, &[7u8; 100]);
        let mut f = open_partial(&partial, 30).unwrap();
        f.write_all(&[1u8; 5]).unwrap();
        drop(f);
        let got = std::fs::read(&partial).unwrap();
        assert_eq!(got.len(), 35);
        assert_eq!(&got[28..32], &[7, 7, 1, 1]);
    }

    #[test]
    fn a_rewritten_sidecar_keeps_identity_and_verified_sums_then_appends() {
        let tmp = tempfile::tempdir().unwrap();
        let sums = tmp.path().join("s");
        write(&sums, b"ID\naa\nbb\ncc\n");
        let kept = verified_sums(&sums, 2);
        let mut f = rewrite_sidecar(&sums, "ID", &kept).unwrap();
        writeln!(f, "dd").unwrap();
        assert_eq!(std::fs::read_to_string(&sums).unwrap(), "ID\naa\nbb\ndd\n");
    }
}
