//! Start-up: open storage, recover the uploads directory, set up tokens and
//! password hashing, build the application, and serve it until SIGINT or
//! SIGTERM. Nothing here panics: every failure is a [`StartError`], which
//! the binary reports in one line before exiting with status 1.
//!
//! `listening on` is printed once everything is ready; whatever start-up
//! logs before it is held back and written after it, and dropped if the
//! start fails, so that a failure is one line. A second signal during the
//! graceful shutdown ends the process at once.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::accounts::{sessions, Accounts};
use crate::api::origin::Origins;
use crate::app::App;
use crate::auth::passwords::Passwords;
use crate::auth::throttle::{self, Throttle};
use crate::auth::tokens::Tokens;
use crate::chat::limit::UserRates;
use crate::chat::room::Room;
use crate::chat::Chat;
use crate::config::Config;
use crate::db::lock::{DatabaseLock, LockError};
use crate::db::Db;
use crate::descriptors;
use crate::files::{self, Files};
use crate::http::server;
use crate::log::Level;
use crate::routes::Routes;
use crate::scrape;
use crate::shutdown::{Shutdown, ShutdownTrigger};
use crate::sync::blocking;

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    Bind(SocketAddr, io::Error),
    Storage(String),
    /// A restore holds the database.
    Locked(LockError),
    /// A pool of threads (password hashing) could not be started.
    Threads(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            StartError::Storage(e) => write!(f, "cannot open storage: {e}"),
            StartError::Locked(LockError::Held(path)) => {
                write!(
                    f,
                    "cannot open storage: a restore holds the database ({} is locked)",
                    path.display()
                )
            }
            StartError::Locked(e) => write!(f, "cannot open storage: {e}"),
            StartError::Threads(e) => write!(f, "cannot start worker threads: {e}"),
        }
    }
}

/// Binds, opens storage and serves until SIGINT or SIGTERM, then shuts down
/// gracefully. The first line on stderr is the bound address, printed once
/// the server is ready.
pub async fn run(mut config: Config) -> Result<(), StartError> {
    // The handlers are in place before the first connection is accepted: a
    // signal that arrives any time after that is a graceful shutdown, never
    // the default action of killing the process.
    let mut signals = Signals::install();
    crate::log::hold();
    // Held until the server exits: `restore` refuses the database meanwhile.
    let _lock = match config.sqlite_file() {
        Some(db) => Some(DatabaseLock::shared(db).map_err(StartError::Locked)?),
        None => None,
    };
    let listener = bind(config.addr).await?;
    let addr = listener.local_addr().map_err(|e| StartError::Bind(config.addr, e))?;
    // The bound port, not a 0 asked for: it is part of a cluster node's name.
    config.addr = addr;
    let metrics = match config.metrics_addr {
        Some(metrics_addr) => Some(bind(metrics_addr).await?),
        None => None,
    };
    descriptors_fit(config.max_connections);
    let (trigger, shutdown) = ShutdownTrigger::new();
    let routes = Arc::new(build(&config, shutdown.clone()).await?);
    eprintln!("listening on http://{addr}");
    crate::log::release();
    if let Some(listener) = metrics {
        if let Ok(metrics_addr) = listener.local_addr() {
            crate::log!(Level::Info, "metrics on http://{metrics_addr}/metrics");
        }
        let db_file = config.sqlite_file().map(Path::to_path_buf);
        tokio::spawn(scrape::serve(listener, db_file, shutdown.clone()));
    }
    tokio::spawn(async move {
        signals.next().await;
        crate::log!(Level::Info, "shutting down");
        trigger.trigger();
        signals.next().await;
        crate::log!(Level::Warn, "second signal: exiting without waiting for connections");
        std::process::exit(1);
    });
    server::serve(listener, routes, config.max_connections, shutdown).await;
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|e| StartError::Bind(addr, e))
}

