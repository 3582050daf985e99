//! Shared by the integration tests: starts the real `chat-server` binary on
//! an ephemeral port against a fresh SQLite file in a temp dir, and speaks
//! raw HTTP/1.1 to it over TCP.
#![allow(dead_code)] // each test file uses its own subset of these helpers

pub(crate) mod nginx;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod webdriver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) mod resources;
pub(crate) mod ws;

pub(crate) const PASSWORD: &str = "correct horse";

/// Fails a test that needs a tool outside Cargo (a browser, a Python
/// package) when the tool is missing. Such tests are `#[ignore]`d, so a
/// plain `cargo test` reports them as ignored rather than passing them
/// untried; they run when asked for (`cargo test -- --include-ignored`, as
/// `.ci/run` does after installing the tools), and then a missing tool is a
/// failure that says what to install.
pub(crate) fn missing_tool(tool: &str, install: &str) -> ! {
    panic!("{tool} is not available: {install} (bash .ci/run installs it)");
}

/// What the server process is started under instead of what it inherits
/// from the test: a umask, and an open-file limit (soft and hard).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Confine {
    pub umask: Option<libc::mode_t>,
    pub open_files: Option<libc::rlim_t>,
}

/// A running server process. Killed when dropped; its temp dir goes with it.
pub(crate) struct Server {
    pub addr: SocketAddr,
    child: Child,
    /// With `CHAT_TEST_POSTGRES`, the cluster's other node.
    companion: Option<Child>,
    logs: Arc<Mutex<String>>,
    /// Copies stderr into `logs` until the process exits.
    log_reader: Option<std::thread::JoinHandle<()>>,
    dir: Arc<tempfile::TempDir>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    confine: Confine,
}

impl Server {
    pub(crate) fn start() -> Server {
        Server::start_with(&[])
    }

    /// Starts with extra flags (they win over the test defaults).
    pub(crate) fn start_with(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// Starts with extra flags and environment variables. The test defaults
    /// are passed as environment variables, so `env` can replace any of them
    /// (and flags win over both, as in production).
    pub(crate) fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let args = args.iter().map(|s| s.to_string()).collect();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Server::spawn(dir, args, env, Confine::default())
    }

    /// Starts with extra flags, under `confine` (kept across restarts).
    pub(crate) fn start_confined(args: &[&str], confine: Confine) -> Server {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let args = args.iter().map(|s| s.to_string()).collect();
        Server::spawn(dir, args, Vec::new(), confine)
    }

    fn spawn(dir: Arc<tempfile::TempDir>, args: Vec<String>, env: Vec<(String, String)>, confine: Confine) -> Server {
        let own_db = args.iter().any(|arg| arg.starts_with("--db")) || env.iter().any(|(key, _)| key == "CHAT_DB");
        let cluster = if own_db { None } else { cluster_database(dir.path()) };
        let mut child = command(dir.path(), &args, &env, confine, cluster.as_deref())
            .spawn()
            .expect("start chat-server");
        // The second node of the cluster: it serves the same room from the
        // same database and uploads, and must not disturb what the first
        // one is tested for.
        let companion = cluster.map(|url| {
            let mut companion = command(dir.path(), &args, &env, confine, Some(&url))
                .spawn()
                .expect("start the second node");
            let mut stderr = BufReader::new(companion.stderr.take().unwrap());
            let mut first = String::new();
            stderr.read_line(&mut first).expect("read the second node's first line");
            assert!(first.starts_with("listening on"), "second node: {first}");
            std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
            companion
        });
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        stderr.read_line(&mut first).expect("read first stderr line");
        let addr = first
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .parse()
            .expect("bound address");
        let logs = Arc::new(Mutex::new(String::new()));
        let sink = logs.clone();
        let log_reader = std::thread::spawn(move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let server = Server {
            addr,
            child,
            companion,
            logs,
            log_reader: Some(log_reader),
            dir,
            args,
            env,
            confine,
        };
        server.wait_until_ready();
        server
    }

    fn wait_until_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(resp) = self.try_request("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n") {
                if resp.status == 200 {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server did not become ready; logs:\n{}", self.logs());
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn uploads_dir(&self) -> PathBuf {
        self.dir.path().join("uploads")
    }

    /// The names of the entries in the uploads directory, sorted; in
    /// cluster mode without the cluster's marker file, which is there from
    /// the first start on.
    pub(crate) fn stored_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.uploads_dir())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| self.companion.is_none() || name != ".chat-cluster")
            .collect();
        names.sort();
        names
    }

    pub(crate) fn db_path(&self) -> PathBuf {
        self.dir.path().join("chat.db")
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything the server wrote to stderr after its first line.
    pub(crate) fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until the logs contain `needle` (log lines are written after
    /// the response, so a test may see the response first).
    pub(crate) fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let logs = self.logs();
            if logs.contains(needle) || Instant::now() > deadline {
                return logs;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.pid(), signal);
        }
    }

