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

use futures::future::BoxFuture;
use futures::FutureExt;
use ggufs::cache::CachedProvider;
use ggufs::catalog::{Catalog, ModelProvider};
use ggufs::fs::{self, MountOptions, UnmountOutcome};
use ggufs::hub::{HubClient, HubConfig};
use ggufs::remote::HubProvider;
use ggufs::source::SourceModel;
use ggufs::vfile::SourceReader;
use ggufs::vfs::VfsError;

/// How long the parent waits for a daemonized child to finish mounting.
const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(30);

const MOUNT_EXAMPLES: &str = "\
Examples:
  # Two repos listed at the root; any other repo is reachable by path (ls /models/ORG/REPO)
  ggufs mount /models -m HuggingFaceTB/SmolLM2-135M-Instruct -m Qwen/Qwen2.5-0.5B-Instruct@main
  llama-cli -m /models/HuggingFaceTB/SmolLM2-135M-Instruct/SmolLM2-135M-Instruct-Q8_0.gguf

  # In the foreground (logs to stderr, Ctrl-C unmounts), visible to other users
  ggufs mount /models --foreground -o allow_other --config /etc/ggufs/models.txt

  # From /etc/fstab, through the mount.ggufs helper (ln -s $(which ggufs) /sbin/mount.fuse.ggufs):
  #   ggufs  /models  fuse.ggufs  ro,allow_other,models=HuggingFaceTB/SmolLM2-135M-Instruct  0 0
  mount /models

  ggufs unmount /models        # or: fusermount -u /models";

/// Arguments of `mount`.
#[derive(Args)]
#[command(
    long_about = "Mount Hub models as virtual GGUF files (read-only: -o ro is implied). Each repo directory \
                  ORG/REPO (or ORG/REPO@REVISION) holds <REPO>-F32.gguf, -F16, -BF16 and -Q8_0, byte-identical to \
                  convert_hf_to_gguf.py's output; bytes are fetched and converted on read.\n\n\
                  Without --foreground the command starts a background daemon and returns once the mount is \
                  live. The same binary, installed as /sbin/mount.ggufs or /sbin/mount.fuse.ggufs, is the \
                  helper mount(8) runs for /etc/fstab lines of type ggufs or fuse.ggufs (options: models=A/B:C/D, \
                  config=FILE, endpoint=URL, cache_dir=DIR, cache_size=N, no_cache, offline, allow_other, ro).",
    after_help = MOUNT_EXAMPLES
)]
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
    ggufs::allocator::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("ggufs-engine").build()?;
    let client = {
        let _guard = runtime.enter();
        Arc::new(HubClient::new(HubConfig::from_env(args.endpoint.clone()))?)
    };
    let provider: Arc<dyn ModelProvider> = match args.cache.open()? {
        Some(c) => Arc::new(CachedProvider::new((!args.cache.offline()).then_some(client), c.disk, c.meta)),
        None => Arc::new(HubProvider::new(client)),
    };
    let provider = Arc::new(LoggingProvider { inner: provider });
    let catalog = Arc::new(Catalog::with_memory_cache(provider, args.models.clone(), args.cache.memory_cache()));
    opts.runtime = Some(runtime.handle().clone());
    tracing::info!("mounting at {} (read-only)", args.mountpoint.display());
    let outcome = fs::run_foreground(catalog, &args.mountpoint, opts)?;
    tracing::info!("unmounted {} ({outcome:?})", args.mountpoint.display());
    Ok(())
}

/// Reports, once per repo the mount resolves, the events a user cares about: which commit a
/// repo resolved to and which files it serves, or why it could not be opened.
struct LoggingProvider {
    inner: Arc<dyn ModelProvider>,
}

impl ModelProvider for LoggingProvider {
    fn source(&self, repo: &str, revision: &str) -> BoxFuture<'_, Result<Arc<SourceModel>, VfsError>> {
        let (repo, revision) = (repo.to_string(), revision.to_string());
        async move {
            let result = self.inner.source(&repo, &revision).await;
            match &result {
                Ok(s) => tracing::info!(
                    "resolved {repo}@{revision}: commit {}, {} tensors in {} shard(s); serving {}-{{F32,F16,BF16,Q8_0}}.gguf",
                    s.commit,
                    s.tensors.len(),
                    s.shards.len(),
                    ggufs::catalog::repo_file_stem(&repo)
                ),
                Err(VfsError::NotFound(why)) => tracing::info!("{repo}@{revision}: {why}"),
                Err(e) => tracing::warn!("cannot open {repo}@{revision}: {e}"),
            }
            result
        }
        .boxed()
    }

    fn reader(&self, source: &Arc<SourceModel>) -> Arc<dyn SourceReader> {
        self.inner.reader(source)
    }
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
    cmd.args(super::command_args()).arg("--foreground");
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
#[command(
    long_about = "Unmount a ggufs mount. If files are still open (a running llama.cpp), the mount is detached \
                  lazily and goes away when the last reader closes. A stale mount left by a daemon that died \
                  (\"Transport endpoint is not connected\") is cleared. `fusermount -u DIR` works as well.",
    after_help = "Examples:\n  ggufs unmount /models\n  fusermount3 -u /models   # the same, without ggufs"
)]
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
