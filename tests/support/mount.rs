//! A real kernel mount of the engine (catalog over the Hub provider) on a fake Hub.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ggufs::cache::{CachedProvider, DiskCache, MetadataCache};
use ggufs::catalog::{Catalog, ModelProvider};
use ggufs::fs::{mount, MountHandle, MountOptions};
use ggufs::hub::{HubClient, HubConfig};
use ggufs::remote::HubProvider;
use ggufs_fakehub::FakeHub;

/// A mounted catalog; unmounts (lazily if busy) when dropped.
pub struct Mounted {
    pub handle: Option<MountHandle>,
    pub dir: tempfile::TempDir,
    pub runtime: tokio::runtime::Runtime,
}

impl Mounted {
    /// Mounts a catalog listing `models`, served from `hub`.
    pub fn new(hub: &FakeHub, models: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("mountpoint");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let handle = Self::mount_at(hub, models, dir.path(), &runtime);
        Self { handle: Some(handle), dir, runtime }
    }

    /// Mounts the catalog `make` builds (called inside the mount's runtime, so it may create
    /// Hub clients), for tests that need another provider or client config.
    pub fn with_catalog(make: impl FnOnce() -> Arc<Catalog>) -> Self {
        let dir = tempfile::tempdir().expect("mountpoint");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let catalog = {
            let _guard = runtime.enter();
            make()
        };
        let opts = MountOptions { runtime: Some(runtime.handle().clone()), ..MountOptions::default() };
        let handle = mount(catalog, dir.path(), opts).expect("mount");
        Self { handle: Some(handle), dir, runtime }
    }

    /// Mounts a catalog listing `models` over a client built from `cfg`, with source bytes and
    /// metadata cached in `cache_dir` (fresh per caller) or, with `None`, not cached at all.
    pub fn with_client(cfg: HubConfig, cache_dir: Option<&Path>, models: &[&str]) -> Self {
        let listed: Vec<String> = models.iter().map(|s| s.to_string()).collect();
        Self::with_catalog(|| {
            let client = Arc::new(HubClient::new(cfg).expect("client"));
            let provider: Arc<dyn ModelProvider> = match cache_dir {
                Some(c) => {
                    let disk = Arc::new(DiskCache::open(c, 1 << 30).expect("disk cache"));
                    let meta = Arc::new(MetadataCache::open(c).expect("metadata cache"));
                    Arc::new(CachedProvider::new(Some(client), disk, meta))
                }
                None => Arc::new(HubProvider::new(client)),
            };
            Arc::new(Catalog::new(provider, listed))
        })
    }

    /// Mounts again at the same path (after an unmount).
    pub fn remount(&mut self, hub: &FakeHub, models: &[&str]) {
        self.handle = Some(Self::mount_at(hub, models, self.dir.path(), &self.runtime));
    }

    fn mount_at(hub: &FakeHub, models: &[&str], at: &Path, runtime: &tokio::runtime::Runtime) -> MountHandle {
        let client = {
            let _guard = runtime.enter();
            Arc::new(super::client(hub))
        };
        let listed = models.iter().map(|s| s.to_string()).collect();
        let catalog = Arc::new(Catalog::new(Arc::new(HubProvider::new(client)), listed));
        let opts = MountOptions { runtime: Some(runtime.handle().clone()), ..MountOptions::default() };
        mount(catalog, at, opts).expect("mount")
    }

    /// The path of a virtual file in the mount.
    pub fn file(&self, repo: &str, ty: &str) -> PathBuf {
        let name = repo.rsplit('/').next().unwrap();
        self.dir.path().join(repo).join(format!("{name}-{ty}.gguf"))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.unmount();
        }
    }
}
