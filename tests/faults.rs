//! Faults of the machine under the real server: storage that stops taking
//! writes, the connection bound reached, peers that vanish mid-response. The
//! server must answer each with its status (never hang or crash), keep what
//! it can going, hold on to no resource, and recover by itself once the fault
//! is lifted. (A full uploads disk is covered in `files.rs`.)

mod common;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::resources::{eventually, memory_kib, open_fds};
use common::ws::{is, Client};
use common::{is_closed, read_response, Response, Server};

const BOUNDARY: &str = "fault-boundary";

fn upload(server: &Server, token: &str, content: &[u8]) -> Response {
    let mut body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.bin\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    server.request("POST", "/files/upload", Some(token), Some((&content_type, &body)))
}

fn healthz(server: &Server) -> Response {
    server.request("GET", "/healthz", None, None)
}

fn assert_unavailable(response: &Response) {
    assert_eq!(response.status, 503, "{}", response.text());
    assert!(
        response.detail().contains("database is unavailable"),
        "{}",
        response.detail()
    );
}

/// Everything works again, with no restart: registration, uploads, health.
fn assert_recovered(server: &Server, name: &str) {
    assert_eq!(server.register(name, common::PASSWORD).status, 201);
    let token = server.login(name, common::PASSWORD).json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(upload(server, &token, b"after the fault").status, 201);
    assert_eq!(healthz(server).status, 200);
}

/// Files made immutable (`chattr +i`) for as long as this lives. Root may
/// write to a file whatever its mode bits say, but not to an immutable one,
/// not even through a descriptor it opened before: every write the server
/// makes to the database or its log fails with `EPERM`, which SQLite reports
/// as an I/O error, exactly as on a file system remounted read-only.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    fn set(paths: &[PathBuf]) -> Result<Immutable, String> {
        let output = Command::new("chattr")
            .arg("+i")
            .args(paths)
            .output()
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
        }
        Ok(Immutable(paths.to_vec()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").args(&self.0).status();
    }
}

fn database_files(db: &Path) -> Vec<PathBuf> {
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    vec![db.to_path_buf(), wal]
}

#[tokio::test]
#[ignore = "needs root, for chattr +i (bash .ci/run runs it)"]
async fn read_only_database_is_503_and_the_server_recovers_by_itself() {
    let server = Server::start();
    let token = server.user("alice");
    let mut alice = Client::join(&server, &token, "alice").await;
    let read_only = Immutable::set(&database_files(&server.db_path()))
        .unwrap_or_else(|reason| panic!("cannot make the database immutable with chattr ({reason})"));
    alice.say("cannot be stored").await;
    let (events, code) = alice.closed().await;
    assert_eq!(code, 1011);
    assert_eq!(events.last().unwrap()["code"], "internal_error");
    assert!(!events.iter().any(|e| is(e, "message")), "a message was acknowledged");
    assert_unavailable(&server.register("bob", common::PASSWORD));
    assert_unavailable(&healthz(&server));
    assert_unavailable(&upload(&server, &token, b"no row, so no bytes either"));
    // What needs no write is still served.
    assert_eq!(server.get("/me", &token).status, 200);
    assert_eq!(server.get("/files", &token).json(), serde_json::json!([]));
    let no_leftovers = eventually(Duration::from_secs(10), || server.stored_files().is_empty());
    assert!(
        no_leftovers,
        "an upload refused for want of a row left its bytes behind"
    );
    drop(read_only);
    assert_recovered(&server, "carol");
    let mut alice = Client::join(&server, &token, "alice").await;
    let id = alice.post("alice", "stored again").await;
    let history = server.get("/history/last20", &token).json();
    assert_eq!(history[0]["id"], id);
    assert_eq!(history.as_array().unwrap().len(), 1);
}

/// Another process (here the test, through its own SQLite connection) holds
/// an exclusive transaction on the database, as a backup tool or an
/// operator's `sqlite3` shell might. Writes wait out the server's busy
/// timeout (5 s) and are then refused with 503; reads go on.
#[test]
fn database_locked_by_another_process_is_503_and_the_server_recovers_by_itself() {
    let server = Server::start();
    let token = server.user("alice");
    let locker = rusqlite::Connection::open(server.db_path()).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    std::thread::scope(|scope| {
        let register = scope.spawn(|| server.register("bob", common::PASSWORD));
        let health = scope.spawn(|| healthz(&server));
        let upload = scope.spawn(|| upload(&server, &token, b"waits for the lock"));
        assert_eq!(
            server.get("/me", &token).status,
            200,
            "reads must not wait for the lock"
        );
        assert_unavailable(&register.join().unwrap());
        assert_unavailable(&health.join().unwrap());
        assert_unavailable(&upload.join().unwrap());
    });
    locker.execute_batch("COMMIT").unwrap();
    drop(locker);
    assert_recovered(&server, "carol");
    let listed = server.get("/files", &token).json();
    assert!(
        listed.as_array().unwrap().is_empty(),
        "the refused upload left a row: {listed}"
    );
}

