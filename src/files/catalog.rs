//! `GET /files` (the caller's files, or those shared in the room, newest
//! first, in pages) and `DELETE /files/{id}` (by its uploader only).

use super::{no_such_file, not_the_uploader, store, FileView, Files};
use crate::api::paging;
use crate::api::{ApiError, Ctx};
use crate::db::files::{Deletion, Listing};
use crate::http::form;
use crate::http::response::Response;
use crate::log::Level;

/// `scope=mine` (the default) or `scope=room`; anything else is 422.
pub(crate) async fn list(ctx: &mut Ctx<'_, '_>, files: &Files) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    let query = ctx.request.query();
    let (offset, limit) = paging::parse_offset(query)?;
    let listing = match form::get(query, "scope").as_deref() {
        None | Some("mine") => Listing::UploadedBy(claims.uid),
        Some("room") => Listing::Shared,
        Some(_) => return Err(ApiError::unprocessable("'scope' must be 'mine' or 'room'")),
    };
    let rows = files.db.files_page(listing, offset, limit).await?;
    let views: Vec<FileView<'_>> = rows
        .iter()
        .map(|row| FileView {
            shared: Some(row.shared),
            ..FileView::from(row)
        })
        .collect();
    Ok(Response::json(200, &views))
}

/// Deletes the row first, then the bytes: a crash in between leaves bytes
/// without a row, which the start-up sweep removes; the other order could
/// leave a listed file that cannot be downloaded. Once the deletion is
/// committed, the room forgets the cached pages that showed the file.
pub(crate) async fn delete(ctx: &mut Ctx<'_, '_>, files: &Files, id: &str) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    if !store::is_valid_id(id) {
        return Err(no_such_file());
    }
    let deleted = files.db.delete_owned_file(id.to_string(), claims.uid).await?;
    match deleted {
        Deletion::NotFound => Err(no_such_file()),
        Deletion::NotOwner => Err(not_the_uploader()),
        Deletion::Deleted => {
            files.room.forget_file(id);
            if let Err(e) = store::remove(&files.dir, id).await {
                // The row is gone, so the next start-up sweep removes the bytes.
                crate::log!(Level::Warn, "cannot remove file {id}: {e}");
            }
            Ok(Response::new(204))
        }
    }
}
