//! Byte ranges of a virtual GGUF file: header bytes are served from the layout; tensor bytes
//! are produced by fetching only the source rows that cover the range and converting them.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use futures::{StreamExt, TryStreamExt};

use crate::gguf::GgmlType;
use crate::pagebuf::PageBuf;
use crate::pieces::Pieces;
use crate::plan::layout::{LaidTensor, Layout};
use crate::plan::TensorSource;
use crate::quant::{self, QuantError};
use crate::safetensors::Dtype;
use crate::source::SourceModel;

/// Why source bytes could not be read.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum SourceReadError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("{0}")]
    Io(String),
}

/// Reads byte ranges of a model's safetensors shards (the Hub, a cache, or local files).
pub trait SourceReader: Send + Sync {
    /// Bytes `range` of shard `shard` (index into `SourceModel::shards`); exactly that many.
    fn read(&self, shard: usize, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, SourceReadError>>;

    /// The bytes of `read`, in as many pieces as the reader holds them (a reader over cache
    /// blocks hands out block slices instead of gathering them).
    fn read_pieces(&self, shard: usize, range: Range<u64>) -> BoxFuture<'_, Result<Pieces, SourceReadError>> {
        async move { self.read(shard, range).await.map(Pieces::one) }.boxed()
    }
}

/// Why bytes of the virtual file could not be produced.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    #[error("{repo}: {source}")]
    Source { repo: String, source: SourceReadError },
    #[error("{repo}: tensor {tensor}: {reason}")]
    Convert { repo: String, tensor: String, reason: String },
}

/// Source reads of one run of consecutive source rows.
const MAX_RUN_BYTES: u64 = 8 << 20;
/// Largest source request covering several runs.
const MAX_SPAN_BYTES: u64 = 16 << 20;
/// Bytes a covering request may fetch beyond twice what its runs use (half a head of rows).
const SPAN_SLACK: u64 = 1 << 20;
/// Source requests (and tensors) in flight for one read call.
const FETCH_CONCURRENCY: usize = 8;
/// Conversions of less input than this run inline on the async thread.
const INLINE_CONVERT_BYTES: usize = 64 << 10;

/// An open virtual GGUF file.
pub struct GgufFile {
    layout: Arc<Layout>,
    source: Arc<SourceModel>,
    reader: Arc<dyn SourceReader>,
}

impl GgufFile {
    /// A virtual file over `layout`, reading source bytes through `reader`.
    pub fn new(layout: Arc<Layout>, source: Arc<SourceModel>, reader: Arc<dyn SourceReader>) -> Self {
        Self { layout, source, reader }
    }

    /// The layout this file serves.
    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    /// Total size.
    pub fn size(&self) -> u64 {
        self.layout.size
    }

