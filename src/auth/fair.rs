//! Fair turns at the password hashers: one client address cannot make every
//! other address's login wait behind its queue of bcrypt jobs.
//!
//! The hashers are few (one fewer than the cores) and each job takes a
//! bcrypt's time, so whoever fills the queue first owns it. The [`Gate`]
//! sits in front of them and hands out the hashers' slots itself:
//!
//! - an address may have at most [`PER_ADDRESS`] jobs waiting or running;
//!   the next is refused at once ([`Refused::TooMany`], a 429);
//! - a free slot goes to the waiting address that was served least
//!   recently (ties: the one waiting longest), one job per turn, so with `n`
//!   addresses waiting each gets every `n`-th slot however many jobs it
//!   queued, and an address that just had a turn goes behind one that has
//!   been waiting: a newcomer waits for at most the jobs running now;
//! - the whole queue is bounded ([`Refused::Full`], a 503), as the pool's
//!   own queue was.
//!
//! A waiter that gives up (its client disconnected) leaves by itself: the
//! slot offered to it is passed on to the next one.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::sync::lock;

/// Jobs one address may have waiting or running at once.
pub(crate) const PER_ADDRESS: usize = 4;

/// Why a job was not given a turn.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The address already has [`PER_ADDRESS`] jobs in.
    TooMany,
    /// The queue is full.
    Full,
}

/// Hands out `slots` slots round-robin across client addresses.
pub(crate) struct Gate {
    state: Arc<Mutex<State>>,
}

struct State {
    /// Slots not held by a job.
    free: usize,
    /// Jobs admitted but not yet given a slot, across all addresses.
    waiting: usize,
    queue_limit: usize,
    addresses: HashMap<IpAddr, Address>,
    /// Counts the slots handed out and the jobs that had to wait, so that
    /// "least recently served" and "waiting longest" are comparable numbers.
    clock: u64,
}

#[derive(Default)]
struct Address {
    /// Jobs waiting or running.
    admitted: usize,
    /// When the address last got a slot (0: not while it had jobs in).
    served: u64,
    /// Its waiting jobs, oldest first, each with when it came.
    waiting: VecDeque<(u64, oneshot::Sender<()>)>,
}

/// A job's place: while it lives, its address counts the job; once it
/// holds a slot, dropping it passes the slot to the next address's turn.
pub(crate) struct Turn {
    state: Arc<Mutex<State>>,
    address: IpAddr,
    /// Where the slot arrives while the job waits; `None` once it holds one.
    slot: Option<oneshot::Receiver<()>>,
}

impl Gate {
    pub(crate) fn new(slots: usize, queue_limit: usize) -> Gate {
        Gate {
            state: Arc::new(Mutex::new(State {
                free: slots.max(1),
                waiting: 0,
                queue_limit,
                addresses: HashMap::new(),
                clock: 0,
            })),
        }
    }

    /// Waits for a slot for a job from `address`.
    pub(crate) async fn turn(&self, address: IpAddr) -> Result<Turn, Refused> {
        let waiter = {
            let mut state = lock(&self.state);
            let state = &mut *state;
            let entry = state.addresses.entry(address).or_default();
            if entry.admitted >= PER_ADDRESS {
                return Err(Refused::TooMany);
            }
            if state.free == 0 && state.waiting >= state.queue_limit {
                return Err(Refused::Full);
            }
            entry.admitted += 1;
            state.clock += 1;
            if state.free > 0 {
                state.free -= 1;
                entry.served = state.clock;
                None
            } else {
                let (tx, rx) = oneshot::channel();
                entry.waiting.push_back((state.clock, tx));
                state.waiting += 1;
                Some(rx)
            }
        };
        let mut turn = Turn {
            state: self.state.clone(),
            address,
            slot: waiter,
        };
        if let Some(slot) = turn.slot.as_mut() {
            // Dropping this future here drops `turn`, which gives back the
            // job's place (and the slot, if it arrived meanwhile).
            let _ = slot.await;
            turn.slot = None;
        }
        Ok(turn)
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        // Under the lock no slot can be sent meanwhile: closed, the waiter
        // refuses any later one, and one sent before is still in it.
        let holds_slot = match self.slot.as_mut() {
            None => true,
            Some(slot) => {
                slot.close();
                slot.try_recv().is_ok()
            }
        };
        state.release(self.address);
        if holds_slot {
            state.pass_slot();
        }
    }
}

impl State {
    /// The job of `address` is gone, run or not.
    fn release(&mut self, address: IpAddr) {
        if let Some(entry) = self.addresses.get_mut(&address) {
            entry.admitted -= 1;
            if entry.admitted == 0 {
                // What still waits there belongs to jobs that gave up.
                self.waiting -= entry.waiting.len();
                self.addresses.remove(&address);
            }
        }
    }

