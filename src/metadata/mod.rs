//! `general.*` metadata as the reference derives it in remote mode (converter-spec §2). To be completed.

use crate::gguf::KvMap;
use crate::source::RepoFiles;

/// Parameter counts as the reference's `get_total_parameter_count`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ParamCount {
    pub total: i64,
    pub shared: i64,
    pub expert: i64,
    pub expert_count: i64,
}

/// Counts parameters of the output tensors.
pub fn count_parameters<'a>(_tensors: impl IntoIterator<Item = (&'a str, &'a [u64])>) -> ParamCount {
    ParamCount::default()
}

/// What the general block is derived from.
pub struct MetadataInput<'a> {
    pub files: &'a RepoFiles,
    pub repo_id: &'a str,
    pub commit: &'a str,
    pub params: ParamCount,
}

/// Metadata errors.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("not implemented")]
    NotImplemented,
}

/// Writes the general block.
pub fn write_general(_inp: &MetadataInput, _kv: &mut KvMap) -> Result<(), MetadataError> {
    Err(MetadataError::NotImplemented)
}
