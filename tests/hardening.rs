//! The contract's *Hardening* rules that are not HTTP framing (that is
//! `rfc9112.rs`): files on disk private whatever the umask, one chat rate
//! per user however many sockets, invisible characters out of file names,
//! and no running out of file descriptors.

mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::ws::{handshake, is, Client};
use common::{Confine, Server};

const BOUNDARY: &str = "hardening-boundary";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn with_suffix(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

#[test]
fn the_database_its_journal_and_the_uploads_are_private_whatever_the_umask() {
    let server = Server::start_confined(
        &[],
        Confine {
            umask: Some(0),
            ..Confine::default()
        },
    );
    let token = server.user("private");
    let file = server.upload(&token, "notes.txt", b"secret notes");
    let db = server.db_path();
    for path in [db.clone(), with_suffix(&db, "-wal"), with_suffix(&db, "-shm")] {
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert_eq!(mode(&server.uploads_dir()), 0o700);
    let stored = server.uploads_dir().join(file["id"].as_str().unwrap());
    assert_eq!(mode(&stored), 0o600);
}

#[test]
fn a_database_and_uploads_directory_open_to_others_are_narrowed_at_start() {
    let mut server = Server::start();
    server.user("before");
    assert_eq!(server.stop(), Some(0));
    let db = server.db_path();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(server.uploads_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = server.kill_and_restart();
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&server.uploads_dir()), 0o700);
    // Start-up's lines follow `listening on`; the reader may not have them yet.
    let logs = server.wait_for_log("narrowed to 0600");
    assert!(logs.contains("narrowed to 0600"), "{logs}");
    // The data is still there.
    assert_eq!(server.login("before", common::PASSWORD).status, 200);
}

/// How many messages the room has stored.
fn stored_messages(server: &Server, token: &str) -> usize {
    let mut count = 0;
    loop {
        let page = server.get(&format!("/history?offset={count}&limit=100"), token).json();
        count += page["messages"].as_array().unwrap().len();
        if page["has_more"] != true {
            return count;
        }
    }
}

/// `sockets` connections of one user each send `each` messages at once and
/// wait until each is answered: stored (its broadcast copy comes back) or
/// refused with `rate_limited`. Returns how many the room stored, how long
/// that took, and how many were refused.
async fn flood_from_one_user(server: &Server, sockets: usize, each: usize) -> (usize, f64, usize) {
    let token = server.user("many");
    let mut clients = Vec::new();
    for _ in 0..sockets {
        clients.push(Client::connect(server, &token).await);
    }
    let started = Instant::now();
    let floods = clients.into_iter().enumerate().map(|(socket, mut client)| async move {
        let mine = format!("socket {socket} ");
        for i in 0..each {
            client.say(&format!("{mine}{i}")).await;
        }
        let (mut stored, mut refused) = (0, 0);
        while stored + refused < each {
            let event = client.event().await;
            if is(&event, "error") && event["code"] == "rate_limited" {
                refused += 1;
            } else if is(&event, "message") && event["content"].as_str().unwrap().starts_with(&mine) {
                stored += 1;
            }
        }
        refused
    });
    let refused: usize = futures_util::future::join_all(floods).await.into_iter().sum();
    let elapsed = started.elapsed().as_secs_f64();
    (stored_messages(server, &token), elapsed, refused)
}

#[tokio::test]
async fn one_user_with_many_sockets_cannot_pass_the_user_rate() {
    // Each connection alone may burst 40: what stops the user is the bucket
    // its connections share (50 a second, burst 100).
    let server = Server::start_with(&["--ws-rate-limit=20"]);
    // Fewer than 10 each: however the refusals fall, none reaches the
    // strikes that close a connection.
    let (stored, elapsed, refused) = flood_from_one_user(&server, 20, 7).await;
    let allowed = 100.0 + 50.0 * elapsed;
    assert!(
        (stored as f64) <= allowed.ceil(),
        "{stored} messages stored in {elapsed:.2} s, at most {allowed:.0} allowed"
    );
    assert!(stored >= 100, "the burst got through: {stored}");
    assert_eq!(stored + refused, 140, "every message was stored or refused");
}

#[tokio::test]
async fn ws_rate_limit_0_turns_the_user_rate_off_as_well() {
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let (stored, _, refused) = flood_from_one_user(&server, 10, 15).await;
    assert_eq!((stored, refused), (150, 0));
}

#[test]
fn bidi_controls_and_zero_width_characters_are_removed_from_file_names() {
    let server = Server::start();
    let token = server.user("names");
    let file = server.upload(&token, "invoice\u{202E}gpj.exe", b"MZ");
    assert_eq!(file["filename"], "invoicegpj.exe");
    let hidden = server.upload(&token, "\u{FEFF}a\u{200B}b\u{200F}c\u{2066}d\u{2069}.txt", b"x");
    assert_eq!(hidden["filename"], "abcd.txt");
    let listed = server.get("/files", &token).json();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filename"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"invoicegpj.exe") && names.contains(&"abcd.txt"),
        "{names:?}"
    );
    let download = server.get(file["download_url"].as_str().unwrap(), &token);
    assert_eq!(
        download.header("content-disposition"),
        Some("attachment; filename=\"invoicegpj.exe\"; filename*=UTF-8''invoicegpj.exe")
    );
}

/// Opens a connection whose receive buffer is a few KiB, sends `request` on
/// it and never reads: the server's side stays blocked writing.
fn slow_reader(server: &Server, request: &str) -> TcpStream {
    let mut stream = server.connect();
    let size: libc::c_int = 4096;
    // SAFETY: setsockopt reads one int through the pointer, a live local,
    // on a socket this function owns.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    stream.write_all(request.as_bytes()).unwrap();
    stream
}

