//! The pages in a real browser: headless Chromium, driven over WebDriver,
//! against the real server. Each run leaves screenshots in
//! `target/screenshots/` for a person to look at.
//!
//! They need Debian's Chromium and chromedriver, so they are `#[ignore]`d:
//! `cargo test -- --include-ignored` (or `bash .ci/run`, which installs
//! both) runs them, and they fail if either is missing.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use common::webdriver::{Chromedriver, Session, ENTER};
use common::{Server, PASSWORD};

fn url(server: &Server, path: &str) -> String {
    format!("http://{}{path}", server.addr)
}

fn assert_no_console_errors(browser: &Session, page: &str) {
    let errors = browser.console_errors();
    assert!(errors.is_empty(), "{page} logged errors: {errors:#?}");
}

/// The chat messages on screen, as "user: text", top to bottom.
fn messages_on_screen(browser: &Session) -> Vec<String> {
    let shown = browser.script(
        "return [...document.querySelectorAll('#messages li.msg')].map((li) =>
           li.querySelector('.msg-user').textContent + ': ' + li.querySelector('.msg-text').textContent)",
        &[],
    );
    serde_json::from_value(shown).expect("a list of strings")
}

/// Registers `username` with the form on `/` (which logs in) and waits
/// until the live connection is up.
fn register_and_enter_chat(browser: &Session, server: &Server, username: &str) {
    browser.goto(&url(server, "/"));
    browser.wait_for(
        "the login and register forms",
        "return !document.getElementById('auth').hidden",
        &[],
    );
    browser.find("#register-username").send_keys(username);
    browser.find("#register-password").send_keys(PASSWORD);
    browser.find("#register-form button[type=submit]").click();
    wait_until_connected_as(browser, username);
}

fn wait_until_connected_as(browser: &Session, username: &str) {
    browser.wait_for(
        "the chat to connect",
        "return document.getElementById('me-name').textContent === arguments[0]
           && document.getElementById('conn-status').textContent === 'Connected'",
        &[json!(username)],
    );
}

/// The join event of the other user says that it is subscribed; a message
/// sent before that would rightly not reach it.
fn wait_until_both_online(one: &Session, other: &Session) {
    for browser in [one, other] {
        browser.wait_for(
            "both users online",
            "return document.getElementById('online').textContent === 'online: 2'",
            &[],
        );
    }
}

/// Opens `/docs` and logs in with its Authorize box; `username` must exist.
fn log_in_on_docs(browser: &Session, server: &Server, username: &str) {
    browser.goto(&url(server, "/docs"));
    browser.wait_for("the login box", "return !document.getElementById('intro').hidden", &[]);
    browser.find("#docs-username").send_keys(username);
    browser.find("#docs-password").send_keys(PASSWORD);
    browser.find("#docs-login button[type=submit]").click();
    browser.wait_for(
        "the page to be logged in",
        "return document.getElementById('auth-state').textContent.startsWith('Logged in as ' + arguments[0])",
        &[json!(username)],
    );
}

/// Types `text` into the composer and sends it with Enter.
fn say(browser: &Session, text: &str) {
    let input = browser.find("#message-input");
    input.send_keys(text);
    input.send_keys(ENTER);
}

fn wait_for_message(browser: &Session, line: &str) {
    browser.wait_for(
        &format!("the message {line:?}"),
        "return [...document.querySelectorAll('#messages li.msg[data-id]')].some((li) =>
           li.querySelector('.msg-user').textContent + ': ' + li.querySelector('.msg-text').textContent === arguments[0])",
        &[json!(line)],
    );
}

/// Fetches `href` from the page, with the browser's cookie, and checks that
/// it is an attachment named `name` holding exactly `bytes`.
fn assert_downloads_as(browser: &Session, href: &str, name: &str, bytes: &[u8]) {
    let download = browser.script(
        "return fetch(arguments[0]).then(async (response) => ({
           status: response.status,
           disposition: response.headers.get('Content-Disposition'),
           bytes: Array.from(new Uint8Array(await response.arrayBuffer())),
         }))",
        &[json!(href)],
    );
    assert_eq!(download["status"], 200, "GET {href}");
    let disposition = download["disposition"].as_str().unwrap();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    let encoded = disposition
        .split("filename*=UTF-8''")
        .nth(1)
        .unwrap_or_else(|| panic!("no filename* in {disposition:?}"))
        .split(';')
        .next()
        .unwrap();
    let decoded = percent_encoding::percent_decode_str(encoded).decode_utf8().unwrap();
    assert_eq!(decoded, name, "Content-Disposition: {disposition}");
    let downloaded: Vec<u8> = serde_json::from_value(download["bytes"].clone()).unwrap();
    assert!(downloaded == bytes, "the download of {href} differs from the upload");
}

