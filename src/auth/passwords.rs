//! Passwords: bcrypt on a pool of low-priority threads, one fewer than the
//! cores, so a storm of logins can use idle CPU but never the event loop's.

use std::sync::{Arc, OnceLock};

use crate::pool::{self, Pool, PoolError};

/// Why a password could not be hashed or checked.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordError {
    /// Too many hashes are waiting: try again shortly.
    Busy,
    /// The hasher threads stopped, or bcrypt refused the input.
    Failed,
}

impl From<PoolError> for PasswordError {
    fn from(err: PoolError) -> PasswordError {
        match err {
            PoolError::Busy => PasswordError::Busy,
            PoolError::Gone => PasswordError::Failed,
        }
    }
}

pub struct Passwords {
    cost: u32,
    hasher: Pool<()>,
    /// A real hash at the configured cost, checked against when the user does
    /// not exist so both failures cost one bcrypt verify.
    dummy_hash: Arc<OnceLock<String>>,
}

impl Passwords {
    /// Starts the hasher threads.
    pub fn start(cost: u32) -> std::io::Result<Passwords> {
        // One core is always left to the rest of the server: at nice 19 the
        // hashers yield to it, but a hasher still holds its core until the
        // scheduler preempts it, which costs a woken event loop milliseconds.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let options = pool::Options {
            name: "bcrypt",
            threads: cores.saturating_sub(1).max(1),
            queue: 1024,
            nice: 19,
        };
        Ok(Passwords {
            cost,
            hasher: Pool::start(options, || Ok::<_, std::io::Error>(()))?,
            dummy_hash: Arc::new(OnceLock::new()),
        })
    }

    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        let cost = self.cost;
        self.hasher
            .run(move |_| bcrypt::hash(password, cost))
            .await?
            .map_err(|_| PasswordError::Failed)
    }

    /// Checks a password against a stored hash, or against a dummy hash when
    /// there is no such user, so timing does not reveal which names exist.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, PasswordError> {
        let cost = self.cost;
        let dummy = self.dummy_hash.clone();
        let checked = self
            .hasher
            .run(move |_| match hash {
                Some(hash) => bcrypt::verify(password, &hash).unwrap_or(false),
                None => {
                    // bcrypt cannot fail to hash a short constant at a valid
                    // cost; were it to, the empty dummy is simply refused.
                    let dummy = dummy.get_or_init(|| bcrypt::hash("not a password", cost).unwrap_or_default());
                    let _ = bcrypt::verify(password, dummy);
                    false
                }
            })
            .await?;
        Ok(checked)
    }
}
