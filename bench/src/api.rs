//! The server routes the benchmarks call around their measurements: health,
//! registration and login, each checked for the status the contract promises.

use futures_util::{StreamExt, TryStreamExt};

use crate::error::{Context, Error, Result};
use crate::http::{Endpoint, HttpConn, Response};

/// A registered user and the one token all of its connections share.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub token: String,
}

/// Users registered at once: each costs the server two bcrypt rounds, and the
/// server may be sharing a small machine with this client.
const REGISTER_CONCURRENCY: usize = 4;

/// A name unique to this run: `bench_<tag>_<n>` (the server allows 32
/// characters of `A-Za-z0-9_.-`).
pub fn user_name(tag: &str, n: usize) -> String {
    format!("bench_{tag}_{n}")
}

/// Fails unless the answer has the expected status.
pub fn expect(response: &Response, status: u16, what: &str) -> Result<()> {
    if response.status() == status {
        Ok(())
    } else {
        Err(Error::new(format!(
            "{what}: expected {status}, got {}",
            response.describe()
        )))
    }
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(byte as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `GET /healthz` must answer 200: the first thing a run checks, so that an
/// unreachable server is reported as such.
pub async fn check_health(endpoint: &Endpoint) -> Result<()> {
    let mut conn = HttpConn::open(endpoint)
        .await
        .context("is the server running? (--url)")?;
    let response = conn.request("GET", "/healthz", &[], None).await?;
    expect(&response, 200, "GET /healthz")
}

/// A POST of `body`, which must answer `status`.
async fn post(conn: &mut HttpConn, path: &str, content_type: &str, body: &str, status: u16) -> Result<Response> {
    let response = conn
        .request("POST", path, &[("Content-Type", content_type)], Some(body.as_bytes()))
        .await?;
    expect(&response, status, &format!("POST {path}"))?;
    Ok(response)
}

pub async fn register(conn: &mut HttpConn, name: &str, password: &str) -> Result<()> {
    let body = serde_json::json!({ "username": name, "password": password }).to_string();
    post(conn, "/register", "application/json", &body, 201).await?;
    Ok(())
}

/// `POST /token`: the access token of a user.
pub async fn login(conn: &mut HttpConn, name: &str, password: &str) -> Result<String> {
    let body = format!("username={}&password={}", form_encode(name), form_encode(password));
    let form = "application/x-www-form-urlencoded";
    post(conn, "/token", form, &body, 200)
        .await?
        .json()?
        .get("access_token")
        .and_then(|t| t.as_str())
        .map(str::to_string)
        .ok_or_else(|| Error::new("POST /token: no access_token in the answer"))
}

/// Registers `count` fresh users and logs each in once.
pub async fn create_users(endpoint: &Endpoint, tag: &str, count: usize, password: &str) -> Result<Vec<User>> {
    futures_util::stream::iter(0..count)
        .map(|n| async move {
            let name = user_name(tag, n);
            let mut conn = HttpConn::open(endpoint).await?;
            register(&mut conn, &name, password).await?;
            if !conn.is_reusable() {
                conn = HttpConn::open(endpoint).await?;
            }
            let token = login(&mut conn, &name, password).await?;
            Ok::<_, Error>(User { name, token })
        })
        .buffered(REGISTER_CONCURRENCY)
        .try_collect()
        .await
}

/// The `Authorization` header value for a token.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(form_encode("bench_ab12_3"), "bench_ab12_3");
        assert_eq!(form_encode("p@ss word&=+"), "p%40ss+word%26%3D%2B");
        assert_eq!(form_encode("é"), "%C3%A9");
    }

    #[test]
    fn user_names_fit_the_server_rules() {
        let name = user_name("0123abcd", 999_999);
        assert!(name.len() <= 32);
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)));
    }
}
