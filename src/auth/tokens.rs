//! Tokens: HS256 JWTs with exactly the claims `sub` (username), `uid`,
//! `sid` (session), `iat` and `exp`. The validator accepts HS256 and nothing
//! else, so a token with `alg: none` or another algorithm is refused before
//! its signature is looked at. A token is valid only while its session is
//! (see [`super::sessions`]): a token without `sid`, as v1 issued them, is
//! refused. Where a request carries its token is HTTP's business (the
//! request context); this file only issues and checks them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::sessions::{LiveSession, Sessions};
use crate::clock;
use crate::sync::lock;

/// Clock skew tolerated on `exp` (the contract allows at most 5 s).
pub(crate) const LEEWAY_SECS: u64 = 5;
/// Tokens [`Tokens::verify`] remembers at most; when full it starts afresh.
const VERIFIED_CAPACITY: usize = 4096;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub uid: i64,
    pub sid: String,
    pub iat: u64,
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    /// Malformed, signed with another key or another algorithm, or
    /// without a session.
    Invalid,
    /// Its session was revoked or has reached its absolute limit.
    SessionEnded,
}

/// A token just issued.
pub struct Issued {
    pub token: String,
    /// Its `exp`, Unix seconds.
    pub exp: u64,
    /// Seconds from now until `exp`.
    pub expires_in: u64,
}

pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Seconds a token is valid for.
    pub ttl: u64,
    /// The live sessions, which every check consults.
    pub sessions: Arc<Sessions>,
    /// Tokens whose signature has been checked, with their claims: every
    /// request carries one and most carry the same few, and checking the
    /// HMAC and decoding the JSON again was the largest part of answering
    /// a cached `/history/last20`. Keyed by the whole token, so only the
    /// exact bytes that were verified are ever found; the expiry is still
    /// checked on every use. The secret never changes while the server
    /// runs, so an entry can only go stale by expiring, or by its session
    /// ending, which the entry's session handle shows at once: revocation
    /// costs a request no database read.
    verified: Mutex<HashMap<String, (Claims, Arc<LiveSession>)>>,
}

