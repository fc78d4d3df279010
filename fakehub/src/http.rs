//! A minimal HTTP/1.1 server side (keep-alive, Content-Length bodies) written by hand so that
//! faults can be injected at the byte level: cut bodies, resets, stalls, wrong headers.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::faults::ActiveFaults;

const MAX_HEAD: usize = 64 << 10;
const MAX_BODY: usize = 4 << 20;
const WRITE_CHUNK: usize = 64 << 10;

/// A parsed request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The path part of the target.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// Decoded query parameters, in order.
    pub fn query(&self) -> Vec<(String, String)> {
        let q = self.target.split_once('?').map_or("", |(_, q)| q);
        q.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect()
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&str> {
        self.header("authorization").and_then(|v| v.strip_prefix("Bearer ")).map(str::trim)
    }

    /// True if the client wants the connection kept open.
    pub fn keep_alive(&self) -> bool {
        !self.header("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"))
    }
}

/// A response to write.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Content-Length to announce when it differs from the body (HEAD responses).
    pub announced_len: Option<u64>,
}

impl Response {
    /// A response with a body.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self { status, headers: Vec::new(), body: body.into(), announced_len: None }
    }

    /// A JSON response.
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self::new(status, value.to_string()).header("Content-Type", "application/json")
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Replaces (or adds) a header.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.into()));
    }

    /// The value of a header.
    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// Drops the body but keeps its length announced (HEAD).
    pub fn head_only(mut self) -> Self {
        self.announced_len = Some(self.body.len() as u64);
        self.body.clear();
        self
    }
}

/// Reads one request; `Ok(None)` on a clean EOF between requests.
pub async fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    let mut total = 0;
    if reader.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (method, target) = match (parts.next(), parts.next()) {
        (Some(m), Some(t)) => (m.to_string(), t.to_string()),
        _ => return Err(invalid("bad request line")),
    };
    let mut headers = Vec::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).await?;
        total += n;
        if n == 0 || total > MAX_HEAD {
            return Err(invalid("request head too long or cut"));
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let mut req = Request { method, target, headers, body: Vec::new() };
    let len: usize = req.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    if len > MAX_BODY {
        return Err(invalid("request body too large"));
    }
    req.body.resize(len, 0);
    reader.read_exact(&mut req.body).await?;
    Ok(Some(req))
}

fn invalid(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// How writing a response ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Written {
    /// Fully sent; the connection may be reused.
    Complete,
    /// Deliberately cut; the connection must be dropped.
    Cut,
}

/// Writes `resp`, applying the body-level faults.
pub async fn write_response(
    stream: &mut TcpStream,
    mut resp: Response,
    faults: &ActiveFaults,
) -> std::io::Result<Written> {
    if let Some((offset, xor)) = faults.corrupt {
        if let Some(b) = resp.body.get_mut(offset as usize) {
            *b ^= xor;
        }
    }
    let len = resp.announced_len.unwrap_or(resp.body.len() as u64);
    let mut head = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    for (n, v) in &resp.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {len}\r\n\r\n"));
    let body = &resp.body;
    if faults.cut.is_none() && faults.stall.is_none() && faults.bytes_per_sec.is_none() {
        // No body fault: one write of head and body (the kernel takes it as fast as the client
        // reads), so the fake is never what a benchmark measures.
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        return Ok(Written::Complete);
    }
    stream.write_all(head.as_bytes()).await?;
    let cut_at = faults.cut.map(|(n, _)| (n as usize).min(body.len()));
    let mut sent = 0usize;
    let mut stalled = false;
    while sent < body.len() {
        let mut end = (sent + WRITE_CHUNK).min(body.len());
        if let Some(c) = cut_at {
            end = end.min(c);
        }
        if let Some((after, _)) = faults.stall.filter(|_| !stalled) {
            if (after as usize) > sent {
                end = end.min(after as usize);
            }
        }
        if let Some(bps) = faults.bytes_per_sec.filter(|&b| b > 0) {
            end = end.min(sent + (bps as usize / 10).max(1));
        }
        if end > sent {
            stream.write_all(body.get(sent..end).unwrap_or_default()).await?;
            stream.flush().await?;
            if let Some(bps) = faults.bytes_per_sec.filter(|&b| b > 0) {
                tokio::time::sleep(Duration::from_secs_f64((end - sent) as f64 / bps as f64)).await;
            }
            sent = end;
        }
        if cut_at == Some(sent) {
            return cut(stream, faults.cut.is_some_and(|(_, reset)| reset)).await;
        }
        if let Some((after, ms)) = faults.stall.filter(|_| !stalled) {
            if sent >= after as usize {
                stalled = true;
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
        }
    }
    if cut_at == Some(sent) && sent < len as usize {
        return cut(stream, faults.cut.is_some_and(|(_, reset)| reset)).await;
    }
    stream.flush().await?;
    Ok(Written::Complete)
}

async fn cut(stream: &mut TcpStream, reset: bool) -> std::io::Result<Written> {
    stream.flush().await?;
    if reset {
        // SO_LINGER 0 makes the close send RST, like a dropped connection mid-transfer. A zero
        // linger never blocks on drop, which is what the deprecation warns about.
        #[allow(deprecated)]
        stream.set_linger(Some(Duration::ZERO))?;
    } else {
        stream.shutdown().await?;
    }
    Ok(Written::Cut)
}

/// Decodes `%XX` escapes (and leaves malformed ones as they are).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or_default();
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a repo path for a URL, keeping `/`.
pub fn encode_path(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A single `bytes=` range resolved against `size`: `Ok(Some((first, last)))`, `Ok(None)` to
/// serve the whole file (no or unusable header), `Err(())` when unsatisfiable (416).
pub fn parse_range(header: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (first, last) = match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(f), Ok(l)) if f <= l => (f, l.min(size.saturating_sub(1))),
        (Ok(f), Err(_)) if b.is_empty() => (f, size.saturating_sub(1)),
        (Err(_), Ok(n)) if a.is_empty() && n > 0 => (size.saturating_sub(n), size.saturating_sub(1)),
        _ => return Ok(None),
    };
    if first >= size {
        return Err(());
    }
    Ok(Some((first, last)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc7233() {
        assert_eq!(parse_range(Some("bytes=0-9"), 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(Some("bytes=90-200"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=10-"), 100), Ok(Some((10, 99))));
        assert_eq!(parse_range(Some("bytes=-5"), 100), Ok(Some((95, 99))));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(parse_range(None, 100), Ok(None));
    }

    #[test]
    fn percent_decoding_round_trips() {
        assert_eq!(percent_decode("refs%2Fpr%2F1"), "refs/pr/1");
        assert_eq!(percent_decode(&encode_path("a b/c#d")), "a b/c#d");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
