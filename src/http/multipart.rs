//! Streaming `multipart/form-data` parser (RFC 7578 over the framing of RFC 2046).
//!
//! The upload handler feeds it the request body in whatever chunks arrive and gets
//! back events: a part begins (with its decoded headers), bytes of that part, the
//! part ends, the body ends. It is a pure state machine over bytes with no I/O, so
//! it is tested with every split of its input, and its memory does not grow with
//! the body: part bytes are handed back as slices of the caller's own input, only a
//! tail that could still turn out to be a delimiter is left unconsumed, and at most
//! one part's header block (bounded by [`Limits::max_part_header_bytes`]) is copied.

use std::fmt;

use memchr::memmem;
use percent_encoding::percent_decode_str;

use super::is_token;

/// RFC 2046: a boundary is 1 to 70 characters.
const MAX_BOUNDARY_LEN: usize = 70;
const CRLF: &[u8] = b"\r\n";
/// The empty line that ends a header block, seen together with the end of the line before it.
const BLANK_LINE: &[u8] = b"\r\n\r\n";
/// Optional whitespace around `;` and `=` in header parameters.
const OWS: [char; 2] = [' ', '\t'];

/// Parse the boundary out of a Content-Type header value.
///
/// `Err(MultipartError::NotMultipart)` if the media type is not `multipart/form-data`
/// (the caller answers 415); `Err(MultipartError::BadBoundary)` if the boundary
/// parameter is missing, empty, over 70 characters, or has characters RFC 2046
/// forbids, or if the parameters cannot be read at all (the caller answers 400).
/// Quoted and unquoted values are accepted, names are case-insensitive and the
/// parameters may come in any order.
pub(crate) fn boundary_from_content_type(value: &str) -> Result<Vec<u8>, MultipartError> {
    let (media_type, params) = split_parameters(value);
    if !media_type.eq_ignore_ascii_case("multipart/form-data") {
        return Err(MultipartError::NotMultipart);
    }
    let params = Params::parse(params).ok_or(MultipartError::BadBoundary)?;
    match params.get("boundary") {
        Some(boundary) if is_valid_boundary(boundary) => Ok(boundary.as_bytes().to_vec()),
        _ => Err(MultipartError::BadBoundary),
    }
}

/// RFC 2046 `bchars`: letters, digits and `'()+_,-./:=?` plus space, which may not end it.
fn is_valid_boundary(boundary: &str) -> bool {
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(b);
    (1..=MAX_BOUNDARY_LEN).contains(&boundary.len())
        && boundary.bytes().all(|b| allowed(&b))
        && !boundary.ends_with(' ')
}

/// Bounds on what one body may make the parser hold or produce; breaking one is a
/// framing error, so a hostile body cannot make the server buffer or loop at will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Largest header block of one part, its terminating empty line included.
    pub max_part_header_bytes: usize,
    /// Most parts in one body.
    pub max_parts: usize,
}

impl Default for Limits {
    /// The contract's limits: 8 KiB of headers per part, 100 parts.
    fn default() -> Self {
        Limits {
            max_part_header_bytes: 8 * 1024,
            max_parts: 100,
        }
    }
}

/// What a part's headers say about it. Every field is client-supplied metadata, kept
/// verbatim (`../`, quotes and percent-decoded control characters included): whoever
/// stores, shows or sends it on must escape it, and it never names a path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PartHeaders {
    /// `name` of `Content-Disposition: form-data`.
    pub name: Option<String>,
    /// `filename*=UTF-8''...` (RFC 5987, percent-decoded) if it decodes, else `filename`.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if any, as sent.
    pub content_type: Option<String>,
}

/// One thing the parser found, in body order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// A part begins.
    Part(PartHeaders),
    /// Bytes of the current part's body, in order: a slice of the caller's input.
    Data(&'a [u8]),
    /// The current part's body is complete.
    PartEnd,
    /// The closing boundary was seen; the epilogue after it is ignored. Every later
    /// call answers `End` again, so a caller may stop at the first.
    End,
}

/// The result of one [`Parser::step`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Step<'a> {
    /// How many bytes at the front of the input the caller may now drop.
    pub consumed: usize,
    /// `None`: nothing more can be decided without more input.
    pub event: Option<Event<'a>>,
}

