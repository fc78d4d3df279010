//! The engine behind the mount: maps paths `<org>/<repo>[@<rev>]/<repo>-<TYPE>.gguf` to
//! virtual GGUF files, and `<org>/<repo>[@<rev>]/<file>.gguf` to `.gguf` files the repo ships
//! (passed through). A repo is resolved on first lookup (revision pinned to a commit,
//! metadata fetched, all layouts built) and kept for the life of the mount: a commit's
//! content never changes. `.ggufs/status` at the root reports read counters
//! (see `stats`); revision syntax and repo-id rules are in `repo_path`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::sync::OnceCell;

use crate::cache::{MemoryCache, DEFAULT_MEMORY_CACHE};
use crate::catalog_files::{Content, CountedReader, ModelFile, StatusFile};
use crate::plan::layout::{self, Layout};
use crate::plan::OutType;
use crate::prefetch::PrefetchingFile;
use crate::repo_path::{self, RepoIdError};
use crate::source::SourceModel;
use crate::stats::Stats;
use crate::vfile::{GgufFile, SourceReader};
use crate::vfs::{DirEntry, EntryKind, Namespace, VfsError, VirtualFile};

/// Where models come from: resolves a repo at a revision to its source description, and
/// gives a reader for its shards. The Hub client implements it; tests may use local files.
pub trait ModelProvider: Send + Sync + 'static {
    /// The source description of `repo` at `revision`.
    fn source(&self, repo: &str, revision: &str) -> BoxFuture<'_, Result<Arc<SourceModel>, VfsError>>;
    /// A reader of the shards of `source`.
    fn reader(&self, source: &Arc<SourceModel>) -> Arc<dyn SourceReader>;
    /// The `.gguf` files `repo` ships at `revision`, described as a source whose shards are
    /// those files (no tensors), so `reader` reads them; `None` if the provider has no listing.
    fn gguf_files(&self, _repo: &str, _revision: &str) -> BoxFuture<'_, Result<Option<Arc<SourceModel>>, VfsError>> {
        async { Ok(None) }.boxed()
    }
}

/// The revision used when a path names none.
pub const DEFAULT_REVISION: &str = "main";

/// A resolved repo: its source and one layout per output type, plus the `.gguf` files it ships.
pub struct RepoModel {
    pub source: Arc<SourceModel>,
    pub files: Vec<(String, Arc<Layout>)>,
    /// `(file name, shard index in `passthrough_source`)` of each shipped `.gguf` file.
    pub passthrough: Vec<(String, usize)>,
    /// The shipped `.gguf` files as shards (empty when there are none).
    pub passthrough_source: Option<Arc<SourceModel>>,
}

impl RepoModel {
    /// Builds every output type's layout (CPU work: vocabularies can be large).
    pub fn build(source: Arc<SourceModel>) -> Result<Self, VfsError> {
        let name = repo_file_stem(&source.repo_id);
        let not_convertible = |e: layout::PlanError| VfsError::NotFound(e.to_string());
        let first = layout::build(&source, OutType::ALL[0]).map_err(not_convertible)?;
        let mut files = Vec::new();
        let mut f16 = None;
        for t in OutType::MOUNTED {
            let layout = if t == first.outtype {
                first.clone()
            } else if t.is_llama_quantize() {
                // llama-quantize's files are made from the F16 file, built just above
                let f16 = f16.as_ref().ok_or_else(|| VfsError::Io("F16 layout missing".into()))?;
                crate::plan::llama_quant::quantize(f16, t).map_err(not_convertible)?
            } else {
                layout::retype(&first, t).map_err(not_convertible)?
            };
            if t == OutType::F16 {
                f16 = Some(layout.clone());
            }
            files.push((format!("{name}-{}.gguf", t.name()), layout));
        }
        let files = files
            .into_iter()
            .map(|(name, mut layout)| {
                layout.shed_kv(); // the header bytes are all the mount serves
                (name, Arc::new(layout))
            })
            .collect();
        Ok(Self { source, files, passthrough: Vec::new(), passthrough_source: None })
    }

    /// Adds the `.gguf` files of `ggufs` under their base names (the repo path with `/` → `__`
    /// when two share a base name; `hub-` in front when a converted file has that name).
    pub fn with_passthrough(mut self, ggufs: Option<Arc<SourceModel>>) -> Self {
        let Some(g) = ggufs.filter(|g| !g.shards.is_empty()) else { return self };
        let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
        for (i, shard) in g.shards.iter().enumerate() {
            let shared = g.shards.iter().filter(|s| base(&s.path) == base(&shard.path)).count() > 1;
            let mut name = if shared { shard.path.replace('/', "__") } else { base(&shard.path) };
            if self.files.iter().any(|(n, _)| *n == name) {
                name = format!("hub-{name}");
            }
            self.passthrough.push((name, i));
        }
        self.passthrough_source = Some(g);
        self
    }

