//! Sessions over real sockets: a session per login, refreshing, listing
//! and ending sessions, logging out everywhere, changing the password,
//! chat sockets that follow their session, and a v1 database migrated.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::ws::{is, Client};
use common::{Response, Server, PASSWORD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// A POST without a body, with the token as bearer (if any).
fn post(server: &Server, path: &str, token: Option<&str>) -> Response {
    server.request("POST", path, token, Some(("text/plain", b"")))
}

/// Logs `username` in once more: a new session. Returns its token.
fn login(server: &Server, username: &str) -> String {
    let response = server.login(username, PASSWORD);
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["access_token"].as_str().unwrap().to_string()
}

/// The unverified claims of a token (the tests trust their own server).
fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

fn sid(token: &str) -> String {
    claims(token)["sid"].as_str().unwrap().to_string()
}

fn sessions(server: &Server, token: &str) -> Vec<Value> {
    let response = server.get("/sessions", token);
    assert_eq!(response.status, 200, "{}", response.text());
    response.json().as_array().unwrap().clone()
}

fn assert_refused(response: &Response) {
    assert_eq!(response.status, 401, "{}", response.text());
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
}

fn password_change(server: &Server, token: &str, current: &str, new: &str) -> Response {
    let body = json!({ "current_password": current, "new_password": new }).to_string();
    server.request(
        "POST",
        "/password",
        Some(token),
        Some(("application/json", body.as_bytes())),
    )
}

#[test]
fn every_login_opens_a_session_listed_newest_first_with_its_address_and_agent() {
    let server = Server::start();
    let first = server.user("ann");
    let long_agent = "é".repeat(300);
    let body = format!("username=ann&password={}", PASSWORD.replace(' ', "+"));
    let raw = format!(
        "POST /token HTTP/1.1\r\nHost: x\r\nUser-Agent: {long_agent}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let second = server.raw(raw.as_bytes()).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(sid(&first), sid(&second));
    let listed = sessions(&server, &first);
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (newest, oldest) = (&listed[0], &listed[1]);
    assert_eq!(newest["id"], sid(&second));
    assert_eq!(oldest["id"], sid(&first));
    assert_eq!(
        (newest["current"].clone(), oldest["current"].clone()),
        (json!(false), json!(true))
    );
    assert_eq!(newest["user_agent"].as_str().unwrap().chars().count(), 256);
    assert_eq!(oldest["ip"], "127.0.0.1");
    let mut keys: Vec<&str> = newest.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "current",
            "expires_at",
            "id",
            "ip",
            "last_used_at",
            "user_agent"
        ]
    );
    // 30 days by default.
    let created = newest["created_at"].as_str().unwrap();
    let expires = newest["expires_at"].as_str().unwrap();
    assert!(expires > created, "{created} {expires}");
    // Another user sees only their own.
    let bob = server.user("bob");
    assert_eq!(sessions(&server, &bob).len(), 1);
}

#[test]
fn logout_revokes_its_session_at_once_and_leaves_the_others() {
    let server = Server::start();
    let token = server.user("ann");
    let other = login(&server, "ann");
    assert_eq!(server.get("/me", &token).status, 200);
    let response = post(&server, "/logout", Some(&token));
    assert_eq!(response.status, 204);
    assert_eq!(
        response.header("set-cookie"),
        Some("access_token=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0")
    );
    for path in ["/me", "/history/last20", "/files", "/sessions"] {
        assert_refused(&server.get(path, &token));
    }
    assert_refused(&post(&server, "/token/refresh", Some(&token)));
    assert_eq!(server.get("/me", &other).status, 200);
    assert_eq!(sessions(&server, &other).len(), 1);
    // Logging out by cookie revokes as well.
    let cookie = format!("Cookie: access_token={other}\r\n");
    let raw = format!("POST /logout HTTP/1.1\r\nHost: x\r\n{cookie}Content-Length: 0\r\n\r\n");
    assert_eq!(server.raw(raw.as_bytes()).status, 204);
    assert_refused(&server.get("/me", &other));
    // A refused token still gets its cookie cleared.
    assert_eq!(post(&server, "/logout", Some(&token)).status, 204);
}

#[test]
fn a_refresh_is_a_new_token_for_the_same_session_and_the_old_one_stays_valid() {
    let server = Server::start_with(&["--token-ttl=60"]);
    let token = server.user("ann");
    std::thread::sleep(Duration::from_millis(1100));
    let response = post(&server, "/token/refresh", Some(&token));
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(
        (body["token_type"].clone(), body["expires_in"].clone()),
        (json!("bearer"), json!(60))
    );
    let fresh = body["access_token"].as_str().unwrap();
    assert_eq!(
        response.header("set-cookie"),
        Some(format!("access_token={fresh}; HttpOnly; SameSite=Lax; Path=/; Max-Age=60").as_str())
    );
    assert_eq!(response.header("cache-control"), Some("no-store"));
    assert_eq!(sid(fresh), sid(&token));
    assert!(claims(fresh)["exp"].as_u64() > claims(&token)["exp"].as_u64());
    assert_eq!(server.get("/me", fresh).status, 200);
    assert_eq!(server.get("/me", &token).status, 200);
    assert_eq!(sessions(&server, fresh).len(), 1, "still one session");
    // Revoking the session ends every token of it.
    assert_eq!(post(&server, "/logout", Some(fresh)).status, 204);
    assert_refused(&server.get("/me", &token));
    assert_refused(&post(&server, "/token/refresh", Some(&token)));
    assert_refused(&post(&server, "/token/refresh", None));
}