    /// Bytes `[offset, offset+len)` clamped to the file size.
    pub async fn read_range(&self, offset: u64, len: u64) -> Result<Bytes, ReadError> {
        let end = offset.saturating_add(len).min(self.layout.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let header_len = self.layout.header.len() as u64;
        let header =
            if offset < header_len { &self.layout.header[offset as usize..end.min(header_len) as usize] } else { &[] };
        // Tensors are produced concurrently (a range may cover many small ones: norms, biases),
        // each placed at its offset; padding between them stays zero.
        let pos = offset.max(header_len);
        let mut pieces = Vec::new();
        for t in self.tensors_overlapping(pos, end) {
            let (lo, hi) = (pos.max(t.file_offset), end.min(t.file_offset + t.nbytes()));
            if lo < hi {
                pieces.push(self.tensor_piece(t, lo..hi, offset));
            }
        }
        let pieces: Vec<(u64, Bytes)> = futures::stream::iter(pieces).buffered(FETCH_CONCURRENCY).try_collect().await?;
        // The common case of a large tensor: one piece is the whole answer, served without a copy.
        if let [(0, whole)] = pieces.as_slice() {
            if header.is_empty() && whole.len() as u64 == end - offset {
                return Ok(whole.clone());
            }
        }
        Ok(assemble(header, &pieces, (end - offset) as usize))
    }

    /// File bytes `range` of tensor `t`, with their position relative to `base`.
    fn tensor_piece<'a>(
        &'a self,
        t: &'a LaidTensor,
        range: Range<u64>,
        base: u64,
    ) -> BoxFuture<'a, Result<(u64, Bytes), ReadError>> {
        async move {
            let bytes = self.tensor_bytes(t, (range.start - t.file_offset)..(range.end - t.file_offset)).await?;
            Ok((range.start - base, bytes))
        }
        .boxed()
    }

    fn tensors_overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = &LaidTensor> {
        let ts = &self.layout.tensors;
        let first =
            ts.partition_point(|t| t.file_offset + crate::gguf::pad(t.nbytes(), crate::gguf::ALIGNMENT) <= start);
        ts[first..].iter().take_while(move |t| t.file_offset < end)
    }

    /// Bytes `range` (relative to the tensor's data) of tensor `t`.
    async fn tensor_bytes(&self, t: &LaidTensor, range: Range<u64>) -> Result<Bytes, ReadError> {
        let (block_elems, block_bytes) = t.info.ty.block();
        let n = t.info.n_elements();
        let e0 = range.start / block_bytes * block_elems;
        let e1 = (range.end.div_ceil(block_bytes) * block_elems).min(n);
        let (bytes, first_elem) = match &t.plan.source {
            TensorSource::Rows { parts, order, rows_per_part, row_len, op } => {
                let (r0, r1) = (e0 / row_len, e1.div_ceil(*row_len));
                let runs = self.row_runs(parts, order, *rows_per_part, *row_len, r0..r1);
                (self.fetch_and_convert(t, runs, *op).await?, r0 * row_len)
            }
            TensorSource::Transposed { src } => {
                let rows = self.source.tensors[*src].shape.first().copied().unwrap_or(0);
                (self.transposed(t, *src, (rows, 0, rows), e0..e1).await?.into(), e0)
            }
            TensorSource::HeadTransposed { src, group, start, len } => {
                (self.transposed(t, *src, (*group, *start, *len), e0..e1).await?.into(), e0)
            }
            TensorSource::ExpertsTransposed { src, start, len } => {
                (self.experts_transposed(t, *src, (*start, *len), e0..e1).await?.into(), e0)
            }
            TensorSource::Generated(values) => {
                let vals = values.get(e0 as usize..e1 as usize).unwrap_or(&[]);
                (self.convert_f32(t, vals)?.into(), e0)
            }
        };
        let skip = (range.start - t.info.ty.bytes_for(first_elem)) as usize;
        let take = (range.end - range.start) as usize;
        if skip + take > bytes.len() {
            return Err(self.convert_err(t, "converted data shorter than planned".into()));
        }
        Ok(bytes.slice(skip..skip + take))
    }

    /// Groups output rows into runs of consecutive source rows of one part.
    fn row_runs(
        &self,
        parts: &[usize],
        order: &crate::plan::RowOrder,
        rows_per_part: u64,
        row_len: u64,
        rows: Range<u64>,
    ) -> Vec<RowRun> {
        let mut runs: Vec<RowRun> = Vec::new();
        for r in rows {
            let part = parts[(r / rows_per_part) as usize];
            let src_row = order.source_row(r % rows_per_part, rows_per_part);
            let st = &self.source.tensors[part];
            let row_bytes = row_len * st.dtype.size();
            let start = st.start + src_row * row_bytes;
            match runs.last_mut() {
                Some(run)
                    if run.tensor == part
                        && run.range.end == start
                        && run.range.end - run.range.start < MAX_RUN_BYTES =>
                {
                    run.range.end += row_bytes
                }
                _ => runs.push(RowRun {
                    tensor: part,
                    shard: st.shard,
                    dtype: st.dtype,
                    range: start..start + row_bytes,
                }),
            }
        }
        runs
    }

    async fn fetch_and_convert(
        &self,
        t: &LaidTensor,
        runs: Vec<RowRun>,
        op: crate::plan::ElemOp,
    ) -> Result<Bytes, ReadError> {
        let spans = coalesce(runs);
        let fetched: Vec<Vec<(RowRun, Pieces)>> = futures::stream::iter(spans.into_iter().map(|span| async move {
            let pieces = self.reader.read_pieces(span.shard, span.range.clone()).await?;
            Ok::<_, SourceReadError>(span.split(&pieces))
        }))
        .buffered(FETCH_CONCURRENCY)
        .try_collect()
        .await
        .map_err(|e| ReadError::Source { repo: self.layout.repo_id.clone(), source: e })?;
        let fetched: Vec<(RowRun, Pieces)> = fetched.into_iter().flatten().collect();
        let ty = t.info.ty;
        let input_bytes: usize = fetched.iter().map(|(_, p)| p.len()).sum();
        let convert = move || {
            // Sized up front: growing by doubling would copy the output several times over.
            let expected: usize = fetched
                .iter()
                .map(|(run, p)| quant::output_len(ty, p.len() / run.dtype.size() as usize).unwrap_or(0))
                .sum();
            let mut out = PageBuf::with_capacity(expected);
            for (run, pieces) in fetched {
                // Whole output blocks per call, so a block cut by a cache-block boundary is
                // gathered (a few bytes) rather than the run.
                let unit = (ty.block().0 * run.dtype.size()) as usize;
                pieces.for_each_aligned(unit, |input| quant::convert_row(run.dtype, input, op, ty, &mut out))?;
            }
            Ok::<_, QuantError>(out.freeze())
        };
        // Conversion is CPU work (tens of ms per MiB for Q8_0): off the async threads, so
        // other reads and network I/O keep running; tiny conversions are not worth the hop.
        let converted = match tokio::runtime::Handle::try_current() {
            Ok(rt) if input_bytes >= INLINE_CONVERT_BYTES => rt
                .spawn_blocking(convert)
                .await
                .map_err(|e| self.convert_err(t, format!("conversion task failed: {e}")))?,
            _ => convert(),
        };
        converted.map_err(|e| self.quant_err(t, e))
    }

    /// GPT-2 Conv1D weights and DeepSeek's `k_b`: the whole source tensor is read, widened
    /// to f32, and each head's rows `start..start+len` (of `group`) are transposed.
    async fn transposed(
        &self,
        t: &LaidTensor,
        src: usize,
        (group, start, len): (u64, u64, u64),
        elems: Range<u64>,
    ) -> Result<Vec<u8>, ReadError> {
        let st = &self.source.tensors[src];
        let vals = self.source_f32(t, src).await?;
        let (rows, cols) = match st.shape.as_slice() {
            [r, c] => (*r as usize, *c as usize),
            _ => return Err(self.convert_err(t, "transpose needs a 2-D source".into())),
        };
        let (group, start, len) = (group as usize, start as usize, len as usize);
        if len == 0 || group == 0 || rows % group != 0 || start + len > group {
            return Err(self.convert_err(t, "transpose: head rows do not fit the source".into()));
        }
        let per_head = cols * len;
        let out: Option<Vec<f32>> = (elems.start as usize..elems.end as usize)
            .map(|i| {
                let (h, rem) = (i / per_head, i % per_head);
                let (c, j) = (rem / len, rem % len);
                vals.get((h * group + start + j) * cols + c).copied()
            })
            .collect();
        let out = out.ok_or_else(|| self.convert_err(t, "transpose outside the source".into()))?;
        self.convert_f32(t, &out)
    }

    /// Llama 4's fused expert tensors: each expert's `[rows, cols]` matrix transposed, keeping
    /// source columns `start..start+len`.
    async fn experts_transposed(
        &self,
        t: &LaidTensor,
        src: usize,
        (start, len): (u64, u64),
        elems: Range<u64>,
    ) -> Result<Vec<u8>, ReadError> {
        let (rows, cols) = match self.source.tensors[src].shape.as_slice() {
            [_, r, c] => (*r, *c),
            _ => return Err(self.convert_err(t, "expert transpose needs a 3-D source".into())),
        };
        let vals = self.source_f32(t, src).await?;
        let out: Option<Vec<f32>> = elems
            .map(|i| {
                let s = TensorSource::experts_transposed_index(i, rows, cols, start, len)?;
                vals.get(usize::try_from(s).ok()?).copied()
            })
            .collect();
        let out = out.ok_or_else(|| self.convert_err(t, "expert transpose outside the source".into()))?;
        self.convert_f32(t, &out)
    }

    /// The whole source tensor widened to f32 (transposes need every row).
    async fn source_f32(&self, t: &LaidTensor, src: usize) -> Result<Vec<f32>, ReadError> {
        let st = &self.source.tensors[src];
        let raw = self
            .reader
            .read(st.shard, st.start..st.start + st.len)
            .await
            .map_err(|e| ReadError::Source { repo: self.layout.repo_id.clone(), source: e })?;
        let mut wide = Vec::new();
        quant::convert_row(st.dtype, &raw, crate::plan::ElemOp::None, GgmlType::F32, &mut wide)
            .map_err(|e| self.quant_err(t, e))?;
        Ok(wide.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    fn convert_f32(&self, t: &LaidTensor, vals: &[f32]) -> Result<Vec<u8>, ReadError> {
        let mut out = Vec::new();
        quant::convert_f32_row_op(vals, t.f32_op, t.info.ty, &mut out).map_err(|e| self.quant_err(t, e))?;
        Ok(out)
    }

    fn quant_err(&self, t: &LaidTensor, e: QuantError) -> ReadError {
        self.convert_err(t, e.to_string())
    }

    fn convert_err(&self, t: &LaidTensor, reason: String) -> ReadError {
        ReadError::Convert { repo: self.layout.repo_id.clone(), tensor: t.info.name.clone(), reason }
    }
}

/// `len` bytes: `header` at 0, each piece at its offset (pieces in order, not overlapping), zeros
/// in between (tensor padding) and after.
fn assemble(header: &[u8], pieces: &[(u64, Bytes)], len: usize) -> Bytes {
    let mut out = PageBuf::with_capacity(len);
    out.extend_from_slice(header);
    for (at, bytes) in pieces {
        let at = (*at as usize).min(len);
        let piece = &bytes[..bytes.len().min(len - at)];
        if at > out.len() {
            out.extend_unspecified(at - out.len()).fill(0);
        }
        let overlap = (out.len() - at).min(piece.len());
        out[at..at + overlap].copy_from_slice(&piece[..overlap]);
        out.extend_from_slice(&piece[overlap..]);
    }
    out.extend_unspecified(len - out.len()).fill(0);
    out.freeze()
}

/// Source bytes fetched with one request: one or more row runs of one source tensor.
struct Span {
    shard: usize,
    range: Range<u64>,
    /// Bytes of `range` the runs actually use.
    useful: u64,
    runs: Vec<RowRun>,
}

impl Span {
    /// Each run's bytes, cut out of the span's (a short answer leaves the rest empty, and
    /// conversion then reports the data as shorter than planned).
    fn split(self, pieces: &Pieces) -> Vec<(RowRun, Pieces)> {
        let (start, held) = (self.range.start, pieces.len());
        self.runs
            .into_iter()
            .map(|run| {
                let (lo, hi) = ((run.range.start - start) as usize, (run.range.end - start) as usize);
                let p = if hi <= held { pieces.slice(lo..hi) } else { Pieces::default() };
                (run, p)
            })
            .collect()
    }
}

/// Groups runs (in output order) into spans. Rows permuted within attention heads (Llama's
/// q/k) make one run per row; their source rows lie close together, so one request for the
/// range covering them replaces hundreds of row-sized ones, as long as it wastes little.
fn coalesce(runs: Vec<RowRun>) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    for run in runs {
        let len = run.range.end - run.range.start;
        if let Some(s) = spans.last_mut() {
            let (lo, hi) = (s.range.start.min(run.range.start), s.range.end.max(run.range.end));
            let useful = s.useful + len;
            let fits = hi - lo <= MAX_SPAN_BYTES && hi - lo <= 2 * useful + SPAN_SLACK;
            if s.runs.first().is_some_and(|r| r.tensor == run.tensor) && fits {
                s.range = lo..hi;
                s.useful = useful;
                s.runs.push(run);
                continue;
            }
        }
        spans.push(Span { shard: run.shard, range: run.range.clone(), useful: len, runs: vec![run] });
    }
    spans
}

