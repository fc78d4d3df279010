//! Issue 9, the Hub half: huggingface_hub's environment variables, revisions (tags, `refs/pr/N`)
//! and repo-id rules, reuse of the user's HF cache, `.gguf` pass-through, and the status
//! counters — through real mounts and the `ggufs` binary over the fake Hub.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use ggufs::cache::{CachedProvider, DiskCache, MetadataCache};
use ggufs::catalog::Catalog;
use ggufs::hub::HubClient;
use ggufs::remote::HubProvider;
use ggufs::stats::StatusReport;
use ggufs_fakehub::{FakeHub, LogEntry};
use support::mount::Mounted;
use support::*;

const SMOL: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";
const SMOL_NAME: &str = "SmolLM2-135M-Instruct";

/// Makes `root/<new_id>` a copy of fixture `repo` made of symlinks (cheap, and the fixtures
/// stay untouched).
fn link_repo(root: &Path, repo: &str, new_id: &str) -> PathBuf {
    let dst = root.join(new_id);
    std::fs::create_dir_all(&dst).unwrap();
    for e in std::fs::read_dir(fixture_dir(repo)).unwrap() {
        let e = e.unwrap();
        std::os::unix::fs::symlink(e.path(), dst.join(e.file_name())).unwrap();
    }
    dst
}

/// Runs the binary against `hub` with a clean Hugging Face environment (an empty `HF_HOME`
/// unless `env` names one), plus `env`.
fn ggufs(hub: &FakeHub, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let empty_home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ggufs"));
    cmd.args(args).env("HF_ENDPOINT", hub.endpoint()).env("HF_HOME", empty_home.path());
    for v in ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HUB_CACHE", "HF_HUB_OFFLINE"] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run ggufs")
}

/// Range requests that reached the CDN (where bytes are served) for paths containing `path_part`.
fn data_requests<'a>(log: &'a [LogEntry], path_part: &str) -> Vec<&'a LogEntry> {
    log.iter().filter(|e| e.listener == "cdn" && e.range.is_some() && e.path.contains(path_part)).collect()
}

/// Asserts no byte of the shard came from the network: not the safetensors-header probe, not data.
fn assert_no_shard_bytes_fetched(log: &[LogEntry]) {
    let reqs = data_requests(log, "model.safetensors");
    assert!(reqs.is_empty(), "{reqs:?}");
}

