//! Hub failures, classified the way users and callers need them: "no such repo" and "you need
//! access" call for different actions, and only some failures are worth retrying.

use std::time::Duration;

/// What went wrong talking to the Hub. Every message names the repo (and file when there is one).
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The repo does not exist, or is private and the token (if any) has no access.
    #[error("{repo}: repository not found (or private; check the name and HF_TOKEN)")]
    RepoNotFound { repo: String },
    /// The branch, tag or commit does not exist in the repo.
    #[error("{repo}: revision {revision:?} not found")]
    RevisionNotFound { repo: String, revision: String },
    /// The file does not exist at that revision.
    #[error("{repo}: file {path:?} not found")]
    EntryNotFound { repo: String, path: String },
    /// The repo is gated and the request carried no approved token.
    #[error("{repo}: gated repository, access denied: {message}")]
    GatedRepo { repo: String, message: String },
    /// The repo was disabled by the Hub.
    #[error("{repo}: access to this repository is disabled")]
    Disabled { repo: String },
    /// HTTP 429 after all retries.
    #[error("{repo}: {path}: rate limited by the Hub (retry after {retry_after:?})")]
    RateLimited { repo: String, path: String, retry_after: Option<Duration> },
    /// Any other non-success status (with the server's `Retry-After`/`RateLimit` wait, if any).
    #[error("{repo}: {path}: HTTP {status}: {message}")]
    Http { repo: String, path: String, status: u16, message: String, retry_after: Option<Duration> },
    /// The CDN (a host other than the endpoint) refused a signed URL (expired, missing object...).
    /// Worth one fresh resolve through the Hub, never a blind retry.
    #[error("{repo}: {path}: the CDN refused the download URL: HTTP {status}: {message}")]
    CdnRefused { repo: String, path: String, status: u16, message: String },
    /// No response headers, or no body bytes, within the configured timeout.
    #[error("{repo}: {path}: {what} within {waited:?}")]
    TimedOut { repo: String, path: String, what: &'static str, waited: Duration },
    /// The bytes do not match the digest the Hub published for them (git sha1 or LFS sha256).
    #[error("{repo}: {path}: integrity check failed: {reason}")]
    Integrity { repo: String, path: String, reason: String },
    /// Connection, TLS, timeout or body-stream failure.
    #[error("{repo}: {path}: transport error: {source}")]
    Transport {
        repo: String,
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// The body ended before the announced or requested length; resumable.
    #[error("{repo}: {path}: body cut short: got {received} of {expected} bytes")]
    Truncated { repo: String, path: String, received: u64, expected: u64 },
    /// The server answered, but not what a correct Hub sends (bad Content-Range, wrong length...).
    #[error("{repo}: {path}: bad response: {reason}")]
    BadResponse { repo: String, path: String, reason: String },
    /// The file is larger than the caller allowed to hold in memory.
    #[error("{repo}: {path}: {size} bytes is over the {limit}-byte limit")]
    TooLarge { repo: String, path: String, size: u64, limit: u64 },
    /// The caller asked for something impossible (e.g. a reversed range).
    #[error("{repo}: {path}: invalid request: {reason}")]
    InvalidRequest { repo: String, path: String, reason: String },
}

impl HubError {
    /// True for failures that may go away on their own: 408, 429, 5xx, transport errors,
    /// timeouts, cut bodies, and answers that break the protocol or fail their checksum (a bad
    /// cache node or proxy). Other 4xx never succeed on retry. The retry budget bounds them all.
    pub fn is_retryable(&self) -> bool {
        match self {
            HubError::RateLimited { .. }
            | HubError::Transport { .. }
            | HubError::Truncated { .. }
            | HubError::TimedOut { .. }
            | HubError::BadResponse { .. }
            | HubError::Integrity { .. } => true,
            HubError::Http { status, .. } => matches!(status, 408 | 500..=599),
            _ => false,
        }
    }

    /// The server's requested wait (`Retry-After`, or the `RateLimit` reset when exhausted).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HubError::RateLimited { retry_after, .. } | HubError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True if the error means "this thing does not exist" (repo, revision or file): ENOENT.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            HubError::RepoNotFound { .. }
                | HubError::RevisionNotFound { .. }
                | HubError::EntryNotFound { .. }
                | HubError::Http { status: 404, .. }
        )
    }

    /// True if the Hub refused us access (gated, disabled, bad or missing token): EACCES.
    /// A private repo without a token is indistinguishable from a missing one (ENOENT).
    pub fn is_access_denied(&self) -> bool {
        matches!(
            self,
            HubError::GatedRepo { .. } | HubError::Disabled { .. } | HubError::Http { status: 401 | 403, .. }
        )
    }
}

/// The exact wording the Hub uses for disabled repos (it sends no error code for them).
pub(crate) const DISABLED_MESSAGE: &str = "Access to this resource is disabled.";

/// The request a failed response belonged to, so errors can name it.
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    pub repo: &'a str,
    pub revision: &'a str,
    /// File path in the repo, or the API call's name.
    pub path: &'a str,
}