/// A file on disk for a browser to pick: every byte value, and more than
/// one socket buffer's worth.
fn file_to_upload(dir: &tempfile::TempDir, name: &str) -> (std::path::PathBuf, Vec<u8>) {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let path = dir.path().join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

#[test]
#[ignore = "needs Chromium and chromedriver (bash .ci/run installs them)"]
fn chat_and_docs_pages_render_without_script_errors() {
    let driver = Chromedriver::start();
    let server = Server::start();
    let browser = driver.session();

    browser.goto(&url(&server, "/"));
    browser.wait_for(
        "the login form, focused",
        "return !document.getElementById('auth').hidden && document.activeElement.id === 'login-username'",
        &[],
    );
    browser.screenshot("index");
    assert_no_console_errors(&browser, "/");

    let openapi = server.request("GET", "/openapi.json", None, None).json();
    let operations: usize = openapi["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|key| *key != "parameters")
                .count()
        })
        .sum();
    browser.goto(&url(&server, "/docs"));
    let rendered = browser.wait_for(
        "every operation of openapi.json",
        "const ops = document.querySelectorAll('#operations details.op').length;
         return document.getElementById('load-state').hidden && ops > 0 && ops",
        &[],
    );
    assert_eq!(rendered, json!(operations), "/docs renders one panel per operation");
    browser.screenshot("docs");
    browser.script("document.getElementById('operations').scrollIntoView()", &[]);
    browser.screenshot("docs-operations");
    assert_no_console_errors(&browser, "/docs");
}

#[test]
#[ignore = "needs Chromium and chromedriver (bash .ci/run installs them)"]
fn two_browsers_register_log_in_and_chat_with_each_other() {
    let driver = Chromedriver::start();
    let server = Server::start();
    let alice = driver.session();
    let bob = driver.session();

    register_and_enter_chat(&alice, &server, "alice");
    register_and_enter_chat(&bob, &server, "bob");
    // Bob also logs out and back in through the login form, with his name
    // in other letter case: names are matched case-insensitively.
    bob.find("#logout").click();
    bob.wait_for(
        "the logged-out notice",
        "return document.getElementById('auth-notice').textContent === 'You are logged out.'",
        &[],
    );
    bob.find("#login-username").send_keys("BOB");
    bob.find("#login-password").send_keys(PASSWORD);
    bob.find("#login-form button[type=submit]").click();
    wait_until_connected_as(&bob, "bob");

    wait_until_both_online(&alice, &bob);

    let greeting = "Hello Bob! <b>not bold</b>";
    say(&alice, greeting);
    wait_for_message(&bob, &format!("alice: {greeting}"));
    let reply = "Hi Alice, café at noon?";
    say(&bob, reply);
    wait_for_message(&alice, &format!("bob: {reply}"));

    for browser in [&alice, &bob] {
        browser.wait_for(
            "every sent message to be acknowledged",
            "return document.querySelectorAll('#messages li.pending, #messages li.failed').length === 0",
            &[],
        );
        assert_eq!(
            messages_on_screen(browser),
            [format!("alice: {greeting}"), format!("bob: {reply}")],
            "both browsers show both messages, in the same order"
        );
        let markup = browser.script("return document.querySelector('#messages b') !== null", &[]);
        assert_eq!(markup, Value::Bool(false), "message text was rendered as HTML");
    }
    alice.screenshot("chat-alice");
    bob.screenshot("chat-bob");
    assert_no_console_errors(&alice, "/ (alice)");
    assert_no_console_errors(&bob, "/ (bob)");
}