fn golden_sha(repo: &str, ty: &str) -> String {
    golden(repo, ty)["file"]["sha256"].as_str().unwrap().to_string()
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn errno(path: &Path) -> Option<i32> {
    std::fs::metadata(path).expect_err("must not exist").raw_os_error()
}

#[test]
fn the_token_comes_from_hf_token_then_hf_token_path_then_hf_home() {
    let root = tempfile::tempdir().unwrap();
    let repo_dir = link_repo(root.path(), SMOL, "acme/secret");
    std::fs::write(repo_dir.join(".fakehub.json"), r#"{"private": true, "accepted_tokens": ["hf_good"]}"#).unwrap();
    let hub = start_hub_at(root.path());
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("token"), "hf_good\n").unwrap();
    let other = home.path().join("other-token");
    std::fs::write(&other, "hf_bad").unwrap();
    let inspect = ["inspect", "acme/secret"];
    let ok = |o: &Output| o.status.success();
    let hf_home = ("HF_HOME", home.path());
    assert!(ok(&ggufs(&hub, &inspect, &[hf_home])), "token file in $HF_HOME");
    assert!(!ok(&ggufs(&hub, &inspect, &[])), "no token: private repo refused");
    assert!(!ok(&ggufs(&hub, &inspect, &[hf_home, ("HF_TOKEN_PATH", &other)])), "HF_TOKEN_PATH wins over HF_HOME");
    let good_path = home.path().join("token");
    assert!(ok(&ggufs(&hub, &inspect, &[("HF_TOKEN_PATH", &good_path)])));
    let mut cmd_env: Vec<(&str, &Path)> = vec![hf_home];
    cmd_env.push(("HF_TOKEN", Path::new("hf_bad")));
    assert!(!ok(&ggufs(&hub, &inspect, &cmd_env)), "HF_TOKEN wins over the file");
    let log = hub.take_log();
    assert!(log.iter().all(|e| e.listener == "hub" || !e.authorization), "token never sent to the CDN");
}

#[test]
fn hf_hub_offline_means_no_request_at_all() {
    let hub = start_hub();
    let cache = tempfile::tempdir().unwrap();
    let args = ["pull", SMOL, "--cache-dir", cache.path().to_str().unwrap(), "-o", "/dev/null"];
    for v in ["1", "ON", "yes", "True"] {
        let o = ggufs(&hub, &args, &[("HF_HUB_OFFLINE", Path::new(v))]);
        assert!(!o.status.success(), "nothing cached: offline pull must fail ({v})");
    }
    assert!(hub.take_log().is_empty(), "HF_HUB_OFFLINE: no request");
    // Online again: the repo is described from the Hub (then writing into a missing directory
    // fails, which keeps the test from converting the whole file).
    let args = ["pull", SMOL, "--cache-dir", cache.path().to_str().unwrap(), "-o", "/nonexistent-dir/x.gguf"];
    ggufs(&hub, &args, &[("HF_HUB_OFFLINE", Path::new("0"))]);
    assert!(hub.take_log().iter().any(|e| e.path.contains("/api/models/")), "HF_HUB_OFFLINE=0 is online");
}

#[test]
fn tags_and_pr_refs_resolve_by_path_and_on_the_command_line_and_bad_ids_never_reach_the_hub() {
    let root = tempfile::tempdir().unwrap();
    link_repo(root.path(), SMOL, SMOL);
    let (tag_sha, pr_sha) = ("1".repeat(40), "2".repeat(40));
    let refs = serde_json::json!({ "v1.0": tag_sha, "refs/pr/1": pr_sha });
    std::fs::write(root.path().join(format!("{SMOL}.refs.json")), refs.to_string()).unwrap();
    let hub = start_hub_at(root.path());
    let m = Mounted::new(&hub, &[]);
    for (rev, sha) in [("v1.0", &tag_sha), ("pr:1", &pr_sha), ("refs%2Fpr%2F1", &pr_sha), (&pr_sha, &pr_sha)] {
        hub.take_log();
        let dir = m.dir.path().join(format!("{SMOL}@{rev}"));
        assert_eq!(list(&dir).len(), ggufs::plan::OutType::MOUNTED.len(), "{rev}");
        let path = dir.join(format!("{SMOL_NAME}-F16.gguf"));
        if rev == "pr:1" {
            assert_tensors_match_golden(&std::fs::read(&path).unwrap(), SMOL, "F16");
        } else {
            let mut head = vec![0u8; 2 << 20];
            std::io::Read::read_exact(&mut std::fs::File::open(&path).unwrap(), &mut head).unwrap();
            assert_eq!(&head[..4], b"GGUF");
        }
        let log = hub.take_log();
        assert!(!data_requests(&log, &format!("/{sha}/")).is_empty(), "{rev}: reads pinned to {sha}: {log:?}");
    }
    let log_has = |log: &[LogEntry], s: &str| log.iter().any(|e| e.path.contains(s));
    std::fs::metadata(m.dir.path().join(format!("{SMOL}@pr:2"))).expect_err("no such PR");
    assert!(log_has(&hub.take_log(), "/revision/refs%2Fpr%2F2"), "refs/pr/N goes to the Hub %-encoded");

    for bad in ["a--b/model", "acme/model.git", "acme/-model", "acme/mo..del", "acme/model@a..b", "acme/model@pr:x"] {
        assert_eq!(errno(&m.dir.path().join(bad)), Some(libc::ENOENT), "{bad}");
    }
    assert!(hub.take_log().is_empty(), "invalid ids and revisions are refused without a request");

    let out = ggufs(&hub, &["inspect", &format!("{SMOL}@refs/pr/1")], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&pr_sha), "inspect names the PR's commit");
}

