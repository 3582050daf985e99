//! File uploads and downloads against the real server, in raw HTTP: what is
//! stored, what is sent back, and that nothing is left behind when an upload
//! fails, is abandoned or is cut short by a crash.

mod common;

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{is_closed, read_response, sha256_hex, Response, Server};
use percent_encoding::percent_decode_str;

const BOUNDARY: &str = "----chat-test-7MA4YWxkTrZu0gW";

fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// A multipart body of parts given as (header lines, content).
fn form(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (headers, content) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n{headers}\r\n\r\n").as_bytes());
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

fn file_headers(filename: &str) -> String {
    format!("Content-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: text/plain")
}

fn file_form(filename: &str, content: &[u8]) -> Vec<u8> {
    form(&[(&file_headers(filename), content)])
}

fn upload_body(server: &Server, token: &str, body: &[u8]) -> Response {
    server.request("POST", "/files/upload", Some(token), Some((&content_type(), body)))
}

/// Uploads `content` as `filename` and checks it was created.
fn upload(server: &Server, token: &str, filename: &str, content: &[u8]) -> serde_json::Value {
    let response = upload_body(server, token, &file_form(filename, content));
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()
}

/// The id of a file as the API describes it.
fn id_of(file: &serde_json::Value) -> String {
    file["id"].as_str().unwrap().to_string()
}

fn download(server: &Server, token: &str, id: &str) -> Response {
    server.get(&format!("/files/{id}"), token)
}

/// A request with extra header lines, on a new connection.
fn request_with(server: &Server, method: &str, path: &str, token: &str, headers: &[(&str, &str)]) -> Response {
    server.request_with_headers(method, path, Some(token), headers)
}

fn is_id(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Waits (bounded) until the uploads directory holds exactly `expected`.
fn wait_for_files(server: &Server, expected: &[String]) {
    let mut expected = expected.to_vec();
    expected.sort();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.stored_files() != expected {
        assert!(
            Instant::now() < deadline,
            "uploads dir holds {:?}, expected {expected:?}",
            server.stored_files()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends the start of a 10 MB upload, 600 KB of its file, and returns the
/// connection once the server has begun writing the file; the caller then
/// cuts the upload short.
fn begin_upload_to_cut(server: &Server, token: &str) -> std::net::TcpStream {
    let mut stream = server.connect();
    stream
        .write_all(upload_head(Some(token), "Content-Length: 10000000", "").as_bytes())
        .unwrap();
    let opening = format!("--{BOUNDARY}\r\n{}\r\n\r\n", file_headers("cut.bin"));
    stream.write_all(opening.as_bytes()).unwrap();
    stream.write_all(&[7; 600_000]).unwrap();
    wait_for_temp_file(server);
    stream
}

/// Waits (bounded) until an upload's temp file appears, i.e. the server has
/// begun writing it.
fn wait_for_temp_file(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.stored_files().iter().any(|name| name.starts_with(".tmp-")) {
        assert!(Instant::now() < deadline, "no temp file appeared");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn listed_ids(server: &Server, token: &str, query: &str) -> Vec<String> {
    let response = server.get(&format!("/files{query}"), token);
    assert_eq!(response.status, 200, "{}", response.text());
    response.json().as_array().unwrap().iter().map(id_of).collect()
}

/// The name a download's `filename*` carries, decoded.
fn disposition_name(response: &Response) -> String {
    let disposition = response.header("content-disposition").unwrap();
    let encoded = disposition.split_once("filename*=UTF-8''").unwrap().1;
    percent_decode_str(encoded).decode_utf8().unwrap().into_owned()
}

/// The head of an upload whose body the test sends itself.
fn upload_head(token: Option<&str>, framing: &str, extra: &str) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST /files/upload HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: {}\r\n{framing}\r\n{extra}\r\n",
        content_type()
    )
}

#[test]
fn uploaded_bytes_and_metadata_round_trip() {
    let server = Server::start();
    let token = server.user("alice");
    let every_byte: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let delimiter = format!("\r\n--{BOUNDARY}");
    let contents: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"x".to_vec(),
        every_byte,
        vec![b'a'; delimiter.len() - 1],
        vec![b'a'; delimiter.len()],
        vec![b'a'; delimiter.len() + 1],
        delimiter.as_bytes()[..delimiter.len() - 1].to_vec(),
        format!("{delimiter}-x\r\n").into_bytes(),
        b"ends with CR LF\r\n".to_vec(),
    ];
    for content in &contents {
        let file = upload(&server, &token, "data.bin", content);
        let id = file["id"].as_str().unwrap();
        assert!(is_id(id), "{id}");
        assert_eq!(file["filename"], "data.bin");
        assert_eq!(file["size"], content.len());
        assert_eq!(file["content_type"], "text/plain");
        assert_eq!(file["sha256"], sha256_hex(content));
        assert_eq!(file["download_url"], format!("/files/{id}"));
        assert_eq!(file["uploaded_by"], "alice");
        assert!(file["created_at"].as_str().unwrap().ends_with('Z'));
        let downloaded = download(&server, &token, id);
        assert_eq!(downloaded.status, 200);
        assert_eq!(&downloaded.body, content);
        assert_eq!(downloaded.header("content-type"), Some("text/plain"));
        assert_eq!(
            downloaded.header("content-length"),
            Some(content.len().to_string().as_str())
        );
        assert_eq!(
            downloaded.header("etag").unwrap(),
            format!("\"{}\"", sha256_hex(content))
        );
        assert_eq!(downloaded.header("accept-ranges"), Some("bytes"));
        assert_eq!(downloaded.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            downloaded.header("content-disposition"),
            Some("attachment; filename=\"data.bin\"; filename*=UTF-8''data.bin")
        );
    }
    let files = server.stored_files();
    assert_eq!(files.len(), contents.len());
    assert!(files.iter().all(|name| is_id(name)), "{files:?}");
}

#[test]
fn part_without_a_usable_content_type_is_octet_stream() {
    let server = Server::start();
    let token = server.user("alice");
    for headers in [
        "Content-Disposition: form-data; name=\"file\"; filename=\"a\"",
        "Content-Disposition: form-data; name=\"file\"; filename=\"a\"\r\nContent-Type: not a type",
        "Content-Disposition: form-data; name=\"file\"",
    ] {
        let response = upload_body(&server, &token, &form(&[(headers, b"x")]));
        assert_eq!(response.status, 201, "{}", response.text());
        assert_eq!(response.json()["content_type"], "application/octet-stream");
    }
}

#[test]
fn upload_with_expect_continue_gets_100_before_sending_its_body() {
    let server = Server::start();
    let token = server.user("alice");
    let body = file_form("a.txt", b"hello after continue");
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let head = upload_head(
        Some(&token),
        &format!("Content-Length: {}", body.len()),
        "Expect: 100-continue\r\n",
    );
    stream.write_all(head.as_bytes()).unwrap();
    assert_eq!(read_response(&mut reader, false).unwrap().status, 100);
    stream.write_all(&body).unwrap();
    let response = read_response(&mut reader, false).unwrap();
    assert_eq!(response.status, 201, "{}", response.text());
    let id = response.json()["id"].as_str().unwrap().to_string();
    assert_eq!(download(&server, &token, &id).body, b"hello after continue");
}

#[test]
fn chunked_upload_is_stored_whole() {
    let server = Server::start();
    let token = server.user("alice");
    let content: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let body = file_form("chunked.bin", &content);
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream
        .write_all(upload_head(Some(&token), "Transfer-Encoding: chunked", "").as_bytes())
        .unwrap();
    let mut rest = &body[..];
    for size in [1, 7, 100, 4096, 65_536, 3].iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, after) = rest.split_at((*size).min(rest.len()));
        stream.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).unwrap();
        stream.write_all(piece).unwrap();
        stream.write_all(b"\r\n").unwrap();
        rest = after;
    }
    stream.write_all(b"0\r\n\r\n").unwrap();
    let response = read_response(&mut reader, false).unwrap();
    assert_eq!(response.status, 201, "{}", response.text());
    let file = response.json();
    assert_eq!(file["size"], content.len());
    assert_eq!(file["sha256"], sha256_hex(&content));
    assert_eq!(download(&server, &token, file["id"].as_str().unwrap()).body, content);
}

#[test]
fn five_mebibyte_upload_round_trips() {
    let server = Server::start();
    let token = server.user("alice");
    let content: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    let file = upload(&server, &token, "big.bin", &content);
    assert_eq!(file["size"], content.len());
    assert_eq!(file["sha256"], sha256_hex(&content));
    let downloaded = download(&server, &token, file["id"].as_str().unwrap());
    assert_eq!(downloaded.body.len(), content.len());
    assert!(downloaded.body == content);
}

#[test]
fn upload_at_the_limit_is_stored_and_one_byte_more_is_413() {
    let server = Server::start_with(&["--max-upload-bytes=1000"]);
    let token = server.user("alice");
    let exact = upload(&server, &token, "exact.bin", &[1; 1000])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let response = upload_body(&server, &token, &file_form("over.bin", &[1; 1001]));
    assert_eq!(response.status, 413, "{}", response.text());
    assert_eq!(response.header("connection"), Some("close"));
    wait_for_files(&server, std::slice::from_ref(&exact));
    assert_eq!(listed_ids(&server, &token, ""), [exact]);
}

#[test]
fn chunked_upload_over_the_limit_is_refused_as_it_passes() {
    let server = Server::start_with(&["--max-upload-bytes=1000"]);
    let token = server.user("alice");
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    stream
        .write_all(upload_head(Some(&token), "Transfer-Encoding: chunked", "").as_bytes())
        .unwrap();
    let opening = format!("--{BOUNDARY}\r\n{}\r\n\r\n", file_headers("big.bin"));
    let mut first = opening.into_bytes();
    first.extend_from_slice(&[b'z'; 1001]);
    stream.write_all(format!("{:x}\r\n", first.len()).as_bytes()).unwrap();
    stream.write_all(&first).unwrap();
    stream.write_all(b"\r\n").unwrap();
    // The body is not finished: the server refuses without waiting for the rest.
    let response = read_response(&mut reader, false).unwrap();
    assert_eq!(response.status, 413, "{}", response.text());
    assert!(is_closed(&mut stream, Duration::from_secs(5)));
    wait_for_files(&server, &[]);
    assert!(listed_ids(&server, &token, "").is_empty());
}

#[test]
fn declared_length_over_the_limit_is_413_before_the_body() {
    let server = Server::start_with(&["--max-upload-bytes=1000"]);
    let token = server.user("alice");
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let head = upload_head(
        Some(&token),
        &format!("Content-Length: {}", 1000 + 1024 * 1024 + 1),
        "Expect: 100-continue\r\n",
    );
    stream.write_all(head.as_bytes()).unwrap();
    let response = read_response(&mut reader, false).unwrap();
    assert_eq!(response.status, 413, "{}", response.text());
    assert!(is_closed(&mut stream, Duration::from_secs(5)));
    assert!(server.stored_files().is_empty());
}

#[test]
fn unauthenticated_upload_gets_401_without_100_and_writes_nothing() {
    let server = Server::start();
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let head = upload_head(None, "Content-Length: 100000", "Expect: 100-continue\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let response = read_response(&mut reader, false).unwrap();
    assert_eq!(response.status, 401);
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    assert!(is_closed(&mut stream, Duration::from_secs(5)));
    assert!(server.stored_files().is_empty());
}

#[test]
fn upload_that_is_not_multipart_is_415() {
    let server = Server::start();
    let token = server.user("alice");
    for content_type in ["text/plain", "application/json", "multipart/mixed; boundary=x"] {
        let response = server.request("POST", "/files/upload", Some(&token), Some((content_type, b"hello")));
        assert_eq!(response.status, 415, "{content_type}");
    }
    let response = server.request("POST", "/files/upload", Some(&token), None);
    assert_eq!(response.status, 415);
    assert!(server.stored_files().is_empty());
}

#[test]
fn form_without_a_file_part_is_422() {
    let server = Server::start();
    let token = server.user("alice");
    let body = form(&[("Content-Disposition: form-data; name=\"title\"", b"no file here")]);
    let response = upload_body(&server, &token, &body);
    assert_eq!(response.status, 422, "{}", response.text());
    assert!(response.detail().contains("file"));
    assert!(server.stored_files().is_empty());
}

#[test]
fn other_parts_are_ignored_and_the_first_file_part_is_stored() {
    let server = Server::start();
    let token = server.user("alice");
    let body = form(&[
        ("Content-Disposition: form-data; name=\"title\"", b"ignored"),
        (&file_headers("first.txt"), b"first"),
        (&file_headers("second.txt"), b"second"),
    ]);
    let response = upload_body(&server, &token, &body);
    assert_eq!(response.status, 201, "{}", response.text());
    let file = response.json();
    assert_eq!(file["filename"], "first.txt");
    assert_eq!(download(&server, &token, file["id"].as_str().unwrap()).body, b"first");
}

#[test]
fn broken_multipart_framing_is_400_and_leaves_nothing() {
    let server = Server::start();
    let token = server.user("alice");
    let mut unterminated = file_form("a.txt", b"content");
    unterminated.truncate(unterminated.len() - 6);
    let long_boundary = "b".repeat(71);
    let too_many_parts: Vec<(String, &[u8])> = (0..101)
        .map(|i| (format!("Content-Disposition: form-data; name=\"f{i}\""), &b"x"[..]))
        .collect();
    let too_many_parts: Vec<(&str, &[u8])> = too_many_parts.iter().map(|(h, c)| (h.as_str(), *c)).collect();
    let cases = [
        (content_type(), unterminated),
        (content_type(), form(&[(&format!("X-Big: {}", "h".repeat(9000)), b"x")])),
        (content_type(), form(&too_many_parts)),
        (
            format!("multipart/form-data; boundary={long_boundary}"),
            b"whatever".to_vec(),
        ),
        ("multipart/form-data".to_string(), b"whatever".to_vec()),
    ];
    for (content_type, body) in &cases {
        let response = server.request("POST", "/files/upload", Some(&token), Some((content_type, body)));
        assert_eq!(response.status, 400, "{}", response.text());
    }
    wait_for_files(&server, &[]);
}

#[test]
fn non_ascii_file_name_round_trips_through_filename_star() {
    let server = Server::start();
    let token = server.user("alice");
    let name = "résumé 東京.txt";
    for headers in [
        format!("Content-Disposition: form-data; name=\"file\"; filename=\"{name}\""),
        "Content-Disposition: form-data; name=\"file\"; filename=\"fallback.txt\"; \
         filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%9D%B1%E4%BA%AC.txt"
            .to_string(),
    ] {
        let response = upload_body(&server, &token, &form(&[(&headers, b"bonjour")]));
        assert_eq!(response.status, 201, "{}", response.text());
        let file = response.json();
        assert_eq!(file["filename"], name);
        let downloaded = download(&server, &token, file["id"].as_str().unwrap());
        assert_eq!(disposition_name(&downloaded), name);
        assert!(downloaded
            .header("content-disposition")
            .unwrap()
            .starts_with("attachment; filename=\"r_sum_ __.txt\"; "));
    }
}

#[test]
fn hostile_file_names_stay_metadata() {
    let server = Server::start();
    let token = server.user("mallory");
    let long = "a".repeat(1000);
    let cases: Vec<(String, String)> = vec![
        ("filename=\"../../etc/passwd\"".into(), "../../etc/passwd".into()),
        ("filename=\"/etc/passwd\"".into(), "/etc/passwd".into()),
        (r#"filename="..\..\boot.ini""#.into(), r"..\..\boot.ini".into()),
        (r#"filename="say \"hi\".txt""#.into(), r#"say "hi".txt"#.into()),
        (
            "filename*=UTF-8''evil%0D%0ASet-Cookie%3A%20x%3Dy%22.txt".into(),
            "evilSet-Cookie: x=y\".txt".into(),
        ),
        (
            "filename*=UTF-8''nul%00byte%2F..%2F.txt".into(),
            "nulbyte/../.txt".into(),
        ),
        ("filename*=UTF-8''%0D%0A".into(), "file".into()),
        (format!("filename=\"{long}\""), "a".repeat(255)),
    ];
    for (params, expected) in &cases {
        let headers = format!("Content-Disposition: form-data; name=\"file\"; {params}");
        let response = upload_body(&server, &token, &form(&[(&headers, b"payload")]));
        assert_eq!(response.status, 201, "{params}: {}", response.text());
        let file = response.json();
        assert_eq!(file["filename"], expected.as_str(), "{params}");
        let downloaded = download(&server, &token, file["id"].as_str().unwrap());
        assert_eq!(downloaded.status, 200);
        assert_eq!(downloaded.body, b"payload");
        assert_eq!(downloaded.header("set-cookie"), None);
        assert_eq!(disposition_name(&downloaded), *expected);
        let disposition = downloaded.header("content-disposition").unwrap();
        let fallback = disposition
            .strip_prefix("attachment; filename=\"")
            .and_then(|rest| rest.split_once("\"; filename*=UTF-8''"))
            .unwrap_or_else(|| panic!("{disposition}"))
            .0;
        assert!(
            fallback
                .chars()
                .all(|c| c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\')),
            "{fallback:?}"
        );
    }
    let files = server.stored_files();
    assert_eq!(files.len(), cases.len());
    assert!(files.iter().all(|name| is_id(name)), "{files:?}");
    let parent: Vec<PathBuf> = std::fs::read_dir(server.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        parent
            .iter()
            .all(|p| !p.ends_with("passwd") && !p.ends_with("boot.ini")),
        "{parent:?}"
    );
}

#[test]
fn aborted_upload_leaves_no_file_and_no_row() {
    let server = Server::start();
    let token = server.user("alice");
    let stream = begin_upload_to_cut(&server, &token);
    drop(stream);
    wait_for_files(&server, &[]);
    assert!(listed_ids(&server, &token, "").is_empty());
}

#[test]
fn concurrent_uploads_are_each_stored_intact() {
    let server = Server::start();
    let token = server.user("alice");
    let uploaded: Vec<(String, Vec<u8>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6u8)
            .map(|n| {
                let (server, token) = (&server, &token);
                scope.spawn(move || {
                    let content: Vec<u8> = (0..400_000u32).map(|i| (i as u8).wrapping_mul(n + 1)).collect();
                    let file = upload(server, token, &format!("f{n}.bin"), &content);
                    (id_of(&file), content)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (id, content) in &uploaded {
        assert!(download(&server, &token, id).body == *content, "{id}");
    }
    assert_eq!(listed_ids(&server, &token, "").len(), 6);
    assert_eq!(server.stored_files().len(), 6);
}

#[test]
fn a_file_of_many_send_buffers_downloads_whole_and_in_ranges() {
    let server = Server::start();
    let token = server.user("alice");
    // Larger than the most the server moves to the socket in one go.
    let content: Vec<u8> = (0..(20 << 20) + 4321u32).map(|i| (i ^ (i >> 11)) as u8).collect();
    let id = id_of(&upload(&server, &token, "many.bin", &content));
    let whole = download(&server, &token, &id);
    assert_eq!(whole.status, 200);
    assert!(whole.body == content);
    let path = format!("/files/{id}");
    for (first, last) in [(1, content.len() - 2), ((9 << 20) - 1, (17 << 20) + 1)] {
        let range = format!("bytes={first}-{last}");
        let response = request_with(&server, "GET", &path, &token, &[("Range", &range)]);
        assert_eq!(response.status, 206, "{range}");
        assert!(response.body == content[first..=last], "{range}");
    }
}

#[test]
fn single_ranges_are_206_and_others_are_200_or_416() {
    let server = Server::start();
    let token = server.user("alice");
    let content: Vec<u8> = (0..100u8).collect();
    let path = format!(
        "/files/{}",
        upload(&server, &token, "r.bin", &content)["id"].as_str().unwrap()
    );
    let get_range = |range: &str| request_with(&server, "GET", &path, &token, &[("Range", range)]);
    for (range, first, last) in [
        ("bytes=0-0", 0, 0),
        ("bytes=99-99", 99, 99),
        ("bytes=99-", 99, 99),
        ("bytes=10-19", 10, 19),
        ("bytes=90-", 90, 99),
        ("bytes=-5", 95, 99),
        ("bytes=-500", 0, 99),
        ("bytes=50-1000", 50, 99),
    ] {
        let response = get_range(range);
        assert_eq!(response.status, 206, "{range}");
        assert_eq!(response.body, &content[first..=last], "{range}");
        assert_eq!(
            response.header("content-range").unwrap(),
            format!("bytes {first}-{last}/100"),
            "{range}"
        );
        assert_eq!(
            response.header("content-length").unwrap(),
            (last - first + 1).to_string()
        );
    }
    for range in ["bytes=100-", "bytes=100-200", "bytes=-0"] {
        let response = get_range(range);
        assert_eq!(response.status, 416, "{range}");
        assert_eq!(response.header("content-range"), Some("bytes */100"));
    }
    for range in ["bytes=0-1,5-6", "bytes=5-2", "bytes=x-y", "lines=1-2"] {
        let response = get_range(range);
        assert_eq!(response.status, 200, "{range}");
        assert_eq!(response.body, content, "{range}");
        assert_eq!(response.header("content-range"), None);
    }
    let etag = get_range("bytes=0-0").header("etag").unwrap().to_string();
    let matching = request_with(
        &server,
        "GET",
        &path,
        &token,
        &[("Range", "bytes=0-0"), ("If-Range", &etag)],
    );
    assert_eq!(matching.status, 206);
    let stale = request_with(
        &server,
        "GET",
        &path,
        &token,
        &[("Range", "bytes=0-0"), ("If-Range", "\"old\"")],
    );
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, content);
}

#[test]
fn empty_file_has_no_satisfiable_range() {
    let server = Server::start();
    let token = server.user("alice");
    let path = format!(
        "/files/{}",
        upload(&server, &token, "empty", b"")["id"].as_str().unwrap()
    );
    let response = request_with(&server, "GET", &path, &token, &[("Range", "bytes=0-")]);
    assert_eq!(response.status, 416);
    assert_eq!(response.header("content-range"), Some("bytes */0"));
}

#[test]
fn matching_if_none_match_is_304_without_body() {
    let server = Server::start();
    let token = server.user("alice");
    let file = upload(&server, &token, "a.txt", b"cache me");
    let path = format!("/files/{}", file["id"].as_str().unwrap());
    let etag = format!("\"{}\"", file["sha256"].as_str().unwrap());
    for value in [etag.clone(), format!("\"other\", W/{etag}"), "*".to_string()] {
        let response = request_with(&server, "GET", &path, &token, &[("If-None-Match", &value)]);
        assert_eq!(response.status, 304, "{value}");
        assert_eq!(response.header("etag"), Some(etag.as_str()));
        assert_eq!(response.header("content-length"), None);
    }
    let response = request_with(&server, "GET", &path, &token, &[("If-None-Match", "\"other\"")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"cache me");
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let server = Server::start();
    let token = server.user("alice");
    let id = id_of(&upload(&server, &token, "h.txt", b"twelve bytes"));
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let head = format!(
        "HEAD /files/{id} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {token}\r\nRange: bytes=0-1\r\n\r\n\
         GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let response = read_response(&mut reader, true).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("12"));
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert!(response.header("etag").is_some());
    assert!(response.header("content-disposition").is_some());
    // Had a body been sent, this would read it instead of the next response.
    let next = read_response(&mut reader, false).unwrap();
    assert_eq!(next.status, 200);
    assert_eq!(next.json()["status"], "ok");
}

#[test]
fn unknown_malformed_or_unauthenticated_downloads_are_refused() {
    let server = Server::start();
    let token = server.user("alice");
    let id = id_of(&upload(&server, &token, "a.txt", b"x"));
    assert_eq!(server.request("GET", &format!("/files/{id}"), None, None).status, 401);
    for path in [
        "/files/0123456789abcdef0123456789abcdef".to_string(),
        "/files/..%2F..%2Fchat.db".to_string(),
        "/files/upload".to_string(),
        format!("/files/{}", id.to_uppercase()),
        format!("/files/.tmp-{id}"),
    ] {
        let response = server.get(&path, &token);
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.detail(), "no such file", "{path}");
    }
}

/// Shares a file in the room and checks it was.
fn share(server: &Server, token: &str, id: &str) -> serde_json::Value {
    let response = server.request("POST", &format!("/files/{id}/share"), Some(token), None);
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()
}

#[test]
fn listing_pages_newest_first() {
    let server = Server::start();
    let token = server.user("alice");
    let other = server.user("bob");
    let ids: Vec<String> = (0..5)
        .map(|n| id_of(&upload(&server, &token, &format!("f{n}"), b"x")))
        .collect();
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(listed_ids(&server, &token, ""), newest_first);
    assert_eq!(listed_ids(&server, &token, "?scope=mine"), newest_first);
    assert_eq!(listed_ids(&server, &token, "?limit=2"), newest_first[..2]);
    assert_eq!(listed_ids(&server, &token, "?offset=2&limit=2"), newest_first[2..4]);
    assert_eq!(listed_ids(&server, &token, "?offset=4"), newest_first[4..]);
    assert!(listed_ids(&server, &token, "?offset=50").is_empty());
    let listed = server.get("/files?limit=1", &token).json();
    let item = &listed[0];
    assert_eq!(item["filename"], "f4");
    assert_eq!(item["uploaded_by"], "alice");
    assert_eq!(item["download_url"], format!("/files/{}", ids[4]));
    assert_eq!(item["shared"], false);
    for keys in ["id", "filename", "size", "content_type", "sha256", "created_at"] {
        assert!(item.get(keys).is_some(), "{keys}");
    }
    for query in [
        "?limit=0",
        "?limit=101",
        "?limit=x",
        "?offset=-1",
        "?offset=",
        "?limit=1.5",
        "?scope=all",
        "?scope=",
    ] {
        assert_eq!(server.get(&format!("/files{query}"), &token).status, 422, "{query}");
    }
    assert_eq!(server.request("GET", "/files", None, None).status, 401);
    assert!(
        listed_ids(&server, &other, "").is_empty(),
        "private files are not listed to others"
    );
    assert!(listed_ids(&server, &other, "?scope=room").is_empty());
}

#[test]
fn the_room_listing_holds_every_shared_file_whoever_uploaded_it() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let private = id_of(&upload(&server, &alice, "private.txt", b"p"));
    let hers = id_of(&upload(&server, &alice, "hers.txt", b"h"));
    let his = id_of(&upload(&server, &bob, "his.txt", b"b"));
    share(&server, &alice, &hers);
    share(&server, &bob, &his);
    for token in [&alice, &bob] {
        assert_eq!(listed_ids(&server, token, "?scope=room"), [his.clone(), hers.clone()]);
    }
    assert_eq!(listed_ids(&server, &alice, ""), [hers.clone(), private.clone()]);
    let mine = server.get("/files", &alice).json();
    let shared: Vec<bool> = mine.as_array().unwrap().iter().map(|f| f["shared"] == true).collect();
    assert_eq!(shared, [true, false]);
    assert_eq!(server.get("/files?scope=room", &bob).json()[1]["uploaded_by"], "alice");
}

#[test]
fn only_the_uploader_may_delete_and_the_bytes_go_with_the_row() {
    let server = Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    let id = id_of(&upload(&server, &alice, "mine.txt", b"mine"));
    let path = format!("/files/{id}");
    let response = server.request("DELETE", &path, Some(&bob), None);
    assert_eq!(response.status, 404, "a private file does not exist for others");
    share(&server, &alice, &id);
    let response = server.request("DELETE", &path, Some(&bob), None);
    assert_eq!(response.status, 403, "a shared file is seen, but not his to delete");
    assert_eq!(download(&server, &bob, &id).body, b"mine");
    assert_eq!(server.request("DELETE", &path, None, None).status, 401);
    assert_eq!(server.request("DELETE", &path, Some(&alice), None).status, 204);
    assert!(server.stored_files().is_empty());
    assert_eq!(download(&server, &alice, &id).status, 404);
    assert_eq!(download(&server, &bob, &id).status, 404);
    assert_eq!(server.request("DELETE", &path, Some(&alice), None).status, 404);
    assert!(listed_ids(&server, &alice, "").is_empty());
    assert!(listed_ids(&server, &bob, "?scope=room").is_empty());
    let response = server.request("DELETE", "/files/not-an-id", Some(&alice), None);
    assert_eq!(response.status, 404);
}

#[test]
fn killed_server_leaves_no_temp_file_or_orphan_after_restart() {
    let server = Server::start();
    let token = server.user("alice");
    let kept = id_of(&upload(&server, &token, "kept.txt", b"still here"));
    let stream = begin_upload_to_cut(&server, &token);
    // As if a crash came between the rename and the row.
    let orphan = server.uploads_dir().join("00112233445566778899aabbccddeeff");
    std::fs::write(&orphan, b"no row").unwrap();
    let server = server.kill_and_restart();
    drop(stream);
    assert_eq!(server.stored_files(), std::slice::from_ref(&kept));
    assert_eq!(download(&server, &token, &kept).body, b"still here");
    assert_eq!(listed_ids(&server, &token, ""), [kept]);
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root, to mount a small tmpfs (bash .ci/run runs it)"]
fn upload_to_a_full_disk_is_507_and_keeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let uploads = dir.path().join("small");
    let _tmpfs = Tmpfs::mount(&uploads, "1m").unwrap_or_else(|reason| panic!("cannot mount a small tmpfs ({reason})"));
    let server = Server::start_with(&[&format!("--uploads-dir={}", uploads.display())]);
    let token = server.user("alice");
    // The server answers before the body is all sent: send it from another
    // thread, which may see the connection close under it.
    let body = file_form("big.bin", &vec![1; 3 * 1024 * 1024]);
    let mut request = upload_head(Some(&token), &format!("Content-Length: {}", body.len()), "").into_bytes();
    request.extend_from_slice(&body);
    let mut stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let sender = std::thread::spawn(move || {
        let _ = stream.write_all(&request);
    });
    let response = read_response(&mut reader, false).unwrap();
    sender.join().unwrap();
    assert_eq!(response.status, 507, "{}", response.text());
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_dir(&uploads).unwrap().count() > 0 {
        assert!(Instant::now() < deadline, "partial file left behind");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(listed_ids(&server, &token, "").is_empty());
    let small = upload(&server, &token, "small.txt", b"fits");
    assert_eq!(download(&server, &token, small["id"].as_str().unwrap()).body, b"fits");
}