/// Why a body (or its Content-Type) is not acceptable multipart/form-data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultipartError {
    /// The media type is not `multipart/form-data` (HTTP 415).
    NotMultipart,
    /// The boundary parameter is missing or not a valid RFC 2046 boundary.
    BadBoundary,
    /// A part's header block is over [`Limits::max_part_header_bytes`].
    PartHeaderTooLarge,
    /// The body has more than [`Limits::max_parts`] parts.
    TooManyParts,
    /// A header line without a colon, a bad header name or parameter, or a part
    /// without `Content-Disposition: form-data`.
    MalformedPartHeader,
    /// A boundary line followed by something other than transport padding and CRLF.
    MalformedDelimiter,
    /// The input ended before the closing boundary.
    Truncated,
}

impl fmt::Display for MultipartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MultipartError::NotMultipart => "the request body must be multipart/form-data",
            MultipartError::BadBoundary => "the multipart boundary is missing or invalid",
            MultipartError::PartHeaderTooLarge => "a multipart part has too large a header",
            MultipartError::TooManyParts => "the multipart body has too many parts",
            MultipartError::MalformedPartHeader => "a multipart part header is malformed",
            MultipartError::MalformedDelimiter => "a multipart boundary line is malformed",
            MultipartError::Truncated => "the multipart body ended before its closing boundary",
        })
    }
}

impl std::error::Error for MultipartError {}

/// Where the parser stands in the body.
#[derive(Debug)]
enum State {
    /// Nothing consumed yet: the first delimiter may open the body without its CRLF.
    Start,
    /// Skipping the preamble up to the first delimiter.
    Preamble,
    /// Just past the `--boundary` of a delimiter: `--` closes the body, padding or
    /// CRLF opens a part.
    AfterDelimiter,
    /// Skipping transport padding up to the CRLF that ends a delimiter line.
    Padding,
    /// Copying one part's header block into `Parser::header`.
    Headers,
    /// Inside a part's body.
    Body,
    /// The closing delimiter was seen; all that follows is epilogue.
    Done,
    /// An error was returned; it is returned again on every later call.
    Failed(MultipartError),
}

/// What one state did with the input it was shown.
enum Outcome<'a> {
    /// Consumed this many bytes or moved to another state: go on with the rest.
    Advance(usize),
    /// Consumed this many bytes and found an event for the caller.
    Emit(usize, Event<'a>),
    /// Consumed this many bytes; the rest is too short to decide anything.
    NeedMore(usize),
}

/// Streaming parser of one `multipart/form-data` body. See the module docs.
#[derive(Debug)]
pub(crate) struct Parser {
    /// A searcher for `CRLF--boundary`, what ends every part body (its `needle()`).
    /// Its CR appears nowhere else in it (boundaries have no control characters), which
    /// keeps the search linear.
    delimiter: memmem::Finder<'static>,
    limits: Limits,
    state: State,
    /// Parts begun so far, counted when their delimiter line is seen.
    parts: usize,
    /// The header block being read, behind the CRLF that ended the delimiter line, so
    /// that even an empty block ends at the first `CRLF CRLF`. Never longer than the
    /// limit plus that CRLF plus one byte.
    header: Vec<u8>,
}

