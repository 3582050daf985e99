//! Login sessions: the record of each, kept for listing and for start-up.
//! Requests are checked against the registry in memory
//! ([`crate::auth::sessions`]), never against these rows; every change
//! here is made before the registry's, so an answer means "durable".
//!
//! A session is live while it is not revoked, not past its absolute limit
//! (`expires_at`) and its newest token has not expired
//! (`token_expires_at`). Times are Unix milliseconds.

use rusqlite::{Connection, Row};
use serde::Serialize;

use super::{Db, DbError};
use crate::clock::Timestamp;

/// Dead sessions (revoked, or expired) are deleted once unused this long.
const KEEP_DEAD_MS: i64 = 30 * 24 * 3600 * 1000;

/// The condition on a row that makes a session live at `?now`.
const LIVE: &str = "revoked_at IS NULL AND expires_at > :now AND token_expires_at > :now";

/// A session as its owner sees it in `GET /sessions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    pub id: String,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    pub expires_at: Timestamp,
    pub ip: String,
    pub user_agent: String,
}

/// A new session, at a login.
pub struct NewSession {
    pub id: String,
    pub user_id: i64,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub token_expires_at: Timestamp,
    pub ip: String,
    pub user_agent: String,
}

/// A live session as the registry loads it at start-up.
pub struct StoredSession {
    pub id: String,
    pub user_id: i64,
    pub expires_at: Timestamp,
    pub token_expires_at: Timestamp,
    pub last_used_at: Timestamp,
}

