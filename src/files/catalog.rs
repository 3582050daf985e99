//! `GET /files` (every file, newest first, in pages) and `DELETE /files/{id}`
//! (by its uploader only).

use std::ops::RangeInclusive;

use super::download::no_such_file;
use super::{store, FileView};
use crate::db::files::{self, Deleted};
use crate::error::ApiError;
use crate::http::form;
use crate::http::response::Response;
use crate::log::Level;
use crate::router::Exchange;

const DEFAULT_LIMIT: i64 = 20;
const MAX_LIMIT: i64 = 100;

pub async fn list(ex: &mut Exchange<'_, '_>) -> Result<Response, ApiError> {
    ex.authenticate()?;
    let query = ex.request.query();
    let offset = query_number(query, "offset", 0, 0..=i64::MAX, "'offset' must be an integer >= 0")?;
    let limit = query_number(
        query,
        "limit",
        DEFAULT_LIMIT,
        1..=MAX_LIMIT,
        "'limit' must be an integer from 1 to 100",
    )?;
    let rows = ex.app.db.read(move |conn| files::page(conn, offset, limit)).await?;
    let views: Vec<FileView<'_>> = rows.iter().map(FileView::from).collect();
    Ok(Response::json(200, &views))
}

/// The integer query parameter `name`: `default` when absent, 422 with
/// `detail` when it is not an integer in `range`.
fn query_number(
    query: &str,
    name: &str,
    default: i64,
    range: RangeInclusive<i64>,
    detail: &'static str,
) -> Result<i64, ApiError> {
    let Some(value) = form::get(query, name) else {
        return Ok(default);
    };
    value
        .parse::<i64>()
        .ok()
        .filter(|n| range.contains(n))
        .ok_or_else(|| ApiError::unprocessable(detail))
}

/// Deletes the row first, then the bytes: a crash in between leaves bytes
/// without a row, which the start-up sweep removes; the other order could
/// leave a listed file that cannot be downloaded.
pub async fn delete(ex: &mut Exchange<'_, '_>, id: &str) -> Result<Response, ApiError> {
    let claims = ex.authenticate()?;
    if !store::is_valid_id(id) {
        return Err(no_such_file());
    }
    let owned = id.to_string();
    let deleted = ex
        .app
        .db
        .write(move |conn| files::delete_owned(conn, &owned, claims.uid))
        .await?;
    match deleted {
        Deleted::NotFound => Err(no_such_file()),
        Deleted::NotOwner => Err(ApiError::forbidden("only the uploader may delete a file")),
        Deleted::Deleted => {
            if let Err(e) = store::remove(&ex.app.config.uploads_dir, id).await {
                // The row is gone, so the next start-up sweep removes the bytes.
                crate::log!(Level::Warn, "cannot remove file {id}: {e}");
            }
            Ok(Response::new(204))
        }
    }
}
