//! The route table: every route of the API in one list that reads like the
//! contract, and the dispatch from a matched route to its handler with the
//! part of the application it needs. [`Routes`] owns the application and is
//! the [`Service`] the transport calls: this is the one place where the
//! transport, the kit and the features meet.
//!
//! `HEAD` is answered by the `GET` route (the connection drops the body);
//! a path that exists with another method gets 405 with `Allow`. Every
//! answer of `/history*` and `/healthz`, errors included, carries the
//! database's epoch in `X-Chat-Epoch`, for clients that resume a socket.

use std::future::Future;

use crate::accounts::sessions;
use crate::api::{ApiError, Ctx};
use crate::app::App;
use crate::chat::{history, upgrade};
use crate::cidr::Cidr;
use crate::files::{catalog, download, sharing, upload};
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
    TokenRefresh,
    Logout,
    LogoutAll,
    Me,
    Password,
    SessionList,
    SessionDelete,
    FileUpload,
    FileList,
    FileDownload,
    FileDelete,
    FileShare,
    FileLinkCreate,
    FileLinks,
    FileLinkRevoke,
    LinkDownload,
    Chat,
    HistoryLast20,
    History,
}

pub(crate) struct Route {
    pub method: Method,
    /// Literal segments, or `{name}` for one non-empty segment (at most
    /// two of them).
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
    // Sessions (v2). After the routes of every request: the table is
    // searched in order, and these are called once in a while.
    route(Method::Post, "/token/refresh", Endpoint::TokenRefresh),
    route(Method::Post, "/logout/all", Endpoint::LogoutAll),
    route(Method::Post, "/password", Endpoint::Password),
    route(Method::Get, "/sessions", Endpoint::SessionList),
    route(Method::Delete, "/sessions/{id}", Endpoint::SessionDelete),
    // After the chat's routes: a request is matched against the table in
    // order, and the history pages are the ones asked for most.
    route(Method::Post, "/files/{id}/share", Endpoint::FileShare),
    route(Method::Post, "/files/{id}/links", Endpoint::FileLinkCreate),
    route(Method::Get, "/files/{id}/links", Endpoint::FileLinks),
    route(Method::Delete, "/files/{id}/links/{link}", Endpoint::FileLinkRevoke),
    route(Method::Get, "/d/{token}", Endpoint::LinkDownload),
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
        let mut ctx = Ctx::new(ex, &self.app.accounts.tokens, &self.app.origins);
        let request = ctx.request;
        let (slot, response) = match resolve(request.method, request.path()) {
            Ok((slot, params)) => {
                let answer = dispatch(&mut ctx, &self.app, ROUTES[slot].endpoint, params);
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

    fn trusted_proxies(&self) -> &[Cidr] {
        &self.app.trusted_proxies
    }
}

/// The path parameters of a route, in the order of its pattern.
type Params<'p> = [Option<&'p str>; 2];

/// Matches a path against the table: the route's index in [`ROUTES`] and
/// its path parameters.
pub(crate) fn resolve(method: Method, path: &str) -> Result<(usize, Params<'_>), ApiError> {
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

/// `Some(params)` when `path` fits `pattern` (`params` are the `{...}`
/// segments).
fn matches<'p>(pattern: &str, path: &'p str) -> Option<Params<'p>> {
    let mut params: Params<'p> = [None; 2];
    let mut taken = 0;
    let mut pattern_segments = pattern.split('/');
    let mut path_segments = path.split('/');
    loop {
        match (pattern_segments.next(), path_segments.next()) {
            (None, None) => return Some(params),
            (Some(p), Some(s)) if p.starts_with('{') && !s.is_empty() && taken < params.len() => {
                params[taken] = Some(s);
                taken += 1;
            }
            (Some(p), Some(s)) if p == s => {}
            _ => return None,
        }
    }
}

async fn dispatch(
    ctx: &mut Ctx<'_, '_>,
    app: &App,
    endpoint: Endpoint,
    params: Params<'_>,
) -> Result<Response, ApiError> {
    let [param, second] = params.map(Option::unwrap_or_default);
    match endpoint {
        Endpoint::Index => Ok(pages::index().into_response()),
        Endpoint::Docs => Ok(pages::docs().into_response()),
        Endpoint::OpenApi => Ok(pages::openapi().into_response()),
        Endpoint::Asset => pages::asset(param)
            .map(pages::Asset::into_response)
            .ok_or_else(|| ApiError::not_found("no such asset")),
        Endpoint::Health => with_epoch(health::check(&app.db).await, app),
        Endpoint::Register => accounts::register(ctx, &app.accounts).await,
        Endpoint::Token => accounts::token(ctx, &app.accounts).await,
        Endpoint::TokenRefresh => sessions::refresh(ctx, &app.accounts).await,
        Endpoint::Logout => accounts::logout(ctx, &app.accounts).await,
        Endpoint::LogoutAll => sessions::logout_all(ctx, &app.accounts).await,
        Endpoint::Me => accounts::me(ctx, &app.accounts).await,
        Endpoint::Password => sessions::change_password(ctx, &app.accounts).await,
        Endpoint::SessionList => sessions::list(ctx, &app.accounts).await,
        Endpoint::SessionDelete => sessions::delete(ctx, &app.accounts, param).await,
        Endpoint::FileUpload => upload::upload(ctx, &app.files).await,
        Endpoint::FileList => catalog::list(ctx, &app.files).await,
        Endpoint::FileDownload => download::download(ctx, &app.files, param).await,
        Endpoint::FileDelete => catalog::delete(ctx, &app.files, param).await,
        Endpoint::FileShare => sharing::share(ctx, &app.files, param).await,
        Endpoint::FileLinkCreate => sharing::create_link(ctx, &app.files, param).await,
        Endpoint::FileLinks => sharing::list_links(ctx, &app.files, param).await,
        Endpoint::FileLinkRevoke => sharing::revoke_link(ctx, &app.files, param, second).await,
        Endpoint::LinkDownload => download::by_link(ctx, &app.files, param).await,
        Endpoint::Chat => upgrade::chat(ctx, &app.chat).await,
        Endpoint::HistoryLast20 => with_epoch(history::last20(ctx, &app.chat.room).await, app),
        Endpoint::History => with_epoch(history::page(ctx, &app.chat.room).await, app),
    }
}

/// The answer, or its error's, with the `X-Chat-Epoch` header.
fn with_epoch(answer: Result<Response, ApiError>, app: &App) -> Result<Response, ApiError> {
    let response = answer.unwrap_or_else(ApiError::into_response);
    Ok(response.header("X-Chat-Epoch", app.chat.epoch.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_resolves_to_itself() {
        for route in ROUTES {
            let path = route
                .pattern
                .replace("{id}", "abc")
                .replace("{name}", "x")
                .replace("{link}", "l")
                .replace("{token}", "t");
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

    #[test]
    fn parameters_come_in_the_order_of_the_pattern() {
        let (slot, params) = resolve(Method::Delete, "/files/f1/links/l2").unwrap();
        assert_eq!(
            (ROUTES[slot].endpoint, params),
            (Endpoint::FileLinkRevoke, [Some("f1"), Some("l2")])
        );
        assert_eq!(resolve(Method::Get, "/files/f1").unwrap().1, [Some("f1"), None]);
        assert_eq!(resolve(Method::Get, "/files//links").unwrap_err().status, 404);
        assert_eq!(resolve(Method::Put, "/d/t").unwrap_err().status, 405);
    }
}