    /// Gives a freed slot to the oldest job of the waiting address served
    /// least recently. A waiter that gave up no longer listens; the slot
    /// goes on to the next. The scan is over the addresses with jobs in,
    /// which the queue's bound bounds.
    fn pass_slot(&mut self) {
        loop {
            let next = self
                .addresses
                .iter()
                .filter_map(|(address, entry)| Some(((entry.served, entry.waiting.front()?.0), *address)))
                .min();
            let Some((_, address)) = next else {
                self.free += 1;
                return;
            };
            self.clock += 1;
            let clock = self.clock;
            let picked = self.addresses.get_mut(&address).and_then(|entry| {
                entry.served = clock;
                entry.waiting.pop_front()
            });
            // Always there: the address was picked for its waiting job.
            let Some((_, waiter)) = picked else {
                self.free += 1;
                return;
            };
            self.waiting -= 1;
            if waiter.send(()).is_ok() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A job waiting at the gate.
    type Waiting<'g> = Pin<Box<dyn Future<Output = Result<Turn, Refused>> + 'g>>;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    /// Polls `future` once: `Some` if it finished.
    fn poll_once<F: Future + Unpin>(future: &mut F) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        match Pin::new(future).poll(&mut Context::from_waker(waker)) {
            Poll::Ready(value) => Some(value),
            Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn an_address_gets_at_most_four_jobs_in_and_then_refusals() {
        let gate = Gate::new(8, 100);
        let mut turns = Vec::new();
        for _ in 0..PER_ADDRESS {
            turns.push(gate.turn(ip(1)).await.unwrap());
        }
        assert_eq!(gate.turn(ip(1)).await.err(), Some(Refused::TooMany));
        // Another address is not affected.
        let other = gate.turn(ip(2)).await.unwrap();
        drop(turns.pop());
        let again = gate.turn(ip(1)).await;
        assert!(again.is_ok());
        drop((other, again, turns));
        assert!(lock(&gate.state).addresses.is_empty(), "nothing is left behind");
        assert_eq!(lock(&gate.state).free, 8);
    }

    #[tokio::test]
    async fn freed_slots_go_round_robin_across_waiting_addresses() {
        let gate = Gate::new(1, 100);
        let running = gate.turn(ip(9)).await.unwrap();
        // Address 1 queues four jobs before address 2 and 3 queue one each.
        let mut waiting: Vec<(u8, Waiting<'_>)> = Vec::new();
        for last in [1, 1, 1, 1, 2, 3] {
            let mut future: Waiting<'_> = Box::pin(gate.turn(ip(last)));
            assert!(poll_once(&mut future).is_none());
            waiting.push((last, future));
        }
        let mut order = Vec::new();
        let mut holder = Some(running);
        while !waiting.is_empty() {
            drop(holder.take());
            let ready = waiting
                .iter_mut()
                .position(|(_, future)| {
                    poll_once(future).is_some_and(|turn| {
                        holder = Some(turn.unwrap());
                        true
                    })
                })
                .expect("a waiter got the freed slot");
            order.push(waiting.remove(ready).0);
        }
        assert_eq!(order, [1, 2, 3, 1, 1, 1]);
    }

    #[tokio::test]
    async fn an_address_that_just_had_a_turn_goes_behind_a_newcomer() {
        let gate = Gate::new(1, 100);
        let running = gate.turn(ip(1)).await.unwrap();
        let mut again = Box::pin(gate.turn(ip(1)));
        assert!(poll_once(&mut again).is_none());
        let mut newcomer = Box::pin(gate.turn(ip(2)));
        assert!(poll_once(&mut newcomer).is_none());
        drop(running);
        assert!(poll_once(&mut again).is_none(), "address 1 just had its turn");
        assert!(poll_once(&mut newcomer).is_some_and(|turn| turn.is_ok()));
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_passes_its_turn_on() {
        let gate = Gate::new(1, 100);
        let running = gate.turn(ip(1)).await.unwrap();
        let mut gone = Box::pin(gate.turn(ip(2)));
        assert!(poll_once(&mut gone).is_none());
        let mut next = Box::pin(gate.turn(ip(3)));
        assert!(poll_once(&mut next).is_none());
        drop(gone);
        drop(running);
        assert!(poll_once(&mut next).is_some_and(|turn| turn.is_ok()));
        drop(next);
        let state = lock(&gate.state);
        assert_eq!((state.free, state.waiting), (1, 0));
        assert!(state.addresses.is_empty());
    }

    #[tokio::test]
    async fn a_slot_handed_to_a_waiter_that_then_gives_up_is_not_lost() {
        let gate = Gate::new(1, 100);
        let running = gate.turn(ip(1)).await.unwrap();
        let mut handed = Box::pin(gate.turn(ip(2)));
        assert!(poll_once(&mut handed).is_none());
        drop(running);
        // The slot is in the waiter's channel, never seen by it.
        drop(handed);
        assert!(gate.turn(ip(3)).await.is_ok(), "the slot came back");
        let state = lock(&gate.state);
        assert_eq!((state.free, state.waiting), (1, 0));
    }

    #[tokio::test]
    async fn a_full_queue_is_refused() {
        let gate = Gate::new(1, 2);
        let _running = gate.turn(ip(1)).await.unwrap();
        let mut first = Box::pin(gate.turn(ip(2)));
        let mut second = Box::pin(gate.turn(ip(3)));
        assert!(poll_once(&mut first).is_none() && poll_once(&mut second).is_none());
        assert_eq!(gate.turn(ip(4)).await.err(), Some(Refused::Full));
    }
}
