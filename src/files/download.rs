//! `GET` and `HEAD /files/{id}`, and the same through a share link
//! (`/d/{token}`): the stored bytes, streamed from the open file by the
//! connection, with the validators and ranges of RFC 9110. Both routes only
//! decide which file the request may have, then go through one [`serve`].
//!
//! The response is built so that an uploaded file can never act as a page of
//! this site: it is always an attachment, its type is not sniffed, and a
//! `sandbox` policy applies should a browser render it anyway.

use std::fs::File;
use std::io;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{no_such_file, sharing, store, visible, Files};
use crate::api::{ApiError, Ctx};
use crate::db::files::FileRow;
use crate::descriptors;
use crate::http::request::{Method, Request};
use crate::http::response::{Body, Descriptor, Response};
use crate::log::Level;
use crate::metrics::METRICS;
use crate::sync::blocking;

/// RFC 5987 `attr-char`: everything else in `filename*` is percent-encoded.
const ATTR_CHAR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `GET /files/{id}`: for whoever may see the file (see [`super::visible`]).
pub(crate) async fn download(ctx: &mut Ctx<'_, '_>, files: &Files, id: &str) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    let row = visible(files, id, claims.uid).await?;
    serve(ctx.request, files, &row).await
}

/// `GET /d/{token}`: for anyone holding a live share link, without
/// authentication (see [`sharing::link_target`]).
pub(crate) async fn by_link(ctx: &mut Ctx<'_, '_>, files: &Files, token: &str) -> Result<Response, ApiError> {
    let row = sharing::link_target(files, token).await?;
    serve(ctx.request, files, &row).await
}

/// The one download path, whatever let the request in: the validators,
/// `304`, the range and the headers depend on the file and the request
/// only.
async fn serve(request: &Request, files: &Files, row: &FileRow) -> Result<Response, ApiError> {
    let etag = format!("\"{}\"", row.sha256);
    if request
        .header("if-none-match")
        .is_some_and(|value| etag_matches(value, &etag))
    {
        return Ok(validators(Response::new(304), &etag));
    }
    let (file, descriptor) = open(files, row).await?;
    // Range is defined for GET only (RFC 9110 14.2); HEAD shows the full response.
    let range = match request.header("range") {
        Some(value) if request.method == Method::Get && if_range_holds(request.header("if-range"), &etag) => {
            parse_range(value, row.size)
        }
        _ => Range::Full,
    };
    let (status, offset, len) = match range {
        Range::Full => (200, 0, row.size),
        Range::Part { first, last } => (206, first, last - first + 1),
        Range::Unsatisfiable => {
            return Err(ApiError::new(416, "the requested range is outside the file")
                .header("Content-Range", format!("bytes */{}", row.size)));
        }
    };
    let mut response = Response::new(status)
        .header("Content-Type", row.content_type.clone())
        .header("Content-Disposition", content_disposition(&row.filename));
    if status == 206 {
        response = response.header(
            "Content-Range",
            format!("bytes {offset}-{}/{}", offset + len - 1, row.size),
        );
    }
    METRICS.download_bytes.add(len);
    Ok(validators(response, &etag).with_body(Body::File {
        file,
        offset,
        len,
        descriptor,
    }))
}

/// Opens the bytes of `row`. A file deleted since its row was read (or
/// missing, see [`super::recover`]) is 404; a file whose length disagrees
/// with its row is a fault, refused rather than sent with a wrong length.
///
/// The open file is counted against the descriptor budget: with none to
/// spare the answer is 503 (see [`ApiError::storage`]).
async fn open(files: &Files, row: &FileRow) -> Result<(File, Descriptor), ApiError> {
    let descriptor = Descriptor::take().map_err(ApiError::storage)?;
    let path = store::path(&files.dir, &row.id);
    let opened = blocking(move || {
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        Ok((file, len))
    })
    .await;
    match opened {
        Ok((file, len)) if len == row.size => Ok((file, descriptor)),
        Ok((_, len)) => {
            crate::log!(Level::Error, "file {} has {len} bytes, its record {}", row.id, row.size);
            Err(ApiError::internal())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(no_such_file()),
        Err(e) if descriptors::is_exhausted(&e) => Err(ApiError::storage(e)),
        Err(e) => {
            crate::log!(Level::Error, "cannot open file {}: {e}", row.id);
            Err(ApiError::internal())
        }
    }
}

/// Headers shared by 200, 206 and 304.
fn validators(response: Response, etag: &str) -> Response {
    response
        .header("ETag", etag)
        .header("Accept-Ranges", "bytes")
        .header("Cache-Control", "private")
        .header("X-Content-Type-Options", "nosniff")
        .header("Content-Security-Policy", "sandbox")
}

/// `If-None-Match` uses the weak comparison: `W/"x"` matches `"x"`.
fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag)
}

