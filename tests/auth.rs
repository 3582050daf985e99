//! Accounts and tokens: /register, /token, /logout, /me, and every way a
//! token can be refused.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Server, PASSWORD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "a test secret of more than 16 bytes";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A token with these claims, signed with `secret` by `alg`.
fn sign(alg: Algorithm, secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// The claims of a token signed with [`SECRET`], checked by its signature.
fn claims_of(token: &str) -> Value {
    let mut validation = jsonwebtoken::Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    let key = jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::decode::<Value>(token, &key, &validation).unwrap().claims
}

fn register_json(server: &Server, body: &str) -> common::Response {
    server.request("POST", "/register", None, Some(("application/json", body.as_bytes())))
}

fn assert_unauthorized(response: &common::Response) {
    assert_eq!(response.status, 401, "{}", response.text());
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    assert!(!response.detail().is_empty());
}

#[test]
fn registering_answers_201_with_id_name_and_creation_time() {
    let server = Server::start();
    let response = server.register("alice", PASSWORD);
    assert_eq!(response.status, 201, "{}", response.text());
    let body = response.json();
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 3, "{body}");
    assert!(body["id"].as_i64().unwrap() > 0);
    assert_eq!(body["username"], "alice");
    let created = body["created_at"].as_str().unwrap();
    // RFC 3339 in UTC: 2026-01-02T03:04:05.678Z
    assert_eq!(created.len(), 24, "{created}");
    assert!(created.ends_with('Z') && created.as_bytes()[10] == b'T', "{created}");
    let second = server.register("bob", PASSWORD).json();
    assert_ne!(second["id"], body["id"]);
}

#[test]
fn registrations_that_do_not_validate_get_422() {
    let server = Server::start();
    let long_name = "n".repeat(33);
    let long_password = "p".repeat(73);
    let cases = [
        json!({ "username": "", "password": PASSWORD }).to_string(),
        json!({ "username": long_name, "password": PASSWORD }).to_string(),
        json!({ "username": "with space", "password": PASSWORD }).to_string(),
        json!({ "username": "slash/", "password": PASSWORD }).to_string(),
        json!({ "username": "ünïcode", "password": PASSWORD }).to_string(),
        json!({ "username": "short", "password": "abc" }).to_string(),
        json!({ "username": "long", "password": long_password }).to_string(),
        json!({ "username": "nopass" }).to_string(),
        json!({ "password": PASSWORD }).to_string(),
        json!({ "username": 7, "password": PASSWORD }).to_string(),
        json!(["alice", PASSWORD]).to_string(),
        "{not json".to_string(),
        String::new(),
    ];
    for body in &cases {
        let response = register_json(&server, body);
        assert_eq!(response.status, 422, "{body}: {}", response.text());
        assert!(!response.detail().is_empty(), "{body}");
    }
    // The edges of the ranges are accepted.
    let name = "N".repeat(32);
    assert_eq!(server.register(&name, &"p".repeat(72)).status, 201);
    assert_eq!(server.register("a", "four").status, 201);
    assert_eq!(server.register("A_b.c-9", PASSWORD).status, 201);
}

#[test]
fn usernames_are_unique_regardless_of_case() {
    let server = Server::start();
    assert_eq!(server.register("Carol", PASSWORD).status, 201);
    for taken in ["Carol", "carol", "CAROL"] {
        let response = server.register(taken, "another password");
        assert_eq!(response.status, 409, "{taken}");
        assert!(!response.detail().is_empty());
    }
}

#[test]
fn logging_in_returns_the_token_and_sets_it_as_a_cookie() {
    let server = Server::start();
    server.register("dave", PASSWORD);
    let response = server.login("dave", PASSWORD);
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        response.header("set-cookie"),
        Some(format!("access_token={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age=3600").as_str())
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(server.get("/me", token).json()["username"], "dave");
}

#[test]
fn secure_cookies_adds_secure_to_both_cookies() {
    let server = Server::start_with(&["--secure-cookies"]);
    server.register("erin", PASSWORD);
    let login = server.login("erin", PASSWORD);
    assert!(login.header("set-cookie").unwrap().ends_with("; Secure"));
    let logout = server.request("POST", "/logout", None, Some(("text/plain", b"")));
    assert_eq!(
        logout.header("set-cookie"),
        Some("access_token=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0; Secure")
    );
}

#[test]
fn login_ignores_case_and_the_token_carries_the_name_as_registered() {
    let server = Server::start_with(&[&format!("--jwt-secret={SECRET}")]);
    let id = server.register("MixedCase", PASSWORD).json()["id"].clone();
    for spelling in ["mixedcase", "MIXEDCASE", "MixedCase"] {
        let response = server.login(spelling, PASSWORD);
        assert_eq!(response.status, 200, "{spelling}");
        let token = response.json()["access_token"].as_str().unwrap().to_string();
        let claims = claims_of(&token);
        assert_eq!(claims["sub"], "MixedCase");
        assert_eq!(claims["uid"], id);
        let me = server.get("/me", &token).json();
        assert_eq!(
            (me["id"].clone(), me["username"].clone()),
            (id.clone(), json!("MixedCase"))
        );
    }
}