#[test]
#[ignore = "needs Chromium and chromedriver (bash .ci/run installs them)"]
fn file_uploaded_through_docs_downloads_with_its_name_and_bytes() {
    let driver = Chromedriver::start();
    let server = Server::start();
    assert_eq!(server.register("carol", PASSWORD).status, 201);
    let dir = tempfile::tempdir().unwrap();
    let name = "Résumé été (v2).bin";
    let (path, bytes) = file_to_upload(&dir, name);

    let browser = driver.session();
    log_in_on_docs(&browser, &server, "carol");

    browser.find("#op-uploadFile > summary").click();
    browser.find("#uploadFile-field-file").send_keys(path.to_str().unwrap());
    browser.find("#op-uploadFile form.try button[type=submit]").click();
    let link = browser.wait_for(
        "the download link of the upload",
        "const a = document.querySelector('#op-uploadFile .response .download a');
         return a && { href: a.getAttribute('href'), text: a.textContent,
                       status: document.querySelector('#op-uploadFile .response .status-line').textContent }",
        &[],
    );
    assert!(link["status"].as_str().unwrap().starts_with("201 "), "{link}");
    assert_eq!(link["text"], name, "the link shows the original name");
    let href = link["href"].as_str().unwrap();
    assert!(href.starts_with("/files/"), "{href}");

    // Fetched by the page itself, so with the cookie the login box got.
    assert_downloads_as(&browser, href, name, &bytes);

    browser.script(
        "document.querySelector('#op-uploadFile .response').scrollIntoView({ block: 'center' })",
        &[],
    );
    browser.screenshot("docs-upload");
    assert_no_console_errors(&browser, "/docs");
}

#[test]
#[ignore = "needs Chromium and chromedriver (bash .ci/run installs them)"]
fn file_shared_from_the_chat_reaches_the_other_user_and_a_copied_link_works_logged_out() {
    let driver = Chromedriver::start();
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let name = "holiday plan ñ.bin";
    let (path, bytes) = file_to_upload(&dir, name);
    let dave = driver.session();
    let erin = driver.session();
    register_and_enter_chat(&dave, &server, "dave");
    register_and_enter_chat(&erin, &server, "erin");
    wait_until_both_online(&dave, &erin);

    dave.find("#file-input").send_keys(path.to_str().unwrap());
    dave.find("#upload-button").click();
    dave.wait_for(
        "the file to be shared",
        "return document.getElementById('upload-status').textContent === 'Shared ' + arguments[0] + ' in the room.'",
        &[json!(name)],
    );

    let shared = format!("dave: Shared a file: {name} (68.4 KiB)");
    wait_for_message(&erin, &shared);
    let link = erin.script(
        "const links = [...document.querySelectorAll('#messages li.msg .msg-text a')];
         return links.map((a) => ({ href: a.getAttribute('href'), text: a.textContent }))",
        &[],
    );
    let href = link[0]["href"].as_str().unwrap().to_string();
    assert!(href.starts_with("/files/"), "{link}");
    assert_eq!(
        link,
        json!([{ "href": href, "text": name }]),
        "one link, shown by the file's name"
    );
    assert_downloads_as(&erin, &href, name, &bytes);
    erin.screenshot("chat-shared-file");

    dave.find("#my-files > summary").click();
    let state_of_file = "const li = document.querySelector('#my-files-list li');
         return li && li.querySelector('.file-state').textContent === arguments[0]";
    dave.wait_for("the file listed as shared", state_of_file, &[json!("shared")]);
    dave.find("#my-files-list li .copy-link").click();
    let copied = dave.wait_for(
        "the share link",
        "const input = document.querySelector('#my-files-status .share-link');
         return input && input.value",
        &[],
    );
    let copied = copied.as_str().unwrap().to_string();
    assert!(copied.starts_with(&url(&server, "/d/")), "{copied}");
    dave.wait_for("the link counted", state_of_file, &[json!("shared, 1 link")]);
    dave.screenshot("chat-my-files");

    // A browser with no session at all, as a private window is.
    let outsider = driver.session();
    outsider.goto(&url(&server, "/"));
    outsider.wait_for("the login form", "return !document.getElementById('auth').hidden", &[]);
    assert_downloads_as(&outsider, &copied, name, &bytes);
    let status = outsider.script("return fetch(arguments[0]).then((r) => r.status)", &[json!(href)]);
    assert_eq!(status, 401, "without the link, the file needs a login");
    assert_no_console_errors(&dave, "/ (uploader)");
    assert_no_console_errors(&erin, "/ (receiver)");
}

