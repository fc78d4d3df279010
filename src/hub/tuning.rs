//! Timeouts and retry budget from the environment (`GGUFS_HUB_*`), so an operator (or a test
//! that must finish quickly) can tighten them without a rebuild or a new CLI flag per knob.

use std::time::Duration;

use super::config::HubConfig;

/// The variables `HubConfig::from_env` reads, each a whole number of milliseconds (or a count).
pub const TUNING_VARS: [&str; 6] = [
    "GGUFS_HUB_CONNECT_TIMEOUT_MS",
    "GGUFS_HUB_READ_TIMEOUT_MS",
    "GGUFS_HUB_MAX_RETRIES",
    "GGUFS_HUB_RETRY_BASE_MS",
    "GGUFS_HUB_RETRY_MAX_DELAY_MS",
    "GGUFS_HUB_RETRY_BUDGET_MS",
];

impl HubConfig {
    /// Overrides timeouts and the retry policy from `GGUFS_HUB_*`; unset or unparsable values
    /// leave the defaults (an unparsable one is logged, never fatal).
    pub fn apply_env_tuning(&mut self) {
        self.apply_tuning(|name| std::env::var(name).ok());
    }

    fn apply_tuning(&mut self, get: impl Fn(&str) -> Option<String>) {
        let num = |name: &str| {
            let raw = get(name)?;
            let parsed = raw.trim().parse::<u64>().ok();
            if parsed.is_none() {
                tracing::warn!(variable = name, value = %raw, "ignoring a non-numeric setting");
            }
            parsed
        };
        let ms = |name: &str| num(name).map(Duration::from_millis);
        if let Some(d) = ms("GGUFS_HUB_CONNECT_TIMEOUT_MS") {
            self.connect_timeout = d;
        }
        if let Some(d) = ms("GGUFS_HUB_READ_TIMEOUT_MS") {
            self.read_timeout = d;
        }
        if let Some(n) = num("GGUFS_HUB_MAX_RETRIES") {
            self.retry.max_retries = u32::try_from(n).unwrap_or(u32::MAX);
        }
        if let Some(d) = ms("GGUFS_HUB_RETRY_BASE_MS") {
            self.retry.base_delay = d;
        }
        if let Some(d) = ms("GGUFS_HUB_RETRY_MAX_DELAY_MS") {
            self.retry.max_delay = d;
        }
        if let Some(d) = ms("GGUFS_HUB_RETRY_BUDGET_MS") {
            self.retry.budget = d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_override_and_garbage_is_ignored() {
        let mut cfg = HubConfig::new("http://x");
        let default_connect = cfg.connect_timeout;
        cfg.apply_tuning(|name| match name {
            "GGUFS_HUB_READ_TIMEOUT_MS" => Some("250".into()),
            "GGUFS_HUB_MAX_RETRIES" => Some(" 2 ".into()),
            "GGUFS_HUB_RETRY_BUDGET_MS" => Some("1500".into()),
            "GGUFS_HUB_CONNECT_TIMEOUT_MS" => Some("soon".into()),
            _ => None,
        });
        assert_eq!(cfg.read_timeout, Duration::from_millis(250));
        assert_eq!(cfg.retry.max_retries, 2);
        assert_eq!(cfg.retry.budget, Duration::from_millis(1500));
        assert_eq!(cfg.connect_timeout, default_connect);
    }
}
