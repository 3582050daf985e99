//! Cross-site request forgery, over raw HTTP: a browser attaches the cookie
//! to a request from any page, so every unsafe request authenticated by the
//! cookie, and every login and registration, must come from the server's
//! own origin. `Origin` decides; without it, `Sec-Fetch-Site`; with neither
//! (curl, scripts) nothing changes. The same pages in a real browser are in
//! `browser.rs`.

mod common;

use common::{Response, Server, PASSWORD};

const REFUSED: &str = "cross-site request refused";

fn login(server: &Server, username: &str, headers: &[String]) -> Response {
    let form = format!("username={username}&password={}", PASSWORD.replace(' ', "+"));
    server.send(
        "POST",
        "/token",
        headers,
        Some(("application/x-www-form-urlencoded", form.as_bytes())),
    )
}

fn register(server: &Server, username: &str, headers: &[String]) -> Response {
    let body = serde_json::json!({"username": username, "password": PASSWORD}).to_string();
    server.send(
        "POST",
        "/register",
        headers,
        Some(("application/json", body.as_bytes())),
    )
}

fn upload_body() -> Vec<u8> {
    b"--csrf-boundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"planted.txt\"\r\n\r\n\
      planted\r\n--csrf-boundary--\r\n"
        .to_vec()
}

fn upload(server: &Server, headers: &[String]) -> Response {
    server.send(
        "POST",
        "/files/upload",
        headers,
        Some(("multipart/form-data; boundary=csrf-boundary", &upload_body())),
    )
}

fn refused(response: &Response) -> bool {
    response.status == 403 && response.detail() == REFUSED
}

fn own_origin(server: &Server) -> String {
    format!("Origin: http://{}", server.addr)
}

/// The same host on another port: same-site for the browser (so `Lax`
/// cookies go along), another origin all the same.
fn other_port(server: &Server) -> String {
    format!("Origin: http://127.0.0.1:{}", server.addr.port() ^ 1)
}

fn cookie_of(login: &Response) -> String {
    let cookie = login.header("set-cookie").expect("a cookie");
    format!("Cookie: {}", cookie.split(';').next().unwrap())
}

#[test]
fn a_login_or_registration_from_another_origin_is_refused_without_effect() {
    let server = Server::start();
    server.user("ann");
    for headers in [
        vec!["Origin: http://evil.example".to_string()],
        vec![other_port(&server)],
        vec!["Origin: null".to_string()],
        vec!["Sec-Fetch-Site: cross-site".to_string()],
        vec!["Sec-Fetch-Site: same-site".to_string()],
    ] {
        let answer = login(&server, "ann", &headers);
        assert!(refused(&answer), "{headers:?}: {} {}", answer.status, answer.text());
        assert!(answer.header("set-cookie").is_none(), "no cookie is set");
        let answer = register(&server, "mallory", &headers);
        assert!(refused(&answer), "{headers:?}: {} {}", answer.status, answer.text());
    }
    assert_eq!(login(&server, "mallory", &[]).status, 401, "no account was made");
    // The page's own forms, a typed-in request and curl all get in.
    for headers in [
        vec![own_origin(&server)],
        vec!["Sec-Fetch-Site: same-origin".to_string()],
        vec!["Sec-Fetch-Site: none".to_string()],
        vec![],
    ] {
        assert_eq!(login(&server, "ann", &headers).status, 200, "{headers:?}");
    }
    assert_eq!(register(&server, "bea", &[own_origin(&server)]).status, 201);
}

#[test]
fn an_unsafe_request_authenticated_by_the_cookie_must_come_from_the_own_origin() {
    let server = Server::start();
    let token = server.user("ann");
    let cookie = cookie_of(&login(&server, "ann", &[]));
    for foreign in [other_port(&server), "Sec-Fetch-Site: same-site".to_string()] {
        let answer = upload(&server, &[cookie.clone(), foreign.clone()]);
        assert!(refused(&answer), "{foreign}: {} {}", answer.status, answer.text());
        let answer = server.send("POST", "/logout/all", &[cookie.clone(), foreign.clone()], None);
        assert!(refused(&answer), "{foreign}: {} {}", answer.status, answer.text());
    }
    assert!(server.stored_files().is_empty(), "nothing was stored");
    assert_eq!(server.get("/me", &token).status, 200, "the sessions were not ended");

    let stored = upload(&server, &[cookie.clone(), own_origin(&server)]);
    assert_eq!(stored.status, 201, "{}", stored.text());
    let id = stored.json()["id"].as_str().unwrap().to_string();
    // Reading is not an effect: a GET with the cookie from anywhere is
    // answered as before.
    let read = server.send("GET", "/me", &[cookie.clone(), other_port(&server)], None);
    assert_eq!(read.status, 200);
    let delete = |headers: &[String]| server.send("DELETE", &format!("/files/{id}"), headers, None);
    assert!(refused(&delete(&[
        cookie.clone(),
        "Sec-Fetch-Site: cross-site".to_string()
    ])));
    assert_eq!(
        delete(&[cookie.clone(), "Sec-Fetch-Site: same-origin".to_string()]).status,
        204
    );
}

#[test]
fn a_bearer_token_or_no_browser_header_is_not_affected() {
    let server = Server::start();
    let token = server.user("ann");
    let bearer = format!("Authorization: Bearer {token}");
    // A bearer token is never attached by a browser on its own.
    let answer = upload(&server, &[bearer, "Origin: http://evil.example".to_string()]);
    assert_eq!(answer.status, 201, "{}", answer.text());
    // curl with the cookie: no Origin, no Sec-Fetch-Site.
    let cookie = cookie_of(&login(&server, "ann", &[]));
    assert_eq!(upload(&server, &[cookie]).status, 201);
}

#[test]
fn an_allowed_origin_may_send_cookie_requests_and_logins() {
    let server = Server::start_with(&["--allowed-origin", "https://app.example"]);
    server.user("ann");
    let allowed = "Origin: https://app.example".to_string();
    let login = login(&server, "ann", std::slice::from_ref(&allowed));
    assert_eq!(login.status, 200, "{}", login.text());
    assert_eq!(upload(&server, &[cookie_of(&login), allowed]).status, 201);
}

#[test]
fn behind_a_trusted_tls_proxy_the_own_origin_is_https() {
    let server = Server::start_with(&["--trusted-proxy", "127.0.0.1"]);
    server.user("ann");
    let https = [
        format!("Origin: https://{}", server.addr),
        "X-Forwarded-Proto: https".to_string(),
        "X-Forwarded-For: 203.0.113.9".to_string(),
    ];
    assert_eq!(login(&server, "ann", &https).status, 200);
    let plain = [
        own_origin(&server),
        "X-Forwarded-Proto: https".to_string(),
        "X-Forwarded-For: 203.0.113.9".to_string(),
    ];
    assert!(
        refused(&login(&server, "ann", &plain)),
        "http:// is another origin then"
    );
}
