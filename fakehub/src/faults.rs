//! Fault injection: rules that make the fake Hub misbehave the ways real Hubs, CDNs and networks
//! do (hub-spec §6.3), so client robustness can be tested deterministically.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a matching rule does to the response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer with this status (and optional `X-Error-Code`, message, headers) instead.
    Status {
        code: u16,
        #[serde(default)]
        x_error_code: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// 429 with `Retry-After: retry_after`.
    RateLimit {
        #[serde(default)]
        retry_after: u64,
    },
    /// Wait before sending the response headers.
    SleepBeforeHeaders { ms: u64 },
    /// Slow response: wait `sleep_ms` before the headers and/or pace the body at `bytes_per_sec`.
    SlowBody {
        #[serde(default)]
        sleep_ms: u64,
        #[serde(default)]
        bytes_per_sec: Option<u64>,
    },
    /// Send `after_bytes` of the body, then go silent for `ms`, then finish.
    StallMidBody { after_bytes: u64, ms: u64 },
    /// Send `after_bytes` of the body, then reset the connection (announced length kept).
    ResetMidBody { after_bytes: u64 },
    /// Send `after_bytes` of the body, then close cleanly (announced length kept).
    ShortBody { after_bytes: u64 },
    /// Answer a Range request with 200 and the whole file.
    IgnoreRange,
    /// Announce a different Content-Range than the bytes sent.
    WrongContentRange {
        #[serde(default)]
        shift: i64,
        #[serde(default)]
        total_delta: i64,
    },
    /// XOR the body byte at `offset` (relative to the body) with `xor`.
    CorruptBytes { offset: u64, xor: u8 },
    /// 403 when the request carries `Authorization` (catches token leaks to the CDN).
    CdnRejectAuth,
}

/// One fault rule: which requests it hits, how often, and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    /// Substring of the request target (path and query) the rule applies to.
    #[serde(rename = "match", default)]
    pub matches: String,
    /// HTTP method to match (any if absent).
    #[serde(default)]
    pub method: Option<String>,
    /// `"hub"` or `"cdn"` (either if absent).
    #[serde(default)]
    pub listener: Option<String>,
    /// How many matching requests get the fault (unlimited if absent).
    #[serde(default)]
    pub times: Option<u32>,
    /// Matching requests to let through untouched first.
    #[serde(default)]
    pub after: u32,
    #[serde(flatten)]
    pub action: FaultAction,
    #[serde(skip)]
    seen: u32,
    #[serde(skip)]
    applied: u32,
}

impl FaultRule {
    /// A rule that applies `action` to every request whose target contains `matches`.
    pub fn new(matches: impl Into<String>, action: FaultAction) -> Self {
        Self {
            matches: matches.into(),
            method: None,
            listener: None,
            times: None,
            after: 0,
            action,
            seen: 0,
            applied: 0,
        }
    }

    /// Limits the rule to `n` hits.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    /// Skips the first `n` matching requests.
    pub fn after(mut self, n: u32) -> Self {
        self.after = n;
        self
    }

    /// Restricts the rule to one method.
    pub fn method(mut self, m: impl Into<String>) -> Self {
        self.method = Some(m.into());
        self
    }

    /// Restricts the rule to one listener (`"hub"` or `"cdn"`).
    pub fn listener(mut self, l: impl Into<String>) -> Self {
        self.listener = Some(l.into());
        self
    }

    fn hit(&mut self, method: &str, target: &str, listener: &str) -> bool {
        if !target.contains(&self.matches)
            || self.method.as_deref().is_some_and(|m| !m.eq_ignore_ascii_case(method))
            || self.listener.as_deref().is_some_and(|l| l != listener)
        {
            return false;
        }
        self.seen += 1;
        if self.seen <= self.after || self.times.is_some_and(|t| self.applied >= t) {
            return false;
        }
        self.applied += 1;
        true
    }
}

/// The faults that apply to one request, folded into what the server must do.
#[derive(Debug, Default, Clone)]
pub struct ActiveFaults {
    pub status: Option<FaultAction>,
    pub sleep_before_ms: u64,
    pub bytes_per_sec: Option<u64>,
    pub stall: Option<(u64, u64)>,
    pub cut: Option<(u64, bool)>,
    pub ignore_range: bool,
    pub wrong_content_range: Option<(i64, i64)>,
    pub corrupt: Option<(u64, u8)>,
    pub reject_auth: bool,
}

/// Finds the rules that hit this request and updates their counters.
pub fn select(rules: &mut [FaultRule], method: &str, target: &str, listener: &str) -> ActiveFaults {
    let mut f = ActiveFaults::default();
    for rule in rules.iter_mut() {
        if !rule.hit(method, target, listener) {
            continue;
        }
        match &rule.action {
            a @ (FaultAction::Status { .. } | FaultAction::RateLimit { .. }) => {
                f.status.get_or_insert_with(|| a.clone());
            }
            FaultAction::SleepBeforeHeaders { ms } => f.sleep_before_ms += ms,
            FaultAction::SlowBody { sleep_ms, bytes_per_sec } => {
                f.sleep_before_ms += sleep_ms;
                f.bytes_per_sec = bytes_per_sec.or(f.bytes_per_sec);
            }
            FaultAction::StallMidBody { after_bytes, ms } => f.stall = Some((*after_bytes, *ms)),
            FaultAction::ResetMidBody { after_bytes } => f.cut = Some((*after_bytes, true)),
            FaultAction::ShortBody { after_bytes } => f.cut = Some((*after_bytes, false)),
            FaultAction::IgnoreRange => f.ignore_range = true,
            FaultAction::WrongContentRange { shift, total_delta } => {
                f.wrong_content_range = Some((*shift, *total_delta))
            }
            FaultAction::CorruptBytes { offset, xor } => f.corrupt = Some((*offset, *xor)),
            FaultAction::CdnRejectAuth => f.reject_auth = true,
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_from_the_admin_json() {
        let rules: Vec<FaultRule> = serde_json::from_str(
            r#"[{"match":"/_cdn/","action":"reset_mid_body","after_bytes":10,"times":1},
                {"match":"x","action":"ignore_range"},
                {"match":"y","action":"rate_limit","retry_after":0,"after":2}]"#,
        )
        .unwrap();
        assert_eq!(rules[0].action, FaultAction::ResetMidBody { after_bytes: 10 });
        assert_eq!(rules[1].action, FaultAction::IgnoreRange);
        assert_eq!(rules[2].after, 2);
    }

    #[test]
    fn times_and_after_limit_hits() {
        let mut rules = vec![FaultRule::new("a", FaultAction::IgnoreRange).after(1).times(2)];
        let hits: Vec<bool> = (0..5).map(|_| select(&mut rules, "GET", "/a", "hub").ignore_range).collect();
        assert_eq!(hits, [false, true, true, false, false]);
        assert!(!select(&mut rules, "GET", "/b", "hub").ignore_range);
    }
}