    /// Waits for the process to exit and returns its exit code.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Stops the server with SIGTERM and waits for it to exit; returns the
    /// exit code. Afterwards [`Server::logs`] holds everything it wrote.
    pub(crate) fn stop(&mut self) -> Option<i32> {
        self.signal(libc::SIGTERM);
        self.wait_for_exit()
    }

    /// Waits (up to well past the shutdown grace period) for the process to
    /// exit and for its last log lines to be collected.
    pub(crate) fn wait_for_exit(&mut self) -> Option<i32> {
        let code = self.wait_exit(Duration::from_secs(15));
        if code.is_some() {
            if let Some(reader) = self.log_reader.take() {
                let _ = reader.join();
            }
        }
        code
    }

    /// SIGKILLs the server and starts a new one on the same files.
    pub(crate) fn kill_and_restart(mut self) -> Server {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        Server::spawn(self.dir.clone(), self.args.clone(), self.env.clone(), self.confine)
    }

    /// Stops the server gracefully (SIGTERM) and starts a new one on the same files.
    pub(crate) fn restart(mut self) -> Server {
        assert_eq!(self.stop(), Some(0), "graceful exit");
        Server::spawn(self.dir.clone(), self.args.clone(), self.env.clone(), self.confine)
    }

    /// Stops the server gracefully, runs `while_down`, and starts a new one
    /// on the same files and the same address, as a deploy does: clients
    /// find it again at the address they knew.
    pub(crate) fn restart_in_place(mut self, while_down: impl FnOnce()) -> Server {
        assert_eq!(self.stop(), Some(0), "graceful exit");
        while_down();
        let mut args = self.args.clone();
        args.push(format!("--addr={}", self.addr));
        Server::spawn(self.dir.clone(), args, self.env.clone(), self.confine)
    }

