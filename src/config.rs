//! Run-time settings: every flag of the contract, with its environment variable
//! and default. Flags win over the environment, the environment over defaults.
//! Parsing is strict on purpose: a typo in a deployment should stop the server at
//! start-up with one clear line, not run it with a silently ignored setting.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::str::FromStr;

use crate::cidr::Cidr;
use crate::log::Level;

#[derive(Clone, Debug)]
pub struct Config {
    pub addr: SocketAddr,
    pub db: PathBuf,
    pub uploads_dir: PathBuf,
    /// `None` means: use the secret kept in the database (generated on first start).
    pub jwt_secret: Option<String>,
    pub token_ttl: u64,
    pub bcrypt_cost: u32,
    pub max_upload_bytes: u64,
    pub allowed_origins: Vec<String>,
    pub secure_cookies: bool,
    /// Messages a second per WebSocket connection; 0 disables the limit.
    pub ws_rate_limit: u32,
    pub max_connections: usize,
    pub synchronous: Synchronous,
    pub log: Level,
    /// Peers whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Seconds a session may live, refreshes included.
    pub session_max_age: u64,
    /// Failed logins in a row before a name is slowed down; 0 turns login
    /// throttling off.
    pub login_throttle: u32,
    /// Where the Prometheus metrics listener binds; `None`: no listener.
    pub metrics_addr: Option<SocketAddr>,
    /// Cluster mode: the PostgreSQL database `--db postgres://...` names,
    /// used instead of the SQLite file `db`.
    #[cfg(feature = "postgres")]
    pub postgres: Option<String>,
}

impl Config {
    /// The SQLite file the server runs on; none in cluster mode, where
    /// `db` names nothing (no lock file is taken and no file size shown).
    pub fn sqlite_file(&self) -> Option<&Path> {
        #[cfg(feature = "postgres")]
        if self.postgres.is_some() {
            return None;
        }
        Some(&self.db)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8001)),
            db: PathBuf::from("chat_app.db"),
            uploads_dir: PathBuf::from("uploads"),
            jwt_secret: None,
            token_ttl: 3600,
            bcrypt_cost: 12,
            max_upload_bytes: 1 << 30,
            allowed_origins: Vec::new(),
            secure_cookies: false,
            ws_rate_limit: 20,
            max_connections: 10_000,
            synchronous: Synchronous::Normal,
            log: Level::Info,
            trusted_proxies: Vec::new(),
            session_max_age: 30 * 24 * 3600,
            login_throttle: 5,
            metrics_addr: None,
            #[cfg(feature = "postgres")]
            postgres: None,
        }
    }
}

/// How far a commit goes before it is answered (SQLite's `synchronous`, in
/// WAL mode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronous {
    /// The commit is in the write-ahead log, in the operating system's hands:
    /// it survives the server being killed (`SIGKILL`, a crash), which is
    /// what the contract asks, but not a power cut or a kernel panic. No
    /// disk sync per commit: this is what keeps chat latency under a
    /// millisecond on a disk whose sync takes one or more.
    Normal,
    /// The write-ahead log is synced to the disk before the answer: a
    /// commit also survives a power cut, at the cost of a disk sync per
    /// group commit.
    Full,
}

impl FromStr for Synchronous {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "normal" => Ok(Synchronous::Normal),
            "full" => Ok(Synchronous::Full),
            _ => Err(()),
        }
    }
}

/// What the command line asked for.
#[derive(Debug)]
pub enum Command {
    Serve(Box<Config>),
    Help,
    Version,
    /// One of the operations subcommands (`backup`, `verify`, `restore`).
    Operation(Operation),
}

/// What an operations subcommand works on.
#[derive(Debug, PartialEq, Eq)]
pub enum Operation {
    Backup {
        db: String,
        uploads_dir: PathBuf,
        out: PathBuf,
    },
    Verify {
        out: PathBuf,
    },
    Restore {
        out: PathBuf,
        db: String,
        uploads_dir: PathBuf,
    },
}

/// A bad flag or value, reported as one line before exiting with status 2.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub const HELP: &str = "\
chat-server: real-time chat and secure file service

USAGE: chat-server [FLAGS]

