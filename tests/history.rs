//! Chat history over HTTP against the real server: the newest twenty, and
//! paging back by offset and by id.

mod common;

use common::ws::Client;
use common::Server;
use serde_json::Value;

/// A server with `n` messages from "ann" ("m0" .. "m{n-1}"), their ids in
/// order, and a token.
async fn server_with_messages(n: usize) -> (Server, Vec<i64>, String) {
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let token = server.user("ann");
    let mut ann = Client::join(&server, &token, "ann").await;
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(ann.post("ann", &format!("m{i}")).await);
    }
    (server, ids, token)
}

fn ids_of(messages: &Value) -> Vec<i64> {
    messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn last20_is_the_newest_twenty_oldest_first() {
    let (server, ids, token) = server_with_messages(25).await;
    let response = server.get("/history/last20", &token);
    assert_eq!(response.status, 200);
    let messages = response.json();
    assert_eq!(ids_of(&messages), ids[5..]);
    let first = &messages[0];
    assert_eq!(
        (first["username"].as_str(), first["content"].as_str()),
        (Some("ann"), Some("m5"))
    );
    let mut keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["content", "created_at", "id", "username"]);
}

#[tokio::test]
async fn paging_by_offset_covers_every_message_once() {
    let (server, ids, token) = server_with_messages(23).await;
    let mut pages = Vec::new();
    let mut offset = Some(0);
    while let Some(at) = offset {
        let page = server.get(&format!("/history?offset={at}&limit=5"), &token).json();
        offset = page["next_offset"].as_i64();
        assert_eq!(page["has_more"], offset.is_some());
        pages.push(ids_of(&page["messages"]));
    }
    assert_eq!(pages.len(), 5);
    assert_eq!(pages[0], ids[18..], "the first page is the newest, oldest first");
    let all: Vec<i64> = pages.into_iter().rev().flatten().collect();
    assert_eq!(all, ids);
}

#[tokio::test]
async fn paging_by_before_id_covers_every_message_once() {
    let (server, ids, token) = server_with_messages(23).await;
    let newest = server.get("/history?limit=7", &token).json();
    let mut pages = vec![ids_of(&newest["messages"])];
    let mut before = newest["next_before_id"].as_i64();
    while let Some(id) = before {
        let page = server.get(&format!("/history?before_id={id}&limit=7"), &token).json();
        assert_eq!(page["next_offset"], Value::Null);
        before = page["next_before_id"].as_i64();
        assert_eq!(page["has_more"], before.is_some());
        pages.push(ids_of(&page["messages"]));
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [7, 7, 7, 2]);
    let all: Vec<i64> = pages.into_iter().rev().flatten().collect();
    assert_eq!(all, ids);
}

#[test]
fn an_empty_history_is_an_empty_page() {
    let server = Server::start();
    let token = server.user("ann");
    assert_eq!(server.get("/history/last20", &token).json(), serde_json::json!([]));
    let page = server.get("/history", &token).json();
    assert_eq!(
        page,
        serde_json::json!({ "messages": [], "has_more": false, "next_offset": null, "next_before_id": null, "next_after_id": null })
    );
}

#[test]
fn bad_paging_parameters_are_422() {
    let server = Server::start();
    let token = server.user("ann");
    for query in [
        "limit=0",
        "limit=101",
        "limit=abc",
        "offset=-1",
        "offset=1e3",
        "before_id=-5",
        "before_id=",
        "offset=0&before_id=10",
    ] {
        let response = server.get(&format!("/history?{query}"), &token);
        assert_eq!(response.status, 422, "{query}");
        assert!(!response.detail().is_empty());
    }
    assert_eq!(server.get("/history?limit=100&unknown=1", &token).status, 200);
}

#[test]
fn history_needs_a_token() {
    let server = Server::start();
    for path in ["/history/last20", "/history"] {
        let response = server.request("GET", path, None, None);
        assert_eq!(response.status, 401, "{path}");
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    }
    let query_token = format!("/history?token={}", server.user("ann"));
    assert_eq!(
        server.request("GET", &query_token, None, None).status,
        401,
        "?token= is for WebSockets only"
    );
}

#[tokio::test]
async fn last20_shows_a_new_message_as_soon_as_it_is_acknowledged() {
    let (server, mut ids, token) = server_with_messages(3).await;
    assert_eq!(ids_of(&server.get("/history/last20", &token).json()), ids);
    assert_eq!(ids_of(&server.get("/history/last20", &token).json()), ids);
    let mut ann = Client::join(&server, &token, "ann").await;
    ids.push(ann.post("ann", "one more").await);
    assert_eq!(ids_of(&server.get("/history/last20", &token).json()), ids);
}

#[tokio::test]
async fn a_keyset_page_that_reaches_the_newest_message_still_grows() {
    let (server, mut ids, token) = server_with_messages(3).await;
    let beyond = format!("/history?before_id={}", ids[2] + 50);
    let sealed = format!("/history?before_id={}&limit=2", ids[2]);
    for _ in 0..2 {
        assert_eq!(ids_of(&server.get(&beyond, &token).json()["messages"]), ids);
        assert_eq!(ids_of(&server.get(&sealed, &token).json()["messages"]), ids[..2]);
    }
    let mut ann = Client::join(&server, &token, "ann").await;
    ids.push(ann.post("ann", "one more").await);
    assert_eq!(
        ids_of(&server.get(&beyond, &token).json()["messages"]),
        ids,
        "a page above the newest id is not kept"
    );
    let page = server.get(&sealed, &token).json();
    assert_eq!(
        ids_of(&page["messages"]),
        ids[..2],
        "a sealed page is the same from memory"
    );
    assert_eq!(page["has_more"], false);
}
