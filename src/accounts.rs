//! Account routes: `/register`, `/token`, `/logout`, `/me`, and the cookie
//! that carries a token for browsers. A login opens a session; the routes
//! that refresh, list and end sessions, and change the password, are in
//! [`sessions`].

pub(crate) mod sessions;

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use serde::Deserialize;

use crate::api::{ApiError, Ctx};
use crate::auth::passwords::Passwords;
use crate::auth::sessions::{self as live, LiveSession, Opened};
use crate::auth::throttle::Throttle;
use crate::auth::tokens::Tokens;
use crate::clock::{self, Timestamp};
use crate::db::sessions::NewSession;
use crate::db::Db;
use crate::http::form;
use crate::http::response::Response;
use crate::log::{self, Level};
use crate::metrics::METRICS;
use crate::sync::lock;

/// The one detail for every refused credential, so a response never tells
/// which part was wrong.
const BAD_LOGIN: &str = "incorrect username or password";
/// bcrypt reads at most 72 bytes; a longer password is refused rather than
/// silently cut.
const MAX_PASSWORD_BYTES: usize = 72;
const MIN_PASSWORD_BYTES: usize = 4;
const MAX_USERNAME_CHARS: usize = 32;
/// A session records this much of the client's `User-Agent` at most.
const MAX_USER_AGENT_CHARS: usize = 256;
/// A name in a log line is cut to this many characters: a refused login
/// may carry a name of any length.
const LOGGED_NAME_CHARS: usize = 64;

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
    /// Seconds a session may live, refreshes included.
    pub session_max_age: u64,
    /// Failed logins by name and by client address.
    pub throttle: Mutex<Throttle>,
}

impl Accounts {
    /// Refuses (429) an attempt to log in as `name` from `addr` while
    /// either is throttled, before any password is checked.
    fn admit(&self, name: &str, addr: IpAddr) -> Result<(), ApiError> {
        lock(&self.throttle).check(name, addr, Instant::now()).map_err(|wait| {
            METRICS.logins.throttled.inc();
            crate::log!(
                Level::Warn,
                "login throttled: addr={addr} name={} retry_after={}s",
                logged_name(name),
                wait.as_secs_f64().ceil()
            );
            ApiError::throttled(wait)
        })
    }

    /// Counts a failed attempt to log in as `name` from `addr`.
    fn refused(&self, name: &str, addr: IpAddr) {
        crate::log!(Level::Info, "login refused: addr={addr} name={}", logged_name(name));
        lock(&self.throttle).failed(name, addr, Instant::now());
    }

    /// Revokes sessions of `user_id` (see [`Db::revoke_sessions`]): first
    /// in the database, then in the registry, which every request and
    /// socket sees at once. Returns how many.
    async fn revoke(&self, user_id: i64, only: Option<String>, except: Option<String>) -> Result<usize, ApiError> {
        let ids = self.db.revoke_sessions(user_id, only, except).await?;
        self.end_sessions(&ids);
        Ok(ids.len())
    }

    fn end_sessions(&self, ids: &[String]) {
        for id in ids {
            self.tokens.sessions.revoke(id);
        }
    }

    /// The answer to a login or a refresh: a new token for `session`, in
    /// the body and in the cookie.
    fn issue(&self, ctx: &Ctx<'_, '_>, username: &str, session: &LiveSession) -> Result<(Response, u64), ApiError> {
        let issued = self.tokens.issue(username, session)?;
        let cookie = cookie(Some(&issued.token), issued.expires_in, ctx.over_tls());
        let body = serde_json::json!({ "access_token": issued.token, "token_type": "bearer", "expires_in": issued.expires_in });
        let response = Response::json(200, &body)
            .header("Set-Cookie", cookie)
            .header("Cache-Control", "no-store");
        Ok((response, issued.exp))
    }
}

pub(crate) async fn register(ctx: &mut Ctx<'_, '_>, accounts: &Accounts) -> Result<Response, ApiError> {
    // Unauthenticated, so the cookie rule does not cover it; a cross-site
    // form must not create accounts in a visitor's name either.
    ctx.refuse_cross_site()?;
    let Registration { username, password } = ctx.json_object().await?;
    validate_username(&username)?;
    validate_password(&password)?;
    let hash = accounts.passwords.hash(ctx.client.addr, password).await?;
    let user = accounts
        .db
        .create_user(username, hash)
        .await?
        .ok_or_else(|| ApiError::new(409, "username already taken"))?;
    ctx.set_user(&user.username);
    Ok(Response::json(201, &user))
}

