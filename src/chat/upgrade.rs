//! `GET /ws/chat`: who may open a chat socket.
//!
//! Everything is decided before the `101`: a request that is not a valid
//! handshake gets 400 (426 if it is a plain GET), a missing or bad token 401,
//! and a cookie-authenticated handshake from a foreign page 403. Browsers
//! send cookies with cross-site WebSocket handshakes and do not apply CORS to
//! them, so without the `Origin` check any page a user visits could chat in
//! their name. A token passed in the query cannot have been attached by the
//! browser on its own, so it is accepted from any origin. The resume
//! parameters (`after_id`, `epoch`, `last`) are checked here too, so that a
//! bad one is a 422 and not a socket that opens and closes. A node that has
//! lost its database (cluster mode) answers 503: the socket could neither
//! post nor deliver. The socket then
//! follows the token's session: it ends when the session does.

use super::resume;
use super::socket::Session;
use super::Chat;
use crate::api::{ApiError, Ctx, TokenSource};
use crate::db::DbError;
use crate::http::response::Response;
use crate::ws::handshake::{handshake_key, switching_protocols};

pub(crate) async fn chat(ctx: &mut Ctx<'_, '_>, chat: &Chat) -> Result<Response, ApiError> {
    let key = handshake_key(ctx.request)?;
    let caller = ctx.authenticate_from(true)?;
    if caller.source == TokenSource::Cookie && !ctx.origin_allowed() {
        return Err(ApiError::forbidden(
            "cross-site WebSocket handshake refused: origin not allowed",
        ));
    }
    let resume = resume::parse(ctx.request.query())?;
    if !chat.room.storage_reachable() {
        return Err(DbError::Unavailable("the node has lost its database".into()).into());
    }
    let session = Session::new(chat, caller.claims, caller.session, resume);
    Ok(switching_protocols(
        key,
        Box::new(move |stream, leftover| Box::pin(session.run(stream, leftover))),
    ))
}
