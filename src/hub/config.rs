//! Where the Hub is and who we are to it: endpoint, token discovery (the same order as Python's
//! `huggingface_hub`, so a user's existing login just works), user agent, timeouts and retry policy.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The public Hub, used when neither an override nor `HF_ENDPOINT` is given.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How persistent the client is with transient failures (429, 5xx, transport errors, cut bodies).
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Attempts after the first one; 0 disables retrying.
    pub max_retries: u32,
    /// First backoff delay; doubled after each failure. Tests set it near zero.
    pub base_delay: Duration,
    /// Upper bound of one backoff delay and of an honoured `Retry-After`.
    pub max_delay: Duration,
    /// Wall-clock bound on one operation, attempts and waits included: past it the read fails
    /// (EIO at the mount) instead of keeping a reader blocked.
    pub budget: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            budget: Duration::from_secs(120),
        }
    }
}

/// Everything a `HubClient` needs to talk to one Hub endpoint.
///
/// `Debug` is written by hand so the token can never reach a log line.
#[derive(Clone)]
pub struct HubConfig {
    /// Base URL without a trailing `/`, e.g. `https://huggingface.co`.
    pub endpoint: String,
    /// Bearer token sent to the endpoint's own host only (never to the CDN).
    pub token: Option<String>,
    /// `User-Agent` header.
    pub user_agent: String,
    /// TCP+TLS connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for response headers or body bytes.
    pub read_timeout: Duration,
    /// Backoff policy.
    pub retry: RetryConfig,
}

impl fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubConfig")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("user_agent", &self.user_agent)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("retry", &self.retry)
            .finish()
    }
}

impl HubConfig {
    /// A config for `endpoint` with no token and default timeouts; tests and embedders start here.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: normalize_endpoint(&endpoint.into()),
            token: None,
            user_agent: format!("ggufs/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            retry: RetryConfig::default(),
        }
    }

    /// The config a user expects from the environment: `endpoint_override`, else `HF_ENDPOINT`, else
    /// the public Hub; the token from `HF_TOKEN`, `HUGGING_FACE_HUB_TOKEN`, `HF_TOKEN_PATH`, or
    /// `$HF_HOME/token` (`~/.cache/huggingface/token`).
    pub fn from_env(endpoint_override: Option<String>) -> Self {
        let endpoint =
            endpoint_override.or_else(|| non_empty_env("HF_ENDPOINT")).unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let mut cfg = Self::new(endpoint);
        cfg.token = token_from_env();
        cfg.apply_env_tuning();
        cfg
    }

    /// Sets the token (empty or blank means none).
    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token.and_then(|t| clean_token(&t));
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }
}

fn normalize_endpoint(s: &str) -> String {
    s.trim().trim_end_matches('/').to_string()
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A token as stored in env or file: surrounding whitespace and newlines removed, empty = none.
fn clean_token(raw: &str) -> Option<String> {
    let t = raw.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn token_from_env() -> Option<String> {
    if let Some(t) = ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"].iter().find_map(|n| std::env::var(n).ok()) {
        // A set-but-empty HF_TOKEN means "no token", as in Python.
        return clean_token(&t);
    }
    let path = token_path()?;
    std::fs::read_to_string(path).ok().and_then(|s| clean_token(&s))
}

/// `HF_TOKEN_PATH`, else `$HF_HOME/token`, where `HF_HOME` defaults to `$XDG_CACHE_HOME/huggingface`
/// or `~/.cache/huggingface`.
pub fn token_path() -> Option<PathBuf> {
    if let Some(p) = non_empty_env("HF_TOKEN_PATH") {
        return Some(PathBuf::from(p));
    }
    Some(hf_home()?.join("token"))
}

/// The Hugging Face home directory (`HF_HOME` or its default).
pub fn hf_home() -> Option<PathBuf> {
    if let Some(h) = non_empty_env("HF_HOME") {
        return Some(PathBuf::from(h));
    }
    if let Some(x) = non_empty_env("XDG_CACHE_HOME") {
        return Some(PathBuf::from(x).join("huggingface"));
    }
    non_empty_env("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_redacts_the_token() {
        let cfg = HubConfig::new("http://x/").with_token(Some("hf_secret123".into()));
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hf_secret123"), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert_eq!(cfg.endpoint, "http://x");
    }

    #[test]
    fn blank_tokens_mean_no_token() {
        assert_eq!(clean_token("  \n"), None);
        assert_eq!(clean_token(" hf_abc\r\n"), Some("hf_abc".into()));
        assert_eq!(HubConfig::new("e").with_token(Some(String::new())).token, None);
    }

    #[test]
    fn user_agent_names_the_tool_and_version() {
        assert_eq!(HubConfig::new("e").user_agent, format!("ggufs/{}", env!("CARGO_PKG_VERSION")));
    }
}