/// `If-Range` uses the strong comparison, and a date never matches (the
/// server sends no `Last-Modified`): either way the full file is sent.
fn if_range_holds(header: Option<&str>, etag: &str) -> bool {
    header.is_none_or(|value| value.trim() == etag)
}

#[derive(Debug, PartialEq, Eq)]
enum Range {
    /// No usable single range: send the whole file.
    Full,
    /// Bytes `first..=last`, both within the file.
    Part {
        first: u64,
        last: u64,
    },
    Unsatisfiable,
}

/// One `bytes=` range against a file of `size` bytes. Several ranges, other
/// units and malformed values are ignored (the whole file is sent), as
/// RFC 9110 allows; a well-formed range that selects nothing is
/// unsatisfiable.
fn parse_range(header: &str, size: u64) -> Range {
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return Range::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Range::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Full;
    };
    // Digits only: `parse` alone would also take a leading `+`.
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        (true, _, Some(suffix)) if suffix > 0 && size > 0 => Range::Part {
            first: size.saturating_sub(suffix),
            last: size - 1,
        },
        (true, _, Some(_)) => Range::Unsatisfiable,
        (false, Some(first), None) if last.trim().is_empty() => satisfiable(first, u64::MAX, size),
        (false, Some(first), Some(last)) if first <= last => satisfiable(first, last, size),
        _ => Range::Full,
    }
}

fn satisfiable(first: u64, last: u64, size: u64) -> Range {
    if first >= size {
        Range::Unsatisfiable
    } else {
        Range::Part {
            first,
            last: last.min(size - 1),
        }
    }
}

/// `attachment` with an ASCII `filename` for old clients and the exact name
/// in `filename*` (RFC 6266). The fallback replaces every character that
/// could end the quoted string or is not ASCII.
fn content_disposition(name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(name, ATTR_CHAR_ESCAPES);
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_ranges() {
        let part = |first, last| Range::Part { first, last };
        assert_eq!(parse_range("bytes=0-0", 10), part(0, 0));
        assert_eq!(parse_range("bytes=9-9", 10), part(9, 9));
        assert_eq!(parse_range("bytes=2-", 10), part(2, 9));
        assert_eq!(parse_range("bytes=-3", 10), part(7, 9));
        assert_eq!(parse_range("bytes=-30", 10), part(0, 9));
        assert_eq!(parse_range("bytes=5-100", 10), part(5, 9));
        assert_eq!(parse_range(" Bytes = 1 - 2 ", 10), part(1, 2));
        assert_eq!(parse_range("bytes=0-18446744073709551615", 10), part(0, 9));
    }

    #[test]
    fn unsatisfiable_ranges() {
        for header in ["bytes=10-", "bytes=10-20", "bytes=-0"] {
            assert_eq!(parse_range(header, 10), Range::Unsatisfiable, "{header}");
        }
        for header in ["bytes=0-", "bytes=-1", "bytes=0-0"] {
            assert_eq!(parse_range(header, 0), Range::Unsatisfiable, "{header}");
        }
    }

    #[test]
    fn other_ranges_are_ignored() {
        for header in [
            "bytes=0-1,3-4",
            "bytes=0-1, 3-4",
            "items=0-1",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=5-2",
            "bytes=+1-2",
            "bytes=1-2-3",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(parse_range(header, 10), Range::Full, "{header}");
        }
    }

    #[test]
    fn etags_compare() {
        let etag = "\"abc\"";
        assert!(etag_matches("\"abc\"", etag));
        assert!(etag_matches("W/\"abc\"", etag));
        assert!(etag_matches("\"x\", \"abc\"", etag));
        assert!(etag_matches("*", etag));
        assert!(!etag_matches("\"abcd\"", etag));
        assert!(!etag_matches("abc", etag));
        assert!(if_range_holds(None, etag));
        assert!(if_range_holds(Some("\"abc\""), etag));
        assert!(!if_range_holds(Some("W/\"abc\""), etag));
        assert!(!if_range_holds(Some("Wed, 21 Oct 2015 07:28:00 GMT"), etag));
    }

    #[test]
    fn dispositions_are_safe_and_exact() {
        assert_eq!(
            content_disposition("résumé 東京.txt"),
            "attachment; filename=\"r_sum_ __.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%9D%B1%E4%BA%AC.txt"
        );
        assert_eq!(
            content_disposition("say \"hi\"\\;x.txt"),
            "attachment; filename=\"say _hi__;x.txt\"; filename*=UTF-8''say%20%22hi%22%5C%3Bx.txt"
        );
        assert_eq!(
            content_disposition("a!#$&+-.^_`|~b"),
            "attachment; filename=\"a!#$&+-.^_`|~b\"; filename*=UTF-8''a!#$&+-.^_`|~b"
        );
    }
}
