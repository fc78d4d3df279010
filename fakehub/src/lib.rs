//! A fake Hugging Face Hub for ggufs tests, demos and benchmarks (hub-spec §6): serves
//! `<root>/<org>/<name>/` directories as model repos over the Hub's HTTP API, redirects LFS
//! downloads to a CDN on a second port, and misbehaves on request (fault injection).
//!
//! `FakeHub::start(root)` runs it on its own thread and runtime, so sync tests can use it.

mod faults;
mod http;
mod repo;
mod routes;
pub mod synth;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};

pub use faults::{FaultAction, FaultRule};
pub use repo::fake_commit;

use http::{Request, Response, Written};
use repo::RepoStore;
use routes::Ctx;

/// One request as the fake saw it, for asserting client behaviour.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    /// Request number (unique per fake).
    pub id: u64,
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The `Range` header, if sent.
    pub range: Option<String>,
    /// Whether an `Authorization` header was present.
    pub authorization: bool,
    /// `"hub"` or `"cdn"`.
    pub listener: String,
    pub status: u16,
    /// Milliseconds since the fake started when the request arrived.
    pub start_ms: f64,
    /// When the response was fully written (or cut); equal to `start_ms` until then. The entry is
    /// logged before the response is sent, so a client never sees a response the log lacks.
    pub end_ms: f64,
}

struct State {
    store: RepoStore,
    cdn_origin: String,
    faults: Mutex<Vec<FaultRule>>,
    log: Mutex<Vec<LogEntry>>,
    page_size: AtomicUsize,
    started: Instant,
    request_ids: AtomicU64,
}

impl State {
    fn faults(&self) -> std::sync::MutexGuard<'_, Vec<FaultRule>> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Vec<LogEntry>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }
}

