//! Path ↔ inode numbers for the life of one mount.
//!
//! The kernel caches pages per inode and we always reply `FOPEN_KEEP_CACHE`, so an inode
//! number must never come to mean different bytes. Hence: numbers are never reused, a path
//! keeps its number as long as the namespace reports the same kind and size for it, and a
//! path whose kind or size changed gets a fresh number (the old one is "retired" and lives
//! until the kernel forgets it). Inodes that still name their path are kept even after the
//! kernel forgets them: they cost a path string each and keep numbers stable for `ls -i`,
//! `find` and tools that compare `st_ino`.

use std::collections::HashMap;

use crate::vfs::EntryKind;

/// The root directory's inode (fixed by the FUSE protocol).
pub const ROOT_INO: u64 = fuser::FUSE_ROOT_ID;

/// What one inode stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// Namespace path (relative, `/`-separated, root = `""`).
    pub path: String,
    /// Kind and exact size, as the namespace reported when the inode was made.
    pub kind: EntryKind,
    /// How many kernel references (successful lookups minus forgets) are outstanding.
    lookups: u64,
    /// The path now names other content; drop the inode once the kernel forgets it.
    retired: bool,
}

/// The table; callers wrap it in a mutex (never held across I/O).
#[derive(Debug)]
pub struct InodeTable {
    by_ino: HashMap<u64, Inode>,
    by_path: HashMap<String, u64>,
    next_ino: u64,
}

impl Default for InodeTable {
    fn default() -> Self {
        Self::new()
    }
}

impl InodeTable {
    /// A table holding only the root directory.
    pub fn new() -> Self {
        let root = Inode { path: String::new(), kind: EntryKind::Dir, lookups: 1, retired: false };
        Self {
            by_ino: HashMap::from([(ROOT_INO, root)]),
            by_path: HashMap::from([(String::new(), ROOT_INO)]),
            next_ino: ROOT_INO + 1,
        }
    }

    /// The inode `ino`, if the kernel may still refer to it.
    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.by_ino.get(&ino)
    }

    /// Number of live inodes (for `statfs`).
    pub fn count(&self) -> usize {
        self.by_ino.len()
    }

    /// The path of entry `name` inside directory `parent`, or None when `parent` is unknown,
    /// not a directory, or `name` cannot be a single path component.
    pub fn child_path(&self, parent: u64, name: &str) -> Option<String> {
        let dir = self.by_ino.get(&parent)?;
        if dir.kind != EntryKind::Dir || !is_plain_component(name) {
            return None;
        }
        Some(join_path(&dir.path, name))
    }

    /// The inode of the directory containing `path` (the root for top-level entries).
    pub fn parent_ino(&self, path: &str) -> u64 {
        let parent = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        self.by_path.get(parent).copied().unwrap_or(ROOT_INO)
    }

    /// The inode for `path` with `kind`, made if needed, without a kernel reference
    /// (for plain `readdir` entries, which the kernel does not count).
    pub fn record(&mut self, path: &str, kind: EntryKind) -> u64 {
        if path.is_empty() {
            return ROOT_INO;
        }
        if let Some(&ino) = self.by_path.get(path) {
            if self.by_ino.get(&ino).is_some_and(|inode| inode.kind == kind) {
                return ino;
            }
            self.retire(ino);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.by_ino.insert(ino, Inode { path: path.to_owned(), kind, lookups: 0, retired: false });
        self.by_path.insert(path.to_owned(), ino);
        ino
    }

    /// Like `record`, and counts one kernel reference (a successful `lookup` or a
    /// `readdirplus` entry), to be balanced by `forget`.
    pub fn record_lookup(&mut self, path: &str, kind: EntryKind) -> u64 {
        let ino = self.record(path, kind);
        if let Some(inode) = self.by_ino.get_mut(&ino) {
            inode.lookups = inode.lookups.saturating_add(1);
        }
        ino
    }

    /// The kernel dropped `count` references to `ino`.
    pub fn forget(&mut self, ino: u64, count: u64) {
        if ino == ROOT_INO {
            return;
        }
        let Some(inode) = self.by_ino.get_mut(&ino) else {
            return;
        };
        inode.lookups = inode.lookups.saturating_sub(count);
        if inode.lookups == 0 && inode.retired {
            self.by_ino.remove(&ino);
        }
    }

    fn retire(&mut self, ino: u64) {
        let Some(inode) = self.by_ino.get_mut(&ino) else {
            return;
        };
        self.by_path.remove(&inode.path);
        inode.retired = true;
        if inode.lookups == 0 {
            self.by_ino.remove(&ino);
        }
    }
}

