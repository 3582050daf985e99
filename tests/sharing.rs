//! Files that are private until shared, against the real server: who may
//! see a file on each route, file messages in the room (over every socket
//! and in every history form, and after the file is deleted), and share
//! links that download without authentication until they expire or are
//! revoked.

mod common;

use std::time::Duration;

use common::ws::{is, Client};
use common::{Response, Server};
use serde_json::{json, Value};

fn id_of(file: &Value) -> String {
    file["id"].as_str().unwrap().to_string()
}

fn share(server: &Server, token: &str, id: &str) -> Response {
    server.request("POST", &format!("/files/{id}/share"), Some(token), None)
}

fn create_link(server: &Server, token: &str, id: &str, body: Option<&str>) -> Response {
    let body = body.map(|text| ("application/json", text.as_bytes()));
    server.request("POST", &format!("/files/{id}/links"), Some(token), body)
}

/// A link's path (`/d/<token>`) for `id`, valid for a day.
fn link(server: &Server, token: &str, id: &str) -> String {
    let created = create_link(server, token, id, None);
    assert_eq!(created.status, 201, "{}", created.text());
    created.json()["url"].as_str().unwrap().to_string()
}

/// A request as a plain `curl` sends it: no cookie, no token.
fn anonymous(server: &Server, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    server.request_with_headers(method, path, None, headers)
}

/// Every route of the file `file` (and of its link `link`), as
/// `(method, path)`: the two that show the file, then the five that only
/// its uploader may use.
fn file_routes(file: &str, link: &str) -> [(&'static str, String); 7] {
    [
        ("GET", format!("/files/{file}")),
        ("HEAD", format!("/files/{file}")),
        ("DELETE", format!("/files/{file}")),
        ("POST", format!("/files/{file}/share")),
        ("POST", format!("/files/{file}/links")),
        ("GET", format!("/files/{file}/links")),
        ("DELETE", format!("/files/{file}/links/{link}")),
    ]
}

/// Every message of the room through `/history` pages of `limit`, oldest
/// first, walking `before_id`.
fn all_pages(server: &Server, token: &str, limit: usize) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut path = format!("/history?limit={limit}");
    loop {
        let page = server.get(&path, token).json();
        let messages = page["messages"].as_array().unwrap().clone();
        pages.splice(0..0, messages);
        match page["next_before_id"].as_i64() {
            Some(id) => path = format!("/history?before_id={id}&limit={limit}"),
            None => return pages,
        }
    }
}

/// Every form of history a client can read the message `id` through: the
/// newest page, an offset page, and the sealed `before_id` page below the
/// newest message.
fn every_history_form(server: &Server, token: &str, id: i64, newest: i64) -> Vec<Value> {
    let find = |messages: &Value| {
        messages
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("message {id} missing from {messages}"))
    };
    vec![
        find(&server.get("/history/last20", token).json()),
        find(&server.get("/history?offset=0&limit=50", token).json()["messages"]),
        find(
            &server
                .get(&format!("/history?before_id={newest}&limit=50"), token)
                .json()["messages"],
        ),
    ]
}

/// The items of a listing (`/files...`, `/files/{id}/links`) as `token`
/// sees it.
fn files_listing(server: &Server, path: &str, token: &str) -> Vec<Value> {
    server.get(path, token).json().as_array().unwrap().clone()
}

/// A server with the members alice and bob, and a file alice uploaded
/// holding `content`: the server, their tokens and the file's id.
fn alice_bob_and_a_file_of_alice(content: &[u8]) -> (Server, String, String, String) {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let id = id_of(&server.upload(&alice, "alice.txt", content));
    (server, alice, bob, id)
}

#[test]
fn another_member_gets_404_on_every_route_of_a_private_file() {
    let (server, alice, bob, id) = alice_bob_and_a_file_of_alice(b"secret");
    let url = link(&server, &alice, &id);
    let link_id = server.get(&format!("/files/{id}/links"), &alice).json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let unknown = "0123456789abcdef0123456789abcdef";
    for file in [id.as_str(), unknown] {
        for (method, path) in file_routes(file, &link_id) {
            let response = server.request(method, &path, Some(&bob), None);
            assert_eq!(response.status, 404, "{method} {path}");
            if method != "HEAD" {
                assert_eq!(
                    response.detail(),
                    "no such file",
                    "{method} {path}: same as an unknown id"
                );
            }
        }
    }
    assert!(files_listing(&server, "/files", &bob).is_empty());
    assert!(files_listing(&server, "/files?scope=room", &bob).is_empty());
    // Nothing above changed the file, its link, or who may see it.
    assert_eq!(server.get(&format!("/files/{id}"), &alice).body, b"secret");
    assert_eq!(anonymous(&server, "GET", &url, &[]).body, b"secret");
    assert_eq!(server.get(&format!("/files/{id}"), &bob).status, 404);
}

