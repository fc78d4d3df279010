//! Command-line front end. Each subcommand lives in its own file; this module parses arguments,
//! sets up logging and the async runtime, and turns errors into exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cache_args;
mod inspect;
mod mount;
mod pull;
mod status;

/// Hugging Face Hub models as virtual GGUF files.
#[derive(Parser)]
#[command(name = "ggufs", version, about)]
struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Describe a Hub model from metadata only: commit, files, tensors, parameter count.
    Inspect(inspect::InspectArgs),
    /// Write a virtual GGUF file to disk (no mount needed).
    Pull(pull::PullArgs),
    /// Mount Hub models as virtual GGUF files (read-only).
    Mount(mount::MountArgs),
    /// Unmount a ggufs mount (or clear a stale one).
    Unmount(mount::UnmountArgs),
    /// Show a mount's read counters: bytes served and fetched, cache hits, requests in flight.
    Status(status::StatusArgs),
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Inspect(args) => runtime().and_then(|rt| rt.block_on(inspect::run(args))),
        Command::Pull(args) => runtime().and_then(|rt| rt.block_on(pull::run(args))),
        Command::Mount(args) => mount::run(args),
        Command::Unmount(args) => mount::run_unmount(args),
        Command::Status(args) => status::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

/// Logs go to stderr so that `--json` output on stdout stays machine-readable.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}

/// Splits `ORG/REPO[@REV]` into the repo id and the revision (`main` by default), checked with
/// the Hub's rules before any request (`REV` may be a branch, tag, sha, `refs/pr/N` or `pr:N`).
pub fn parse_repo_ref(s: &str) -> anyhow::Result<(String, String)> {
    let (repo, rev) = s.split_once('@').unwrap_or((s, "main"));
    // Written plainly here (`refs/pr/1`): escape it into the path form the catalog parses.
    let spec = format!("{repo}@{}", ggufs::repo_path::revision_path_form(rev));
    ggufs::catalog::parse_repo_spec(&spec).map_err(|e| anyhow::anyhow!("expected ORG/REPO[@REVISION], got {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_refs_parse() {
        assert_eq!(parse_repo_ref("a/b").unwrap(), ("a/b".into(), "main".into()));
        assert_eq!(parse_repo_ref("a/b@v1").unwrap(), ("a/b".into(), "v1".into()));
        assert!(parse_repo_ref("ab").is_err());
        assert!(parse_repo_ref("a/b@").is_err());
        assert!(parse_repo_ref("a//b").is_err());
        assert_eq!(parse_repo_ref("a/b@refs/pr/3").unwrap(), ("a/b".into(), "refs/pr/3".into()));
        assert_eq!(parse_repo_ref("a/b@pr:3").unwrap(), ("a/b".into(), "refs/pr/3".into()));
        assert!(parse_repo_ref("a--b/c").is_err());
    }
}
