//! Whether a request comes from a page of this server. Browsers attach
//! cookies to cross-site requests (and do not apply CORS to WebSocket
//! handshakes), so a route that accepts the cookie must check `Origin`.

use crate::config::normalize_origin;
use crate::http::request::Request;

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
}
