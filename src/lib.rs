//! ggufs: Hugging Face Hub models as virtual GGUF files.
//!
//! Data flows one way: `hub` (HTTP) → `source` (a repo described from metadata) →
//! `plan` (the GGUF layout and how each byte is made, using `arch`, `vocab`, `metadata`)
//! → `vfile` (byte ranges of the virtual file, using `quant` and `cache`) → `fs` (FUSE).

pub mod allocator;
pub mod arch;
pub mod cache;
pub mod catalog;
mod catalog_files;
pub mod direct_io;
pub mod dump;
pub mod fs;
pub mod gguf;
pub mod hfcache;
pub mod hub;
pub mod mapped;
pub mod metadata;
pub mod pagebuf;
pub mod pieces;
pub mod plan;
pub mod prefetch;
pub mod pull;
pub mod quant;
pub mod remote;
pub mod repo_path;
pub mod safetensors;
pub mod source;
pub mod stats;
pub mod vfile;
pub mod vfs;
pub mod vocab;

#[cfg(test)]
pub mod testutil;
