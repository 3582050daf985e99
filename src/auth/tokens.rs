//! Tokens: HS256 JWTs with exactly the claims `sub` (username), `uid`,
//! `iat` and `exp`. The validator accepts HS256 and nothing else, so a token
//! with `alg: none` or another algorithm is refused before its signature is
//! looked at. Where a request carries its token is HTTP's business (the
//! request context); this file only issues and checks them.

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock;
use crate::sync::lock;

/// Clock skew tolerated on `exp` (the contract allows at most 5 s).
const LEEWAY_SECS: u64 = 5;
/// Tokens [`Tokens::verify`] remembers at most; when full it starts afresh.
const VERIFIED_CAPACITY: usize = 4096;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub uid: i64,
    pub iat: u64,
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    Expired,
    /// Malformed, signed with another key or another algorithm.
    Invalid,
}

pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Seconds a token is valid for.
    pub ttl: u64,
    /// Tokens whose signature has been checked, with their claims: every
    /// request carries one and most carry the same few, and checking the
    /// HMAC and decoding the JSON again was the largest part of answering
    /// a cached `/history/last20`. Keyed by the whole token, so only the
    /// exact bytes that were verified are ever found; the expiry is still
    /// checked on every use. The secret never changes while the server
    /// runs, so an entry can only go stale by expiring.
    verified: Mutex<HashMap<String, Claims>>,
}

impl Tokens {
    pub fn new(secret: &[u8], ttl: u64) -> Tokens {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
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

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if let Some(remembered) = self.remembered(token) {
            return remembered;
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?;
        let mut verified = lock(&self.verified);
        if verified.len() >= VERIFIED_CAPACITY {
            verified.clear();
        }
        verified.insert(token.to_string(), claims.clone());
        Ok(claims)
    }

    /// The answer for a token verified before, if it was; an expired one is
    /// forgotten. Expired by the validator's own rule: once `exp` is more
    /// than the leeway in the past.
    fn remembered(&self, token: &str) -> Option<Result<Claims, TokenError>> {
        let mut verified = lock(&self.verified);
        let claims = verified.get(token)?;
        if claims.exp.saturating_add(LEEWAY_SECS) >= clock::now_secs() {
            return Some(Ok(claims.clone()));
        }
        verified.remove(token);
        Some(Err(TokenError::Expired))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiError;

    /// The tokens of these tests, checked as a request would be: the
    /// statuses and details are the ones clients see.
    fn checked(tokens: &Tokens, token: &str) -> Result<Claims, ApiError> {
        tokens.verify(token).map_err(ApiError::from)
    }

    #[test]
    fn tokens_round_trip_and_foreign_ones_fail() {
        let auth = Tokens::new(b"0123456789abcdef0123456789abcdef", 60);
        let token = auth.issue(7, "alice");
        let claims = checked(&auth, &token).unwrap();
        assert_eq!((claims.uid, claims.sub.as_str()), (7, "alice"));
        let other = Tokens::new(b"another secret that is long enough", 60);
        assert_eq!(checked(&other, &token).unwrap_err().status, 401);
        assert_eq!(checked(&auth, "not.a.token").unwrap_err().status, 401);
    }

    #[test]
    fn expiry_is_enforced_with_at_most_5_seconds_of_leeway() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let auth = Tokens::new(secret, 60);
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
        assert!(checked(&auth, &token(now - 2)).is_ok(), "within the leeway");
        let expired = checked(&auth, &token(now - LEEWAY_SECS - 1)).unwrap_err();
        assert_eq!((expired.status, expired.detail.as_ref()), (401, "token expired"));
    }

    #[test]
    fn a_remembered_token_still_expires_and_a_tampered_one_is_checked_afresh() {
        let auth = Tokens::new(b"0123456789abcdef0123456789abcdef", 60);
        let token = auth.issue(7, "alice");
        for _ in 0..2 {
            assert_eq!(checked(&auth, &token).unwrap().sub, "alice");
        }
        let mut tampered = token.clone();
        tampered.push('x');
        assert_eq!(checked(&auth, &tampered).unwrap_err().detail, "invalid token");
        // The token's lifetime runs out while it is remembered.
        auth.verified.lock().unwrap().get_mut(&token).unwrap().exp = clock::now_secs() - LEEWAY_SECS - 1;
        let expired = checked(&auth, &token).unwrap_err();
        assert_eq!((expired.status, expired.detail.as_ref()), (401, "token expired"));
    }

    #[test]
    fn the_remembered_tokens_stay_bounded() {
        let auth = Tokens::new(b"0123456789abcdef0123456789abcdef", 60);
        for uid in 0..=VERIFIED_CAPACITY as i64 {
            checked(&auth, &auth.issue(uid, "bob")).unwrap();
        }
        assert!(auth.verified.lock().unwrap().len() <= VERIFIED_CAPACITY);
    }
}
