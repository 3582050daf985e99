//! Login sessions on PostgreSQL: the same methods as `db::sessions`, with
//! the same rule of liveness, plus what every node polls to learn of the
//! revocations made on the others.

use tokio_postgres::Row;

use super::PgDb;
use crate::clock::Timestamp;
use crate::db::sessions::{NewSession, SessionInfo, StoredSession};
use crate::db::DbError;

/// Dead sessions (revoked, or expired) are deleted once unused this long.
const KEEP_DEAD_MS: i64 = 30 * 24 * 3600 * 1000;

/// The condition on a row that makes a session live at `$1`.
const LIVE: &str = "revoked_at IS NULL AND expires_at > $1 AND token_expires_at > $1";

/// Revokes at `$1` the sessions of user `$2` not revoked yet: the one `$3`
/// names if it is not NULL, all but `$4` if that is not NULL. Any session
/// not revoked yet is revoked, even one whose newest token has just expired
/// (see `db::sessions`).
const REVOKE: &str = "UPDATE sessions SET revoked_at = $1
    WHERE user_id = $2 AND revoked_at IS NULL
      AND ($3::TEXT IS NULL OR id = $3) AND ($4::TEXT IS NULL OR id <> $4)
    RETURNING id";

impl PgDb {
    pub(crate) async fn create_session(&self, session: NewSession) -> Result<(), DbError> {
        self.client().await?.execute(
                "INSERT INTO sessions (id, user_id, created_at, last_used_at, issued_at, expires_at, token_expires_at, ip, user_agent)
                 VALUES ($1, $2, $3, $3, $3, $4, $5, $6, $7)",
                &[
                    &session.id,
                    &session.user_id,
                    &session.created_at.0,
                    &session.expires_at.0,
                    &session.token_expires_at.0,
                    &session.ip,
                    &session.user_agent,
                ],
            )
            .await?;
        Ok(())
    }

    /// Every live session, for the registry at start-up; first deletes the
    /// sessions dead and unused for a month.
    pub(crate) async fn live_sessions(&self) -> Result<Vec<StoredSession>, DbError> {
        let now = Timestamp::now().0;
        self.client()
            .await?
            .execute(
                &format!("DELETE FROM sessions WHERE NOT ({LIVE}) AND last_used_at < $1 - {KEEP_DEAD_MS}"),
                &[&now],
            )
            .await?;
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT id, user_id, expires_at, token_expires_at, last_used_at FROM sessions WHERE {LIVE}"),
                &[&now],
            )
            .await?;
        rows.iter().map(stored).collect()
    }

    /// The live sessions of a user, newest first.
    pub(crate) async fn sessions_of(&self, user_id: i64) -> Result<Vec<SessionInfo>, DbError> {
        let now = Timestamp::now().0;
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT id, created_at, last_used_at, expires_at, ip, user_agent FROM sessions
                     WHERE user_id = $2 AND {LIVE} ORDER BY created_at DESC, id DESC"
                ),
                &[&now, &user_id],
            )
            .await?;
        rows.iter().map(info).collect()
    }

    /// A newer token of a live session expires at `token_expires_at`;
    /// `false` if the session is not live any more.
    pub(crate) async fn refresh_session(&self, id: String, token_expires_at: Timestamp) -> Result<bool, DbError> {
        let now = Timestamp::now().0;
        let changed = self
            .client()
            .await?
            .execute(
                &format!(
                    "UPDATE sessions SET token_expires_at = GREATEST(token_expires_at, $2), last_used_at = $1,
                         issued_at = $1
                     WHERE id = $3 AND {LIVE}"
                ),
                &[&now, &token_expires_at.0, &id],
            )
            .await?;
        Ok(changed == 1)
    }

    /// Revokes sessions of `user_id`: the one `only` names (if given), or
    /// all of them but `except`. Returns the ids revoked.
    pub(crate) async fn revoke_sessions(
        &self,
        user_id: i64,
        only: Option<String>,
        except: Option<String>,
    ) -> Result<Vec<String>, DbError> {
        let rows = self
            .client()
            .await?
            .query(REVOKE, &[&Timestamp::now().0, &user_id, &only, &except])
            .await?;
        ids(&rows)
    }

    /// Changes a user's password and revokes every live session of theirs
    /// but `keep`, in one statement (so atomically). Returns the ids revoked.
    pub(crate) async fn change_password(
        &self,
        user_id: i64,
        hash: String,
        keep: String,
    ) -> Result<Vec<String>, DbError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!("WITH password AS (UPDATE users SET password_hash = $5 WHERE id = $2) {REVOKE}"),
                &[&Timestamp::now().0, &user_id, &None::<String>, &keep, &hash],
            )
            .await?;
        ids(&rows)
    }

    /// Records when sessions were last used: `(id, Unix milliseconds)`, all
    /// in one statement.
    pub(crate) async fn touch_sessions(&self, used: Vec<(String, i64)>) -> Result<(), DbError> {
        let (ids, at): (Vec<String>, Vec<i64>) = used.into_iter().unzip();
        self.client()
            .await?
            .execute(
                "UPDATE sessions s SET last_used_at = GREATEST(s.last_used_at, u.at)
                 FROM UNNEST($1::TEXT[], $2::BIGINT[]) AS u (id, at) WHERE s.id = u.id",
                &[&ids, &at],
            )
            .await?;
        Ok(())
    }

    /// The live sessions that were opened or refreshed at or after `since`
    /// (Unix milliseconds of the issuing node's clock), on any node: what
    /// each node polls to accept the tokens of logins made on the others,
    /// and to follow their refreshes.
    pub(crate) async fn issued_since(&self, since: Timestamp) -> Result<Vec<StoredSession>, DbError> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT id, user_id, expires_at, token_expires_at, last_used_at FROM sessions
                     WHERE issued_at >= $2 AND {LIVE}"
                ),
                &[&Timestamp::now().0, &since.0],
            )
            .await?;
        rows.iter().map(stored).collect()
    }

    /// The ids of the sessions revoked at or after `since` (Unix
    /// milliseconds of the revoking node's clock), on any node: what each
    /// node polls to drop them from its own registry. The poll should
    /// reach back further than the clocks of the nodes can differ.
    pub(crate) async fn revoked_since(&self, since: Timestamp) -> Result<Vec<String>, DbError> {
        let rows = self
            .client()
            .await?
            .query("SELECT id FROM sessions WHERE revoked_at >= $1", &[&since.0])
            .await?;
        ids(&rows)
    }
}

/// The first column of each row: the ids a statement returned.
fn ids(rows: &[Row]) -> Result<Vec<String>, DbError> {
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}

/// A session from the columns `id, user_id, expires_at, token_expires_at,
/// last_used_at`.
fn stored(row: &Row) -> Result<StoredSession, DbError> {
    Ok(StoredSession {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        expires_at: Timestamp(row.try_get(2)?),
        token_expires_at: Timestamp(row.try_get(3)?),
        last_used_at: Timestamp(row.try_get(4)?),
    })
}

fn info(row: &Row) -> Result<SessionInfo, DbError> {
    Ok(SessionInfo {
        id: row.try_get(0)?,
        created_at: Timestamp(row.try_get(1)?),
        last_used_at: Timestamp(row.try_get(2)?),
        expires_at: Timestamp(row.try_get(3)?),
        ip: row.try_get(4)?,
        user_agent: row.try_get(5)?,
    })
}
