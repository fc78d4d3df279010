//! What we check before trusting a request or an answer: repo ids and paths that cannot
//! redirect a URL elsewhere on the Hub, and the digests the Hub publishes for whole files.

use reqwest::header::HeaderMap;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::error::{HubError, Target};

/// What the Hub says a whole file hashes to: the git blob sha1 (`ETag` of a regular file) or the
/// LFS sha256 (`X-Linked-Etag` of the redirect to the CDN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContentDigest {
    GitSha1(String),
    Sha256(String),
}

impl ContentDigest {
    /// Reads a quoted (possibly weak) hex ETag; anything that is not 40 or 64 hex digits (weak
    /// API etags, S3 md5s) is no usable digest.
    pub(crate) fn from_header(headers: &HeaderMap, name: &str) -> Option<ContentDigest> {
        let raw = headers.get(name)?.to_str().ok()?.trim();
        let hex = raw.trim_start_matches("W/").trim_matches('"').to_ascii_lowercase();
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        match hex.len() {
            40 => Some(ContentDigest::GitSha1(hex)),
            64 => Some(ContentDigest::Sha256(hex)),
            _ => None,
        }
    }

    /// `Integrity` error unless `body` hashes to this digest.
    pub(crate) fn verify(&self, target: &Target<'_>, body: &[u8]) -> Result<(), HubError> {
        let (kind, want, got) = match self {
            ContentDigest::GitSha1(want) => ("git blob sha1", want, git_blob_sha1(body)),
            ContentDigest::Sha256(want) => ("sha256", want, hex::encode(Sha256::digest(body))),
        };
        if &got == want {
            Ok(())
        } else {
            Err(target.integrity(format!("{kind} of the {} bytes received is {got}, the Hub says {want}", body.len())))
        }
    }
}

/// Git's object id of a blob: sha1 over `blob <len>\0` and the content.
fn git_blob_sha1(body: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", body.len()).as_bytes());
    h.update(body);
    hex::encode(h.finalize())
}

/// Longest repo file path accepted (the Hub's own limit is far below).
const MAX_PATH_LEN: usize = 4096;

/// Refuses repo ids and file paths that could make a URL point somewhere else on the Hub (with
/// the token): `.`/`..` or empty segments (URL parsers resolve `..` and `%2e%2e`), a repo id
/// that is not `name` or `org/name` of Hub characters, control characters, absurd lengths.
pub(crate) fn check_names(target: &Target<'_>) -> Result<(), HubError> {
    let hub_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    let repo_ok = !target.repo.is_empty()
        && target.repo.len() <= 200
        && target.repo.split('/').count() <= 2
        && target.repo.split('/').all(|s| !s.is_empty() && s != "." && s != ".." && s.chars().all(hub_char));
    if !repo_ok {
        return Err(target.invalid(format!("{:?} is not a Hub repo id", target.repo)));
    }
    let path_ok = !target.path.is_empty()
        && target.path.len() <= MAX_PATH_LEN
        && !target.path.chars().any(char::is_control)
        && target.path.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
    if !path_ok {
        return Err(target.invalid(format!("{:?} is not a safe repo file path", target.path)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn digests_come_from_hex_etags_only() {
        let mut h = HeaderMap::new();
        h.insert("etag", HeaderValue::from_static("\"b8c6f1a9d6e2ec8c6b3d7e0d1a2b3c4d5e6f7a8b\""));
        assert!(matches!(ContentDigest::from_header(&h, "etag"), Some(ContentDigest::GitSha1(_))));
        h.insert("etag", HeaderValue::from_static("W/\"1a2b-xyz\""));
        assert_eq!(ContentDigest::from_header(&h, "etag"), None);
        let sha = "a".repeat(64);
        h.insert("x-linked-etag", HeaderValue::from_str(&format!("\"{sha}\"")).unwrap());
        assert_eq!(ContentDigest::from_header(&h, "x-linked-etag"), Some(ContentDigest::Sha256(sha)));
    }

    #[test]
    fn git_blob_ids_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(git_blob_sha1(b"hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
        let t = Target { repo: "o/r", revision: "x", path: "config.json" };
        let d = ContentDigest::GitSha1("ce013625030ba8dba906f756967f9e9ca394464a".into());
        assert!(d.verify(&t, b"hello\n").is_ok());
        assert!(matches!(d.verify(&t, b"hellO\n"), Err(HubError::Integrity { .. })));
    }

    #[test]
    fn unsafe_repo_ids_and_paths_are_refused_before_any_request() {
        let ok = |repo: &'static str, path: &'static str| check_names(&Target { repo, revision: "main", path }).is_ok();
        assert!(ok("Qwen/Qwen2.5-0.5B", "config.json"));
        assert!(ok("gpt2", "sub dir/a#b.json"));
        for (repo, path) in [
            ("a/../b", "config.json"),
            ("a/b/c", "config.json"),
            ("a/b%2Fc", "config.json"),
            ("", "config.json"),
            ("a/b", "../../api/whoami"),
            ("a/b", "x/./y"),
            ("a/b", "/etc/passwd"),
            ("a/b", "x//y"),
            ("a/b", "a\nb"),
            ("a/b", ""),
        ] {
            assert!(!ok(repo, path), "{repo:?} {path:?} must be refused");
        }
        let long = "x".repeat(MAX_PATH_LEN + 1);
        assert!(check_names(&Target { repo: "a/b", revision: "main", path: &long }).is_err());
    }
}