impl Tokens {
    pub fn new(secret: &[u8], ttl: u64, sessions: Arc<Sessions>) -> Tokens {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            sessions,
            verified: Mutex::default(),
        }
    }

    /// A token for `session`, valid for the configured lifetime but never
    /// past the session's absolute limit; the session's sockets now last
    /// until it expires.
    pub fn issue(&self, username: &str, session: &LiveSession) -> Result<Issued, TokenError> {
        let iat = clock::now_secs();
        let exp = self.expiry(iat, session.expires_at);
        if exp <= iat || !session.is_live(clock::now_millis()) {
            return Err(TokenError::SessionEnded);
        }
        let claims = Claims {
            sub: username.to_string(),
            uid: session.uid,
            sid: session.id.clone(),
            iat,
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail");
        session.extend(exp);
        Ok(Issued {
            token,
            exp,
            expires_in: exp - iat,
        })
    }

    /// The `exp` of a token issued at `iat` (Unix seconds) for a session
    /// whose absolute limit is `expires_at` (Unix milliseconds).
    pub fn expiry(&self, iat: u64, expires_at: i64) -> u64 {
        let limit = u64::try_from(expires_at / 1000).unwrap_or(0);
        iat.saturating_add(self.ttl).min(limit)
    }

    /// Checks a token, and that its session is live; returns its claims and
    /// its session, whose use is recorded.
    pub fn verify(&self, token: &str) -> Result<(Claims, Arc<LiveSession>), TokenError> {
        let now = clock::now_millis();
        let (claims, session) = match self.remembered(token, now) {
            Some(remembered) => remembered?,
            None => {
                let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
                    .map(|data| data.claims)
                    .map_err(|e| match e.kind() {
                        jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                        _ => TokenError::Invalid,
                    })?;
                let session = self.sessions.get(&claims.sid).ok_or(TokenError::SessionEnded)?;
                if session.uid != claims.uid {
                    return Err(TokenError::Invalid);
                }
                let mut verified = lock(&self.verified);
                if verified.len() >= VERIFIED_CAPACITY {
                    verified.clear();
                }
                verified.insert(token.to_string(), (claims.clone(), session.clone()));
                (claims, session)
            }
        };
        if !session.is_live(now) {
            return Err(TokenError::SessionEnded);
        }
        session.touch(now);
        Ok((claims, session))
    }

    /// The answer for a token verified before, if it was; an expired one is
    /// forgotten. Expired by the validator's own rule: once `exp` is more
    /// than the leeway in the past.
    #[allow(clippy::type_complexity)]
    fn remembered(&self, token: &str, now_ms: i64) -> Option<Result<(Claims, Arc<LiveSession>), TokenError>> {
        let mut verified = lock(&self.verified);
        let (claims, session) = verified.get(token)?;
        if claims.exp.saturating_add(LEEWAY_SECS) >= (now_ms / 1000) as u64 {
            return Some(Ok((claims.clone(), session.clone())));
        }
        verified.remove(token);
        Some(Err(TokenError::Expired))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiError;
    use crate::auth::sessions::Opened;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// Tokens with a live session `s1` of user 7, ending in an hour.
    fn tokens(ttl: u64) -> (Tokens, Arc<LiveSession>) {
        let sessions = Arc::new(Sessions::default());
        let session = sessions.open(Opened {
            id: "s1".into(),
            uid: 7,
            expires_at: clock::now_millis() + 3_600_000,
            token_exp: 0,
            last_used: 0,
        });
        (Tokens::new(SECRET, ttl, sessions), session)
    }

    /// The tokens of these tests, checked as a request would be: the
    /// statuses and details are the ones clients see.
    fn checked(tokens: &Tokens, token: &str) -> Result<Claims, ApiError> {
        tokens.verify(token).map(|(claims, _)| claims).map_err(ApiError::from)
    }

    fn signed(claims: &serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    #[test]
    fn tokens_round_trip_and_foreign_ones_fail() {
        let (auth, session) = tokens(60);
        let issued = auth.issue("alice", &session).unwrap();
        let token = issued.token;
        assert_eq!(issued.expires_in, 60);
        let claims = checked(&auth, &token).unwrap();
        assert_eq!(
            (claims.uid, claims.sub.as_str(), claims.sid.as_str()),
            (7, "alice", "s1")
        );
        let other = Tokens::new(b"another secret that is long enough", 60, auth.sessions.clone());
        assert_eq!(checked(&other, &token).unwrap_err().status, 401);
        assert_eq!(checked(&auth, "not.a.token").unwrap_err().status, 401);
    }

    #[test]
    fn tokens_without_a_live_session_are_refused() {
        let (auth, session) = tokens(60);
        let now = clock::now_secs();
        let v1 = signed(&serde_json::json!({ "sub": "alice", "uid": 7, "iat": now, "exp": now + 60 }));
        assert_eq!(checked(&auth, &v1).unwrap_err().detail, "invalid token");
        let unknown =
            signed(&serde_json::json!({ "sub": "alice", "uid": 7, "sid": "nope", "iat": now, "exp": now + 60 }));
        assert_eq!(checked(&auth, &unknown).unwrap_err().status, 401);
        let stolen =
            signed(&serde_json::json!({ "sub": "mallory", "uid": 8, "sid": "s1", "iat": now, "exp": now + 60 }));
        assert_eq!(checked(&auth, &stolen).unwrap_err().detail, "invalid token");
        // Revoked while its token is remembered: refused at once.
        let token = auth.issue("alice", &session).unwrap().token;
        checked(&auth, &token).unwrap();
        auth.sessions.revoke("s1");
        let refused = checked(&auth, &token).unwrap_err();
        assert_eq!(
            (refused.status, refused.detail.as_ref()),
            (401, "the session has ended; log in again")
        );
        assert!(
            auth.issue("alice", &session).is_err(),
            "no new token for a revoked session"
        );
    }

    #[test]
    fn no_token_outlives_its_session() {
        let (auth, _) = tokens(3600);
        let session = auth.sessions.open(Opened {
            id: "short".into(),
            uid: 7,
            expires_at: (clock::now_secs() as i64 + 30) * 1000,
            token_exp: 0,
            last_used: 0,
        });
        let issued = auth.issue("alice", &session).unwrap();
        let (token, expires_in) = (issued.token, issued.expires_in);
        assert!((29..=30).contains(&expires_in), "{expires_in}");
        assert!(checked(&auth, &token).unwrap().exp <= clock::now_secs() + 30);
    }

    #[test]
    fn expiry_is_enforced_with_at_most_5_seconds_of_leeway() {
        let (auth, _) = tokens(60);
        let now = clock::now_secs();
        let token = |exp: u64| {
            signed(&serde_json::json!({ "sub": "alice", "uid": 7, "sid": "s1", "iat": now - 100, "exp": exp }))
        };
        assert!(checked(&auth, &token(now - 2)).is_ok(), "within the leeway");
        let expired = checked(&auth, &token(now - LEEWAY_SECS - 1)).unwrap_err();
        assert_eq!((expired.status, expired.detail.as_ref()), (401, "token expired"));
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_tampered_one_is_checked_afresh() {
        let (auth, session) = tokens(60);
        let token = auth.issue("alice", &session).unwrap().token;
        for _ in 0..2 {
            assert_eq!(checked(&auth, &token).unwrap().sub, "alice");
        }
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(checked(&auth, &tampered).unwrap_err().detail, "invalid token");
        // The token's lifetime runs out while it is remembered.
        auth.verified.lock().unwrap().get_mut(&token).unwrap().0.exp = clock::now_secs() - LEEWAY_SECS - 1;
        let expired = checked(&auth, &token).unwrap_err();
        assert_eq!((expired.status, expired.detail.as_ref()), (401, "token expired"));
    }

    #[test]
    fn the_remembered_tokens_stay_bounded() {
        let (auth, session) = tokens(60);
        for i in 0..=VERIFIED_CAPACITY {
            let token = auth.issue(&format!("bob{i}"), &session).unwrap().token;
            checked(&auth, &token).unwrap();
        }
        assert!(auth.verified.lock().unwrap().len() <= VERIFIED_CAPACITY);
    }
}
