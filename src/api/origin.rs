//! Whether a request comes from a page of this server. Browsers attach
//! cookies to cross-site requests (and do not apply CORS to WebSocket
//! handshakes), so a route that accepts the cookie must check `Origin`.

use crate::config::normalize_origin;
use crate::http::request::Request;

/// A missing `Origin` (not a browser) is allowed; otherwise it must be the
/// server's own origin (`http://` + `Host`, or `https://` + `Host` behind a
/// TLS proxy, which `https` signals) or one of `allowed` (normalised by the
/// configuration).
pub(crate) fn is_allowed(request: &Request, allowed: &[String], https: bool) -> bool {
    is_allowed_origin(request.header("origin"), request.host(), allowed, https)
}

fn is_allowed_origin(origin: Option<&str>, host: Option<&str>, allowed: &[String], https: bool) -> bool {
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
    own("http") || (https && own("https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_own_or_listed() {
        let listed = vec!["https://app.example".to_string()];
        let allowed =
            |origin: &str, host: &str, https: bool| is_allowed_origin(Some(origin), Some(host), &listed, https);
        assert!(is_allowed_origin(None, None, &[], false));
        assert!(allowed("http://localhost:8001", "localhost:8001", false));
        assert!(allowed("HTTP://LocalHost:8001/", "localhost:8001", false));
        assert!(allowed("http://chat.example", "chat.example:80", false));
        assert!(allowed("https://app.example:443", "elsewhere", false));
        assert!(!allowed("http://evil.example", "localhost:8001", false));
        assert!(!allowed("http://localhost:8002", "localhost:8001", false));
        assert!(!allowed("null", "localhost:8001", false));
        assert!(!allowed("https://localhost:8001", "localhost:8001", false));
        assert!(allowed("https://localhost:8001", "localhost:8001", true));
        assert!(!is_allowed_origin(Some("http://h"), None, &[], false));
    }

    #[test]
    fn an_absolute_form_target_is_checked_against_its_authority() {
        let request = |head: &str| crate::http::request::parse(head.as_bytes()).unwrap();
        let absolute =
            request("GET http://chat.example/ws/chat HTTP/1.1\r\nHost: other\r\nOrigin: http://chat.example\r\n\r\n");
        assert!(is_allowed(&absolute, &[], false));
        let spoofed = request(
            "GET http://chat.example/ws/chat HTTP/1.1\r\nHost: evil.example\r\nOrigin: http://evil.example\r\n\r\n",
        );
        assert!(!is_allowed(&spoofed, &[], false));
    }
}
