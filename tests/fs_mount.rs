//! Real kernel mounts of an in-memory namespace (needs root and /dev/fuse).

mod support;

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ggufs::fs::{is_stale_mount, mount, FsError, MountOptions, UnmountOutcome};
use sha2::{Digest, Sha256};
use support::mem_ns::*;

const LIMIT: Duration = Duration::from_secs(60);

fn errno(err: &std::io::Error) -> i32 {
    err.raw_os_error().unwrap_or(0)
}

#[test]
fn stat_and_listing_show_exact_sizes_and_modes() {
    let _dog = Watchdog::start("stat", LIMIT);
    let m = TestMount::new();
    let root: Vec<_> = std::fs::read_dir(m.dir.path())
        .expect("readdir root")
        .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
        .collect();
    assert_eq!(root, vec!["org"]);

    let mut names: Vec<_> = std::fs::read_dir(m.path(REPO))
        .expect("readdir repo")
        .map(|e| {
            let e = e.expect("entry");
            let meta = e.metadata().expect("entry metadata");
            (e.file_name().into_string().expect("utf8"), meta.len())
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 5);
    assert!(names.contains(&("file.gguf".to_owned(), MODEL_SIZE as u64)));

    let meta = std::fs::metadata(m.path(MODEL)).expect("stat file");
    assert!(meta.is_file());
    assert_eq!(meta.len(), MODEL_SIZE as u64);
    assert_eq!(meta.permissions().mode() & 0o7777, 0o444);
    // SAFETY: geteuid cannot fail.
    assert_eq!(meta.uid(), unsafe { libc::geteuid() });
    assert_eq!(meta.blocks(), (MODEL_SIZE as u64).div_ceil(512));

    // Readahead: INIT gives at most the kernel's offer; as root the rest comes via sysfs.
    let handle = m.handle.as_ref().expect("handle");
    assert!(handle.negotiated_readahead() >= 4096);
    let dev = std::fs::metadata(m.dir.path()).expect("stat root").dev();
    let sysfs = format!("/sys/class/bdi/{}:{}/read_ahead_kb", libc::major(dev), libc::minor(dev));
    let kib: u32 = std::fs::read_to_string(&sysfs).expect("read_ahead_kb").trim().parse().expect("number");
    assert_eq!(kib, MountOptions::default().max_readahead / 1024, "{sysfs}");

    let dir = std::fs::metadata(m.path(REPO)).expect("stat dir");
    assert!(dir.is_dir());
    assert_eq!(dir.permissions().mode() & 0o7777, 0o555);
    // Inode numbers are stable across lookups.
    assert_eq!(std::fs::metadata(m.path(MODEL)).expect("stat").ino(), meta.ino());
}

#[test]
fn whole_file_reads_and_copies_match_the_content() {
    let _dog = Watchdog::start("whole_file", LIMIT);
    let m = TestMount::new();
    let expected = m.ns.content(MODEL);
    let got = std::fs::read(m.path(MODEL)).expect("read");
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "content differs");

    // `cp` then `cmp`, like a user would.
    let out = tempfile::tempdir().expect("tempdir");
    let copy = out.path().join("copy.gguf");
    let status = std::process::Command::new("cp").arg(m.path(MODEL)).arg(&copy).status().expect("cp");
    assert!(status.success());
    assert!(std::fs::read(&copy).expect("read copy") == expected);

    // Odd-sized sequential reads through a small buffer.
    let mut file = File::open(m.path(SECOND)).expect("open");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4093];
    loop {
        let n = file.read(&mut chunk).expect("read chunk");
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(buf == m.ns.content(SECOND));
}

#[test]
fn shared_populated_mmap_has_the_right_sha256() {
    let _dog = Watchdog::start("mmap", LIMIT);
    let m = TestMount::new();
    let file = File::open(m.path(MODEL)).expect("open");
    let mapped = map_shared(&file, MODEL_SIZE);
    let digest = Sha256::digest(mapped.bytes());
    assert_eq!(digest, Sha256::digest(m.ns.content(MODEL)));
}

