//! The fake Hub's view of `<root>/<org>/<name>/` directories as model repos: commits, refs,
//! flags, file listings and their git/LFS hashes (hub-spec §6.1).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Deserialize;
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// Suffixes stored as LFS objects on the real Hub.
const LFS_SUFFIXES: [&str; 7] = [".safetensors", ".bin", ".gguf", ".pt", ".onnx", ".msgpack", ".h5"];
/// Files at least this big are LFS whatever their name.
const LFS_MIN_SIZE: u64 = 10 << 20;
/// Per-repo flags file, never listed.
pub const FLAGS_FILE: &str = ".fakehub.json";

/// The fake commit of a repo: hex sha1("fake-commit:" + repo_id). Goldens depend on it.
pub fn fake_commit(repo: &str) -> String {
    hex::encode(Sha1::digest(format!("fake-commit:{repo}").as_bytes()))
}

/// Per-repo behaviour switches from `.fakehub.json`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RepoFlags {
    #[serde(default)]
    pub private: bool,
    /// `"auto"`, `"manual"`, or absent/false.
    #[serde(default)]
    pub gated: Option<serde_json::Value>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub accepted_tokens: Vec<String>,
}

impl RepoFlags {
    /// True if the repo is gated.
    pub fn is_gated(&self) -> bool {
        matches!(&self.gated, Some(serde_json::Value::String(_)) | Some(serde_json::Value::Bool(true)))
    }

    /// The `gated` field of model info.
    pub fn gated_json(&self) -> serde_json::Value {
        if self.is_gated() {
            self.gated.clone().unwrap_or(serde_json::Value::Bool(false))
        } else {
            serde_json::Value::Bool(false)
        }
    }
}

/// A file's identity as the Hub reports it.
#[derive(Debug, Clone)]
pub struct FileInfo {
    /// Repo path.
    pub path: String,
    pub abs: PathBuf,
    pub size: u64,
    /// git blob oid (of the pointer for LFS files).
    pub oid: String,
    /// `(sha256, pointer size)` for LFS files.
    pub lfs: Option<(String, u64)>,
}

/// One repo found on disk.
#[derive(Debug, Clone)]
pub struct Repo {
    pub id: String,
    pub dir: PathBuf,
    pub commit: String,
    pub flags: RepoFlags,
    /// Extra refs → sha.
    pub refs: BTreeMap<String, String>,
}

impl Repo {
    /// The commit `rev` names: `main`, a ref, the full sha, a ref's sha, or a ≥7-hex prefix.
    pub fn resolve(&self, rev: &str) -> Option<String> {
        if let Some(sha) = self.refs.get(rev) {
            return Some(sha.clone());
        }
        if rev == "main" || rev == self.commit || (rev.len() >= 7 && self.commit.starts_with(rev)) {
            return Some(self.commit.clone());
        }
        self.refs.values().find(|s| s.as_str() == rev).cloned()
    }

    /// True if `token` unlocks the repo's private/gated access.
    pub fn accepts(&self, token: Option<&str>) -> bool {
        token.is_some_and(|t| self.flags.accepted_tokens.iter().any(|a| a == t))
    }
}

/// A file's hashes with the size and mtime they were computed for.
type CachedHash = (u64, Option<SystemTime>, FileInfo);

/// Repos under a root, with a hash cache so big files are hashed once.
pub struct RepoStore {
    root: PathBuf,
    hashes: Mutex<HashMap<PathBuf, CachedHash>>,
}

impl RepoStore {
    /// A store over `root`.
    pub fn new(root: PathBuf) -> Self {
        Self { root, hashes: Mutex::new(HashMap::new()) }
    }