#[test]
#[ignore = "needs Chromium and chromedriver (bash .ci/run installs them)"]
fn docs_websocket_console_chats_with_the_login_cookie() {
    let driver = Chromedriver::start();
    let server = Server::start();
    assert_eq!(server.register("frank", PASSWORD).status, 201);
    let browser = driver.session();
    log_in_on_docs(&browser, &server, "frank");

    browser.find("#op-chatSocket > summary").click();
    browser.find("#op-chatSocket .ws-console .actions button").click();
    let log_shows = "return document.querySelector('#op-chatSocket .ws-log').textContent.includes(arguments[0])";
    browser.wait_for(
        "the join event of our own connection",
        log_shows,
        &[json!(r#"<- {"type":"join","username":"frank","online":1}"#)],
    );
    let message = browser.find("#chatSocket-message");
    message.send_keys("  sent from the docs  ");
    message.send_keys(ENTER);
    browser.wait_for(
        "the acknowledgement of the message, trimmed",
        log_shows,
        &[json!(r#""username":"frank","content":"sent from the docs""#)],
    );

    let login = server.login("frank", PASSWORD).json();
    let history = server
        .get("/history/last20", login["access_token"].as_str().unwrap())
        .json();
    assert_eq!(history[0]["content"], "sent from the docs");
    browser.script(
        "document.getElementById('op-chatSocket').querySelector('.ws-console').scrollIntoView({ block: 'center' })",
        &[],
    );
    browser.screenshot("docs-websocket");
    assert_no_console_errors(&browser, "/docs");
}

#[test]
#[ignore = "needs Chromium and chromedriver (bash .ci/run installs them)"]
fn an_open_page_stays_logged_in_across_token_lifetimes_until_logged_out_everywhere() {
    let driver = Chromedriver::start();
    let server = Server::start_with(&["--token-ttl=4"]);
    let first = driver.session();
    let second = driver.session();
    register_and_enter_chat(&first, &server, "ann");

    // Three lifetimes of a token: the page refreshes it before each expiry,
    // so the socket stays open and the cookie stays good.
    std::thread::sleep(std::time::Duration::from_secs(13));
    let still = first.script(
        "return [document.getElementById('auth').hidden, document.getElementById('conn-status').textContent]",
        &[],
    );
    assert_eq!(still, json!([true, "Connected"]), "logged in and connected after 13 s");
    say(&first, "still here after three token lifetimes");
    wait_for_message(&first, "ann: still here after three token lifetimes");
    let me = first.script("return fetch('/me').then((response) => response.status)", &[]);
    assert_eq!(me, json!(200));

    // A second browser logs in as the same user, sees both sessions, and
    // logs out everywhere: the first page's chat is closed at once.
    second.goto(&url(&server, "/"));
    second.wait_for("the login form", "return !document.getElementById('auth').hidden", &[]);
    second.find("#login-username").send_keys("ann");
    second.find("#login-password").send_keys(PASSWORD);
    second.find("#login-form button[type=submit]").click();
    wait_until_connected_as(&second, "ann");
    second.find("#sessions summary").click();
    second.wait_for(
        "both sessions listed, this one marked",
        "const items = document.querySelectorAll('#session-list li');
         return items.length === 2 && items[0].textContent.includes('(this browser)')",
        &[],
    );
    second.screenshot("sessions-list");
    second.find("#logout-all").click();
    second.wait_for(
        "the logged-out notice",
        "return document.getElementById('auth-notice').textContent === 'You are logged out everywhere.'",
        &[],
    );
    first.wait_for(
        "the first page to be logged out",
        "return !document.getElementById('auth').hidden
           && document.getElementById('auth-notice').textContent.startsWith('You were logged out')",
        &[],
    );
    first.screenshot("logged-out-elsewhere");
    let after = first.script("return fetch('/me').then((response) => response.status)", &[]);
    assert_eq!(after, json!(401));
    assert_no_console_errors(&first, "/ (first browser)");
    assert_no_console_errors(&second, "/ (second browser)");
}

/// A client that keeps posting `carol N`, one message at a time, and
/// reconnects whenever the server goes away, until `stop`; returns the ids
/// of the messages it saw acknowledged.
fn keep_posting(addr: SocketAddr, token: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<i64>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async move {
            let mut acked = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let url = format!("ws://{addr}/ws/chat?token={token}");
                let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                'posting: while !stop.load(Ordering::Relaxed) {
                    let text = format!("carol {n}");
                    n += 1;
                    if ws.send(Message::text(text.clone())).await.is_err() {
                        break;
                    }
                    loop {
                        let Ok(Some(Ok(Message::Text(event)))) =
                            tokio::time::timeout(Duration::from_secs(5), ws.next()).await
                        else {
                            break 'posting;
                        };
                        let event: Value = serde_json::from_str(&event).unwrap();
                        if event["type"] == "message" && event["content"] == text.as_str() {
                            acked.push(event["id"].as_i64().unwrap());
                            break;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(40)).await;
                }
            }
            acked
        })
    })
}

