//! A real nginx in front of a test server, over TLS: Debian's nginx in the
//! foreground, configured by the project's own `deploy/nginx.conf` with only
//! its addresses and paths changed, and a self-signed certificate made by
//! `openssl` for `localhost`.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{missing_tool, Server};

pub(crate) const NGINX: &str = "/usr/sbin/nginx";

/// The address nginx listens on. Clients connect from another loopback
/// address ([`CLIENT_IP`]), so that the server can tell the client from the
/// proxy (`127.0.0.1`, the address nginx connects from).
pub(crate) const PROXY_IP: &str = "127.0.0.2";
pub(crate) const CLIENT_IP: &str = "127.0.0.3";

/// A running nginx; stopped when dropped.
pub(crate) struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    /// The TLS port on [`PROXY_IP`].
    pub(crate) port: u16,
}

impl Nginx {
    /// Starts nginx in front of `server` with the site of `deploy/nginx.conf`.
    pub(crate) fn start(server: &Server) -> Nginx {
        for tool in [NGINX, "/usr/bin/openssl"] {
            if !Path::new(tool).exists() {
                missing_tool(tool, "install Debian's nginx and openssl");
            }
        }
        let dir = tempfile::tempdir().expect("nginx dir");
        make_certificate(dir.path());
        let port = free_port();
        let redirect_port = free_port();
        let site = site(server.addr, port, redirect_port, dir.path());
        let conf = format!(
            "daemon off;\nmaster_process off;\nerror_log {dir}/error.log info;\npid {dir}/nginx.pid;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log {dir}/access.log;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  \
             fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n{site}\n}}\n",
            dir = dir.path().display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(NGINX)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx { child, dir, port };
        nginx.wait_until_listening();
        nginx
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((PROXY_IP, self.port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start: {}", self.error_log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `https://localhost:PORT`, the origin the browser and curl use.
    pub(crate) fn origin(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    /// The certificate that clients must trust.
    pub(crate) fn certificate(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    pub(crate) fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// `curl` through the proxy from [`CLIENT_IP`], trusting the test
    /// certificate and resolving `localhost` to [`PROXY_IP`].
    pub(crate) fn curl(&self) -> Command {
        let mut curl = Command::new("curl");
        curl.arg("--silent")
            .arg("--show-error")
            .arg("--cacert")
            .arg(self.certificate())
            .arg("--interface")
            .arg(CLIENT_IP)
            .arg("--resolve")
            .arg(format!("localhost:{}:{PROXY_IP}", self.port));
        curl
    }

    /// A TLS connection through `openssl s_client`: its stdin and stdout
    /// are the plaintext of the stream, for raw HTTP and WebSocket bytes.
    pub(crate) fn tls_pipe(&self) -> Child {
        Command::new("openssl")
            .args(["s_client", "-quiet", "-verify_return_error", "-servername", "localhost"])
            .arg("-connect")
            .arg(format!("{PROXY_IP}:{}", self.port))
            .arg("-CAfile")
            .arg(self.certificate())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_client")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `deploy/nginx.conf` with the test's ports, upstream and certificate, and
/// the IPv6 listeners dropped (the tests run on IPv4 loopback).
fn site(upstream: SocketAddr, port: u16, redirect_port: u16, dir: &Path) -> String {
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx.conf"))
        .expect("read deploy/nginx.conf");
    let replacements = [
        ("listen 80;".to_string(), format!("listen {PROXY_IP}:{redirect_port};")),
        ("listen 443 ssl;".to_string(), format!("listen {PROXY_IP}:{port} ssl;")),
        ("server 127.0.0.1:8001;".to_string(), format!("server {upstream};")),
        (
            "/etc/ssl/chat.example.com/fullchain.pem".to_string(),
            dir.join("cert.pem").display().to_string(),
        ),
        (
            "/etc/ssl/chat.example.com/privkey.pem".to_string(),
            dir.join("key.pem").display().to_string(),
        ),
    ];
    let mut site = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("listen [::]"))
        .collect::<Vec<_>>()
        .join("\n");
    for (from, to) in replacements {
        assert!(site.contains(&from), "deploy/nginx.conf no longer has {from:?}");
        site = site.replace(&from, &to);
    }
    site
}

fn make_certificate(dir: &Path) {
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-addext", "subjectAltName=DNS:localhost"])
        .arg("-keyout")
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl could not make a certificate");
}

/// A port that was free a moment ago on [`PROXY_IP`]; nginx cannot report
/// the port it bound, so the test picks one.
fn free_port() -> u16 {
    TcpListener::bind((PROXY_IP, 0)).unwrap().local_addr().unwrap().port()
}
