//! The HTTP core: one `reqwest` client without automatic redirects (so we decide where the token
//! goes), error classification, retry with backoff, and the metadata calls (revision, listing,
//! small files).

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, LOCATION, RANGE};
use reqwest::{Method, Response, Url};
use serde::Deserialize;
use tracing::{debug, warn};

use super::config::HubConfig;
use super::error::{HubError, Target};

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
        let endpoint_origin =
            Url::parse(&format!("{}/", cfg.endpoint)).map_err(|e| target.bad(format!("endpoint is not a URL: {e}")))?;
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
        let url = format!("{}/api/models/{repo}/revision/{}", self.cfg.endpoint, encode_segment(revision));
        let body = self.retrying(&target, || self.get_capped(&target, &url, SMALL_FILE_LIMIT)).await?;
        let info: Info = serde_json::from_slice(&body).map_err(|e| target.bad(format!("model info JSON: {e}")))?;
        let sha = info.sha.ok_or_else(|| target.bad("model info has no sha"))?;
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(target.bad(format!("model info sha {sha:?} is not a 40-hex commit")));
        }
        Ok(sha.to_ascii_lowercase())
    }

    /// Every file of the repo at `sha` (recursive tree listing, following `Link` pagination).
    pub async fn list_files(&self, repo: &str, sha: &str) -> Result<Vec<RepoFile>, HubError> {
        let target = Target { repo, revision: sha, path: "tree listing" };
        let mut url =
            format!("{}/api/models/{repo}/tree/{}?recursive=true&expand=false", self.cfg.endpoint, encode_segment(sha));
        let mut files = Vec::new();
        for _page in 0..100_000 {
            let (body, next) = self.retrying(&target, || self.get_page(&target, &url)).await?;
            let entries: Vec<TreeEntry> =
                serde_json::from_slice(&body).map_err(|e| target.bad(format!("tree JSON: {e}")))?;
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

    /// A whole (small) file at `sha`, refusing files over `SMALL_FILE_LIMIT`.
    pub async fn fetch_small(&self, repo: &str, sha: &str, path: &str) -> Result<Bytes, HubError> {
        let target = Target { repo, revision: sha, path };
        let url = self.resolve_url(repo, sha, path);
        self.retrying(&target, || self.get_capped(&target, &url, SMALL_FILE_LIMIT)).await
    }

    /// `{E}/{repo}/resolve/{sha}/{path}` with the path percent-encoded but its `/` kept.
    pub fn resolve_url(&self, repo: &str, sha: &str, path: &str) -> String {
        format!("{}/{repo}/resolve/{}/{}", self.cfg.endpoint, encode_segment(sha), encode_path(path))
    }

    async fn get_capped(&self, target: &Target<'_>, url: &str, limit: u64) -> Result<Bytes, HubError> {
        let mut resp = self.send(target, url, None).await?;
        if let Some(len) = resp.content_length().filter(|&l| l > limit) {
            return Err(too_large(target, len, limit));
        }
        let expected = resp.content_length();
        let mut body = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| target.transport(e))? {
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

    async fn get_page(&self, target: &Target<'_>, url: &str) -> Result<(Bytes, Option<String>), HubError> {
        let resp = self.send(target, url, None).await?;
        let next = resp.headers().get("link").and_then(|v| v.to_str().ok()).and_then(next_link);
        let body = resp.bytes().await.map_err(|e| target.transport(e))?;
        Ok((body, next))
    }

    /// Sends a GET, following up to `MAX_REDIRECTS` redirects by hand. The token goes only to the
    /// endpoint's own origin: a presigned CDN URL is its own credential and must not see it.
    /// Returns the first 2xx response; any other status becomes a classified `HubError`.
    pub(crate) async fn send(
        &self,
        target: &Target<'_>,
        url: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Response, HubError> {
        let mut current = Url::parse(url).map_err(|e| target.bad(format!("bad URL: {e}")))?;
        for _hop in 0..=MAX_REDIRECTS {
            let headers = self.request_headers(&current, range);
            debug!(url = %current, ?range, "GET");
            let resp = self
                .http
                .request(Method::GET, current.clone())
                .headers(headers)
                .send()
                .await
                .map_err(|e| target.transport(e))?;
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp.headers().get(LOCATION).and_then(|v| v.to_str().ok());
                let loc = loc.ok_or_else(|| target.bad(format!("HTTP {status} without Location")))?;
                current = current.join(loc).map_err(|e| target.bad(format!("bad Location {loc:?}: {e}")))?;
                continue;
            }
            if status.is_success() {
                return Ok(resp);
            }
            return Err(error_from_response(target, resp).await);
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

    /// Runs `op` until it succeeds, fails for good, or the retry budget is spent.
    pub(crate) async fn retrying<T, F, Fut>(&self, target: &Target<'_>, mut op: F) -> Result<T, HubError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, HubError>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt < self.cfg.retry.max_retries => {
                    self.backoff(target, attempt, &e).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sleeps before retry number `attempt`: `Retry-After` if the server gave one, else exponential
    /// backoff with jitter so that parallel readers do not retry in lockstep.
    pub(crate) async fn backoff(&self, target: &Target<'_>, attempt: u32, err: &HubError) {
        let r = &self.cfg.retry;
        let delay = match err.retry_after() {
            Some(d) => d.min(r.max_delay),
            None => {
                let exp = r.base_delay.saturating_mul(1u32 << attempt.min(16)).min(r.max_delay);
                exp.mul_f64(0.5 + 0.5 * jitter())
            }
        };
        warn!(repo = target.repo, path = target.path, attempt, ?delay, error = %err, "retrying");
        tokio::time::sleep(delay).await;
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

async fn error_from_response(target: &Target<'_>, resp: Response) -> HubError {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let code = header("x-error-code");
    let retry_after = header("retry-after").and_then(|s| s.trim().parse::<u64>().ok()).map(Duration::from_secs);
    let mut message = header("x-error-message").unwrap_or_default();
    if let Ok(body) = resp.bytes().await {
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
    fn jitter_is_a_fraction() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