/// `/healthz` on a fresh connection: 200, or 503 at the bound, within 3 s.
fn health_answers_promptly(server: &Server) -> u16 {
    let started = Instant::now();
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let response = common::read_response(&mut BufReader::new(stream), false).unwrap_or_else(|e| {
        panic!(
            "no answer to /healthz after {:?}: {e}\n{}",
            started.elapsed(),
            server.logs()
        )
    });
    assert!(matches!(response.status, 200 | 503), "{}", response.status);
    response.status
}

#[test]
fn under_a_low_open_file_limit_the_server_answers_503_and_never_runs_out() {
    let server = Server::start_confined(
        &[],
        Confine {
            open_files: Some(256),
            ..Confine::default()
        },
    );
    let token = server.user("hoarder");
    let file = server.upload(&token, "big.bin", &vec![7u8; 8 << 20]);
    let download = format!(
        "GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n",
        file["download_url"].as_str().unwrap()
    );
    let stalled_upload = format!(
        "POST /files/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: 100000\r\n\r\n\
         --{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"s\"\r\n\r\nsome bytes"
    );
    let chat = handshake(&server, &format!("/ws/chat?token={token}"), &[]);
    let mut held = Vec::new();
    for i in 0..350 {
        let request = match i % 7 {
            0 => &chat,
            1 => &stalled_upload,
            _ => &download,
        };
        held.push(slow_reader(&server, request));
        if i % 50 == 49 {
            health_answers_promptly(&server);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let statuses: Vec<u16> = (0..10).map(|_| health_answers_promptly(&server)).collect();
    assert!(statuses.contains(&503), "the bound was reached: {statuses:?}");
    let logs = server.logs();
    assert!(!logs.contains("Too many open files"), "{logs}");
    // Once the hoarder lets go, everyone is served again.
    drop(held);
    assert!(
        common::resources::eventually(Duration::from_secs(10), || health_answers_promptly(&server) == 200),
        "/healthz never answered 200 again"
    );
    // It said at start-up that the limit, not --max-connections (10 000),
    // bounds the connections.
    let logs = server.wait_for_log("open-file limit (256)");
    assert!(logs.contains("open-file limit (256)"), "{logs}");
}

/// A login's answer as a client saw it: its status, `Retry-After`, and
/// when it was sent and answered.
#[derive(Debug)]
struct Login {
    status: u16,
    retry_after: Option<String>,
    sent: Instant,
    answered: Instant,
}

/// Logs `username` in from `client` (a trusted proxy's `X-Forwarded-For`).
fn login_from(server: &Server, client: &str, username: &str, password: &str) -> Login {
    let body = format!("username={username}&password={}", password.replace(' ', "+"));
    let raw = format!(
        "POST /token HTTP/1.1\r\nHost: {}\r\nX-Forwarded-For: {client}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.addr,
        body.len()
    );
    let sent = Instant::now();
    let answer = server.raw(raw.as_bytes());
    Login {
        status: answer.status,
        retry_after: answer.header("retry-after").map(str::to_string),
        sent,
        answered: Instant::now(),
    }
}

#[test]
fn one_address_flooding_logins_cannot_make_another_address_wait() {
    // A cost high enough that a bcrypt is what a login's time is made of.
    let server = Server::start_with(&["--bcrypt-cost=10", "--login-throttle=0", "--trusted-proxy=127.0.0.1"]);
    assert_eq!(server.register("victim", common::PASSWORD).status, 201);
    // Twelve clients behind one address keep wrong-password logins coming,
    // while another address logs in three times.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (victim, flood) = std::thread::scope(|scope| {
        let flood: Vec<_> = (0..12)
            .map(|_| {
                scope.spawn(|| {
                    let mut answers = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        answers.push(login_from(&server, "198.51.100.1", "victim", "wrong password"));
                    }
                    answers
                })
            })
            .collect();
        let victim: Vec<Login> = (0..3)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(300));
                login_from(&server, "198.51.100.2", "victim", common::PASSWORD)
            })
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let flood: Vec<Login> = flood.into_iter().flat_map(|t| t.join().unwrap()).collect();
        (victim, flood)
    });

    // Each of the flood's 401s is a bcrypt that ran. Counting them, not
    // timing them, makes the test as strict on a busy machine as on an idle
    // one: the other address's login waited for the hash running when it
    // came (two, if one ended as it came), never for the flood's queue.
    for login in &victim {
        assert_eq!(login.status, 200, "{login:?}");
        let hashed_meanwhile = flood
            .iter()
            .filter(|f| f.status == 401 && f.answered > login.sent && f.answered < login.answered)
            .count();
        assert!(
            hashed_meanwhile <= 2,
            "the other address waited while {hashed_meanwhile} of the flood's logins were hashed"
        );
    }
    // The flood had at most four logins in at once: the rest were told to
    // come back in a second, without a bcrypt.
    let busy: Vec<_> = flood.iter().filter(|f| f.status == 429).collect();
    assert!(!busy.is_empty(), "{flood:?}");
    assert!(busy.iter().all(|f| f.retry_after.as_deref() == Some("1")), "{busy:?}");
    assert!(flood.iter().all(|f| [401, 429].contains(&f.status)), "{flood:?}");
    assert!(
        flood.iter().filter(|f| f.status == 401).count() >= 3,
        "the flood was hashed too"
    );
}
