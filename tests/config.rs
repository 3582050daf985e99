//! The command line and the environment: `--help`, refusal of bad values,
//! and settings taken from `CHAT_*` variables.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, PASSWORD};

/// The exit code, stdout and stderr of the binary run with `args` and `env`
/// (and no inherited `CHAT_*` variables), for runs that end by themselves.
fn run(args: &[OsString], env: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CHAT_") {
            command.env_remove(key);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = command
        .current_dir(dir.path())
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chat-server {args:?} did not exit by itself");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (output.status.code(), text(output.stdout), text(output.stderr))
}

fn args(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn assert_refused_in_one_line(args: &[OsString], env: &[(&str, &str)], mentions: &str) {
    let (code, stdout, stderr) = run(args, env);
    assert_eq!(code, Some(2), "{args:?} {env:?}: {stderr}");
    assert_eq!(stdout, "", "{args:?}");
    assert_eq!(stderr.lines().count(), 1, "{args:?} {env:?}: {stderr}");
    assert!(stderr.starts_with("chat-server: "), "{stderr}");
    assert!(stderr.contains(mentions), "{args:?} {env:?}: {stderr}");
}

#[test]
fn help_prints_the_settings_table_and_exits_0() {
    for flag in ["--help", "-h"] {
        let (code, stdout, stderr) = run(&args(&[flag]), &[]);
        assert_eq!(code, Some(0), "{stderr}");
        for name in [
            "--addr",
            "CHAT_ADDR",
            "--db",
            "CHAT_DB",
            "--uploads-dir",
            "CHAT_UPLOADS_DIR",
            "--jwt-secret",
            "CHAT_JWT_SECRET",
            "--token-ttl",
            "CHAT_TOKEN_TTL",
            "--bcrypt-cost",
            "CHAT_BCRYPT_COST",
            "--max-upload-bytes",
            "CHAT_MAX_UPLOAD_BYTES",
            "--allowed-origin",
            "CHAT_ALLOWED_ORIGINS",
            "--secure-cookies",
            "CHAT_SECURE_COOKIES",
            "--ws-rate-limit",
            "CHAT_WS_RATE_LIMIT",
            "--max-connections",
            "CHAT_MAX_CONNECTIONS",
            "--log",
            "CHAT_LOG",
            "127.0.0.1:8001",
            "chat_app.db",
            "1073741824",
            "10000",
        ] {
            assert!(stdout.contains(name), "{name} missing from:\n{stdout}");
        }
    }
    // Help wins over a bad value elsewhere.
    let (code, _, _) = run(&args(&["--help"]), &[("CHAT_LOG", "loud")]);
    assert_eq!(code, Some(0));
}

#[test]
fn bad_flags_and_values_exit_2_with_one_clear_line() {
    for (flags, mentions) in [
        (&["--bcrypt-cost=3"][..], "--bcrypt-cost"),
        (&["--bcrypt-cost", "many"], "--bcrypt-cost"),
        (&["--token-ttl=0"], "--token-ttl"),
        (&["--addr=nowhere"], "--addr"),
        (&["--log=loud"], "--log"),
        (&["--max-connections=0"], "--max-connections"),
        (&["--max-upload-bytes=-1"], "--max-upload-bytes"),
        (&["--ws-rate-limit=fast"], "--ws-rate-limit"),
        (&["--allowed-origin=evil.example"], "--allowed-origin"),
        (&["--jwt-secret=short"], "--jwt-secret"),
        (&["--db="], "--db"),
        (&["--db"], "--db"),
        (&["--secure-cookies=yes"], "--secure-cookies"),
        (&["--frobnicate"], "--frobnicate"),
        (&["--frobnicate=1"], "--frobnicate"),
        (&["serve"], "serve"),
        (&["--metrics-addr=nowhere"], "--metrics-addr"),
        (&["backup"], "backup"),
    ] {
        assert_refused_in_one_line(&args(flags), &[], mentions);
    }
    let not_utf8 = vec![OsString::from_vec(b"--db=\xff.db".to_vec())];
    assert_refused_in_one_line(&not_utf8, &[], "UTF-8");
}

#[test]
fn bad_environment_values_exit_2_naming_the_variable() {
    for (var, value) in [
        ("CHAT_ADDR", "nowhere"),
        ("CHAT_BCRYPT_COST", "99"),
        ("CHAT_TOKEN_TTL", "soon"),
        ("CHAT_LOG", "loud"),
        ("CHAT_SECURE_COOKIES", "maybe"),
        ("CHAT_ALLOWED_ORIGINS", "https://ok.example,evil"),
        ("CHAT_MAX_CONNECTIONS", "none"),
        ("CHAT_MAX_UPLOAD_BYTES", "1GB"),
        ("CHAT_WS_RATE_LIMIT", "-5"),
        ("CHAT_JWT_SECRET", "short"),
    ] {
        assert_refused_in_one_line(&[], &[(var, value)], var);
    }
}

#[test]
fn settings_are_read_from_the_environment() {
    let secret = "an environment secret, long enough";
    let server = Server::start_with_env(
        &[],
        &[
            ("CHAT_TOKEN_TTL", "77"),
            ("CHAT_SECURE_COOKIES", "1"),
            ("CHAT_JWT_SECRET", secret),
        ],
    );
    server.register("env", PASSWORD);
    let login = server.login("env", PASSWORD);
    assert_eq!(login.json()["expires_in"], 77);
    let cookie = login.header("set-cookie").unwrap();
    assert!(cookie.ends_with("; Max-Age=77; Secure"), "{cookie}");
    let token = login.json()["access_token"].as_str().unwrap().to_string();
    let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes());
    let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).expect("signed with the secret");
    assert_eq!(claims.claims["sub"], "env");
}

