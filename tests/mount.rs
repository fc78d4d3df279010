//! `ggufs mount` for real: kernel FUSE mounts of the engine over the fake Hub, read by
//! cmp-style copies, mmap, PyPI gguf's reader and llama.cpp itself.

mod support;

use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::process::Command;

use support::mount::Mounted;
use support::*;

const TYPES: [&str; 4] = ["F32", "F16", "BF16", "Q8_0"];

#[test]
fn every_virtual_file_reads_back_as_the_reference_file() {
    let hub = start_hub();
    let m = Mounted::new(&hub, &FIXTURES);
    let listed: Vec<String> =
        std::fs::read_dir(m.dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    for org in ["HuggingFaceTB", "Qwen", "google", "microsoft", "mistralai", "openai-community"] {
        assert!(listed.contains(&org.to_string()), "root lists {listed:?}");
    }
    for repo in FIXTURES {
        for t in TYPES {
            let path = m.file(repo, t);
            let g = golden(repo, t);
            let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(meta.len(), g["file"]["size"].as_u64().unwrap(), "{repo} {t}: size at lookup");
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                sha256_hex(&bytes),
                g["file"]["sha256"].as_str().unwrap(),
                "{repo} {t}: {}",
                first_difference(&bytes, &g)
            );
        }
    }
}

#[test]
fn the_mount_equals_ggufs_pull_byte_for_byte() {
    let hub = start_hub();
    let m = Mounted::new(&hub, &[]);
    let repo = "mistralai/Mixtral-8x7B-v0.1";
    let out = tempfile::tempdir().unwrap();
    let pulled = out.path().join("pulled.gguf");
    let status = Command::new(env!("CARGO_BIN_EXE_ggufs"))
        .args(["pull", repo, "--outtype", "q8_0", "-o"])
        .arg(&pulled)
        .arg("--cache-dir")
        .arg(out.path().join("cache"))
        .env("HF_ENDPOINT", hub.endpoint())
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("cmp").arg(m.file(repo, "Q8_0")).arg(&pulled).status().expect("cmp");
    assert!(status.success(), "cmp found a difference");
}

fn mmap_sha256(path: &Path) -> String {
    let f = std::fs::File::open(path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    // SAFETY: a read-only shared mapping of a file we keep open for its lifetime.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED, "mmap failed");
        let digest = sha256_hex(std::slice::from_raw_parts(p as *const u8, len));
        libc::munmap(p, len);
        digest
    }
}

#[test]
fn an_mmap_reader_like_llama_cpp_sees_the_right_bytes() {
    let hub = start_hub();
    let m = Mounted::new(&hub, &[]);
    for (repo, t) in [("google/gemma-3-1b-it", "Q8_0"), ("microsoft/Phi-3.5-mini-instruct", "F16")] {
        assert_eq!(mmap_sha256(&m.file(repo, t)), golden(repo, t)["file"]["sha256"].as_str().unwrap(), "{repo} {t}");
    }
}

