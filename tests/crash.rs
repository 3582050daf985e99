//! SIGKILL in the middle of heavy traffic, then a restart on the same files:
//! whatever the server acknowledged is there, exactly once, and nothing it
//! was in the middle of writing is left half-done.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::resources::eventually;
use common::ws::{is, Client};
use common::{read_response, sha256_hex, Server};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

const BOUNDARY: &str = "crash-boundary";

/// Uploads `content` in pieces (so the server is often caught part-way) and
/// returns the id the server acknowledged, or `None` if the server went away.
fn upload(addr: SocketAddr, token: &str, content: &[u8]) -> Option<String> {
    let mut body = format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.bin\"\r\n\r\n")
        .into_bytes();
    body.extend_from_slice(content);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    let head = format!(
        "POST /files/upload HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    stream.write_all(head.as_bytes()).ok()?;
    for piece in body.chunks(64 * 1024) {
        stream.write_all(piece).ok()?;
    }
    let response = read_response(&mut BufReader::new(stream), false).ok()?;
    assert_eq!(response.status, 201, "{}", response.text());
    Some(response.json()["id"].as_str()?.to_string())
}

#[test]
fn killed_during_concurrent_uploads_every_row_has_its_bytes_and_every_file_its_row() {
    const UPLOADERS: usize = 6;
    let server = Server::start();
    let token = server.user("alice");
    let addr = server.addr;
    // id -> sha256 of every upload the server acknowledged.
    let acknowledged = Arc::new(Mutex::new(BTreeMap::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let uploaders: Vec<_> = (0..UPLOADERS)
        .map(|n| {
            let (token, acknowledged, stop) = (token.clone(), acknowledged.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut round = 0u32;
                // Bounded: the test stops the uploads once the server is killed.
                while !stop.load(Ordering::Relaxed) && round < 500 {
                    let content: Vec<u8> = (0..(1 << 20) + round * 1000 + n as u32)
                        .map(|i| (i ^ round) as u8)
                        .collect();
                    let Some(id) = upload(addr, &token, &content) else {
                        return;
                    };
                    acknowledged.lock().unwrap().insert(id, sha256_hex(&content));
                    round += 1;
                }
            })
        })
        .collect();
    // Kill once uploads have been both acknowledged and caught in flight.
    let busy = eventually(Duration::from_secs(30), || {
        acknowledged.lock().unwrap().len() >= 2 * UPLOADERS
            && server.stored_files().iter().any(|name| name.starts_with(".tmp-"))
    });
    assert!(busy, "uploads did not get going");
    let server = server.kill_and_restart();
    stop.store(true, Ordering::Relaxed);
    for uploader in uploaders {
        uploader.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let listed = server.get("/files?limit=100", &token).json();
    let rows: BTreeMap<String, (u64, String)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|file| {
            (
                file["id"].as_str().unwrap().to_string(),
                (
                    file["size"].as_u64().unwrap(),
                    file["sha256"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect();
    assert!(rows.len() < 100, "more files than one page of the listing");
    for (id, sha) in &acknowledged {
        assert_eq!(rows.get(id).map(|(_, s)| s), Some(sha), "acknowledged upload {id} lost");
    }
    assert_eq!(
        server.stored_files(),
        rows.keys().cloned().collect::<Vec<_>>(),
        "files on disk and rows disagree (temp files or orphans left, or rows without bytes)"
    );
    for (id, (size, sha)) in &rows {
        let bytes = std::fs::read(server.uploads_dir().join(id)).unwrap();
        assert_eq!(bytes.len() as u64, *size, "{id} is cut short");
        assert_eq!(&sha256_hex(&bytes), sha, "{id} is corrupt");
    }
}

/// Every message in history, oldest first, through the keyset pages.
fn whole_history(server: &Server, token: &str) -> Vec<(i64, String)> {
    let mut messages = Vec::new();
    let mut query = "limit=100".to_string();
    loop {
        let page = server.get(&format!("/history?{query}"), token).json();
        let batch: Vec<(i64, String)> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["id"].as_i64().unwrap(), m["content"].as_str().unwrap().to_string()))
            .collect();
        messages.splice(0..0, batch);
        match page["next_before_id"].as_i64() {
            Some(before) => query = format!("limit=100&before_id={before}"),
            None => return messages,
        }
    }
}

/// One of the storm's senders: sends numbered messages as fast as it can
/// while reading every event, and records the acknowledgement of each of
/// its own (the broadcast copy, which carries the id) until the connection
/// breaks. Bounded, should the server never be killed.
async fn storm_sender(mut client: Client, name: String, acknowledged: Arc<Mutex<Vec<(i64, String)>>>) {
    const MOST: usize = 5000;
    const IN_FLIGHT: usize = 8;
    let (mut sent, mut acked) = (0, 0);
    while acked < MOST {
        while sent < MOST && sent - acked < IN_FLIGHT {
            if client
                .ws
                .send(Message::text(format!("{name} says {sent}")))
                .await
                .is_err()
            {
                return;
            }
            sent += 1;
        }
        let event = match client.ws.next().await {
            Some(Ok(Message::Text(text))) => serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            Some(Ok(_)) => continue,
            _ => return,
        };
        if is(&event, "message") && event["username"] == name.as_str() {
            let content = event["content"].as_str().unwrap().to_string();
            acknowledged
                .lock()
                .unwrap()
                .push((event["id"].as_i64().unwrap(), content));
            acked += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_storm_of_twenty_senders_every_acknowledged_message_is_kept_once() {
    const SENDERS: usize = 20;
    let server = Server::start_with(&["--ws-rate-limit=0"]);
    let mut tokens = Vec::new();
    let mut tasks = Vec::new();
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    for n in 0..SENDERS {
        let name = format!("sender{n}");
        let token = server.user(&name);
        let client = Client::connect(&server, &token).await;
        tasks.push(tokio::spawn(storm_sender(client, name, acknowledged.clone())));
        tokens.push(token);
    }
    let storming = eventually(Duration::from_secs(30), || acknowledged.lock().unwrap().len() >= 500);
    assert!(storming, "the storm did not get going");
    let server = server.kill_and_restart();
    for task in tasks {
        task.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    let history = whole_history(&server, &tokens[0]);
    assert!(
        history.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "ids are not strictly ascending"
    );
    let contents: BTreeSet<&str> = history.iter().map(|(_, content)| content.as_str()).collect();
    assert_eq!(contents.len(), history.len(), "a message was stored twice");
    for (_, content) in &history {
        let whole = content
            .split_once(" says ")
            .is_some_and(|(name, n)| name.starts_with("sender") && n.parse::<usize>().is_ok());
        assert!(whole, "half-written message {content:?}");
    }
    let stored: BTreeMap<i64, &str> = history.iter().map(|(id, c)| (*id, c.as_str())).collect();
    for (id, content) in &acknowledged {
        assert_eq!(
            stored.get(id),
            Some(&content.as_str()),
            "acknowledged message {id} lost"
        );
    }
}