impl Parser {
    /// A parser for a body whose Content-Type gave `boundary` (see
    /// [`boundary_from_content_type`], which also checks it is a valid one).
    pub(crate) fn new(boundary: &[u8], limits: Limits) -> Parser {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary);
        Parser {
            delimiter: memmem::Finder::new(&delimiter).into_owned(),
            limits,
            state: State::Start,
            parts: 0,
            header: Vec::new(),
        }
    }

    /// Parse as much of `input` as possible. The caller drops the first `consumed`
    /// bytes of its buffer and calls again with the rest plus any new bytes.
    ///
    /// `event: None` means "need more input"; it is never the answer when `eof` says
    /// no more bytes will come, so every call consumes bytes, yields an event, asks
    /// for more or fails. At `eof` a missing closing boundary is `Err(Truncated)`.
    /// Errors are final: the same one is returned on every later call.
    pub(crate) fn step<'a>(&mut self, input: &'a [u8], eof: bool) -> Result<Step<'a>, MultipartError> {
        let mut consumed = 0;
        loop {
            let outcome = match self.advance(&input[consumed..]) {
                Ok(outcome) => outcome,
                Err(error) => return Err(self.fail(error)),
            };
            match outcome {
                Outcome::Advance(n) => consumed += n,
                Outcome::Emit(n, event) => {
                    let consumed = consumed + n;
                    return Ok(Step {
                        consumed,
                        event: Some(event),
                    });
                }
                Outcome::NeedMore(_) if eof => return Err(self.fail(MultipartError::Truncated)),
                Outcome::NeedMore(n) => {
                    let consumed = consumed + n;
                    return Ok(Step { consumed, event: None });
                }
            }
        }
    }

    /// Runs the current state on `input`. Only `Start -> Preamble` and
    /// `AfterDelimiter -> Padding` advance without consuming, and neither state can be
    /// reached again without consuming, so `step` always terminates.
    fn advance<'a>(&mut self, input: &'a [u8]) -> Result<Outcome<'a>, MultipartError> {
        match self.state {
            State::Start => Ok(self.start(input)),
            State::Preamble => Ok(self.skip_preamble(input)),
            State::AfterDelimiter => self.after_delimiter(input),
            State::Padding => self.skip_padding(input),
            State::Headers => self.read_headers(input),
            State::Body => Ok(self.read_body(input)),
            State::Done => Ok(Outcome::Emit(input.len(), Event::End)),
            State::Failed(error) => Err(error),
        }
    }

    fn fail(&mut self, error: MultipartError) -> MultipartError {
        self.state = State::Failed(error);
        error
    }

    /// The body may open with `--boundary` directly, without the CRLF of later delimiters.
    fn start(&mut self, input: &[u8]) -> Outcome<'static> {
        let dash_boundary = &self.delimiter.needle()[CRLF.len()..];
        match delimiter_at(input, dash_boundary) {
            Match::Yes => {
                self.state = State::AfterDelimiter;
                Outcome::Advance(dash_boundary.len())
            }
            Match::No => {
                self.state = State::Preamble;
                Outcome::Advance(0)
            }
            Match::NeedMore => Outcome::NeedMore(0),
        }
    }

    /// The preamble is dropped as it is scanned, so it costs no memory whatever its size.
    fn skip_preamble(&mut self, input: &[u8]) -> Outcome<'static> {
        match find_delimiter(input, &self.delimiter) {
            Search::Delimiter(at) => {
                self.state = State::AfterDelimiter;
                Outcome::Advance(at + self.delimiter.needle().len())
            }
            Search::Clear(upto) => Outcome::NeedMore(upto),
        }
    }

    fn after_delimiter(&mut self, input: &[u8]) -> Result<Outcome<'static>, MultipartError> {
        match input {
            [] | [b'-'] => Ok(Outcome::NeedMore(0)),
            [b'-', b'-', ..] => {
                self.state = State::Done;
                Ok(Outcome::Emit(2, Event::End))
            }
            [b' ' | b'\t' | b'\r', ..] => self.begin_part(),
            _ => Err(MultipartError::MalformedDelimiter),
        }
    }

    /// Parts are counted at their delimiter line, so a body with too many is refused
    /// before the extra part's headers are even read.
    fn begin_part(&mut self) -> Result<Outcome<'static>, MultipartError> {
        self.parts += 1;
        if self.parts > self.limits.max_parts {
            return Err(MultipartError::TooManyParts);
        }
        self.state = State::Padding;
        Ok(Outcome::Advance(0))
    }

    /// Padding is consumed as it comes, so however much of it there is, none is held.
    fn skip_padding(&mut self, input: &[u8]) -> Result<Outcome<'static>, MultipartError> {
        let padding = input.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        match &input[padding..] {
            [] | [b'\r'] => Ok(Outcome::NeedMore(padding)),
            [b'\r', b'\n', ..] => {
                self.header.clear();
                self.header.extend_from_slice(CRLF);
                self.state = State::Headers;
                Ok(Outcome::Advance(padding + CRLF.len()))
            }
            _ => Err(MultipartError::MalformedDelimiter),
        }
    }

    /// Copies header bytes until the empty line, never past one byte over the limit,
    /// so an endless header is refused as soon as it is too long.
    fn read_headers(&mut self, input: &[u8]) -> Result<Outcome<'static>, MultipartError> {
        let limit = self.limits.max_part_header_bytes;
        let before = self.header.len();
        let room = limit.saturating_add(CRLF.len() + 1).saturating_sub(before);
        let take = input.len().min(room);
        self.header.extend_from_slice(&input[..take]);
        // Earlier calls found no empty line in `header[..before]`; one may straddle it.
        let search_from = before.saturating_sub(BLANK_LINE.len() - 1);
        let Some(offset) = find(&self.header[search_from..], BLANK_LINE) else {
            if self.header.len() - CRLF.len() > limit {
                return Err(MultipartError::PartHeaderTooLarge);
            }
            return Ok(Outcome::NeedMore(take));
        };
        let end = search_from + offset + BLANK_LINE.len();
        if end - CRLF.len() > limit {
            return Err(MultipartError::PartHeaderTooLarge);
        }
        let headers = parse_header_block(&self.header[CRLF.len()..end - CRLF.len()])?;
        self.state = State::Body;
        Ok(Outcome::Emit(end - before, Event::Part(headers)))
    }

    /// Hands on every byte that cannot begin the delimiter, holding back only a tail
    /// that still might (at most the delimiter and the byte after it).
    fn read_body<'a>(&mut self, input: &'a [u8]) -> Outcome<'a> {
        let clear = match find_delimiter(input, &self.delimiter) {
            Search::Delimiter(0) => {
                self.state = State::AfterDelimiter;
                return Outcome::Emit(self.delimiter.needle().len(), Event::PartEnd);
            }
            Search::Delimiter(at) => at,
            Search::Clear(upto) => upto,
        };
        if clear == 0 {
            Outcome::NeedMore(0)
        } else {
            Outcome::Emit(clear, Event::Data(&input[..clear]))
        }
    }
}

