//! The `ggufs` binary's ecosystem habits against the fake Hub: resumable pulls with a
//! progress bar only on a terminal, quiet default logs, inspect as gguf_dump, completions and
//! `--help` examples, and mount habits: the `mount.ggufs` helper exactly as mount(8) runs it,
//! `mount -t fuse.ggufs` finding it in /sbin (inside a private mount namespace, so the real
//! /sbin is untouched), and `fusermount3 -u` / `ggufs unmount` both leaving nothing behind.

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
    // The sidecar's per-chunk checksum: XXH3-128 in hex (src/pull.rs).
    let xxh3 = |c: &[u8]| format!("{:032x}", xxhash_rust::xxh3::xxh3_128(c));
    let sums: Vec<String> = bytes.chunks(chunk).take(4).map(xxh3).collect();
    // The sidecar's identity line (its format is documented in src/pull.rs), built from the
    // reference's header bytes.
    let g = golden(REPO, "F16");
    let header = std::fs::read(shared_dir().join("fixtures/golden").join(REPO).join("F16.header.bin")).unwrap();
    let identity = serde_json::json!({
        "format": "ggufs-partial/2",
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

/// gguf_dump's output for a golden-equivalent file, committed under tests/fixtures/inspect.
fn expected_dump(name: &str) -> Vec<u8> {
    let p = fixtures::local_fixtures().join("inspect").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn inspect(hub: &FakeHub, home: &Path, args: &[&str]) -> Vec<u8> {
    let out = ggufs(hub, home).arg("inspect").args(args).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    out.stdout
}

/// The element bytes of a GGUF array as the golden hashes them (see shared/fixtures/README.md).
fn array_element_bytes(element_type: &str, values: &[serde_json::Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        match element_type {
            "STRING" => {
                let s = v.as_str().unwrap();
                out.extend((s.len() as u64).to_le_bytes());
                out.extend(s.as_bytes());
            }
            "INT32" => out.extend((v.as_i64().unwrap() as i32).to_le_bytes()),
            "FLOAT32" => out.extend((v.as_f64().unwrap() as f32).to_le_bytes()),
            other => panic!("element type {other} not expected in this fixture"),
        }
    }
    out
}

/// `inspect --outtype f16` prints exactly what gguf_dump prints for the finished file, then
/// how each tensor is made; `--json` is gguf_dump's `--json` document, and `--json-array`
/// values hash to the golden's array hashes.
#[test]
fn inspect_prints_the_virtual_header_like_gguf_dump() {
    let hub = start_hub();
    let home = tempfile::tempdir().unwrap();
    let text = String::from_utf8(inspect(&hub, home.path(), &[REPO, "--outtype", "f16"])).unwrap();
    let want = String::from_utf8(expected_dump("SmolLM2-135M-Instruct-F16.dump.txt")).unwrap();
    assert!(text.starts_with(&want), "{text}");
    let rest = &text[want.len()..];
    assert!(rest.contains("blk.0.attn_q.weight              F16   <- model.layers.0.self_attn.q_proj.weight (BF16 -> F16), Q/K rows permuted (4 heads)"), "{rest}");
    assert!(
        rest.contains("blk.0.attn_norm.weight           F32   <- model.layers.0.input_layernorm.weight (BF16 -> F32)"),
        "{rest}"
    );
    for ty in ["F32", "F16", "BF16", "Q8_0"] {
        let size = golden(REPO, ty)["file"]["size"].as_u64().unwrap();
        assert!(rest.contains(&format!("  {ty:<5} {size} bytes")), "{ty} size {size} missing: {rest}");
    }
    let params: u64 = golden(REPO, "F16")["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ne"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).product::<u64>())
        .sum();
    assert!(rest.contains(&format!("* Parameters: {params}\n")), "{rest}");

    let json: serde_json::Value =
        serde_json::from_slice(&inspect(&hub, home.path(), &[REPO, "--outtype", "f16", "--json"])).unwrap();
    let want: serde_json::Value =
        serde_json::from_slice(&expected_dump("SmolLM2-135M-Instruct-F16.dump.json")).unwrap();
    assert_eq!(json, want);

    let full: serde_json::Value =
        serde_json::from_slice(&inspect(&hub, home.path(), &[REPO, "--outtype", "f16", "--json", "--json-array"]))
            .unwrap();
    let mut arrays = 0;
    for kv in golden(REPO, "F16")["kv"].as_array().unwrap().iter().filter(|kv| kv["type"] == "ARRAY") {
        let entry = &full["metadata"][kv["key"].as_str().unwrap()];
        let values = entry["value"].as_array().unwrap_or_else(|| panic!("no values for {}", kv["key"]));
        assert_eq!(values.len() as u64, kv["length"].as_u64().unwrap());
        let bytes = array_element_bytes(kv["element_type"].as_str().unwrap(), values);
        assert_eq!(sha256_hex(&bytes), kv["sha256"].as_str().unwrap(), "{}", kv["key"]);
        arrays += 1;
    }
    assert_eq!(arrays, 5);
}

/// A second architecture and output type (Phi-3.5, Q8_0: float KVs, generated rope tensors),
/// and the summary view's size of every output type.
#[test]
fn inspect_json_matches_gguf_dump_for_phi3_q8_0_and_sizes_match_the_goldens() {
    let hub = start_hub();
    let home = tempfile::tempdir().unwrap();
    let phi = "microsoft/Phi-3.5-mini-instruct";
    let json: serde_json::Value =
        serde_json::from_slice(&inspect(&hub, home.path(), &[phi, "--outtype", "q8_0", "--json"])).unwrap();
    let want: serde_json::Value =
        serde_json::from_slice(&expected_dump("Phi-3.5-mini-instruct-Q8_0.dump.json")).unwrap();
    assert_eq!(json, want);
    let report: serde_json::Value = serde_json::from_slice(&inspect(&hub, home.path(), &[phi, "--json"])).unwrap();
    let outputs = report["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 4);
    for o in outputs {
        let ty = o["type"].as_str().unwrap();
        assert_eq!(o["size"], golden(phi, ty)["file"]["size"], "{ty}");
    }
}

/// Completion scripts name every subcommand and their flags; `--help` of every subcommand
/// carries examples.
#[test]
fn completions_and_help_cover_every_subcommand() {
    let bin = env!("CARGO_BIN_EXE_ggufs");
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(bin).args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["inspect", "pull", "mount", "unmount", "completions", "outtype", "json-array", "foreground"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let bad = Command::new(bin).args(["completions", "tcsh"]).output().unwrap();
    assert!(!bad.status.success());
    for sub in ["inspect", "pull", "mount", "unmount", "completions"] {
        let out = Command::new(bin).args([sub, "--help"]).output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("Examples:\n  "), "{sub} --help has no examples:\n{help}");
        assert!(help.contains(&format!("ggufs {sub}")) || sub == "unmount", "{sub} examples do not run {sub}:\n{help}");
    }
    let top = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8(top.stdout).unwrap();
    assert!(help.contains("Examples:") && help.contains("RUST_LOG") && help.contains("-q, --quiet"), "{help}");
}

/// A transient fetch error is retried without noise at the default level (the pull succeeds, the
/// retry is a debug line); a lasting one is the final error, one line with its cause, saying how
/// to resume.
#[test]
fn fetch_errors_are_reported_with_their_cause() {
    let hub = start_hub();
    let tmp = tempfile::tempdir().unwrap();
    // The first CDN request is the safetensors header probe; fail the next one once.
    let once = FaultRule::new(
        "",
        FaultAction::Status { code: 503, x_error_code: None, message: None, headers: Default::default() },
    );
    hub.set_faults(vec![once.listener("cdn").after(1).times(1)]);
    let out = ggufs(&hub, tmp.path()).args(pull_args(&tmp.path().join("a.gguf"))).output().unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("WARN") && !err.contains("503"), "a recovered retry is not a warning: {err}");
    let data_requests = hub.take_log().iter().filter(|e| e.listener == "cdn" && e.range.is_some()).count();
    assert!(data_requests >= 3, "the failed request was retried");

    let denied = FaultRule::new(
        "",
        FaultAction::Status {
            code: 403,
            x_error_code: Some("AccessDenied".into()),
            message: Some("Request has expired".into()),
            headers: Default::default(),
        },
    );
    hub.set_faults(vec![denied.listener("cdn").after(1)]);
    let dest = tmp.path().join("b.gguf");
    let out = ggufs(&hub, tmp.path()).args(pull_args(&dest)).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("error: pulling {REPO}@main (rerun to resume from {}.partial)", dest.display())),
        "{err}"
    );
    assert!(last.contains("model.safetensors") && last.contains("HTTP 403: Request has expired"), "{err}");
    assert_eq!(last.matches("HTTP 403").count(), 1, "cause repeated: {last}");
    assert!(tmp.path().join("b.gguf.partial").is_file() && !dest.exists());
}

