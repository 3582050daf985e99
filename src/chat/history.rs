//! `GET /history/last20` and `GET /history` (by offset or by `before_id`):
//! authentication and parameters here, the pages themselves from the room.

use super::room::Room;
use crate::api::paging;
use crate::api::{ApiError, Ctx};
use crate::http::response::Response;

pub(crate) async fn last20(ctx: &mut Ctx<'_, '_>, room: &Room) -> Result<Response, ApiError> {
    ctx.authenticate()?;
    let body = room.newest_page().await?;
    Ok(Response::bytes(200, "application/json", body))
}

pub(crate) async fn page(ctx: &mut Ctx<'_, '_>, room: &Room) -> Result<Response, ApiError> {
    ctx.authenticate()?;
    let query = paging::parse(ctx.request.query())?;
    let body = room.page(query).await?;
    Ok(Response::bytes(200, "application/json", body))
}
