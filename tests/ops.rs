//! The operations subcommands against real files and a running server:
//! `backup` while the room chats, `verify` of sound and damaged backups,
//! `restore` and serving what it restored, and every refusal.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ws::Client;
use common::{sha256_hex, Server, PASSWORD};

/// Runs `chat-server ARGS` to its end: the exit code, stdout and stderr.
fn chat_server(args: &[&Path]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CHAT_") {
            command.env_remove(key);
        }
    }
    let output = command.args(args).stdin(Stdio::null()).output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code(), text(output.stdout), text(output.stderr))
}

fn backup(server: &Server, out: &Path) -> (Option<i32>, String, String) {
    let (db, uploads) = (server.db_path(), server.uploads_dir());
    chat_server(&[
        Path::new("backup"),
        Path::new("--db"),
        &db,
        Path::new("--uploads-dir"),
        &uploads,
        out,
    ])
}

fn verify(out: &Path) -> (Option<i32>, String, String) {
    chat_server(&[Path::new("verify"), out])
}

fn restore(out: &Path, db: &Path, uploads: &Path) -> (Option<i32>, String, String) {
    chat_server(&[
        Path::new("restore"),
        out,
        Path::new("--db"),
        db,
        Path::new("--uploads-dir"),
        uploads,
    ])
}

fn manifest(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

fn epoch(db: &Path) -> Option<String> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT CAST(value AS TEXT) FROM settings WHERE key = 'epoch'",
        [],
        |row| row.get(0),
    )
    .ok()
}

/// Every message id in the history, oldest first, page by page.
fn all_ids(server: &Server, token: &str) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut query = "/history?limit=100".to_string();
    loop {
        let page = server.get(&query, token).json();
        let oldest_first = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_i64().unwrap());
        ids.splice(0..0, oldest_first);
        match page["next_before_id"].as_i64() {
            Some(before) if page["has_more"] == true => query = format!("/history?limit=100&before_id={before}"),
            _ => return ids,
        }
    }
}

fn login(server: &Server, username: &str) -> String {
    let response = server.login(username, PASSWORD);
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["access_token"].as_str().unwrap().to_string()
}

