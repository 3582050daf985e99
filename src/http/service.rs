//! The seam between the transport and the application: what answers a
//! request ([`Service`]), what a request looks like to it ([`Exchange`]),
//! and what the transport refuses before any route sees it ([`Refusal`]).
//!
//! The transport knows no route, no error type and no application state:
//! it hands each request to a `Service` and writes back the `Response` it
//! gets, and it asks the same `Service` how to word a refusal, so that every
//! failure is mapped to a status in one place above this layer.

use std::fmt;
use std::future::Future;

use tokio::time::Instant;

use super::body::Body;
use super::forwarded::Client;
use super::request::{HeadError, Request};
use super::response::Response;
use crate::cidr::Cidr;

/// One request on its way through a handler: the handler reads the body
/// through it and records who made the request, for the log line.
pub struct Exchange<'a, 'c> {
    pub request: &'a Request,
    pub body: Body<'c>,
    /// The authenticated user's name, once a handler knows it.
    pub user: Option<String>,
    /// Who sent the request (see [`Client`]), for the handler and the log.
    pub client: Client,
    /// When the head was read: the one clock reading that the log line and
    /// the request metrics both measure from.
    pub started: Instant,
}

/// What the transport refuses on its own, before or instead of a request.
#[derive(Debug)]
pub enum Refusal {
    /// A head that cannot be parsed or breaks a size limit.
    Head(HeadError),
    /// A head begun but not completed within the head timeout.
    HeadTimeout,
    /// The connection bound is reached: the new connection is answered and
    /// closed.
    OverCapacity,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Head(e) => write!(f, "{e}"),
            Refusal::HeadTimeout => f.write_str("request headers not received in time"),
            Refusal::OverCapacity => f.write_str("server at its connection limit"),
        }
    }
}

/// What answers the requests of a connection.
pub trait Service: Send + Sync + 'static {
    /// Answers one request; every failure is already a response here.
    fn handle<'e>(&'e self, ex: &'e mut Exchange<'_, '_>) -> impl Future<Output = Response> + Send + 'e;

    /// The response for something the transport refused.
    fn refuse(&self, refusal: Refusal) -> Response;

    /// The peers whose `X-Forwarded-*` headers name the client (see
    /// [`Client::of`]); by default none, so every peer is the client.
    fn trusted_proxies(&self) -> &[Cidr] {
        &[]
    }
}
