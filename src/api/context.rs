//! The request as a route handler sees it: the parsed head, the body to
//! pull, and who is asking. Authentication lives here so that every route
//! finds the token the same way and reports the same errors.

use std::sync::Arc;

use serde::de::DeserializeOwned;

use super::origin::{self, Origins, OwnScheme};
use super::ApiError;
use crate::auth::sessions::LiveSession;
use crate::auth::tokens::{Claims, Tokens};
use crate::http::body::Body;
use crate::http::forwarded::Client;
use crate::http::request::{Method, Request};
use crate::http::service::Exchange;

/// JSON and form bodies are refused over this size (413).
pub(crate) const SMALL_BODY_LIMIT: u64 = 64 * 1024;

/// Where a request's token came from; the WebSocket origin rule depends on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenSource {
    Query,
    Bearer,
    Cookie,
}

/// An authenticated caller: the token's claims, the session it belongs to
/// (which a chat socket follows), and where the token was found.
pub(crate) struct Caller {
    pub claims: Claims,
    pub session: Arc<LiveSession>,
    pub source: TokenSource,
}

pub(crate) struct Ctx<'r, 'c> {
    pub request: &'r Request,
    pub body: &'r mut Body<'c>,
    /// Who sent the request: the client's address (behind a trusted proxy,
    /// the one it forwarded) and whether it came over TLS.
    pub client: Client,
    /// The exchange's user, for the log line.
    user: &'r mut Option<String>,
    tokens: &'r Tokens,
    origins: &'r Origins,
}

impl<'r, 'c> Ctx<'r, 'c> {
    pub(crate) fn new(ex: &'r mut Exchange<'_, 'c>, tokens: &'r Tokens, origins: &'r Origins) -> Ctx<'r, 'c> {
        Ctx {
            request: ex.request,
            body: &mut ex.body,
            client: ex.client,
            user: &mut ex.user,
            tokens,
            origins,
        }
    }

    /// Authenticates by `Authorization: Bearer` or the `access_token` cookie.
    pub(crate) fn authenticate(&mut self) -> Result<Claims, ApiError> {
        self.authenticate_from(false).map(|caller| caller.claims)
    }

    /// As [`Ctx::authenticate`], also accepting `?token=` (first) when
    /// `allow_query`; tells where the token came from and its session.
    ///
    /// A request that changes something (`POST`, `PUT`, `PATCH`, `DELETE`)
    /// and is authenticated by the cookie must come from a page of this
    /// server ([`Ctx::refuse_cross_site`]): the browser attaches the cookie
    /// to requests from any page. A bearer token cannot have been attached
    /// by the browser on its own, so it needs no such check.
    pub(crate) fn authenticate_from(&mut self, allow_query: bool) -> Result<Caller, ApiError> {
        let (token, source) =
            find_token(self.request, allow_query).ok_or_else(|| ApiError::unauthorized("not authenticated"))?;
        let unsafe_method = matches!(
            self.request.method,
            Method::Post | Method::Put | Method::Patch | Method::Delete
        );
        if source == TokenSource::Cookie && unsafe_method {
            self.refuse_cross_site()?;
        }
        let (claims, session) = self.tokens.verify(&token)?;
        self.set_user(&claims.sub);
        Ok(Caller {
            claims,
            session,
            source,
        })
    }

    /// Whether the request came over TLS behind a trusted proxy, or the
    /// server is configured as reached over TLS (`--secure-cookies`):
    /// cookies then get `Secure`.
    pub(crate) fn over_tls(&self) -> bool {
        self.origins.secure_cookies || self.client.tls
    }

    /// The scheme of the server's own origin for this request: `https`
    /// when a trusted proxy said it came over TLS, either scheme when only
    /// `--secure-cookies` says TLS is in front.
    fn own_scheme(&self) -> OwnScheme {
        match (self.client.tls, self.origins.secure_cookies) {
            (true, _) => OwnScheme::Https,
            (false, true) => OwnScheme::Either,
            (false, false) => OwnScheme::Http,
        }
    }

    /// Whether the request's `Origin` is the server's own or allowed (a
    /// request without one is not from a browser page and passes).
    pub(crate) fn origin_allowed(&self) -> bool {
        origin::is_allowed(self.request, &self.origins.allowed, self.own_scheme())
    }

    /// Refuses (403) a request a browser sent from a page of another origin
    /// (see [`origin::is_cross_site`]).
    pub(crate) fn refuse_cross_site(&self) -> Result<(), ApiError> {
        if origin::is_cross_site(self.request, &self.origins.allowed, self.own_scheme()) {
            return Err(ApiError::forbidden("cross-site request refused"));
        }
        Ok(())
    }

    /// Names the user in the request's log line.
    pub(crate) fn set_user(&mut self, username: &str) {
        *self.user = Some(username.to_string());
    }

    /// Reads a body of at most [`SMALL_BODY_LIMIT`] bytes into memory.
    pub(crate) async fn small_body(&mut self) -> Result<Vec<u8>, ApiError> {
        Ok(self.body.read_to_end(SMALL_BODY_LIMIT).await?)
    }

    /// Reads a JSON object body: one that is not JSON, misses a field or has
    /// a wrong type is a 422 whose detail says what was wrong. serde would
    /// also fill a struct from an array of its field values in order, which
    /// no client of a `{"field": ...}` API means to send, so anything but an
    /// object is refused.
    pub(crate) async fn json_object<T: DeserializeOwned>(&mut self) -> Result<T, ApiError> {
        let body = self.small_body().await?;
        if !body.trim_ascii_start().starts_with(b"{") {
            return Err(ApiError::unprocessable("the body must be a JSON object"));
        }
        serde_json::from_slice(&body).map_err(|e| ApiError::unprocessable(format!("invalid JSON body: {e}")))
    }
}

/// Finds the request's token: `?token=` first (only where `allow_query`),
/// then `Authorization: Bearer`, then the `access_token` cookie.
fn find_token(request: &Request, allow_query: bool) -> Option<(String, TokenSource)> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn request(head: &str) -> Request {
        crate::http::request::parse(head.as_bytes()).unwrap()
    }

    #[test]
    fn query_token_wins_only_where_allowed() {
        let req = request(
            "GET /ws/chat?token=q%2Eq HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer b\r\nCookie: x=1; access_token=c\r\n\r\n",
        );
        assert_eq!(find_token(&req, true), Some(("q.q".into(), TokenSource::Query)));
        assert_eq!(find_token(&req, false), Some(("b".into(), TokenSource::Bearer)));
        let req = request("GET /me HTTP/1.1\r\nHost: x\r\nCookie: a=b; access_token=c\r\n\r\n");
        assert_eq!(find_token(&req, true), Some(("c".into(), TokenSource::Cookie)));
        assert_eq!(
            find_token(
                &request("GET /me HTTP/1.1\r\nHost: x\r\nCookie: access_token=\r\n\r\n"),
                true
            ),
            None
        );
    }
}