/// Starts a server on the database and uploads of `dir`.
fn serve(dir: &Path) -> Server {
    let (db, uploads) = (dir.join("chat.db"), dir.join("uploads"));
    Server::start_with_env(
        &[],
        &[
            ("CHAT_DB", db.to_str().unwrap()),
            ("CHAT_UPLOADS_DIR", uploads.to_str().unwrap()),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_the_room_chats_holds_every_acknowledged_message_and_restores_into_a_working_server() {
    const SENDERS: usize = 4;
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let token = server.user("ann");
    let upload = server.upload(&token, "kept.txt", b"kept across the backup");
    let file_id = upload["id"].as_str().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut senders = Vec::new();
    for n in 0..SENDERS {
        let name = format!("sender{n}");
        let mut client = Client::join(&server, &server.user(&name), &name).await;
        let (stop, acknowledged) = (stop.clone(), acknowledged.clone());
        senders.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = client.post(&name, &format!("{name} says {i}")).await;
                acknowledged.lock().unwrap().push(id);
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Every message acknowledged before the backup starts must be in it.
    let before: Vec<i64> = acknowledged.lock().unwrap().clone();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup");
    let (code, stdout, stderr) = tokio::task::block_in_place(|| backup(&server, &out));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("backed up "), "{stdout}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let total = acknowledged.lock().unwrap().len();
    assert!(
        !before.is_empty() && total > before.len(),
        "the room chatted before and during the backup"
    );

    assert_eq!(verify(&out).0, Some(0));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&out).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700, "the backup holds secrets: its owner's alone");
    let manifest = manifest(&out);
    assert_eq!(manifest["format_version"], 1);
    assert_eq!(manifest["schema_version"], 2);
    assert_eq!(manifest["counts"]["users"], 1 + SENDERS as i64);
    assert_eq!(manifest["counts"]["files"], 1);
    assert_eq!(manifest["files"][&file_id], sha256_hex(b"kept across the backup"));
    let newest = manifest["newest_message_id"].as_i64().unwrap();
    assert!(newest >= *before.iter().max().unwrap());

    let restored = tempfile::tempdir().unwrap();
    let (db, uploads) = (restored.path().join("chat.db"), restored.path().join("uploads"));
    let (code, _, stderr) = restore(&out, &db, &uploads);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(epoch(&db).is_some_and(|new| Some(new.clone()) != epoch(&out.join("chat.db"))));
    let restored_server = serve(restored.path());
    let token = login(&restored_server, "ann");
    let ids = all_ids(&restored_server, &token);
    for id in &before {
        assert!(
            ids.contains(id),
            "message {id}, acknowledged before the backup, is missing"
        );
    }
    assert_eq!(ids.last(), Some(&newest), "nothing after the backup's instant");
    assert_eq!(ids.len() as i64, manifest["counts"]["messages"].as_i64().unwrap());
    let download = restored_server.get(&format!("/files/{file_id}"), &token);
    assert_eq!(download.status, 200);
    assert_eq!(download.body, b"kept across the backup");
}

#[test]
fn verify_reports_a_corrupted_file_a_missing_file_and_a_wrong_count_one_line_each() {
    let server = Server::start();
    let token = server.user("ann");
    let ids: Vec<String> = ["a.txt", "b.txt"]
        .iter()
        .map(|name| {
            server.upload(&token, name, name.as_bytes())["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup");
    assert_eq!(backup(&server, &out).0, Some(0));
    let (code, stdout, _) = verify(&out);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("sound"), "{stdout}");

    // A hard link shares the live file's bytes: replace it, do not write
    // through it.
    let corrupted = out.join("uploads").join(&ids[0]);
    std::fs::remove_file(&corrupted).unwrap();
    std::fs::write(&corrupted, b"a.tx!").unwrap();
    std::fs::remove_file(out.join("uploads").join(&ids[1])).unwrap();
    let mut manifest = manifest(&out);
    manifest["counts"]["users"] = 7.into();
    std::fs::write(out.join("manifest.json"), manifest.to_string()).unwrap();

    let (code, _, stderr) = verify(&out);
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        stderr.contains(&format!("file {}: its sha256 does not match", ids[0])),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("file {}: missing", ids[1])), "{stderr}");
    assert!(
        stderr.contains("users: the manifest says 7, the database has 1"),
        "{stderr}"
    );
    assert_eq!(
        server.get(&format!("/files/{}", ids[0]), &token).body,
        b"a.txt",
        "the live file is untouched"
    );

    // A backup that fails verification is not restored.
    let target = tempfile::tempdir().unwrap();
    let db = target.path().join("chat.db");
    assert_eq!(restore(&out, &db, &target.path().join("uploads")).0, Some(1));
    assert!(!db.exists());
}

#[test]
fn verify_reports_a_damaged_database() {
    let server = Server::start();
    server.user("ann");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup");
    assert_eq!(backup(&server, &out).0, Some(0));
    let db = out.join("chat.db");
    let mut bytes = std::fs::read(&db).unwrap();
    let len = bytes.len();
    bytes[len / 2..].fill(0xa5);
    std::fs::write(&db, bytes).unwrap();
    let (code, _, stderr) = verify(&out);
    assert_eq!(code, Some(1));
    assert!(stderr.lines().all(|line| line.starts_with("chat-server: ")), "{stderr}");
    assert!(stderr.contains("chat.db"), "{stderr}");
}

#[test]
fn restore_refuses_while_a_server_runs_on_the_database_and_works_once_it_stopped() {
    let mut server = Server::start();
    let token = server.user("ann");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup");
    assert_eq!(backup(&server, &out).0, Some(0));
    server.user("bob");
    let (code, _, stderr) = restore(&out, &server.db_path(), &server.uploads_dir());
    assert_eq!(code, Some(1));
    assert!(stderr.contains("a server is running"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(server.get("/me", &token).status, 200, "the running server is untouched");

    assert_eq!(server.stop(), Some(0));
    let (code, stdout, stderr) = restore(&out, &server.db_path(), &server.uploads_dir());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("restored "), "{stdout}");
    let restored = serve(server.dir());
    login(&restored, "ann");
    assert_eq!(restored.login("bob", PASSWORD).status, 401, "bob came after the backup");
}

#[test]
fn a_backup_is_refused_into_an_existing_directory_from_postgres_or_with_a_file_missing_and_leaves_nothing_behind() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).unwrap();
    let (code, _, stderr) = backup(&server, &existing);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("already exists"), "{stderr}");

    let out = dir.path().join("from-postgres");
    let (code, _, stderr) = chat_server(&[
        Path::new("backup"),
        Path::new("--db"),
        Path::new("postgres://chat@localhost/chat"),
        &out,
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 1);
    assert!(stderr.contains("pg_dump"), "{stderr}");

    let out = dir.path().join("from-nothing");
    let missing: PathBuf = dir.path().join("no-such.db");
    let (code, _, stderr) = chat_server(&[Path::new("backup"), Path::new("--db"), &missing, &out]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let token = server.user("ann");
    let id = server.upload(&token, "a.txt", b"bytes")["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = dir.path().join("wrong-uploads");
    let (db, wrong) = (server.db_path(), dir.path().join("elsewhere"));
    let (code, _, stderr) = chat_server(&[
        Path::new("backup"),
        Path::new("--db"),
        &db,
        Path::new("--uploads-dir"),
        &wrong,
        &out,
    ]);
    assert_eq!(code, Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("file {id} is named by the database but not in")),
        "{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["existing"], "no half-written backup is left behind");
}