#[test]
fn concurrent_random_preads_return_the_right_bytes() {
    let _dog = Watchdog::start("pread", LIMIT);
    let m = TestMount::new();
    let expected = m.ns.content(MODEL);
    let shared = Arc::new(File::open(m.path(MODEL)).expect("open"));
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let expected = expected.clone();
            // Half the threads share one fd (like mmap faults), half open their own.
            let file = if t % 2 == 0 { shared.clone() } else { Arc::new(File::open(m.path(MODEL)).expect("open")) };
            std::thread::spawn(move || {
                let randoms = pseudo_random(16 * 200, 100 + t);
                for pair in randoms.chunks_exact(16) {
                    let a = u64::from_le_bytes(pair[..8].try_into().expect("8"));
                    let b = u64::from_le_bytes(pair[8..].try_into().expect("8"));
                    let offset = (a % MODEL_SIZE as u64) as usize;
                    let len = 1 + (b % (300 * 1024)) as usize;
                    let len = len.min(MODEL_SIZE - offset);
                    let mut buf = vec![0u8; len];
                    file.read_exact_at(&mut buf, offset as u64).expect("pread");
                    assert!(buf[..] == expected[offset..offset + len], "bytes at {offset}+{len}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("reader thread");
    }
}

#[test]
fn errors_map_to_errno_and_the_daemon_keeps_serving() {
    let _dog = Watchdog::start("errors", LIMIT);
    let m = TestMount::new();
    let mut buf = [0u8; 100];

    let broken = File::open(m.path(BROKEN)).expect("open broken");
    let err = broken.read_at(&mut buf, 0).expect_err("read must fail");
    assert_eq!(errno(&err), libc::EIO);

    let panicky = File::open(m.path(PANICKY)).expect("open panicky");
    let err = panicky.read_at(&mut buf, 0).expect_err("read must fail");
    assert_eq!(errno(&err), libc::EIO, "a handler panic is EIO");

    let err = File::open(m.path(MISSING)).expect_err("missing");
    assert_eq!(errno(&err), libc::ENOENT);
    let err = std::fs::metadata(m.path("nope/deeper")).expect_err("missing dir");
    assert_eq!(errno(&err), libc::ENOENT);

    let err = std::fs::metadata(m.path(GATED)).expect_err("gated");
    assert_eq!(errno(&err), libc::EACCES);

    let err = OpenOptions::new().write(true).open(m.path(MODEL)).expect_err("write open");
    assert!([libc::EROFS, libc::EACCES].contains(&errno(&err)), "{err}");
    let err = File::create(m.path("org/repo/new.gguf")).expect_err("create");
    assert!([libc::EROFS, libc::EACCES].contains(&errno(&err)), "{err}");

    // Still alive and correct.
    let got = std::fs::read(m.path(SECOND)).expect("read after errors");
    assert!(got == m.ns.content(SECOND));
    assert!(m.handle.as_ref().expect("handle").is_running());
}

#[test]
fn unmount_while_mapped_does_not_hang_and_remount_works() {
    let _dog = Watchdog::start("unmount_mapped", LIMIT);
    let mut m = TestMount::new();
    let expected = m.ns.content(MODEL);
    let file = File::open(m.path(MODEL)).expect("open");
    let mapped = map_shared(&file, MODEL_SIZE);
    drop(file);

    let handle = m.handle.take().expect("handle");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(handle.unmount());
    });
    let outcome = rx.recv_timeout(Duration::from_secs(20)).expect("unmount must not hang").expect("unmount");
    assert_eq!(outcome, UnmountOutcome::Detached);
    // The mapping keeps working: its pages are resident, and the detached daemon still
    // serves it if they were evicted.
    assert!(mapped.bytes() == &expected[..]);
    drop(mapped);

    let handle = mount(m.ns.clone(), m.dir.path(), MountOptions::default()).expect("remount");
    let got = std::fs::read(m.path(SECOND)).expect("read after remount");
    assert!(got == m.ns.content(SECOND));
    assert_eq!(handle.unmount().expect("unmount"), UnmountOutcome::Clean);
}

#[test]
fn slow_reads_of_one_file_do_not_block_other_files() {
    let _dog = Watchdog::start("slow", LIMIT);
    let m = TestMount::new();
    let slow_path = m.path(SLOW);
    let slow_reader = std::thread::spawn(move || std::fs::read(slow_path));

    let started = Instant::now();
    while m.ns.stats.slow_in_flight.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "slow read never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let begin = Instant::now();
    let got = std::fs::read(m.path(MODEL)).expect("fast read");
    let _ = std::fs::read_dir(m.path(REPO)).expect("ls").count();
    let fast_took = begin.elapsed();
    assert!(got == m.ns.content(MODEL));
    assert!(
        m.ns.stats.slow_in_flight.load(Ordering::SeqCst) > 0,
        "slow read must still be in flight, else the test proves nothing"
    );
    assert!(fast_took < SLOW_DELAY / 2, "fast read took {fast_took:?}");

    let slow = slow_reader.join().expect("slow thread").expect("slow read");
    assert!(slow == m.ns.content(SLOW));
}

#[test]
fn stale_mount_is_refused_then_cleared_with_force() {
    let _dog = Watchdog::start("stale", LIMIT);
    let dir = tempfile::tempdir().expect("tempdir");
    make_stale_mount(dir.path());
    assert!(is_stale_mount(dir.path()));

    let ns = MemNamespace::new();
    let err = mount(ns.clone(), dir.path(), MountOptions::default()).expect_err("stale");
    assert!(matches!(err, FsError::StaleMount(_)), "{err}");

    let opts = MountOptions { force: true, ..MountOptions::default() };
    let handle = mount(ns.clone(), dir.path(), opts).expect("forced mount");
    assert!(!is_stale_mount(dir.path()));
    let got = std::fs::read(dir.path().join(SECOND)).expect("read");
    assert!(got == ns.content(SECOND));

    let err = mount(ns, dir.path(), MountOptions::default()).expect_err("double mount");
    assert!(matches!(err, FsError::AlreadyMounted(_)), "{err}");
    assert_eq!(handle.unmount().expect("unmount"), UnmountOutcome::Clean);
}

#[test]
fn external_unmount_ends_the_session() {
    let _dog = Watchdog::start("external", LIMIT);
    let m = TestMount::new();
    assert_eq!(ggufs::fs::unmount(m.dir.path()).expect("unmount"), UnmountOutcome::Clean);
    let handle = m.handle.as_ref().expect("handle");
    let started = Instant::now();
    while handle.is_running() {
        assert!(started.elapsed() < Duration::from_secs(10), "session still running");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A read-only shared mapping, populated up front like llama.cpp does.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes for as long as `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map_shared` mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

fn map_shared(file: &File, len: usize) -> Mapping {
    // SAFETY: mapping a valid fd read-only; the result is checked below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
    Mapping { ptr, len }
}

/// A FUSE mount whose daemon is gone: mount with a fresh /dev/fuse fd, then close it.
fn make_stale_mount(path: &std::path::Path) {
    let dev = File::options().read(true).write(true).open("/dev/fuse").expect("open /dev/fuse");
    let target = CString::new(path.as_os_str().as_bytes()).expect("path");
    let data = CString::new(format!("fd={},rootmode=40000,user_id=0,group_id=0", dev.as_raw_fd())).expect("data");
    // SAFETY: all pointers are valid C strings for the duration of the call.
    let rc = unsafe {
        libc::mount(
            c"stale-test".as_ptr(),
            target.as_ptr(),
            c"fuse.stale".as_ptr(),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr() as *const libc::c_void,
        )
    };
    assert_eq!(rc, 0, "mount: {}", std::io::Error::last_os_error());
    drop(dev);
}