/// A keep-alive connection that has been served once, so it certainly holds
/// one of the server's connection permits.
fn held_connection(server: &Server) -> Option<BufReader<TcpStream>> {
    let mut stream = server.connect();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let response = read_response(&mut reader, false).ok()?;
    (response.status == 200).then_some(reader)
}

fn ask_again(connection: &mut BufReader<TcpStream>) -> Response {
    connection
        .get_mut()
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    read_response(connection, false).unwrap()
}

/// A chat connection, retried while earlier connections of the test are
/// still giving back their permits.
async fn chat_client(server: &Server, token: &str, name: &str) -> Client {
    let url = format!("ws://{}/ws/chat?token={token}", server.addr);
    for _ in 0..500 {
        if let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await {
            let mut client = Client { ws };
            client.wait_for(|e| is(e, "join") && e["username"] == name).await;
            return client;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no chat connection for {name}");
}

#[tokio::test]
async fn at_the_connection_bound_new_connections_get_503_while_existing_chats_go_on() {
    const BOUND: usize = 4;
    let server = Server::start_with(&[&format!("--max-connections={BOUND}")]);
    let (ann_token, bob_token) = (server.user("ann"), server.user("bob"));
    let mut ann = chat_client(&server, &ann_token, "ann").await;
    let mut bob = chat_client(&server, &bob_token, "bob").await;
    let mut held = Vec::new();
    let filled = eventually(Duration::from_secs(10), || {
        if let Some(connection) = held_connection(&server) {
            held.push(connection);
        }
        held.len() == BOUND - 2
    });
    assert!(filled, "could not fill the connection bound");
    for _ in 0..3 {
        let mut refused = server.connect();
        refused.write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        let response = read_response(&mut BufReader::new(refused.try_clone().unwrap()), false).unwrap();
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(response.detail().contains("connection limit"), "{}", response.detail());
        assert!(
            is_closed(&mut refused, Duration::from_secs(5)),
            "refused connection left open"
        );
    }
    let id = ann.post("ann", "still chatting at the bound").await;
    let seen = bob.wait_for(|e| is(e, "message") && e["id"] == id).await;
    assert_eq!(seen["content"], "still chatting at the bound");
    for connection in &mut held {
        assert_eq!(ask_again(connection).status, 200);
    }
    drop(held.pop());
    let readmitted = eventually(Duration::from_secs(10), || held_connection(&server).is_some());
    assert!(readmitted, "a freed permit was not given to a new connection");
    bob.post("bob", "and after").await;
    ann.wait_for(|e| is(e, "message") && e["content"] == "and after").await;
}

/// Closes `stream` with a reset (`SO_LINGER` 0) instead of an orderly FIN,
/// as a peer that crashed or lost its network does.
fn reset(stream: TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setting a socket option on a descriptor this function owns.
    let set = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "SO_LINGER");
    drop(stream);
}

#[test]
fn peers_that_reset_mid_download_leak_no_descriptor_or_memory() {
    let server = Server::start();
    let token = server.user("alice");
    let content = vec![0x5a; 16 << 20];
    let uploaded = upload(&server, &token, &content);
    assert_eq!(uploaded.status, 201, "{}", uploaded.text());
    let path = uploaded.json()["download_url"].as_str().unwrap().to_string();
    let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\n\r\n");
    // One whole download first, so that whatever the server sets up once
    // (threads, buffers) is part of the baseline.
    assert!(server.get(&path, &token).body == content);
    let pid = server.pid();
    let fds = open_fds(pid);
    let resting = memory_kib(pid, "VmRSS");
    for _ in 0..20 {
        let mut stream = server.connect();
        stream.write_all(request.as_bytes()).unwrap();
        let mut some = vec![0u8; 256 * 1024];
        stream.read_exact(&mut some).unwrap();
        reset(stream);
    }
    let released = eventually(Duration::from_secs(10), || open_fds(pid) <= fds);
    assert!(released, "descriptors: {} before, {} after", fds, open_fds(pid));
    let rss = memory_kib(pid, "VmRSS");
    assert!(
        rss < resting + 32 * 1024,
        "resident memory {rss} KiB, {resting} KiB before"
    );
    assert_eq!(healthz(&server).status, 200);
}
