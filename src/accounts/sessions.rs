//! The routes of a user's sessions: `/token/refresh`, `/sessions`,
//! `DELETE /sessions/{id}`, `/logout/all` and `/password`; and the
//! registry's upkeep: loaded from the database at start-up, its times of
//! last use written back in batches, its unusable sessions forgotten.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{cleared, validate_password, Accounts};
use crate::api::{ApiError, Ctx};
use crate::auth::sessions::{Opened, Sessions};
use crate::auth::tokens::{TokenError, LEEWAY_SECS};
use crate::clock::{self, Timestamp};
use crate::db::sessions::{SessionInfo, StoredSession};
use crate::db::{Db, DbError};
use crate::http::response::Response;
use crate::log::Level;
use crate::shutdown::Shutdown;
use crate::sync::lock;

/// How often the times of last use are written: `last_used_at` lags by
/// at most this, well within the minute the contract allows.
const FLUSH_EVERY: Duration = Duration::from_secs(30);

/// `POST /token/refresh`: a new token for the caller's session.
pub(crate) async fn refresh(ctx: &mut Ctx<'_, '_>, accounts: &Accounts) -> Result<Response, ApiError> {
    let caller = ctx.authenticate_from(false)?;
    let (response, exp) = accounts.issue(ctx, &caller.claims.sub, &caller.session)?;
    let token_expires_at = Timestamp(exp as i64 * 1000);
    if !accounts.db.refresh_session(caller.claims.sid, token_expires_at).await? {
        return Err(TokenError::SessionEnded.into());
    }
    Ok(response)
}

/// One session in `GET /sessions`.
#[derive(Serialize)]
struct Listed {
    #[serde(flatten)]
    info: SessionInfo,
    /// The session of the token of this request.
    current: bool,
}

/// `GET /sessions`: the caller's live sessions, newest first.
pub(crate) async fn list(ctx: &mut Ctx<'_, '_>, accounts: &Accounts) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    let sessions: Vec<Listed> = accounts
        .db
        .sessions_of(claims.uid)
        .await?
        .into_iter()
        .map(|info| Listed {
            current: info.id == claims.sid,
            info,
        })
        .collect();
    Ok(Response::json(200, &sessions).header("Cache-Control", "no-store"))
}

/// `DELETE /sessions/{id}`: ends one of the caller's sessions. Ending the
/// current one also clears the cookie.
pub(crate) async fn delete(ctx: &mut Ctx<'_, '_>, accounts: &Accounts, id: &str) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    if accounts.revoke(claims.uid, Some(id.to_string()), None).await? == 0 {
        return Err(ApiError::not_found("no such session"));
    }
    let response = Response::new(204);
    Ok(if id == claims.sid {
        cleared(ctx, response)
    } else {
        response
    })
}

/// `POST /logout/all`: ends every session of the caller, this one too.
pub(crate) async fn logout_all(ctx: &mut Ctx<'_, '_>, accounts: &Accounts) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    accounts.revoke(claims.uid, None, None).await?;
    Ok(cleared(ctx, Response::new(204)))
}

#[derive(Deserialize)]
struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// `POST /password`: a new password, under the rules of registration,
/// given the current one; every other session of the user ends. A wrong
/// current password is a failed login, throttled like one.
pub(crate) async fn change_password(ctx: &mut Ctx<'_, '_>, accounts: &Accounts) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    let PasswordChange {
        current_password,
        new_password,
    } = ctx.json_object().await?;
    validate_password(&new_password)?;
    let addr = ctx.client.addr;
    accounts.admit(&claims.sub, addr)?;
    let stored = accounts.db.credentials(claims.sub.clone()).await?;
    let hash = stored
        .filter(|c| c.user.id == claims.uid)
        .map(|c| c.password_hash)
        .filter(|_| current_password.len() <= super::MAX_PASSWORD_BYTES);
    if !accounts.passwords.verify(addr, current_password, hash).await? {
        accounts.refused(&claims.sub, addr);
        return Err(ApiError::unauthorized("the current password is wrong"));
    }
    lock(&accounts.throttle).succeeded(&claims.sub);
    let hash = accounts.passwords.hash(addr, new_password).await?;
    let revoked = accounts.db.change_password(claims.uid, hash, claims.sid).await?;
    accounts.end_sessions(&revoked);
    Ok(Response::new(204))
}

