//! The accept loop: the connection bound and graceful shutdown.
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
use tokio::sync::{mpsc, Semaphore};

use super::conn;
use super::service::{Refusal, Service};
use crate::log::Level;
use crate::metrics::METRICS;
use crate::shutdown::Shutdown;

/// In-flight requests get this long to finish once shutdown begins.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown` fires, answering their requests
/// with `service`, then waits up to [`SHUTDOWN_GRACE`] for the connection
/// tasks to finish. At most `max_connections` are open at once.
pub async fn serve(listener: TcpListener, service: Arc<impl Service>, max_connections: usize, shutdown: Shutdown) {
    let permits = Arc::new(Semaphore::new(max_connections));
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
    let mut stop = shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => (stream, peer.ip()),
                Err(e) => {
                    // Out of descriptors or a similar passing fault: back off
                    // instead of spinning on an error that repeats at once.
                    crate::log!(Level::Warn, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.triggered() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(refuse_over_capacity(
                stream,
                service.refuse(Refusal::OverCapacity).encode(),
            ));
            continue;
        };
        let service = service.clone();
        let done = done_tx.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let open = METRICS.http_connections.track();
            let upgraded = conn::serve(stream, peer, &*service, shutdown).await;
            drop(open);
            if let Some(upgraded) = upgraded {
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

/// Over the bound, a connection is answered (503) and closed, within a
/// short time so that refused peers cannot pile up either.
async fn refuse_over_capacity(mut stream: TcpStream, response: Vec<u8>) {
    let write = async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    };
    let _: io::Result<io::Result<()>> = tokio::time::timeout(Duration::from_secs(1), write)
        .await
        .map_err(io::Error::other);
}
