//! Mount habits: the `mount.ggufs` helper exactly as mount(8) runs it, `mount -t fuse.ggufs`
//! finding it in /sbin (inside a private mount namespace, so the real /sbin is untouched),
//! and `fusermount3 -u` / `ggufs unmount` both leaving nothing behind.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const REPO: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

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

fn virtual_file(mnt: &Path) -> std::path::PathBuf {
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

    let root: Vec<String> =
        std::fs::read_dir(&mnt).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(root, vec!["HuggingFaceTB"]);
    let want = golden_header();
    let mut got = vec![0u8; want.len()];
    std::io::Read::read_exact(&mut std::fs::File::open(virtual_file(&mnt)).unwrap(), &mut got).unwrap();
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
    // fuser logs "Failed to send FUSE reply: No such file or directory" when the kernel has
    // already dropped a request (readahead in flight at unmount); anything else is a defect.
    let bad = log.lines().filter(|l| l.contains("ERROR") || l.contains("WARN"));
    let bad: Vec<&str> = bad.filter(|l| !l.contains("Failed to send FUSE reply: No such file or directory")).collect();
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
    let file = virtual_file(&mnt);
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
