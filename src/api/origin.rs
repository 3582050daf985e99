//! Whether a request comes from a page of this server. Browsers attach
//! cookies to cross-site requests (and do not apply CORS to WebSocket
//! handshakes or to form posts), so a route that accepts the cookie must
//! check `Origin`.
//!
//! `SameSite=Lax` is not enough on its own: a page on another port of the
//! same host is *same-site*, so the browser sends it the cookie, though it
//! is another origin. And a login form posted from another site needs no
//! cookie at all to log the victim's browser into the attacker's account
//! (login CSRF). [`is_cross_site`] is the rule for both.

use crate::config::normalize_origin;
use crate::http::request::Request;

/// Which origins count as the server's own: its `--allowed-origin`s
/// (normalised by the configuration), and whether `--secure-cookies` says
/// TLS is in front of it.
pub(crate) struct Origins {
    pub allowed: Vec<String>,
    pub secure_cookies: bool,
}

/// The scheme of the server's own origin, as far as the server can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OwnScheme {
    /// Reached directly, over plain HTTP.
    Http,
    /// A trusted proxy said the request came over TLS: a page served over
    /// `http://` on that host and port is another origin.
    Https,
    /// `--secure-cookies` says TLS is in front, but no proxy said so for
    /// this request: either scheme may be the page's.
    Either,
}

/// A missing `Origin` (not a browser) is allowed; otherwise it must be the
/// server's own origin (`Host` with the scheme of [`OwnScheme`]) or one of
/// `allowed` (normalised by the configuration).
pub(crate) fn is_allowed(request: &Request, allowed: &[String], scheme: OwnScheme) -> bool {
    is_allowed_origin(request.header("origin"), request.host(), allowed, scheme)
}

/// Whether a browser sent the request from a page of another origin: an
/// `Origin` that is not the server's own nor allowed, or, without `Origin`
/// (older browsers on some requests), a `Sec-Fetch-Site` other than
/// `same-origin` or `none` (`none`: typed in the address bar). A request with
/// neither header is not from a browser page (curl, scripts) and passes.
pub(crate) fn is_cross_site(request: &Request, allowed: &[String], scheme: OwnScheme) -> bool {
    if request.header("origin").is_some() {
        return !is_allowed(request, allowed, scheme);
    }
    request
        .header("sec-fetch-site")
        .is_some_and(|site| !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none"))
}

fn is_allowed_origin(origin: Option<&str>, host: Option<&str>, allowed: &[String], scheme: OwnScheme) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = normalize_origin(origin);
    if allowed.contains(&origin) {
        return true;
    }
    let Some(host) = host.map(str::trim).filter(|h| !h.is_empty()) else {
        return false;
    };
    let own = |scheme: &str| normalize_origin(&format!("{scheme}://{host}")) == origin;
    match scheme {
        OwnScheme::Http => own("http"),
        OwnScheme::Https => own("https"),
        OwnScheme::Either => own("http") || own("https"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_own_or_listed() {
        let listed = vec!["https://app.example".to_string()];
        let allowed =
            |origin: &str, host: &str, scheme: OwnScheme| is_allowed_origin(Some(origin), Some(host), &listed, scheme);
        use OwnScheme::{Either, Http, Https};
        assert!(is_allowed_origin(None, None, &[], Http));
        assert!(allowed("http://localhost:8001", "localhost:8001", Http));
        assert!(allowed("HTTP://LocalHost:8001/", "localhost:8001", Http));
        assert!(allowed("http://chat.example", "chat.example:80", Http));
        assert!(allowed("https://app.example:443", "elsewhere", Http));
        assert!(!allowed("http://evil.example", "localhost:8001", Http));
        assert!(!allowed("http://localhost:8002", "localhost:8001", Http));
        assert!(!allowed("null", "localhost:8001", Http));
        assert!(!allowed("https://localhost:8001", "localhost:8001", Http));
        assert!(allowed("https://localhost:8001", "localhost:8001", Https));
        assert!(!allowed("http://localhost:8001", "localhost:8001", Https));
        assert!(allowed("https://chat.example", "chat.example", Either));
        assert!(allowed("http://chat.example", "chat.example", Either));
        assert!(!is_allowed_origin(Some("http://h"), None, &[], Http));
    }

    #[test]
    fn an_absolute_form_target_is_checked_against_its_authority() {
        let request = |head: &str| crate::http::request::parse(head.as_bytes()).unwrap();
        let absolute =
            request("GET http://chat.example/ws/chat HTTP/1.1\r\nHost: other\r\nOrigin: http://chat.example\r\n\r\n");
        assert!(is_allowed(&absolute, &[], OwnScheme::Http));
        let spoofed = request(
            "GET http://chat.example/ws/chat HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\n\r\n",
        );
        assert!(!is_allowed(&spoofed, &[], OwnScheme::Http));
    }

    #[test]
    fn cross_site_is_a_foreign_origin_or_else_a_foreign_fetch_site() {
        let request = |headers: &str| {
            let head = format!("POST /token HTTP/1.1\r\nHost: chat.example:8001\r\n{headers}\r\n");
            crate::http::request::parse(head.as_bytes()).unwrap()
        };
        let listed = vec!["https://app.example".to_string()];
        let cross = |headers: &str| is_cross_site(&request(headers), &listed, OwnScheme::Http);
        assert!(!cross(""), "neither header: not a browser page");
        assert!(!cross("Origin: http://chat.example:8001\r\n"));
        assert!(!cross("Origin: https://app.example\r\n"));
        assert!(
            cross("Origin: http://chat.example:8002\r\n"),
            "another port is another origin"
        );
        assert!(cross("Origin: null\r\n"));
        assert!(
            cross("Origin: http://evil.example\r\nSec-Fetch-Site: same-origin\r\n"),
            "Origin decides"
        );
        assert!(!cross("Sec-Fetch-Site: same-origin\r\n"));
        assert!(!cross("Sec-Fetch-Site: none\r\n"));
        assert!(cross("Sec-Fetch-Site: same-site\r\n"));
        assert!(cross("Sec-Fetch-Site: cross-site\r\n"));
    }
}
