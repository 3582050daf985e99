//! Defences of `SECURITY.md` that no other test file shows end to end: what
//! is stored for a password, and how an uploaded page is served.

mod common;

use common::{Server, PASSWORD};

#[test]
fn passwords_are_stored_only_as_bcrypt_hashes() {
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
    let wal = format!("{}-wal", server.db_path().display());
    for file in [server.db_path().display().to_string(), wal] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()),
            "the password is in {file}"
        );
    }
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
