//! The Hugging Face Hub client: our own thin layer on `reqwest`, because ggufs needs exact,
//! verified Range reads through the CDN redirect, resume, `Retry-After`, and Python-compatible
//! token discovery, which no existing crate gives together (hub-spec §4.4).

mod client;
mod config;
mod error;
mod range;
mod tuning;
mod verify;

pub use client::{encode_path, encode_segment, HubClient, RepoFile, SMALL_FILE_LIMIT};
pub use config::{hf_home, is_true, offline_from_env, token_path, HfEnv, HubConfig, RetryConfig, DEFAULT_ENDPOINT};
pub use error::HubError;
pub use tuning::TUNING_VARS;
