//! The skeleton of a run's measured phase, which the subcommands share
//! instead of each writing it out: a [`Crowd`] of chat connections that all
//! watch one phase, started together under a [`Timer`], then stopped, joined
//! and closed together; and [`requests`], HTTP request workers that share a
//! count.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{spawn_local, JoinHandle};
use tokio::time::{timeout_at, Instant};

use super::{join, Ctx};
use crate::chat::{self, Delivery, Outcome, Phase, SendPlan};
use crate::error::{Error, Result};
use crate::http::{Endpoint, HttpConn};
use crate::stats::Histogram;
use crate::sys::{Meter, Usage};
use crate::ws::{self, Ws};

/// Chat clients that all watch one phase: moving the phase moves them all,
/// and their connections are closed together once they have ended.
pub struct Crowd<'a> {
    ctx: &'a Ctx,
    phase: watch::Sender<Phase>,
    clients: Vec<JoinHandle<(Outcome, Ws)>>,
    /// The connections of the clients that have ended, still to close.
    ended: Vec<Ws>,
}

impl<'a> Crowd<'a> {
    /// No clients yet; those spawned start in `phase`.
    pub fn new(ctx: &'a Ctx, phase: Phase) -> Crowd<'a> {
        Crowd {
            ctx,
            phase: watch::Sender::new(phase),
            clients: Vec::new(),
            ended: Vec::new(),
        }
    }

    /// Starts a chat client on `ws`, with the run's tag and deadline.
    pub fn spawn(
        &mut self,
        ws: Ws,
        plan: Option<SendPlan>,
        on_delivery: impl FnMut(&Delivery) -> ControlFlow<()> + 'static,
    ) {
        let phase = self.phase.subscribe();
        let client = chat::spawn(ws, self.ctx.tag.clone(), plan, phase, self.ctx.deadline, on_delivery);
        self.clients.push(client);
    }

    /// Starts measuring, then moves the clients to `Phase::Sending`; nothing
    /// runs in between, as everything runs on this one thread.
    pub fn start(&self) -> Result<Timer<'a>> {
        let timer = Timer::start(self.ctx)?;
        self.phase.send_replace(Phase::Sending);
        Ok(timer)
    }

    /// Waits for every client to end on its own: their outcomes, in the
    /// order they were spawned.
    pub async fn join(&mut self) -> Result<Vec<Outcome>> {
        let mut outcomes = Vec::with_capacity(self.clients.len());
        for client in self.clients.drain(..) {
            let (outcome, ws) = join(client).await?;
            outcomes.push(outcome);
            self.ended.push(ws);
        }
        Ok(outcomes)
    }

    /// Closes the connections of the clients that have ended.
    pub async fn close(self) {
        ws::close_all(self.ended).await;
    }

    /// Stops the clients, then joins and closes them: their outcomes, in
    /// the order they were spawned.
    pub async fn finish(mut self) -> Result<Vec<Outcome>> {
        self.phase.send_replace(Phase::Stopping);
        let outcomes = self.join().await?;
        self.close().await;
        Ok(outcomes)
    }
}

/// A phase's cost so far: the client's wall and CPU time, and the server's
/// CPU time when `--server-pid` was given.
pub struct Timer<'a> {
    ctx: &'a Ctx,
    server_cpu: Option<Duration>,
    meter: Meter,
}

impl<'a> Timer<'a> {
    fn start(ctx: &'a Ctx) -> Result<Timer<'a>> {
        let server_cpu = ctx.server_cpu()?;
        Ok(Timer {
            ctx,
            server_cpu,
            meter: Meter::start(),
        })
    }

    /// The client's usage and the server's CPU time since the start.
    pub fn read(&self) -> Result<(Usage, Option<Duration>)> {
        let usage = self.meter.read();
        Ok((usage, self.ctx.server_cpu_since(self.server_cpu)?))
    }
}

/// What request workers add up: the latency of each request that went
/// well, and the others.
#[derive(Default)]
pub struct Tally {
    pub latency: Histogram,
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Tally {
    pub fn error(&mut self, what: String) {
        self.errors += 1;
        self.first_error.get_or_insert(what);
    }
}

/// How one request went on a connection that can still be used: `Err`
/// says why its answer counts as an error.
pub type Answer = std::result::Result<(), String>;

/// Sends `count` requests over `connections` keep-alive connections, one in
/// flight on each, until none are left or the run's time is up: what they
/// add up to and how long they took. `request` sends one; an `Err` from it
/// counts as an error too, and drops the connection so that the next
/// request opens another.
pub async fn requests<F>(ctx: &Ctx, connections: usize, count: u64, request: F) -> Result<(Tally, Usage)>
where
    F: AsyncFn(&mut HttpConn) -> Result<Answer> + 'static,
{
    let request = Rc::new(request);
    let tally = Rc::new(RefCell::new(Tally::default()));
    let left = Rc::new(Cell::new(count));
    let usage = run_workers(connections, || {
        worker(
            ctx.endpoint.clone(),
            request.clone(),
            left.clone(),
            tally.clone(),
            ctx.deadline,
        )
    })
    .await?;
    Ok((tally.take(), usage))
}

/// Starts `count` workers made by `make` on this thread and waits for them
/// all: how long they took, and the client's CPU meanwhile.
pub async fn run_workers<W>(count: usize, mut make: impl FnMut() -> W) -> Result<Usage>
where
    W: Future<Output = ()> + 'static,
{
    let meter = Meter::start();
    let workers: Vec<_> = (0..count).map(|_| spawn_local(make())).collect();
    for worker in workers {
        join(worker).await?;
    }
    Ok(meter.read())
}

/// Takes requests from the shared count on one connection, kept while the
/// server keeps it open.
async fn worker<F>(
    endpoint: Endpoint,
    request: Rc<F>,
    left: Rc<Cell<u64>>,
    tally: Rc<RefCell<Tally>>,
    deadline: Instant,
) where
    F: AsyncFn(&mut HttpConn) -> Result<Answer>,
{
    let mut kept: Option<HttpConn> = None;
    while left.get() > 0 && Instant::now() < deadline {
        left.set(left.get() - 1);
        let started = Instant::now();
        let attempt = timeout_at(deadline, async {
            let mut conn = match kept.take() {
                Some(conn) => conn,
                None => HttpConn::open(&endpoint).await?,
            };
            let answer = request(&mut conn).await?;
            if conn.is_reusable() {
                kept = Some(conn);
            }
            Ok::<_, Error>(answer)
        })
        .await;
        let elapsed = started.elapsed().as_nanos() as u64;
        let Ok(attempt) = attempt else {
            return;
        };
        let mut tally = tally.borrow_mut();
        match attempt {
            Ok(Ok(())) => tally.latency.record(elapsed),
            Ok(Err(why)) => tally.error(why),
            Err(e) => tally.error(e.to_string()),
        }
    }
}
