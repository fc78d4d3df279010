//! The HTTP core: one `reqwest` client without automatic redirects (so we decide where the token
//! goes), error classification, retry with backoff, and the metadata calls (revision, listing,
//! small files).

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, LOCATION, RANGE};
use reqwest::{Method, Response, Url};
use serde::Deserialize;
use tracing::{debug, warn};

use super::config::{HubConfig, RetryConfig};
use super::error::{HubError, Target};
pub(crate) use super::verify::{check_names, ContentDigest};

/// Largest file `fetch_small` holds in memory (gemma-3's tokenizer.json is 33 MB).
pub const SMALL_FILE_LIMIT: u64 = 64 << 20;
/// Redirect hops followed before giving up (loops, chains).
const MAX_REDIRECTS: usize = 5;
/// Largest error body read for its message.
const ERROR_BODY_LIMIT: usize = 16 << 10;

/// One file of a repo listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoFile {
    /// Path in the repo, `/`-separated.
    pub path: String,
    /// Real file size (the LFS object's size for LFS files).
    pub size: u64,
    /// LFS sha256 of the content, for LFS/Xet-stored files.
    pub lfs_sha256: Option<String>,
}

/// A thin async Hub client: pinned-commit reads, strict Range checks, retries, no token leaks.
#[derive(Clone)]
pub struct HubClient {
    pub(crate) cfg: HubConfig,
    pub(crate) http: reqwest::Client,
    endpoint_origin: reqwest::Url,
    /// Where each resolve URL last redirected (the signed CDN URL), so repeated range reads of a
    /// file skip the Hub round trip. Shared by clones.
    pub(crate) locations: super::range::LocationCache,
}

impl std::fmt::Debug for HubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubClient").field("cfg", &self.cfg).finish()
    }
}

impl HubClient {
    /// Builds the client. Fails only if the endpoint is not a URL or TLS cannot initialise.
    pub fn new(cfg: HubConfig) -> Result<Self, HubError> {
        let target = Target { repo: "-", revision: "-", path: &cfg.endpoint };
        let endpoint_origin = Url::parse(&format!("{}/", cfg.endpoint))
            .map_err(|e| target.invalid(format!("endpoint is not a URL: {e}")))?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(cfg.user_agent.clone())
            .connect_timeout(cfg.connect_timeout)
            .read_timeout(cfg.read_timeout)
            .build()
            .map_err(|e| target.transport(e))?;
        Ok(Self { cfg, http, endpoint_origin, locations: Default::default() })
    }

    /// The configuration in use.
    pub fn config(&self) -> &HubConfig {
        &self.cfg
    }

