//! `ggufs status MOUNTPOINT`: the mount's read counters (from its `.ggufs/status` file), so a
//! user can see why a load is slow: bytes served vs fetched, cache hits, requests in flight.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;

use ggufs::catalog::{CONTROL_DIR, STATUS_FILE};
use ggufs::stats::{render_text, StatusReport, STATUS_FORMAT};

/// Arguments of `status`.
#[derive(Args)]
pub struct StatusArgs {
    /// A ggufs mountpoint.
    mountpoint: PathBuf,
    /// Print the raw JSON report instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `status`.
pub fn run(args: StatusArgs) -> anyhow::Result<()> {
    let path = args.mountpoint.join(CONTROL_DIR).join(STATUS_FILE);
    let raw = std::fs::read(&path)
        .with_context(|| format!("reading {} (is {} a ggufs mount?)", path.display(), args.mountpoint.display()))?;
    let report: StatusReport = serde_json::from_slice(&raw).with_context(|| format!("parsing {}", path.display()))?;
    if report.format != STATUS_FORMAT {
        bail!("{}: unknown status format {:?} (this ggufs reads {STATUS_FORMAT})", path.display(), report.format);
    }
    if args.json {
        println!("{}", String::from_utf8_lossy(&raw).trim_end());
    } else {
        print!("{}", render_text(&report));
    }
    Ok(())
}
