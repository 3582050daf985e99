//! A small W3C WebDriver client for the browser tests: starts `chromedriver`
//! on an ephemeral port, opens headless Chromium sessions through it, and
//! speaks the protocol (JSON over HTTP/1.1) with blocking std sockets.
//!
//! Only the commands the tests use are here. Every wait is bounded polling
//! of a condition ([`Session::wait_for`], [`Session::find`]), never a fixed
//! sleep, so a slow machine makes a test slower, not red.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a page may take to reach a condition before the test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// The Enter key, as WebDriver's "send keys" spells it.
pub(crate) const ENTER: &str = "\u{E007}";

/// The bound on one WebDriver command; starting a browser or loading a page
/// on a busy machine can take several seconds.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// The key under which W3C WebDriver returns an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Browser tests take turns: starting browsers is heavy, and several at once
/// on a small machine would only push the bounded waits towards their limit.
static ONE_BROWSER_TEST_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A running chromedriver. Killed when dropped, after the sessions that
/// borrow it have closed their browsers.
pub(crate) struct Chromedriver {
    child: Child,
    port: u16,
    _turn: MutexGuard<'static, ()>,
}

impl Chromedriver {
    /// Starts chromedriver; fails the test when Chromium or chromedriver
    /// is not installed.
    pub(crate) fn start() -> Chromedriver {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(tool).exists() {
                super::missing_tool(tool, "install Debian's chromium and chromium-driver");
            }
        }
        // A test that failed while holding the turn poisons the lock; the
        // next test can still go.
        let turn = ONE_BROWSER_TEST_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let stdout = child.stdout.take().unwrap();
        let mut driver = Chromedriver {
            child,
            port: 0,
            _turn: turn,
        };
        // With port 0 chromedriver picks a free port and prints it. The
        // thread reads to the end so that chromedriver never blocks on a
        // full pipe.
        let (found, port) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let _ = found.send(rest.trim_end_matches('.').parse::<u16>());
                }
            }
        });
        driver.port = match port.recv_timeout(PATIENCE) {
            Ok(Ok(port)) => port,
            other => panic!("chromedriver did not report its port: {other:?}"),
        };
        driver
    }

    /// Opens a headless Chromium with a fresh profile of its own, so two
    /// sessions share no cookies.
    pub(crate) fn session(&self) -> Session<'_> {
        self.session_with(&[])
    }

    /// [`Chromedriver::session`] with extra command-line switches.
    pub(crate) fn session_with(&self, extra: &[String]) -> Session<'_> {
        let profile = tempfile::tempdir().expect("browser profile dir");
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-quic".to_string(),
            "--no-first-run".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--window-size=1280,900".to_string(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.extend_from_slice(extra);
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
                    "goog:loggingPrefs": { "browser": "ALL" },
                }
            }
        });
        let created = self
            .call("POST", "/session", &capabilities)
            .unwrap_or_else(|e| panic!("start a browser: {e}"));
        Session {
            driver: self,
            id: created["sessionId"].as_str().expect("session id").to_string(),
            _profile: profile,
        }
    }

    /// One command: `Ok(value)` on success, `Err` with the WebDriver error.
    fn call(&self, method: &str, path: &str, body: &Value) -> Result<Value, WebDriverError> {
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to chromedriver");
        stream.set_read_timeout(Some(COMMAND_TIMEOUT)).unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json; charset=utf-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("send to chromedriver");
        stream.write_all(body.as_bytes()).expect("send to chromedriver");
        let response = super::read_response(&mut BufReader::new(stream), false)
            .unwrap_or_else(|e| panic!("{method} {path}: no answer from chromedriver: {e}"));
        let mut reply: Value = serde_json::from_slice(&response.body).unwrap_or_else(|e| {
            panic!(
                "{method} {path}: chromedriver answered non-JSON ({e}): {}",
                response.text()
            )
        });
        let value = reply["value"].take();
        if response.status == 200 {
            return Ok(value);
        }
        Err(WebDriverError {
            error: value["error"].as_str().unwrap_or("unknown error").to_string(),
            message: value["message"].as_str().unwrap_or_default().to_string(),
        })
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
pub(crate) struct WebDriverError {
    /// The W3C error code, e.g. `no such element`.
    pub error: String,
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// One browser. Closed (browser quit, profile deleted) when dropped.
pub(crate) struct Session<'d> {
    driver: &'d Chromedriver,
    id: String,
    _profile: tempfile::TempDir,
}

impl Session<'_> {
    fn call(&self, method: &str, command: &str, body: Value) -> Result<Value, WebDriverError> {
        self.driver
            .call(method, &format!("/session/{}{command}", self.id), &body)
    }

    fn command(&self, method: &str, command: &str, body: Value) -> Value {
        self.call(method, command, body)
            .unwrap_or_else(|e| panic!("{method} {command}: {e}"))
    }

    /// Loads `url` and returns when the page has loaded (scripts with
    /// `defer` have run, what they fetch may still be on its way).
    pub(crate) fn goto(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url }));
    }

    /// Runs `script` as a function body with `args` as `arguments`; a
    /// returned promise is awaited.
    pub(crate) fn script(&self, script: &str, args: &[Value]) -> Value {
        self.command("POST", "/execute/sync", json!({ "script": script, "args": args }))
    }

    /// Runs `script` until it returns something other than `null`, `false`
    /// or `undefined`, and returns that; fails after [`PATIENCE`] with
    /// `what` and the text the page shows.
    pub(crate) fn wait_for(&self, what: &str, script: &str, args: &[Value]) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.script(script, args);
            if !matches!(value, Value::Null | Value::Bool(false)) {
                return value;
            }
            if Instant::now() > deadline {
                let text = self.script("return document.body ? document.body.innerText : ''", &[]);
                panic!(
                    "waited {PATIENCE:?} for {what}; the page shows:\n{}",
                    text.as_str().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The first element matching the CSS `selector`, waiting for it to exist.
    pub(crate) fn find(&self, selector: &str) -> Element<'_> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match self.call(
                "POST",
                "/element",
                json!({ "using": "css selector", "value": selector }),
            ) {
                Ok(found) => {
                    let id = found[ELEMENT_KEY]
                        .as_str()
                        .unwrap_or_else(|| panic!("element reference: {found}"))
                        .to_string();
                    return Element { session: self, id };
                }
                Err(e) if e.error == "no such element" && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("find {selector}: {e}"),
            }
        }
    }

    /// Saves a PNG of the viewport as `target/screenshots/<name>.png`.
    pub(crate) fn screenshot(&self, name: &str) -> PathBuf {
        let encoded = self.command("GET", "/screenshot", Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 screenshot"))
            .expect("screenshot is base64");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("the test tmp dir is inside target/")
            .join("screenshots");
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Errors the page logged since the last call: script errors, CSP
    /// violations, `console.error`. Failed HTTP statuses are left out: the
    /// pages ask `/me` to learn whether someone is logged in, and the
    /// browser logs the expected 401 as an error.
    pub(crate) fn console_errors(&self) -> Vec<String> {
        let entries = self.command("POST", "/se/log", json!({ "type": "browser" }));
        entries
            .as_array()
            .expect("log entries")
            .iter()
            .filter(|entry| entry["level"] == "SEVERE" && entry["source"] != "network")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", Value::Null);
    }
}

/// An element of the current page.
pub(crate) struct Element<'s> {
    session: &'s Session<'s>,
    id: String,
}

impl Element<'_> {
    /// Types `text`; for `<input type=file>` it is the path of the file to pick.
    pub(crate) fn send_keys(&self, text: &str) {
        self.session
            .command("POST", &format!("/element/{}/value", self.id), json!({ "text": text }));
    }

    pub(crate) fn click(&self) {
        self.session
            .command("POST", &format!("/element/{}/click", self.id), json!({}));
    }
}
