//! `GET /healthz`: answers 200 only when a database query succeeds, so a load
//! balancer takes the server out of rotation while its storage is down.

use crate::error::ApiError;
use crate::http::response::Response;
use crate::router::Exchange;

pub async fn check(ex: &mut Exchange<'_, '_>) -> Result<Response, ApiError> {
    ex.app
        .db
        .read(|conn| Ok(conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?))
        .await?;
    Ok(Response::json(200, &serde_json::json!({ "status": "ok" })))
}