| setting                               | flag                   | env                     | default        |
|---------------------------------------|------------------------|-------------------------|----------------|
| listen address                        | --addr                 | CHAT_ADDR               | 127.0.0.1:8001 |
| SQLite database                       | --db                   | CHAT_DB                 | chat_app.db    |
| upload directory                      | --uploads-dir          | CHAT_UPLOADS_DIR        | uploads        |
| JWT signing secret                    | --jwt-secret           | CHAT_JWT_SECRET         | random 32 bytes, kept in the database |
| token lifetime (seconds)              | --token-ttl            | CHAT_TOKEN_TTL          | 3600           |
| bcrypt cost (4-31)                    | --bcrypt-cost          | CHAT_BCRYPT_COST        | 12             |
| largest upload (bytes)                | --max-upload-bytes     | CHAT_MAX_UPLOAD_BYTES   | 1073741824     |
| extra allowed WebSocket origins       | --allowed-origin (rep.)| CHAT_ALLOWED_ORIGINS    | none           |
| Secure flag on the cookie             | --secure-cookies       | CHAT_SECURE_COOKIES=1   | off            |
| WebSocket messages/s per connection   | --ws-rate-limit (0=off)| CHAT_WS_RATE_LIMIT      | 20 (burst 40)  |
| most concurrent connections           | --max-connections      | CHAT_MAX_CONNECTIONS    | 10000          |
| commits survive (normal: a kill;      | --synchronous          | CHAT_SYNCHRONOUS        | normal         |
|   full: also a power cut)             |                        |                         |                |
| log level (error|warn|info|debug)     | --log                  | CHAT_LOG                | info           |
| trusted reverse proxies (IP or CIDR)  | --trusted-proxy (rep.) | CHAT_TRUSTED_PROXIES    | none           |
| longest session, refreshes included   | --session-max-age      | CHAT_SESSION_MAX_AGE    | 2592000 (30 d) |
|   (seconds)                           |                        |                         |                |
| failed logins before slowing down     | --login-throttle       | CHAT_LOGIN_THROTTLE     | 5 (0 = off)    |
| Prometheus metrics listener address   | --metrics-addr         | CHAT_METRICS_ADDR       | none (off)     |

Flags take their value as `--flag VALUE` or `--flag=VALUE`; flags win over env.
Port 0 binds an ephemeral port; the bound address is printed on the first line of stderr.
--version prints the version.

OPERATIONS (exit 0 on success, 1 with one line per problem):
  chat-server backup --db DB --uploads-dir DIR OUT    online, consistent backup into the new directory OUT
  chat-server verify OUT                              checks a backup
  chat-server restore OUT --db DB --uploads-dir DIR   replaces the database and uploads (no server running)
--db and --uploads-dir default to CHAT_DB and CHAT_UPLOADS_DIR, then chat_app.db and uploads.
";

/// Reads the configuration from command-line arguments (without the program
/// name) and an environment lookup, so tests can pass both explicitly.
pub fn parse<I, E>(args: I, env: E) -> Result<Command, ConfigError>
where
    I: IntoIterator<Item = String>,
    E: Fn(&str) -> Option<String>,
{
    let args: Vec<String> = args.into_iter().collect();
    // Help is always available, even with a bad value in the environment.
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        return Ok(Command::Help);
    }
    if args.iter().any(|arg| arg == "--version") {
        return Ok(Command::Version);
    }
    if let Some(name) = args.first().filter(|arg| !arg.starts_with('-')) {
        return operation(name, &args[1..], &env).map(Command::Operation);
    }
    let mut config = Config::default();
    apply_env(&mut config, &env)?;
    let mut origins_from_flags = Vec::new();
    let mut proxies_from_flags = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag.to_string(), Some(value.to_string())),
            _ => (arg.clone(), None),
        };
        if !flag.starts_with("--") {
            return Err(ConfigError(format!("unexpected argument '{arg}' (see --help)")));
        }
        if flag == "--secure-cookies" {
            if inline.is_some() {
                return Err(ConfigError("--secure-cookies takes no value".into()));
            }
            config.secure_cookies = true;
            continue;
        }
        let repeatable = flag == "--allowed-origin" || flag == "--trusted-proxy";
        if !repeatable && !VALUE_FLAGS.iter().any(|(_, known)| *known == flag) {
            return Err(ConfigError(format!("unknown flag '{flag}' (see --help)")));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(ConfigError(format!("{flag} needs a value"))),
        };
        if flag == "--allowed-origin" {
            origins_from_flags.push(parse_origin(&flag, &value)?);
        } else if flag == "--trusted-proxy" {
            proxies_from_flags.push(parse_proxy(&flag, &value)?);
        } else {
            set(&mut config, &flag, &flag, &value)?;
        }
    }
    if !origins_from_flags.is_empty() {
        config.allowed_origins = origins_from_flags;
    }
    if !proxies_from_flags.is_empty() {
        config.trusted_proxies = proxies_from_flags;
    }
    Ok(Command::Serve(Box::new(config)))
}

