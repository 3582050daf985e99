//! The kit every route handler shares, between the features above and the
//! transport and storage below:
//!
//! - [`context`]: the request as a handler sees it, with authentication and
//!   JSON bodies;
//! - [`error`]: the one error type handlers return, and the one mapping from
//!   every lower layer's failures to a status and a `{"detail"}`;
//! - [`paging`]: the `offset` / `before_id` / `limit` parameters of every
//!   listing;
//! - [`origin`]: whether a request comes from a page of this server.

pub(crate) mod context;
pub(crate) mod error;
pub(crate) mod origin;
pub(crate) mod paging;

pub(crate) use context::{Ctx, TokenSource};
pub use error::ApiError;