/// A temp dir holding the helper names as symlinks to the ggufs binary.
fn helper_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["mount.ggufs", "mount.fuse.ggufs"] {
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ggufs"), dir.path().join(name)).unwrap();
    }
    dir
}

fn golden_header() -> Vec<u8> {
    std::fs::read(shared_dir().join("fixtures/golden").join(REPO).join("F16.header.bin")).unwrap()
}

fn mounted_file(mnt: &Path) -> std::path::PathBuf {
    mnt.join(REPO).join("SmolLM2-135M-Instruct-F16.gguf")
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `mount.ggufs SPEC DIR -o ...` (what mount(8) runs for an fstab line) returns once the mount
/// is live; the file reads right; `fusermount3 -u` unmounts and the daemon exits cleanly.
#[test]
fn the_mount_helper_works_as_mount8_calls_it_and_fusermount_unmounts() {
    let hub = start_hub();
    let bin = helper_dir();
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("models");
    std::fs::create_dir(&mnt).unwrap();
    let log = tmp.path().join("daemon.log");
    let opts = format!("ro,nosuid,noauto,x-systemd.automount,models={REPO},no_cache,log_file={}", log.display());
    let out = Command::new(bin.path().join("mount.ggufs"))
        .arg("ggufs")
        .arg(&mnt)
        .args(["-o", &opts])
        .env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", tmp.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let canonical = mnt.canonicalize().unwrap();
    assert!(ggufs::fs::is_mount_point(&canonical), "{err}");
    let pid: i32 =
        err.split("daemon pid ").nth(1).and_then(|s| s.split(',').next()).and_then(|p| p.parse().ok()).unwrap();

    // Hidden entries (the `.ggufs` control directory) aside, the root lists the mounted org.
    let root: Vec<String> = std::fs::read_dir(&mnt)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(root, vec!["HuggingFaceTB"]);
    let want = golden_header();
    let mut got = vec![0u8; want.len()];
    std::io::Read::read_exact(&mut std::fs::File::open(mounted_file(&mnt)).unwrap(), &mut got).unwrap();
    assert!(got == want, "header bytes differ from the reference");
    // Read-only, whatever the caller asked.
    assert!(std::fs::write(mnt.join("x"), b"x").is_err());

    let status = Command::new("fusermount3").arg("-u").arg(&mnt).status().unwrap();
    assert!(status.success());
    assert!(!ggufs::fs::is_mount_point(&canonical));
    wait_until("daemon exit", || !Path::new(&format!("/proc/{pid}")).exists() || zombie(pid));
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains(&format!("resolved {REPO}@main: commit {}", fake_commit(REPO))), "{log}");
    assert!(log.contains("unmounted"), "{log}");
    // Default level: the user's events only, no internals.
    for noise in ["DEBUG", "TRACE", "FUSE session initialised", "ggufs::"] {
        assert!(!log.contains(noise), "{noise:?} in {log}");
    }
    // A readahead still in flight when the kernel tears the mount down is dropped by both
    // sides: after "unmounted", fuser may log that the request's reply was not sent and that
    // sending the EIO in its place failed (the kernel no longer knows the request). Those two,
    // there only, are expected; any other warning or error, anywhere, is a defect.
    // (The first of the two was already tolerated anywhere: the kernel can drop a request it
    // gave up on at any time.)
    let (running, after_unmount) = log.split_at(log.find("unmounted").unwrap_or(log.len()));
    let dropped_by_kernel = |l: &str| l.contains("Failed to send FUSE reply: No such file or directory");
    let bad: Vec<&str> = running
        .lines()
        .chain(after_unmount.lines().filter(|l| !l.contains("Reply not sent for operation")))
        .filter(|l| (l.contains("ERROR") || l.contains("WARN")) && !dropped_by_kernel(l))
        .collect();
    assert!(bad.is_empty(), "{log}");
}