    /// Turns a branch, tag or sha into the 40-hex commit every later read is pinned to.
    pub async fn resolve_revision(&self, repo: &str, revision: &str) -> Result<String, HubError> {
        #[derive(Deserialize)]
        struct Info {
            sha: Option<String>,
        }
        let target = Target { repo, revision, path: "model info" };
        check_names(&target)?;
        let url = format!("{}/api/models/{repo}/revision/{}", self.cfg.endpoint, encode_segment(revision));
        // Parsing is part of the attempt: a garbled answer is retried like a failed one.
        self.retrying(&target, || async {
            let body = self.get_capped(&target, &url, SMALL_FILE_LIMIT, false).await?;
            let info: Info = serde_json::from_slice(&body).map_err(|e| target.bad(format!("model info JSON: {e}")))?;
            let sha = info.sha.ok_or_else(|| target.bad("model info has no sha"))?;
            if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(target.bad(format!("model info sha {sha:?} is not a 40-hex commit")));
            }
            Ok(sha.to_ascii_lowercase())
        })
        .await
    }

    /// Every file of the repo at `sha` (recursive tree listing, following `Link` pagination).
    pub async fn list_files(&self, repo: &str, sha: &str) -> Result<Vec<RepoFile>, HubError> {
        let target = Target { repo, revision: sha, path: "tree listing" };
        check_names(&target)?;
        let mut url =
            format!("{}/api/models/{repo}/tree/{}?recursive=true&expand=false", self.cfg.endpoint, encode_segment(sha));
        let mut files = Vec::new();
        for _page in 0..100_000 {
            let (entries, next) = self
                .retrying(&target, || async {
                    let (body, next) = self.get_page(&target, &url).await?;
                    let entries: Vec<TreeEntry> =
                        serde_json::from_slice(&body).map_err(|e| target.bad(format!("tree JSON: {e}")))?;
                    Ok((entries, next))
                })
                .await?;
            files.extend(entries.into_iter().filter(|e| e.kind == "file").map(|e| RepoFile {
                size: e.lfs.as_ref().map_or(e.size, |l| l.size.unwrap_or(e.size)),
                lfs_sha256: e.lfs.map(|l| l.oid),
                path: e.path,
            }));
            match next {
                Some(n) => url = n,
                None => {
                    files.sort_by(|a, b| a.path.cmp(&b.path));
                    return Ok(files);
                }
            }
        }
        Err(target.bad("tree pagination does not end"))
    }

    /// A whole (small) file at `sha`, refusing files over `SMALL_FILE_LIMIT`, verified against the
    /// digest the Hub announces for it (corrupt answers are retried, never returned).
    pub async fn fetch_small(&self, repo: &str, sha: &str, path: &str) -> Result<Bytes, HubError> {
        let target = Target { repo, revision: sha, path };
        check_names(&target)?;
        let url = self.resolve_url(repo, sha, path);
        self.retrying(&target, || self.get_capped(&target, &url, SMALL_FILE_LIMIT, true)).await
    }

    /// `{E}/{repo}/resolve/{sha}/{path}` with the path percent-encoded but its `/` kept.
    pub fn resolve_url(&self, repo: &str, sha: &str, path: &str) -> String {
        format!("{}/{repo}/resolve/{}/{}", self.cfg.endpoint, encode_segment(sha), encode_path(path))
    }

    /// GETs a whole response of at most `limit` bytes. With `verify`, the body must match the
    /// digest the Hub published for it (git blob sha1 in the `ETag`, or the LFS sha256 in
    /// `X-Linked-Etag`): a corrupted metadata file is never used.
    async fn get_capped(&self, target: &Target<'_>, url: &str, limit: u64, verify: bool) -> Result<Bytes, HubError> {
        let (resp, digest) = self.send(target, url, None).await?;
        let body = self.read_capped(target, resp, limit).await?;
        if let (true, Some(d)) = (verify, &digest) {
            d.verify(target, &body)?;
        }
        Ok(body)
    }

    async fn get_page(&self, target: &Target<'_>, url: &str) -> Result<(Bytes, Option<String>), HubError> {
        let (resp, _) = self.send(target, url, None).await?;
        let next = resp.headers().get("link").and_then(|v| v.to_str().ok()).and_then(next_link);
        Ok((self.read_capped(target, resp, SMALL_FILE_LIMIT).await?, next))
    }

    /// The whole body, refusing more than `limit` bytes and fewer than announced.
    async fn read_capped(&self, target: &Target<'_>, mut resp: Response, limit: u64) -> Result<Bytes, HubError> {
        if let Some(len) = resp.content_length().filter(|&l| l > limit) {
            return Err(too_large(target, len, limit));
        }
        let expected = resp.content_length();
        let mut body = BytesMut::new();
        while let Some(chunk) = self.next_chunk(target, &mut resp).await? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(too_large(target, (body.len() + chunk.len()) as u64, limit));
            }
            body.extend_from_slice(&chunk);
        }
        if let Some(exp) = expected.filter(|&e| e != body.len() as u64) {
            return Err(HubError::Truncated {
                repo: target.repo.into(),
                path: target.path.into(),
                received: body.len() as u64,
                expected: exp,
            });
        }
        Ok(body.freeze())
    }

    /// The next body chunk, or a `TimedOut` error when the server goes silent for longer than
    /// the read timeout (a stalled connection must not hold a reader forever).
    pub(crate) async fn next_chunk(&self, target: &Target<'_>, resp: &mut Response) -> Result<Option<Bytes>, HubError> {
        match tokio::time::timeout(self.cfg.read_timeout, resp.chunk()).await {
            Ok(chunk) => chunk.map_err(|e| target.transport(e)),
            Err(_) => Err(target.timed_out("body stalled: no bytes", self.cfg.read_timeout)),
        }
    }

    /// Sends a GET, following up to `MAX_REDIRECTS` redirects by hand. The token goes only to the
    /// endpoint's own origin: a presigned CDN URL is its own credential and must not see it.
    /// Returns the first 2xx response with the digest the Hub announced for the whole file (if
    /// any); any other status becomes a classified `HubError` (`CdnRefused` when it came from
    /// another origin than the endpoint).
    pub(crate) async fn send(
        &self,
        target: &Target<'_>,
        url: &str,
        range: Option<(u64, u64)>,
    ) -> Result<(Response, Option<ContentDigest>), HubError> {
        let mut current = Url::parse(url).map_err(|e| target.invalid(format!("bad URL: {e}")))?;
        let mut digest = None;
        let header_wait = self.cfg.connect_timeout + self.cfg.read_timeout;
        for _hop in 0..=MAX_REDIRECTS {
            let headers = self.request_headers(&current, range);
            debug!(url = %current, ?range, "GET");
            let request = self.http.request(Method::GET, current.clone()).headers(headers).send();
            let resp = match tokio::time::timeout(header_wait, request).await {
                Ok(sent) => sent.map_err(|e| target.transport(e))?,
                Err(_) => return Err(target.timed_out("no response headers", header_wait)),
            };
            let status = resp.status();
            let from_endpoint = current.origin() == self.endpoint_origin.origin();
            if status.is_redirection() {
                digest = digest.or_else(|| ContentDigest::from_header(resp.headers(), "x-linked-etag"));
                let loc = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok());
                let loc = loc.ok_or_else(|| target.bad(format!("HTTP {status} without Location")))?;
                current = current.join(loc).map_err(|e| target.bad(format!("bad Location {loc:?}: {e}")))?;
                continue;
            }
            if status.is_success() {
                if from_endpoint {
                    digest = digest.or_else(|| ContentDigest::from_header(resp.headers(), "etag"));
                }
                return Ok((resp, digest));
            }
            let code = status.as_u16();
            let err = error_from_response(target, resp, self.cfg.read_timeout).await;
            // Hub error codes mean nothing on a CDN host: any definite 4xx there is a refusal.
            let cdn_refusal = !from_endpoint && (400..500).contains(&code) && !matches!(code, 408 | 416 | 429);
            if cdn_refusal {
                // The server's own words; the status, repo and path are in the variant already.
                let message = match &err {
                    HubError::Http { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                return Err(HubError::CdnRefused {
                    repo: target.repo.into(),
                    path: target.path.into(),
                    status: code,
                    message,
                });
            }
            return Err(err);
        }
        Err(target.bad(format!("more than {MAX_REDIRECTS} redirects")))
    }

    fn request_headers(&self, url: &Url, range: Option<(u64, u64)>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
        if let Some((first, last)) = range {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes={first}-{last}")) {
                h.insert(RANGE, v);
            }
        }
        if let Some(token) = &self.cfg.token {
            if url.origin() == self.endpoint_origin.origin() {
                if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {token}")) {
                    v.set_sensitive(true);
                    h.insert(AUTHORIZATION, v);
                }
            }
        }
        h
    }

    /// Runs `op` until it succeeds, fails for good, or the retry budget (attempts and wall
    /// time) is spent; each attempt is cut off when the time budget runs out.
    pub(crate) async fn retrying<T, F, Fut>(&self, target: &Target<'_>, mut op: F) -> Result<T, HubError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, HubError>>,
    {
        let mut attempts = Attempts::start();
        loop {
            let outcome = match tokio::time::timeout(attempts.remaining(&self.cfg.retry), op()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(target.timed_out("no complete answer", self.cfg.retry.budget)),
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(e) => self.after_failure(target, &mut attempts, e).await?,
            }
        }
    }

    /// After a failed attempt: sleeps and returns `Ok` when another attempt fits the policy, else
    /// returns the error, logged here once with repo and file (per-attempt lines are debug only).
    pub(crate) async fn after_failure(
        &self,
        target: &Target<'_>,
        attempts: &mut Attempts,
        err: HubError,
    ) -> Result<(), HubError> {
        let r = &self.cfg.retry;
        let delay = backoff_delay(r, attempts.count, err.retry_after(), jitter());
        let elapsed = attempts.started.elapsed();
        let in_budget = elapsed + delay < r.budget;
        if err.is_retryable() && attempts.count < r.max_retries && in_budget {
            debug!(repo = target.repo, path = target.path, attempt = attempts.count, ?delay, error = %err, "retrying");
            tokio::time::sleep(delay).await;
            attempts.count += 1;
            return Ok(());
        }
        if err.is_not_found() {
            debug!(repo = target.repo, path = target.path, error = %err, "not found");
        } else {
            warn!(
                repo = target.repo,
                path = target.path,
                attempts = attempts.count + 1,
                elapsed_ms = elapsed.as_millis() as u64,
                error = %err,
                "Hub request failed; giving up"
            );
        }
        Err(err)
    }
}

