//! The Hub endpoints (hub-spec §6.2): model info, tree listing, resolve (with the CDN redirect
//! for LFS files), the CDN byte server, and Hub-style error responses.

use serde_json::{json, Value};

use crate::http::{encode_path, parse_range, percent_decode, Request, Response};
use crate::repo::{FileInfo, Repo, RepoStore};

/// What the routes need from the server.
pub struct Ctx<'a> {
    pub store: &'a RepoStore,
    /// `http://127.0.0.1:<cdn port>`.
    pub cdn_origin: &'a str,
    /// Tree page size.
    pub page_size: usize,
    /// Serve Range requests as if Range were absent.
    pub ignore_range: bool,
}

/// A Hub-style error: status, `X-Error-Code`, `X-Error-Message`, JSON body.
pub fn hub_error(status: u16, code: Option<&str>, message: &str) -> Response {
    let mut r = Response::json(status, &json!({ "error": message })).header("X-Error-Message", message);
    if let Some(c) = code {
        r = r.header("X-Error-Code", c);
    }
    r
}

fn repo_not_found(req: &Request) -> Response {
    let status = if req.token().is_some() { 404 } else { 401 };
    hub_error(status, Some("RepoNotFound"), "Repository not found")
}

/// Looks up the repo and enforces private/disabled/gated access.
fn open_repo(ctx: &Ctx, req: &Request, id: &str) -> Result<Repo, Response> {
    let repo = ctx.store.repo(id).ok_or_else(|| repo_not_found(req))?;
    let ok = repo.accepts(req.token());
    if repo.flags.private && !ok {
        return Err(repo_not_found(req));
    }
    if repo.flags.disabled {
        return Err(hub_error(403, None, "Access to this resource is disabled."));
    }
    if repo.flags.is_gated() && !ok {
        return Err(match req.token() {
            None => hub_error(
                401,
                Some("GatedRepo"),
                &format!("Access to model {id} is restricted. You must have access to it and be authenticated to access it. Please log in."),
            ),
            Some(_) => hub_error(
                403,
                Some("GatedRepo"),
                &format!("Access to model {id} is restricted and you are not in the authorized list. Visit https://huggingface.co/{id} to ask for access."),
            ),
        });
    }
    Ok(repo)
}

fn resolve_rev(repo: &Repo, rev: &str) -> Result<String, Response> {
    repo.resolve(rev).ok_or_else(|| hub_error(404, Some("RevisionNotFound"), &format!("Invalid rev id: {rev}")))
}

fn entry_not_found(commit: &str) -> Response {
    hub_error(404, Some("EntryNotFound"), "Entry not found").header("X-Repo-Commit", commit)
}

/// Routes a request on the Hub listener (admin routes are handled by the server).
pub fn hub_route(ctx: &Ctx, req: &Request) -> Response {
    let path = req.path().to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let result = match segs.as_slice() {
        ["api", "agent-harnesses"] => Ok(Response::json(200, &json!([]))),
        ["api", "models", org, name, rest @ ..] => api_models(ctx, req, &format!("{org}/{name}"), rest),
        [org, name, "resolve", rev, file @ ..] if !file.is_empty() => {
            let file = percent_decode(&file.join("/"));
            resolve(ctx, req, &format!("{org}/{name}"), &percent_decode(rev), &file)
        }
        _ => Err(hub_error(404, None, "Not found")),
    };
    result.unwrap_or_else(|e| e)
}

fn api_models(ctx: &Ctx, req: &Request, id: &str, rest: &[&str]) -> Result<Response, Response> {
    if req.method != "GET" && req.method != "HEAD" {
        return Err(hub_error(405, None, "Method not allowed"));
    }
    let repo = open_repo(ctx, req, id)?;
    match rest {
        [] => model_info(ctx, req, &repo, "main"),
        ["revision", rev] => model_info(ctx, req, &repo, &percent_decode(rev)),
        ["tree", rev, sub @ ..] => tree(ctx, req, &repo, &percent_decode(rev), &percent_decode(&sub.join("/"))),
        _ => Err(hub_error(404, None, "Not found")),
    }
}