#[test]
fn tokens_carry_exactly_sub_uid_sid_iat_and_exp() {
    let server = Server::start_with(&[&format!("--jwt-secret={SECRET}"), "--token-ttl=120"]);
    server.register("frank", PASSWORD);
    let response = server.login("frank", PASSWORD);
    assert_eq!(response.json()["expires_in"], 120);
    assert!(response.header("set-cookie").unwrap().contains("; Max-Age=120"));
    let token = response.json()["access_token"].as_str().unwrap().to_string();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::HS256);
    let claims = claims_of(&token);
    let mut keys: Vec<&str> = claims.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["exp", "iat", "sid", "sub", "uid"]);
    let sid = claims["sid"].as_str().unwrap();
    assert!(sid.len() >= 22 && sid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 120);
}

#[test]
fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let server = Server::start();
    server.register("grace", PASSWORD);
    let wrong_password = server.login("grace", "not the password");
    let unknown_user = server.login("nobody", PASSWORD);
    assert_unauthorized(&wrong_password);
    assert_unauthorized(&unknown_user);
    assert_eq!(wrong_password.body, unknown_user.body);
    assert_eq!(wrong_password.header("set-cookie"), None);
    let missing = server.request(
        "POST",
        "/token",
        None,
        Some(("application/x-www-form-urlencoded", b"username=grace")),
    );
    assert_eq!(missing.status, 422);
}

#[test]
fn a_password_is_never_matched_by_its_first_72_bytes_alone() {
    let server = Server::start();
    let password = "p".repeat(72);
    assert_eq!(server.register("longpw", &password).status, 201);
    assert_eq!(server.login("longpw", &password).status, 200);
    assert_unauthorized(&server.login("longpw", &format!("{password}extra")));
}

#[test]
fn form_fields_are_url_decoded() {
    let server = Server::start();
    server.register("heidi", "p@ss w+rd%");
    let body = b"username=heidi&password=p%40ss+w%2Brd%25";
    let response = server.request(
        "POST",
        "/token",
        None,
        Some(("application/x-www-form-urlencoded", body)),
    );
    assert_eq!(response.status, 200, "{}", response.text());
}

#[test]
fn logout_answers_204_and_clears_the_cookie() {
    let server = Server::start();
    let response = server.request("POST", "/logout", None, Some(("text/plain", b"")));
    assert_eq!(response.status, 204);
    assert_eq!(response.header("content-length"), None);
    assert_eq!(
        response.header("set-cookie"),
        Some("access_token=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0")
    );
}

#[test]
fn me_accepts_the_token_as_bearer_or_as_the_cookie() {
    let server = Server::start();
    let token = server.user("ivan");
    assert_eq!(server.get("/me", &token).json()["username"], "ivan");
    for cookie in [
        format!("access_token={token}"),
        format!("theme=dark; access_token={token}; lang=en"),
    ] {
        let response = server.raw(format!("GET /me HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n").as_bytes());
        assert_eq!(response.status, 200, "{cookie}");
        assert_eq!(response.json()["username"], "ivan");
    }
    assert_unauthorized(&server.request("GET", "/me", None, None));
    assert_unauthorized(&server.raw(b"GET /me HTTP/1.1\r\nHost: x\r\nCookie: access_token=\r\n\r\n"));
    assert_unauthorized(&server.raw(b"GET /me HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dTpw\r\n\r\n"));
}