/// PyPI `gguf`'s GGUFReader (numpy memmap) lists the same KVs and tensors as the golden.
#[test]
fn pypi_gguf_reader_lists_the_golden_kvs_and_tensors() {
    let hub = start_hub();
    let m = Mounted::new(&hub, &[]);
    let script = r#"
import json, sys
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
kv = [k for k in r.fields if not k.startswith("GGUF.")]
ts = [[t.name, t.tensor_type.name, [int(x) for x in t.shape]] for t in r.tensors]
print(json.dumps({"kv": kv, "tensors": ts}))
"#;
    for (repo, t) in [("Qwen/Qwen2.5-0.5B-Instruct", "Q8_0"), ("mistralai/Mistral-7B-Instruct-v0.3", "BF16")] {
        let out = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(m.file(repo, t))
            .output()
            .expect("python3 (run scripts/setup.sh)");
        assert!(out.status.success(), "GGUFReader failed: {}", String::from_utf8_lossy(&out.stderr));
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let g = golden(repo, t);
        let want_kv: Vec<&str> = g["kv"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect();
        let got_kv: Vec<&str> = got["kv"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
        assert_eq!(got_kv, want_kv, "{repo} {t}: KVs");
        let want_t: Vec<(String, String, serde_json::Value)> = g["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (e["name"].as_str().unwrap().to_string(), e["type"].as_str().unwrap().to_string(), e["ne"].clone())
            })
            .collect();
        let got_t: Vec<(String, String, serde_json::Value)> = got["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e[0].as_str().unwrap().to_string(), e[1].as_str().unwrap().to_string(), e[2].clone()))
            .collect();
        assert_eq!(got_t, want_t, "{repo} {t}: tensors");
    }
}

fn generate(model: &Path) -> String {
    support::llama::generate(model, "The capital of France is", 12).0
}

#[test]
fn llama_cpp_generates_the_same_tokens_from_the_mount_as_from_a_pulled_copy() {
    let hub = start_hub();
    let m = Mounted::new(&hub, &[]);
    let repo = "HuggingFaceTB/SmolLM2-135M-Instruct";
    for t in ["F16", "Q8_0"] {
        let virt = m.file(repo, t);
        let copy = tempfile::NamedTempFile::new().unwrap();
        std::fs::copy(&virt, copy.path()).unwrap();
        let from_mount = generate(&virt);
        let from_copy = generate(copy.path());
        assert!(from_mount.len() > "The capital of France is".len(), "no tokens generated: {from_mount:?}");
        assert_eq!(from_mount, from_copy, "{t}: llama.cpp output differs between the mount and a copy");
    }
}

#[test]
fn concurrent_readers_and_a_cp_during_a_llama_run_all_get_the_right_bytes() {
    let hub = start_hub();
    let m = Mounted::new(&hub, &[]);
    let repo = "Qwen/Qwen2.5-0.5B-Instruct";
    let path = m.file(repo, "F16");
    let want = golden(repo, "F16")["file"]["sha256"].as_str().unwrap().to_string();
    let llama = Command::new(support::llama::llama_completion())
        .arg("-m")
        .arg(&path)
        .args(["-p", "Hi", "-n", "4", "-t", "1", "-no-cnv", "--no-warmup"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let p = path.clone();
            std::thread::spawn(move || sha256_hex(&std::fs::read(p).unwrap()))
        })
        .collect();
    let dest = tempfile::tempdir().unwrap();
    let status = Command::new("cp").arg(&path).arg(dest.path().join("copy.gguf")).status().unwrap();
    assert!(status.success());
    for r in readers {
        assert_eq!(r.join().unwrap(), want);
    }
    assert_eq!(sha256_hex(&std::fs::read(dest.path().join("copy.gguf")).unwrap()), want);
    let out = llama.wait_with_output().unwrap();
    assert!(out.status.success(), "llama.cpp failed while others read the file");
}

#[test]
fn unmount_with_a_mapped_reader_neither_hangs_nor_crashes_and_remount_works() {
    let hub = start_hub();
    let mut m = Mounted::new(&hub, &[]);
    let repo = "openai-community/gpt2";
    let path = m.file(repo, "F16");
    let f = std::fs::File::open(&path).unwrap();
    let len = f.metadata().unwrap().len() as usize;
    // SAFETY: read-only shared mapping, unmapped below.
    let p = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED | libc::MAP_POPULATE, f.as_raw_fd(), 0)
    };
    assert_ne!(p, libc::MAP_FAILED);
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = m.handle.take().unwrap();
    std::thread::spawn(move || tx.send(handle.unmount()).unwrap());
    let outcome = rx.recv_timeout(std::time::Duration::from_secs(20)).expect("unmount hung");
    assert!(outcome.is_ok(), "unmount failed: {outcome:?}");
    // The populated mapping stays readable after the lazy unmount.
    // SAFETY: the mapping is still valid.
    let digest = sha256_hex(unsafe { std::slice::from_raw_parts(p as *const u8, len) });
    assert_eq!(digest, golden(repo, "F16")["file"]["sha256"].as_str().unwrap());
    unsafe { libc::munmap(p, len) };
    drop(f);
    m.remount(&hub, &[]);
    assert_eq!(
        sha256_hex(&std::fs::read(m.file(repo, "F16")).unwrap()),
        golden(repo, "F16")["file"]["sha256"].as_str().unwrap()
    );
}

#[test]
fn revisions_are_addressed_by_path_and_unconvertible_repos_are_enoent() {
    let hub = start_hub();
    let m = Mounted::new(&hub, &[]);
    let repo = "HuggingFaceTB/SmolLM2-135M-Instruct";
    let sha = fake_commit(repo);
    for rev in ["main", sha.as_str(), &sha[..7]] {
        let dir = m.dir.path().join(format!("{repo}@{rev}"));
        let mut names: Vec<String> =
            std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        // F32, F16, BF16, Q8_0 (converter) + Q4_K_M, Q5_K_M, Q6_K, Q4_0 (llama-quantize)
        assert_eq!(names.len(), 8, "{rev}: {names:?}");
        let f16 = dir.join("SmolLM2-135M-Instruct-F16.gguf");
        assert_eq!(std::fs::metadata(&f16).unwrap().len(), golden(repo, "F16")["file"]["size"].as_u64().unwrap());
    }
    for missing in [format!("{repo}@no-such-branch"), "nobody/nothing".to_string(), format!("{repo}/nope.gguf")] {
        let err = std::fs::metadata(m.dir.path().join(&missing)).expect_err("must not exist");
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{missing}: {err}");
    }
}

#[test]
fn an_unsupported_model_is_enoent_and_the_mount_keeps_serving() {
    let tmp = unsupported_arch_repo("openai-community/gpt2", "acme/odd");
    let hub = start_hub_at(tmp.path());
    let m = Mounted::new(&hub, &[]);
    let err = std::fs::read_dir(m.dir.path().join("acme/odd")).expect_err("unsupported model must not be served");
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    assert!(m.handle.as_ref().unwrap().is_running());
}

#[test]
fn sigterm_unmounts_a_foreground_mount_cleanly() {
    let hub = start_hub();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ggufs"))
        .args(["mount", "--foreground", "--model", "openai-community/gpt2", "--no-cache"])
        .arg(dir.path())
        .env("HF_ENDPOINT", hub.endpoint())
        .spawn()
        .unwrap();
    let file = dir.path().join("openai-community/gpt2/gpt2-Q8_0.gguf");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !file.exists() {
        assert!(std::time::Instant::now() < deadline, "mount did not come up");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let reader = std::fs::File::open(&file).unwrap();
    // SAFETY: plain kill(2) on our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "daemon did not exit on SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    drop(reader);
    assert!(status.success(), "daemon exit status {status}");
    assert!(!ggufs::fs::is_mount_point(&dir.path().canonicalize().unwrap()), "still mounted after SIGTERM");
}
