//! Account routes: `/register`, `/token`, `/logout`, `/me`, and the cookie
//! that carries a token for browsers.

use serde::Deserialize;

use crate::api::{ApiError, Ctx};
use crate::auth::passwords::Passwords;
use crate::auth::tokens::Tokens;
use crate::db::Db;
use crate::http::form;
use crate::http::response::Response;
use crate::metrics::METRICS;

/// The one detail for every refused credential, so a response never tells
/// which part was wrong.
const BAD_LOGIN: &str = "incorrect username or password";
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

/// What the account routes need.
pub struct Accounts {
    pub db: Db,
    pub tokens: Tokens,
    pub passwords: Passwords,
    /// `Secure` on the cookie (`--secure-cookies`).
    pub secure_cookies: bool,
}

pub(crate) async fn register(ctx: &mut Ctx<'_, '_>, accounts: &Accounts) -> Result<Response, ApiError> {
    let Registration { username, password } = ctx.json_object().await?;
    validate_username(&username)?;
    validate_password(&password)?;
    let hash = accounts.passwords.hash(password).await?;
    let user = accounts
        .db
        .create_user(username, hash)
        .await?
        .ok_or_else(|| ApiError::new(409, "username already taken"))?;
    ctx.set_user(&user.username);
    Ok(Response::json(201, &user))
}

pub(crate) async fn token(ctx: &mut Ctx<'_, '_>, accounts: &Accounts) -> Result<Response, ApiError> {
    let body = ctx.small_body().await?;
    let body = std::str::from_utf8(&body).map_err(|_| ApiError::unprocessable("form body is not UTF-8"))?;
    let field = |name: &str| {
        form::get(body, name)
            .map(|v| v.into_owned())
            .ok_or_else(|| ApiError::unprocessable(format!("missing form field '{name}'")))
    };
    let (username, password) = (field("username")?, field("password")?);
    let found = accounts.db.credentials(username).await?;
    let (user, hash) = match found {
        Some(c) => (Some(c.user), Some(c.password_hash)),
        None => (None, None),
    };
    // bcrypt would compare only the first 72 bytes, so a longer password
    // (which no account can have) would pass for its prefix. It is checked
    // against the dummy hash instead: refused, at the same cost.
    let hash = hash.filter(|_| password.len() <= MAX_PASSWORD_BYTES);
    let valid = accounts.passwords.verify(password, hash).await?;
    let Some(user) = user.filter(|_| valid) else {
        METRICS.logins.bad.inc();
        return Err(ApiError::unauthorized(BAD_LOGIN));
    };
    METRICS.logins.ok.inc();
    ctx.set_user(&user.username);
    let tokens = &accounts.tokens;
    let token = tokens.issue(user.id, &user.username);
    let cookie = cookie(Some(&token), tokens.ttl, accounts.secure_cookies);
    let body = serde_json::json!({ "access_token": token, "token_type": "bearer", "expires_in": tokens.ttl });
    Ok(Response::json(200, &body)
        .header("Set-Cookie", cookie)
        .header("Cache-Control", "no-store"))
}

/// Needs no token: it only clears the cookie, so it works even once the
/// token has expired.
pub(crate) fn logout(accounts: &Accounts) -> Result<Response, ApiError> {
    let cookie = cookie(None, 0, accounts.secure_cookies);
    Ok(Response::new(204).header("Set-Cookie", cookie))
}

pub(crate) async fn me(ctx: &mut Ctx<'_, '_>, accounts: &Accounts) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    let user = accounts
        .db
        .user(claims.uid)
        .await?
        .ok_or_else(|| ApiError::unauthorized("account no longer exists"))?;
    Ok(Response::json(200, &user))
}

/// `Set-Cookie` for a fresh token, or (with `None`) for logging out.
fn cookie(token: Option<&str>, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "access_token={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
        token.unwrap_or(""),
        if token.is_some() { max_age } else { 0 }
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_carry_the_contract_attributes() {
        assert_eq!(
            cookie(Some("t"), 60, false),
            "access_token=t; HttpOnly; SameSite=Lax; Path=/; Max-Age=60"
        );
        assert_eq!(
            cookie(None, 60, true),
            "access_token=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0; Secure"
        );
    }
}