/// A running fake Hub. Dropping it stops the server.
pub struct FakeHub {
    state: Arc<State>,
    hub_addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeHub {
    /// Starts on ephemeral ports of 127.0.0.1.
    pub fn start(root: impl Into<PathBuf>) -> std::io::Result<FakeHub> {
        Self::start_on(root, 0, 0)
    }

    /// Starts on the given ports (0 = ephemeral).
    pub fn start_on(root: impl Into<PathBuf>, port: u16, cdn_port: u16) -> std::io::Result<FakeHub> {
        let hub_std = std::net::TcpListener::bind(("127.0.0.1", port))?;
        let cdn_std = std::net::TcpListener::bind(("127.0.0.1", cdn_port))?;
        hub_std.set_nonblocking(true)?;
        cdn_std.set_nonblocking(true)?;
        let hub_addr = hub_std.local_addr()?;
        let cdn_addr = cdn_std.local_addr()?;
        let state = Arc::new(State {
            store: RepoStore::new(root.into()),
            cdn_origin: format!("http://{cdn_addr}"),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            page_size: AtomicUsize::new(1000),
            started: Instant::now(),
            request_ids: AtomicU64::new(0),
        });
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::Builder::new().name("fakehub".into()).spawn(move || {
            rt.block_on(async move {
                let hub = TcpListener::from_std(hub_std).expect("hub listener");
                let cdn = TcpListener::from_std(cdn_std).expect("cdn listener");
                tokio::select! {
                    _ = accept_loop(hub, st.clone(), "hub") => {}
                    _ = accept_loop(cdn, st, "cdn") => {}
                    _ = rx => {}
                }
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        })?;
        Ok(FakeHub { state, hub_addr, shutdown: Some(tx), thread: Some(thread) })
    }

    /// The Hub base URL, e.g. `http://127.0.0.1:40123` (use as `HF_ENDPOINT`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.hub_addr)
    }

    /// The CDN origin LFS downloads are redirected to (another port, so another origin).
    pub fn cdn_origin(&self) -> String {
        self.state.cdn_origin.clone()
    }

    /// Replaces the fault rules.
    pub fn set_faults(&self, rules: Vec<FaultRule>) {
        *self.state.faults() = rules;
    }

    /// Returns and clears the request log.
    pub fn take_log(&self) -> Vec<LogEntry> {
        std::mem::take(&mut *self.state.log())
    }

    /// Sets the tree listing page size (pagination tests).
    pub fn set_page_size(&self, n: usize) {
        self.state.page_size.store(n.max(1), Ordering::Relaxed);
    }

    /// Clears faults and the log and restores the page size.
    pub fn reset(&self) {
        self.set_faults(Vec::new());
        self.take_log();
        self.set_page_size(1000);
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, which: &'static str) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(stream, state.clone(), which));
    }
}

async fn serve_connection(stream: TcpStream, state: Arc<State>, which: &'static str) {
    let mut reader = BufReader::new(stream);
    while let Ok(Some(req)) = http::read_request(&mut reader).await {
        let start_ms = state.ms();
        let keep_alive = req.keep_alive();
        let active = faults::select(&mut state.faults(), &req.method, &req.target, which);
        if active.sleep_before_ms > 0 {
            tokio::time::sleep(Duration::from_millis(active.sleep_before_ms)).await;
        }
        let id = state.request_ids.fetch_add(1, Ordering::Relaxed);
        let resp = respond(&state, &req, which, &active, id);
        state.log().push(LogEntry {
            id,
            method: req.method.clone(),
            path: req.target.clone(),
            range: req.header("range").map(str::to_string),
            authorization: req.header("authorization").is_some(),
            listener: which.to_string(),
            status: resp.status,
            start_ms,
            end_ms: start_ms,
        });
        let written = http::write_response(reader.get_mut(), resp, &active).await;
        let end_ms = state.ms();
        if let Some(e) = state.log().iter_mut().rev().find(|e| e.id == id) {
            e.end_ms = end_ms;
        }
        if !matches!(written, Ok(Written::Complete)) || !keep_alive {
            return;
        }
    }
}

fn respond(state: &State, req: &Request, which: &str, active: &faults::ActiveFaults, id: u64) -> Response {
    let mut resp = if let Some(forced) = &active.status {
        forced_status(forced)
    } else if active.reject_auth && req.header("authorization").is_some() {
        Response::new(403, "AccessDenied: Authorization header not allowed with a signed URL")
    } else if which == "hub" && req.path().starts_with("/_admin/") {
        admin(state, req)
    } else {
        let ctx = Ctx {
            store: &state.store,
            cdn_origin: &state.cdn_origin,
            page_size: state.page_size.load(Ordering::Relaxed),
            ignore_range: active.ignore_range,
        };
        if which == "hub" {
            routes::hub_route(&ctx, req)
        } else {
            routes::cdn_route(&ctx, req)
        }
    };
    if let (Some((shift, total_delta)), Some(cr)) = (active.wrong_content_range, resp.get_header("Content-Range")) {
        if let Some(bad) = shifted_content_range(cr, shift, total_delta) {
            resp.set_header("Content-Range", bad);
        }
    }
    resp.header("X-Request-Id", format!("fake-{id}"))
}

fn forced_status(action: &FaultAction) -> Response {
    match action {
        FaultAction::RateLimit { retry_after } => routes::hub_error(429, None, "Too many requests")
            .header("Retry-After", retry_after.to_string())
            .header("RateLimit", format!("\"api\";r=0;t={retry_after}")),
        FaultAction::Status { code, x_error_code, message, headers } => {
            let mut r =
                routes::hub_error(*code, x_error_code.as_deref(), message.as_deref().unwrap_or("injected fault"));
            for (k, v) in headers {
                r = r.header(k, v.clone());
            }
            r
        }
        _ => routes::hub_error(500, None, "bad fault"),
    }
}

fn shifted_content_range(cr: &str, shift: i64, total_delta: i64) -> Option<String> {
    let rest = cr.strip_prefix("bytes ")?;
    let (span, total) = rest.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b, t) = (a.parse::<i64>().ok()?, b.parse::<i64>().ok()?, total.parse::<i64>().ok()?);
    let (shift, total_delta) = if shift == 0 && total_delta == 0 { (1, 0) } else { (shift, total_delta) };
    Some(format!("bytes {}-{}/{}", a + shift, b + shift, t + total_delta))
}

fn admin(state: &State, req: &Request) -> Response {
    match (req.method.as_str(), req.path()) {
        ("POST", "/_admin/faults") => match serde_json::from_slice::<Vec<FaultRule>>(&req.body) {
            Ok(rules) => {
                let n = rules.len();
                *state.faults() = rules;
                Response::json(200, &json!({ "rules": n }))
            }
            Err(e) => routes::hub_error(400, None, &format!("bad fault rules: {e}")),
        },
        ("POST", "/_admin/log") => {
            let log = std::mem::take(&mut *state.log());
            Response::json(200, &serde_json::to_value(log).unwrap_or_default())
        }
        ("POST", "/_admin/reset") => {
            state.faults().clear();
            state.log().clear();
            state.page_size.store(1000, Ordering::Relaxed);
            Response::json(200, &json!({}))
        }
        ("POST", "/_admin/config") => {
            let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
            if let Some(n) = v.get("page_size").and_then(|n| n.as_u64()) {
                state.page_size.store((n as usize).max(1), Ordering::Relaxed);
            }
            Response::json(200, &json!({}))
        }
        _ => routes::hub_error(404, None, "unknown admin route"),
    }
}
