//! The Hub client and `fetch_source` against the fake Hub over the shared fixtures.

mod support;

use ggufs::hub::HubError;
use ggufs::source::fetch_source;
use ggufs_fakehub::{FaultAction, FaultRule, LogEntry};
use sha2::{Digest, Sha256};
use support::*;

const SMOL: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";
const MISTRAL: &str = "mistralai/Mistral-7B-Instruct-v0.3";

#[tokio::test]
async fn fetch_source_describes_every_fixture_exactly() {
    let hub = start_hub();
    let client = client(&hub);
    for repo in FIXTURES {
        let model = fetch_source(&client, repo, "main").await.unwrap_or_else(|e| panic!("{repo}: {e}"));
        assert_eq!(model.commit, fake_commit(repo), "{repo}");
        let shards = fixture_shards(repo);
        let paths: Vec<&str> = model.shards.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, shards, "{repo}");
        let mut expected = Vec::new();
        for (i, shard) in shards.iter().enumerate() {
            let file = fixture_dir(repo).join(shard);
            let bytes = std::fs::read(&file).unwrap();
            assert_eq!(model.shards[i].size, bytes.len() as u64);
            assert_eq!(model.shards[i].sha256.as_deref(), Some(hex::encode(Sha256::digest(&bytes)).as_str()));
            for t in raw_tensors(&file) {
                match expected.iter().position(|(n, _, _): &(String, usize, RawTensor)| *n == t.name) {
                    Some(p) => expected[p] = (t.name.clone(), i, t),
                    None => expected.push((t.name.clone(), i, t)),
                }
            }
        }
        let got: Vec<(String, usize, RawTensor)> = model
            .tensors
            .iter()
            .map(|t| {
                let raw = RawTensor {
                    name: t.name.clone(),
                    dtype: t.dtype.name().into(),
                    shape: t.shape.clone(),
                    start: t.start,
                    len: t.len,
                };
                (t.name.clone(), t.shard, raw)
            })
            .collect();
        assert_eq!(got, expected, "{repo}");
        let config = std::fs::read(fixture_dir(repo).join("config.json")).unwrap();
        assert_eq!(model.files.get("config.json"), Some(config.as_slice()), "{repo}");
        assert!(!model.files.contains(".gitattributes") && !model.files.paths().any(|p| p.ends_with(".safetensors")));
    }
}

#[tokio::test]
async fn metadata_files_are_the_reference_remote_set() {
    let hub = start_hub();
    let model = fetch_source(&client(&hub), "microsoft/Phi-3.5-mini-instruct", "main").await.unwrap();
    let files: Vec<&str> = model.files.paths().collect();
    let expected = [
        "CODE_OF_CONDUCT.md",
        "LICENSE",
        "NOTICE.md",
        "README.md",
        "SECURITY.md",
        "added_tokens.json",
        "config.json",
        "generation_config.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer.model",
        "tokenizer_config.json",
    ];
    assert_eq!(files, expected);
}

fn cdn_shard_requests(log: &[LogEntry]) -> Vec<&LogEntry> {
    log.iter().filter(|e| e.listener == "cdn" && e.path.contains(".safetensors")).collect()
}

#[tokio::test]
async fn sharded_headers_are_read_concurrently_with_few_requests() {
    let hub = start_hub();
    let client = client(&hub);
    hub.set_faults(vec![FaultRule::new(
        "/_cdn/mistralai/Mistral-7B-Instruct-v0.3/",
        FaultAction::SleepBeforeHeaders { ms: 400 },
    )]);
    let model = fetch_source(&client, MISTRAL, "main").await.unwrap();
    assert_eq!(model.shards.len(), 2);
    let log = hub.take_log();
    let shard_reads = cdn_shard_requests(&log);
    assert_eq!(shard_reads.len(), 2, "one header request per shard: {shard_reads:#?}");
    let (a, b) = (shard_reads[0], shard_reads[1]);
    // Each answer is held back 400 ms, so a second request arriving sooner than that after the
    // first proves both were in flight together.
    assert!((a.start_ms - b.start_ms).abs() < 300.0, "shard header reads were sequential: {a:?} {b:?}");
    assert!(shard_reads.iter().all(|e| e.range.as_deref() == Some("bytes=0-99999")));
    // revision + tree + one GET per small file + 2 resolves + 2 CDN reads, nothing else.
    let small = model.files.paths().count();
    assert_eq!(log.len(), 2 + small + 4, "{log:#?}");
}