    /// The repo `org/name`, if its directory exists.
    pub fn repo(&self, id: &str) -> Option<Repo> {
        let (org, name) = id.split_once('/')?;
        if [org, name].iter().any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains('/')) {
            return None;
        }
        let dir = self.root.join(org).join(name);
        if !dir.is_dir() {
            return None;
        }
        let flags =
            std::fs::read(dir.join(FLAGS_FILE)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let refs = std::fs::read(self.root.join(org).join(format!("{name}.refs.json")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Some(Repo { id: id.to_string(), commit: fake_commit(id), dir, flags, refs })
    }

    /// Every file of the repo, sorted by path, hashed.
    pub fn files(&self, repo: &Repo) -> std::io::Result<Vec<FileInfo>> {
        let mut paths = Vec::new();
        walk(&repo.dir, "", &mut paths)?;
        paths.sort();
        paths.into_iter().map(|p| self.file_info(repo, &p)).collect()
    }

    /// One file, if it exists (and is not the flags file).
    pub fn file(&self, repo: &Repo, path: &str) -> Option<FileInfo> {
        if path.is_empty() || path == FLAGS_FILE || path.split('/').any(|s| s.is_empty() || s == "." || s == "..") {
            return None;
        }
        repo.dir.join(path).is_file().then(|| self.file_info(repo, path).ok()).flatten()
    }

    fn file_info(&self, repo: &Repo, path: &str) -> std::io::Result<FileInfo> {
        let abs = repo.dir.join(path);
        let meta = std::fs::metadata(&abs)?;
        let (size, mtime) = (meta.len(), meta.modified().ok());
        if let Some((s, m, info)) = self.hashes.lock().unwrap_or_else(|e| e.into_inner()).get(&abs) {
            if *s == size && *m == mtime {
                return Ok(FileInfo { path: path.to_string(), ..info.clone() });
            }
        }
        let info = hash_file(&abs, path, size)?;
        self.hashes.lock().unwrap_or_else(|e| e.into_inner()).insert(abs, (size, mtime, info.clone()));
        Ok(info)
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk(&entry.path(), &rel, out)?;
        } else if rel != FLAGS_FILE {
            out.push(rel);
        }
    }
    Ok(())
}

fn is_lfs(path: &str, size: u64) -> bool {
    size >= LFS_MIN_SIZE || LFS_SUFFIXES.iter().any(|s| path.ends_with(s))
}

fn git_blob_oid(data_len: u64, chunks: impl FnOnce(&mut Sha1) -> std::io::Result<()>) -> std::io::Result<String> {
    let mut h = Sha1::new();
    h.update(format!("blob {data_len}\0").as_bytes());
    chunks(&mut h)?;
    Ok(hex::encode(h.finalize()))
}

fn hash_file(abs: &Path, path: &str, size: u64) -> std::io::Result<FileInfo> {
    let lfs = is_lfs(path, size);
    let mut sha1 = Sha1::new();
    sha1.update(format!("blob {size}\0").as_bytes());
    let mut sha256 = Sha256::new();
    let mut f = std::fs::File::open(abs)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let chunk = buf.get(..n).unwrap_or_default();
        if lfs {
            sha256.update(chunk);
        } else {
            sha1.update(chunk);
        }
    }
    let info = if lfs {
        let sha = hex::encode(sha256.finalize());
        let pointer = format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n");
        let oid = git_blob_oid(pointer.len() as u64, |h| {
            h.update(pointer.as_bytes());
            Ok(())
        })?;
        FileInfo { path: path.into(), abs: abs.into(), size, oid, lfs: Some((sha, pointer.len() as u64)) }
    } else {
        FileInfo { path: path.into(), abs: abs.into(), size, oid: hex::encode(sha1.finalize()), lfs: None }
    };
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_commit_is_sha1_of_the_prefixed_id() {
        // sha1("fake-commit:o/r") computed independently with Python's hashlib.
        assert_eq!(fake_commit("o/r"), "977fc00156a177bbf60d7c59c5fa9576e2a72be6");
    }

    #[test]
    fn git_oid_of_a_known_blob() {
        // `echo -n hello | git hash-object --stdin`
        let oid = git_blob_oid(5, |h| {
            h.update(b"hello");
            Ok(())
        })
        .unwrap();
        assert_eq!(oid, "b6fc4c620b67d95f953a5c1c1230aaab5db5a1b0");
    }

    #[test]
    fn revisions_resolve_like_the_hub() {
        let repo = Repo {
            id: "o/r".into(),
            dir: PathBuf::new(),
            commit: fake_commit("o/r"),
            flags: RepoFlags::default(),
            refs: [("v1".to_string(), "a".repeat(40))].into_iter().collect(),
        };
        assert_eq!(repo.resolve("main"), Some(repo.commit.clone()));
        assert_eq!(repo.resolve(&repo.commit[..7]), Some(repo.commit.clone()));
        assert_eq!(repo.resolve(&repo.commit[..6]), None);
        assert_eq!(repo.resolve("v1"), Some("a".repeat(40)));
        assert_eq!(repo.resolve("nope"), None);
    }
}