/// Whether a delimiter begins at the front of some input.
enum Match {
    Yes,
    No,
    /// The input ends before it can be told.
    NeedMore,
}

/// A delimiter is `delimiter` followed by `--` (closing), transport padding or CR. A
/// boundary followed by anything else is part of the body that merely looks like one.
///
/// Deciding needs at most two bytes past `delimiter`; at the end of the input the
/// answer is `NeedMore`, which the caller turns into "not yet" or, at end of input,
/// into `Truncated`, so no decision ever depends on how the input was split.
fn delimiter_at(input: &[u8], delimiter: &[u8]) -> Match {
    let known = input.len().min(delimiter.len());
    if input[..known] != delimiter[..known] {
        return Match::No;
    }
    match input.get(delimiter.len()..).unwrap_or_default() {
        [] | [b'-'] => Match::NeedMore,
        [b' ' | b'\t' | b'\r', ..] | [b'-', b'-', ..] => Match::Yes,
        _ => Match::No,
    }
}

/// Where the first delimiter in some input is, if it can be told.
enum Search {
    /// A delimiter begins at this offset.
    Delimiter(usize),
    /// No delimiter begins before this offset; from there on, the input ends inside
    /// something that may yet become one.
    Clear(usize),
}

/// Scans `input` for `delimiter`. Whole occurrences are found with a vectorised
/// substring search (a byte-at-a-time scan for CR was the slowest step of an upload);
/// a delimiter cut off by the end of the input can only begin within its last
/// `needle().len()` bytes, so only CRs there are checked for a partial one.
fn find_delimiter(input: &[u8], delimiter: &memmem::Finder<'_>) -> Search {
    let needle = delimiter.needle();
    let mut from = 0;
    while let Some(offset) = delimiter.find(&input[from..]) {
        let at = from + offset;
        match delimiter_at(&input[at..], needle) {
            Match::Yes => return Search::Delimiter(at),
            Match::NeedMore => return Search::Clear(at),
            Match::No => from = at + 1,
        }
    }
    let tail = from.max((input.len() + 1).saturating_sub(needle.len()));
    for at in memchr::memchr_iter(b'\r', &input[tail..]).map(|offset| tail + offset) {
        if let Match::NeedMore = delimiter_at(&input[at..], needle) {
            return Search::Clear(at);
        }
    }
    Search::Clear(input.len())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Reads a header block: lines each ending in CRLF, the empty line already cut off.
fn parse_header_block(mut block: &[u8]) -> Result<PartHeaders, MultipartError> {
    let mut disposition = None;
    let mut content_type = None;
    while let Some(end) = find(block, CRLF) {
        let (name, value) = split_header_line(&block[..end])?;
        if name.eq_ignore_ascii_case(b"content-disposition") {
            set_once(&mut disposition, value)?;
        } else if name.eq_ignore_ascii_case(b"content-type") {
            set_once(&mut content_type, value)?;
        }
        block = &block[end + CRLF.len()..];
    }
    let disposition = disposition.ok_or(MultipartError::MalformedPartHeader)?;
    let (name, filename) = parse_content_disposition(&disposition)?;
    Ok(PartHeaders {
        name,
        filename,
        content_type,
    })
}

/// A header that says two things about the same part is refused rather than guessed at.
fn set_once(slot: &mut Option<String>, value: String) -> Result<(), MultipartError> {
    match slot {
        Some(_) => Err(MultipartError::MalformedPartHeader),
        None => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// Splits `Name: value`. Bare CR, LF or NUL are refused: they would let one header
/// line pose as two wherever it is written out again. Values that are not UTF-8
/// (a legacy client's file name) are kept with replacement characters.
fn split_header_line(line: &[u8]) -> Result<(&[u8], String), MultipartError> {
    if line.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        return Err(MultipartError::MalformedPartHeader);
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(MultipartError::MalformedPartHeader)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if !is_token(name) {
        return Err(MultipartError::MalformedPartHeader);
    }
    Ok((name, String::from_utf8_lossy(value.trim_ascii()).into_owned()))
}

/// A form field's name and, for a file field, the client's file name.
type NameAndFilename = (Option<String>, Option<String>);

/// `form-data; name="..."; filename="..."` into the name and the file name, the
/// RFC 5987 `filename*` winning over `filename` when it can be decoded.
fn parse_content_disposition(value: &str) -> Result<NameAndFilename, MultipartError> {
    let (kind, params) = split_parameters(value);
    if !kind.eq_ignore_ascii_case("form-data") {
        return Err(MultipartError::MalformedPartHeader);
    }
    let params = Params::parse(params).ok_or(MultipartError::MalformedPartHeader)?;
    let name = params.get("name").map(str::to_owned);
    let filename = params
        .get("filename*")
        .and_then(decode_ext_value)
        .or_else(|| params.get("filename").map(str::to_owned));
    Ok((name, filename))
}

/// RFC 5987 `charset'language'percent-encoded`, in UTF-8 or ISO-8859-1; `None` for
/// anything else, so that the plain `filename` is used instead.
fn decode_ext_value(value: &str) -> Option<String> {
    let mut fields = value.splitn(3, '\'');
    let (charset, _language, encoded) = (fields.next()?, fields.next()?, fields.next()?);
    let bytes: Vec<u8> = percent_decode_str(encoded).collect();
    if charset.eq_ignore_ascii_case("utf-8") {
        String::from_utf8(bytes).ok()
    } else if charset.eq_ignore_ascii_case("iso-8859-1") {
        Some(bytes.into_iter().map(char::from).collect())
    } else {
        None
    }
}

/// Splits a header value into its trimmed leading token and the rest, which is empty
/// or starts with `;`.
fn split_parameters(value: &str) -> (&str, &str) {
    let end = value.find(';').unwrap_or(value.len());
    let (kind, params) = value.split_at(end);
    (kind.trim_matches(OWS), params)
}

/// The `; name=value` parameters of a header value: names lowercased and each at most
/// once (a repeated one is ambiguous, so the whole header is refused).
struct Params(Vec<(String, String)>);

impl Params {
    /// `None` if `rest` (empty or starting with `;`) is not a list of parameters. A
    /// trailing `;` is tolerated; an unquoted value runs to the next `;`.
    fn parse(mut rest: &str) -> Option<Params> {
        let mut params: Vec<(String, String)> = Vec::new();
        loop {
            rest = rest.trim_start_matches(OWS);
            if rest.is_empty() {
                return Some(Params(params));
            }
            rest = rest.strip_prefix(';')?.trim_start_matches(OWS);
            if rest.is_empty() {
                return Some(Params(params));
            }
            let (name, after) = rest.split_once('=')?;
            let name = name.trim_end_matches(OWS).to_ascii_lowercase();
            if !is_token(name.as_bytes()) || params.iter().any(|(seen, _)| *seen == name) {
                return None;
            }
            let (value, after) = parse_value(after.trim_start_matches(OWS))?;
            params.push((name, value));
            rest = after;
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(seen, _)| seen == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A parameter value and what follows it.
fn parse_value(input: &str) -> Option<(String, &str)> {
    if let Some(quoted) = input.strip_prefix('"') {
        return parse_quoted(quoted);
    }
    let end = input.find(';').unwrap_or(input.len());
    Some((input[..end].trim_end_matches(OWS).to_owned(), &input[end..]))
}

/// The rest of a quoted string after its opening quote; `None` if it never closes.
/// Only `\"` and `\\` are escapes: browsers send other backslashes (Windows paths)
/// unescaped, and those are kept as they are.
fn parse_quoted(input: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = input.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((value, &input[at + 1..])),
            '\\' if chars.as_str().starts_with(['"', '\\']) => value.extend(chars.next().map(|(_, c)| c)),
            _ => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests;