/// The registry of live sessions, as the database holds them at start-up.
pub(crate) async fn load(db: &Db) -> Result<Arc<Sessions>, DbError> {
    let sessions = Arc::new(Sessions::default());
    for stored in db.live_sessions().await? {
        sessions.open(opened(stored));
    }
    Ok(sessions)
}

/// A stored session as the registry holds it.
fn opened(stored: StoredSession) -> Opened {
    Opened {
        id: stored.id,
        uid: stored.user_id,
        expires_at: stored.expires_at.0,
        token_exp: u64::try_from(stored.token_expires_at.0 / 1000).unwrap_or(0),
        last_used: stored.last_used_at.0,
    }
}

/// Runs until shutdown: every [`FLUSH_EVERY`], writes the sessions' times
/// of last use in one batch and forgets the sessions no token can use any
/// more; at shutdown, writes once more.
pub(crate) async fn keep_up(db: Db, sessions: Arc<Sessions>, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = shutdown.triggered() => true,
        };
        let used = sessions.unflushed();
        if !used.is_empty() {
            match db.touch_sessions(used.clone()).await {
                Ok(()) => sessions.flushed(&used),
                Err(e) => crate::log!(Level::Warn, "sessions: times of last use not written: {e}"),
            }
        }
        sessions.prune(clock::now_millis(), LEEWAY_SECS);
        if stopping {
            return;
        }
    }
}

/// Cluster mode: runs until shutdown, keeping this node's registry in step
/// with the others': sessions opened on any node are accepted here (a
/// token works on every node), those refreshed on any node are extended
/// here (their sockets here follow the newer token instead of closing with
/// 4001 at the older one's expiry), sessions revoked on any node end here
/// (and so do their sockets). Both are idempotent, as the polls overlap
/// (see `db::changes`).
///
/// The opened sessions are read and opened before the revocations are
/// read: a session revoked on this node while the poll runs, after the
/// first read saw it live, is therefore seen revoked by the second read
/// (its revocation was committed before the registry forgot it) and ended
/// again, instead of living on until the next poll.
#[cfg(feature = "postgres")]
pub(crate) async fn follow_cluster(db: Db, sessions: Arc<Sessions>, shutdown: Shutdown) {
    let mut polls = crate::db::changes::Polls::new(shutdown);
    while let Some(since) = polls.next().await {
        let read = poll(&db, &sessions, since).await;
        polls.done(read, "sessions: logins, refreshes and revocations of other nodes");
    }
}

/// One poll of [`follow_cluster`].
#[cfg(feature = "postgres")]
async fn poll(db: &Db, sessions: &Sessions, since: Timestamp) -> Result<(), DbError> {
    for stored in db.issued_since(since).await? {
        match sessions.get(&stored.id) {
            // Refreshed on another node: its sockets here follow the newer token.
            Some(live) => live.extend(opened(stored).token_exp),
            None => {
                sessions.open(opened(stored));
            }
        }
    }
    for id in db.revoked_since(since).await? {
        sessions.revoke(&id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::db::sessions::NewSession;
    use crate::shutdown::ShutdownTrigger;

    #[tokio::test]
    async fn uses_are_written_back_in_a_batch_and_loaded_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("chat.db"), Synchronous::Normal).unwrap();
        let uid = db.create_user("ann".into(), "x".into()).await.unwrap().unwrap().id;
        let now = clock::now_millis();
        for id in ["used", "idle"] {
            let record = NewSession {
                id: id.into(),
                user_id: uid,
                created_at: Timestamp(now - 60_000),
                expires_at: Timestamp(now + 3_600_000),
                token_expires_at: Timestamp(now + 600_000),
                ip: "192.0.2.1".into(),
                user_agent: "test".into(),
            };
            db.create_session(record).await.unwrap();
        }
        let sessions = load(&db).await.unwrap();
        assert_eq!(sessions.len(), 2);
        // Many requests, one time of use to write.
        for _ in 0..100 {
            sessions.get("used").unwrap().touch(now);
        }
        let (trigger, shutdown) = ShutdownTrigger::new();
        let upkeep = tokio::spawn(keep_up(db.clone(), sessions.clone(), shutdown));
        trigger.trigger();
        upkeep.await.unwrap();
        assert!(sessions.unflushed().is_empty());
        let listed = db.sessions_of(uid).await.unwrap();
        let last_used = |id: &str| listed.iter().find(|s| s.id == id).unwrap().last_used_at.0;
        assert_eq!((last_used("used"), last_used("idle")), (now, now - 60_000));
    }
}
