//! Command-line flags, parsed by hand.
//!
//! Every flag takes a value, as `--clients 100` or `--clients=100`; `-h` or
//! `--help` anywhere asks for the subcommand's help. Each subcommand names the
//! flags it knows, so a misspelt flag is an error instead of a silently
//! ignored setting. Values are checked when a subcommand reads them, and the
//! error names the flag.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use crate::http::Target;

#[derive(Debug, PartialEq)]
pub enum ArgError {
    /// `-h` or `--help` was given: print the help and exit 0.
    Help,
    /// A bad command line: print this and exit 2.
    Bad(String),
}

pub fn bad(message: impl Into<String>) -> ArgError {
    ArgError::Bad(message.into())
}

/// The flags every subcommand accepts, described in `COMMON_HELP`.
const COMMON_FLAGS: &[&str] = &["--url", "--server-pid", "--password", "--timeout"];

pub const COMMON_HELP: &str = "\
Common flags:
  --url URL[,URL]    the server, http://host[:port] (default http://127.0.0.1:8001);
                     several, comma-separated, are nodes of one cluster: users
                     register on the first, connections go round-robin over all
  --server-pid PID[,PID]  read the server's VmRSS/VmHWM from /proc/PID/status
                     before and after, and its CPU time; several add up
  --password PASS    password of the users the run registers (default benchpass)
  --timeout SECS     the whole run, set-up included, ends by then (default 120)
  -h, --help         this help

Each run registers its own users (random names bench_<tag>_<n>) and logs each in
once; a user's token is shared by all of its connections. It prints a summary,
then one JSON line of figures as the last line of stdout. It exits 1 if the
server cannot be used or the run saw errors (lost messages, non-2xx answers),
after printing what it measured.";

/// The flags of one command line, by name, as given.
#[derive(Debug)]
pub struct Flags {
    values: HashMap<String, String>,
}

impl Flags {
    /// Splits `argv` into flag values, accepting `known` plus the common flags.
    pub fn parse(argv: &[String], known: &[&str]) -> Result<Flags, ArgError> {
        if argv.iter().any(|a| a == "-h" || a == "--help") {
            return Err(ArgError::Help);
        }
        let mut values = HashMap::new();
        let mut rest = argv.iter();
        while let Some(arg) = rest.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (arg.as_str(), None),
            };
            if !name.starts_with("--") {
                return Err(bad(format!("unexpected argument '{arg}'")));
            }
            if !known.contains(&name) && !COMMON_FLAGS.contains(&name) {
                return Err(bad(format!("unknown flag '{name}'")));
            }
            let value = match inline {
                Some(value) => value,
                None => match rest.next() {
                    Some(value) if !value.starts_with("--") => value.clone(),
                    _ => return Err(bad(format!("{name} needs a value"))),
                },
            };
            if values.insert(name.to_string(), value).is_some() {
                return Err(bad(format!("{name} given twice")));
            }
        }
        Ok(Flags { values })
    }

    /// The flag's value parsed as a `T`, or `None` when it was not given.
    pub fn opt<T: FromStr>(&self, name: &str) -> Result<Option<T>, ArgError> {
        self.opt_with(name, "a number", |v| v.parse().ok())
    }

    /// The flag's value parsed as a `T`, or `default`.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> Result<T, ArgError> {
        Ok(self.opt(name)?.unwrap_or(default))
    }

    /// The flag's value parsed by `parse`; `what` names the expected form in the error.
    pub fn opt_with<T>(
        &self,
        name: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, ArgError> {
        match self.values.get(name) {
            None => Ok(None),
            Some(value) => parse(value)
                .map(Some)
                .ok_or_else(|| bad(format!("{name}: expected {what}, got '{value}'"))),
        }
    }

    /// A duration in seconds (`2`, `0.5`, `2s` or `500ms`), or `default`.
    pub fn secs(&self, name: &str, default: Duration) -> Result<Duration, ArgError> {
        Ok(self
            .opt_with(name, "seconds (e.g. 2, 0.5, 500ms)", parse_duration)?
            .unwrap_or(default))
    }
}

/// `2`, `0.5`, `2s` or `500ms`; zero or negative is refused.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (number, scale) = match text.strip_suffix("ms") {
        Some(ms) => (ms, 1e-3),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    let secs = number.parse::<f64>().ok()? * scale;
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