#[test]
fn a_member_who_sees_a_shared_file_may_download_it_but_not_act_for_its_uploader() {
    let (server, alice, bob, id) = alice_bob_and_a_file_of_alice(b"for all");
    assert_eq!(share(&server, &alice, &id).status, 201);
    assert_eq!(server.get(&format!("/files/{id}"), &bob).body, b"for all");
    assert_eq!(
        server.request("HEAD", &format!("/files/{id}"), Some(&bob), None).status,
        200
    );
    let unknown_link = "0123456789abcdef0123456789abcdef";
    for (method, path) in file_routes(&id, unknown_link).into_iter().skip(2) {
        let response = server.request(method, &path, Some(&bob), None);
        assert_eq!(response.status, 403, "{method} {path}");
    }
    for (method, path) in [("GET", format!("/files/{id}")), ("POST", format!("/files/{id}/share"))] {
        assert_eq!(server.request(method, &path, None, None).status, 401, "{method} {path}");
    }
}

#[tokio::test]
async fn a_shared_file_reaches_every_socket_in_order_as_a_file_message() {
    let server = Server::start();
    let names = ["alice", "bob", "carol", "dave"];
    let tokens: Vec<String> = names.iter().map(|name| server.user(name)).collect();
    let mut sockets = Vec::new();
    for (token, name) in tokens.iter().zip(names) {
        sockets.push(Client::join(&server, token, name).await);
    }
    let file = server.upload(&tokens[0], "résumé ✓.txt", b"hello");
    let id = id_of(&file);
    // Dave's acknowledgements order his messages around the share.
    let mut dave = sockets.pop().unwrap();
    let before = dave.post("dave", "before").await;
    let response = share(&server, &tokens[0], &id);
    assert_eq!(response.status, 201, "{}", response.text());
    let shared = response.json();
    let after = dave.post("dave", "after").await;
    let expected_file = json!({
        "id": id, "filename": "résumé ✓.txt", "size": 5,
        "content_type": "text/plain", "download_url": format!("/files/{id}"),
    });
    assert_eq!(shared["file"], expected_file);
    assert_eq!(
        (&shared["username"], &shared["content"]),
        (&json!("alice"), &json!("résumé ✓.txt"))
    );
    let shared_id = shared["id"].as_i64().unwrap();
    assert!(before < shared_id && shared_id < after);
    for socket in &mut sockets {
        let mut seen = Vec::new();
        while seen.last().is_none_or(|e: &Value| e["id"] != after) {
            let event = socket.event().await;
            if is(&event, "message") {
                seen.push(event);
            }
        }
        let ids: Vec<i64> = seen.iter().map(|e| e["id"].as_i64().unwrap()).collect();
        assert_eq!(ids, [before, shared_id, after]);
        let mut event = seen[1].clone();
        event.as_object_mut().unwrap().remove("type");
        assert_eq!(event, shared, "the event is the 201 body plus its type");
        for plain in [&seen[0], &seen[2]] {
            assert!(
                plain.get("file").is_none(),
                "a plain message keeps its v1 shape: {plain}"
            );
        }
    }
    for form in every_history_form(&server, &tokens[1], shared_id, after) {
        assert_eq!(form, shared);
    }
    let listed = server.get("/files?scope=room", &tokens[2]).json();
    assert_eq!(listed[0]["id"], id);
    assert_eq!(listed[0]["shared"], true);
}

#[test]
fn sharing_twice_posts_twice_and_the_file_stays_shared() {
    let server = Server::start();
    let alice = server.user("alice");
    let id = id_of(&server.upload(&alice, "twice.txt", b"2"));
    let first = share(&server, &alice, &id).json();
    let second = share(&server, &alice, &id).json();
    assert_eq!(second["id"].as_i64().unwrap(), first["id"].as_i64().unwrap() + 1);
    assert_eq!(first["file"], second["file"]);
    assert_eq!(server.get("/files", &alice).json()[0]["shared"], true);
}

