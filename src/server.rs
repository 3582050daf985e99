//! The accept loop, the shared application state, the connection bound and
//! graceful shutdown.
//!
//! Every connection task holds a permit of the connection semaphore and a
//! clone of `done_tx`; the permit bounds open sockets (WebSockets included)
//! so the process never runs out of descriptors, and the channel closing
//! tells shutdown that every task has finished.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::auth::Auth;
use crate::config::Config;
use crate::db::Db;
use crate::error::ApiError;
use crate::history::{NewestPage, SealedPages};
use crate::http;
use crate::log::Level;
use crate::router::Service;
use crate::ws::hub::Hub;

/// In-flight requests get this long to finish once shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Everything a request handler may need, shared by all connections.
pub struct App {
    pub config: Config,
    pub db: Db,
    pub auth: Auth,
    pub shutdown: Shutdown,
    /// The chat room; shared with the database writer, which broadcasts
    /// each message after its commit.
    pub hub: Arc<Hub>,
    /// The cached `/history/last20` body, dropped on every commit of a message.
    pub newest_page: Arc<NewestPage>,
    /// Encoded keyset pages that can no longer change.
    pub sealed_pages: SealedPages,
}

/// A cloneable view of the shutdown signal.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown has begun (immediately if it already has).
    pub async fn triggered(&mut self) {
        let _ = self.0.wait_for(|&down| down).await;
    }
}

/// Owns the trigger side of [`Shutdown`].
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

/// Accepts connections until `shutdown` fires, answering their requests
/// with `service`, then waits up to [`SHUTDOWN_GRACE`] for the connection
/// tasks to finish.
pub async fn serve(listener: TcpListener, app: Arc<App>, service: Arc<impl Service>) {
    let permits = Arc::new(Semaphore::new(app.config.max_connections));
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut shutdown = app.shutdown.clone();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors or a similar passing fault: back off
                    // instead of spinning on an error that repeats at once.
                    crate::log!(Level::Warn, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.triggered() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(refuse_over_capacity(stream));
            continue;
        };
        let app = app.clone();
        let service = service.clone();
        let done = done_tx.clone();
        tokio::spawn(async move {
            let connection_shutdown = app.shutdown.clone();
            if let Some(upgraded) = http::conn::serve(stream, app, &*service, connection_shutdown).await {
                // A task of its own, sized for the new protocol alone: the
                // HTTP loop's state is freed, so an idle WebSocket costs only
                // what the session holds. It keeps the permit and the
                // shutdown guard until it ends.
                tokio::spawn(async move {
                    upgraded.await;
                    drop((permit, done));
                });
            }
        });
    }
    drop(listener);
    drop(done_tx);
    if tokio::time::timeout(SHUTDOWN_GRACE, done_rx.recv()).await.is_err() {
        crate::log!(
            Level::Warn,
            "shutdown: connections still busy after {}s, exiting anyway",
            SHUTDOWN_GRACE.as_secs()
        );
    }
}

/// Over the bound, a connection is answered 503 and closed, within a short
/// time so that refused peers cannot pile up either.
async fn refuse_over_capacity(mut stream: TcpStream) {
    let mut out = Vec::new();
    let response = ApiError::new(503, "server at its connection limit, try again shortly").into_response();
    response.encode_head(false, &mut out);
    if let http::response::Body::Bytes(body) = &response.body {
        out.extend_from_slice(body);
    }
    let write = async {
        stream.write_all(&out).await?;
        stream.shutdown().await
    };
    let _: io::Result<io::Result<()>> = tokio::time::timeout(Duration::from_secs(1), write)
        .await
        .map_err(io::Error::other);
}