#[tokio::test]
async fn tree_pagination_is_followed() {
    let hub = start_hub();
    let client = client(&hub);
    let sha = fake_commit(MISTRAL);
    let all = client.list_files(MISTRAL, &sha).await.unwrap();
    hub.take_log();
    hub.set_page_size(3);
    assert_eq!(client.list_files(MISTRAL, &sha).await.unwrap(), all);
    let pages = hub.take_log().iter().filter(|e| e.path.contains("/tree/")).count();
    assert_eq!(pages, all.len().div_ceil(3));
    assert!(all.iter().any(|f| f.path == "model-00001-of-00002.safetensors" && f.lfs_sha256.is_some()));
    assert!(all.iter().any(|f| f.path == "config.json" && f.lfs_sha256.is_none()));
}

#[tokio::test]
async fn hub_errors_map_to_distinct_variants() {
    let hub = start_hub();
    let c = client(&hub);
    let e = c.resolve_revision("nobody/nothing", "main").await.unwrap_err();
    assert!(matches!(e, HubError::RepoNotFound { .. }), "{e}");
    let e = c.resolve_revision(SMOL, "no-such-branch").await.unwrap_err();
    assert!(matches!(e, HubError::RevisionNotFound { .. }), "{e}");
    let e = c.fetch_small(SMOL, &fake_commit(SMOL), "nope.json").await.unwrap_err();
    assert!(matches!(&e, HubError::EntryNotFound { path, .. } if path == "nope.json"), "{e}");
    assert!(e.to_string().contains(SMOL) && e.to_string().contains("nope.json"));
    let e = fetch_source(&c, "nobody/nothing", "main").await.unwrap_err();
    assert!(e.to_string().contains("nobody/nothing"), "{e}");
    // Short sha prefixes are accepted revisions.
    assert_eq!(c.resolve_revision(SMOL, &fake_commit(SMOL)[..7]).await.unwrap(), fake_commit(SMOL));
}

