//! `ggufs mount MOUNTPOINT` and `ggufs unmount MOUNTPOINT`.
//!
//! Without `--foreground` the command re-executes itself in the foreground as a detached
//! child (new session, output to a log file) and returns once the mount is live, so that
//! scripts can use the mount as soon as `ggufs mount` exits.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

use ggufs::cache::CachedProvider;
use ggufs::catalog::{Catalog, ModelProvider};
use ggufs::fs::{self, MountOptions, UnmountOutcome};
use ggufs::hub::{HubClient, HubConfig};
use ggufs::remote::HubProvider;

/// How long the parent waits for a daemonized child to finish mounting.
const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `mount`.
#[derive(Args)]
pub struct MountArgs {
    /// Where to mount (an existing empty directory).
    mountpoint: PathBuf,
    /// Repos (`ORG/REPO[@REV]`) listed at the root; any other repo is reachable by path.
    #[arg(long = "model", short = 'm')]
    models: Vec<String>,
    /// A file listing repos to show at the root, one `ORG/REPO[@REV]` per line (`#` comments).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Hub endpoint (default: $HF_ENDPOINT or https://huggingface.co).
    #[arg(long)]
    endpoint: Option<String>,
    /// Stay in the foreground (logs to stderr; Ctrl-C unmounts).
    #[arg(short, long)]
    foreground: bool,
    /// Mount options, comma-separated: `allow_other`, `ro` (always implied).
    #[arg(short = 'o', value_delimiter = ',')]
    options: Vec<String>,
    /// Clear a stale mount (a previous daemon that died) at MOUNTPOINT first.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    cache: super::cache_args::CacheArgs,
    /// Log file of the background daemon (default: $XDG_STATE_HOME/ggufs/ggufs.log or /tmp).
    #[arg(long)]
    log_file: Option<PathBuf>,
}

/// Runs `mount`.
pub fn run(mut args: MountArgs) -> anyhow::Result<()> {
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        args.models.extend(config_repos(&text));
    }
    for repo in &args.models {
        ggufs::catalog::parse_repo_dir(repo).with_context(|| format!("--model {repo:?}: expected ORG/REPO[@REV]"))?;
    }
    let mut opts = MountOptions { force: args.force, ..MountOptions::default() };
    for o in &args.options {
        match o.as_str() {
            "allow_other" => opts.allow_other = true,
            "ro" | "" => {}
            other => bail!("unsupported mount option {other:?} (supported: allow_other, ro)"),
        }
    }
    if !args.foreground {
        return daemonize(&args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("ggufs-engine").build()?;
    let client = {
        let _guard = runtime.enter();
        Arc::new(HubClient::new(HubConfig::from_env(args.endpoint.clone()))?)
    };
    let provider: Arc<dyn ModelProvider> = match args.cache.open()? {
        Some(c) => Arc::new(CachedProvider::new((!args.cache.offline()).then_some(client), c.disk, c.meta)),
        None => Arc::new(HubProvider::new(client)),
    };
    let catalog = Arc::new(Catalog::with_memory_cache(provider, args.models.clone(), args.cache.memory_cache()));
    opts.runtime = Some(runtime.handle().clone());
    let outcome = fs::run_foreground(catalog, &args.mountpoint, opts)?;
    tracing::info!(?outcome, "unmounted");
    Ok(())
}

/// The repos a `--config` file lists: one per line, blank lines and `#` comments ignored.
fn config_repos(text: &str) -> Vec<String> {
    text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).filter(|l| !l.is_empty()).map(String::from).collect()
}

/// Starts `ggufs mount --foreground ...` detached and waits until the mount is live.
fn daemonize(args: &MountArgs) -> anyhow::Result<()> {
    let log = args.log_file.clone().unwrap_or_else(default_log_file);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(std::env::args_os().skip(1)).arg("--foreground");
    cmd.stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out);
    // SAFETY: setsid is async-signal-safe and runs in the child before exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("starting the mount daemon")?;
    let started = Instant::now();
    let target = args.mountpoint.canonicalize().unwrap_or_else(|_| args.mountpoint.clone());
    while started.elapsed() < DAEMON_START_TIMEOUT {
        if fs::is_mount_point(&target) {
            eprintln!("mounted at {} (daemon pid {}, log {})", target.display(), child.id(), log.display());
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the mount daemon exited ({status}); see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    bail!("the mount did not come up within {DAEMON_START_TIMEOUT:?}; see {}", log.display())
}

fn default_log_file() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("ggufs/ggufs.log")
}

/// Arguments of `unmount`.
#[derive(Args)]
pub struct UnmountArgs {
    /// The mountpoint.
    mountpoint: PathBuf,
}

/// Runs `unmount`: unmounts (lazily if files are still open or mapped) or clears a stale mount.
pub fn run_unmount(args: UnmountArgs) -> anyhow::Result<()> {
    if fs::clear_stale_mount(&args.mountpoint)? {
        eprintln!("cleared stale mount at {}", args.mountpoint.display());
        return Ok(());
    }
    match fs::unmount(&args.mountpoint)? {
        UnmountOutcome::Clean => eprintln!("unmounted {}", args.mountpoint.display()),
        UnmountOutcome::Detached => {
            eprintln!("{} is busy; detached (it goes away when the last reader closes)", args.mountpoint.display())
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_list_one_repo_per_line_with_comments() {
        let text = "# models\nQwen/Qwen2.5-0.5B-Instruct\n\n  google/gemma-3-1b-it@main  # pinned\n";
        assert_eq!(config_repos(text), vec!["Qwen/Qwen2.5-0.5B-Instruct", "google/gemma-3-1b-it@main"]);
    }
}
