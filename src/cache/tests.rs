use std::sync::Arc;

use super::*;

const SHA: &str = "cd00000000000000000000000000000000000000000000000000000000000002";

#[test]
fn a_stored_block_reads_back_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let c = DiskCache::open_with_block_size(dir.path(), u64::MAX, 16).unwrap();
    c.put(SHA, 3, b"0123456789abcdef").unwrap();
    assert!(matches!(c.get(SHA, 3, 16), Lookup::Hit(b) if b.as_ref() == b"0123456789abcdef"));
    assert!(matches!(c.get(SHA, 4, 16), Lookup::Miss));
    let reopened = DiskCache::open_with_block_size(dir.path(), u64::MAX, 16).unwrap();
    assert_eq!(reopened.used_bytes(), block::file_len(16) as u64);
    assert!(matches!(reopened.get(SHA, 3, 16), Lookup::Hit(_)));
}

#[test]
fn a_block_of_the_wrong_length_is_corrupt_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let c = DiskCache::open_with_block_size(dir.path(), u64::MAX, 16).unwrap();
    c.put(SHA, 0, b"short").unwrap();
    assert!(matches!(c.get(SHA, 0, 16), Lookup::Corrupt(_)));
    assert!(!c.block_path(SHA, 0).exists());
    // Too long by a byte (read, not mapped), and right-sized with a flipped byte (mapped).
    c.put(SHA, 1, b"0123456789abcdef").unwrap();
    let mut grown = std::fs::read(c.block_path(SHA, 1)).unwrap();
    grown.push(0);
    std::fs::write(c.block_path(SHA, 1), &grown).unwrap();
    assert!(matches!(c.get(SHA, 1, 16), Lookup::Corrupt(r) if r.contains("bytes, expected")));
    c.put(SHA, 2, b"0123456789abcdef").unwrap();
    let mut flipped = std::fs::read(c.block_path(SHA, 2)).unwrap();
    *flipped.last_mut().unwrap() ^= 1;
    std::fs::write(c.block_path(SHA, 2), &flipped).unwrap();
    assert!(matches!(c.get(SHA, 2, 16), Lookup::Corrupt(r) if r.contains("checksum")));
}

#[test]
fn block_sizes_do_not_share_files() {
    let dir = tempfile::tempdir().unwrap();
    let a = DiskCache::open_with_block_size(dir.path(), u64::MAX, 16).unwrap();
    let b = DiskCache::open_with_block_size(dir.path(), u64::MAX, 32).unwrap();
    assert_ne!(a.block_path(SHA, 0), b.block_path(SHA, 0));
    assert!(matches!(DiskCache::open_with_block_size(dir.path(), 1, 0), Err(CacheError::BadBlockSize(0))));
}

#[test]
fn malformed_keys_are_never_used_as_paths() {
    assert!(content_key(SHA).is_some());
    for bad in ["", "../x", &"A".repeat(64), &"a".repeat(63), &format!("{}/", &"a".repeat(63))] {
        assert!(content_key(bad).is_none(), "{bad}");
    }
    let dir = tempfile::tempdir().unwrap();
    let c = DiskCache::open_with_block_size(dir.path(), u64::MAX, 16).unwrap();
    c.put("../../escape", 0, b"x").unwrap();
    assert_eq!(c.used_bytes(), 0);
}

#[test]
fn two_caches_on_one_directory_share_blocks_and_stay_under_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let cap = 3 * block::file_len(16) as u64;
    let a = Arc::new(DiskCache::open_with_block_size(dir.path(), cap, 16).unwrap());
    let b = Arc::new(DiskCache::open_with_block_size(dir.path(), cap, 16).unwrap());
    let writers: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(k, c)| {
            std::thread::spawn(move || (0..40u64).for_each(|i| c.put(SHA, i * 2 + k as u64, &[k as u8; 16]).unwrap()))
        })
        .collect();
    writers.into_iter().for_each(|w| w.join().unwrap());
    a.refresh_usage();
    a.evict();
    let on_disk = a.scan();
    assert!(on_disk.iter().map(|f| f.size).sum::<u64>() <= cap);
    assert!(!on_disk.is_empty());
    for f in on_disk {
        let name = f.path.file_name().unwrap().to_str().unwrap().to_string();
        let i: u64 = name.parse().unwrap();
        assert!(matches!(b.get(SHA, i, 16), Lookup::Hit(d) if d.as_ref() == [(i % 2) as u8; 16]));
    }
}

#[test]
fn default_dir_ends_in_ggufs() {
    // The environment is not modified here (tests run in parallel); whatever it holds,
    // the answer is `<base>/ggufs` or a clear error.
    match default_dir() {
        Ok(p) => assert!(p.ends_with("ggufs") && p.is_absolute() || p.ends_with(".cache/ggufs"), "{}", p.display()),
        Err(e) => assert!(matches!(e, CacheError::NoDefaultDir)),
    }
}