/// The settings that take one value, with their environment variables.
const VALUE_FLAGS: [(&str, &str); 14] = [
    ("CHAT_ADDR", "--addr"),
    ("CHAT_DB", "--db"),
    ("CHAT_UPLOADS_DIR", "--uploads-dir"),
    ("CHAT_JWT_SECRET", "--jwt-secret"),
    ("CHAT_TOKEN_TTL", "--token-ttl"),
    ("CHAT_BCRYPT_COST", "--bcrypt-cost"),
    ("CHAT_MAX_UPLOAD_BYTES", "--max-upload-bytes"),
    ("CHAT_WS_RATE_LIMIT", "--ws-rate-limit"),
    ("CHAT_MAX_CONNECTIONS", "--max-connections"),
    ("CHAT_SYNCHRONOUS", "--synchronous"),
    ("CHAT_LOG", "--log"),
    ("CHAT_SESSION_MAX_AGE", "--session-max-age"),
    ("CHAT_LOGIN_THROTTLE", "--login-throttle"),
    ("CHAT_METRICS_ADDR", "--metrics-addr"),
];

fn apply_env<E: Fn(&str) -> Option<String>>(config: &mut Config, env: &E) -> Result<(), ConfigError> {
    for (var, flag) in VALUE_FLAGS {
        if let Some(value) = env(var) {
            set(config, var, flag, &value)?;
        }
    }
    if let Some(list) = env("CHAT_ALLOWED_ORIGINS") {
        config.allowed_origins = comma_list("CHAT_ALLOWED_ORIGINS", &list, parse_origin)?;
    }
    if let Some(list) = env("CHAT_TRUSTED_PROXIES") {
        config.trusted_proxies = comma_list("CHAT_TRUSTED_PROXIES", &list, parse_proxy)?;
    }
    if let Some(value) = env("CHAT_SECURE_COOKIES") {
        config.secure_cookies = match value.as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" | "" => false,
            other => {
                return Err(ConfigError(format!(
                    "CHAT_SECURE_COOKIES: expected 1 or 0, got '{other}'"
                )))
            }
        };
    }
    Ok(())
}

/// Sets the setting of `flag` from `value`; errors name `source` (the flag or
/// the environment variable the value came from).
fn set(config: &mut Config, source: &str, flag: &str, value: &str) -> Result<(), ConfigError> {
    match flag {
        "--addr" => config.addr = parse_value(source, value, "an address like 127.0.0.1:8001")?,
        #[cfg(feature = "postgres")]
        "--db" if is_postgres(value) => config.postgres = Some(value.to_string()),
        "--db" => config.db = database(source, value)?,
        "--uploads-dir" => config.uploads_dir = non_empty_path(source, value)?,
        "--jwt-secret" if value.len() < 16 => {
            return Err(ConfigError(format!("{source}: must be at least 16 bytes long")));
        }
        "--jwt-secret" => config.jwt_secret = Some(value.to_string()),
        "--token-ttl" => config.token_ttl = parse_range(source, value, 1, 365 * 24 * 3600)?,
        "--bcrypt-cost" => config.bcrypt_cost = parse_range(source, value, 4, 31)? as u32,
        "--max-upload-bytes" => config.max_upload_bytes = parse_range(source, value, 0, u64::MAX)?,
        "--ws-rate-limit" => config.ws_rate_limit = parse_range(source, value, 0, 1_000_000)? as u32,
        "--max-connections" => config.max_connections = parse_range(source, value, 1, 1_000_000)? as usize,
        "--synchronous" => config.synchronous = parse_value(source, value, "normal or full")?,
        "--log" => config.log = parse_value(source, value, "one of error, warn, info, debug")?,
        "--session-max-age" => config.session_max_age = parse_range(source, value, 1, 100 * 365 * 24 * 3600)?,
        "--login-throttle" => config.login_throttle = parse_range(source, value, 0, 1_000_000)? as u32,
        "--metrics-addr" => {
            config.metrics_addr = Some(parse_value(source, value, "an address like 127.0.0.1:9100")?);
        }
        _ => return Err(ConfigError(format!("unknown flag '{flag}' (see --help)"))),
    }
    Ok(())
}