/// Resume (`/ws/chat?after_id=`) is a separate part of the contract; until
/// it is in place, this reads the room the other ways a client can:
/// every `/history` form, with the pages cached before the deletion, and
/// the socket of a member who was there all along.
#[tokio::test]
async fn a_deleted_file_leaves_its_messages_without_the_file_key_in_history_and_in_a_resumed_replay() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let mut watcher = Client::join(&server, &bob, "bob").await;
    let id = id_of(&server.upload(&alice, "gone.txt", b"bytes"));
    let kept = id_of(&server.upload(&alice, "kept.txt", b"kept"));
    let shared = share(&server, &alice, &id).json();
    let other = share(&server, &alice, &kept).json();
    for n in 0..10 {
        watcher.post("bob", &format!("message {n}")).await;
    }
    let newest = watcher.post("bob", "newest").await;
    let shared_id = shared["id"].as_i64().unwrap();
    // Every form read once, so that the caches hold the pages with the file.
    let cached: Vec<Value> = all_pages(&server, &bob, 5);
    assert!(cached.iter().any(|m| m["id"] == shared_id && m["file"]["id"] == id));
    for form in every_history_form(&server, &bob, shared_id, newest) {
        assert_eq!(form["file"]["id"], id);
    }

    let deleted = server.request("DELETE", &format!("/files/{id}"), Some(&alice), None);
    assert_eq!(deleted.status, 204);
    let mut without = shared.clone();
    without.as_object_mut().unwrap().remove("file");
    for form in every_history_form(&server, &bob, shared_id, newest) {
        assert_eq!(form, without, "the message keeps its text and loses its file");
    }
    for limit in [5, 7, 100] {
        let pages = all_pages(&server, &bob, limit);
        let message = pages.iter().find(|m| m["id"] == shared_id).unwrap();
        assert_eq!(message, &without, "pages of {limit}");
        let still = pages.iter().find(|m| m["id"] == other["id"]).unwrap();
        assert_eq!(still, &other, "another file's message keeps its file");
    }
    // A socket resuming from before the file message replays it without
    // its file too, and the other file's message with its file.
    for query in [format!("after_id={}", shared_id - 1), "last=100".to_string()] {
        let mut resumed = Client::resume(&server, &bob, &query).await;
        let mut replayed = Vec::new();
        while replayed.last().is_none_or(|m: &Value| m["id"] != newest) {
            let event = resumed.event().await;
            if is(&event, "message") {
                replayed.push(event);
            }
        }
        let message = replayed.iter().find(|m| m["id"] == shared_id).expect("replayed");
        assert!(message.get("file").is_none(), "{query}: {message}");
        assert_eq!(message["content"], "gone.txt");
        let still = replayed.iter().find(|m| m["id"] == other["id"]).expect("replayed");
        assert_eq!(still["file"]["id"], kept, "{query}");
    }
    // The room goes on; the socket that saw the file message stays open.
    let later = watcher.post("bob", "later").await;
    assert!(later > newest);
}

#[test]
fn a_file_message_survives_a_kill_once_the_share_is_acknowledged() {
    let server = Server::start();
    let alice = server.user("alice");
    let id = id_of(&server.upload(&alice, "durable.txt", b"d"));
    let shared = share(&server, &alice, &id).json();
    let server = server.kill_and_restart();
    let newest = server.get("/history/last20", &alice).json();
    assert_eq!(newest.as_array().unwrap().last().unwrap(), &shared);
    assert_eq!(server.get("/files", &alice).json()[0]["shared"], true);
}

