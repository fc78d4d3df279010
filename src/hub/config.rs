//! Where the Hub is and who we are to it: endpoint, token discovery (the same order as Python's
//! `huggingface_hub`, so a user's existing login just works), user agent, timeouts and retry policy.

use std::fmt;
use std::path::{Path, PathBuf};
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
    /// The `huggingface_hub` cache (`HF_HUB_CACHE`) whose blobs are reused instead of the network.
    pub hub_cache: Option<PathBuf>,
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
            .field("hub_cache", &self.hub_cache)
            .finish()
    }
}

impl HubConfig {
    /// A config for `endpoint` with no token and default timeouts; tests and embedders start here.
    /// It reads no environment: `hub_cache` stays `None` so tests never touch a user's cache.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: normalize_endpoint(&endpoint.into()),
            token: None,
            user_agent: format!("ggufs/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            retry: RetryConfig::default(),
            hub_cache: None,
        }
    }

    /// The config a user expects from the environment (see [`HfEnv`]): `endpoint_override`, else
    /// `HF_ENDPOINT`, else the public Hub; the token and the HF cache as `huggingface_hub` finds them.
    pub fn from_env(endpoint_override: Option<String>) -> Self {
        Self::from_hf_env(&HfEnv::from_process(), endpoint_override)
    }

    /// The config for already-resolved settings (pure: what `from_env` does, testable).
    pub fn from_hf_env(env: &HfEnv, endpoint_override: Option<String>) -> Self {
        let endpoint = endpoint_override.filter(|e| !e.trim().is_empty()).unwrap_or_else(|| env.endpoint.clone());
        let mut cfg = Self::new(endpoint);
        cfg.token = env.token.clone();
        cfg.hub_cache = Some(env.hub_cache.clone());
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

    /// Sets the `huggingface_hub` cache to reuse downloaded shards from (`None`: do not look).
    pub fn with_hub_cache(mut self, dir: Option<PathBuf>) -> Self {
        self.hub_cache = dir;
        self
    }
}

/// The Hub settings `huggingface_hub` derives from the environment, resolved once with the same
/// precedence (hub-spec §2.1, §3.1), so `ggufs` sees the same endpoint, login and cache as
/// `hf`/`transformers` do. Built from a lookup function so the precedence is testable without
/// touching the process environment.
#[derive(Clone, PartialEq, Eq)]
pub struct HfEnv {
    /// `HF_ENDPOINT` (trailing `/` stripped) or the public Hub.
    pub endpoint: String,
    /// `HF_TOKEN`, else `HUGGING_FACE_HUB_TOKEN`, else the token file; `None` if all are empty or
    /// `HF_HUB_DISABLE_IMPLICIT_TOKEN` is set.
    pub token: Option<String>,
    /// `HF_TOKEN_PATH`, else `$HF_HOME/token`.
    pub token_path: PathBuf,
    /// `HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
    pub hf_home: PathBuf,
    /// `HF_HUB_CACHE`, else legacy `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`.
    pub hub_cache: PathBuf,
    /// `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is one of 1/ON/YES/TRUE, any case.
    pub offline: bool,
}

impl fmt::Debug for HfEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HfEnv")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("token_path", &self.token_path)
            .field("hf_home", &self.hf_home)
            .field("hub_cache", &self.hub_cache)
            .field("offline", &self.offline)
            .finish()
    }
}

impl HfEnv {
    /// The settings of this process's environment (reads the token file if needed).
    pub fn from_process() -> Self {
        Self::resolve(&|name| std::env::var(name).ok(), &|path| std::fs::read_to_string(path).ok())
    }

