//! Repo ids and revisions as users write them, checked with the Hub's own rules before any
//! request is made: a typo must be a clear error (or ENOENT in the mount), never a round trip
//! to the Hub or a request with a path-traversing URL.
//!
//! Revision syntax in a mount path (one path component, so no `/`):
//! - `org/name@main`, `@v1.0` (branch or tag), `@<40-hex sha>` or a short sha;
//! - `@pr:N` for the pull-request ref `refs/pr/N` (git forbids `:` in ref names, so this
//!   never shadows a branch);
//! - any revision percent-encoded as the Hub URL has it: `@refs%2Fpr%2F1`, `@refs%2Fconvert%2Fparquet`,
//!   `@feature%2Fx` for a branch with a `/`.

/// Longest namespace or name the Hub accepts (huggingface_hub `_validators.py`).
const MAX_PART_LEN: usize = 96;
/// Longest revision we pass on (git refs are far shorter in practice).
const MAX_REVISION_LEN: usize = 255;

/// Why a repo id or revision was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoIdError {
    #[error("{id:?} is not a repo id: {reason} (expected ORG/NAME: ASCII letters, digits, '-', '_', '.'; 1-96 characters per part, not starting or ending with '-' or '.', no '--' or '..', no '.git' suffix)")]
    BadRepoId { id: String, reason: &'static str },
    #[error("{rev:?} is not a revision: {reason}")]
    BadRevision { rev: String, reason: &'static str },
}

/// Checks `org/name` with the rules of huggingface_hub 2.4 `validate_repo_id` (the namespace is
/// required here: a mount path always has one).
pub fn validate_repo_id(id: &str) -> Result<(), RepoIdError> {
    let bad = |reason| Err(RepoIdError::BadRepoId { id: id.to_string(), reason });
    let Some((org, name)) = id.split_once('/') else { return bad("no '/' between namespace and name") };
    if name.contains('/') {
        return bad("more than one '/'");
    }
    for part in [org, name] {
        if let Err(reason) = check_part(part) {
            return bad(reason);
        }
    }
    if id.contains("--") || id.contains("..") {
        return bad("'--' and '..' are not allowed");
    }
    if id.ends_with(".git") {
        return bad("ends with '.git'");
    }
    Ok(())
}

fn check_part(part: &str) -> Result<(), &'static str> {
    if part.is_empty() || part.len() > MAX_PART_LEN {
        return Err("a part is empty or longer than 96 characters");
    }
    if !part.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err("a character other than ASCII letters, digits, '-', '_', '.'");
    }
    let word = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !word(part.bytes().next()) || !word(part.bytes().last()) {
        return Err("a part starts or ends with '-' or '.'");
    }
    Ok(())
}

/// The Hub revision a path's `@...` suffix names: `pr:N` → `refs/pr/N`, percent-escapes decoded.
/// Refuses what no git ref can be (empty, control characters, `..`, a leading `/`).
pub fn parse_revision(raw: &str) -> Result<String, RepoIdError> {
    let bad = |reason| Err(RepoIdError::BadRevision { rev: raw.to_string(), reason });
    if let Some(n) = raw.strip_prefix("pr:") {
        if n.is_empty() || n.len() > 10 || !n.bytes().all(|b| b.is_ascii_digit()) {
            return bad("pr:N needs a pull-request number");
        }
        return Ok(format!("refs/pr/{n}"));
    }
    let Some(rev) = percent_decode(raw) else { return bad("malformed %-escape or not UTF-8") };
    if rev.is_empty() || rev.len() > MAX_REVISION_LEN {
        return bad("empty or too long");
    }
    if rev.chars().any(|c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')) {
        return bad("contains a character git forbids in ref names");
    }
    if rev.contains("..") || rev.starts_with('/') || rev.ends_with('/') || rev.contains("//") {
        return bad("'..', or a '/' at an edge or doubled");
    }
    Ok(rev)
}

/// The readable form of a revision for a path component: the inverse of `parse_revision`.
pub fn revision_path_form(rev: &str) -> String {
    match rev.strip_prefix("refs/pr/") {
        Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => format!("pr:{n}"),
        _ => rev.replace('%', "%25").replace('/', "%2F"),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_follow_the_hub_rules() {
        for ok in ["Qwen/Qwen2.5-0.5B", "a/b", "org_1/x.y-z", "_a/b_", &format!("a/{}", "n".repeat(96))] {
            assert_eq!(validate_repo_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "noslash",
            "a/b/c",
            "/b",
            "a/",
            "-a/b",
            "a/b-",
            "a/.b",
            "a/b.",
            "a--x/b",
            "a/b..c",
            "a/b.git",
            "a/b c",
            "a/bé",
            "a/b@main",
            &format!("a/{}", "n".repeat(97)),
        ] {
            assert!(validate_repo_id(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn revisions_decode_and_pr_shorthand_maps_to_refs_pr() {
        assert_eq!(parse_revision("main").unwrap(), "main");
        assert_eq!(parse_revision("v1.0").unwrap(), "v1.0");
        assert_eq!(parse_revision("pr:12").unwrap(), "refs/pr/12");
        assert_eq!(parse_revision("refs%2Fpr%2F1").unwrap(), "refs/pr/1");
        assert_eq!(parse_revision("refs%2fconvert%2Fparquet").unwrap(), "refs/convert/parquet");
        for bad in ["", "pr:", "pr:x", "a%2", "%2E%2E", "a..b", "%2Fmain", "a%3Ab", "x%00"] {
            assert!(parse_revision(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn the_path_form_round_trips() {
        for rev in ["main", "refs/pr/3", "refs/convert/parquet", "feature/x", "50%"] {
            assert_eq!(parse_revision(&revision_path_form(rev)).unwrap(), rev);
        }
        assert_eq!(revision_path_form("refs/pr/3"), "pr:3");
    }
}