pub(crate) async fn token(ctx: &mut Ctx<'_, '_>, accounts: &Accounts) -> Result<Response, ApiError> {
    // Login CSRF: a form on another site would log the visitor's browser
    // into the attacker's account (and set its cookie).
    ctx.refuse_cross_site()?;
    let body = ctx.small_body().await?;
    let body = std::str::from_utf8(&body).map_err(|_| ApiError::unprocessable("form body is not UTF-8"))?;
    let field = |name: &str| {
        form::get(body, name)
            .map(|v| v.into_owned())
            .ok_or_else(|| ApiError::unprocessable(format!("missing form field '{name}'")))
    };
    let (username, password) = (field("username")?, field("password")?);
    let addr = ctx.client.addr;
    accounts.admit(&username, addr)?;
    let found = accounts.db.credentials(username.clone()).await?;
    let (user, hash) = match found {
        Some(c) => (Some(c.user), Some(c.password_hash)),
        None => (None, None),
    };
    // bcrypt would compare only the first 72 bytes, so a longer password
    // (which no account can have) would pass for its prefix. It is checked
    // against the dummy hash instead: refused, at the same cost.
    let hash = hash.filter(|_| password.len() <= MAX_PASSWORD_BYTES);
    let valid = accounts.passwords.verify(addr, password, hash).await?;
    let Some(user) = user.filter(|_| valid) else {
        accounts.refused(&username, addr);
        METRICS.logins.bad.inc();
        return Err(ApiError::unauthorized(BAD_LOGIN));
    };
    lock(&accounts.throttle).succeeded(&username);
    METRICS.logins.ok.inc();
    ctx.set_user(&user.username);
    open_session(ctx, accounts, user.id, &user.username).await
}

/// Opens a session for a user who just proved who they are, and answers
/// with its first token. The registry learns of it first (its id is known
/// to nobody until the answer), the database before the answer.
async fn open_session(ctx: &Ctx<'_, '_>, accounts: &Accounts, uid: i64, username: &str) -> Result<Response, ApiError> {
    let id = live::new_id().map_err(|e| {
        crate::log!(Level::Error, "no randomness for a session id: {e}");
        ApiError::internal()
    })?;
    let now = clock::now_millis();
    let max_age = i64::try_from(accounts.session_max_age.saturating_mul(1000)).unwrap_or(i64::MAX);
    let expires_at = now.saturating_add(max_age);
    // Opened with the expiry of its first token, which `issue` confirms:
    // never a moment without one, when the registry would forget it.
    let tokens = &accounts.tokens;
    let session = tokens.sessions.open(Opened {
        id: id.clone(),
        uid,
        expires_at,
        token_exp: tokens.expiry(clock::now_secs(), expires_at),
        last_used: now,
    });
    let (response, exp) = accounts.issue(ctx, username, &session)?;
    let user_agent = ctx.request.header("user-agent").unwrap_or_default();
    let record = NewSession {
        id,
        user_id: uid,
        created_at: Timestamp(now),
        expires_at: Timestamp(expires_at),
        token_expires_at: Timestamp(exp as i64 * 1000),
        ip: ctx.client.addr.to_string(),
        user_agent: user_agent.chars().take(MAX_USER_AGENT_CHARS).collect(),
    };
    if let Err(e) = accounts.db.create_session(record).await {
        accounts.tokens.sessions.revoke(&session.id);
        return Err(e.into());
    }
    Ok(response)
}

/// Needs no token: it always clears the cookie, so it works even once the
/// token has expired. With a valid token (bearer or cookie) it also
/// revokes that token's session, everywhere at once.
pub(crate) async fn logout(ctx: &mut Ctx<'_, '_>, accounts: &Accounts) -> Result<Response, ApiError> {
    if let Ok(claims) = ctx.authenticate() {
        accounts.revoke(claims.uid, Some(claims.sid), None).await?;
    }
    Ok(cleared(ctx, Response::new(204)))
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

/// `response`, clearing the cookie.
fn cleared(ctx: &Ctx<'_, '_>, response: Response) -> Response {
    response.header("Set-Cookie", cookie(None, 0, ctx.over_tls()))
}

/// A user name as a log line shows it: printable and short.
fn logged_name(name: &str) -> String {
    let short: String = name.chars().take(LOGGED_NAME_CHARS).collect();
    log::printable(&short).into_owned()
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