/// Consecutive source rows of one source tensor, fetched with one request.
struct RowRun {
    tensor: usize,
    shard: usize,
    dtype: Dtype,
    range: Range<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tensor: usize, start: u64, len: u64) -> RowRun {
        RowRun { tensor, shard: 0, dtype: Dtype::BF16, range: start..start + len }
    }

    #[test]
    fn permuted_rows_of_a_head_become_one_request_and_distant_ones_do_not() {
        // Rows 0, 32, 1, 33, ... of a 64-row head, 4 KiB each: as Llama's q permutation asks.
        let row = 4096;
        let runs: Vec<RowRun> = (0..32).flat_map(|i| [run(0, i * row, row), run(0, (32 + i) * row, row)]).collect();
        let spans = coalesce(runs);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].range, 0..64 * row);
        assert_eq!(spans[0].runs.len(), 64);
        // Another tensor, or a run far away, starts a new request.
        let spans = coalesce(vec![run(0, 0, row), run(1, row, row), run(1, 100 << 20, row)]);
        assert_eq!(spans.iter().map(|s| s.runs.len()).collect::<Vec<_>>(), vec![1, 1, 1]);
    }

    #[test]
    fn a_span_hands_each_run_its_own_bytes() {
        let span = coalesce(vec![run(0, 10, 2), run(0, 14, 3), run(0, 12, 2)]).pop().unwrap();
        assert_eq!(span.range, 10..17);
        // Held in two pieces, cut inside the second run.
        let pieces = Pieces::from_vec(vec![Bytes::from_static(b"abcde"), Bytes::from_static(b"fg")]);
        let parts: Vec<Bytes> = span.split(&pieces).into_iter().map(|(_, p)| p.into_contiguous()).collect();
        assert_eq!(parts, vec![Bytes::from_static(b"ab"), Bytes::from_static(b"efg"), Bytes::from_static(b"cd")]);
        // A short answer leaves the runs it does not cover empty.
        let short = Pieces::one(Bytes::from_static(b"abcd"));
        let parts: Vec<usize> = span_of_three().split(&short).into_iter().map(|(_, p)| p.len()).collect();
        assert_eq!(parts, vec![2, 0, 2]);
    }

    fn span_of_three() -> Span {
        coalesce(vec![run(0, 10, 2), run(0, 14, 3), run(0, 12, 2)]).pop().unwrap()
    }
}