/// A byte count with an optional binary suffix: `1000`, `64K`, `100MiB`, `1G`.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim_end_matches(['B', 'b']);
    let text = text.strip_suffix('i').unwrap_or(text);
    let (number, shift) = match text.chars().last()? {
        'k' | 'K' => (&text[..text.len() - 1], 10),
        'm' | 'M' => (&text[..text.len() - 1], 20),
        'g' | 'G' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    number.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// What every subcommand needs besides its own flags.
#[derive(Debug, PartialEq)]
pub struct Common {
    /// One, or the nodes of a cluster; never empty.
    pub targets: Vec<Target>,
    pub server_pids: Vec<u32>,
    pub password: String,
    pub timeout: Duration,
}

impl Common {
    pub fn from_flags(flags: &Flags) -> Result<Common, ArgError> {
        let url = flags
            .opt::<String>("--url")?
            .unwrap_or_else(|| "http://127.0.0.1:8001".to_string());
        let targets = url
            .split(',')
            .map(|url| Target::parse(url).map_err(|e| bad(format!("--url: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let password = flags.get("--password", "benchpass".to_string())?;
        if !(4..=72).contains(&password.len()) {
            return Err(bad("--password: the server wants 4 to 72 bytes"));
        }
        let pids = |v: &str| v.split(',').map(|pid| pid.parse().ok()).collect();
        Ok(Common {
            targets,
            server_pids: flags.opt_with("--server-pid", "process ids", pids)?.unwrap_or_default(),
            password,
            timeout: flags.secs("--timeout", Duration::from_secs(120))?,
        })
    }
}

/// A command line from one string of space-separated words, for tests.
#[cfg(test)]
pub fn argv(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why `line` is refused by a subcommand that knows `known`.
    fn refused(line: &str, known: &[&str]) -> ArgError {
        Flags::parse(&argv(line), known).unwrap_err()
    }

    #[test]
    fn values_are_taken_after_a_space_or_an_equals_sign() {
        let flags = Flags::parse(&argv("--clients 5 --senders=2"), &["--clients", "--senders"]).unwrap();
        assert_eq!(flags.get("--clients", 0u32), Ok(5));
        assert_eq!(flags.get("--senders", 0u32), Ok(2));
        assert_eq!(flags.get("--window", 7u32), Ok(7));
    }

    #[test]
    fn unknown_flags_and_stray_words_are_refused() {
        assert_eq!(refused("--clinets 5", &["--clients"]), bad("unknown flag '--clinets'"));
        assert_eq!(refused("5", &["--clients"]), bad("unexpected argument '5'"));
    }

    #[test]
    fn a_flag_without_value_or_given_twice_is_refused() {
        assert_eq!(
            refused("--clients --senders 2", &["--clients", "--senders"]),
            bad("--clients needs a value")
        );
        assert_eq!(refused("--clients", &["--clients"]), bad("--clients needs a value"));
        assert_eq!(
            refused("--clients 1 --clients=2", &["--clients"]),
            bad("--clients given twice")
        );
    }

    #[test]
    fn help_anywhere_wins() {
        assert_eq!(refused("--bogus x -h", &[]), ArgError::Help);
        assert_eq!(refused("--help", &[]), ArgError::Help);
    }

    #[test]
    fn a_bad_number_names_the_flag() {
        let flags = Flags::parse(&argv("--clients many"), &["--clients"]).unwrap();
        assert_eq!(
            flags.get("--clients", 1u32),
            Err(bad("--clients: expected a number, got 'many'"))
        );
    }

    #[test]
    fn durations_take_seconds_or_milliseconds() {
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), None);
        assert_eq!(parse_duration("-1"), None);
        assert_eq!(parse_duration("soon"), None);
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("100MiB"), Some(100 << 20));
        assert_eq!(parse_size("3mb"), Some(3 << 20));
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("1.5G"), None);
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("99999999999999G"), None);
    }

    #[test]
    fn common_flags_have_defaults() {
        let common = Common::from_flags(&Flags::parse(&[], &[]).unwrap()).unwrap();
        assert_eq!(common.targets, [Target::parse("http://127.0.0.1:8001").unwrap()]);
        assert!(common.server_pids.is_empty());
        assert_eq!(common.password, "benchpass");
        assert_eq!(common.timeout, Duration::from_secs(120));
    }

    #[test]
    fn common_flags_are_checked() {
        let parse = |line: &str| Common::from_flags(&Flags::parse(&argv(line), &[]).unwrap());
        let common = parse("--url http://localhost:9000/ --server-pid 42 --timeout 5").unwrap();
        assert_eq!(
            common.targets,
            [Target {
                host: "localhost".into(),
                port: 9000
            }]
        );
        assert_eq!(common.server_pids, [42]);
        assert_eq!(common.timeout, Duration::from_secs(5));
        assert!(parse("--url https://x").is_err());
        assert!(parse("--password abc").is_err());
        assert!(parse("--server-pid me").is_err());
        assert!(parse("--server-pid 1,").is_err());
        assert!(parse("--url http://a:1,").is_err());
    }

    #[test]
    fn a_cluster_is_several_urls_and_pids() {
        let flags = Flags::parse(&argv("--url http://a:1,http://b:2 --server-pid 7,8"), &[]).unwrap();
        let common = Common::from_flags(&flags).unwrap();
        let ports: Vec<u16> = common.targets.iter().map(|t| t.port).collect();
        assert_eq!(ports, [1, 2]);
        assert_eq!(common.server_pids, [7, 8]);
    }
}
