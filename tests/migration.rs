//! A database and uploads written by the v1 release (`tests/fixtures/v1/`,
//! see its README) open under this server, are migrated in place at
//! start-up, and lose nothing: every account, message and file is there
//! through the API.

mod common;

use std::path::Path;

use common::{sha256_hex, Server};

/// The fixture's accounts, each with its password (`pass-` + name).
const USERS: [&str; 3] = ["alice", "Bob", "carol_1"];
/// The fixture's messages, oldest first: id, author, text.
const MESSAGES: [(i64, &str, &str); 5] = [
    (1, "alice", "hello"),
    (2, "alice", "line two ✓"),
    (3, "alice", "padded"),
    (4, "Bob", "hi alice"),
    (5, "Bob", "émoji 🎉 and \"quotes\""),
];
/// The fixture's files: id, uploader, name, size, sha256.
const FILES: [(&str, &str, &str, u64, &str); 2] = [
    (
        "e839959b322ac129e59495cfbf92bca2",
        "alice",
        "notes.txt",
        17,
        "319752901e78fc9da52551b810a4a7fafeaf343b048a5ed5a7af6f033d9ee02e",
    ),
    (
        "785ea6f626943042bdea4466c44ff22f",
        "Bob",
        "Résumé 2026.bin",
        70000,
        "726ad712e3746120faed9f6840bddabde92af559eac06cfbafa25b85a02cea5b",
    ),
];

/// The fixture copied into `dir`: `chat.db` and `uploads/`.
fn copy_fixture(dir: &Path) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    std::fs::copy(fixture.join("v1.db"), dir.join("chat.db")).unwrap();
    std::fs::create_dir(dir.join("uploads")).unwrap();
    for entry in std::fs::read_dir(fixture.join("uploads")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("uploads").join(entry.file_name())).unwrap();
    }
}

fn user_version(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap()
}

fn login(server: &Server, username: &str) -> String {
    let response = server.login(username, &format!("pass-{username}"));
    assert_eq!(response.status, 200, "{username}: {}", response.text());
    response.json()["access_token"].as_str().unwrap().to_string()
}

#[test]
fn a_v1_database_is_migrated_at_start_up_and_keeps_every_user_message_and_file() {
    let dir = tempfile::tempdir().unwrap();
    copy_fixture(dir.path());
    let db = dir.path().join("chat.db");
    assert_eq!(user_version(&db), 1, "the fixture is a v1 database");
    let (db_var, uploads_var) = (db.to_str().unwrap(), dir.path().join("uploads"));
    let mut server = Server::start_with_env(
        &[],
        &[("CHAT_DB", db_var), ("CHAT_UPLOADS_DIR", uploads_var.to_str().unwrap())],
    );

    let tokens: Vec<String> = USERS.iter().map(|user| login(&server, user)).collect();
    for (user, token) in USERS.iter().zip(&tokens) {
        assert_eq!(server.get("/me", token).json()["username"], *user);
    }

    let page = server.get("/history?limit=100", &tokens[2]).json();
    let history: Vec<(i64, &str, &str)> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_i64().unwrap(),
                m["username"].as_str().unwrap(),
                m["content"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(history, MESSAGES);
    assert_eq!(page["has_more"], false);

    for (id, uploader, name, size, sha256) in FILES {
        let token = &tokens[USERS.iter().position(|user| *user == uploader).unwrap()];
        let listed = server.get("/files?limit=100", token).json();
        let row = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|file| file["id"] == id)
            .unwrap_or_else(|| panic!("{uploader} does not see {name}: {listed}"))
            .clone();
        assert_eq!(
            (row["filename"].as_str(), row["size"].as_u64()),
            (Some(name), Some(size))
        );
        let download = server.get(&format!("/files/{id}"), token);
        assert_eq!(download.status, 200, "{name}");
        assert_eq!(sha256_hex(&download.body), sha256);
        let disposition = download.header("content-disposition").unwrap();
        let encoded: String = percent_encode(name);
        assert!(
            disposition.ends_with(&format!("filename*=UTF-8''{encoded}")),
            "{disposition}"
        );
    }

    assert_eq!(server.stop(), Some(0));
    assert_eq!(user_version(&db), 2, "the migration is recorded");
}

/// RFC 5987's encoding of a file name, as `Content-Disposition` carries it.
fn percent_encode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
