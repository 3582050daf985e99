//! Passwords: bcrypt on a pool of low-priority threads, one fewer than the
//! cores, so a storm of logins can use idle CPU but never the event loop's.
//! The threads' turns are shared fairly across client addresses by a
//! [`Gate`]: one address's burst of logins waits behind itself, not in
//! front of everyone else.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use super::fair::{Gate, Refused};
use crate::pool::{self, Pool, PoolError};

/// Why a password could not be hashed or checked.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordError {
    /// Too many hashes are waiting: try again shortly.
    Busy,
    /// This client address already has its share of hashes in.
    TooMany,
    /// The hasher threads stopped, or bcrypt refused the input.
    Failed,
}

impl From<Refused> for PasswordError {
    fn from(refused: Refused) -> PasswordError {
        match refused {
            Refused::TooMany => PasswordError::TooMany,
            Refused::Full => PasswordError::Busy,
        }
    }
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
    /// Turns at the hasher threads, one slot per thread, so that jobs wait
    /// in the gate's fair queue rather than in the pool's first-come one.
    gate: Gate,
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
        let threads = cores.saturating_sub(1).max(1);
        let options = pool::Options {
            name: "bcrypt",
            threads,
            // The gate lets in one job per thread; a job whose request was
            // dropped still runs to its end, so the queue has room for those.
            queue: 1024,
            nice: 19,
        };
        Ok(Passwords {
            cost,
            hasher: Pool::start(options, || Ok::<_, std::io::Error>(()))?,
            gate: Gate::new(threads, 1024),
            dummy_hash: Arc::new(OnceLock::new()),
        })
    }

    /// Hashes a new password for a request from `client`.
    pub async fn hash(&self, client: IpAddr, password: String) -> Result<String, PasswordError> {
        let _turn = self.gate.turn(client).await?;
        let cost = self.cost;
        self.hasher
            .run(move |_| bcrypt::hash(password, cost))
            .await?
            .map_err(|_| PasswordError::Failed)
    }

    /// Checks a password against a stored hash, or against a dummy hash when
    /// there is no such user, so timing does not reveal which names exist.
    pub async fn verify(&self, client: IpAddr, password: String, hash: Option<String>) -> Result<bool, PasswordError> {
        let _turn = self.gate.turn(client).await?;
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
