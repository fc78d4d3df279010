//! Open file and directory handles (`fh` numbers given to the kernel).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::vfs::{DirEntry, VirtualFile};

/// Locks `mutex`, recovering from poisoning: the tables hold plain data that a panicking
/// holder cannot leave half-updated, and refusing service would be worse.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Handle number → open object. Numbers start at 1 and are never reused within a mount,
/// so a late request on a released handle fails with `EBADF` instead of reading another file.
#[derive(Debug)]
pub struct HandleTable<T> {
    open: HashMap<u64, T>,
    next: u64,
}

impl<T> Default for HandleTable<T> {
    fn default() -> Self {
        Self { open: HashMap::new(), next: 1 }
    }
}

impl<T: Clone> HandleTable<T> {
    /// Stores `value` under a fresh handle number.
    pub fn insert(&mut self, value: T) -> u64 {
        let fh = self.next;
        self.next += 1;
        self.open.insert(fh, value);
        fh
    }

    /// The object behind `fh`, if still open.
    pub fn get(&self, fh: u64) -> Option<T> {
        self.open.get(&fh).cloned()
    }

    /// Closes `fh`; returns whether it was open.
    pub fn remove(&mut self, fh: u64) -> bool {
        self.open.remove(&fh).is_some()
    }
}

/// An open file: the namespace's file object, shared with in-flight read tasks.
pub type OpenFile = Arc<dyn VirtualFile>;

/// An open directory: the listing taken at `opendir`, so that the kernel's successive
/// `readdir` calls (by offset) see one consistent snapshot and cost one `list`.
#[derive(Debug)]
pub struct DirSnapshot {
    pub ino: u64,
    pub parent_ino: u64,
    /// Entries with the inode each was given.
    pub entries: Vec<(u64, DirEntry)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_unique_and_not_reused() {
        let mut table = HandleTable::default();
        let a = table.insert("a");
        let b = table.insert("b");
        assert_ne!(a, b);
        assert_eq!(table.get(a), Some("a"));
        assert!(table.remove(a));
        assert!(!table.remove(a));
        assert_eq!(table.get(a), None);
        let c = table.insert("c");
        assert!(c > b);
        assert_eq!(table.get(b), Some("b"));
    }
}
