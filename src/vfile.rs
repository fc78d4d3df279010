//! Byte ranges of a virtual GGUF file: header bytes are served from the layout; tensor bytes
//! are produced by fetching only the source rows that cover the range and converting them.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};

use crate::gguf::GgmlType;
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
/// Source requests in flight for one read call.
const FETCH_CONCURRENCY: usize = 8;

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
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        let header_len = self.layout.header.len() as u64;
        if offset < header_len {
            out.extend_from_slice(&self.layout.header[offset as usize..end.min(header_len) as usize]);
        }
        let mut pos = offset.max(header_len);
        for t in self.tensors_overlapping(pos, end) {
            let data_end = t.file_offset + t.nbytes();
            if pos < t.file_offset {
                out.resize(out.len() + (t.file_offset.min(end) - pos) as usize, 0);
                pos = t.file_offset.min(end);
            }
            if pos < data_end.min(end) {
                let r = (pos - t.file_offset)..(data_end.min(end) - t.file_offset);
                out.extend_from_slice(&self.tensor_bytes(t, r.clone()).await?);
                pos += r.end - r.start;
            }
        }
        out.resize((end - offset) as usize, 0);
        Ok(out.freeze())
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
                let converted = self.fetch_and_convert(t, runs, *op).await?;
                (converted, r0 * row_len)
            }
            TensorSource::Transposed { src } => {
                let rows = self.source.tensors[*src].shape.first().copied().unwrap_or(0);
                (self.transposed(t, *src, (rows, 0, rows), e0..e1).await?, e0)
            }
            TensorSource::HeadTransposed { src, group, start, len } => {
                (self.transposed(t, *src, (*group, *start, *len), e0..e1).await?, e0)
            }
            TensorSource::ExpertsTransposed { src, start, len } => {
                (self.experts_transposed(t, *src, (*start, *len), e0..e1).await?, e0)
            }
            TensorSource::Generated(values) => {
                let vals = values.get(e0 as usize..e1 as usize).unwrap_or(&[]);
                (self.convert_f32(t, vals)?, e0)
            }
        };
        let skip = (range.start - t.info.ty.bytes_for(first_elem)) as usize;
        let take = (range.end - range.start) as usize;
        bytes
            .get(skip..skip + take)
            .map(Bytes::copy_from_slice)
            .ok_or_else(|| self.convert_err(t, "converted data shorter than planned".into()))
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
    ) -> Result<Vec<u8>, ReadError> {
        let fetched: Vec<(RowRun, Bytes)> = futures::stream::iter(runs.into_iter().map(|run| async move {
            let b = self.reader.read(run.shard, run.range.clone()).await;
            b.map(|b| (run, b))
        }))
        .buffered(FETCH_CONCURRENCY)
        .try_collect()
        .await
        .map_err(|e| ReadError::Source { repo: self.layout.repo_id.clone(), source: e })?;
        let mut out = Vec::new();
        for (run, bytes) in fetched {
            quant::convert_row(run.dtype, &bytes, op, t.info.ty, &mut out).map_err(|e| self.quant_err(t, e))?;
        }
        Ok(out)
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

/// Consecutive source rows of one source tensor, fetched with one request.
struct RowRun {
    tensor: usize,
    shard: usize,
    dtype: Dtype,
    range: Range<u64>,
}
