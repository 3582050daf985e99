//! chat-server: a real-time chat room and file service on HTTP/1.1 and
//! WebSocket, without a web framework.
//!
//! The path of a request, and the module that holds each step:
//!
//! - [`server`]: accept loop, connection bound, shared [`server::App`], shutdown;
//! - [`http`]: bytes to requests and responses to bytes (`request`, `chunked`,
//!   `body`, `response`), and the keep-alive loop (`conn`);
//! - [`router`]: the route table and dispatch to handlers;
//! - handlers: [`accounts`], [`files`] (uploads, downloads), [`health`], [`history`], [`pages`]
//!   (the compiled-in browser pages); [`ws`]: chat over WebSocket (handshake, sessions, the hub
//!   that fans messages out);
//! - [`auth`]: tokens and password hashing; [`db`]: SQLite on blocking threads
//!   ([`pool`]); [`error`]: the one mapping from failures to HTTP statuses;
//! - [`config`], [`log`], [`clock`]: settings, logging, time formatting.

pub mod accounts;
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod files;
pub mod health;
pub mod history;
pub mod http;
pub mod json;
pub mod log;
pub mod pages;
pub mod pool;
pub mod router;
pub mod server;
pub mod ws;

use std::io;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::auth::Auth;
use crate::config::Config;
use crate::db::Db;
use crate::log::Level;
use crate::server::{App, ShutdownTrigger};
use crate::ws::hub::Hub;

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    Bind(io::Error),
    Storage(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind(e) => write!(f, "cannot listen: {e}"),
            StartError::Storage(e) => write!(f, "cannot open storage: {e}"),
        }
    }
}

/// Binds, opens storage and serves until SIGINT or SIGTERM, then shuts down
/// gracefully. The first line on stderr is the bound address.
pub async fn run(config: Config) -> Result<(), StartError> {
    // The handlers are in place before the first connection is accepted: a
    // signal that arrives any time after that is a graceful shutdown, never
    // the default action of killing the process.
    let signals = Signals::install();
    let listener = TcpListener::bind(config.addr).await.map_err(StartError::Bind)?;
    let addr = listener.local_addr().map_err(StartError::Bind)?;
    eprintln!("listening on http://{addr}");
    let (trigger, shutdown) = ShutdownTrigger::new();
    let app = Arc::new(build_app(config, shutdown).await?);
    tokio::spawn(async move {
        signals.wait().await;
        crate::log!(Level::Info, "shutting down");
        trigger.trigger();
    });
    server::serve(listener, app, Arc::new(router::Routes)).await;
    Ok(())
}

/// Opens storage, recovers the uploads directory and sets up tokens: the
/// application [`run`] serves. Public so that a test build can serve the same
/// application from a listener of its own (see [`router::Service`]).
pub async fn build_app(config: Config, shutdown: server::Shutdown) -> Result<App, StartError> {
    let (db_path, synchronous) = (config.db.clone(), config.synchronous);
    let db = tokio::task::spawn_blocking(move || Db::open(&db_path, synchronous))
        .await
        .map_err(|e| StartError::Storage(e.to_string()))?
        .map_err(|e| StartError::Storage(e.to_string()))?;
    let secret = match &config.jwt_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => {
            let mut fresh = [0u8; 32];
            getrandom::fill(&mut fresh).map_err(|e| StartError::Storage(e.to_string()))?;
            db.write(move |conn| db::settings::jwt_secret(conn, &fresh))
                .await
                .map_err(|e| StartError::Storage(e.to_string()))?
        }
    };
    // Before the first request: no upload can be in flight while the sweep runs.
    let uploads = config.uploads_dir.clone();
    db.read(move |conn| Ok(files::recover(conn, &uploads)))
        .await
        .map_err(|e| StartError::Storage(e.to_string()))?
        .map_err(StartError::Storage)?;
    let auth = Auth::new(&secret, config.token_ttl, config.bcrypt_cost);
    Ok(App {
        config,
        db,
        auth,
        shutdown,
        hub: Arc::new(Hub::default()),
        newest_page: Arc::default(),
        sealed_pages: history::SealedPages::default(),
    })
}

/// SIGTERM and SIGINT, caught from the moment [`Signals::install`] returns.
struct Signals(std::io::Result<(Signal, Signal)>);

impl Signals {
    fn install() -> Signals {
        Signals(signal(SignalKind::terminate()).and_then(|term| Ok((term, signal(SignalKind::interrupt())?))))
    }

    async fn wait(self) {
        // Reported here rather than at install, so that the bound address
        // stays the first line on stderr.
        let (mut term, mut int) = match self.0 {
            Ok(signals) => signals,
            Err(e) => {
                crate::log!(
                    Level::Error,
                    "cannot install signal handlers ({e}); stop the server with SIGKILL"
                );
                return std::future::pending().await;
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
