//! `ggufs pull ORG/REPO[@REV] --outtype T [-o FILE]`: materializes a virtual GGUF to disk
//! through the same engine the mount uses, without FUSE.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use ggufs::cache::open_file_cached;
use ggufs::hub::{HubClient, HubConfig};
use ggufs::plan::OutType;
use ggufs::pull::pull_to_with;
use ggufs::remote::open_file;

/// Arguments of `pull`.
#[derive(Args)]
pub struct PullArgs {
    /// `ORG/REPO` or `ORG/REPO@REVISION`.
    repo: String,
    /// Output type: f32, f16, bf16 or q8_0.
    #[arg(long, default_value = "f16", value_parser = parse_outtype)]
    outtype: OutType,
    /// Output file (default: `<REPO>-<TYPE>.gguf` in the current directory).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Hub endpoint (default: $HF_ENDPOINT or https://huggingface.co).
    #[arg(long)]
    endpoint: Option<String>,
    #[command(flatten)]
    cache: super::cache_args::CacheArgs,
}

/// Parses `--outtype`.
pub fn parse_outtype(s: &str) -> Result<OutType, String> {
    OutType::parse(s).ok_or_else(|| format!("unknown output type {s:?} (expected f32, f16, bf16 or q8_0)"))
}

/// Runs the subcommand.
pub async fn run(args: PullArgs) -> anyhow::Result<()> {
    let (repo, rev) = super::parse_repo_ref(&args.repo)?;
    let client = Arc::new(HubClient::new(HubConfig::from_env(args.endpoint))?);
    let mut disk = None;
    let file = match args.cache.open()? {
        Some(c) => {
            disk = Some(c.disk.clone());
            let client = (!args.cache.offline()).then_some(client);
            open_file_cached(client, c.disk, &c.meta, &repo, &rev, args.outtype).await.map_err(anyhow::Error::from)
        }
        None => open_file(client, &repo, &rev, args.outtype).await.map_err(anyhow::Error::from),
    }
    .with_context(|| format!("opening {repo}@{rev}"))?;
    let name = format!("{}-{}.gguf", ggufs::catalog::repo_file_stem(&repo), args.outtype.name());
    let dest = args.output.unwrap_or_else(|| PathBuf::from(name));
    let started = std::time::Instant::now();
    let written = pull_to_with(&file, &dest, args.cache.pull_concurrency(), |_| {})
        .await
        .with_context(|| format!("pulling {repo}@{rev}"))?;
    if let Some(disk) = disk {
        disk.wait_for_stores().await; // blocks fetched for this pull stay cached
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{}: {written} bytes in {secs:.1} s ({:.1} MB/s), commit {}",
        dest.display(),
        written as f64 / secs.max(1e-9) / 1e6,
        file.layout().commit
    );
    Ok(())
}
