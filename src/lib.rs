//! chat-server: a real-time chat room and file service on HTTP/1.1 and
//! WebSocket, without a web framework.
//!
//! The modules, by floor; a file imports only from its own floor or below.
//! `tests/architecture.rs` checks that, that the imports of `src/` form no
//! circle, and that the transport and the leaves import nothing above them:
//!
//! 1. **Wiring**: `main.rs` (flags, runtime, exit codes), [`startup`]
//!    (storage, recovery, the application, signals), [`app`] (the shared
//!    state), [`routes`] (the route table, which owns the application and
//!    is the transport's `Service`), [`scrape`] (the metrics listener) and
//!    [`ops`] (the `backup`, `verify` and `restore` subcommands).
//! 2. **Features**, one per part of the contract: [`accounts`] (register,
//!    log in, log out, `/me`), [`chat`] (the room: posting, the hub that
//!    fans messages out, the history caches and routes, the WebSocket
//!    session and how it resumes), [`files`] (upload, download, listing,
//!    sharing in the room and share links, the bytes on disk),
//!    [`pages`] (the compiled-in browser pages) and [`health`].
//! 3. **The kit** every handler shares, [`api`]: the request context with
//!    authentication, the one error type and its mapping to statuses,
//!    paging, the origin check.
//! 4. **Transport and storage**: [`http`] (parsers, bodies, responses, the
//!    buffered socket, the keep-alive and accept loops, the `Service` seam),
//!    [`ws`] (the WebSocket handshake and close codes), [`auth`] (tokens and
//!    passwords, free of HTTP), [`db`] (SQLite on blocking threads behind
//!    typed methods) and [`pool`] (the blocking thread pools).
//! 5. **Leaves**: [`config`], [`log`](mod@log), [`clock`], [`json`], [`shutdown`],
//!    [`sync`] (locks and blocking work), [`descriptors`] (open files
//!    counted against the process's limit), [`sys`] (every libc call, the
//!    crate's only `unsafe`), [`cidr`] (IP ranges, for trusted proxies) and
//!    [`metrics`] (the counters every floor increments).
//!
//! A chat message goes: `chat::socket` reads the frame -> `chat::room`
//! posts it -> `db` commits it -> the room's commit hook -> `chat::hub` ->
//! every subscriber's outbox -> each `chat::socket` writes it. An upload
//! goes: `http::conn` -> `routes` -> `files::upload` pulls the body
//! (`http::body`) through `http::multipart` -> `files::store` writes it to
//! disk -> `db` records the row.

// The map above links to private modules: it is written for readers of the
// source and of `cargo doc --document-private-items`.
#![allow(rustdoc::private_intra_doc_links)]

mod accounts;
mod api;
mod app;
mod auth;
mod chat;
mod cidr;
mod clock;
mod config;
mod db;
mod descriptors;
mod files;
mod health;
mod http;
mod json;
mod log;
mod metrics;
mod ops;
mod pages;
mod pool;
mod routes;
mod scrape;
mod shutdown;
mod startup;
mod sync;
mod sys;
mod ws;

// What the binary uses.
pub use crate::config::{parse as parse_config, Command, Config, ConfigError, Operation, Synchronous, HELP};
pub use crate::log::{set_level as set_log_level, Level};
pub use crate::ops::run as run_operation;
pub use crate::startup::{build, run, StartError};

// What the WebSocket conformance test uses to serve an echo endpoint in
// front of the real route table, through the server's own accept loop,
// HTTP layer, handshake checks and WebSocket settings.
pub use crate::api::ApiError;
pub use crate::http::response::Response;
pub use crate::http::server::serve;
pub use crate::http::service::{Exchange, Refusal, Service};
pub use crate::routes::Routes;
pub use crate::shutdown::{Shutdown, ShutdownTrigger};
pub use crate::ws::close::Close;
pub use crate::ws::config as websocket_config;
pub use crate::ws::handshake::{handshake_key, switching_protocols};
