//! Login throttling over real sockets: per name, per client address, the
//! doubling delay and `Retry-After`, no bcrypt spent on a refused attempt,
//! the same answer for every name, and the log line of each refusal.

mod common;

use std::time::{Duration, Instant};

use common::{Response, Server, PASSWORD};

fn retry_after(response: &Response) -> u64 {
    assert_eq!(response.status, 429, "{}", response.text());
    response
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds")
}

/// A login from the client address `from`, as a trusted proxy forwards it.
fn login_from(server: &Server, from: &str, username: &str, password: &str) -> Response {
    let body = format!("username={username}&password={}", password.replace(' ', "+"));
    let raw = format!(
        "POST /token HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {from}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    server.raw(raw.as_bytes())
}

#[test]
fn after_the_limit_a_name_waits_a_delay_that_doubles_and_a_success_clears_it() {
    let server = Server::start_with(&["--login-throttle=3"]);
    server.register("ann", PASSWORD);
    for _ in 0..3 {
        assert_eq!(server.login("ann", "wrong").status, 401);
    }
    let refused = server.login("ann", PASSWORD);
    assert_eq!(retry_after(&refused), 1);
    assert_eq!(refused.detail(), "too many failed logins; try again later");
    assert_eq!(retry_after(&server.login("ANN", "wrong")), 1, "names are case-folded");
    assert_eq!(server.login("bob", "wrong").status, 401, "other names are not held up");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(server.login("ann", "wrong").status, 401);
    assert_eq!(retry_after(&server.login("ann", PASSWORD)), 2);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(server.login("ann", PASSWORD).status, 200);
    // Counting starts again.
    for _ in 0..3 {
        assert_eq!(server.login("ann", "wrong").status, 401);
    }
    assert_eq!(retry_after(&server.login("ann", "wrong")), 1);
}

#[test]
fn existing_and_unknown_names_get_the_same_answers() {
    let server = Server::start_with(&["--login-throttle=2"]);
    server.register("ann", PASSWORD);
    let mut answers = Vec::new();
    for name in ["ann", "nobody"] {
        let mut seen = Vec::new();
        for _ in 0..3 {
            let response = server.login(name, "wrong");
            seen.push((
                response.status,
                response.header("retry-after").map(str::to_string),
                response.text(),
            ));
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0][2].0, 429);
}

#[test]
fn a_throttled_attempt_is_answered_without_spending_a_bcrypt() {
    let server = Server::start_with(&["--login-throttle=1", "--bcrypt-cost=10"]);
    let started = Instant::now();
    assert_eq!(server.login("ann", "wrong").status, 401);
    let checked = started.elapsed();
    let started = Instant::now();
    retry_after(&server.login("ann", "wrong"));
    let throttled = started.elapsed();
    assert!(
        throttled * 4 < checked,
        "a throttled answer took {throttled:?}, a checked one {checked:?}"
    );
}

#[test]
fn an_address_over_ten_times_the_limit_is_refused_for_every_name() {
    let server = Server::start_with(&["--login-throttle=1", "--trusted-proxy=127.0.0.1"]);
    server.register("ann", PASSWORD);
    // Ten failures, each for another name: at the bound, not over it.
    for i in 0..10 {
        assert_eq!(
            login_from(&server, "203.0.113.7", &format!("guess{i}"), "x").status,
            401
        );
    }
    assert_eq!(login_from(&server, "203.0.113.7", "ann", PASSWORD).status, 200);
    assert_eq!(login_from(&server, "203.0.113.7", "guess10", "x").status, 401);
    // Eleven in 15 minutes: every name is refused from that address, for
    // up to 15 minutes.
    let wait = retry_after(&login_from(&server, "203.0.113.7", "ann", PASSWORD));
    assert!((1..=900).contains(&wait), "{wait}");
    assert_eq!(login_from(&server, "198.51.100.2", "ann", PASSWORD).status, 200);
}

#[test]
fn a_wrong_current_password_counts_as_a_failed_login() {
    let server = Server::start_with(&["--login-throttle=2"]);
    let token = server.user("ann");
    let change = |current: &str| {
        let body = serde_json::json!({ "current_password": current, "new_password": "new password" }).to_string();
        server.request(
            "POST",
            "/password",
            Some(&token),
            Some(("application/json", body.as_bytes())),
        )
    };
    assert_eq!(change("wrong").status, 401);
    assert_eq!(server.login("ann", "wrong").status, 401);
    assert_eq!(retry_after(&change(PASSWORD)), 1);
    assert_eq!(retry_after(&server.login("ann", PASSWORD)), 1);
}

#[test]
fn zero_turns_throttling_off() {
    let server = Server::start_with(&["--login-throttle=0"]);
    server.register("ann", PASSWORD);
    for _ in 0..12 {
        assert_eq!(server.login("ann", "wrong").status, 401);
    }
    assert_eq!(server.login("ann", PASSWORD).status, 200);
}

#[test]
fn refused_and_throttled_logins_are_logged_with_address_and_name_never_the_password() {
    let server = Server::start_with(&["--login-throttle=1"]);
    server.login("mallory", "hunter2-secret");
    server.login("mallory", "hunter2-secret");
    let logs = server.wait_for_log("login throttled");
    assert!(logs.contains("login refused: addr=127.0.0.1 name=mallory"), "{logs}");
    assert!(
        logs.contains("login throttled: addr=127.0.0.1 name=mallory retry_after=1s"),
        "{logs}"
    );
    assert!(!logs.contains("hunter2"), "{logs}");
}