impl Target<'_> {
    pub fn transport(&self, source: reqwest::Error) -> HubError {
        HubError::Transport { repo: self.repo.into(), path: self.path.into(), source }
    }

    pub fn timed_out(&self, what: &'static str, waited: Duration) -> HubError {
        HubError::TimedOut { repo: self.repo.into(), path: self.path.into(), what, waited }
    }

    pub fn integrity(&self, reason: impl Into<String>) -> HubError {
        HubError::Integrity { repo: self.repo.into(), path: self.path.into(), reason: reason.into() }
    }

    /// A client-side mistake (bad endpoint, reversed range): retrying cannot help.
    pub fn invalid(&self, reason: impl Into<String>) -> HubError {
        HubError::InvalidRequest { repo: self.repo.into(), path: self.path.into(), reason: reason.into() }
    }

    pub fn bad(&self, reason: impl Into<String>) -> HubError {
        HubError::BadResponse { repo: self.repo.into(), path: self.path.into(), reason: reason.into() }
    }

    /// Classifies an error response from its status, `X-Error-Code` and message, in the order
    /// `huggingface_hub` uses (code first, then the disabled wording, then status).
    pub fn classify(
        &self,
        status: u16,
        error_code: Option<&str>,
        message: &str,
        retry_after: Option<Duration>,
    ) -> HubError {
        let repo = self.repo.to_string();
        match error_code {
            Some("RevisionNotFound") => return HubError::RevisionNotFound { repo, revision: self.revision.into() },
            Some("EntryNotFound") => return HubError::EntryNotFound { repo, path: self.path.into() },
            Some("GatedRepo") => return HubError::GatedRepo { repo, message: message.into() },
            _ => {}
        }
        if message.contains(DISABLED_MESSAGE) {
            return HubError::Disabled { repo };
        }
        if error_code == Some("RepoNotFound") {
            return HubError::RepoNotFound { repo };
        }
        if status == 429 {
            return HubError::RateLimited { repo, path: self.path.into(), retry_after };
        }
        HubError::Http { repo, path: self.path.into(), status, message: message.into(), retry_after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Target<'static> {
        Target { repo: "o/r", revision: "main", path: "config.json" }
    }

    #[test]
    fn error_codes_pick_distinct_variants() {
        assert!(matches!(t().classify(401, Some("RepoNotFound"), "x", None), HubError::RepoNotFound { .. }));
        assert!(matches!(t().classify(404, Some("RevisionNotFound"), "x", None), HubError::RevisionNotFound { .. }));
        assert!(matches!(t().classify(404, Some("EntryNotFound"), "x", None), HubError::EntryNotFound { .. }));
        assert!(matches!(t().classify(403, Some("GatedRepo"), "x", None), HubError::GatedRepo { .. }));
        assert!(matches!(t().classify(403, None, DISABLED_MESSAGE, None), HubError::Disabled { .. }));
        let rl = t().classify(429, None, "slow down", Some(Duration::from_secs(3)));
        assert_eq!(rl.retry_after(), Some(Duration::from_secs(3)));
        assert!(rl.is_retryable());
    }

    #[test]
    fn only_transient_statuses_are_retryable() {
        for (code, retry) in [(500, true), (503, true), (408, true), (404, false), (403, false), (400, false)] {
            assert_eq!(t().classify(code, None, "m", None).is_retryable(), retry, "{code}");
        }
        assert!(t().timed_out("no response headers", Duration::from_secs(1)).is_retryable());
        assert!(t().integrity("sha mismatch").is_retryable());
        assert!(t().bad("wrong Content-Range").is_retryable());
        assert!(!t().invalid("reversed range").is_retryable());
    }

    #[test]
    fn a_503_keeps_its_retry_after() {
        let e = t().classify(503, None, "busy", Some(Duration::from_secs(2)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    }

    /// The table the FUSE edge relies on: ENOENT for "does not exist", EACCES for "not allowed",
    /// everything else is an I/O error.
    #[test]
    fn not_found_and_access_denied_classes() {
        let cases: [(HubError, bool, bool); 9] = [
            (t().classify(401, Some("RepoNotFound"), "x", None), true, false),
            (t().classify(404, Some("RevisionNotFound"), "x", None), true, false),
            (t().classify(404, Some("EntryNotFound"), "x", None), true, false),
            (t().classify(404, None, "x", None), true, false),
            (t().classify(401, Some("GatedRepo"), "x", None), false, true),
            (t().classify(403, None, DISABLED_MESSAGE, None), false, true),
            (t().classify(401, None, "Invalid credentials", None), false, true),
            (t().classify(503, None, "x", None), false, false),
            (t().integrity("x"), false, false),
        ];
        for (e, not_found, denied) in cases {
            assert_eq!((e.is_not_found(), e.is_access_denied()), (not_found, denied), "{e}");
        }
    }

    #[test]
    fn messages_name_repo_and_file() {
        let e = t().classify(404, Some("EntryNotFound"), "x", None);
        let s = e.to_string();
        assert!(s.contains("o/r") && s.contains("config.json"), "{s}");
    }
}
