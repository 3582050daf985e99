//! `GET /healthz`: answers 200 only when the database can be both read and
//! written, so a load balancer takes the server out of rotation while its
//! storage is down. Reads alone are not enough: a database that is locked by
//! another process or on a file that became read-only still answers queries
//! while every registration, upload and chat message fails.
//!
//! The write probe records the time of the check in `settings`. It goes
//! through the writer's group commit like any other write, so it costs at
//! most one commit (shared with whatever else is being written then), and
//! when the database is locked it waits out the busy timeout (5 s) before
//! answering 503, as every write does. In cluster mode it also answers 503
//! while the node's delivery loop cannot read PostgreSQL (see
//! `docs/cluster.md`), when the node refuses chat sockets too.

use crate::api::ApiError;
use crate::db::Db;
use crate::http::response::Response;

pub(crate) async fn check(db: &Db) -> Result<Response, ApiError> {
    db.check_health().await?;
    Ok(Response::json(200, &serde_json::json!({ "status": "ok" })))
}
