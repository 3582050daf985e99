//! `application/x-www-form-urlencoded` pairs, as used by login forms and
//! query strings: `+` is a space and `%XX` escapes are decoded (invalid UTF-8
//! becomes U+FFFD rather than an error, and the value then fails validation).

use std::borrow::Cow;

use percent_encoding::percent_decode_str;

/// The first value of `name`, if present. Only that value is decoded: a
/// WebSocket query carries a long token that the lookups of the other
/// parameters have no need to scan.
pub(crate) fn get<'a>(input: &'a str, name: &str) -> Option<Cow<'a, str>> {
    input.split('&').filter(|pair| !pair.is_empty()).find_map(|pair| {
        let (n, value) = pair.split_once('=').unwrap_or((pair, ""));
        (decode(n) == name).then(|| decode(value))
    })
}

fn decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['+', '%']) {
        return Cow::Borrowed(s);
    }
    let spaced = s.replace('+', " ");
    Cow::Owned(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_percent_escapes() {
        let form = "username=al+ice&password=p%40ss%2Bw&empty=&flag";
        for (name, value) in [
            ("username", "al ice"),
            ("password", "p@ss+w"),
            ("empty", ""),
            ("flag", ""),
        ] {
            assert_eq!(get(form, name).as_deref(), Some(value), "{name}");
        }
        assert_eq!(get("a=1&a=2", "a").as_deref(), Some("1"));
        assert_eq!(get("a=1", "b"), None);
        assert_eq!(get("a%20b=x+y&&flag&c", "a b").as_deref(), Some("x y"));
        assert_eq!(get("flag&c=1", "flag").as_deref(), Some(""));
    }
}
