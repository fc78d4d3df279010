//! Exact byte ranges of a repo file: what every lazy tensor read comes down to. A reader that
//! trusts the server blindly would silently splice wrong bytes into a GGUF, so every response
//! is checked (206, Content-Range, length) and a cut body is resumed from the byte reached.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::pagebuf::PageBuf;
use reqwest::header::CONTENT_RANGE;
use reqwest::{Response, StatusCode, Url};
use tracing::debug;

use super::client::{Attempts, ContentDigest, HubClient, SMALL_FILE_LIMIT};
use super::error::{HubError, Target};

/// Signed CDN URLs expire after about an hour (hub-spec §5); reuse them for less than that.
const LOCATION_TTL: Duration = Duration::from_secs(50 * 60);
/// Bytes an interrupted attempt must deliver for its failure not to count against the retries.
const MIN_PROGRESS: u64 = 64 << 10;
/// Bound on remembered locations; the cache is simply emptied when it is full.
const LOCATION_CAP: usize = 4096;

/// Resolve URL → (final URL after redirects, when it was learned).
pub(crate) type LocationCache = Arc<Mutex<HashMap<String, (Url, Instant)>>>;

impl HubClient {
    fn cached_location(&self, resolve_url: &str) -> Option<Url> {
        let map = self.locations.lock().unwrap_or_else(|e| e.into_inner());
        map.get(resolve_url).filter(|(_, at)| at.elapsed() < LOCATION_TTL).map(|(u, _)| u.clone())
    }

    fn remember_location(&self, resolve_url: &str, location: Url) {
        let mut map = self.locations.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= LOCATION_CAP {
            map.clear();
        }
        map.insert(resolve_url.to_string(), (location, Instant::now()));
    }

    fn forget_location(&self, resolve_url: &str) {
        self.locations.lock().unwrap_or_else(|e| e.into_inner()).remove(resolve_url);
    }