/// Attempts made so far for one operation, and when it began (for the time budget).
pub(crate) struct Attempts {
    pub(crate) started: Instant,
    /// Failed attempts since the start or since the last progress.
    pub(crate) count: u32,
}

impl Attempts {
    pub(crate) fn start() -> Self {
        Self { started: Instant::now(), count: 0 }
    }

    /// Time left in the budget (zero once spent).
    pub(crate) fn remaining(&self, r: &RetryConfig) -> Duration {
        r.budget.saturating_sub(self.started.elapsed())
    }
}

/// The wait before retry number `attempt`: the server's `Retry-After`/`RateLimit` reset when it
/// gave one, else exponential backoff with jitter in [50%, 100%) so parallel readers do not retry
/// in lockstep; both capped at `max_delay`.
fn backoff_delay(r: &RetryConfig, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    match retry_after {
        Some(d) => d.min(r.max_delay),
        None => {
            let exp = r.base_delay.saturating_mul(1u32 << attempt.min(16)).min(r.max_delay);
            exp.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
        }
    }
}

/// A uniform-ish number in [0, 1) without a rand dependency.
fn jitter() -> f64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

fn too_large(target: &Target<'_>, size: u64, limit: u64) -> HubError {
    HubError::TooLarge { repo: target.repo.into(), path: target.path.into(), size, limit }
}