fn model_info(ctx: &Ctx, req: &Request, repo: &Repo, rev: &str) -> Result<Response, Response> {
    let sha = resolve_rev(repo, rev)?;
    let blobs = req.query().iter().any(|(k, v)| k == "blobs" && v == "true");
    let files = ctx.store.files(repo).map_err(|e| hub_error(500, None, &e.to_string()))?;
    let siblings: Vec<Value> = files
        .iter()
        .map(|f| {
            if !blobs {
                return json!({ "rfilename": f.path });
            }
            let mut s = json!({ "rfilename": f.path, "size": f.size, "blobId": f.oid });
            if let Some((sha256, ptr)) = &f.lfs {
                s["lfs"] = json!({ "sha256": sha256, "size": f.size, "pointerSize": ptr });
            }
            s
        })
        .collect();
    let author = repo.id.split('/').next().unwrap_or_default();
    let info = json!({
        "_id": &sha[..24],
        "id": repo.id, "modelId": repo.id, "author": author, "sha": sha,
        "private": repo.flags.private, "gated": repo.flags.gated_json(), "disabled": repo.flags.disabled,
        "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
        "tags": [], "siblings": siblings,
    });
    Ok(Response::json(200, &info))
}

fn tree_entry(f: &FileInfo) -> Value {
    let mut e = json!({ "type": "file", "oid": f.oid, "size": f.size, "path": f.path });
    if let Some((sha256, ptr)) = &f.lfs {
        e["lfs"] = json!({ "oid": sha256, "size": f.size, "pointerSize": ptr });
    }
    e
}

fn dir_entry(path: &str) -> Value {
    use sha1::{Digest, Sha1};
    json!({ "type": "directory", "oid": hex::encode(Sha1::digest(path.as_bytes())), "size": 0, "path": path })
}

fn tree(ctx: &Ctx, req: &Request, repo: &Repo, rev: &str, sub: &str) -> Result<Response, Response> {
    let sha = resolve_rev(repo, rev)?;
    let query = req.query();
    let flag = |k: &str| query.iter().any(|(n, v)| n == k && v == "true");
    let recursive = flag("recursive");
    let files = ctx.store.files(repo).map_err(|e| hub_error(500, None, &e.to_string()))?;
    let prefix = if sub.is_empty() { String::new() } else { format!("{}/", sub.trim_end_matches('/')) };
    let mut entries: Vec<(String, Value)> = Vec::new();
    let mut dirs = std::collections::BTreeSet::new();
    for f in files.iter().filter(|f| f.path.starts_with(&prefix)) {
        let rel = &f.path[prefix.len()..];
        let parts: Vec<&str> = rel.split('/').collect();
        for depth in 1..parts.len() {
            if recursive || depth == 1 {
                dirs.insert(format!("{prefix}{}", parts[..depth].join("/")));
            }
        }
        if recursive || parts.len() == 1 {
            entries.push((f.path.clone(), tree_entry(f)));
        }
    }
    if !sub.is_empty() && entries.is_empty() && dirs.is_empty() {
        return Err(entry_not_found(&sha));
    }
    entries.extend(dirs.iter().map(|d| (d.clone(), dir_entry(d))));
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let page_size = if flag("expand") { ctx.page_size.min(50) } else { ctx.page_size }.max(1);
    let cursor: usize = query.iter().find(|(k, _)| k == "cursor").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = entries.iter().skip(cursor).take(page_size).map(|(_, v)| v.clone()).collect();
    let mut resp = Response::json(200, &Value::Array(page));
    if cursor + page_size < entries.len() {
        let host = req.header("host").unwrap_or("127.0.0.1");
        let params: Vec<String> = query
            .iter()
            .filter(|(k, _)| k != "cursor")
            .map(|(k, v)| format!("{}={}", encode_path(k), encode_path(v)))
            .collect();
        let mut next = format!("http://{host}{}?", req.path());
        for p in params {
            next.push_str(&p);
            next.push('&');
        }
        next.push_str(&format!("cursor={}", cursor + page_size));
        resp = resp.header("Link", format!("<{next}>; rel=\"next\""));
    }
    Ok(resp)
}

