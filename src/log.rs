//! Line-oriented logging to stderr. One global level, set once at start-up;
//! a line is written with a single `write` so lines from different tasks
//! never interleave. Request targets pass through [`redact`] first: a token in
//! a log file is a session anyone with read access to the logs could steal.

use std::borrow::Cow;
use std::io::Write;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error = 0,
    Warn = 1,
    Info = 2,
    Debug = 3,
}

impl FromStr for Level {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "error" => Ok(Level::Error),
            "warn" => Ok(Level::Warn),
            "info" => Ok(Level::Info),
            "debug" => Ok(Level::Debug),
            _ => Err(()),
        }
    }
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

pub(crate) fn enabled(level: Level) -> bool {
    level as u8 <= LEVEL.load(Ordering::Relaxed)
}

/// Whether lines are being held back (see [`hold`]); checked before taking
/// [`HELD`], so that logging pays for the mutex only during start-up.
static HOLDING: AtomicBool = AtomicBool::new(false);
/// Lines written while held; `None` when not holding.
static HELD: Mutex<Option<Vec<u8>>> = Mutex::new(None);

/// Holds back every line until [`release`]: the start-up's first line on
/// stderr must be `listening on`, printed only once the server is ready,
/// while getting ready (opening storage, recovering uploads) may log.
pub(crate) fn hold() {
    *crate::sync::lock(&HELD) = Some(Vec::new());
    HOLDING.store(true, Ordering::Release);
}

/// Writes the lines held back since [`hold`], and stops holding.
pub(crate) fn release() {
    let mut held = crate::sync::lock(&HELD);
    HOLDING.store(false, Ordering::Release);
    if let Some(lines) = held.take() {
        let _ = std::io::stderr().lock().write_all(&lines);
    }
}

/// Writes one line; callers go through the [`log!`](crate::log!) macro so that
/// the message is only formatted when its level is enabled.
pub(crate) fn write(level: Level, args: std::fmt::Arguments<'_>) {
    let line = format!(
        "{} {} {}\n",
        crate::clock::rfc3339_millis(crate::clock::now_millis()),
        level.label(),
        args
    );
    if HOLDING.load(Ordering::Acquire) {
        if let Some(held) = crate::sync::lock(&HELD).as_mut() {
            held.extend_from_slice(line.as_bytes());
            return;
        }
    }
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        if $crate::log::enabled($level) {
            $crate::log::write($level, format_args!($($arg)*));
        }
    };
}

/// Keeps secrets out of a logged request target: the value of every
/// `token=` query parameter, and the token of a share link's path
/// (`/d/<token>`, also in the absolute form `http://host/d/<token>`),
/// become `REDACTED`.
pub(crate) fn redact(target: &str) -> Cow<'_, str> {
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let path = redact_link(path);
    let query = query.map(|query| {
        if !query.split('&').any(|pair| pair.starts_with("token=")) {
            return Cow::Borrowed(query);
        }
        let pairs: Vec<&str> = query
            .split('&')
            .map(|pair| {
                if pair.starts_with("token=") {
                    "token=REDACTED"
                } else {
                    pair
                }
            })
            .collect();
        Cow::Owned(pairs.join("&"))
    });
    match (path, query) {
        (Cow::Borrowed(_), None | Some(Cow::Borrowed(_))) => Cow::Borrowed(target),
        (path, None) => Cow::Owned(path.into_owned()),
        (path, Some(query)) => Cow::Owned(format!("{path}?{query}")),
    }
}

/// `/d/<anything>` becomes `/d/REDACTED`, after the authority of an
/// absolute-form target if there is one.
fn redact_link(path: &str) -> Cow<'_, str> {
    let start = if path.starts_with('/') {
        0
    } else {
        match path.find("://") {
            Some(scheme_end) => path[scheme_end + 3..]
                .find('/')
                .map_or(path.len(), |i| scheme_end + 3 + i),
            None => return Cow::Borrowed(path),
        }
    };
    match path[start..].strip_prefix("/d/") {
        Some(rest) if !rest.is_empty() => Cow::Owned(format!("{}/d/REDACTED", &path[..start])),
        _ => Cow::Borrowed(path),
    }
}

/// Control bytes are escaped so a hostile request target cannot forge log lines.
pub(crate) fn printable(s: &str) -> Cow<'_, str> {
    if s.chars().all(|c| !c.is_control()) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.chars().flat_map(char::escape_default).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_query_strings_are_redacted() {
        assert_eq!(redact("/ws/chat?token=abc.def.ghi"), "/ws/chat?token=REDACTED");
        assert_eq!(redact("/ws/chat?a=1&token=x&b=2"), "/ws/chat?a=1&token=REDACTED&b=2");
        assert_eq!(redact("/history?offset=0"), "/history?offset=0");
        assert_eq!(redact("/ws/chat?mytoken=keep"), "/ws/chat?mytoken=keep");
    }

    #[test]
    fn share_link_tokens_are_redacted() {
        assert_eq!(redact("/d/0123abcd"), "/d/REDACTED");
        assert_eq!(redact("/d/0123abcd/extra?x=1"), "/d/REDACTED?x=1");
        assert_eq!(redact("/d/t?token=x"), "/d/REDACTED?token=REDACTED");
        assert_eq!(redact("http://host:8001/d/0123abcd"), "http://host:8001/d/REDACTED");
        assert_eq!(redact("/d/"), "/d/");
        assert_eq!(redact("/docs"), "/docs");
        assert_eq!(redact("/files/d/x"), "/files/d/x");
        assert!(matches!(redact("/files?offset=0"), Cow::Borrowed(_)));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("/a\r\nINFO fake"), "/a\\r\\nINFO fake");
        assert_eq!(printable("/plain"), "/plain");
    }

    #[test]
    fn levels_parse_and_order() {
        assert_eq!("WARN".parse::<Level>(), Ok(Level::Warn));
        assert!("loud".parse::<Level>().is_err());
        assert!(Level::Error < Level::Debug);
    }
}