    /// A repo with shipped `.gguf` files only (nothing to convert).
    pub fn passthrough_only(ggufs: Arc<SourceModel>) -> Self {
        Self { source: ggufs.clone(), files: Vec::new(), passthrough: Vec::new(), passthrough_source: None }
            .with_passthrough(Some(ggufs))
    }

    fn entries(&self) -> Vec<DirEntry> {
        let file = |name: &String, size| DirEntry { name: name.clone(), kind: EntryKind::File { size } };
        let mut out: Vec<DirEntry> = self.files.iter().map(|(n, l)| file(n, l.size)).collect();
        if let Some(g) = &self.passthrough_source {
            out.extend(self.passthrough.iter().filter_map(|(n, i)| Some(file(n, g.shards.get(*i)?.size))));
        }
        out
    }
}

/// The file name stem for a repo: its name without the organisation.
pub fn repo_file_stem(repo_id: &str) -> &str {
    repo_id.rsplit('/').next().unwrap_or(repo_id)
}

type Slot = Arc<OnceCell<Arc<RepoModel>>>;

/// The read-only control directory at the mount root (a dot-directory: `ls -a` shows it).
pub const CONTROL_DIR: &str = ".ggufs";
/// The live counters file in `CONTROL_DIR`.
pub const STATUS_FILE: &str = "status";

/// The mount's namespace.
pub struct Catalog {
    provider: Arc<dyn ModelProvider>,
    /// Repos listed at the root (from `--model` or a config file).
    listed: Vec<String>,
    repos: Mutex<HashMap<String, Slot>>,
    stats: Arc<Stats>,
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
        Self { provider, listed, repos: Mutex::new(HashMap::new()), stats: Arc::new(Stats::new()), memory }
    }

    /// The read counters of this mount (what `.ggufs/status` shows).
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Resolves `org/name[@rev]` once; concurrent lookups wait for the same resolution.
    /// Failures are not remembered, so a later lookup tries again. Invalid ids or revisions
    /// fail here, before any request.
    pub async fn repo(&self, dir: &str) -> Result<Arc<RepoModel>, VfsError> {
        let (repo, rev) = parse_repo_spec(dir).map_err(|e| VfsError::NotFound(e.to_string()))?;
        let slot = self.repos.lock().expect("catalog lock").entry(dir.to_string()).or_default().clone();
        slot.get_or_try_init(|| async {
            let (source, ggufs) =
                futures::future::join(self.provider.source(&repo, &rev), self.provider.gguf_files(&repo, &rev)).await;
            let ggufs = ggufs.ok().flatten().filter(|g| !g.shards.is_empty());
            let converted = match source {
                Ok(source) => tokio::task::spawn_blocking(move || RepoModel::build(source))
                    .await
                    .map_err(|e| VfsError::Io(format!("layout task failed: {e}")))?,
                Err(e) => Err(e),
            };
            let model = match (converted, ggufs) {
                (Ok(m), g) => m.with_passthrough(g),
                (Err(e), Some(g)) => {
                    tracing::info!(repo, error = %e, "nothing to convert; serving the repo's .gguf files only");
                    RepoModel::passthrough_only(g)
                }
                (Err(e), None) => return Err(e),
            };
            tracing::info!(repo, rev, commit = %model.source.commit, files = model.files.len(),
                passthrough = model.passthrough.len(), "repo resolved");
            // Parsing vocabularies and building eight layouts left much freed memory behind.
            crate::allocator::release_free_memory();
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
            Parts::Root | Parts::Org(_) | Parts::Control => Ok(EntryKind::Dir),
            // Size 0 like /proc: the file is opened without the page cache and read to EOF.
            Parts::Status => Ok(EntryKind::File { size: 0 }),
            Parts::Repo(dir) => self.repo(&dir).await.map(|_| EntryKind::Dir),
            Parts::File(dir, file) => {
                let model = self.repo(&dir).await?;
                find_entry(&model, file).map(|e| e.kind)
            }
        }
    }

    async fn list_path(&self, path: &str) -> Result<Vec<DirEntry>, VfsError> {
        let dirs = |names: Vec<String>| names.into_iter().map(|name| DirEntry { name, kind: EntryKind::Dir }).collect();
        match split_path(path)? {
            Parts::Root => {
                let mut entries: Vec<DirEntry> = dirs(self.orgs());
                entries.push(DirEntry { name: CONTROL_DIR.into(), kind: EntryKind::Dir });
                Ok(entries)
            }
            Parts::Control => Ok(vec![DirEntry { name: STATUS_FILE.into(), kind: EntryKind::File { size: 0 } }]),
            Parts::Org(org) => Ok(dirs(self.repos_in(org))),
            Parts::Repo(dir) => Ok(self.repo(&dir).await?.entries()),
            Parts::File(..) | Parts::Status => Err(VfsError::NotFound(format!("{path}: not a directory"))),
        }
    }

    async fn open_path(&self, path: &str) -> Result<Arc<dyn VirtualFile>, VfsError> {
        let (dir, file) = match split_path(path)? {
            Parts::Status => return Ok(Arc::new(StatusFile::snapshot(&self.stats))),
            Parts::File(dir, file) => (dir, file),
            _ => return Err(VfsError::NotFound(format!("{path}: not a file"))),
        };
        let model = self.repo(&dir).await?;
        let stats = self.stats.file(path);
        let counted = |source: &Arc<SourceModel>| -> Arc<dyn SourceReader> {
            Arc::new(CountedReader(self.provider.reader(source)))
        };
        if let Some((_, layout)) = model.files.iter().find(|(n, _)| n == file) {
            let f = Arc::new(GgufFile::new(layout.clone(), model.source.clone(), counted(&model.source)));
            let content = Content::Converted(PrefetchingFile::new(f, self.memory.clone()));
            return Ok(Arc::new(ModelFile { content, stats }));
        }
        let (Some(g), Some((_, shard))) =
            (&model.passthrough_source, model.passthrough.iter().find(|(n, _)| n == file))
        else {
            return Err(not_in_repo(&model, file));
        };
        let size = g.shards.get(*shard).map_or(0, |s| s.size);
        let content = Content::PassThrough { reader: counted(g), shard: *shard, size };
        Ok(Arc::new(ModelFile { content, stats }))
    }
}

