//! Account routes: `/register`, `/token`, `/logout`, `/me`.

use serde::{Deserialize, Serialize};

use crate::auth::{self, BAD_LOGIN};
use crate::db::users::{self, User};
use crate::error::ApiError;
use crate::http::form;
use crate::http::response::Response;
use crate::router::Exchange;
use crate::{clock, json};

/// JSON and form bodies are refused over this size (413).
pub const SMALL_BODY_LIMIT: u64 = 64 * 1024;
/// bcrypt reads at most 72 bytes; a longer password is refused rather than
/// silently cut.
const MAX_PASSWORD_BYTES: usize = 72;
const MIN_PASSWORD_BYTES: usize = 4;
const MAX_USERNAME_CHARS: usize = 32;

#[derive(Deserialize)]
struct Registration {
    username: String,
    password: String,
}

#[derive(Serialize)]
pub struct UserView<'a> {
    pub id: i64,
    pub username: &'a str,
    pub created_at: String,
}

impl<'a> From<&'a User> for UserView<'a> {
    fn from(user: &'a User) -> Self {
        UserView {
            id: user.id,
            username: &user.username,
            created_at: clock::rfc3339_millis(user.created_at),
        }
    }
}

pub async fn register(ex: &mut Exchange<'_, '_>) -> Result<Response, ApiError> {
    let body = ex.body.read_to_end(SMALL_BODY_LIMIT).await?;
    let Registration { username, password } = json::parse_object(&body)?;
    validate_username(&username)?;
    validate_password(&password)?;
    let hash = ex.app.auth.hash_password(password).await?;
    let now = clock::now_millis();
    let name = username.clone();
    let user = ex
        .app
        .db
        .write(move |conn| users::insert(conn, &name, &hash, now))
        .await?
        .ok_or_else(|| ApiError::new(409, "username already taken"))?;
    ex.user = Some(user.username.clone());
    Ok(Response::json(201, &UserView::from(&user)))
}

pub async fn token(ex: &mut Exchange<'_, '_>) -> Result<Response, ApiError> {
    let body = ex.body.read_to_end(SMALL_BODY_LIMIT).await?;
    let body = std::str::from_utf8(&body).map_err(|_| ApiError::unprocessable("form body is not UTF-8"))?;
    let field = |name: &str| {
        form::get(body, name)
            .map(|v| v.into_owned())
            .ok_or_else(|| ApiError::unprocessable(format!("missing form field '{name}'")))
    };
    let (username, password) = (field("username")?, field("password")?);
    let found = ex.app.db.read(move |conn| users::credentials(conn, &username)).await?;
    let (user, hash) = match found {
        Some(c) => (Some(c.user), Some(c.password_hash)),
        None => (None, None),
    };
    // bcrypt would compare only the first 72 bytes, so a longer password
    // (which no account can have) would pass for its prefix. It is checked
    // against the dummy hash instead: refused, at the same cost.
    let hash = hash.filter(|_| password.len() <= MAX_PASSWORD_BYTES);
    let valid = ex.app.auth.verify_password(password, hash).await?;
    let user = user
        .filter(|_| valid)
        .ok_or_else(|| ApiError::unauthorized(BAD_LOGIN))?;
    ex.user = Some(user.username.clone());
    let auth = &ex.app.auth;
    let token = auth.issue(user.id, &user.username);
    let cookie = auth::cookie(Some(&token), auth.ttl, ex.app.config.secure_cookies);
    let body = serde_json::json!({ "access_token": token, "token_type": "bearer", "expires_in": auth.ttl });
    Ok(Response::json(200, &body)
        .header("Set-Cookie", cookie)
        .header("Cache-Control", "no-store"))
}

/// Needs no token: it only clears the cookie, so it works even once the
/// token has expired.
pub fn logout(ex: &mut Exchange<'_, '_>) -> Result<Response, ApiError> {
    let cookie = auth::cookie(None, 0, ex.app.config.secure_cookies);
    Ok(Response::new(204).header("Set-Cookie", cookie))
}

pub async fn me(ex: &mut Exchange<'_, '_>) -> Result<Response, ApiError> {
    let claims = ex.authenticate()?;
    let user = ex
        .app
        .db
        .read(move |conn| users::by_id(conn, claims.uid))
        .await?
        .ok_or_else(|| ApiError::unauthorized("account no longer exists"))?;
    Ok(Response::json(200, &UserView::from(&user)))
}

fn validate_username(name: &str) -> Result<(), ApiError> {
    let count = name.chars().count();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    if count == 0 || count > MAX_USERNAME_CHARS || !name.chars().all(allowed) {
        return Err(ApiError::unprocessable(
            "username must be 1 to 32 characters of A-Z a-z 0-9 _ . -",
        ));
    }
    Ok(())
}

fn validate_password(password: &str) -> Result<(), ApiError> {
    if !(MIN_PASSWORD_BYTES..=MAX_PASSWORD_BYTES).contains(&password.len()) {
        return Err(ApiError::unprocessable("password must be 4 to 72 bytes"));
    }
    Ok(())
}
