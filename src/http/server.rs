//! The accept loop: the connection bound and graceful shutdown.
//!
//! Every connection task holds a permit of the connection semaphore, a unit
//! of the descriptor budget ([`descriptors`]) and a clone of `done_tx`: the
//! permit bounds open sockets (WebSockets included) at `--max-connections`,
//! the unit keeps them and the files they open within the open-file limit,
//! and the channel closing tells shutdown that every task has finished.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use super::conn;
use super::service::{Refusal, Service};
use crate::descriptors;
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
    let refusals = Arc::new(Semaphore::new(descriptors::REFUSALS));
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
        let admitted = permits.clone().try_acquire_owned().ok().zip(descriptors::take(1));
        let Some((permit, descriptor)) = admitted else {
            refuse_over_capacity(stream, &service.refuse(Refusal::OverCapacity).encode(), &refusals);
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
                    drop((permit, descriptor, done));
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

/// Over the bound, a connection is answered (503) and closed at once, from
/// the accept loop, without a task or a wait: a fresh socket's send buffer
/// takes the whole answer. Closing with the request unread would reset the
/// connection, and a reset can destroy the answer before the client reads
/// it; so what has arrived of the request is read and dropped first, and a
/// client whose request has not arrived yet is given a task that waits for
/// it, for at most a second, while fewer than `waiting` such tasks run (past
/// that it is closed as it is, so refused peers never pile up).
fn refuse_over_capacity(stream: TcpStream, response: &[u8], waiting: &Arc<Semaphore>) {
    let Ok(mut stream) = stream.into_std() else {
        return;
    };
    if !matches!(stream.write(response), Ok(n) if n == response.len()) {
        return;
    }
    let _ = stream.shutdown(std::net::Shutdown::Write);
    if drop_what_arrived(&mut stream) {
        return;
    }
    let Ok(slot) = waiting.clone().try_acquire_owned() else {
        return;
    };
    let Ok(mut stream) = TcpStream::from_std(stream) else {
        return;
    };
    tokio::spawn(async move {
        let mut discard = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.read(&mut discard)).await;
        let _ = stream.into_std().map(|mut stream| drop_what_arrived(&mut stream));
        drop(slot);
    });
}

/// Reads and drops whatever the (non-blocking) socket holds; says whether
/// anything, or the end of the stream, was there.
fn drop_what_arrived(stream: &mut std::net::TcpStream) -> bool {
    let mut discard = [0u8; 4096];
    let mut arrived = false;
    loop {
        match stream.read(&mut discard) {
            Ok(0) => return true,
            Ok(_) => arrived = true,
            Err(_) => return arrived,
        }
    }
}