    /// Sends the ranged GET, straight to the remembered CDN URL when there is one. A refusal by
    /// the CDN (expired signature: 403...) is worth exactly one fresh resolve through the Hub.
    async fn send_ranged(&self, target: &Target<'_>, url: &str, span: (u64, u64)) -> Result<Response, HubError> {
        let mut refreshed = false;
        if let Some(loc) = self.cached_location(url) {
            match self.send(target, loc.as_str(), Some(span)).await {
                Err(e @ HubError::CdnRefused { .. }) => {
                    debug!(error = %e, "remembered CDN URL refused; resolving again");
                    self.forget_location(url);
                    refreshed = true;
                }
                other => return other.map(|(resp, _)| resp),
            }
        }
        loop {
            match self.send(target, url, Some(span)).await {
                Ok((resp, _)) => {
                    if resp.url().as_str() != url {
                        self.remember_location(url, resp.url().clone());
                    }
                    return Ok(resp);
                }
                Err(e @ HubError::CdnRefused { .. }) if !refreshed => {
                    debug!(error = %e, "fresh CDN URL refused; resolving once more");
                    refreshed = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The bytes `[range.start, range.end)` of `path` at commit `sha`.
    ///
    /// Sends `Range: bytes=start-(end-1)`, follows the redirect to the CDN (without the token),
    /// verifies the answer, and resumes from the exact byte reached when a body is cut. A server
    /// that ignores Range (200) is accepted only for files up to `SMALL_FILE_LIMIT`, sliced here.
    pub async fn read_range(&self, repo: &str, sha: &str, path: &str, range: Range<u64>) -> Result<Bytes, HubError> {
        self.read_range_verified(repo, sha, path, range, None).await
    }

    /// `read_range`, and when the range is the whole file and `whole = Some((size, sha256))`
    /// (the LFS digest from the listing), the bytes must hash to it: a corrupt whole-file answer
    /// is retried, never returned. Partial ranges cannot be checked (the Hub publishes only the
    /// whole file's digest).
    pub async fn read_range_verified(
        &self,
        repo: &str,
        sha: &str,
        path: &str,
        range: Range<u64>,
        whole: Option<(u64, &str)>,
    ) -> Result<Bytes, HubError> {
        let target = Target { repo, revision: sha, path };
        super::client::check_names(&target)?;
        if range.start > range.end {
            return Err(target.invalid(format!("reversed range {}..{}", range.start, range.end)));
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let digest = whole
            .filter(|&(size, _)| range.start == 0 && range.end == size)
            .map(|(_, sha256)| ContentDigest::Sha256(sha256.to_ascii_lowercase()));
        let url = self.resolve_url(repo, sha, path);
        let want = range.end - range.start;
        // Page-aligned, so the disk cache can store the blocks of this range without a copy.
        let mut out = PageBuf::with_capacity(want.min(SMALL_FILE_LIMIT) as usize);
        let mut attempts = Attempts::start();
        loop {
            let pos = range.start + out.len() as u64;
            let budget_left = attempts.remaining(&self.cfg.retry);
            let once = tokio::time::timeout(budget_left, self.read_once(&target, &url, pos, range.end, &mut out));
            let err = match once.await {
                Ok(Ok(())) => match digest.as_ref().map(|d| d.verify(&target, &out)) {
                    None | Some(Ok(())) => return Ok(out.freeze()),
                    Some(Err(e)) => {
                        out.clear();
                        e
                    }
                },
                Ok(Err(e)) => e,
                Err(_) => target.timed_out("no complete answer", self.cfg.retry.budget),
            };
            let progress = range.start + out.len() as u64 - pos;
            if progress >= MIN_PROGRESS.min(range.end - pos) {
                // Real progress restarts the attempt count, as in huggingface_hub's resume loop;
                // a trickle (a server cutting every body after a few bytes) does not, and the
                // time budget never restarts.
                attempts.count = 0;
            }
            self.after_failure(&target, &mut attempts, err).await?;
        }
    }

    /// One request for `[pos, end)`, appending what arrives to `out` (kept on failure).
    async fn read_once(
        &self,
        target: &Target<'_>,
        url: &str,
        pos: u64,
        end: u64,
        out: &mut PageBuf,
    ) -> Result<(), HubError> {
        let resp = self.send_ranged(target, url, (pos, end - 1)).await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                check_content_range(target, &resp, pos, end)?;
                self.append_body(target, resp, 0, end - pos, out).await
            }
            StatusCode::OK => {
                let total = resp.content_length();
                match total {
                    Some(t) if t >= end && t <= SMALL_FILE_LIMIT => {
                        self.append_body(target, resp, pos, end - pos, out).await
                    }
                    _ => Err(target.bad(format!(
                        "server ignored the Range header (200 with {} bytes) for bytes {pos}-{}",
                        total.map_or("unknown".into(), |t| t.to_string()),
                        end - 1
                    ))),
                }
            }
            s => Err(target.bad(format!("unexpected status {s} for a Range request"))),
        }
    }

    /// Streams the body into `out`, dropping its first `skip` bytes and expecting `take` more
    /// after them; stops reading once they are in. A longer 206 body is an error; a shorter one
    /// `Truncated`; silence longer than the read timeout `TimedOut`.
    async fn append_body(
        &self,
        target: &Target<'_>,
        mut resp: Response,
        mut skip: u64,
        take: u64,
        out: &mut PageBuf,
    ) -> Result<(), HubError> {
        let goal = out.len() as u64 + take;
        let start_len = out.len() as u64;
        let partial = resp.status() == StatusCode::PARTIAL_CONTENT;
        while (out.len() as u64) < goal {
            let Some(chunk) = self.next_chunk(target, &mut resp).await? else {
                return Err(HubError::Truncated {
                    repo: target.repo.into(),
                    path: target.path.into(),
                    received: out.len() as u64 - start_len,
                    expected: take,
                });
            };
            let mut piece: &[u8] = &chunk;
            let dropped = skip.min(piece.len() as u64);
            piece = piece.get(dropped as usize..).unwrap_or_default();
            skip -= dropped;
            let room = goal - out.len() as u64;
            if piece.len() as u64 > room && skip == 0 && partial {
                return Err(target.bad(format!("206 body longer than the {take} bytes asked for")));
            }
            out.extend_from_slice(piece.get(..room.min(piece.len() as u64) as usize).unwrap_or_default());
        }
        if partial && self.next_chunk(target, &mut resp).await.ok().flatten().is_some_and(|c| !c.is_empty()) {
            return Err(target.bad(format!("206 body longer than the {take} bytes asked for")));
        }
        Ok(())
    }
}

/// Checks `Content-Range: bytes a-b/total` and `Content-Length` against the request exactly.
fn check_content_range(target: &Target<'_>, resp: &Response, pos: u64, end: u64) -> Result<(), HubError> {
    let raw = resp
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| target.bad("206 without Content-Range"))?;
    let (first, last, total) =
        parse_content_range(raw).ok_or_else(|| target.bad(format!("malformed Content-Range {raw:?}")))?;
    if first != pos || last != end - 1 {
        return Err(target.bad(format!("asked for bytes {pos}-{}, got Content-Range {raw:?}", end - 1)));
    }
    if let Some(t) = total.filter(|&t| t <= last) {
        return Err(target.bad(format!("Content-Range {raw:?} ends past its total {t}")));
    }
    if let Some(len) = resp.content_length().filter(|&l| l != end - pos) {
        return Err(target.bad(format!("Content-Length {len} for a {}-byte range", end - pos)));
    }
    Ok(())
}

/// `bytes a-b/total` (total may be `*`).
fn parse_content_range(s: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = s.trim().strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b) = (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?);
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    (a <= b).then_some((a, b, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parses_and_rejects_garbage() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0, 9, Some(100))));
        assert_eq!(parse_content_range("bytes 5-5/*"), Some((5, 5, None)));
        assert_eq!(parse_content_range("bytes 9-0/100"), None);
        assert_eq!(parse_content_range("items 0-9/100"), None);
        assert_eq!(parse_content_range("bytes */100"), None);
    }
}
