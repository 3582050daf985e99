//! A throwaway PostgreSQL 15 from the machine's packages, for the cluster
//! tests (the storage's own, in `src/db/pg/tests.rs`, and the protocol's,
//! in `tests/cluster.rs`). `initdb` refuses root: the server runs as the
//! `postgres` user. Stopped, and its files removed, at drop.

use std::path::Path;
use std::process::Command;

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub(crate) struct Postgres {
    dir: tempfile::TempDir,
    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub(crate) url: String,
    /// The server's options (port, socket directory), to start it again.
    options: String,
}

impl Postgres {
    /// Creates a database cluster in a new temp dir and starts it on a
    /// free port of 127.0.0.1, in the C locale (see `docs/cluster.md`).
    pub(crate) fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        run(Command::new("chown").arg("postgres").arg(dir.path()));
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        run(as_postgres(&format!("{BIN}/initdb"))
            .args([
                "--auth=trust",
                "--username=postgres",
                "--no-sync",
                "--encoding=UTF8",
                "-D",
            ])
            .arg(&data));
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            dir.path().display()
        );
        let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
        let postgres = Postgres { dir, url, options };
        postgres.start_again();
        postgres
    }

    /// Starts the server after [`Postgres::stop`] (and the first time).
    pub(crate) fn start_again(&self) {
        run(as_postgres(&format!("{BIN}/pg_ctl"))
            .args(["-w", "-s", "-l"])
            .arg(self.dir.path().join("log"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-o", &self.options, "start"]));
    }

    /// Stops the server, ending every connection to it.
    pub(crate) fn stop(&self) {
        run(as_postgres(&format!("{BIN}/pg_ctl"))
            .args(["-w", "-s", "-m", "fast", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("stop"));
    }
}

impl Postgres {
    /// Stops the server (ending every connection to it) and starts it again.
    pub(crate) fn restart(&self) {
        run(as_postgres(&format!("{BIN}/pg_ctl"))
            .args(["-w", "-s", "-m", "fast", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("restart"));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = as_postgres(&format!("{BIN}/pg_ctl"))
            .args(["-s", "-m", "immediate", "-D"])
            .arg(self.dir.path().join("data"))
            .arg("stop")
            .status();
    }
}

/// `initdb` refuses root: the server runs as the `postgres` user.
fn as_postgres(program: &str) -> Command {
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--", program]);
    command.current_dir(Path::new("/"));
    command
}

fn run(command: &mut Command) {
    let status = command.stdout(std::process::Stdio::null()).status().unwrap();
    assert!(status.success(), "{command:?}: {status}");
}
