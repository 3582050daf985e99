//! `GET /files` (every file, newest first, in pages) and `DELETE /files/{id}`
//! (by its uploader only).

use super::download::no_such_file;
use super::{store, FileView, Files};
use crate::api::paging;
use crate::api::{ApiError, Ctx};
use crate::db::files::Deletion;
use crate::http::response::Response;
use crate::log::Level;

pub(crate) async fn list(ctx: &mut Ctx<'_, '_>, files: &Files) -> Result<Response, ApiError> {
    ctx.authenticate()?;
    let (offset, limit) = paging::parse_offset(ctx.request.query())?;
    let rows = files.db.files_page(offset, limit).await?;
    let views: Vec<FileView<'_>> = rows.iter().map(FileView::from).collect();
    Ok(Response::json(200, &views))
}

/// Deletes the row first, then the bytes: a crash in between leaves bytes
/// without a row, which the start-up sweep removes; the other order could
/// leave a listed file that cannot be downloaded.
pub(crate) async fn delete(ctx: &mut Ctx<'_, '_>, files: &Files, id: &str) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    if !store::is_valid_id(id) {
        return Err(no_such_file());
    }
    let deleted = files.db.delete_owned_file(id.to_string(), claims.uid).await?;
    match deleted {
        Deletion::NotFound => Err(no_such_file()),
        Deletion::NotOwner => Err(ApiError::forbidden("only the uploader may delete a file")),
        Deletion::Deleted => {
            if let Err(e) = store::remove(&files.dir, id).await {
                // The row is gone, so the next start-up sweep removes the bytes.
                crate::log!(Level::Warn, "cannot remove file {id}: {e}");
            }
            Ok(Response::new(204))
        }
    }
}