impl Db {
    pub async fn create_session(&self, session: NewSession) -> Result<(), DbError> {
        super::on_postgres!(self, create_session(session));
        self.write(move |conn| {
            conn.prepare_cached(
                "INSERT INTO sessions (id, user_id, created_at, last_used_at, expires_at, token_expires_at, ip, user_agent)
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute((
                &session.id,
                session.user_id,
                session.created_at.0,
                session.expires_at.0,
                session.token_expires_at.0,
                &session.ip,
                &session.user_agent,
            ))?;
            Ok(())
        })
        .await
    }

    /// Every live session, for the registry at start-up; first deletes the
    /// sessions dead and unused for a month.
    pub async fn live_sessions(&self) -> Result<Vec<StoredSession>, DbError> {
        super::on_postgres!(self, live_sessions());
        let now = Timestamp::now().0;
        self.write(move |conn| {
            conn.prepare_cached(&format!(
                "DELETE FROM sessions WHERE NOT ({LIVE}) AND last_used_at < :now - {KEEP_DEAD_MS}"
            ))?
            .execute(rusqlite::named_params! { ":now": now })?;
            let mut statement = conn.prepare_cached(&format!(
                "SELECT id, user_id, expires_at, token_expires_at, last_used_at FROM sessions WHERE {LIVE}"
            ))?;
            let rows = statement.query_map(rusqlite::named_params! { ":now": now }, |row| {
                Ok(StoredSession {
                    id: row.get(0)?,
                    user_id: row.get(1)?,
                    expires_at: Timestamp(row.get(2)?),
                    token_expires_at: Timestamp(row.get(3)?),
                    last_used_at: Timestamp(row.get(4)?),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// The live sessions of a user, newest first.
    pub async fn sessions_of(&self, user_id: i64) -> Result<Vec<SessionInfo>, DbError> {
        super::on_postgres!(self, sessions_of(user_id));
        let now = Timestamp::now().0;
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT id, created_at, last_used_at, expires_at, ip, user_agent FROM sessions
                 WHERE user_id = :user AND {LIVE} ORDER BY created_at DESC, rowid DESC"
            ))?;
            let rows = statement.query_map(rusqlite::named_params! { ":user": user_id, ":now": now }, info)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// A newer token of a live session expires at `token_expires_at`;
    /// `false` if the session is not live any more.
    pub async fn refresh_session(&self, id: String, token_expires_at: Timestamp) -> Result<bool, DbError> {
        super::on_postgres!(self, refresh_session(id, token_expires_at));
        let now = Timestamp::now().0;
        self.write(move |conn| {
            let changed = conn
                .prepare_cached(&format!(
                    "UPDATE sessions SET token_expires_at = max(token_expires_at, :exp), last_used_at = :now
                     WHERE id = :id AND {LIVE}"
                ))?
                .execute(rusqlite::named_params! { ":exp": token_expires_at.0, ":now": now, ":id": id })?;
            Ok(changed == 1)
        })
        .await
    }

    /// Revokes sessions of `user_id`: the one `only` names (if given), or
    /// all of them but `except`. Returns the ids revoked.
    pub async fn revoke_sessions(
        &self,
        user_id: i64,
        only: Option<String>,
        except: Option<String>,
    ) -> Result<Vec<String>, DbError> {
        super::on_postgres!(self, revoke_sessions(user_id, only, except));
        self.write(move |conn| revoke(conn, user_id, only.as_deref(), except.as_deref()))
            .await
    }

    /// Changes a user's password and revokes every live session of theirs
    /// but `keep`, in one transaction. Returns the ids revoked.
    pub async fn change_password(&self, user_id: i64, hash: String, keep: String) -> Result<Vec<String>, DbError> {
        super::on_postgres!(self, change_password(user_id, hash, keep));
        self.write(move |conn| {
            conn.prepare_cached("UPDATE users SET password_hash = ?1 WHERE id = ?2")?
                .execute((&hash, user_id))?;
            revoke(conn, user_id, None, Some(&keep))
        })
        .await
    }

    /// The live sessions opened or refreshed at or after `since` on any
    /// node of a cluster. A single SQLite node opened and refreshed each in
    /// its registry itself: none.
    #[cfg(feature = "postgres")]
    pub async fn issued_since(&self, since: Timestamp) -> Result<Vec<StoredSession>, DbError> {
        super::on_postgres!(self, issued_since(since));
        Ok(Vec::new())
    }

    /// The ids of the sessions revoked at or after `since` on any node of
    /// a cluster. A single SQLite node has only its own revocations, which
    /// its registry already holds: none.
    #[cfg(feature = "postgres")]
    pub async fn revoked_since(&self, since: Timestamp) -> Result<Vec<String>, DbError> {
        super::on_postgres!(self, revoked_since(since));
        Ok(Vec::new())
    }

    /// Records when sessions were last used: `(id, Unix milliseconds)`, all
    /// in one write.
    pub async fn touch_sessions(&self, used: Vec<(String, i64)>) -> Result<(), DbError> {
        super::on_postgres!(self, touch_sessions(used));
        self.write(move |conn| {
            let mut statement =
                conn.prepare_cached("UPDATE sessions SET last_used_at = max(last_used_at, ?2) WHERE id = ?1")?;
            for (id, at) in &used {
                statement.execute((id, at))?;
            }
            Ok(())
        })
        .await
    }
}

/// Any session not revoked yet is revoked, even one whose newest token has
/// just expired: a token is still accepted for a few seconds of leeway
/// after its `exp`, and a logout must end it too.
fn revoke(conn: &Connection, user_id: i64, only: Option<&str>, except: Option<&str>) -> Result<Vec<String>, DbError> {
    let now = Timestamp::now().0;
    let mut statement = conn.prepare_cached(
        "UPDATE sessions SET revoked_at = :now
         WHERE user_id = :user AND revoked_at IS NULL AND (:only IS NULL OR id = :only) AND (:except IS NULL OR id != :except)
         RETURNING id",
    )?;
    let ids = statement.query_map(
        rusqlite::named_params! { ":now": now, ":user": user_id, ":only": only, ":except": except },
        |row| row.get(0),
    )?;
    Ok(ids.collect::<Result<_, _>>()?)
}

fn info(row: &Row<'_>) -> rusqlite::Result<SessionInfo> {
    Ok(SessionInfo {
        id: row.get(0)?,
        created_at: Timestamp(row.get(1)?),
        last_used_at: Timestamp(row.get(2)?),
        expires_at: Timestamp(row.get(3)?),
        ip: row.get(4)?,
        user_agent: row.get(5)?,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::config::Synchronous;

    /// A session of `user_id` whose token lives `token_life_ms` from now
    /// (shared with the PostgreSQL tests).
    pub(in crate::db) fn session(id: &str, user_id: i64, token_life_ms: i64) -> NewSession {
        let now = Timestamp::now().0;
        NewSession {
            id: id.into(),
            user_id,
            created_at: Timestamp(now),
            expires_at: Timestamp(now + 3_600_000),
            token_expires_at: Timestamp(now + token_life_ms),
            ip: "192.0.2.1".into(),
            user_agent: "test".into(),
        }
    }

    #[tokio::test]
    async fn sessions_are_listed_while_live_and_revoked_by_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("chat.db"), Synchronous::Normal).unwrap();
        let ann = db.create_user("ann".into(), "x".into()).await.unwrap().unwrap().id;
        let bob = db.create_user("bob".into(), "x".into()).await.unwrap().unwrap().id;
        for (id, user, life) in [
            ("a1", ann, 60_000),
            ("a2", ann, 60_000),
            ("old", ann, -1),
            ("b1", bob, 60_000),
        ] {
            db.create_session(session(id, user, life)).await.unwrap();
        }
        let ids = |list: Vec<SessionInfo>| list.into_iter().map(|s| s.id).collect::<Vec<_>>();
        assert_eq!(ids(db.sessions_of(ann).await.unwrap()), ["a2", "a1"]);
        assert!(db
            .revoke_sessions(ann, Some("b1".into()), None)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(db.revoke_sessions(ann, Some("a1".into()), None).await.unwrap(), ["a1"]);
        let again = db.revoke_sessions(ann, Some("a1".into()), None).await.unwrap();
        assert!(again.is_empty(), "revoked once only");
        assert!(!db.refresh_session("a1".into(), Timestamp(i64::MAX)).await.unwrap());
        assert!(db.refresh_session("a2".into(), Timestamp::now()).await.unwrap());
        assert_eq!(ids(db.sessions_of(ann).await.unwrap()), ["a2"]);
        let revoked = db.change_password(bob, "y".into(), "b1".into()).await.unwrap();
        assert!(revoked.is_empty());
        let loaded = db.live_sessions().await.unwrap();
        let mut loaded: Vec<_> = loaded.into_iter().map(|s| s.id).collect();
        loaded.sort();
        assert_eq!(loaded, ["a2", "b1"]);
    }
}