/// Opens storage, recovers the uploads directory and sets up tokens: the
/// route table over the application [`run`] serves. Public so that a test
/// build can serve the same routes from a listener of its own, behind a
/// service of its own. In cluster mode the port of `config.addr` is part
/// of the node's name (see `files::shared_dir::node_name`): pass the bound one.
pub async fn build(config: &Config, shutdown: Shutdown) -> Result<Routes, StartError> {
    let storage = |e: &dyn std::fmt::Display| StartError::Storage(e.to_string());
    let db = open(config).await.map_err(|e| storage(&e))?;
    let secret = match &config.jwt_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => {
            let mut fresh = [0u8; 32];
            getrandom::fill(&mut fresh).map_err(|e| storage(&e))?;
            db.jwt_secret(fresh).await.map_err(|e| storage(&e))?
        }
    };
    let epoch = db.epoch().await.map_err(|e| storage(&e))?;
    // In cluster mode, refuses an uploads directory that is not the cluster's.
    #[cfg(feature = "postgres")]
    let node = files::shared_dir::join(&db, &config.uploads_dir, config.addr.port())
        .await
        .map_err(StartError::Storage)?;
    #[cfg(not(feature = "postgres"))]
    let node = None;
    // Before the first request: no upload of this node's can be in flight
    // while the sweep runs (another node's can: see `files::store::sweep`).
    files::recover(&db, &config.uploads_dir, node.as_deref())
        .await
        .map_err(StartError::Storage)?;
    let passwords = Passwords::start(config.bcrypt_cost).map_err(StartError::Threads)?;
    let live_sessions = sessions::load(&db).await.map_err(|e| storage(&e))?;
    tokio::spawn(sessions::keep_up(db.clone(), live_sessions.clone(), shutdown.clone()));
    #[cfg(feature = "postgres")]
    if db.is_cluster() {
        tokio::spawn(sessions::follow_cluster(
            db.clone(),
            live_sessions.clone(),
            shutdown.clone(),
        ));
    }
    let room = Arc::new(Room::new(db.clone()));
    #[cfg(feature = "postgres")]
    room.follow_cluster(shutdown.clone()).await.map_err(|e| storage(&e))?;
    #[cfg(feature = "postgres")]
    if db.is_cluster() {
        tokio::spawn(files::cluster::follow_cluster(
            db.clone(),
            room.clone(),
            shutdown.clone(),
        ));
        tokio::spawn(room.follow_presence(shutdown.clone()));
    }
    let app = App {
        accounts: Accounts {
            db: db.clone(),
            tokens: Tokens::new(&secret, config.token_ttl, live_sessions),
            passwords,
            session_max_age: config.session_max_age,
            throttle: Mutex::new(Throttle::new(config.login_throttle, throttle::CAPACITY, Instant::now())),
        },
        chat: Chat {
            room: room.clone(),
            rate_limit: config.ws_rate_limit,
            user_rates: Arc::new(UserRates::new(config.ws_rate_limit > 0)),
            shutdown,
            epoch: epoch.into(),
        },
        files: Files {
            db: db.clone(),
            room,
            dir: config.uploads_dir.clone(),
            node,
            max_upload_bytes: config.max_upload_bytes,
        },
        db,
        trusted_proxies: config.trusted_proxies.clone(),
        origins: Origins {
            allowed: config.allowed_origins.clone(),
            secure_cookies: config.secure_cookies,
        },
    };
    Ok(Routes::new(app))
}

/// The storage `--db` names: the SQLite file, or in cluster mode the
/// PostgreSQL database.
async fn open(config: &Config) -> io::Result<Db> {
    #[cfg(feature = "postgres")]
    if let Some(url) = &config.postgres {
        return Db::connect_postgres(url).await.map_err(io::Error::other);
    }
    let (db_path, synchronous) = (config.db.clone(), config.synchronous);
    blocking(move || Db::open(&db_path, synchronous).map_err(io::Error::other)).await
}

/// Raises the open-file limit and sets the descriptor budget, and says (in
/// one line) when the limit, not `--max-connections`, is what bounds the
/// connections. A limit that cannot be read leaves the budget unbounded.
fn descriptors_fit(max_connections: usize) {
    match descriptors::init() {
        Ok((limit, budget)) if budget < max_connections => crate::log!(
            Level::Warn,
            "the open-file limit ({limit}) leaves room for {budget} connections, fewer than --max-connections \
             ({max_connections}); past it new connections are answered 503 (raise `ulimit -n` to reach it)"
        ),
        Ok(_) => {}
        Err(e) => crate::log!(Level::Warn, "cannot read the open-file limit: {e}"),
    }
}

/// SIGTERM and SIGINT, caught from the moment [`Signals::install`] returns.
struct Signals(std::io::Result<(Signal, Signal)>);

impl Signals {
    fn install() -> Signals {
        Signals(signal(SignalKind::terminate()).and_then(|term| Ok((term, signal(SignalKind::interrupt())?))))
    }

    /// Resolves at the next signal.
    async fn next(&mut self) {
        // Reported here rather than at install, so that the bound address
        // stays the first line on stderr.
        let (term, int) = match &mut self.0 {
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
