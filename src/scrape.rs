//! The metrics listener (`--metrics-addr`): `GET /metrics` in the
//! Prometheus text format, version 0.0.4, unauthenticated, on its own
//! address only. It runs the server's own accept loop and HTTP layer with a
//! service of its own that knows one path.
//!
//! A scrape reads the atomics of [`METRICS`], the process's figures from
//! `/proc/self` and the database files' sizes: it takes no lock that the
//! chat or the database writer takes, so scraping costs them nothing.

use std::future::{ready, Future};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::api::ApiError;
use crate::http::request::{Method, Request};
use crate::http::response::Response;
use crate::http::server;
use crate::http::service::{Exchange, Refusal, Service};
use crate::metrics::{Exposition, METRICS, STATUS_CLASSES, UNMATCHED};
use crate::routes::ROUTES;
use crate::shutdown::Shutdown;
use crate::sys;

/// Scrapers are few: a small bound keeps the listener from costing the
/// server descriptors.
const MAX_CONNECTIONS: usize = 64;
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves `/metrics` on `listener` until `shutdown`.
pub(crate) async fn serve(listener: TcpListener, db: Option<PathBuf>, shutdown: Shutdown) {
    server::serve(listener, Arc::new(Scrape { db }), MAX_CONNECTIONS, shutdown).await;
}

struct Scrape {
    /// The database file, whose size (with its write-ahead log) is shown;
    /// none in cluster mode, where PostgreSQL reports its own.
    db: Option<PathBuf>,
}

impl Service for Scrape {
    fn handle<'e>(&'e self, ex: &'e mut Exchange<'_, '_>) -> impl Future<Output = Response> + Send + 'e {
        ready(self.answer(ex.request).unwrap_or_else(ApiError::into_response))
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        ApiError::from(refusal).into_response()
    }
}

impl Scrape {
    fn answer(&self, request: &Request) -> Result<Response, ApiError> {
        if request.path() != "/metrics" {
            return Err(ApiError::not_found("not found"));
        }
        if !matches!(request.method, Method::Get | Method::Head) {
            return Err(ApiError::method_not_allowed("GET, HEAD".into()));
        }
        Ok(Response::bytes(200, CONTENT_TYPE, render(self.db.as_deref())).header("Cache-Control", "no-store"))
    }
}

/// Every metric, in the text format.
fn render(db: Option<&Path>) -> String {
    let mut out = Exposition::default();
    let m = &METRICS;
    let gauge = |value: i64| value.to_string();
    let count = |value: u64| value.to_string();
    for (name, help, histogram) in [
        (
            "chat_commit_batch_size",
            "Write jobs committed together in one group commit.",
            &m.commit_batch_size,
        ),
        (
            "chat_commit_duration_seconds",
            "Time of one group commit, from BEGIN to the end of COMMIT.",
            &m.commit_latency,
        ),
    ] {
        out.family(name, "histogram", help);
        out.histogram(name, &[], histogram);
    }
    render_routes(&mut out);
    out.family("chat_logins_total", "counter", "Logins (POST /token) by outcome.");
    for (outcome, counter) in [
        ("ok", &m.logins.ok),
        ("bad", &m.logins.bad),
        ("throttled", &m.logins.throttled),
    ] {
        out.sample("chat_logins_total", &[("outcome", outcome)], counter.get());
    }
    let usage = sys::process_usage();
    let figures = [
        (
            "chat_http_connections_open",
            "gauge",
            "Open HTTP connections (a WebSocket counts here until its upgrade).",
            Some(gauge(m.http_connections.get())),
        ),
        (
            "chat_websocket_connections_open",
            "gauge",
            "Open chat WebSocket connections.",
            Some(gauge(m.websocket_connections.get())),
        ),
        (
            "chat_online_users",
            "gauge",
            "Distinct users with a chat connection (in cluster mode, on any node, as this node last counted them).",
            Some(gauge(m.online_users.get())),
        ),
        (
            "chat_messages_committed_total",
            "counter",
            "Chat messages committed to the database.",
            Some(count(m.messages_committed.get())),
        ),
        (
            "chat_deliveries_total",
            "counter",
            "Chat events handed to WebSocket connections.",
            Some(count(m.deliveries.get())),
        ),
        (
            "chat_slow_consumer_drops_total",
            "counter",
            "Chat connections dropped for falling too far behind.",
            Some(count(m.slow_consumer_drops.get())),
        ),
        (
            "chat_upload_bytes_total",
            "counter",
            "File bytes stored by uploads.",
            Some(count(m.upload_bytes.get())),
        ),
        (
            "chat_download_bytes_total",
            "counter",
            "File bytes of download responses.",
            Some(count(m.download_bytes.get())),
        ),
        (
            "chat_database_size_bytes",
            "gauge",
            "Size of the database file and its write-ahead log.",
            db.map(|db| count(database_size(db))),
        ),
        (
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
            usage.as_ref().map(|usage| count(usage.resident_bytes)),
        ),
        (
            "process_open_fds",
            "gauge",
            "Open file descriptors.",
            usage.as_ref().map(|usage| count(usage.open_fds)),
        ),
        (
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            usage.as_ref().map(|usage| usage.cpu_seconds.to_string()),
        ),
    ];
    // A figure that cannot be read (no /proc) is left out, not shown as 0.
    for (name, kind, help, value) in figures {
        if let Some(value) = value {
            out.single(name, kind, help, value);
        }
    }
    out.finish()
}

/// Requests by route of the table (and `unmatched`) and status class, and
/// their latency by route.
fn render_routes(out: &mut Exposition) {
    let routes = ROUTES
        .iter()
        .enumerate()
        .map(|(slot, route)| (slot, route.method.as_str(), route.pattern))
        .chain([(UNMATCHED, "any", "unmatched")]);
    out.family(
        "chat_http_requests_total",
        "counter",
        "HTTP requests answered, by route of the route table and status class.",
    );
    for (slot, method, route) in routes.clone() {
        let counts = METRICS.routes[slot].by_class();
        for (class, count) in STATUS_CLASSES.iter().zip(counts) {
            let labels = [("method", method), ("route", route), ("status", *class)];
            out.sample("chat_http_requests_total", &labels, count);
        }
    }
    out.family(
        "chat_http_request_duration_seconds",
        "histogram",
        "Time from a request's head to its response, by route.",
    );
    for (slot, method, route) in routes {
        let labels = [("method", method), ("route", route)];
        out.histogram(
            "chat_http_request_duration_seconds",
            &labels,
            &METRICS.routes[slot].latency,
        );
    }
}

/// The database file and its write-ahead log, in bytes; a file that cannot
/// be read counts 0.
fn database_size(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    [db.as_os_str(), &wal]
        .iter()
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|meta| meta.len())
        .sum()
}
