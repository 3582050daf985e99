//! The route table: every route of the API in one list that reads like the
//! contract, and the dispatch from a matched route to its handler with the
//! part of the application it needs. [`Routes`] owns the application and is
//! the [`Service`] the transport calls: this is the one place where the
//! transport, the kit and the features meet.
//!
//! `HEAD` is answered by the `GET` route (the connection drops the body);
//! a path that exists with another method gets 405 with `Allow`.

use std::future::Future;

use crate::api::{ApiError, Ctx};
use crate::app::App;
use crate::chat::{history, upgrade};
use crate::files::{catalog, download, upload};
use crate::http::request::Method;
use crate::http::response::Response;
use crate::http::service::{Exchange, Refusal, Service};
use crate::metrics::{self, METRICS};
use crate::{accounts, health, pages};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
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

pub(crate) struct Route {
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

pub(crate) const ROUTES: &[Route] = &[
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

// Every route has its own slot of request metrics, and the last is left for
// requests that match none.
const _: () = assert!(ROUTES.len() < metrics::UNMATCHED);

/// The route table over the application it serves.
pub struct Routes {
    app: App,
}

impl Routes {
    pub fn new(app: App) -> Routes {
        Routes { app }
    }

    /// Authenticates nothing by itself: each handler asks the context for
    /// what it needs, and every failure becomes a response here, through the
    /// one mapping of [`ApiError`].
    /// Each answer is counted under its route and status class, with the
    /// time to the response (an upload's body read included; a download's
    /// bytes are sent after).
    async fn answer(&self, ex: &mut Exchange<'_, '_>) -> Response {
        let started = ex.started;
        let mut ctx = Ctx::new(ex, &self.app.accounts.tokens);
        let request = ctx.request;
        let (slot, response) = match resolve(request.method, request.path()) {
            Ok((slot, param)) => {
                let answer = dispatch(&mut ctx, &self.app, ROUTES[slot].endpoint, param.unwrap_or_default());
                (slot, answer.await.unwrap_or_else(ApiError::into_response))
            }
            Err(e) => (metrics::UNMATCHED, e.into_response()),
        };
        let route = &METRICS.routes[slot];
        route.answered(response.status);
        route.latency.observe_duration(started.elapsed());
        response
    }
}

impl Service for Routes {
    fn handle<'e>(&'e self, ex: &'e mut Exchange<'_, '_>) -> impl Future<Output = Response> + Send + 'e {
        self.answer(ex)
    }

    fn refuse(&self, refusal: Refusal) -> Response {
        let response = ApiError::from(refusal).into_response();
        METRICS.routes[metrics::UNMATCHED].answered(response.status);
        response
    }
}

/// Matches a path against the table: the route's index in [`ROUTES`] and
/// its path parameter.
pub(crate) fn resolve(method: Method, path: &str) -> Result<(usize, Option<&str>), ApiError> {
    let method = if method == Method::Head { Method::Get } else { method };
    let mut allowed: Vec<&str> = Vec::new();
    for (index, route) in ROUTES.iter().enumerate() {
        let Some(param) = matches(route.pattern, path) else {
            continue;
        };
        if route.method == method {
            return Ok((index, param));
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

async fn dispatch(ctx: &mut Ctx<'_, '_>, app: &App, endpoint: Endpoint, param: &str) -> Result<Response, ApiError> {
    match endpoint {
        Endpoint::Index => Ok(pages::index().into_response()),
        Endpoint::Docs => Ok(pages::docs().into_response()),
        Endpoint::OpenApi => Ok(pages::openapi().into_response()),
        Endpoint::Asset => pages::asset(param)
            .map(pages::Asset::into_response)
            .ok_or_else(|| ApiError::not_found("no such asset")),
        Endpoint::Health => health::check(&app.db).await,
        Endpoint::Register => accounts::register(ctx, &app.accounts).await,
        Endpoint::Token => accounts::token(ctx, &app.accounts).await,
        Endpoint::Logout => accounts::logout(&app.accounts),
        Endpoint::Me => accounts::me(ctx, &app.accounts).await,
        Endpoint::FileUpload => upload::upload(ctx, &app.files).await,
        Endpoint::FileList => catalog::list(ctx, &app.files).await,
        Endpoint::FileDownload => download::download(ctx, &app.files, param).await,
        Endpoint::FileDelete => catalog::delete(ctx, &app.files, param).await,
        Endpoint::Chat => upgrade::chat(ctx, &app.chat).await,
        Endpoint::HistoryLast20 => history::last20(ctx, &app.chat.room).await,
        Endpoint::History => history::page(ctx, &app.chat.room).await,
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
                ROUTES[resolve(route.method, &path).unwrap().0].endpoint,
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
        assert_eq!(ROUTES[resolve(Method::Head, "/me").unwrap().0].endpoint, Endpoint::Me);
    }
}
