//! The route table: every route of the API in one list that reads like the
//! contract, and the dispatch from a matched route to its handler.
//!
//! `HEAD` is answered by the `GET` route (the connection drops the body);
//! a path that exists with another method gets 405 with `Allow`.

use std::future::Future;

use crate::auth::{self, Claims, TokenSource};
use crate::error::ApiError;
use crate::http::body::Body;
use crate::http::request::{Method, Request};
use crate::http::response::Response;
use crate::server::App;
use crate::{accounts, files, health, history, pages, ws};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Index,
    Docs,
    OpenApi,
    Asset,
    Health,
    Register,
    Token,
    Logout,
    Me,
    FileUpload,
    FileList,
    FileDownload,
    FileDelete,
    Chat,
    HistoryLast20,
    History,
}

pub struct Route {
    pub method: Method,
    /// Literal segments, or `{name}` for one non-empty segment.
    pub pattern: &'static str,
    pub endpoint: Endpoint,
}

const fn route(method: Method, pattern: &'static str, endpoint: Endpoint) -> Route {
    Route {
        method,
        pattern,
        endpoint,
    }
}

pub const ROUTES: &[Route] = &[
    route(Method::Get, "/", Endpoint::Index),
    route(Method::Get, "/docs", Endpoint::Docs),
    route(Method::Get, "/openapi.json", Endpoint::OpenApi),
    route(Method::Get, "/assets/{name}", Endpoint::Asset),
    route(Method::Get, "/healthz", Endpoint::Health),
    route(Method::Post, "/register", Endpoint::Register),
    route(Method::Post, "/token", Endpoint::Token),
    route(Method::Post, "/logout", Endpoint::Logout),
    route(Method::Get, "/me", Endpoint::Me),
    route(Method::Post, "/files/upload", Endpoint::FileUpload),
    route(Method::Get, "/files", Endpoint::FileList),
    route(Method::Get, "/files/{id}", Endpoint::FileDownload),
    route(Method::Delete, "/files/{id}", Endpoint::FileDelete),
    route(Method::Get, "/ws/chat", Endpoint::Chat),
    route(Method::Get, "/history/last20", Endpoint::HistoryLast20),
    route(Method::Get, "/history", Endpoint::History),
];

/// One request on its way through a handler: the handler reads the body
/// through it and records who made the request, for the log line.
pub struct Exchange<'a, 'c> {
    pub app: &'a App,
    pub request: &'a Request,
    pub body: Body<'c>,
    pub user: Option<String>,
}

impl<'a, 'c> Exchange<'a, 'c> {
    pub fn new(app: &'a App, request: &'a Request, body: Body<'c>) -> Self {
        Exchange {
            app,
            request,
            body,
            user: None,
        }
    }

    /// Authenticates by `Authorization: Bearer` or the `access_token` cookie.
    pub fn authenticate(&mut self) -> Result<Claims, ApiError> {
        self.authenticate_from(false).map(|(claims, _)| claims)
    }

    /// As [`Exchange::authenticate`], also accepting `?token=` (first) when
    /// `allow_query`; tells where the token came from.
    pub fn authenticate_from(&mut self, allow_query: bool) -> Result<(Claims, TokenSource), ApiError> {
        let (token, source) =
            auth::find_token(self.request, allow_query).ok_or_else(|| ApiError::unauthorized("not authenticated"))?;
        let claims = self.app.auth.verify(&token)?;
        self.user = Some(claims.sub.clone());
        Ok((claims, source))
    }
}

/// What answers the requests of a connection. The server answers with
/// [`Routes`]; the trait lets a test build put a route of its own in front
/// of the table (the WebSocket conformance suite's echo endpoint) while
/// everything else (accept loop, connection bound, keep-alive, upgrade)
/// stays the server's own.
pub trait Service: Send + Sync + 'static {
    fn handle<'e>(
        &'e self,
        ex: &'e mut Exchange<'_, '_>,
    ) -> impl Future<Output = Result<Response, ApiError>> + Send + 'e;
}

/// The route table above, dispatched by [`handle`].
pub struct Routes;

impl Service for Routes {
    fn handle<'e>(
        &'e self,
        ex: &'e mut Exchange<'_, '_>,
    ) -> impl Future<Output = Result<Response, ApiError>> + Send + 'e {
        handle(ex)
    }
}

/// Matches a path against the table: the endpoint and its path parameter.
pub fn resolve(method: Method, path: &str) -> Result<(Endpoint, Option<&str>), ApiError> {
    let method = if method == Method::Head { Method::Get } else { method };
    let mut allowed: Vec<&str> = Vec::new();
    for route in ROUTES {
        let Some(param) = matches(route.pattern, path) else {
            continue;
        };
        if route.method == method {
            return Ok((route.endpoint, param));
        }
        allowed.push(route.method.as_str());
        if route.method == Method::Get {
            allowed.push("HEAD");
        }
    }
    if allowed.is_empty() {
        Err(ApiError::not_found("not found"))
    } else {
        Err(ApiError::method_not_allowed(allowed.join(", ")))
    }
}

/// `Some(param)` when `path` fits `pattern` (`param` is the `{...}` segment).
fn matches<'p>(pattern: &str, path: &'p str) -> Option<Option<&'p str>> {
    let mut param = None;
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(param),
            (Some(p), Some(s)) if p.starts_with('{') && !s.is_empty() => param = Some(s),
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

pub async fn handle(ex: &mut Exchange<'_, '_>) -> Result<Response, ApiError> {
    let request = ex.request;
    let (endpoint, param) = resolve(request.method, request.path())?;
    let param = param.unwrap_or_default();
    match endpoint {
        Endpoint::Index => Ok(pages::index().into_response()),
        Endpoint::Docs => Ok(pages::docs().into_response()),
        Endpoint::OpenApi => Ok(pages::openapi().into_response()),
        Endpoint::Asset => pages::asset(param)
            .map(pages::Asset::into_response)
            .ok_or_else(|| ApiError::not_found("no such asset")),
        Endpoint::Health => health::check(ex).await,
        Endpoint::Register => accounts::register(ex).await,
        Endpoint::Token => accounts::token(ex).await,
        Endpoint::Logout => accounts::logout(ex),
        Endpoint::Me => accounts::me(ex).await,
        Endpoint::FileUpload => files::upload::upload(ex).await,
        Endpoint::FileList => files::catalog::list(ex).await,
        Endpoint::FileDownload => files::download::download(ex, param).await,
        Endpoint::FileDelete => files::catalog::delete(ex, param).await,
        Endpoint::Chat => ws::upgrade::chat(ex).await,
        Endpoint::HistoryLast20 => history::last20(ex).await,
        Endpoint::History => history::page(ex).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_resolves_to_itself() {
        for route in ROUTES {
            let path = route.pattern.replace("{id}", "abc").replace("{name}", "x");
            assert_eq!(
                resolve(route.method, &path).unwrap().0,
                route.endpoint,
                "{}",
                route.pattern
            );
        }
    }

    #[test]
    fn unknown_paths_are_404_and_wrong_methods_405() {
        assert_eq!(resolve(Method::Get, "/nope").unwrap_err().status, 404);
        assert_eq!(resolve(Method::Get, "/register/").unwrap_err().status, 404);
        let err = resolve(Method::Delete, "/me").unwrap_err();
        assert_eq!(err.status, 405);
        assert_eq!(resolve(Method::Head, "/me").unwrap().0, Endpoint::Me);
    }
}