/// Every stored message, oldest first: its id and its line as a page shows it.
fn stored_conversation(server: &Server, token: &str) -> Vec<(i64, String)> {
    let mut stored = Vec::new();
    let mut after = 0;
    loop {
        let page = server
            .get(&format!("/history?after_id={after}&limit=100"), token)
            .json();
        for message in page["messages"].as_array().unwrap() {
            let line = format!(
                "{}: {}",
                message["username"].as_str().unwrap(),
                message["content"].as_str().unwrap()
            );
            stored.push((message["id"].as_i64().unwrap(), line));
        }
        if page["has_more"] != true {
            return stored;
        }
        after = page["next_after_id"].as_i64().unwrap();
    }
}

#[test]
#[ignore = "needs Chromium and chromedriver (bash .ci/run installs them)"]
fn the_docs_page_keeps_its_login_across_token_lifetimes() {
    let driver = Chromedriver::start();
    let server = Server::start_with(&["--token-ttl=4"]);
    server.register("ann", PASSWORD);
    let browser = driver.session();
    log_in_on_docs(&browser, &server, "ann");
    std::thread::sleep(std::time::Duration::from_secs(10));
    // Both the cookie and the page's bearer token are fresh ones.
    let me = browser.script("return fetch('/me').then((response) => response.status)", &[]);
    assert_eq!(me, json!(200));
    browser.goto(&url(&server, "/docs"));
    browser.wait_for(
        "the page to be logged in by its refreshed cookie",
        "return document.getElementById('auth-state').textContent.startsWith('Logged in as ann')",
        &[],
    );
    assert_no_console_errors(&browser, "/docs");
}

#[test]
#[ignore = "needs Chromium and chromedriver (bash .ci/run installs them)"]
fn a_server_restart_under_a_running_conversation_loses_and_repeats_nothing_on_the_page() {
    let driver = Chromedriver::start();
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let alice = driver.session();
    let bob = driver.session();
    register_and_enter_chat(&alice, &server, "alice");
    register_and_enter_chat(&bob, &server, "bob");
    wait_until_both_online(&alice, &bob);
    say(&alice, "before the restart");
    wait_for_message(&bob, "alice: before the restart");

    let carol = server.user("carol");
    let stop = Arc::new(AtomicBool::new(false));
    let sender = keep_posting(server.addr, carol.clone(), stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    let server = server.restart_in_place(|| {
        // While the server is down the page counts down to its next attempt.
        let mut seen = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.len() < 3 && Instant::now() < deadline {
            let status = alice.script("return document.getElementById('conn-status').textContent", &[]);
            if let Some(status) = status
                .as_str()
                .filter(|s| s.starts_with("Disconnected. Reconnecting in "))
            {
                seen.insert(status.to_string());
            }
            std::thread::sleep(Duration::from_millis(30));
        }
        assert!(seen.len() >= 3, "a countdown that counts: {seen:?}");
    });
    wait_until_connected_as(&alice, "alice");
    wait_until_connected_as(&bob, "bob");
    say(&bob, "after the restart");
    wait_for_message(&alice, "bob: after the restart");
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let acked = sender.join().unwrap();

    let stored = stored_conversation(&server, &carol);
    let ids: BTreeSet<i64> = stored.iter().map(|(id, _)| *id).collect();
    assert!(acked.len() > 10, "carol kept posting: {acked:?}");
    assert!(
        acked.iter().all(|id| ids.contains(id)),
        "every acknowledged message is stored"
    );
    let lines: Vec<String> = stored.into_iter().map(|(_, line)| line).collect();
    for browser in [&alice, &bob] {
        browser.wait_for(
            "every stored message on the page",
            "return document.querySelectorAll('#messages li.msg[data-id]').length >= arguments[0]",
            &[json!(lines.len())],
        );
        assert_eq!(messages_on_screen(browser), lines, "each message once, in order");
    }
    alice.screenshot("chat-after-restart");
}

#[test]
#[ignore = "needs Chromium and chromedriver (bash .ci/run installs them)"]
fn user_supplied_text_is_isolated_so_it_cannot_reorder_the_page() {
    let driver = Chromedriver::start();
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = file_to_upload(&dir, "report.pdf");
    let browser = driver.session();
    register_and_enter_chat(&browser, &server, "fran");
    let text = "see \u{202E}fdp.exe";
    say(&browser, text);
    wait_for_message(&browser, &format!("fran: {text}"));
    browser.find("#file-input").send_keys(path.to_str().unwrap());
    browser.find("#upload-button").click();
    browser.wait_for(
        "the file message",
        "return document.querySelector('#messages li.file a bdi') !== null",
        &[],
    );
    let not_isolated = browser.script(
        "const texts = [document.getElementById('me-name'), ...document.querySelectorAll('#upload-status bdi'),
           ...document.querySelectorAll('#messages .msg-user, #messages .msg-text, #messages li.file a bdi')];
         return texts
           .filter((el) => !['isolate', 'plaintext'].includes(getComputedStyle(el).unicodeBidi))
           .map((el) => el.outerHTML)",
        &[],
    );
    assert_eq!(not_isolated, json!([]), "user-supplied text outside a bidi isolate");
    browser.screenshot("chat-isolated-text");
    assert_no_console_errors(&browser, "/");
}