#[test]
fn no_token_outlives_the_sessions_absolute_limit() {
    let server = Server::start_with(&["--session-max-age=3", "--token-ttl=3600"]);
    server.register("ann", PASSWORD);
    let login = server.login("ann", PASSWORD);
    let expires_in = login.json()["expires_in"].as_u64().unwrap();
    assert!((2..=3).contains(&expires_in), "{expires_in}");
    let token = login.json()["access_token"].as_str().unwrap().to_string();
    let exp = claims(&token)["exp"].as_u64().unwrap();
    let refreshed = post(&server, "/token/refresh", Some(&token)).json();
    assert!(
        claims(refreshed["access_token"].as_str().unwrap())["exp"]
            .as_u64()
            .unwrap()
            <= exp
    );
    // Past the limit (and the 5 s of leeway) the session is over.
    std::thread::sleep(Duration::from_secs(exp + 6 - now()));
    assert_refused(&server.get("/me", &token));
    assert_refused(&post(&server, "/token/refresh", Some(&token)));
}

#[test]
fn one_session_can_be_ended_by_its_owner_only() {
    let server = Server::start();
    let ann = server.user("ann");
    let ann_phone = login(&server, "ann");
    let bob = server.user("bob");
    let path = format!("/sessions/{}", sid(&ann_phone));
    for (who, status) in [(&bob, 404), (&ann, 204), (&ann, 404)] {
        let response = server.request("DELETE", &path, Some(who), None);
        assert_eq!(response.status, status, "{}", response.text());
    }
    assert_refused(&server.get("/me", &ann_phone));
    assert_eq!(server.get("/me", &ann).status, 200);
    assert_eq!(server.get("/me", &bob).status, 200);
    assert_eq!(server.request("DELETE", "/sessions/nope", Some(&ann), None).status, 404);
    assert_refused(&server.request("DELETE", &path, None, None));
    // Ending the current session clears the cookie too.
    let own = server.request("DELETE", &format!("/sessions/{}", sid(&ann)), Some(&ann), None);
    assert_eq!(own.status, 204);
    assert!(own.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_refused(&server.get("/me", &ann));
}

#[test]
fn logout_everywhere_ends_every_session_of_the_user_only() {
    let server = Server::start();
    let tokens: Vec<String> = std::iter::once(server.user("ann"))
        .chain((0..3).map(|_| login(&server, "ann")))
        .collect();
    let bob = server.user("bob");
    let response = post(&server, "/logout/all", Some(&tokens[1]));
    assert_eq!(response.status, 204);
    assert!(response.header("set-cookie").unwrap().contains("Max-Age=0"));
    for token in &tokens {
        assert_refused(&server.get("/me", token));
    }
    assert_eq!(server.get("/me", &bob).status, 200);
    assert_refused(&post(&server, "/logout/all", Some(&tokens[0])));
    let again = login(&server, "ann");
    assert_eq!(sessions(&server, &again).len(), 1);
}

#[test]
fn a_password_change_ends_the_other_sessions_and_keeps_this_one() {
    let server = Server::start();
    let here = server.user("ann");
    let elsewhere = login(&server, "ann");
    for (current, new, status) in [
        ("wrong password", "new password", 401),
        (PASSWORD, "abc", 422),
        (PASSWORD, &"p".repeat(73), 422),
    ] {
        let response = password_change(&server, &here, current, new);
        assert_eq!(response.status, status, "{}", response.text());
    }
    assert_eq!(server.get("/me", &elsewhere).status, 200, "nothing changed yet");
    let bad_json = server.request(
        "POST",
        "/password",
        Some(&here),
        Some(("application/json", b"{\"new_password\": 1}")),
    );
    assert_eq!(bad_json.status, 422);
    assert_eq!(password_change(&server, &here, PASSWORD, "new password").status, 204);
    assert_eq!(server.get("/me", &here).status, 200);
    assert_refused(&server.get("/me", &elsewhere));
    assert_eq!(server.login("ann", PASSWORD).status, 401);
    assert_eq!(server.login("ann", "new password").status, 200);
    assert_refused(&password_change(&server, &elsewhere, "new password", "another one"));
}

#[test]
fn revocations_and_sessions_survive_a_restart() {
    let server = Server::start();
    let kept = server.user("ann");
    let revoked = login(&server, "ann");
    assert_eq!(post(&server, "/logout", Some(&revoked)).status, 204);
    let server = server.restart();
    assert_eq!(server.get("/me", &kept).status, 200);
    assert_refused(&server.get("/me", &revoked));
    assert_eq!(sessions(&server, &kept).len(), 1);
    let server = server.kill_and_restart();
    assert_eq!(server.get("/me", &kept).status, 200);
    assert_refused(&server.get("/me", &revoked));
}

#[tokio::test]
async fn a_live_socket_follows_its_session_through_refreshes_and_closes_4003_on_revocation() {
    let server = Server::start_with(&["--token-ttl=2"]);
    let token = server.user("ann");
    let other = login(&server, "ann");
    let mut ann = Client::join(&server, &token, "ann").await;
    let mut elsewhere = Client::connect(&server, &other).await;
    elsewhere.wait_for(|e| is(e, "join")).await;
    // Three token lifetimes, refreshing every half second (a busy machine
    // may stall a refresh for a while; a quarter of the lifetime leaves
    // room): no 4001.
    let mut latest = token.clone();
    let mut latest_other = other.clone();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for current in [&mut latest, &mut latest_other] {
            let response = post(&server, "/token/refresh", Some(current));
            assert_eq!(response.status, 200, "{}", response.text());
            *current = response.json()["access_token"].as_str().unwrap().to_string();
        }
    }
    let id = ann.post("ann", "still here").await;
    assert!(id > 0);
    let started = Instant::now();
    assert_eq!(post(&server, "/logout", Some(&latest)).status, 204);
    let (events, code) = ann.closed().await;
    assert_eq!(code, 4003);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(events.last().unwrap()["code"], "session_revoked");
    // The other session's socket is still open: it sees ann's post.
    elsewhere.post("ann", "the other tab").await;
    // A revoked session cannot open a socket again.
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/ws/chat?token={latest}", server.addr)).await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn a_socket_whose_session_is_not_refreshed_closes_4001() {
    let server = Server::start_with(&["--token-ttl=2"]);
    let token = server.user("ann");
    let mut ann = Client::join(&server, &token, "ann").await;
    let started = Instant::now();
    let (events, code) = ann.closed().await;
    assert_eq!(code, 4001);
    assert_eq!(events.last().unwrap()["code"], "token_expired");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn logout_everywhere_and_a_password_change_close_the_sockets_they_revoke() {
    let server = Server::start();
    let first = server.user("ann");
    let second = login(&server, "ann");
    let third = login(&server, "ann");
    let mut a = Client::join(&server, &first, "ann").await;
    let mut b = Client::connect(&server, &second).await;
    b.wait_for(|e| is(e, "join")).await;
    assert_eq!(password_change(&server, &third, PASSWORD, "new password").status, 204);
    for client in [&mut a, &mut b] {
        let (events, code) = client.closed().await;
        assert_eq!(
            (code, events.last().unwrap()["code"].clone()),
            (4003, json!("session_revoked"))
        );
    }
    let mut c = Client::join(&server, &third, "ann").await;
    assert_eq!(post(&server, "/logout/all", Some(&third)).status, 204);
    assert_eq!(c.closed().await.1, 4003);
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Copies the v1 release's database and uploads (tests/fixtures/v1) to a
/// temporary directory and starts the current server on the copy.
fn v1_server() -> (tempfile::TempDir, Server) {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture.join("v1.db"), dir.path().join("chat.db")).unwrap();
    std::fs::create_dir(dir.path().join("uploads")).unwrap();
    for entry in std::fs::read_dir(fixture.join("uploads")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.path().join("uploads").join(entry.file_name())).unwrap();
    }
    let db = dir.path().join("chat.db");
    let uploads = dir.path().join("uploads");
    let server = Server::start_with_env(
        &[],
        &[
            ("CHAT_DB", db.to_str().unwrap()),
            ("CHAT_UPLOADS_DIR", uploads.to_str().unwrap()),
        ],
    );
    (dir, server)
}

#[test]
fn a_v1_database_logs_in_as_before_and_refuses_its_old_tokens() {
    let (dir, server) = v1_server();
    let login = server.login("alice", "pass-alice");
    assert_eq!(login.status, 200, "{}", login.text());
    let token = login.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(server.get("/me", &token).json()["username"], "alice");
    assert_eq!(
        server.get("/history?limit=100", &token).json()["messages"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(sessions(&server, &token).len(), 1);
    // A token as v1 issued it: signed with the same secret, without `sid`.
    let secret: Vec<u8> = rusqlite::Connection::open(dir.path().join("chat.db"))
        .unwrap()
        .query_row("SELECT value FROM settings WHERE key = 'jwt_secret'", [], |row| {
            row.get(0)
        })
        .unwrap();
    let now = now();
    let v1 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({ "sub": "alice", "uid": 1, "iat": now, "exp": now + 600 }),
        &EncodingKey::from_secret(&secret),
    )
    .unwrap();
    assert_refused(&server.get("/me", &v1));
    assert_eq!(server.login("Bob", "pass-Bob").status, 200);
}
