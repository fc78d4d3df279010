//! The `ggufs mount` daemon as a process (issue 6): kill -9 mid-read then `--force` remount over
//! the stale mount with the cache still valid; SIGTERM with an active mmap reader; the token never
//! in a trace-level log and never sent to the CDN through a real mount.

mod support;

use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ggufs_fakehub::{FakeHub, FaultAction, FaultRule};
use support::*;

const REPO: &str = "mistralai/Mixtral-8x7B-v0.1";
const TYPE: &str = "BF16";

fn file_in(mountpoint: &Path) -> PathBuf {
    mountpoint.join(REPO).join(format!("Mixtral-8x7B-v0.1-{TYPE}.gguf"))
}

fn golden_sha() -> String {
    golden(REPO, TYPE)["file"]["sha256"].as_str().unwrap().to_string()
}

/// `ggufs mount --foreground` on `mountpoint` against `hub`, with `extra` arguments.
fn spawn_daemon(hub: &FakeHub, mountpoint: &Path, extra: &[&str], env: &[(&str, &str)], log: Option<&Path>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ggufs"));
    cmd.args(["mount", "--foreground", "--model", REPO]).args(extra).arg(mountpoint);
    cmd.env("HF_ENDPOINT", hub.endpoint()).env_remove("HF_TOKEN").env_remove("RUST_LOG");
    cmd.envs(env.iter().copied());
    match log {
        Some(path) => {
            let f = std::fs::File::create(path).unwrap();
            cmd.stderr(f.try_clone().unwrap()).stdout(f);
        }
        None => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    cmd.spawn().expect("start ggufs mount")
}

fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "daemon did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, sig) };
}

/// Stops a daemon with SIGTERM, whatever state the test left it in.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            signal(&self.0, libc::SIGTERM);
            let _ = wait_exit(&mut self.0, Duration::from_secs(20));
        }
    }
}