/// A page of another origin: the same host on another port (same-site to
/// the browser, so `SameSite=Lax` cookies go along with its requests),
/// serving `html` to every request.
fn foreign_page(html: String) -> u16 {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{html}",
                html.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    port
}

#[test]
#[ignore = "needs Chromium and chromedriver (bash .ci/run installs them)"]
fn a_login_form_on_another_origin_cannot_log_the_browser_in() {
    let driver = Chromedriver::start();
    let server = Server::start();
    server.user("mallory");
    let page = foreign_page(format!(
        "<!doctype html><title>win a prize</title>
         <form id=f method=post action='{}'>
           <input name=username value=mallory><input name=password value='{PASSWORD}'>
         </form>
         <script>document.getElementById('f').submit()</script>",
        url(&server, "/token")
    ));
    let browser = driver.session();
    browser.goto(&format!("http://127.0.0.1:{page}/"));
    browser.wait_for(
        "the forged login to be answered",
        "return location.pathname === '/token' && document.body.textContent.includes('cross-site request refused')",
        &[],
    );
    browser.screenshot("csrf-login-refused");
    // The browser holds no session of the attacker's.
    browser.goto(&url(&server, "/"));
    let me = browser.script("return fetch('/me').then((response) => response.status)", &[]);
    assert_eq!(me, json!(401));
    let logs = server.wait_for_log("POST /token 403");
    assert!(logs.contains("POST /token 403"), "{logs}");
}

#[test]
#[ignore = "needs Chromium and chromedriver (bash .ci/run installs them)"]
fn a_page_on_another_port_cannot_upload_with_the_visitors_cookie() {
    let driver = Chromedriver::start();
    let server = Server::start();
    let browser = driver.session();
    register_and_enter_chat(&browser, &server, "vic");
    let upload = url(&server, "/files/upload");
    // A form the page fills with a file of its own and submits: a top-level
    // navigation, on which the browser sends the same-site cookie.
    let form = foreign_page(format!(
        "<!doctype html><title>win a prize</title>
         <form id=f method=post enctype=multipart/form-data action='{upload}'><input type=file name=file></form>
         <script>
           const files = new DataTransfer();
           files.items.add(new File(['planted by a form'], 'planted.txt'));
           const form = document.getElementById('f');
           form.elements.file.files = files.files;
           form.submit();
         </script>"
    ));
    browser.goto(&format!("http://127.0.0.1:{form}/"));
    browser.wait_for(
        "the forged form to be answered",
        "return location.pathname === '/files/upload' && document.body.textContent.includes('cross-site request refused')",
        &[],
    );
    browser.screenshot("csrf-upload-form-refused");
    // The same from a script, with the cookie asked for explicitly.
    let script = foreign_page(format!(
        "<!doctype html><title>waiting</title>
         <script>
           const body = new FormData();
           body.append('file', new Blob(['planted by a script']), 'planted.txt');
           fetch('{upload}', {{ method: 'POST', body, credentials: 'include', mode: 'no-cors' }})
             .then(() => {{ document.title = 'sent'; }}, () => {{ document.title = 'failed'; }});
         </script>"
    ));
    browser.goto(&format!("http://127.0.0.1:{script}/"));
    browser.wait_for("the forged upload to be sent", "return document.title === 'sent'", &[]);
    // Both carried the cookie (without it they would be 401s), and the
    // server refused both for their origin.
    let logs = server.wait_for_log("POST /files/upload 403");
    assert!(server.stored_files().is_empty(), "nothing was stored");
    assert!(!logs.contains("POST /files/upload 201"), "{logs}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.logs().matches("POST /files/upload 403").count() < 2 {
        assert!(Instant::now() < deadline, "{}", server.logs());
        std::thread::sleep(Duration::from_millis(20));
    }
}
