//! The prefetcher through a real mount: a sequential read makes fewer, larger source requests
//! than reading the same file piece by piece, and keeps several of them in flight at once.

mod support;

use std::io::Read;
use std::sync::Arc;

use ggufs::plan::OutType;
use ggufs_fakehub::{FaultAction, FaultRule, LogEntry};
use support::mount::Mounted;
use support::*;

const REPO: &str = "Qwen/Qwen2.5-0.5B-Instruct";
const READ: usize = 128 << 10;

fn data_requests(log: &[LogEntry]) -> Vec<&LogEntry> {
    log.iter().filter(|e| e.listener == "cdn" && e.range.is_some()).collect()
}

fn range_len(e: &LogEntry) -> u64 {
    let spec = e.range.as_deref().and_then(|r| r.strip_prefix("bytes=")).expect("ranged request");
    let (a, b) = spec.split_once('-').unwrap();
    b.parse::<u64>().unwrap() - a.parse::<u64>().unwrap() + 1
}

/// The most requests that were in flight at the same moment.
fn max_overlap(entries: &[&LogEntry]) -> usize {
    let mut edges: Vec<(f64, i32)> = entries.iter().flat_map(|e| [(e.start_ms, 1), (e.end_ms, -1)]).collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

/// Source requests of the engine read piece by piece, `READ` bytes at a time (no prefetch).
fn piecewise_requests(hub: &ggufs_fakehub::FakeHub) -> usize {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let file = rt.block_on(async {
        let client = Arc::new(client(hub));
        ggufs::remote::open_file(client, REPO, "main", OutType::F32).await.unwrap()
    });
    hub.take_log();
    rt.block_on(async {
        let mut off = 0;
        while off < file.size() {
            off += file.read_range(off, READ as u64).await.unwrap().len() as u64;
        }
    });
    data_requests(&hub.take_log()).len()
}

#[test]
fn a_sequential_read_through_the_mount_makes_fewer_larger_overlapping_requests() {
    let hub = start_hub();
    let baseline = piecewise_requests(&hub);
    let m = Mounted::new(&hub, &[]);
    let path = m.file(REPO, "F32");
    let size = std::fs::metadata(&path).unwrap().len();
    hub.take_log();
    // Every data response waits a little, as over a real network: overlap must show.
    let slow = FaultAction::SlowBody { sleep_ms: 40, bytes_per_sec: None };
    hub.set_faults(vec![FaultRule::new("/_cdn/", slow)]);
    let mut f = std::fs::File::open(&path).unwrap();
    let (mut bytes, mut buf) = (Vec::with_capacity(size as usize), vec![0u8; READ]);
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    hub.set_faults(Vec::new());
    assert_eq!(sha256_hex(&bytes), golden(REPO, "F32")["file"]["sha256"].as_str().unwrap());
    let log = hub.take_log();
    let data = data_requests(&log);
    let fetched: u64 = data.iter().map(|e| range_len(e)).sum();
    assert!(
        data.len() * 2 <= baseline,
        "{} requests through the mount vs {baseline} reading {READ} bytes at a time",
        data.len()
    );
    assert!(fetched / data.len() as u64 >= 2 * (fetched / baseline as u64), "requests are not larger");
    let overlap = max_overlap(&data);
    assert!(overlap >= 3, "at most {overlap} requests were in flight at once");
}
