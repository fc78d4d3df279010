use std::ops::Range;
use std::sync::Mutex;

use futures::future::{BoxFuture, FutureExt};

use super::*;
use crate::plan::OutType;
use crate::source::SourceModel;
use crate::vfile::SourceReader;

const REPO: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";

/// The fixture's shards from disk, recording every range asked.
struct LocalShards {
    shards: Vec<Vec<u8>>,
    calls: Mutex<Vec<Range<u64>>>,
}

impl SourceReader for LocalShards {
    fn read(&self, shard: usize, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, SourceReadError>> {
        async move {
            self.calls.lock().unwrap().push(range.clone());
            let data = self.shards.get(shard).and_then(|s| s.get(range.start as usize..range.end as usize));
            data.map(Bytes::copy_from_slice).ok_or_else(|| SourceReadError::Io("out of range".into()))
        }
        .boxed()
    }
}

fn open(outtype: OutType) -> (Arc<GgufFile>, Arc<LocalShards>) {
    let source: SourceModel = crate::testutil::fixture_source(REPO);
    let dir = crate::testutil::fixture_dir(REPO);
    let shards = source.shards.iter().map(|s| std::fs::read(dir.join(&s.path)).unwrap()).collect();
    let reader = Arc::new(LocalShards { shards, calls: Mutex::new(Vec::new()) });
    let layout = crate::plan::layout::build(&source, outtype).unwrap();
    let file = GgufFile::new(Arc::new(layout), Arc::new(source), reader.clone());
    (Arc::new(file), reader)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn a_sequential_read_equals_the_file_and_goes_through_prefetched_chunks() {
    let rt = runtime();
    let (file, shards) = open(OutType::F32);
    assert!(file.size() > 2 * CHUNK_SIZE, "the fixture must span several chunks");
    let expected = rt.block_on(file.read_range(0, file.size())).unwrap();
    shards.calls.lock().unwrap().clear();
    let memory = Arc::new(MemoryCache::new(256 << 20));
    // Chunks are left behind one chunk back (a mount waits `LEFT_BEHIND`, more than this file).
    let limits = StreamLimits { initial: INITIAL_WINDOW, max: MAX_WINDOW, left_behind: CHUNK_SIZE };
    let pf = PrefetchingFile::with_limits(file.clone(), memory.clone(), limits);
    let mut got = Vec::new();
    rt.block_on(async {
        let mut off = 0;
        while off < pf.size() {
            let b = pf.read(off, 128 << 10).await.unwrap();
            got.extend_from_slice(&b);
            off += b.len() as u64;
        }
    });
    assert!(got == expected[..], "prefetched bytes differ from the file");
    // Chunks the stream has left behind are gone; at most the last two (one within
    // `left_behind`, one the stream is in) are held.
    assert!(memory.used_bytes() <= 2 * CHUNK_SIZE, "held {} bytes", memory.used_bytes());
    let last = pf.size() - 4096;
    let calls = shards.calls.lock().unwrap().len();
    let again = rt.block_on(pf.read(last, 4096)).unwrap();
    assert_eq!(again[..], expected[last as usize..]);
    assert_eq!(shards.calls.lock().unwrap().len(), calls, "a read of held chunks fetches nothing");
    // A reader coming back to a retired chunk gets the right bytes from the source again.
    let early = rt.block_on(pf.read(CHUNK_SIZE, 4096)).unwrap();
    assert_eq!(early[..], expected[CHUNK_SIZE as usize..CHUNK_SIZE as usize + 4096]);
}

#[test]
fn a_sequential_stream_keeps_the_chunks_ahead_of_it() {
    let rt = runtime();
    let (file, _) = open(OutType::F32);
    let memory = Arc::new(MemoryCache::new(256 << 20));
    let pf = PrefetchingFile::new(file.clone(), memory.clone());
    rt.block_on(async {
        for i in 0..4 {
            pf.read(i * (128 << 10), 128 << 10).await.unwrap();
        }
        // Let the prefetched chunks land.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    });
    assert!(memory.get(&pf.key(0)).is_some(), "the chunk being read is held");
    assert!(memory.used_bytes() >= CHUNK_SIZE, "held {} bytes", memory.used_bytes());
}

#[test]
fn a_random_read_fetches_only_what_covers_it() {
    let rt = runtime();
    let (file, shards) = open(OutType::F16);
    let memory = Arc::new(MemoryCache::new(256 << 20));
    let pf = PrefetchingFile::new(file.clone(), memory.clone());
    let offset = file.size() / 2;
    let got = rt.block_on(pf.read(offset, 1000)).unwrap();
    assert_eq!(got, rt.block_on(file.read_range(offset, 1000)).unwrap());
    let calls = shards.calls.lock().unwrap();
    let fetched: u64 = calls.iter().map(|r| r.end - r.start).sum();
    // The first call's bytes only (the second list entry is the comparison read above).
    assert!(fetched / 2 < 64 << 10, "fetched {fetched} bytes for a 1000-byte random read");
    assert_eq!(memory.used_bytes(), 0, "no chunk produced for a random read");
}