#[test]
fn every_kind_of_bad_token_is_refused_with_401() {
    let server = Server::start_with(&[&format!("--jwt-secret={SECRET}")]);
    let uid = server.register("judy", PASSWORD).json()["id"].as_i64().unwrap();
    let login = server.login("judy", PASSWORD).json();
    let sid = claims_of(login["access_token"].as_str().unwrap())["sid"].clone();
    let now = now();
    let claims = |sub: &str, iat: u64, exp: u64| json!({ "sub": sub, "uid": uid, "sid": sid, "iat": iat, "exp": exp });
    // A token made here with the server's secret is accepted: the refusals
    // below are for what each changes, not for how it was made.
    let good = sign(Algorithm::HS256, SECRET, &claims("judy", now, now + 600));
    assert_eq!(server.get("/me", &good).status, 200);

    let parts: Vec<&str> = good.split('.').collect();
    let forged = sign(
        Algorithm::HS256,
        "some other secret entirely",
        &claims("mallory", now, now + 600),
    );
    let forged_payload = forged.split('.').nth(1).unwrap();
    let mut flipped: Vec<u8> = parts[2].bytes().collect();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let alg_none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    let cases = [
        (
            "payload from another token",
            format!("{}.{forged_payload}.{}", parts[0], parts[2]),
        ),
        ("signature changed", format!("{}.{}.{flipped}", parts[0], parts[1])),
        ("signature removed", format!("{}.{}.", parts[0], parts[1])),
        ("alg none, no signature", format!("{alg_none}.{}.", parts[1])),
        (
            "alg none, old signature",
            format!("{alg_none}.{}.{}", parts[1], parts[2]),
        ),
        ("other secret", forged.clone()),
        (
            "HS512 with the right secret",
            sign(Algorithm::HS512, SECRET, &claims("judy", now, now + 600)),
        ),
        (
            "HS384 with the right secret",
            sign(Algorithm::HS384, SECRET, &claims("judy", now, now + 600)),
        ),
        (
            "expired a minute ago",
            sign(Algorithm::HS256, SECRET, &claims("judy", now - 120, now - 60)),
        ),
        (
            "expired past the leeway",
            sign(Algorithm::HS256, SECRET, &claims("judy", now - 100, now - 10)),
        ),
        (
            "no uid",
            sign(
                Algorithm::HS256,
                SECRET,
                &json!({ "sub": "judy", "iat": now, "exp": now + 600 }),
            ),
        ),
        (
            "no exp",
            sign(
                Algorithm::HS256,
                SECRET,
                &json!({ "sub": "judy", "uid": uid, "iat": now }),
            ),
        ),
        (
            "no sid: a token as v1 issued them",
            sign(
                Algorithm::HS256,
                SECRET,
                &json!({ "sub": "judy", "uid": uid, "iat": now, "exp": now + 600 }),
            ),
        ),
        (
            "a session that does not exist",
            sign(
                Algorithm::HS256,
                SECRET,
                &json!({ "sub": "judy", "uid": uid, "sid": "0123456789abcdef0123456789abcdef", "iat": now, "exp": now + 600 }),
            ),
        ),
        (
            "another user's claims on judy's session",
            sign(
                Algorithm::HS256,
                SECRET,
                &json!({ "sub": "mallory", "uid": uid + 1, "sid": sid, "iat": now, "exp": now + 600 }),
            ),
        ),
        ("garbage", "garbage".to_string()),
        ("three garbage parts", "a.b.c".to_string()),
        ("two parts", format!("{}.{}", parts[0], parts[1])),
    ];
    for (what, token) in &cases {
        let response = server.get("/me", token);
        assert_eq!(response.status, 401, "{what}");
        assert_unauthorized(&response);
        let cookie =
            server.raw(format!("GET /me HTTP/1.1\r\nHost: x\r\nCookie: access_token={token}\r\n\r\n").as_bytes());
        assert_eq!(cookie.status, 401, "{what} (cookie)");
    }
    let expired = server.get("/me", &cases[8].1);
    assert!(expired.detail().contains("expired"), "{}", expired.text());
}

#[test]
fn a_valid_token_for_an_account_that_does_not_exist_is_refused() {
    let server = Server::start_with(&[&format!("--jwt-secret={SECRET}")]);
    let now = now();
    let token = sign(
        Algorithm::HS256,
        SECRET,
        &json!({ "sub": "ghost", "uid": 999, "iat": now, "exp": now + 600 }),
    );
    assert_unauthorized(&server.get("/me", &token));
}

#[test]
fn the_generated_secret_survives_a_restart_and_is_not_shared() {
    let server = Server::start();
    let token = server.user("kim");
    let server = server.restart();
    let me = server.get("/me", &token);
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["username"], "kim");
    // Another database, another generated secret.
    let other = Server::start();
    other.user("kim");
    assert_unauthorized(&other.get("/me", &token));
}

#[test]
fn tokens_never_appear_in_the_logs() {
    let mut server = Server::start();
    let token = server.user("leo");
    for target in [
        format!("/healthz?token={token}"),
        format!("/healthz?a=1&token={token}&b=2"),
        format!("/ws/chat?token={token}"),
        "/healthz?token=SECRET-IN-QUERY".to_string(),
    ] {
        server.get(&target, &token);
    }
    server.raw(format!("GET /me HTTP/1.1\r\nHost: x\r\nCookie: access_token={token}\r\n\r\n").as_bytes());
    assert_eq!(server.stop(), Some(0));
    let logs = server.logs();
    assert!(logs.contains("GET /healthz?token=REDACTED 200"), "{logs}");
    assert!(logs.contains("GET /healthz?a=1&token=REDACTED&b=2 200"), "{logs}");
    assert!(logs.contains("/ws/chat?token=REDACTED"), "{logs}");
    assert!(!logs.contains(&token), "{logs}");
    assert!(!logs.contains(token.split('.').nth(2).unwrap()), "{logs}");
    assert!(!logs.contains("SECRET-IN-QUERY"), "{logs}");
}