fn not_in_repo(model: &RepoModel, file: &str) -> VfsError {
    VfsError::NotFound(format!("{}: no file {file}", model.source.repo_id))
}

fn find_entry(model: &RepoModel, file: &str) -> Result<DirEntry, VfsError> {
    model.entries().into_iter().find(|e| e.name == file).ok_or_else(|| not_in_repo(model, file))
}

enum Parts<'a> {
    Root,
    Control,
    Status,
    Org(&'a str),
    Repo(String),
    File(String, &'a str),
}

fn split_path(path: &str) -> Result<Parts<'_>, VfsError> {
    let parts: Vec<&str> = if path.is_empty() { vec![] } else { path.split('/').collect() };
    let invalid = || VfsError::NotFound(format!("{path}: invalid path"));
    Ok(match parts.as_slice() {
        [] => Parts::Root,
        [CONTROL_DIR] => Parts::Control,
        [CONTROL_DIR, STATUS_FILE] => Parts::Status,
        [org] if valid_org(org) => Parts::Org(org),
        [org, repo] => {
            let dir = format!("{org}/{repo}");
            parse_repo_spec(&dir).map_err(|e| VfsError::NotFound(e.to_string()))?;
            Parts::Repo(dir)
        }
        [org, repo, file] if valid_file_name(file) => {
            let dir = format!("{org}/{repo}");
            parse_repo_spec(&dir).map_err(|e| VfsError::NotFound(e.to_string()))?;
            Parts::File(dir, file)
        }
        [_, _, _] | [_] => return Err(invalid()),
        _ => return Err(VfsError::NotFound(format!("{path}: too deep"))),
    })
}

fn valid_org(org: &str) -> bool {
    repo_path::validate_repo_id(&format!("{org}/x")).is_ok()
}

/// File names are matched against the repo's list, so this only keeps out what no listed
/// name can be.
fn valid_file_name(f: &str) -> bool {
    !f.is_empty() && f.len() <= 255 && f != "." && f != ".." && !f.contains('\0')
}

/// Splits `org/name[@rev]` into a valid repo id and the Hub revision it names (`pr:N` and
/// percent-escapes decoded; `main` when there is no `@`).
pub fn parse_repo_spec(dir: &str) -> Result<(String, String), RepoIdError> {
    let (repo, rev) = match dir.split_once('@') {
        Some((r, v)) => (r, repo_path::parse_revision(v)?),
        None => (dir, DEFAULT_REVISION.to_string()),
    };
    repo_path::validate_repo_id(repo)?;
    Ok((repo.to_string(), rev))
}

/// Splits `org/name[@rev]` into the repo id and the revision as written, if both are valid
/// (see `parse_repo_spec` for the decoded revision).
pub fn parse_repo_dir(dir: &str) -> Option<(&str, &str)> {
    parse_repo_spec(dir).ok()?;
    Some(dir.split_once('@').unwrap_or((dir, DEFAULT_REVISION)))
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
        assert!(split_path("a--b/c").is_err());
        assert!(split_path("a/b.git").is_err());
        assert!(split_path("a/b@x..y").is_err());
    }

    #[test]
    fn pr_refs_and_encoded_revisions_parse() {
        let pr = ("a/b".to_string(), "refs/pr/1".to_string());
        assert_eq!(parse_repo_spec("a/b@pr:1").unwrap(), pr);
        assert_eq!(parse_repo_spec("a/b@refs%2Fpr%2F1").unwrap(), pr);
        assert_eq!(parse_repo_dir("a/b@pr:1"), Some(("a/b", "pr:1")));
        assert!(matches!(split_path("a/b@pr:1/f.gguf"), Ok(Parts::File(d, "f.gguf")) if d == "a/b@pr:1"));
        assert!(matches!(split_path(".ggufs/status"), Ok(Parts::Status)));
    }
}
