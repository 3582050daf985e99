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
//! answering 503, as every write does.

use crate::clock;
use crate::db::settings;
use crate::error::ApiError;
use crate::http::response::Response;
use crate::router::Exchange;

pub async fn check(ex: &mut Exchange<'_, '_>) -> Result<Response, ApiError> {
    let db = &ex.app.db;
    db.read(|conn| Ok(conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?))
        .await?;
    let now = clock::now_millis();
    db.write(move |conn| settings::record_health_check(conn, now)).await?;
    Ok(Response::json(200, &serde_json::json!({ "status": "ok" })))
}
