//! SIGKILL in the middle of heavy traffic, then a restart on the same files:
//! whatever the server acknowledged is there, exactly once, and nothing it
//! was in the middle of writing is left half-done.

mod common;

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::resources::eventually;
use common::{read_response, Server};
use sha2::{Digest, Sha256};

const BOUNDARY: &str = "crash-boundary";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

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

fn stored_names(server: &Server) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(server.uploads_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
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
            && stored_names(&server).iter().any(|name| name.starts_with(".tmp-"))
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
        stored_names(&server),
        rows.keys().cloned().collect::<Vec<_>>(),
        "files on disk and rows disagree (temp files or orphans left, or rows without bytes)"
    );
    for (id, (size, sha)) in &rows {
        let bytes = std::fs::read(server.uploads_dir().join(id)).unwrap();
        assert_eq!(bytes.len() as u64, *size, "{id} is cut short");
        assert_eq!(&sha256_hex(&bytes), sha, "{id} is corrupt");
    }
}