#[test]
fn a_link_downloads_like_the_authenticated_route_without_a_cookie_until_revoked() {
    let server = Server::start();
    let alice = server.user("alice");
    let content: Vec<u8> = (0..10_000u32).map(|n| (n % 251) as u8).collect();
    let id = id_of(&server.upload(&alice, "naïve report.txt", &content));
    let created = create_link(&server, &alice, &id, Some(r#"{"expires_in": 3600}"#));
    assert_eq!(created.status, 201, "{}", created.text());
    let created = created.json();
    let url = created["url"].as_str().unwrap().to_string();
    let token = url.strip_prefix("/d/").unwrap();
    assert!(
        token.len() >= 32 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );

    let by_link = anonymous(&server, "GET", &url, &[]);
    let by_id = server.get(&format!("/files/{id}"), &alice);
    assert_eq!(by_link.status, 200);
    assert_eq!(by_link.body, content);
    for header in [
        "content-type",
        "content-length",
        "content-disposition",
        "etag",
        "accept-ranges",
        "x-content-type-options",
        "cache-control",
        "content-security-policy",
    ] {
        assert_eq!(by_link.header(header), by_id.header(header), "{header}");
    }
    let head = anonymous(&server, "HEAD", &url, &[]);
    assert_eq!((head.status, head.header("content-length")), (200, Some("10000")));
    assert!(head.body.is_empty());
    let part = anonymous(&server, "GET", &url, &[("Range", "bytes=100-199")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 100-199/10000"));
    assert_eq!(part.body, content[100..200]);
    let etag = by_link.header("etag").unwrap().to_string();
    let unchanged = anonymous(&server, "GET", &url, &[("If-None-Match", &etag)]);
    assert_eq!(unchanged.status, 304);
    assert!(unchanged.body.is_empty());
    assert_eq!(
        anonymous(&server, "GET", &url, &[("Range", "bytes=20000-")]).status,
        416
    );

    let links = server.get(&format!("/files/{id}/links"), &alice).json();
    assert_eq!(links.as_array().unwrap().len(), 1);
    let listed = &links[0];
    assert_eq!(listed["id"], created["id"]);
    assert_eq!(listed["expires_at"], created["expires_at"]);
    let mut keys: Vec<&String> = listed.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["created_at", "expires_at", "id"], "no token in the listing");
    assert!(!links.to_string().contains(token));

    let link_id = created["id"].as_str().unwrap();
    let revoke = format!("/files/{id}/links/{link_id}");
    assert_eq!(server.request("DELETE", &revoke, Some(&alice), None).status, 204);
    let gone = anonymous(&server, "GET", &url, &[]);
    assert_eq!(gone.status, 410, "{}", gone.text());
    assert_eq!(anonymous(&server, "HEAD", &url, &[]).status, 410);
    assert_eq!(server.request("DELETE", &revoke, Some(&alice), None).status, 404);
    assert!(files_listing(&server, &format!("/files/{id}/links"), &alice).is_empty());
    // The file itself is untouched, and still private.
    assert_eq!(server.get(&format!("/files/{id}"), &alice).body, content);
}

#[test]
fn unknown_and_malformed_tokens_are_404() {
    let server = Server::start();
    for path in [
        format!("/d/{}", "ab".repeat(32)),
        "/d/short".to_string(),
        format!("/d/{}", "AB".repeat(32)),
        "/d/..%2F..%2Fchat.db".to_string(),
    ] {
        assert_eq!(anonymous(&server, "GET", &path, &[]).status, 404, "{path}");
    }
}

#[test]
fn a_link_ends_at_its_expiry_and_with_its_file() {
    let server = Server::start();
    let alice = server.user("alice");
    let id = id_of(&server.upload(&alice, "brief.txt", b"brief"));
    let expiring = link(&server, &alice, &id);
    let other = link(&server, &alice, &id);
    assert_eq!(anonymous(&server, "GET", &expiring, &[]).status, 200);
    // A minute is the shortest expiry; move this link's expiry into the past
    // instead of waiting for it.
    let db = rusqlite::Connection::open(server.db_path()).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    let token_hash = {
        use sha2::Digest;
        sha2::Sha256::digest(expiring.strip_prefix("/d/").unwrap().as_bytes()).to_vec()
    };
    let moved = db
        .execute(
            "UPDATE share_links SET expires_at = expires_at - 86400001 WHERE token_hash = ?1",
            [&token_hash],
        )
        .unwrap();
    assert_eq!(moved, 1, "the database keeps the token's SHA-256, not the token");
    assert_eq!(anonymous(&server, "GET", &expiring, &[]).status, 410);
    assert_eq!(files_listing(&server, &format!("/files/{id}/links"), &alice).len(), 1);
    assert_eq!(anonymous(&server, "GET", &other, &[]).status, 200);

    assert_eq!(
        server
            .request("DELETE", &format!("/files/{id}"), Some(&alice), None)
            .status,
        204
    );
    for url in [&expiring, &other] {
        assert_eq!(anonymous(&server, "GET", url, &[]).status, 404, "{url}");
    }
    let left: i64 = db
        .query_row("SELECT count(*) FROM share_links", [], |row| row.get(0))
        .unwrap();
    assert_eq!(left, 0, "the links went with their file");
}

#[test]
fn link_expiry_is_validated_and_defaults_to_a_day() {
    let server = Server::start();
    let alice = server.user("alice");
    let id = id_of(&server.upload(&alice, "x.txt", b"x"));
    for body in [
        r#"{"expires_in": 59}"#,
        r#"{"expires_in": 604801}"#,
        r#"{"expires_in": "60"}"#,
        r#"{"expires_in": 1.5}"#,
        r#"{"expires": 60}"#,
        "[60]",
        "not json",
    ] {
        let response = create_link(&server, &alice, &id, Some(body));
        assert_eq!(response.status, 422, "{body}: {}", response.text());
    }
    let seconds_ahead = |response: Response| {
        assert_eq!(response.status, 201, "{}", response.text());
        let link = response.json();
        let links = server.get(&format!("/files/{id}/links"), &alice).json();
        let listed = links
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["id"] == link["id"])
            .unwrap()
            .clone();
        (rfc3339_seconds(&listed["expires_at"]) - rfc3339_seconds(&listed["created_at"])) as i64
    };
    assert_eq!(seconds_ahead(create_link(&server, &alice, &id, None)), 86_400);
    assert_eq!(seconds_ahead(create_link(&server, &alice, &id, Some("{}"))), 86_400);
    assert_eq!(
        seconds_ahead(create_link(&server, &alice, &id, Some(r#"{"expires_in": 60}"#))),
        60
    );
    let week = create_link(&server, &alice, &id, Some(r#"{"expires_in": 604800}"#));
    assert_eq!(seconds_ahead(week), 604_800);
}

/// Seconds since the epoch of an RFC 3339 UTC time as the server writes it
/// (`2026-11-25T04:43:39.005Z`), to compare two of them.
fn rfc3339_seconds(value: &Value) -> f64 {
    let text = value.as_str().unwrap();
    let (date, time) = text.trim_end_matches('Z').split_once('T').unwrap();
    let parts: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let (year, month, day) = (parts[0], parts[1], parts[2]);
    // Days from the civil date (the inverse of the server's own formatting).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let clock: Vec<f64> = time.split(':').map(|p| p.parse().unwrap()).collect();
    days as f64 * 86_400.0 + clock[0] * 3600.0 + clock[1] * 60.0 + clock[2]
}

#[test]
fn share_link_tokens_never_reach_the_log() {
    let server = Server::start();
    let alice = server.user("alice");
    let id = id_of(&server.upload(&alice, "log.txt", b"l"));
    let url = link(&server, &alice, &id);
    let token = url.strip_prefix("/d/").unwrap().to_string();
    assert_eq!(anonymous(&server, "GET", &url, &[]).status, 200);
    assert_eq!(anonymous(&server, "GET", &format!("{url}?x=1"), &[]).status, 200);
    let logs = server.wait_for_log("GET /d/REDACTED?x=1 200");
    assert!(logs.contains("GET /d/REDACTED 200"), "{logs}");
    assert!(!logs.contains(&token), "{logs}");
    assert!(!logs.contains(&token[..16]), "{logs}");
}

#[test]
fn files_of_a_v1_database_are_private_to_their_uploaders_after_the_upgrade() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1");
    let dir = tempfile::tempdir().unwrap();
    let (db, uploads) = (dir.path().join("chat.db"), dir.path().join("uploads"));
    std::fs::copy(fixture.join("v1.db"), &db).unwrap();
    std::fs::create_dir(&uploads).unwrap();
    for entry in std::fs::read_dir(fixture.join("uploads")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), uploads.join(entry.file_name())).unwrap();
    }
    let server = Server::start_with(&["--db", db.to_str().unwrap(), "--uploads-dir", uploads.to_str().unwrap()]);
    let token = |name: &str| {
        server.login(name, &format!("pass-{name}")).json()["access_token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (alice, bob) = (token("alice"), token("Bob"));
    let notes = "/files/e839959b322ac129e59495cfbf92bca2";
    assert_eq!(server.get(notes, &alice).status, 200);
    assert_eq!(server.get(notes, &bob).status, 404);
    let listed = server.get("/files", &alice).json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["shared"], false);
    assert!(files_listing(&server, "/files?scope=room", &bob).is_empty());
    let history = server.get("/history/last20", &bob).json();
    assert_eq!(history.as_array().unwrap().len(), 5);
    assert!(history.as_array().unwrap().iter().all(|m| m.get("file").is_none()));
}