/// `parent/name`, or `name` at the root.
pub fn join_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

fn is_plain_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: EntryKind = EntryKind::File { size: 10 };

    #[test]
    fn root_is_a_directory_with_the_fuse_root_number() {
        let mut table = InodeTable::new();
        let root = table.get(ROOT_INO).expect("root");
        assert_eq!(root.path, "");
        assert_eq!(root.kind, EntryKind::Dir);
        assert_eq!(table.record("", EntryKind::Dir), ROOT_INO);
    }

    #[test]
    fn same_path_and_kind_keep_their_number() {
        let mut table = InodeTable::new();
        let a = table.record_lookup("org/repo/f.gguf", FILE);
        let b = table.record_lookup("org/repo/f.gguf", FILE);
        assert_eq!(a, b);
        assert_ne!(a, ROOT_INO);
        assert_ne!(table.record("org", EntryKind::Dir), a);
    }

    #[test]
    fn forgotten_inodes_that_still_name_their_path_stay() {
        let mut table = InodeTable::new();
        let ino = table.record_lookup("a", FILE);
        table.forget(ino, 1);
        assert!(table.get(ino).is_some());
        assert_eq!(table.record_lookup("a", FILE), ino);
    }

    #[test]
    fn changed_size_gets_a_new_number_and_old_one_lives_until_forgotten() {
        let mut table = InodeTable::new();
        let old = table.record_lookup("a", FILE);
        let new = table.record_lookup("a", EntryKind::File { size: 11 });
        assert_ne!(old, new);
        assert_eq!(table.get(old).map(|i| i.kind), Some(FILE));
        table.forget(old, 1);
        assert!(table.get(old).is_none());
        assert_eq!(table.get(new).map(|i| i.kind), Some(EntryKind::File { size: 11 }));
    }

    #[test]
    fn retired_inode_without_references_is_dropped_at_once() {
        let mut table = InodeTable::new();
        let old = table.record("a", FILE);
        let new = table.record("a", EntryKind::Dir);
        assert!(table.get(old).is_none());
        assert!(new > old, "numbers are never reused");
    }

    #[test]
    fn forget_counts_references_and_never_removes_root() {
        let mut table = InodeTable::new();
        let ino = table.record_lookup("a", FILE);
        table.record_lookup("a", FILE);
        table.record_lookup("a", EntryKind::Dir); // retires `ino` with 2 references
        table.forget(ino, 1);
        assert!(table.get(ino).is_some());
        table.forget(ino, 1);
        assert!(table.get(ino).is_none());
        table.forget(ROOT_INO, 100);
        assert!(table.get(ROOT_INO).is_some());
        table.forget(9999, 1); // unknown: ignored
    }

    #[test]
    fn child_paths_are_joined_and_validated() {
        let mut table = InodeTable::new();
        let org = table.record("org", EntryKind::Dir);
        let file = table.record("org/f", FILE);
        assert_eq!(table.child_path(ROOT_INO, "org").as_deref(), Some("org"));
        assert_eq!(table.child_path(org, "repo").as_deref(), Some("org/repo"));
        assert_eq!(table.child_path(org, ".."), None);
        assert_eq!(table.child_path(org, "a/b"), None);
        assert_eq!(table.child_path(org, ""), None);
        assert_eq!(table.child_path(file, "x"), None, "files have no children");
        assert_eq!(table.child_path(12345, "x"), None);
        assert_eq!(table.parent_ino("org/f"), org);
        assert_eq!(table.parent_ino("org"), ROOT_INO);
    }
}
