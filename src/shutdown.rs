//! The graceful-shutdown signal: one trigger, any number of cloneable
//! watchers. The accept loop stops accepting when it fires, idle keep-alive
//! connections close, and chat sessions say goodbye with 1001.

use tokio::sync::watch;

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
