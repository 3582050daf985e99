//! The pages in a real browser: headless Chromium, driven over WebDriver,
//! against the real server. Each run leaves screenshots in
//! `target/screenshots/` for a person to look at.
//!
//! They need Debian's Chromium and chromedriver, so they are `#[ignore]`d:
//! `cargo test -- --include-ignored` (or `bash .ci/run`, which installs
//! both) runs them, and they fail if either is missing.

mod common;

use serde_json::{json, Value};

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
fn file_shared_from_the_chat_reaches_the_other_user_as_a_link() {
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
    let uploaded = dave.wait_for(
        "the upload to finish",
        "const a = document.querySelector('#upload-status a');
         return a && { href: a.getAttribute('href'), text: a.textContent }",
        &[],
    );
    assert_eq!(uploaded["text"], name);
    let href = uploaded["href"].as_str().unwrap();

    let shared = format!("dave: Shared a file: {name} (68.4 KiB) {href}");
    wait_for_message(&erin, &shared);
    let link = erin.script(
        "const links = [...document.querySelectorAll('#messages li.msg .msg-text a')];
         return links.map((a) => a.getAttribute('href'))",
        &[],
    );
    assert_eq!(link, json!([href]), "the link in the message is clickable");
    assert_downloads_as(&erin, href, name, &bytes);
    erin.screenshot("chat-shared-file");
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
        "the upload to finish",
        "return document.querySelector('#upload-status a') !== null",
        &[],
    );
    let not_isolated = browser.script(
        "const texts = [document.getElementById('me-name'), document.querySelector('#upload-status a'),
           ...document.querySelectorAll('#messages .msg-user, #messages .msg-text')];
         return texts
           .filter((el) => !['isolate', 'plaintext'].includes(getComputedStyle(el).unicodeBidi))
           .map((el) => el.outerHTML)",
        &[],
    );
    assert_eq!(not_isolated, json!([]), "user-supplied text outside a bidi isolate");
    browser.screenshot("chat-isolated-text");
    assert_no_console_errors(&browser, "/");
}