    /// The settings for the variables `var` returns, reading the token file with `read_file`.
    /// Empty variables count as unset (Python would build relative paths from an empty `HF_HOME`).
    pub fn resolve(var: &dyn Fn(&str) -> Option<String>, read_file: &dyn Fn(&Path) -> Option<String>) -> Self {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let home = get("HOME");
        let path = |raw: String| expand_path(&raw, home.as_deref(), &get);
        let endpoint = normalize_endpoint(&get("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()));
        let hf_home = get("HF_HOME").map(path).unwrap_or_else(|| {
            let cache = get("XDG_CACHE_HOME").map(path).unwrap_or_else(|| tilde(home.as_deref()).join(".cache"));
            cache.join("huggingface")
        });
        let hub_cache = get("HF_HUB_CACHE")
            .or_else(|| get("HUGGINGFACE_HUB_CACHE"))
            .map(path)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token_path = get("HF_TOKEN_PATH").map(path).unwrap_or_else(|| hf_home.join("token"));
        // Python: `HF_TOKEN or HUGGING_FACE_HUB_TOKEN`, then the file: an empty variable falls through.
        let token = if get("HF_HUB_DISABLE_IMPLICIT_TOKEN").is_some_and(|v| is_true(&v)) {
            None
        } else {
            get("HF_TOKEN")
                .or_else(|| get("HUGGING_FACE_HUB_TOKEN"))
                .and_then(|t| clean_token(&t))
                .or_else(|| read_file(&token_path).and_then(|t| clean_token(&t)))
        };
        let offline = offline_of(&get);
        Self { endpoint, token, token_path, hf_home, hub_cache, offline }
    }
}

/// `HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) of this process, read as huggingface_hub reads it.
pub fn offline_from_env() -> bool {
    offline_of(&|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

/// Python: `_is_true(HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)` (a set `HF_HUB_OFFLINE=0` wins).
fn offline_of(get: &dyn Fn(&str) -> Option<String>) -> bool {
    get("HF_HUB_OFFLINE").or_else(|| get("TRANSFORMERS_OFFLINE")).is_some_and(|v| is_true(&v))
}

/// Python's `_is_true`: 1, ON, YES, TRUE in any case.
pub fn is_true(value: &str) -> bool {
    matches!(value.trim().to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE")
}

fn tilde(home: Option<&str>) -> PathBuf {
    PathBuf::from(home.unwrap_or("/"))
}

/// `os.path.expandvars(os.path.expanduser(p))`: a leading `~` becomes `$HOME`, `$VAR` and
/// `${VAR}` become their values (unknown ones are left as written, as in Python).
fn expand_path(raw: &str, home: Option<&str>, get: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    let with_home = match raw.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("{}{rest}", tilde(home).display()),
        _ => raw.to_string(),
    };
    PathBuf::from(expand_vars(&with_home, get))
}

fn expand_vars(s: &str, get: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(j) => (&inner[..j], j + 2),
                None => ("", 0),
            },
            None => {
                let n = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..n], n)
            }
        };
        match get(name).filter(|_| !name.is_empty()) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[i..i + 1 + consumed]),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

fn normalize_endpoint(s: &str) -> String {
    s.trim().trim_end_matches('/').to_string()
}

