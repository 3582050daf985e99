//! Tokens and passwords.
//!
//! Tokens are HS256 JWTs with exactly the claims `sub` (username), `uid`,
//! `iat` and `exp`; the validator accepts HS256 and nothing else, so a token
//! with `alg: none` or another algorithm is refused before its signature is
//! looked at. Passwords are hashed with bcrypt on a pool of low-priority
//! threads, one fewer than the cores: a storm of logins can use idle CPU but
//! never the event loop's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::error::ApiError;
use crate::http::request::Request;
use crate::pool::{self, Pool, PoolError};

/// Clock skew tolerated on `exp` (the contract allows at most 5 s).
const LEEWAY_SECS: u64 = 5;
/// Tokens [`Auth::verify`] remembers at most; when full it starts afresh.
const VERIFIED_CAPACITY: usize = 4096;
/// The one detail for every refused credential, so a response never tells
/// which part was wrong.
pub const BAD_LOGIN: &str = "incorrect username or password";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub uid: i64,
    pub iat: u64,
    pub exp: u64,
}

/// Where a request's token came from; the WebSocket origin rule depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenSource {
    Query,
    Bearer,
    Cookie,
}

pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub ttl: u64,
    cost: u32,
    hasher: Pool<()>,
    /// Tokens whose signature has been checked, with their claims: every
    /// request carries one and most carry the same few, and checking the
    /// HMAC and decoding the JSON again was the largest part of answering
    /// a cached `/history/last20`. Keyed by the whole token, so only the
    /// exact bytes that were verified are ever found; the expiry is still
    /// checked on every use. The secret never changes while the server
    /// runs, so an entry can only go stale by expiring.
    verified: Mutex<HashMap<String, Claims>>,
    /// A real hash at the configured cost, checked against when the user does
    /// not exist so both failures cost one bcrypt verify.
    dummy_hash: Arc<OnceLock<String>>,
}

impl Auth {
    pub fn new(secret: &[u8], ttl: u64, cost: u32) -> Auth {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        // One core is always left to the rest of the server: at nice 19 the
        // hashers yield to it, but a hasher still holds its core until the
        // scheduler preempts it, which costs a woken event loop milliseconds.
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let threads = cores.saturating_sub(1).max(1);
        let options = pool::Options {
            name: "bcrypt",
            threads,
            queue: 1024,
            nice: 19,
        };
        Auth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            cost,
            hasher: Pool::start(options, || Ok::<_, ()>(())).expect("hasher threads start"),
            dummy_hash: Arc::new(OnceLock::new()),
            verified: Mutex::default(),
        }
    }

    pub fn issue(&self, uid: i64, username: &str) -> String {
        let iat = clock::now_secs();
        let claims = Claims {
            sub: username.to_string(),
            uid,
            iat,
            exp: iat + self.ttl,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        if let Some(remembered) = self.remembered(token) {
            return remembered;
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                let detail = match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token expired",
                    _ => "invalid token",
                };
                ApiError::unauthorized(detail)
            })?;
        let mut verified = self.verified();
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(token.to_string(), claims.clone());
        Ok(claims)
    }

    /// The answer for a token verified before, if it was; an expired one is
    /// forgotten. Expired by the validator's own rule: once `exp` is more
    /// than the leeway in the past.
    fn remembered(&self, token: &str) -> Option<Result<Claims, ApiError>> {
        let mut verified = self.verified();
        let claims = verified.get(token)?;
        if claims.exp.saturating_add(LEEWAY_SECS) >= clock::now_secs() {
            return Some(Ok(claims.clone()));
        }
        verified.remove(token);
        Some(Err(ApiError::unauthorized("token expired")))
    }

    /// Every update of the map is one call that cannot panic half-way, so a
    /// poisoned lock still guards a sound map.
    fn verified(&self) -> MutexGuard<'_, HashMap<String, Claims>> {
        self.verified.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub async fn hash_password(&self, password: String) -> Result<String, ApiError> {
        let cost = self.cost;
        self.hasher
            .run(move |_| bcrypt::hash(password, cost))
            .await
            .map_err(busy)?
            .map_err(|_| ApiError::internal())
    }

    /// Checks a password against a stored hash, or against a dummy hash when
    /// there is no such user, so timing does not reveal which names exist.
    pub async fn verify_password(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        let cost = self.cost;
        let dummy = self.dummy_hash.clone();
        self.hasher
            .run(move |_| match hash {
                Some(hash) => bcrypt::verify(password, &hash).unwrap_or(false),
                None => {
                    let dummy = dummy.get_or_init(|| bcrypt::hash("not a password", cost).expect("bcrypt hash"));
                    let _ = bcrypt::verify(password, dummy);
                    false
                }
            })
            .await
            .map_err(busy)
    }
}

