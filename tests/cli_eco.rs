//! The `ggufs` binary's ecosystem habits against the fake Hub: resumable pulls with a
//! progress bar only on a terminal, quiet default logs, completions and `--help` examples.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ggufs_fakehub::{FakeHub, FaultAction, FaultRule, LogEntry};
use support::*;

const REPO: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

/// `ggufs` with a clean Hub environment pointed at `hub`.
fn ggufs(hub: &FakeHub, home: &Path) -> Command {
    hub_env(Command::new(env!("CARGO_BIN_EXE_ggufs")), hub, home)
}

/// `cmd` with a clean Hub environment pointed at `hub`.
fn hub_env(mut cmd: Command, hub: &FakeHub, home: &Path) -> Command {
    cmd.env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", home)
        .env_remove("HF_TOKEN")
        .env_remove("HF_TOKEN_PATH")
        .env_remove("RUST_LOG")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HUB_DISABLE_PROGRESS_BARS");
    cmd
}

fn pull_args(dest: &Path) -> Vec<String> {
    ["pull", REPO, "--outtype", "f16", "--no-cache", "--chunk-size", "512K", "-o"]
        .iter()
        .map(|s| s.to_string())
        .chain([dest.display().to_string()])
        .collect()
}

/// Source bytes fetched for tensor data (the safetensors header probe excluded).
fn data_bytes_fetched(log: &[LogEntry]) -> u64 {
    log.iter()
        .filter(|e| e.listener == "cdn" && e.method == "GET")
        .filter_map(|e| e.range.as_deref())
        .filter(|r| *r != "bytes=0-99999")
        .filter_map(|r| {
            let (a, b) = r.strip_prefix("bytes=")?.split_once('-')?;
            Some(b.parse::<u64>().ok()? - a.parse::<u64>().ok()? + 1)
        })
        .sum()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A pull killed mid-way leaves `<out>.partial`; the next pull verifies it, fetches only the
/// source bytes of the chunks still missing, and ends byte-identical to the reference.
#[test]
fn an_interrupted_pull_resumes_without_refetching_what_is_on_disk() {
    let hub = start_hub();
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out.gguf");
    let (partial, sums) = (tmp.path().join("out.gguf.partial"), tmp.path().join("out.gguf.partial.sums"));
    hub.set_faults(vec![
        FaultRule::new("", FaultAction::SlowBody { sleep_ms: 0, bytes_per_sec: Some(1_000_000) }).listener("cdn")
    ]);
    let log = std::fs::File::create(tmp.path().join("first.log")).unwrap();
    let mut child = ggufs(&hub, tmp.path()).args(pull_args(&dest)).stdout(Stdio::null()).stderr(log).spawn().unwrap();
    // Kill it once 5 chunks (2.5 MiB, more than the 1.7 MB header) are recorded.
    let started = Instant::now();
    while std::fs::read_to_string(&sums).map(|s| s.lines().count()).unwrap_or(0) < 6 {
        assert!(started.elapsed() < Duration::from_secs(30), "pull made no progress");
        if let Some(status) = child.try_wait().unwrap() {
            let log = std::fs::read_to_string(tmp.path().join("first.log")).unwrap_or_default();
            panic!("pull ended ({status}) before it could be interrupted: {log}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(partial.is_file() && !dest.exists());
    hub.set_faults(vec![]);
    hub.take_log();

    let out = ggufs(&hub, tmp.path()).args(pull_args(&dest)).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let golden = golden(REPO, "F16");
    let bytes = std::fs::read(&dest).unwrap();
    assert_eq!(sha256_hex(&bytes), golden["file"]["sha256"].as_str().unwrap());
    assert!(!partial.exists() && !sums.exists(), "partial files left behind");

    let err = stderr(&out);
    let resumed: u64 = err
        .split("resuming ")
        .nth(1)
        .and_then(|s| s.split(": ").nth(1))
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume line in {err}"));
    let header = golden["file"]["header_size"].as_u64().unwrap();
    assert!(resumed >= 5 * 512 * 1024 && resumed > header, "resumed only {resumed}");
    // Source tensor bytes in the repo; the resumed data bytes must not have been fetched again.
    let source_total: u64 = raw_tensors(&fixture_dir(REPO).join("model.safetensors")).iter().map(|t| t.len).sum();
    let fetched = data_bytes_fetched(&hub.take_log());
    assert!(fetched > 0, "nothing fetched for the missing chunks");
    assert!(
        fetched + (resumed - header) <= source_total + 64 * 1024,
        "second run fetched {fetched} bytes; {} were already on disk of {source_total}",
        resumed - header
    );
}

/// Not a terminal: no bar, no cursor control, just the event lines and a summary; the
/// default level shows the user's events and no debug noise.
#[test]
fn pull_output_off_a_terminal_is_plain_event_lines() {
    let hub = start_hub();
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("x.gguf");
    let out = ggufs(&hub, tmp.path()).args(pull_args(&dest)).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with(" INFO resolved HuggingFaceTB/SmolLM2-135M-Instruct@main: commit "), "{err}");
    assert!(lines[0].ends_with(&fake_commit(REPO)), "{err}");
    assert!(lines[1].contains("built SmolLM2-135M-Instruct-F16.gguf: llama (LlamaForCausalLM), 20 tensors"), "{err}");
    assert!(lines[2].starts_with(&format!("{}: 8211264 bytes (0 resumed)", dest.display())), "{err}");
    for noise in ["\r", "\x1b[", "ETA", "DEBUG", "TRACE", "ggufs::"] {
        assert!(!err.contains(noise), "{noise:?} in {err}");
    }
    assert!(out.stdout.is_empty());
    // -q: nothing on stderr on success; -vv: the library's debug lines appear.
    let quiet = ggufs(&hub, tmp.path()).args(["inspect", REPO, "-q"]).output().unwrap();
    assert!(quiet.status.success() && quiet.stderr.is_empty(), "{}", stderr(&quiet));
    let verbose = ggufs(&hub, tmp.path()).args(["inspect", REPO, "-vv"]).output().unwrap();
    assert!(verbose.status.success() && stderr(&verbose).contains("DEBUG"), "{}", stderr(&verbose));
}

/// On a terminal (a pty from script(1)) the bar shows bytes, rate and ETA. Then, from the
/// finished file, a damaged partial: it is not trusted, the damaged chunk and those after it
/// are rebuilt, and the result is still exact.
#[test]
fn pull_on_a_terminal_draws_a_progress_bar_and_a_damaged_partial_is_repaired() {
    let hub = start_hub();
    hub.set_faults(vec![
        FaultRule::new("", FaultAction::SlowBody { sleep_ms: 0, bytes_per_sec: Some(4_000_000) }).listener("cdn")
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("tty.gguf");
    let cmd = std::iter::once(env!("CARGO_BIN_EXE_ggufs").to_string())
        .chain(pull_args(&dest))
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let out = hub_env(Command::new("script"), &hub, tmp.path())
        .env("TERM", "xterm")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("script(1): {e}"));
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{transcript}");
    assert!(transcript.contains("ETA") && transcript.contains("/s") && transcript.contains("MiB"), "{transcript}");
    assert_eq!(sha256_hex(&std::fs::read(&dest).unwrap()), golden(REPO, "F16")["file"]["sha256"].as_str().unwrap());

    hub.set_faults(vec![]);
    // Recreate the state of an interrupted pull from the finished file, then damage chunk 2.
    let mut bytes = std::fs::read(&dest).unwrap();
    let chunk = 512 * 1024;
    let sums: Vec<String> = bytes.chunks(chunk).take(4).map(sha256_hex).collect();
    // The sidecar's identity line (its format is documented in src/pull.rs), built from the
    // reference's header bytes.
    let g = golden(REPO, "F16");
    let header = std::fs::read(shared_dir().join("fixtures/golden").join(REPO).join("F16.header.bin")).unwrap();
    let identity = serde_json::json!({
        "format": "ggufs-partial/1",
        "ggufs": env!("CARGO_PKG_VERSION"),
        "repo": REPO,
        "commit": fake_commit(REPO),
        "outtype": "F16",
        "size": g["file"]["size"],
        "header_sha256": sha256_hex(&header),
        "chunk": chunk,
    });
    bytes.truncate(4 * chunk);
    bytes[2 * chunk + 100] ^= 0x40;
    std::fs::write(tmp.path().join("tty.gguf.partial"), &bytes).unwrap();
    std::fs::write(tmp.path().join("tty.gguf.partial.sums"), format!("{identity}\n{}\n", sums.join("\n"))).unwrap();
    std::fs::remove_file(&dest).unwrap();
    let out = ggufs(&hub, tmp.path()).args(pull_args(&dest)).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!(
            "resuming {}: {} bytes verified",
            tmp.path().join("tty.gguf.partial").display(),
            2 * chunk
        )),
        "{}",
        stderr(&out)
    );
    assert_eq!(sha256_hex(&std::fs::read(&dest).unwrap()), golden(REPO, "F16")["file"]["sha256"].as_str().unwrap());
}
