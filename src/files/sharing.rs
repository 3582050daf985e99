//! Sharing a file: in the room, as a chat message that carries it
//! (`POST /files/{id}/share`), and outside it, through expiring links
//! (`POST`/`GET /files/{id}/links`, `DELETE /files/{id}/links/{link}`), which
//! `GET /d/{token}` downloads without authentication. All of these are its
//! uploader's alone.
//!
//! A link's token is 256 random bits, shown once, in the creation's answer;
//! the database keeps only its SHA-256 (`db::links`), and the access log
//! shows `/d/REDACTED` (`log::redact`). Hashing without a salt is enough
//! for a random token of that size: there is no dictionary to try.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{no_such_file, owned, store, Files};
use crate::api::{ApiError, Ctx};
use crate::clock::Timestamp;
use crate::db::files::FileRow;
use crate::db::links::{LinkTarget, NewLink};
use crate::http::response::Response;

/// Random bytes in a link's token (hex in the URL).
const TOKEN_BYTES: usize = 32;
/// The range of `expires_in`, in seconds: a minute to a week.
const EXPIRES_IN: std::ops::RangeInclusive<i64> = 60..=604_800;
/// `expires_in` when the request does not give it: a day.
const DEFAULT_EXPIRES_IN: i64 = 86_400;

/// `POST /files/{id}/share`: 201 with the file message, once it is
/// committed and broadcast (see [`Room::share`](crate::chat::room::Room::share)).
pub(crate) async fn share(ctx: &mut Ctx<'_, '_>, files: &Files, id: &str) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    let row = owned(files, id, claims.uid).await?;
    let message = files.room.share(claims.uid, claims.sub, row.id, row.filename).await?;
    Ok(Response::json(201, &message))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    #[serde(default = "default_expires_in")]
    expires_in: i64,
}

fn default_expires_in() -> i64 {
    DEFAULT_EXPIRES_IN
}

/// The answer to a link's creation: the only time its token is seen.
#[derive(Serialize)]
struct CreatedLink {
    id: String,
    url: String,
    expires_at: Timestamp,
}

/// `POST /files/{id}/links`, with `{"expires_in": seconds}` or no body at
/// all (a day).
pub(crate) async fn create_link(ctx: &mut Ctx<'_, '_>, files: &Files, id: &str) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    let row = owned(files, id, claims.uid).await?;
    let framed = ctx.request.header("content-length").is_some_and(|n| n.trim() != "0")
        || ctx.request.header("transfer-encoding").is_some();
    let expires_in = if framed {
        ctx.json_object::<LinkRequest>().await?.expires_in
    } else {
        DEFAULT_EXPIRES_IN
    };
    if !EXPIRES_IN.contains(&expires_in) {
        return Err(ApiError::unprocessable(
            "'expires_in' must be from 60 to 604800 seconds",
        ));
    }
    let token = store::random_hex(TOKEN_BYTES).map_err(ApiError::storage)?;
    let created_at = Timestamp::now();
    let link = NewLink {
        id: store::new_id().map_err(ApiError::storage)?,
        file_id: row.id,
        token_hash: hash(&token),
        created_at,
        expires_at: Timestamp(created_at.0 + expires_in * 1000),
    };
    let created = CreatedLink {
        id: link.id.clone(),
        url: format!("/d/{token}"),
        expires_at: link.expires_at,
    };
    files.db.insert_link(link).await?;
    Ok(Response::json(201, &created))
}

/// `GET /files/{id}/links`: the live links, newest first, without tokens.
pub(crate) async fn list_links(ctx: &mut Ctx<'_, '_>, files: &Files, id: &str) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    let row = owned(files, id, claims.uid).await?;
    let links = files.db.live_links(row.id, Timestamp::now()).await?;
    Ok(Response::json(200, &links))
}

/// `DELETE /files/{id}/links/{link}`: 204, and the link's URL answers 410
/// from then on. A link that is not a live link of this file is 404.
pub(crate) async fn revoke_link(
    ctx: &mut Ctx<'_, '_>,
    files: &Files,
    id: &str,
    link_id: &str,
) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    let row = owned(files, id, claims.uid).await?;
    if !store::is_valid_id(link_id) {
        return Err(no_such_link());
    }
    if files
        .db
        .revoke_link(row.id, link_id.to_string(), Timestamp::now())
        .await?
    {
        Ok(Response::new(204))
    } else {
        Err(no_such_link())
    }
}

/// The file a share link's token leads to: 404 for a token that was never
/// handed out (or whose file was deleted), 410 for one that expired or was
/// revoked.
pub(crate) async fn link_target(files: &Files, token: &str) -> Result<FileRow, ApiError> {
    if !is_token(token) {
        return Err(no_such_file());
    }
    match files.db.link_target(hash(token), Timestamp::now()).await? {
        LinkTarget::Live(row) => Ok(row),
        LinkTarget::Ended => Err(ApiError::new(410, "this link has expired or was revoked")),
        LinkTarget::Unknown => Err(no_such_file()),
    }
}

fn no_such_link() -> ApiError {
    ApiError::not_found("no such link")
}

/// Whether `token` has the shape of a token this server hands out; anything
/// else is not looked up.
fn is_token(token: &str) -> bool {
    token.len() == 2 * TOKEN_BYTES && token.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_of_the_drawn_shape_are_looked_up() {
        let token = store::random_hex(TOKEN_BYTES).unwrap();
        assert!(is_token(&token));
        assert!(!is_token(&token[1..]));
        assert!(!is_token(&token.to_uppercase()));
        assert!(!is_token(&format!("{}/", &token[1..])));
        assert_ne!(hash(&token), hash(&store::random_hex(TOKEN_BYTES).unwrap()));
    }
}