    pub(crate) fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
    }

    /// A kept-alive connection to send several requests on.
    pub(crate) fn open(&self) -> Conn {
        Conn::new(self.connect())
    }

    /// Opens a connection and waits until the server admits it: under
    /// `--max-connections`, the place of a closed connection is freed only
    /// once the server has finished with it.
    pub(crate) fn admitted(&self) -> Conn {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut conn = self.open();
            conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
            if conn.response().status == 200 {
                return conn;
            }
            assert!(Instant::now() < deadline, "no connection was ever admitted");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn try_request(&self, raw: &str) -> std::io::Result<Response> {
        let mut stream = TcpStream::connect(self.addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(raw.as_bytes())?;
        read_response(&mut BufReader::new(stream), false)
    }

    /// Sends raw bytes on a new connection and reads one response.
    pub(crate) fn raw(&self, bytes: &[u8]) -> Response {
        let mut stream = self.connect();
        stream.write_all(bytes).expect("write request");
        read_response(&mut BufReader::new(stream), false).expect("read response")
    }

    /// A request with optional bearer token and body, on a new connection.
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> Response {
        let bearer: Vec<String> = token
            .map(|t| format!("Authorization: Bearer {t}"))
            .into_iter()
            .collect();
        self.send(method, path, &bearer, body)
    }

    /// A request with extra header lines and an optional body (its content
    /// type and bytes), on a new connection.
    pub(crate) fn send(&self, method: &str, path: &str, headers: &[String], body: Option<(&str, &[u8])>) -> Response {
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.addr
        );
        for line in headers {
            head.push_str(line);
            head.push_str("\r\n");
        }
        let mut bytes = Vec::new();
        match body {
            Some((content_type, body)) => {
                head.push_str(&format!(
                    "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                ));
                bytes.extend_from_slice(head.as_bytes());
                bytes.extend_from_slice(body);
            }
            None => {
                head.push_str("\r\n");
                bytes.extend_from_slice(head.as_bytes());
            }
        }
        let mut stream = self.connect();
        stream.write_all(&bytes).expect("write request");
        read_response(&mut BufReader::new(stream), method == "HEAD").expect("read response")
    }

    /// A bodiless request with an optional bearer token and extra header
    /// lines, on a new connection.
    pub(crate) fn request_with_headers(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Response {
        let lines: Vec<String> = token
            .map(|t| format!("Authorization: Bearer {t}"))
            .into_iter()
            .chain(headers.iter().map(|(name, value)| format!("{name}: {value}")))
            .collect();
        self.send(method, path, &lines, None)
    }

    pub(crate) fn get(&self, path: &str, token: &str) -> Response {
        self.request("GET", path, Some(token), None)
    }

    pub(crate) fn register(&self, username: &str, password: &str) -> Response {
        let body = serde_json::json!({ "username": username, "password": password }).to_string();
        self.request("POST", "/register", None, Some(("application/json", body.as_bytes())))
    }

    pub(crate) fn login(&self, username: &str, password: &str) -> Response {
        let body = format!("username={username}&password={}", password.replace(' ', "+"));
        self.request(
            "POST",
            "/token",
            None,
            Some(("application/x-www-form-urlencoded", body.as_bytes())),
        )
    }

    /// Uploads `content` as `filename` (one `file` part, `text/plain`) and
    /// returns the created file's description.
    pub(crate) fn upload(&self, token: &str, filename: &str, content: &[u8]) -> serde_json::Value {
        let boundary = "----common-upload-boundary";
        let mut body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
             Content-Type: text/plain\r\n\r\n"
        )
        .into_bytes();
        body.extend_from_slice(content);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={boundary}");
        let response = self.request("POST", "/files/upload", Some(token), Some((&content_type, &body)));
        assert_eq!(response.status, 201, "upload {filename}: {}", response.text());
        response.json()
    }

    /// Registers `username` with [`PASSWORD`] and returns a fresh token.
    pub(crate) fn user(&self, username: &str) -> String {
        let registered = self.register(username, PASSWORD);
        assert_eq!(registered.status, 201, "register {username}: {}", registered.text());
        let login = self.login(username, PASSWORD);
        assert_eq!(login.status, 200, "login {username}: {}", login.text());
        login.json()["access_token"].as_str().unwrap().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for child in std::iter::once(&mut self.child).chain(self.companion.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The server process on `dir`'s files with the test defaults, `args` and
/// `env`, under `confine`; on the PostgreSQL database `cluster` if given.
fn command(dir: &Path, args: &[String], env: &[(String, String)], confine: Confine, cluster: Option<&str>) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_chat-server"));
    // SAFETY: between fork and exec the hook makes only async-signal-safe
    // system calls (umask, setrlimit) and allocates nothing.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(move || {
            if let Some(mask) = confine.umask {
                libc::umask(mask);
            }
            if let Some(limit) = confine.open_files {
                let limit = libc::rlimit {
                    rlim_cur: limit,
                    rlim_max: limit,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    // Settings inherited from the shell running the tests must not leak in.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CHAT_") {
            command.env_remove(key);
        }
    }
    let db = match cluster {
        Some(url) => url.into(),
        None => dir.join("chat.db").into_os_string(),
    };
    command
        .env("CHAT_ADDR", "127.0.0.1:0")
        .env("CHAT_DB", db)
        .env("CHAT_UPLOADS_DIR", dir.join("uploads"))
        .env("CHAT_BCRYPT_COST", "4")
        .env("CHAT_LOG", "debug")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// The acceptance suite in cluster mode (`.ci/run`): with
/// `CHAT_TEST_POSTGRES` set to a PostgreSQL server's URL (without a
/// database), every test server is one node of a two-node cluster, on a
/// database of its own named after its temp dir (created at its first
/// start, kept across its restarts).
fn cluster_database(dir: &Path) -> Option<String> {
    let server = std::env::var("CHAT_TEST_POSTGRES").ok()?;
    let name: String = dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase();
    let name = format!("chat_{name}");
    let exists = Command::new("psql")
        .args(["-qtA", "-d", &format!("{server}/postgres"), "-c"])
        .arg(format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"))
        .output()
        .expect("psql");
    if String::from_utf8_lossy(&exists.stdout).trim() != "1" {
        let created = Command::new("psql")
            .args(["-q", "-d", &format!("{server}/postgres"), "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .status()
            .expect("psql");
        assert!(created.success(), "cannot create the database {name}");
    }
    Some(format!("{server}/{name}"))
}

/// Lower-case hex SHA-256, as the server reports it.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `detail` of a JSON error body.
    pub(crate) fn detail(&self) -> String {
        self.json()["detail"].as_str().unwrap_or_default().to_string()
    }
}

/// Reads one response; the body is framed by `Content-Length`, or runs to the
/// end of the stream when there is none. `head_only` for responses to HEAD.
pub(crate) fn read_response(reader: &mut impl BufRead, head_only: bool) -> std::io::Result<Response> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':').unwrap();
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || matches!(status, 100..=199 | 204 | 304) {
        return Ok(response);
    }
    match response.header("content-length").map(|v| v.parse::<usize>().unwrap()) {
        Some(len) => {
            response.body.resize(len, 0);
            reader.read_exact(&mut response.body)?;
        }
        None => {
            reader.read_to_end(&mut response.body)?;
        }
    }
    Ok(response)
}

/// One connection used for several requests: raw bytes out, responses in
/// order.
pub(crate) struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream) -> Conn {
        Conn {
            reader: BufReader::new(stream),
        }
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) {
        let stream = self.reader.get_mut();
        stream.write_all(bytes).expect("write request");
        stream.flush().expect("flush request");
    }

    /// Reads the next response (to a request other than HEAD).
    pub(crate) fn response(&mut self) -> Response {
        read_response(&mut self.reader, false).expect("read response")
    }

    /// Reads the next response to a HEAD request (a head, no body).
    pub(crate) fn head_response(&mut self) -> Response {
        read_response(&mut self.reader, true).expect("read response")
    }

    /// Whether the server closes the connection with nothing more to read.
    pub(crate) fn is_closed(&mut self) -> bool {
        self.reader.buffer().is_empty() && is_closed(self.reader.get_mut(), Duration::from_secs(5))
    }
}

/// Whether the peer closes the connection within `within` (EOF or reset;
/// a timeout or more data is not a close).
pub(crate) fn is_closed(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}