#[test]
fn kill_9_mid_read_then_force_remount_serves_golden_bytes_from_a_valid_cache() {
    let hub = start_hub();
    let (mnt, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mp = mnt.path().canonicalize().unwrap();
    let cache_arg = cache.path().to_str().unwrap().to_string();
    let args = ["--cache-dir", cache_arg.as_str()];
    // Shard 1 comes fast (and gets cached); shard 2's tensor bytes crawl, so the kill lands in
    // the middle of the copy. The first shard-2 request is its header probe, left alone.
    let slow = FaultAction::SlowBody { sleep_ms: 0, bytes_per_sec: Some(256 << 10) };
    hub.set_faults(vec![FaultRule::new("model-00002", slow).listener("cdn").after(1)]);
    let mut first = spawn_daemon(&hub, &mp, &args, &[], None);
    let file = file_in(&mp);
    wait_until("the mount comes up", Duration::from_secs(30), || file.exists());
    let reader = {
        let file = file.clone();
        std::thread::spawn(move || std::fs::read(file).map_err(|e| e.raw_os_error()))
    };
    let mut shard2_requests = 0;
    wait_until("the slow shard-2 fetch starts", Duration::from_secs(30), || {
        shard2_requests +=
            hub.take_log().iter().filter(|e| e.listener == "cdn" && e.path.contains("model-00002")).count();
        shard2_requests >= 2
    });
    std::thread::sleep(Duration::from_millis(500));
    signal(&first, libc::SIGKILL);
    wait_exit(&mut first, Duration::from_secs(10));
    let cut = reader.join().unwrap();
    assert!(cut.is_err(), "the read must fail when the daemon dies, not return bytes");
    assert!(ggufs::fs::is_stale_mount(&mp), "after kill -9 the mountpoint is a stale FUSE mount");

    // Without --force the stale mount is refused with a clear message.
    let out = Command::new(env!("CARGO_BIN_EXE_ggufs"))
        .args(["mount", "--foreground", "--model", REPO, "--cache-dir", &cache_arg])
        .arg(&mp)
        .env("HF_ENDPOINT", hub.endpoint())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stale") && stderr.contains("--force"), "{stderr}");

    hub.set_faults(Vec::new());
    let forced = ["--cache-dir", cache_arg.as_str(), "--force"];
    let _second = Daemon(spawn_daemon(&hub, &mp, &forced, &[], None));
    // `stat` of the file may still be answered from attributes cached under the dead mount, so
    // wait for the new daemon to answer a directory listing.
    wait_until("the forced remount comes up", Duration::from_secs(30), || {
        std::fs::read_dir(mp.join(REPO)).is_ok_and(|mut d| d.next().is_some())
    });
    hub.take_log();
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(sha256_hex(&bytes), golden_sha(), "remount after kill -9 must serve the golden bytes");
    let refetched: u64 = hub
        .take_log()
        .iter()
        .filter(|e| e.listener == "cdn")
        .filter_map(|e| e.range.as_deref())
        .filter_map(|r| r.strip_prefix("bytes=")?.split_once('-').map(|(a, b)| (a.parse::<u64>(), b.parse::<u64>())))
        .filter_map(|(a, b)| Some(b.ok()? + 1 - a.ok()?))
        .sum();
    let shards: u64 =
        fixture_shards(REPO).iter().map(|s| std::fs::metadata(fixture_dir(REPO).join(s)).unwrap().len()).sum();
    assert!(refetched < shards, "blocks cached before the kill are reused: refetched {refetched} of {shards}");
}

#[test]
fn sigterm_with_an_active_mmap_reader_exits_and_the_mapping_stays_right() {
    let hub = start_hub();
    let mnt = tempfile::tempdir().unwrap();
    let mp = mnt.path().canonicalize().unwrap();
    let mut daemon = spawn_daemon(&hub, &mp, &["--no-cache"], &[], None);
    let file = file_in(&mp);
    wait_until("the mount comes up", Duration::from_secs(30), || file.exists());
    let f = std::fs::File::open(&file).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    // SAFETY: a read-only shared mapping of a file kept open until munmap below.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED | libc::MAP_POPULATE, f.as_raw_fd(), 0)
    };
    assert_ne!(p, libc::MAP_FAILED);
    signal(&daemon, libc::SIGTERM);
    let status = wait_exit(&mut daemon, Duration::from_secs(20));
    assert!(status.success(), "daemon exit status {status}");
    assert!(!ggufs::fs::is_mount_point(&mp), "still mounted after SIGTERM");
    // SAFETY: the mapping is still valid; its pages were populated before the daemon left.
    let digest = sha256_hex(unsafe { std::slice::from_raw_parts(p as *const u8, len) });
    unsafe { libc::munmap(p, len) };
    assert_eq!(digest, golden_sha());
}

#[test]
fn the_token_is_never_logged_at_trace_level_nor_sent_to_the_cdn_by_a_mount() {
    const TOKEN: &str = "hf_MountTraceSecret987";
    let hub = start_hub();
    hub.set_faults(vec![FaultRule::new("/_cdn/", FaultAction::CdnRejectAuth)]);
    let mnt = tempfile::tempdir().unwrap();
    let mp = mnt.path().canonicalize().unwrap();
    let log = mnt.path().parent().unwrap().join(format!("ggufs-trace-{}.log", std::process::id()));
    let env = [("HF_TOKEN", TOKEN), ("RUST_LOG", "trace")];
    let mut daemon = spawn_daemon(&hub, &mp, &["--no-cache"], &env, Some(&log));
    let file = file_in(&mp);
    wait_until("the mount comes up", Duration::from_secs(30), || file.exists());
    assert_eq!(sha256_hex(&std::fs::read(&file).unwrap()), golden_sha());
    signal(&daemon, libc::SIGTERM);
    assert!(wait_exit(&mut daemon, Duration::from_secs(20)).success());
    let requests = hub.take_log();
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(requests.iter().any(|e| e.listener == "cdn"), "tensor bytes come from the CDN");
    assert!(requests.iter().filter(|e| e.listener == "cdn").all(|e| !e.authorization), "token sent to the CDN");
    assert!(requests.iter().filter(|e| e.listener == "hub").all(|e| e.authorization), "hub requests carry it");
    assert!(
        text.lines().filter(|l| l.contains("TRACE")).count() > 10,
        "no trace output: {}",
        &text[..text.len().min(400)]
    );
    assert!(!text.contains(TOKEN), "the token appears in the trace log");
    assert!(!text.contains(&TOKEN[3..]), "part of the token appears in the trace log");
}