/// Classifies an error response. At most `ERROR_BODY_LIMIT` bytes of its body are read, each
/// chunk within `read_timeout`: an error page must not cost unbounded memory or time.
async fn error_from_response(target: &Target<'_>, mut resp: Response, read_timeout: Duration) -> HubError {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let code = header("x-error-code");
    let retry_after = header("retry-after")
        .and_then(|s| s.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .or_else(|| header("ratelimit").as_deref().and_then(ratelimit_reset));
    let mut message = header("x-error-message").unwrap_or_default();
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_LIMIT {
        match tokio::time::timeout(read_timeout, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    {
        let body = &body[..body.len().min(ERROR_BODY_LIMIT)];
        let from_body = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
        if message.is_empty() {
            message = from_body;
        }
    }
    target.classify(status, code.as_deref(), &message, retry_after)
}

/// The wait a `RateLimit: "api";r=<remaining>;t=<seconds>` header asks for: `t` once nothing
/// remains in the window, else none.
fn ratelimit_reset(header: &str) -> Option<Duration> {
    let param = |name: &str| {
        header.split(';').find_map(|p| p.trim().strip_prefix(name)?.strip_prefix('=')?.trim().parse::<u64>().ok())
    };
    (param("r")? == 0).then(|| Duration::from_secs(param("t").unwrap_or(0)))
}

#[derive(Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    lfs: Option<TreeLfs>,
}

#[derive(Deserialize)]
struct TreeLfs {
    oid: String,
    size: Option<u64>,
}

/// The `rel="next"` URL of a GitHub-style `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params.split(';').any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

fn encode_bytes(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes one URL segment, `/` included (revisions like `refs/pr/1`).
pub fn encode_segment(s: &str) -> String {
    encode_bytes(s, false)
}

/// Percent-encodes a repo path, keeping its `/` separators.
pub fn encode_path(s: &str) -> String {
    encode_bytes(s, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_link_finds_the_next_relation() {
        let h = r#"<http://h/api/x?cursor=2>; rel="next", <http://h/api/x?cursor=0>; rel="prev""#;
        assert_eq!(next_link(h).as_deref(), Some("http://h/api/x?cursor=2"));
        assert_eq!(next_link(r#"<http://h/a>; rel="prev""#), None);
    }

    #[test]
    fn encoding_keeps_slashes_only_in_paths() {
        assert_eq!(encode_segment("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode_path("sub dir/a#b.json"), "sub%20dir/a%23b.json");
    }

    #[test]
    fn token_goes_to_the_endpoint_origin_only() {
        let cfg = HubConfig::new("http://127.0.0.1:9000").with_token(Some("tok".into()));
        let c = HubClient::new(cfg).unwrap();
        let hub = Url::parse("http://127.0.0.1:9000/o/r/resolve/x/y").unwrap();
        let cdn = Url::parse("http://127.0.0.1:9001/_cdn/y").unwrap();
        assert!(c.request_headers(&hub, None).contains_key(AUTHORIZATION));
        assert!(!c.request_headers(&cdn, Some((0, 9))).contains_key(AUTHORIZATION));
        assert_eq!(c.request_headers(&cdn, Some((0, 9)))[RANGE], "bytes=0-9");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_honours_the_server_up_to_the_cap() {
        let r = RetryConfig {
            max_retries: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            budget: Duration::from_secs(10),
        };
        assert_eq!(backoff_delay(&r, 0, None, 1.0), Duration::from_millis(100));
        assert_eq!(backoff_delay(&r, 2, None, 1.0), Duration::from_millis(400));
        assert_eq!(backoff_delay(&r, 2, None, 0.0), Duration::from_millis(200));
        assert_eq!(backoff_delay(&r, 30, None, 1.0), Duration::from_secs(1), "capped");
        assert_eq!(backoff_delay(&r, 0, Some(Duration::from_millis(700)), 0.0), Duration::from_millis(700));
        assert_eq!(backoff_delay(&r, 0, Some(Duration::from_secs(60)), 0.0), Duration::from_secs(1), "capped");
    }

    #[test]
    fn ratelimit_reset_applies_only_when_exhausted() {
        assert_eq!(ratelimit_reset("\"api\";r=0;t=17"), Some(Duration::from_secs(17)));
        assert_eq!(ratelimit_reset("\"api\";r=12;t=17"), None);
        assert_eq!(ratelimit_reset("garbage"), None);
    }

    #[test]
    fn jitter_is_a_fraction() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