/// The file's tensors are the golden's byte for byte (the header may differ: the fake Hub's
/// commits differ per revision, and so does what the metadata derives from them).
fn assert_tensors_match_golden(file: &[u8], repo: &str, ty: &str) {
    let g = golden(repo, ty);
    let header = ggufs::gguf::reader::read_header(file).expect("a GGUF");
    let gt = g["tensors"].as_array().unwrap();
    assert_eq!(header.tensors.len(), gt.len());
    for (t, want) in header.tensors.iter().zip(gt) {
        let start = (header.header_size + t.offset) as usize;
        let bytes = &file[start..start + t.nbytes() as usize];
        assert_eq!(Some(sha256_hex(bytes).as_str()), want["sha256"].as_str(), "tensor {}", t.name);
    }
}

/// An HF cache holding `repo`'s single shard as huggingface_hub stores it: the blob named by its
/// sha256, and the snapshot symlink to it.
fn hf_cache_with_shard(repo: &str, corrupt: bool) -> tempfile::TempDir {
    let cache = tempfile::tempdir().unwrap();
    let shard = fixture_dir(repo).join("model.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    let sha = sha256_hex(&bytes);
    if corrupt {
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
    }
    let folder = cache.path().join(format!("models--{}", repo.replace('/', "--")));
    std::fs::create_dir_all(folder.join("blobs")).unwrap();
    std::fs::write(folder.join("blobs").join(&sha), &bytes).unwrap();
    let snap = folder.join("snapshots").join(fake_commit(repo));
    std::fs::create_dir_all(&snap).unwrap();
    std::os::unix::fs::symlink(format!("../../blobs/{sha}"), snap.join("model.safetensors")).unwrap();
    cache
}

fn mount_with_hf_cache(hub: &FakeHub, hf_cache: &Path) -> Mounted {
    let cfg = config(hub).with_hub_cache(Some(hf_cache.to_path_buf()));
    Mounted::with_catalog(|| {
        let client = Arc::new(HubClient::new(cfg).unwrap());
        Arc::new(Catalog::new(Arc::new(HubProvider::new(client)), vec![]))
    })
}

#[test]
fn a_shard_in_the_hf_cache_is_read_from_disk_and_a_corrupt_blob_is_not_trusted() {
    let hub = start_hub();
    let good = hf_cache_with_shard(SMOL, false);
    let m = mount_with_hf_cache(&hub, good.path());
    let bytes = std::fs::read(m.file(SMOL, "Q8_0")).unwrap();
    assert_eq!(sha256_hex(&bytes), golden_sha(SMOL, "Q8_0"));
    let log = hub.take_log();
    assert_no_shard_bytes_fetched(&log);
    let status = read_status(&m);
    let s = &status.files[&format!("{SMOL}/{SMOL_NAME}-Q8_0.gguf")];
    assert!(s.hf_cache_bytes > 0 && s.bytes_fetched == 0, "{s:?}");
    drop(m);

    let bad = hf_cache_with_shard(SMOL, true);
    let m = mount_with_hf_cache(&hub, bad.path());
    let bytes = std::fs::read(m.file(SMOL, "Q8_0")).unwrap();
    assert_eq!(sha256_hex(&bytes), golden_sha(SMOL, "Q8_0"), "the corrupt blob's bytes never reach the file");
    assert!(data_requests(&hub.take_log(), "model.safetensors").len() > 1, "the network was used instead");
}

#[test]
fn pull_reuses_the_cache_that_hf_home_names() {
    let hub = start_hub();
    let home = tempfile::tempdir().unwrap();
    let cache = hf_cache_with_shard(SMOL, false);
    std::fs::rename(cache.path(), home.path().join("hub")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("x.gguf");
    let o = ggufs(
        &hub,
        &["pull", SMOL, "--outtype", "f16", "--no-cache", "-o", dest.to_str().unwrap()],
        &[("HF_HOME", home.path())],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sha256_hex(&std::fs::read(&dest).unwrap()), golden_sha(SMOL, "F16"));
    assert_no_shard_bytes_fetched(&hub.take_log());
}

fn read_status(m: &Mounted) -> StatusReport {
    let raw = std::fs::read(m.dir.path().join(".ggufs/status")).expect("status file");
    serde_json::from_slice(&raw).expect("status JSON")
}

#[test]
fn repos_shipping_gguf_files_show_them_as_pass_through_files() {
    let root = tempfile::tempdir().unwrap();
    link_repo(root.path(), SMOL, SMOL);
    link_repo(root.path(), SMOL, "acme/mixed");
    let hub = start_hub_at(root.path());
    let m = Mounted::new(&hub, &[]);
    // A real GGUF to ship: the converted Q8_0 file, taken from the mount itself.
    let original = std::fs::read(m.file(SMOL, "Q8_0")).unwrap();
    let only = root.path().join("acme/ggufonly");
    std::fs::create_dir_all(&only).unwrap();
    std::fs::write(only.join("tiny-Q8_0.gguf"), &original).unwrap();
    std::fs::write(only.join("README.md"), "a GGUF-only repo\n").unwrap();
    std::fs::write(root.path().join("acme/mixed/extra.gguf"), &original).unwrap();
    hub.take_log();

    let dir = m.dir.path().join("acme/ggufonly");
    assert_eq!(list(&dir), vec!["tiny-Q8_0.gguf"]);
    let cmp = Command::new("cmp").arg(dir.join("tiny-Q8_0.gguf")).arg(only.join("tiny-Q8_0.gguf")).status().unwrap();
    assert!(cmp.success(), "pass-through file differs from the original");
    let ranged = data_requests(&hub.take_log(), "tiny-Q8_0.gguf").len();
    assert!(ranged >= 1, "read by Range requests");

    let mixed = list(&m.dir.path().join("acme/mixed"));
    assert_eq!(mixed.len(), ggufs::plan::OutType::MOUNTED.len() + 1, "{mixed:?}");
    assert!(mixed.contains(&"extra.gguf".to_string()) && mixed.contains(&"mixed-F16.gguf".to_string()));
    assert_eq!(sha256_hex(&std::fs::read(m.dir.path().join("acme/mixed/extra.gguf")).unwrap()), sha256_hex(&original));
}

#[test]
fn status_counters_move_with_reads_and_show_cache_hits() {
    let hub = start_hub();
    let cache_dir = tempfile::tempdir().unwrap();
    let m = Mounted::with_catalog(|| {
        let client = Arc::new(client(&hub));
        let disk = Arc::new(DiskCache::open(cache_dir.path(), 1 << 30).unwrap());
        let meta = Arc::new(MetadataCache::open(cache_dir.path()).unwrap());
        let provider = CachedProvider::new(Some(client), disk, meta).with_hub_cache(None);
        Arc::new(Catalog::new(Arc::new(provider), vec![]))
    });
    assert!(list(m.dir.path()).contains(&".ggufs".to_string()));
    assert_eq!(list(&m.dir.path().join(".ggufs")), vec!["status"]);
    let before = read_status(&m);
    assert_eq!(before.total.bytes_served, 0);

    let f16 = std::fs::read(m.file(SMOL, "F16")).unwrap();
    let bf16 = std::fs::read(m.file(SMOL, "BF16")).unwrap();
    let status = read_status(&m);
    let cold = &status.files[&format!("{SMOL}/{SMOL_NAME}-F16.gguf")];
    assert!(cold.bytes_served >= f16.len() as u64, "{cold:?}");
    assert!(cold.bytes_fetched > 0 && cold.fetch_requests > 0, "cold read fetched: {cold:?}");
    assert_eq!((cold.in_flight, cold.errors), (0, 0));
    let warm = &status.files[&format!("{SMOL}/{SMOL_NAME}-BF16.gguf")];
    assert!(warm.bytes_served >= bf16.len() as u64);
    assert!(warm.cache_hits > 0 && warm.cache_hits == warm.source_reads, "same shard bytes, all from cache: {warm:?}");
    assert_eq!(warm.bytes_fetched, 0, "{warm:?}");
    assert_eq!(status.total.bytes_served, cold.bytes_served + warm.bytes_served);

    let out = Command::new(env!("CARGO_BIN_EXE_ggufs")).arg("status").arg(m.dir.path()).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(&format!("{SMOL_NAME}-F16.gguf")) && text.contains("cache hits"), "{text}");
    eprintln!("{text}");
}