/// An operations subcommand: `name`, then its flags and its one directory.
/// `--db` and `--uploads-dir` default like the server's own.
fn operation<E: Fn(&str) -> Option<String>>(name: &str, args: &[String], env: &E) -> Result<Operation, ConfigError> {
    let takes_paths = match name {
        "backup" | "restore" => true,
        "verify" => false,
        _ => return Err(ConfigError(format!("unexpected argument '{name}' (see --help)"))),
    };
    let defaults = Config::default();
    let mut db = env("CHAT_DB").unwrap_or_else(|| defaults.db.to_string_lossy().into_owned());
    let mut uploads_dir = env("CHAT_UPLOADS_DIR").map_or(defaults.uploads_dir, PathBuf::from);
    let mut out = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg.as_str(), None),
        };
        if !flag.starts_with("--") {
            if out.is_some() {
                return Err(ConfigError(format!("{name}: unexpected argument '{arg}'")));
            }
            out = Some(non_empty_path(name, arg)?);
            continue;
        }
        if !takes_paths || !matches!(flag, "--db" | "--uploads-dir") {
            return Err(ConfigError(format!("{name}: unknown flag '{flag}' (see --help)")));
        }
        let value = inline
            .or_else(|| args.next().cloned())
            .ok_or_else(|| ConfigError(format!("{flag} needs a value")))?;
        if flag == "--db" {
            db = non_empty_path(flag, &value)?.to_string_lossy().into_owned();
        } else {
            uploads_dir = non_empty_path(flag, &value)?;
        }
    }
    let out = out.ok_or_else(|| ConfigError(format!("{name}: which backup directory? (see --help)")))?;
    Ok(match name {
        "backup" => Operation::Backup { db, uploads_dir, out },
        "restore" => Operation::Restore { out, db, uploads_dir },
        _ => Operation::Verify { out },
    })
}

fn parse_value<T: std::str::FromStr>(flag: &str, value: &str, expected: &str) -> Result<T, ConfigError> {
    value
        .parse()
        .map_err(|_| ConfigError(format!("{flag}: '{value}' is not {expected}")))
}

fn parse_range(flag: &str, value: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    match value.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ConfigError(format!(
            "{flag}: '{value}' is not a whole number from {min} to {max}"
        ))),
    }
}

fn non_empty_path(flag: &str, value: &str) -> Result<PathBuf, ConfigError> {
    if value.is_empty() {
        return Err(ConfigError(format!("{flag}: must not be empty")));
    }
    Ok(PathBuf::from(value))
}

/// Whether `--db` names a PostgreSQL database (cluster mode).
fn is_postgres(value: &str) -> bool {
    value.starts_with("postgres://") || value.starts_with("postgresql://")
}

/// The SQLite file of `--db`. A build without the feature `postgres` has
/// no PostgreSQL code at all, and refuses a `postgres://` URL in one line.
fn database(flag: &str, value: &str) -> Result<PathBuf, ConfigError> {
    if is_postgres(value) {
        return Err(ConfigError(format!(
            "{flag}: this build has no PostgreSQL support (build with `--features postgres`)"
        )));
    }
    non_empty_path(flag, value)
}

/// The entries of a comma list from the variable `var`, each parsed by
/// `parse`; blanks are skipped.
fn comma_list<T>(
    var: &str,
    list: &str,
    parse: fn(&str, &str) -> Result<T, ConfigError>,
) -> Result<Vec<T>, ConfigError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| parse(var, s))
        .collect()
}

fn parse_proxy(flag: &str, value: &str) -> Result<Cidr, ConfigError> {
    value.parse().map_err(|e| ConfigError(format!("{flag}: {e}")))
}

/// Origins are compared as the browser sends them: `scheme://host[:port]`,
/// lower-cased, without a trailing slash.
fn parse_origin(flag: &str, value: &str) -> Result<String, ConfigError> {
    let origin = normalize_origin(value);
    let valid = ["http://", "https://"].iter().any(|scheme| {
        origin
            .strip_prefix(scheme)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    });
    if valid {
        Ok(origin)
    } else {
        Err(ConfigError(format!(
            "{flag}: '{value}' is not an origin like https://chat.example.com"
        )))
    }
}