#[tokio::test]
async fn gated_and_disabled_repos() {
    let flags = serde_json::json!({"gated": "manual", "accepted_tokens": ["hf_good"]});
    let tmp = repo_copy_with_flags(SMOL, "acme/gated", &flags);
    std::fs::create_dir_all(tmp.path().join("acme/off")).unwrap();
    std::fs::copy(fixture_dir(SMOL).join("config.json"), tmp.path().join("acme/off/config.json")).unwrap();
    std::fs::write(tmp.path().join("acme/off/.fakehub.json"), r#"{"disabled": true}"#).unwrap();
    let hub = start_hub_at(tmp.path());
    let e = client(&hub).resolve_revision("acme/gated", "main").await.unwrap_err();
    assert!(matches!(e, HubError::GatedRepo { .. }), "{e}");
    let e = client_with_token(&hub, "hf_bad").resolve_revision("acme/gated", "main").await.unwrap_err();
    assert!(matches!(e, HubError::GatedRepo { .. }), "{e}");
    let good = client_with_token(&hub, "hf_good");
    let sha = good.resolve_revision("acme/gated", "main").await.unwrap();
    assert_eq!(sha, fake_commit("acme/gated"));
    let files = good.list_files("acme/gated", &sha).await.unwrap();
    assert!(!files.iter().any(|f| f.path == ".fakehub.json"), "flags file must not be listed");
    let e = client(&hub).resolve_revision("acme/off", "main").await.unwrap_err();
    assert!(matches!(e, HubError::Disabled { .. }), "{e}");
}

#[test]
fn token_never_reaches_the_cdn_or_the_logs() {
    const TOKEN: &str = "hf_SuperSecretToken123";
    let hub = start_hub();
    hub.set_faults(vec![FaultRule::new("/_cdn/", FaultAction::CdnRejectAuth)]);
    let client = client_with_token(&hub, TOKEN);
    let ((), text) = support::with_captured_logs(tracing::Level::TRACE, async {
        tracing::debug!(config = ?client.config(), "client config");
        fetch_source(&client, SMOL, "main").await.unwrap();
        let sha = fake_commit(SMOL);
        client.read_range(SMOL, &sha, "model.safetensors", 1000..5000).await.unwrap();
    });
    let log = hub.take_log();
    let cdn: Vec<&LogEntry> = log.iter().filter(|e| e.listener == "cdn").collect();
    assert!(!cdn.is_empty());
    assert!(cdn.iter().all(|e| !e.authorization), "token leaked to the CDN: {cdn:#?}");
    assert!(log.iter().filter(|e| e.listener == "hub").all(|e| e.authorization), "hub requests must carry the token");
    assert!(
        text.contains("GET") && text.contains("redacted"),
        "trace output missing: {}",
        &text[..text.len().min(500)]
    );
    assert!(!text.contains(TOKEN), "token appears in the logs");
}

fn file_bytes(repo: &str, path: &str) -> Vec<u8> {
    std::fs::read(fixture_dir(repo).join(path)).unwrap()
}

#[tokio::test]
async fn random_ranges_are_exact() {
    let hub = start_hub();
    let c = client(&hub);
    let sha = fake_commit(SMOL);
    for path in ["model.safetensors", "tokenizer.json"] {
        let data = file_bytes(SMOL, path);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..12 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let a = x % data.len() as u64;
            let b = (a + 1 + (x >> 20) % 300_000).min(data.len() as u64);
            let got = c.read_range(SMOL, &sha, path, a..b).await.unwrap();
            assert_eq!(&got[..], &data[a as usize..b as usize], "{path} {a}..{b}");
        }
        let n = data.len() as u64;
        assert_eq!(c.read_range(SMOL, &sha, path, n - 1..n).await.unwrap()[..], data[data.len() - 1..]);
        assert!(c.read_range(SMOL, &sha, path, 5..5).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn ignored_range_is_sliced_from_the_whole_file() {
    let hub = start_hub();
    let c = client(&hub);
    let data = file_bytes(SMOL, "model.safetensors");
    hub.set_faults(vec![FaultRule::new("/_cdn/", FaultAction::IgnoreRange).times(1)]);
    let got = c.read_range(SMOL, &fake_commit(SMOL), "model.safetensors", 100..200).await.unwrap();
    assert_eq!(&got[..], &data[100..200]);
    assert!(hub.take_log().iter().any(|e| e.listener == "cdn" && e.status == 200));
}

#[tokio::test]
async fn wrong_content_range_is_an_error() {
    let hub = start_hub();
    hub.set_faults(vec![FaultRule::new("/_cdn/", FaultAction::WrongContentRange { shift: 1, total_delta: 0 })]);
    let e = client(&hub).read_range(SMOL, &fake_commit(SMOL), "model.safetensors", 100..200).await.unwrap_err();
    assert!(matches!(e, HubError::BadResponse { .. }), "{e}");
}

#[tokio::test]
async fn short_body_is_resumed_to_the_right_bytes() {
    let hub = start_hub();
    let data = file_bytes(SMOL, "model.safetensors");
    hub.set_faults(vec![FaultRule::new("/_cdn/", FaultAction::ShortBody { after_bytes: 3000 }).times(1)]);
    let got = client(&hub).read_range(SMOL, &fake_commit(SMOL), "model.safetensors", 0..100_000).await.unwrap();
    assert_eq!(&got[..], &data[..100_000]);
    let cdn: Vec<LogEntry> = hub.take_log().into_iter().filter(|e| e.listener == "cdn").collect();
    assert_eq!(cdn.len(), 2, "{cdn:#?}");
    assert_eq!(cdn[1].range.as_deref(), Some("bytes=3000-99999"));
}

#[tokio::test]
async fn reset_mid_body_resumes_from_the_byte_reached() {
    let hub = start_hub();
    let data = file_bytes(SMOL, "model.safetensors");
    hub.set_faults(vec![FaultRule::new("/_cdn/", FaultAction::ResetMidBody { after_bytes: 200_000 }).times(1)]);
    let got = client(&hub).read_range(SMOL, &fake_commit(SMOL), "model.safetensors", 10..1_000_010).await.unwrap();
    assert_eq!(&got[..], &data[10..1_000_010]);
    let cdn: Vec<LogEntry> = hub.take_log().into_iter().filter(|e| e.listener == "cdn").collect();
    assert_eq!(cdn.len(), 2, "{cdn:#?}");
    let resumed_at: u64 =
        cdn[1].range.as_deref().unwrap()["bytes=".len()..].split('-').next().unwrap().parse().unwrap();
    assert!(resumed_at > 10 && resumed_at <= 200_010, "resumed at {resumed_at}");
}

#[tokio::test]
async fn rate_limit_is_retried() {
    let hub = start_hub();
    hub.set_faults(vec![FaultRule::new("/revision/", FaultAction::RateLimit { retry_after: 0 }).times(2)]);
    let sha = client(&hub).resolve_revision(SMOL, "main").await.unwrap();
    assert_eq!(sha, fake_commit(SMOL));
    let statuses: Vec<u16> = hub.take_log().iter().map(|e| e.status).collect();
    assert_eq!(statuses, [429, 429, 200]);
}

#[tokio::test]
async fn persistent_errors_are_not_retried_and_budgets_end() {
    let hub = start_hub();
    let c = client(&hub);
    hub.set_faults(vec![FaultRule::new(
        "/revision/",
        FaultAction::Status { code: 503, x_error_code: None, message: None, headers: Default::default() },
    )]);
    let e = c.resolve_revision(SMOL, "main").await.unwrap_err();
    assert!(matches!(e, HubError::Http { status: 503, .. }), "{e}");
    assert_eq!(hub.take_log().len(), 5, "1 try + 4 retries");
    hub.reset();
    c.resolve_revision(SMOL, "nope").await.unwrap_err();
    assert_eq!(hub.take_log().len(), 1, "a 404 is never retried");
}

#[tokio::test]
async fn stalled_body_times_out_and_resumes() {
    let hub = start_hub();
    let mut cfg = config(&hub);
    cfg.read_timeout = std::time::Duration::from_millis(300);
    let c = ggufs::hub::HubClient::new(cfg).unwrap();
    let data = file_bytes(SMOL, "model.safetensors");
    hub.set_faults(vec![
        FaultRule::new("/_cdn/", FaultAction::StallMidBody { after_bytes: 50_000, ms: 3_000 }).times(1)
    ]);
    let got = c.read_range(SMOL, &fake_commit(SMOL), "model.safetensors", 0..500_000).await.unwrap();
    assert_eq!(&got[..], &data[..500_000]);
    // A second CDN request (a resume) exists only if the 3 s stall was cut by the 300 ms timeout.
    let cdn: Vec<LogEntry> = hub.take_log().into_iter().filter(|e| e.listener == "cdn").collect();
    assert_eq!(cdn.len(), 2, "{cdn:#?}");
    assert_ne!(cdn[1].range.as_deref(), Some("bytes=0-499999"), "resume must not restart from 0");
}

#[tokio::test]
async fn range_past_the_end_is_an_error() {
    let hub = start_hub();
    let n = file_bytes(SMOL, "config.json").len() as u64;
    let e = client(&hub).read_range(SMOL, &fake_commit(SMOL), "config.json", n + 10..n + 20).await.unwrap_err();
    assert!(matches!(e, HubError::Http { status: 416, .. }), "{e}");
    // A range running past EOF is clamped by the server; the client must notice it is short.
    let e = client(&hub).read_range(SMOL, &fake_commit(SMOL), "config.json", n - 5..n + 5).await.unwrap_err();
    assert!(matches!(e, HubError::BadResponse { .. }), "{e}");
}

#[tokio::test]
async fn cdn_location_is_reused_and_refreshed_when_refused() {
    let hub = start_hub();
    let c = client(&hub);
    let sha = fake_commit(SMOL);
    let data = file_bytes(SMOL, "model.safetensors");
    c.read_range(SMOL, &sha, "model.safetensors", 0..10).await.unwrap();
    hub.take_log();
    c.read_range(SMOL, &sha, "model.safetensors", 10..20).await.unwrap();
    let log = hub.take_log();
    assert_eq!(log.len(), 1, "second read must go straight to the CDN: {log:#?}");
    assert_eq!(log[0].listener, "cdn");
    // An expired signed URL (403 from the CDN) makes the client resolve again.
    hub.set_faults(vec![FaultRule::new(
        "/_cdn/",
        FaultAction::Status {
            code: 403,
            x_error_code: None,
            message: Some("Request has expired".into()),
            headers: Default::default(),
        },
    )
    .times(1)]);
    let got = c.read_range(SMOL, &sha, "model.safetensors", 20..30).await.unwrap();
    assert_eq!(&got[..], &data[20..30]);
    let listeners: Vec<String> = hub.take_log().into_iter().map(|e| e.listener).collect();
    assert_eq!(listeners, ["cdn", "hub", "cdn"]);
}