fn busy(err: PoolError) -> ApiError {
    match err {
        PoolError::Busy => ApiError::new(503, "too many logins in progress, try again shortly"),
        PoolError::Gone => ApiError::internal(),
    }
}

/// Finds the request's token: `?token=` first (only where `allow_query`),
/// then `Authorization: Bearer`, then the `access_token` cookie.
pub fn find_token(request: &Request, allow_query: bool) -> Option<(String, TokenSource)> {
    if allow_query {
        let from_query = request.query().split('&').find_map(|pair| pair.strip_prefix("token="));
        if let Some(token) = from_query {
            let token = percent_encoding::percent_decode_str(token).decode_utf8_lossy();
            return Some((token.into_owned(), TokenSource::Query));
        }
    }
    if let Some(value) = request.header("authorization") {
        if let Some((scheme, token)) = value.trim().split_once(' ') {
            if scheme.eq_ignore_ascii_case("bearer") {
                return Some((token.trim().to_string(), TokenSource::Bearer));
            }
        }
    }
    request
        .headers
        .iter()
        .filter(|(name, _)| name == "cookie")
        .flat_map(|(_, value)| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix("access_token="))
        .filter(|token| !token.is_empty())
        .map(|token| (token.to_string(), TokenSource::Cookie))
}

/// `Set-Cookie` for a fresh token, or (with `None`) for logging out.
pub fn cookie(token: Option<&str>, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "access_token={}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}",
        token.unwrap_or(""),
        if token.is_some() { max_age } else { 0 }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(head: &str) -> Request {
        crate::http::request::parse(head.as_bytes()).unwrap()
    }

    #[test]
    fn query_token_wins_only_where_allowed() {
        let req = request(
            "GET /ws/chat?token=q%2Eq HTTP/1.1\r\nAuthorization: Bearer b\r\nCookie: x=1; access_token=c\r\n\r\n",
        );
        assert_eq!(find_token(&req, true), Some(("q.q".into(), TokenSource::Query)));
        assert_eq!(find_token(&req, false), Some(("b".into(), TokenSource::Bearer)));
        let req = request("GET /me HTTP/1.1\r\nCookie: a=b; access_token=c\r\n\r\n");
        assert_eq!(find_token(&req, true), Some(("c".into(), TokenSource::Cookie)));
        assert_eq!(
            find_token(&request("GET /me HTTP/1.1\r\nCookie: access_token=\r\n\r\n"), true),
            None
        );
    }

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

    #[test]
    fn tokens_round_trip_and_foreign_ones_fail() {
        let auth = Auth::new(b"0123456789abcdef0123456789abcdef", 60, 4);
        let token = auth.issue(7, "alice");
        let claims = auth.verify(&token).unwrap();
        assert_eq!((claims.uid, claims.sub.as_str()), (7, "alice"));
        let other = Auth::new(b"another secret that is long enough", 60, 4);
        assert_eq!(other.verify(&token).unwrap_err().status, 401);
        assert_eq!(auth.verify("not.a.token").unwrap_err().status, 401);
    }

    #[test]
    fn expiry_is_enforced_with_at_most_5_seconds_of_leeway() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let auth = Auth::new(secret, 60, 4);
        let now = clock::now_secs();
        let token = |exp: u64| {
            let claims = Claims {
                sub: "alice".into(),
                uid: 1,
                iat: now - 100,
                exp,
            };
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(secret),
            )
            .unwrap()
        };
        assert!(auth.verify(&token(now - 2)).is_ok(), "within the leeway");
        let expired = auth.verify(&token(now - LEEWAY_SECS - 1)).unwrap_err();
        assert_eq!((expired.status, expired.detail.as_ref()), (401, "token expired"));
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_tampered_one_is_checked_afresh() {
        let auth = Auth::new(b"0123456789abcdef0123456789abcdef", 60, 4);
        let token = auth.issue(7, "alice");
        for _ in 0..2 {
            assert_eq!(auth.verify(&token).unwrap().sub, "alice");
        }
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(auth.verify(&tampered).unwrap_err().detail, "invalid token");
        // The token's lifetime runs out while it is remembered.
        auth.verified.lock().unwrap().get_mut(&token).unwrap().exp = clock::now_secs() - LEEWAY_SECS - 1;
        let expired = auth.verify(&token).unwrap_err();
        assert_eq!((expired.status, expired.detail.as_ref()), (401, "token expired"));
    }

    #[test]
    fn the_remembered_tokens_stay_bounded() {
        let auth = Auth::new(b"0123456789abcdef0123456789abcdef", 60, 4);
        for uid in 0..=VERIFIED_CAPACITY as i64 {
            auth.verify(&auth.issue(uid, "bob")).unwrap();
        }
        assert!(auth.verified.lock().unwrap().len() <= VERIFIED_CAPACITY);
    }
}