/// An origin in the form browsers send it: lower case, no trailing slash, no
/// default port. The allowed origins are kept in this form, so a request's
/// `Origin` is compared after one normalisation of its own.
pub(crate) fn normalize_origin(origin: &str) -> String {
    let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    let default_port = if origin.starts_with("https://") { ":443" } else { ":80" };
    match origin.strip_suffix(default_port) {
        Some(bare) => bare.to_string(),
        None => origin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse_args(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse(args.iter().map(|s| s.to_string()), move |key| {
            env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        })
    }

    fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
        match parse_args(args, env).unwrap() {
            Command::Serve(config) => *config,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn operation(args: &[&str], env: &[(&str, &str)]) -> Result<Operation, ConfigError> {
        match parse_args(args, env)? {
            Command::Operation(operation) => Ok(operation),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn operations_take_their_directory_and_the_server_s_paths() {
        assert_eq!(
            operation(&["backup", "--db=a.db", "--uploads-dir", "up", "out"], &[]),
            Ok(Operation::Backup {
                db: "a.db".into(),
                uploads_dir: "up".into(),
                out: "out".into()
            })
        );
        assert_eq!(
            operation(&["restore", "out"], &[("CHAT_DB", "e.db"), ("CHAT_UPLOADS_DIR", "eu")]),
            Ok(Operation::Restore {
                out: "out".into(),
                db: "e.db".into(),
                uploads_dir: "eu".into()
            })
        );
        assert_eq!(
            operation(&["verify", "b"], &[]),
            Ok(Operation::Verify { out: "b".into() })
        );
        for (args, needle) in [
            (vec!["verify"], "which backup directory"),
            (vec!["verify", "b", "--db=x"], "unknown flag"),
            (vec!["backup", "a", "b"], "unexpected argument 'b'"),
            (vec!["backup", "--db"], "needs a value"),
            (vec!["restore", "--port=1", "b"], "unknown flag"),
            (vec!["frobnicate"], "unexpected argument"),
        ] {
            let err = operation(&args, &[]).unwrap_err().0;
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        assert!(matches!(parse_args(&["--version"], &[]), Ok(Command::Version)));
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = config(&[], &[]);
        assert_eq!(c.addr.to_string(), "127.0.0.1:8001");
        assert_eq!(c.db, PathBuf::from("chat_app.db"));
        assert_eq!(c.bcrypt_cost, 12);
        assert_eq!(c.ws_rate_limit, 20);
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.max_upload_bytes, 1_073_741_824);
    }

    #[test]
    fn flags_win_over_env_and_accept_both_spellings() {
        let c = config(
            &["--bcrypt-cost=5", "--token-ttl", "60"],
            &[("CHAT_BCRYPT_COST", "6"), ("CHAT_LOG", "debug")],
        );
        assert_eq!(c.bcrypt_cost, 5);
        assert_eq!(c.token_ttl, 60);
        assert_eq!(c.log, Level::Debug);
    }

    #[test]
    fn origins_come_from_repeated_flags_or_a_comma_list() {
        let c = config(
            &[],
            &[("CHAT_ALLOWED_ORIGINS", "https://a.example, http://b.example:8080/")],
        );
        assert_eq!(c.allowed_origins, vec!["https://a.example", "http://b.example:8080"]);
        let c = config(
            &[
                "--allowed-origin",
                "https://x.example",
                "--allowed-origin=https://y.example",
            ],
            &[],
        );
        assert_eq!(c.allowed_origins.len(), 2);
    }

    #[cfg(not(feature = "postgres"))]
    #[test]
    fn a_postgres_database_is_refused_by_a_build_without_the_feature() {
        for url in ["postgres://chat@db:5432/chat", "postgresql://db/chat"] {
            let err = parse_args(&["--db", url], &[]).unwrap_err();
            assert!(err.0.contains("no PostgreSQL support"), "{}", err.0);
            let err = parse_args(&[], &[("CHAT_DB", url)]).unwrap_err();
            assert!(err.0.starts_with("CHAT_DB: "), "{}", err.0);
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn a_postgres_database_selects_cluster_mode() {
        let c = config(&["--db", "postgres://chat@db:5432/chat"], &[]);
        assert_eq!(c.postgres.as_deref(), Some("postgres://chat@db:5432/chat"));
        assert_eq!(c.db, PathBuf::from("chat_app.db"));
    }

    #[test]
    fn bad_values_are_one_clear_line() {
        for (args, needle) in [
            (vec!["--bcrypt-cost", "99"], "--bcrypt-cost"),
            (vec!["--addr", "nowhere"], "--addr"),
            (vec!["--log", "loud"], "--log"),
            (vec!["--synchronous", "off"], "normal or full"),
            (vec!["--frobnicate", "1"], "unknown flag"),
            (vec!["--frobnicate"], "unknown flag"),
            (vec!["--secure-cookies=1"], "takes no value"),
            (vec!["stray"], "unexpected argument"),
            (vec!["--jwt-secret=short"], "at least 16 bytes"),
            (vec!["--max-connections=0"], "--max-connections"),
            (vec!["--db"], "needs a value"),
            (vec!["--allowed-origin", "evil"], "origin"),
            (vec!["--trusted-proxy", "10.0.0.0/33"], "--trusted-proxy"),
            (vec!["--session-max-age=0"], "--session-max-age"),
            (vec!["--login-throttle=-1"], "--login-throttle"),
        ] {
            let err = parse_args(&args, &[]).unwrap_err();
            assert!(err.0.contains(needle), "{args:?}: {}", err.0);
            assert!(!err.0.contains('\n'));
        }
        for (var, value) in [
            ("CHAT_TOKEN_TTL", "soon"),
            ("CHAT_LOG", "loud"),
            ("CHAT_SECURE_COOKIES", "maybe"),
            ("CHAT_ALLOWED_ORIGINS", "evil"),
            ("CHAT_JWT_SECRET", "short"),
            ("CHAT_TRUSTED_PROXIES", "10.0.0.1, nowhere"),
        ] {
            let err = parse_args(&[], &[(var, value)]).unwrap_err().0;
            assert!(err.starts_with(&format!("{var}: ")), "{err}");
            assert!(!err.contains("--"), "names the variable, not a flag: {err}");
        }
    }

    #[test]
    fn every_setting_is_read_from_its_flag_and_its_variable() {
        let values = [
            ("127.0.0.1:0", "--addr"),
            ("x.db", "--db"),
            ("up", "--uploads-dir"),
            ("0123456789abcdef", "--jwt-secret"),
            ("77", "--token-ttl"),
            ("5", "--bcrypt-cost"),
            ("1000", "--max-upload-bytes"),
            ("0", "--ws-rate-limit"),
            ("3", "--max-connections"),
            ("FULL", "--synchronous"),
            ("warn", "--log"),
            ("60", "--session-max-age"),
            ("0", "--login-throttle"),
            ("127.0.0.1:9100", "--metrics-addr"),
        ];
        let expected = |c: &Config| {
            c.addr.port() == 0
                && c.db.as_path() == Path::new("x.db")
                && c.uploads_dir.as_path() == Path::new("up")
                && c.jwt_secret.as_deref() == Some("0123456789abcdef")
                && (c.token_ttl, c.bcrypt_cost, c.max_upload_bytes) == (77, 5, 1000)
                && (c.ws_rate_limit, c.max_connections, c.log) == (0, 3, Level::Warn)
                && c.synchronous == Synchronous::Full
                && (c.session_max_age, c.login_throttle) == (60, 0)
                && c.metrics_addr.map(|a| a.port()) == Some(9100)
        };
        let flags: Vec<String> = values.iter().map(|(v, flag)| format!("{flag}={v}")).collect();
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        assert!(expected(&config(&flags, &[])));
        let env: Vec<(&str, &str)> = VALUE_FLAGS
            .iter()
            .map(|(var, flag)| (*var, values.iter().find(|(_, f)| f == flag).unwrap().0))
            .collect();
        assert!(expected(&config(&[], &env)));
        assert!(config(&["--secure-cookies"], &[]).secure_cookies);
        assert!(config(&[], &[("CHAT_SECURE_COOKIES", "1")]).secure_cookies);
    }

    #[test]
    fn trusted_proxies_come_from_repeated_flags_or_a_comma_list() {
        let c = config(&[], &[("CHAT_TRUSTED_PROXIES", "10.0.0.0/8, ::1")]);
        assert_eq!(
            c.trusted_proxies,
            ["10.0.0.0/8".parse().unwrap(), "::1".parse().unwrap()]
        );
        let c = config(
            &["--trusted-proxy", "192.0.2.1", "--trusted-proxy=2001:db8::/32"],
            &[("CHAT_TRUSTED_PROXIES", "10.0.0.0/8")],
        );
        assert_eq!(c.trusted_proxies.len(), 2);
        assert!(config(&[], &[]).trusted_proxies.is_empty());
        assert_eq!(config(&[], &[]).session_max_age, 2_592_000);
        assert_eq!(config(&[], &[]).login_throttle, 5);
    }

    #[test]
    fn help_is_recognised() {
        assert!(matches!(parse_args(&["--help"], &[]), Ok(Command::Help)));
        assert!(matches!(
            parse_args(&["--log=loud", "-h"], &[("CHAT_LOG", "loud")]),
            Ok(Command::Help)
        ));
    }
}