fn resolve(ctx: &Ctx, req: &Request, id: &str, rev: &str, path: &str) -> Result<Response, Response> {
    let repo = open_repo(ctx, req, id)?;
    let sha = resolve_rev(&repo, rev)?;
    let file = ctx.store.file(&repo, path).ok_or_else(|| entry_not_found(&sha))?;
    let resp = match &file.lfs {
        Some((sha256, _)) => {
            let location = format!("{}/_cdn/{id}/{sha}/{}?Expires=4102444800", ctx.cdn_origin, encode_path(path));
            Response::new(302, format!("Found. Redirecting to {location}"))
                .header("Location", location)
                .header("Content-Type", "text/plain; charset=utf-8")
                .header("ETag", format!("\"{}\"", file.oid))
                .header("X-Linked-Etag", format!("\"{sha256}\""))
                .header("X-Linked-Size", file.size.to_string())
                .header("X-Repo-Commit", sha.clone())
        }
        None => serve_file(ctx, req, &file)?
            .header("ETag", format!("\"{}\"", file.oid))
            .header("X-Repo-Commit", sha.clone()),
    };
    Ok(if req.method == "HEAD" { resp.head_only() } else { resp })
}

/// Routes a request on the CDN listener: `/_cdn/{org}/{name}/{sha}/{path}`.
pub fn cdn_route(ctx: &Ctx, req: &Request) -> Response {
    let path = req.path().to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let result = match segs.as_slice() {
        ["_cdn", org, name, sha, file @ ..] if !file.is_empty() => {
            let id = format!("{org}/{name}");
            let file = percent_decode(&file.join("/"));
            match ctx.store.repo(&id).filter(|r| r.resolve(sha).as_deref() == Some(*sha)) {
                None => Err(Response::new(404, "NoSuchKey").header("Content-Type", "text/plain")),
                Some(repo) => match ctx.store.file(&repo, &file) {
                    None => Err(Response::new(404, "NoSuchKey").header("Content-Type", "text/plain")),
                    Some(f) => serve_file(ctx, req, &f).map(|r| {
                        let etag = f.lfs.as_ref().map_or(f.oid.clone(), |(s, _)| s.clone());
                        r.header("ETag", format!("\"{etag}\""))
                            .header(
                                "Content-Disposition",
                                format!("inline; filename=\"{}\"", file.rsplit('/').next().unwrap_or("")),
                            )
                            .header("Cache-Control", "public, max-age=31536000")
                    }),
                },
            }
        }
        _ => Err(Response::new(404, "NoSuchKey")),
    };
    let resp = result.unwrap_or_else(|e| e);
    if req.method == "HEAD" {
        resp.head_only()
    } else {
        resp
    }
}

/// The file (or the requested range of it) with `Accept-Ranges`, 206/416 per RFC 7233.
fn serve_file(ctx: &Ctx, req: &Request, f: &FileInfo) -> Result<Response, Response> {
    let range_header = if ctx.ignore_range { None } else { req.header("range") };
    let range = parse_range(range_header, f.size)
        .map_err(|()| Response::new(416, "").header("Content-Range", format!("bytes */{}", f.size)))?;
    let (first, last) = range.unwrap_or((0, f.size.saturating_sub(1)));
    let bytes = if f.size == 0 { Vec::new() } else { read_slice(f, first, last)? };
    let resp = match range {
        Some(_) => Response::new(206, bytes).header("Content-Range", format!("bytes {first}-{last}/{}", f.size)),
        None => Response::new(200, bytes),
    };
    Ok(resp.header("Accept-Ranges", "bytes").header("Content-Type", "application/octet-stream"))
}

fn read_slice(f: &FileInfo, first: u64, last: u64) -> Result<Vec<u8>, Response> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e: std::io::Error| hub_error(500, None, &format!("{}: {e}", f.path));
    let mut file = std::fs::File::open(&f.abs).map_err(io)?;
    file.seek(SeekFrom::Start(first)).map_err(io)?;
    let want = (last - first + 1) as usize;
    // Read into spare capacity (no zero-filling first): the benchmark serves gigabytes from
    // here on the same cores as the client it measures.
    let mut buf = Vec::with_capacity(want);
    file.take(want as u64).read_to_end(&mut buf).map_err(io)?;
    if buf.len() != want {
        return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(buf)
}