fn zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z ")).unwrap_or(true)
}

/// `mount -t fuse.ggufs` (util-linux) finds `/sbin/mount.fuse.ggufs`: a private mount namespace
/// binds the helper dir over /sbin for this one script; `ggufs unmount` then unmounts.
#[test]
fn mount_t_fuse_ggufs_runs_the_helper_and_ggufs_unmount_cleans_up() {
    let hub = start_hub();
    let bin = helper_dir();
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("models");
    std::fs::create_dir(&mnt).unwrap();
    let header = tmp.path().join("header.bin");
    std::fs::write(&header, golden_header()).unwrap();
    let file = mounted_file(&mnt);
    let script = format!(
        "set -e
mount --bind '{bin}' /sbin
mount -t fuse.ggufs ggufs '{mnt}' -o ro,models={REPO},no_cache,log_file='{log}'
grep -q ' {mnt} ' /proc/self/mounts
cmp -n {n} '{file}' '{header}'
'{ggufs}' unmount '{mnt}'
! grep -q ' {mnt} ' /proc/self/mounts
echo ALL-OK",
        bin = bin.path().display(),
        mnt = mnt.display(),
        log = tmp.path().join("daemon.log").display(),
        n = golden_header().len(),
        file = file.display(),
        header = header.display(),
        ggufs = env!("CARGO_BIN_EXE_ggufs"),
    );
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("HF_ENDPOINT", hub.endpoint())
        .env("HF_HOME", tmp.path())
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("ALL-OK"), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("unmounted {}", mnt.display())), "{stderr}");
}
