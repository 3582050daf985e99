//! The defences of `SECURITY.md` that no other test file shows end to end:
//! how passwords are stored, which tokens are refused, what the session
//! cookie says, what reaches the log, and how an uploaded page is served.

mod common;

use common::{Server, PASSWORD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The server's generated signing secret, as an attacker who stole the
/// database would have it (the test needs it to sign tokens the server would
/// accept but for one flaw).
fn signing_secret(server: &Server) -> Vec<u8> {
    let conn = rusqlite::Connection::open(server.db_path()).unwrap();
    conn.query_row("SELECT value FROM settings WHERE key = 'jwt_secret'", [], |row| {
        row.get(0)
    })
    .unwrap()
}

fn sign(algorithm: Algorithm, secret: &[u8], claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=group.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn passwords_are_stored_only_as_bcrypt_hashes_and_never_cut() {
    let server = Server::start();
    assert_eq!(server.register("alice", PASSWORD).status, 201);
    let conn = rusqlite::Connection::open(server.db_path()).unwrap();
    let stored: String = conn
        .query_row("SELECT password_hash FROM users WHERE username = 'alice'", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert!(stored.starts_with("$2"), "not a bcrypt hash: {stored}");
    assert!(!stored.contains(PASSWORD));
    // bcrypt reads 72 bytes: a longer password is refused, never silently cut.
    assert_eq!(server.register("bob", &"p".repeat(72)).status, 201);
    let response = server.register("carol", &"p".repeat(73));
    assert_eq!(response.status, 422, "{}", response.text());
}

#[test]
fn failed_logins_do_not_tell_an_unknown_name_from_a_wrong_password() {
    let server = Server::start();
    server.user("alice");
    let wrong_password = server.login("alice", "not the password");
    let unknown_user = server.login("nobody", PASSWORD);
    for response in [&wrong_password, &unknown_user] {
        assert_eq!(response.status, 401);
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
        assert_eq!(response.header("set-cookie"), None);
    }
    assert_eq!(wrong_password.body, unknown_user.body);
}

#[test]
fn expired_forged_and_unsigned_tokens_are_refused() {
    let server = Server::start();
    server.user("alice");
    let secret = signing_secret(&server);
    let now = now_secs();
    let claims = |iat: u64, exp: u64| json!({ "sub": "alice", "uid": 1, "iat": iat, "exp": exp });
    // The test's signing is right: a fresh token signed like the server's works.
    let good = sign(Algorithm::HS256, &secret, &claims(now, now + 60));
    assert_eq!(server.get("/me", &good).status, 200);

    let expired = sign(Algorithm::HS256, &secret, &claims(now - 120, now - 60));
    let response = server.get("/me", &expired);
    assert_eq!((response.status, response.detail().as_str()), (401, "token expired"));

    let header = base64url(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = base64url(claims(now, now + 60).to_string().as_bytes());
    let forged = [
        ("unsigned", format!("{header}.{payload}.")),
        (
            "other algorithm",
            sign(Algorithm::HS512, &secret, &claims(now, now + 60)),
        ),
        (
            "other key",
            sign(
                Algorithm::HS256,
                b"a guessed secret, 32 bytes long!",
                &claims(now, now + 60),
            ),
        ),
        ("altered claims", {
            let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
            parts[1] = base64url(
                json!({ "sub": "admin", "uid": 2, "iat": now, "exp": now + 60 })
                    .to_string()
                    .as_bytes(),
            );
            parts.join(".")
        }),
    ];
    for (what, token) in &forged {
        let response = server.get("/me", token);
        assert_eq!(response.status, 401, "{what} token accepted");
        assert_eq!(response.header("www-authenticate"), Some("Bearer"), "{what}");
    }
}

#[test]
fn session_cookie_is_http_only_same_site_lax_and_secure_when_asked() {
    let server = Server::start();
    server.user("alice");
    let login = server.login("alice", PASSWORD);
    let cookie = login.header("set-cookie").unwrap();
    assert!(cookie.starts_with("access_token=ey"), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=3600"] {
        assert!(
            cookie.split("; ").any(|a| a == attribute),
            "{attribute} missing: {cookie}"
        );
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert_eq!(login.header("cache-control"), Some("no-store"));

    let secure = Server::start_with(&["--secure-cookies"]);
    secure.user("alice");
    let cookie = secure
        .login("alice", PASSWORD)
        .header("set-cookie")
        .unwrap()
        .to_string();
    assert!(cookie.split("; ").any(|a| a == "Secure"), "{cookie}");
    let logout = secure.request("POST", "/logout", None, None);
    let cleared = logout.header("set-cookie").unwrap();
    assert!(
        cleared.starts_with("access_token=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    assert!(cleared.split("; ").any(|a| a == "Secure"), "{cleared}");
}

#[test]
fn tokens_never_reach_the_log() {
    let server = Server::start();
    let token = server.user("alice");
    let marker = "sEcReTtOkEnVaLuE";
    assert_eq!(
        server.get(&format!("/files?token={marker}&offset=0"), &token).status,
        200
    );
    let logs = server.wait_for_log("/files?token=REDACTED&offset=0");
    assert!(logs.contains("GET /files?token=REDACTED&offset=0 200"), "{logs}");
    assert!(!logs.contains(marker), "a token value was logged");
    let signature = token.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature), "a bearer token was logged");
}

#[test]
fn an_uploaded_page_is_served_as_an_inert_attachment() {
    let server = Server::start();
    let token = server.user("mallory");
    let boundary = "security-boundary";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"index.html\"\r\n\
         Content-Type: text/html\r\n\r\n<script>fetch('/me')</script>\r\n--{boundary}--\r\n"
    );
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let uploaded = server.request(
        "POST",
        "/files/upload",
        Some(&token),
        Some((&content_type, body.as_bytes())),
    );
    assert_eq!(uploaded.status, 201, "{}", uploaded.text());
    let download = server.get(uploaded.json()["download_url"].as_str().unwrap(), &token);
    assert_eq!(download.status, 200);
    assert!(download
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment;"));
    assert_eq!(download.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(download.header("content-security-policy"), Some("sandbox"));
}
