//! The engine behind the mount: maps paths `<org>/<repo>[@<rev>]/<repo>-<TYPE>.gguf` to
//! virtual GGUF files. A repo is resolved on first lookup (revision pinned to a commit,
//! metadata fetched, all layouts built) and kept for the life of the mount: a commit's
//! content never changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::OnceCell;

use crate::cache::{MemoryCache, DEFAULT_MEMORY_CACHE};
use crate::plan::layout::{self, Layout};
use crate::plan::OutType;
use crate::prefetch::PrefetchingFile;
use crate::source::SourceModel;
use crate::vfile::{GgufFile, SourceReader};
use crate::vfs::{DirEntry, EntryKind, Namespace, VfsError, VirtualFile};

/// Where models come from: resolves a repo at a revision to its source description, and
/// gives a reader for its shards. The Hub client implements it; tests may use local files.
pub trait ModelProvider: Send + Sync + 'static {
    /// The source description of `repo` at `revision`.
    fn source(&self, repo: &str, revision: &str) -> BoxFuture<'_, Result<Arc<SourceModel>, VfsError>>;
    /// A reader of the shards of `source`.
    fn reader(&self, source: &Arc<SourceModel>) -> Arc<dyn SourceReader>;
}

/// The revision used when a path names none.
pub const DEFAULT_REVISION: &str = "main";

/// A resolved repo: its source and one layout per output type.
pub struct RepoModel {
    pub source: Arc<SourceModel>,
    pub files: Vec<(String, Arc<Layout>)>,
}

impl RepoModel {
    /// Builds every output type's layout (CPU work: vocabularies can be large).
    pub fn build(source: Arc<SourceModel>) -> Result<Self, VfsError> {
        let name = repo_file_stem(&source.repo_id);
        let not_convertible = |e: layout::PlanError| VfsError::NotFound(e.to_string());
        let first = layout::build(&source, OutType::ALL[0]).map_err(not_convertible)?;
        let mut files = Vec::new();
        for t in OutType::ALL {
            let layout =
                if t == first.outtype { first.clone() } else { layout::retype(&first, t).map_err(not_convertible)? };
            files.push((format!("{name}-{}.gguf", t.name()), Arc::new(layout)));
        }
        Ok(Self { source, files })
    }
}

/// The file name stem for a repo: its name without the organisation.
pub fn repo_file_stem(repo_id: &str) -> &str {
    repo_id.rsplit('/').next().unwrap_or(repo_id)
}

type Slot = Arc<OnceCell<Arc<RepoModel>>>;

/// The mount's namespace.
pub struct Catalog {
    provider: Arc<dyn ModelProvider>,
    /// Repos listed at the root (from `--model` or a config file).
    listed: Vec<String>,
    repos: Mutex<HashMap<String, Slot>>,
    /// Converted chunks shared by every open file (the prefetcher's buffer).
    memory: Arc<MemoryCache>,
}

impl Catalog {
    /// A catalog listing `listed` repos (`org/name[@rev]`) at the root; any other repo is
    /// reachable by path.
    pub fn new(provider: Arc<dyn ModelProvider>, listed: Vec<String>) -> Self {
        Self::with_memory_cache(provider, listed, Arc::new(MemoryCache::new(DEFAULT_MEMORY_CACHE)))
    }

    /// Like `new`, with opened files prefetching into `memory` (`--memory-cache`).
    pub fn with_memory_cache(provider: Arc<dyn ModelProvider>, listed: Vec<String>, memory: Arc<MemoryCache>) -> Self {
        Self { provider, listed, repos: Mutex::new(HashMap::new()), memory }
    }

    /// Resolves `org/name[@rev]` once; concurrent lookups wait for the same resolution.
    /// Failures are not remembered, so a later lookup tries again.
    pub async fn repo(&self, dir: &str) -> Result<Arc<RepoModel>, VfsError> {
        let (repo, rev) = parse_repo_dir(dir).ok_or_else(|| VfsError::NotFound(format!("{dir}: not a repo path")))?;
        let slot = self.repos.lock().expect("catalog lock").entry(dir.to_string()).or_default().clone();
        slot.get_or_try_init(|| async {
            let source = self.provider.source(repo, rev).await?;
            let model = tokio::task::spawn_blocking(move || RepoModel::build(source))
                .await
                .map_err(|e| VfsError::Io(format!("layout task failed: {e}")))??;
            tracing::info!(repo, rev, commit = %model.source.commit, "repo resolved");
            Ok::<_, VfsError>(Arc::new(model))
        })
        .await
        .cloned()
        .inspect_err(|e| tracing::warn!(repo = dir, error = %e, "repo not served"))
    }

    fn orgs(&self) -> Vec<String> {
        let mut orgs: Vec<String> =
            self.listed.iter().filter_map(|r| r.split_once('/').map(|(o, _)| o.to_string())).collect();
        orgs.sort();
        orgs.dedup();
        orgs
    }

