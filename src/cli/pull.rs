//! `ggufs pull ORG/REPO[@REV] --outtype T [-o FILE]`: materializes a virtual GGUF to disk
//! through the same engine the mount uses, without FUSE. Resumable; a progress bar on a
//! terminal.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use ggufs::cache::{open_file_cached, DiskCache};
use ggufs::hub::{HubClient, HubConfig};
use ggufs::plan::OutType;
use ggufs::pull::{partial_path, pull_resumable, PullOptions, PullProgress};
use ggufs::remote::open_file;
use ggufs::vfile::GgufFile;

const EXAMPLES: &str = "\
Examples:
  # SmolLM2 as F16, written to ./SmolLM2-135M-Instruct-F16.gguf
  ggufs pull HuggingFaceTB/SmolLM2-135M-Instruct

  # Q8_0 of a pinned revision, to a chosen path
  ggufs pull Qwen/Qwen2.5-0.5B-Instruct@main --outtype q8_0 -o qwen-q8.gguf

  # Interrupted? Run the same command again: it verifies what <FILE>.partial holds and continues.

  # Rebuild another type from the cache alone, without the network
  ggufs pull HuggingFaceTB/SmolLM2-135M-Instruct --outtype bf16 --offline";

/// Arguments of `pull`.
#[derive(Args)]
#[command(
    long_about = "Write a virtual GGUF file to disk: the same bytes the mount serves and the reference converter \
                  (convert_hf_to_gguf.py --remote) writes, without FUSE.\n\n\
                  The file is written to <FILE>.partial and renamed when complete. An interrupted pull leaves \
                  <FILE>.partial and <FILE>.partial.sums (a checksum per chunk); running the same pull again \
                  re-hashes the chunks already there, keeps those that match and fetches only the rest. On a \
                  terminal a progress bar shows bytes, rate and ETA; otherwise only a summary line is printed.",
    after_help = EXAMPLES
)]
pub struct PullArgs {
    /// `ORG/REPO` or `ORG/REPO@REVISION`.
    repo: String,
    /// Output type: f32, f16, bf16, q8_0 (the converter), or q4_k_m, q5_k_m, q6_k, q4_0,
    /// q8_0-lq (llama-quantize of the F16 file).
    #[arg(long, default_value = "f16", value_parser = parse_outtype)]
    outtype: OutType,
    /// Output file (default: `<REPO>-<TYPE>.gguf` in the current directory).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Hub endpoint (default: $HF_ENDPOINT or https://huggingface.co).
    #[arg(long)]
    endpoint: Option<String>,
    /// Bytes per chunk: the unit of resumption and verification (tests use small ones).
    #[arg(long, hide = true, value_parser = super::cache_args::parse_size)]
    chunk_size: Option<u64>,
    #[command(flatten)]
    cache: super::cache_args::CacheArgs,
}

/// Parses `--outtype`.
pub fn parse_outtype(s: &str) -> Result<OutType, String> {
    OutType::parse(s).ok_or_else(|| {
        format!("unknown output type {s:?} (expected f32, f16, bf16, q8_0, q4_k_m, q5_k_m, q6_k, q4_0 or q8_0-lq)")
    })
}

/// Runs the subcommand.
pub async fn run(args: PullArgs) -> anyhow::Result<()> {
    let (repo, rev) = super::parse_repo_ref(&args.repo)?;
    let (file, disk) = open(&args, &repo, &rev).await.with_context(|| format!("opening {repo}@{rev}"))?;
    let layout = file.layout();
    tracing::info!("resolved {repo}@{rev}: commit {}", layout.commit);
    let name = format!("{}-{}.gguf", ggufs::catalog::repo_file_stem(&repo), args.outtype.name());
    tracing::info!(
        "built {name}: {} ({}), {} tensors, {} bytes",
        layout.gguf_arch,
        layout.hf_arch,
        layout.tensors.len(),
        layout.size
    );
    let dest = args.output.clone().unwrap_or_else(|| PathBuf::from(&name));
    let opts = PullOptions {
        chunk: args.chunk_size.unwrap_or(ggufs::pull::PULL_CHUNK),
        concurrency: args.cache.pull_concurrency(),
    };
    let bar = progress_bar();
    let started = Instant::now();
    let mut announced = false;
    let report = pull_resumable(&file, &dest, opts, |p: PullProgress| {
        if !announced {
            announced = true;
            start_bar(&bar, p);
            if p.resumed > 0 {
                tracing::info!(
                    "resuming {}: {} bytes verified, {} to go",
                    partial_path(&dest).display(),
                    p.resumed,
                    p.total - p.resumed
                );
            }
        }
        bar.set_position(p.done);
    })
    .await
    .with_context(|| format!("pulling {repo}@{rev} (rerun to resume from {})", partial_path(&dest).display()))?;
    if let Some(disk) = disk {
        disk.wait_for_stores().await; // blocks fetched for this pull stay cached
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    let fetched = report.size - report.resumed;
    if !super::quiet() {
        eprintln!(
            "{}: {} bytes ({} resumed) in {secs:.1} s ({:.1} MB/s), commit {}",
            dest.display(),
            report.size,
            report.resumed,
            fetched as f64 / secs.max(1e-9) / 1e6,
            layout.commit
        );
    }
    Ok(())
}

/// The file to pull, and the disk cache its source blocks go to (if any).
async fn open(args: &PullArgs, repo: &str, rev: &str) -> anyhow::Result<(GgufFile, Option<Arc<DiskCache>>)> {
    let client = Arc::new(HubClient::new(HubConfig::from_env(args.endpoint.clone()))?);
    Ok(match args.cache.open()? {
        Some(c) => {
            let client = (!args.cache.offline()).then_some(client);
            let disk = c.disk.clone();
            (open_file_cached(client, c.disk, &c.meta, repo, rev, args.outtype).await?, Some(disk))
        }
        None => (open_file(client, repo, rev, args.outtype).await?, None),
    })
}

/// A bar on a terminal; hidden when stderr is not one (pipes, CI logs), with `-q`, or with
/// `HF_HUB_DISABLE_PROGRESS_BARS` set, as huggingface_hub does.
fn progress_bar() -> ProgressBar {
    let disabled = std::env::var_os("HF_HUB_DISABLE_PROGRESS_BARS").is_some_and(|v| !v.is_empty() && v != "0");
    if disabled || super::quiet() || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar
}

/// Sizes the bar and starts rate/ETA from the resumed prefix, so kept bytes do not count as speed.
fn start_bar(bar: &ProgressBar, p: PullProgress) {
    bar.set_message(if p.resumed > 0 { "resuming" } else { "pulling" });
    bar.set_length(p.total);
    bar.set_position(p.done);
    bar.reset_eta();
}
