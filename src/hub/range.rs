//! Exact byte ranges of a repo file: what every lazy tensor read comes down to. A reader that
//! trusts the server blindly would silently splice wrong bytes into a GGUF, so every response
//! is checked (206, Content-Range, length) and a cut body is resumed from the byte reached.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use reqwest::header::CONTENT_RANGE;
use reqwest::{Response, StatusCode, Url};
use tracing::debug;

use super::client::{HubClient, SMALL_FILE_LIMIT};
use super::error::{HubError, Target};

/// Signed CDN URLs expire after about an hour (hub-spec §5); reuse them for less than that.
const LOCATION_TTL: Duration = Duration::from_secs(50 * 60);
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

    /// Sends the ranged GET, straight to the remembered CDN URL when there is one. A definite
    /// refusal there (expired signature: 403...) falls back to resolving again.
    async fn send_ranged(&self, target: &Target<'_>, url: &str, span: (u64, u64)) -> Result<Response, HubError> {
        if let Some(loc) = self.cached_location(url) {
            match self.send(target, loc.as_str(), Some(span)).await {
                Ok(resp) => return Ok(resp),
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => {
                    debug!(error = %e, "cached CDN location refused; resolving again");
                    self.forget_location(url);
                }
            }
        }
        let resp = self.send(target, url, Some(span)).await?;
        if resp.url().as_str() != url {
            self.remember_location(url, resp.url().clone());
        }
        Ok(resp)
    }

    /// The bytes `[range.start, range.end)` of `path` at commit `sha`.
    ///
    /// Sends `Range: bytes=start-(end-1)`, follows the redirect to the CDN (without the token),
    /// verifies the answer, and resumes from the exact byte reached when a body is cut. A server
    /// that ignores Range (200) is accepted only for files up to `SMALL_FILE_LIMIT`, sliced here.
    pub async fn read_range(&self, repo: &str, sha: &str, path: &str, range: Range<u64>) -> Result<Bytes, HubError> {
        let target = Target { repo, revision: sha, path };
        if range.start > range.end {
            return Err(HubError::InvalidRequest {
                repo: repo.into(),
                path: path.into(),
                reason: format!("reversed range {}..{}", range.start, range.end),
            });
        }
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let url = self.resolve_url(repo, sha, path);
        let want = range.end - range.start;
        let mut out = BytesMut::with_capacity(want.min(SMALL_FILE_LIMIT) as usize);
        let mut attempt = 0;
        loop {
            let pos = range.start + out.len() as u64;
            let err = match self.read_once(&target, &url, pos, range.end, &mut out).await {
                Ok(()) => return Ok(out.freeze()),
                Err(e) => e,
            };
            if range.start + out.len() as u64 > pos {
                // Data arrived: the failure budget restarts, as in huggingface_hub's resume loop.
                attempt = 0;
            }
            if !err.is_retryable() || attempt >= self.cfg.retry.max_retries {
                return Err(err);
            }
            self.backoff(&target, attempt, &err).await;
            attempt += 1;
        }
    }

    /// One request for `[pos, end)`, appending what arrives to `out` (kept on failure).
    async fn read_once(
        &self,
        target: &Target<'_>,
        url: &str,
        pos: u64,
        end: u64,
        out: &mut BytesMut,
    ) -> Result<(), HubError> {
        let resp = self.send_ranged(target, url, (pos, end - 1)).await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                check_content_range(target, &resp, pos, end)?;
                append_body(target, resp, 0, end - pos, out).await
            }
            StatusCode::OK => {
                let total = resp.content_length();
                match total {
                    Some(t) if t >= end && t <= SMALL_FILE_LIMIT => {
                        append_body(target, resp, pos, end - pos, out).await
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

/// Streams the body into `out`, dropping its first `skip` bytes and expecting `take` more after
/// them; stops reading once they are in. A longer 206 body is an error; a shorter one `Truncated`.
async fn append_body(
    target: &Target<'_>,
    mut resp: Response,
    mut skip: u64,
    take: u64,
    out: &mut BytesMut,
) -> Result<(), HubError> {
    let goal = out.len() as u64 + take;
    let start_len = out.len() as u64;
    while (out.len() as u64) < goal {
        let chunk = match resp.chunk().await.map_err(|e| target.transport(e))? {
            Some(c) => c,
            None => {
                return Err(HubError::Truncated {
                    repo: target.repo.into(),
                    path: target.path.into(),
                    received: out.len() as u64 - start_len,
                    expected: take,
                })
            }
        };
        let mut piece: &[u8] = &chunk;
        let dropped = skip.min(piece.len() as u64);
        piece = piece.get(dropped as usize..).unwrap_or_default();
        skip -= dropped;
        let room = goal - out.len() as u64;
        if piece.len() as u64 > room && skip == 0 && resp.status() == StatusCode::PARTIAL_CONTENT {
            return Err(target.bad(format!("206 body longer than the {take} bytes asked for")));
        }
        out.extend_from_slice(piece.get(..room.min(piece.len() as u64) as usize).unwrap_or_default());
    }
    if resp.status() == StatusCode::PARTIAL_CONTENT && resp.chunk().await.ok().flatten().is_some_and(|c| !c.is_empty())
    {
        return Err(target.bad(format!("206 body longer than the {take} bytes asked for")));
    }
    Ok(())
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