#[test]
fn flags_win_over_the_environment() {
    let server = Server::start_with_env(&["--token-ttl=88"], &[("CHAT_TOKEN_TTL", "77")]);
    server.register("both", PASSWORD);
    assert_eq!(server.login("both", PASSWORD).json()["expires_in"], 88);
}

#[test]
fn the_connection_bound_is_read_from_the_environment() {
    let server = Server::start_with_env(&[], &[("CHAT_MAX_CONNECTIONS", "1")]);
    let mut held = server.admitted();
    let mut refused = server.open();
    assert_eq!(refused.response().status, 503);
    held.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(held.response().status, 200);
}

#[test]
fn the_log_level_is_read_from_the_environment() {
    let mut server = Server::start_with_env(&[], &[("CHAT_LOG", "error")]);
    assert_eq!(server.request("GET", "/nope", None, None).status, 404);
    assert_eq!(server.stop(), Some(0));
    let logs = server.logs();
    assert!(!logs.contains("/nope"), "info lines logged at level error:\n{logs}");
    assert!(!logs.contains("INFO"), "{logs}");
}

#[test]
fn port_0_binds_an_ephemeral_port_announced_on_the_first_stderr_line() {
    // The harness reads the address from the first line and connects to it.
    let server = Server::start();
    assert_ne!(server.addr.port(), 0);
    assert_eq!(server.request("GET", "/healthz", None, None).status, 200);
}

/// A start that must fail: exit status 1 and one line on stderr, which is
/// returned.
fn assert_start_fails_in_one_line(flags: &[&str]) -> String {
    let (code, stdout, stderr) = run(&args(flags), &[]);
    assert_eq!(code, Some(1), "{flags:?}: {stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr.lines().count(), 1, "{flags:?}: {stderr}");
    assert!(stderr.starts_with("chat-server: "), "{stderr}");
    stderr
}

#[test]
fn a_database_that_cannot_be_opened_stops_the_start_with_a_clear_line() {
    let stderr = assert_start_fails_in_one_line(&["--addr=127.0.0.1:0", "--db=/nonexistent/dir/chat.db"]);
    assert!(stderr.starts_with("chat-server: cannot open storage"), "{stderr}");
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
    let stderr = assert_start_fails_in_one_line(&["--addr=127.0.0.1:0", &format!("--db={}", garbage.display())]);
    assert!(stderr.starts_with("chat-server: cannot open storage"), "{stderr}");
}

#[test]
fn an_uploads_directory_that_cannot_be_created_stops_the_start_with_a_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let db = format!("--db={}", dir.path().join("chat.db").display());
    let uploads = format!("--uploads-dir={}", file.join("uploads").display());
    let stderr = assert_start_fails_in_one_line(&["--addr=127.0.0.1:0", &db, &uploads]);
    assert!(stderr.contains("uploads directory"), "{stderr}");
}

#[test]
fn an_address_in_use_stops_the_start_with_a_line_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    for flags in [
        vec![format!("--addr={addr}")],
        vec!["--addr=127.0.0.1:0".to_string(), format!("--metrics-addr={addr}")],
    ] {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let stderr = assert_start_fails_in_one_line(&flags);
        assert!(
            stderr.starts_with(&format!("chat-server: cannot listen on {addr}: ")),
            "{stderr}"
        );
    }
}

#[test]
fn version_prints_the_name_and_version() {
    let (code, stdout, _) = run(&args(&["--version"]), &[]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout, format!("chat-server {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn listening_on_comes_first_and_only_once_the_server_answers() {
    // A file without a record left in the uploads directory: removing it logs
    // a line during start-up, which still comes after `listening on`.
    let dir = tempfile::tempdir().unwrap();
    let uploads = dir.path().join("uploads");
    std::fs::create_dir(&uploads).unwrap();
    std::fs::write(uploads.join("0123456789abcdef0123456789abcdef"), b"orphan").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_chat-server"))
        .args(["--addr=127.0.0.1:0", "--bcrypt-cost=4"])
        .arg(format!("--db={}", dir.path().join("chat.db").display()))
        .arg(format!("--uploads-dir={}", uploads.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    let addr = first
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{first:?}"));
    // No retry: the first request after the line is answered.
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let response = common::read_response(&mut std::io::BufReader::new(stream), false).unwrap();
    assert_eq!(response.status, 200);
    // What start-up logged comes after the line (the uploads directory
    // narrowed to 0700 first, then the sweep), and no second `listening`.
    let mut later = Vec::new();
    while !later
        .iter()
        .any(|line: &String| line.contains("1 file(s) without a record"))
    {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
        assert!(!line.is_empty() && later.len() < 5, "{later:?}");
        later.push(line);
    }
    assert!(!later.iter().any(|line| line.contains("listening on")), "{later:?}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_database_held_by_a_restore_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("chat.db");
    let lock = std::fs::File::create(dir.path().join("chat.db.lock")).unwrap();
    // SAFETY: flock on a descriptor `lock` keeps open.
    let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    assert_eq!(locked, 0);
    let stderr = assert_start_fails_in_one_line(&["--addr=127.0.0.1:0", &format!("--db={}", db.display())]);
    assert!(stderr.contains("a restore holds the database"), "{stderr}");
    drop(lock);
}
