//! Command-line front end. Each subcommand lives in its own file; this module parses arguments,
//! sets up logging and the async runtime, and turns errors into exit codes.

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use clap::{CommandFactory, Parser, Subcommand};

mod cache_args;
mod completions;
mod inspect;
mod logging;
mod mount;
mod mount_helper;
mod pull;
mod status;

const EXAMPLES: &str = "\
Examples:
  ggufs inspect HuggingFaceTB/SmolLM2-135M-Instruct --outtype q8_0
  ggufs pull Qwen/Qwen2.5-0.5B-Instruct --outtype f16
  ggufs mount /models -m HuggingFaceTB/SmolLM2-135M-Instruct
  llama-cli -m /models/HuggingFaceTB/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct-Q8_0.gguf
  ggufs unmount /models
  ggufs completions bash > /etc/bash_completion.d/ggufs

Environment: HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_OFFLINE (as huggingface_hub), RUST_LOG (log filter).";

/// Hugging Face Hub models as virtual GGUF files.
#[derive(Parser)]
#[command(
    name = "ggufs",
    version,
    about,
    long_about = "Hugging Face Hub models as virtual GGUF files (F32, F16, BF16, Q8_0), byte-identical to what \
                  llama.cpp's convert_hf_to_gguf.py writes. Headers come from metadata alone; tensor bytes are \
                  fetched and converted lazily, on read.",
    after_help = EXAMPLES
)]
pub(crate) struct Cli {
    /// More logging (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Errors only: no progress bar, no event lines, no summary.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// Set once from `-q`; read by subcommands that print progress or summaries.
static QUIET: AtomicBool = AtomicBool::new(false);

/// The effective command line (after mount-helper translation), for the mount daemon to re-exec.
static ARGS: OnceLock<Vec<OsString>> = OnceLock::new();

/// The process's arguments, or under the name `mount.ggufs` the equivalent `ggufs mount ...`
/// arguments; argv[0] included.
fn command_line() -> anyhow::Result<Vec<OsString>> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let argv = match argv.first() {
        Some(a0) if mount_helper::invoked_as_helper(Path::new(a0)) => {
            let mut out = vec![OsString::from("ggufs")];
            out.extend(mount_helper::translate(&argv)?);
            out
        }
        _ => argv,
    };
    Ok(ARGS.get_or_init(|| argv).clone())
}

/// The arguments after argv[0] this process was (effectively) started with.
pub fn command_args() -> Vec<OsString> {
    ARGS.get().map(|a| a.iter().skip(1).cloned().collect()).unwrap_or_default()
}

/// Writes to stdout; a closed pipe (`| head`) ends the output quietly instead of panicking.
pub fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// True with `-q`.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let argv = match command_line() {
        Ok(a) => a,
        Err(e) => return report(Err(e)),
    };
    let cli = Cli::parse_from(argv);
    QUIET.store(cli.quiet, Ordering::Relaxed);
    logging::init(cli.verbose, cli.quiet);
    let result = match cli.command {
        Command::Inspect(args) => runtime().and_then(|rt| rt.block_on(inspect::run(args))),
        Command::Pull(args) => runtime().and_then(|rt| rt.block_on(pull::run(args))),
        Command::Mount(args) => mount::run(args),
        Command::Unmount(args) => mount::run_unmount(args),
        Command::Status(args) => status::run(args),
        Command::Completions(args) => completions::run(args, &mut Cli::command()),
    };
    report(result)
}

/// Prints an error (with its chain of causes) and turns it into the exit code.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: library errors often repeat their
/// source's text in their own message, which `{:#}` would print twice.
fn error_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    ggufs::allocator::limit_arenas();
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
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
    fn error_lines_name_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("shard.safetensors: HTTP 403: expired")]
        struct Inner;
        #[derive(Debug, thiserror::Error)]
        #[error("org/repo: {0}")]
        struct Outer(#[source] Inner);
        let e = anyhow::Error::new(Outer(Inner)).context("pulling org/repo@main");
        assert_eq!(error_line(&e), "pulling org/repo@main: org/repo: shard.safetensors: HTTP 403: expired");
    }

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