    fn repos_in(&self, org: &str) -> Vec<String> {
        let known = self.repos.lock().expect("catalog lock");
        let mut names: Vec<String> = self
            .listed
            .iter()
            .map(String::as_str)
            .chain(known.iter().filter(|(_, s)| s.initialized()).map(|(k, _)| k.as_str()))
            .filter_map(|r| r.split_once('/').filter(|(o, _)| *o == org).map(|(_, n)| n.to_string()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    async fn lookup_path(&self, path: &str) -> Result<EntryKind, VfsError> {
        match split_path(path)? {
            Parts::Root | Parts::Org(_) => Ok(EntryKind::Dir),
            Parts::Repo(dir) => self.repo(&dir).await.map(|_| EntryKind::Dir),
            Parts::File(dir, file) => {
                let model = self.repo(&dir).await?;
                find_file(&model, file).map(|l| EntryKind::File { size: l.size })
            }
        }
    }

    async fn list_path(&self, path: &str) -> Result<Vec<DirEntry>, VfsError> {
        let dirs = |names: Vec<String>| names.into_iter().map(|name| DirEntry { name, kind: EntryKind::Dir }).collect();
        match split_path(path)? {
            Parts::Root => Ok(dirs(self.orgs())),
            Parts::Org(org) => Ok(dirs(self.repos_in(org))),
            Parts::Repo(dir) => {
                let model = self.repo(&dir).await?;
                Ok(model
                    .files
                    .iter()
                    .map(|(name, l)| DirEntry { name: name.clone(), kind: EntryKind::File { size: l.size } })
                    .collect())
            }
            Parts::File(..) => Err(VfsError::NotFound(format!("{path}: not a directory"))),
        }
    }

    async fn open_path(&self, path: &str) -> Result<Arc<dyn VirtualFile>, VfsError> {
        let Parts::File(dir, file) = split_path(path)? else {
            return Err(VfsError::NotFound(format!("{path}: not a file")));
        };
        let model = self.repo(&dir).await?;
        let layout = find_file(&model, file)?.clone();
        let reader = self.provider.reader(&model.source);
        let file = Arc::new(GgufFile::new(layout, model.source.clone(), reader));
        Ok(Arc::new(MountedFile(PrefetchingFile::new(file, self.memory.clone()))))
    }
}

fn find_file<'a>(model: &'a RepoModel, file: &str) -> Result<&'a Arc<Layout>, VfsError> {
    model
        .files
        .iter()
        .find(|(n, _)| n == file)
        .map(|(_, l)| l)
        .ok_or_else(|| VfsError::NotFound(format!("{}: no file {file}", model.source.repo_id)))
}

enum Parts<'a> {
    Root,
    Org(&'a str),
    Repo(String),
    File(String, &'a str),
}

fn split_path(path: &str) -> Result<Parts<'_>, VfsError> {
    let parts: Vec<&str> = if path.is_empty() { vec![] } else { path.split('/').collect() };
    if parts.iter().any(|p| !valid_component(p)) {
        return Err(VfsError::NotFound(format!("{path}: invalid path")));
    }
    Ok(match parts.as_slice() {
        [] => Parts::Root,
        [org] => Parts::Org(org),
        [org, repo] => Parts::Repo(format!("{org}/{repo}")),
        [org, repo, file] => Parts::File(format!("{org}/{repo}"), file),
        _ => return Err(VfsError::NotFound(format!("{path}: too deep"))),
    })
}

/// Hub names are ASCII letters, digits, `-`, `_`, `.` (not starting with `.`), at most 96
/// characters; a revision may follow `@`.
fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 200
        && !c.starts_with('.')
        && c.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.' | '@'))
}

/// Splits `org/name[@rev]` into the repo id and revision.
pub fn parse_repo_dir(dir: &str) -> Option<(&str, &str)> {
    let (repo, rev) = match dir.split_once('@') {
        Some((r, v)) if !v.is_empty() => (r, v),
        Some(_) => return None,
        None => (dir, DEFAULT_REVISION),
    };
    let (org, name) = repo.split_once('/')?;
    (valid_component(org) && valid_component(name) && !name.contains('@')).then_some((repo, rev))
}

impl Namespace for Catalog {
    fn lookup(&self, path: &str) -> BoxFuture<'_, Result<EntryKind, VfsError>> {
        let path = path.to_string();
        async move { self.lookup_path(&path).await }.boxed()
    }

    fn list(&self, path: &str) -> BoxFuture<'_, Result<Vec<DirEntry>, VfsError>> {
        let path = path.to_string();
        async move { self.list_path(&path).await }.boxed()
    }

    fn open(&self, path: &str) -> BoxFuture<'_, Result<Arc<dyn VirtualFile>, VfsError>> {
        let path = path.to_string();
        async move { self.open_path(&path).await }.boxed()
    }
}

struct MountedFile(PrefetchingFile);

impl VirtualFile for MountedFile {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn read(&self, offset: u64, len: u64) -> BoxFuture<'_, Result<Bytes, VfsError>> {
        async move {
            self.0.read(offset, len).await.map_err(|e| {
                tracing::error!(error = %e, offset, len, "read failed");
                match e {
                    crate::vfile::ReadError::Source { source: crate::vfile::SourceReadError::NotFound(m), .. } => {
                        VfsError::NotFound(m)
                    }
                    crate::vfile::ReadError::Source {
                        source: crate::vfile::SourceReadError::AccessDenied(m), ..
                    } => VfsError::AccessDenied(m),
                    other => VfsError::Io(other.to_string()),
                }
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_dirs_parse_with_and_without_revision() {
        assert_eq!(parse_repo_dir("Qwen/Qwen2.5-0.5B"), Some(("Qwen/Qwen2.5-0.5B", "main")));
        assert_eq!(parse_repo_dir("a/b@v1.0"), Some(("a/b", "v1.0")));
        assert_eq!(parse_repo_dir("a/b@"), None);
        assert_eq!(parse_repo_dir("a"), None);
        assert_eq!(parse_repo_dir("../b"), None);
    }

    #[test]
    fn paths_with_dot_dot_or_escapes_are_rejected() {
        assert!(split_path("a/../b").is_err());
        assert!(split_path("a/b%2Fc").is_err());
        assert!(split_path("a/b/c/d").is_err());
    }
}