/// A token as stored in env or file: surrounding whitespace and newlines removed, empty = none.
fn clean_token(raw: &str) -> Option<String> {
    let t = raw.replace(['\r', '\n'], "");
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// `HF_TOKEN_PATH`, else `$HF_HOME/token` (as `huggingface_hub` finds it in this process).
pub fn token_path() -> Option<PathBuf> {
    Some(HfEnv::from_process().token_path)
}

/// The Hugging Face home directory (`HF_HOME` or its default).
pub fn hf_home() -> Option<PathBuf> {
    Some(HfEnv::from_process().hf_home)
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

    fn env_of(vars: &[(&str, &str)], files: &[(&str, &str)]) -> HfEnv {
        let vars: std::collections::HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let files: std::collections::HashMap<PathBuf, String> =
            files.iter().map(|(k, v)| (PathBuf::from(k), v.to_string())).collect();
        HfEnv::resolve(&|n| vars.get(n).cloned(), &|p| files.get(p).cloned())
    }

    #[test]
    fn defaults_follow_home_and_xdg() {
        let e = env_of(&[("HOME", "/home/u")], &[]);
        assert_eq!(e.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(e.hf_home, PathBuf::from("/home/u/.cache/huggingface"));
        assert_eq!(e.hub_cache, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(e.token_path, PathBuf::from("/home/u/.cache/huggingface/token"));
        assert_eq!((e.token, e.offline), (None, false));
        let e = env_of(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/xdg")], &[]);
        assert_eq!(e.hub_cache, PathBuf::from("/xdg/huggingface/hub"));
    }

    #[test]
    fn hf_home_moves_the_cache_and_the_token_file_unless_they_are_set() {
        let files = [("/hh/token", "hf_file\n"), ("/elsewhere/tok", " hf_other ")];
        let e = env_of(&[("HOME", "/h"), ("XDG_CACHE_HOME", "/xdg"), ("HF_HOME", "/hh")], &files);
        assert_eq!((e.hub_cache.as_path(), e.token.as_deref()), (Path::new("/hh/hub"), Some("hf_file")));
        let e = env_of(&[("HF_HOME", "/hh"), ("HF_HUB_CACHE", "/c"), ("HF_TOKEN_PATH", "/elsewhere/tok")], &files);
        assert_eq!((e.hub_cache.as_path(), e.token.as_deref()), (Path::new("/c"), Some("hf_other")));
        let e = env_of(&[("HF_HOME", "/hh"), ("HUGGINGFACE_HUB_CACHE", "/legacy")], &files);
        assert_eq!(e.hub_cache, PathBuf::from("/legacy"));
        let e = env_of(&[("HF_HUB_CACHE", "/new"), ("HUGGINGFACE_HUB_CACHE", "/legacy")], &files);
        assert_eq!(e.hub_cache, PathBuf::from("/new"));
    }

    #[test]
    fn token_precedence_is_env_then_legacy_env_then_file() {
        let files = [("/hh/token", "hf_file")];
        let base = [("HF_HOME", "/hh")];
        let with = |extra: &[(&str, &str)]| {
            let vars: Vec<(&str, &str)> = base.iter().chain(extra).copied().collect();
            env_of(&vars, &files).token
        };
        assert_eq!(with(&[]).as_deref(), Some("hf_file"));
        assert_eq!(with(&[("HUGGING_FACE_HUB_TOKEN", "hf_legacy")]).as_deref(), Some("hf_legacy"));
        assert_eq!(with(&[("HF_TOKEN", "hf_env"), ("HUGGING_FACE_HUB_TOKEN", "x")]).as_deref(), Some("hf_env"));
        // Python's `os.environ.get("HF_TOKEN") or ...`: an empty HF_TOKEN falls through.
        assert_eq!(with(&[("HF_TOKEN", "")]).as_deref(), Some("hf_file"));
        assert_eq!(with(&[("HF_TOKEN", "hf_env"), ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")]), None);
        assert_eq!(env_of(&[("HF_HOME", "/hh")], &[("/hh/token", " \r\n")]).token, None);
    }

    #[test]
    fn endpoint_and_offline_parse_like_python() {
        let e = env_of(&[("HF_ENDPOINT", "http://mirror.local:8080/")], &[]);
        assert_eq!(e.endpoint, "http://mirror.local:8080");
        for (v, want) in [("1", true), ("on", true), ("Yes", true), ("TRUE", true), ("0", false), ("no", false)] {
            assert_eq!(env_of(&[("HF_HUB_OFFLINE", v)], &[]).offline, want, "{v}");
        }
        assert!(env_of(&[("TRANSFORMERS_OFFLINE", "1")], &[]).offline);
        let cfg = HubConfig::from_hf_env(&e, Some("http://override/".into()));
        assert_eq!(cfg.endpoint, "http://override");
        assert_eq!(HubConfig::from_hf_env(&e, None).endpoint, "http://mirror.local:8080");
    }

    #[test]
    fn paths_expand_tilde_and_variables() {
        let e = env_of(&[("HOME", "/home/u"), ("HF_HOME", "~/hf"), ("HF_HUB_CACHE", "$SCRATCH/${USER}/hub")], &[]);
        assert_eq!(e.hf_home, PathBuf::from("/home/u/hf"));
        assert_eq!(e.hub_cache, PathBuf::from("$SCRATCH/${USER}/hub"), "unknown variables stay as written");
        let e = env_of(&[("SCRATCH", "/s"), ("USER", "me"), ("HF_HUB_CACHE", "$SCRATCH/${USER}/hub")], &[]);
        assert_eq!(e.hub_cache, PathBuf::from("/s/me/hub"));
    }

    #[test]
    fn debug_of_the_env_redacts_the_token() {
        let e = env_of(&[("HF_TOKEN", "hf_secret")], &[]);
        assert!(!format!("{e:?}").contains("hf_secret"));
    }

    #[test]
    fn user_agent_names_the_tool_and_version() {
        assert_eq!(HubConfig::new("e").user_agent, format!("ggufs/{}", env!("CARGO_PKG_VERSION")));
    }
}
