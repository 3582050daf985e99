//! The parser is fed as the upload handler feeds it, in reads, through one
//! harness, [`parse_reads`]: the unit tests' bodies in every split, the
//! property tests' in random ones, so that both check the same promises.

use super::*;

const BOUNDARY: &[u8] = b"XyZ-boundary";

/// A body as an upload handler would store it: each part's headers and bytes.
type Parts = Vec<(PartHeaders, Vec<u8>)>;
type Parsed = Result<Parts, MultipartError>;

/// Feeds `reads` one after the other, the last with `eof`, like a handler reading
/// a socket, and checks on the way that the parser keeps its promises: events in
/// a sane order, progress on every call, and little input held back.
fn parse_reads(boundary: &[u8], limits: Limits, reads: &[&[u8]]) -> Parsed {
    let mut parser = Parser::new(boundary, limits);
    let mut parts = Parts::new();
    let mut open = false;
    let mut buffer = Vec::new();
    for (index, read) in reads.iter().enumerate() {
        let eof = index + 1 == reads.len();
        buffer.extend_from_slice(read);
        loop {
            let step = parser.step(&buffer, eof)?;
            let consumed = step.consumed;
            assert!(consumed <= buffer.len(), "consumed more than given");
            let Some(event) = step.event else {
                assert!(!eof, "asked for more input after eof");
                let held = buffer.len() - consumed;
                assert!(held <= boundary.len() + 5, "held back {held} bytes");
                buffer.drain(..consumed);
                break;
            };
            assert!(consumed > 0 || event == Event::End, "{event:?} without progress");
            match event {
                Event::Part(headers) => {
                    assert!(!open, "part inside a part");
                    open = true;
                    parts.push((headers, Vec::new()));
                }
                Event::Data(bytes) => {
                    assert!(open && !bytes.is_empty(), "stray or empty data");
                    parts.last_mut().unwrap().1.extend_from_slice(bytes);
                }
                Event::PartEnd => {
                    assert!(open, "end of no part");
                    open = false;
                }
                Event::End => {
                    assert!(!open, "end inside a part");
                    return Ok(parts);
                }
            }
            buffer.drain(..consumed);
        }
    }
    unreachable!("the read with eof ends in End or an error")
}

/// Parses `body` in one read, in every split into two reads, byte by byte, and for
/// small bodies in every split into three reads; all must agree.
fn parse_every_way(boundary: &[u8], limits: Limits, body: &[u8]) -> Parsed {
    let whole = parse_reads(boundary, limits, &[body]);
    let agrees = |reads: &[&[u8]]| assert_eq!(parse_reads(boundary, limits, reads), whole, "{reads:?}");
    for first in 0..=body.len() {
        let (a, rest) = body.split_at(first);
        agrees(&[a, rest]);
        if body.len() <= 64 {
            for second in 0..=rest.len() {
                let (b, c) = rest.split_at(second);
                agrees(&[a, b, c]);
            }
        }
    }
    let mut bytes: Vec<&[u8]> = body.chunks(1).collect();
    bytes.push(&[]);
    agrees(&bytes);
    whole
}

fn parse(body: &[u8]) -> Parsed {
    parse_every_way(BOUNDARY, Limits::default(), body)
}

fn parse_ok(body: &[u8]) -> Parts {
    parse(body).expect("a valid body")
}

/// A body of parts given as (header lines, content), with the usual framing.
fn form(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (index, (headers, content)) in parts.iter().enumerate() {
        if index > 0 {
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--");
        body.extend_from_slice(BOUNDARY);
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(headers.as_bytes());
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(content);
    }
    body.extend_from_slice(b"\r\n--");
    body.extend_from_slice(BOUNDARY);
    body.extend_from_slice(b"--\r\n");
    body
}

fn field(name: &str) -> String {
    format!("Content-Disposition: form-data; name=\"{name}\"")
}

fn named(name: &str) -> PartHeaders {
    PartHeaders {
        name: Some(name.to_owned()),
        ..PartHeaders::default()
    }
}

fn file_headers(disposition_params: &str) -> PartHeaders {
    let headers = format!("Content-Disposition: form-data; name=\"file\"; {disposition_params}");
    let parts = parse_ok(&form(&[(&headers, b"x")]));
    parts.into_iter().next().unwrap().0
}

fn filename_of(disposition_params: &str) -> Option<String> {
    file_headers(disposition_params).filename
}

fn header_error(headers: &str) -> MultipartError {
    parse(&form(&[(headers, b"x")])).unwrap_err()
}

#[test]
fn one_part_with_file_name_and_type() {
    let headers = "Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain";
    let parts = parse_ok(&form(&[(headers, b"hello\r\nworld")]));
    let expected = PartHeaders {
        name: Some("file".into()),
        filename: Some("a.txt".into()),
        content_type: Some("text/plain".into()),
    };
    assert_eq!(parts, vec![(expected, b"hello\r\nworld".to_vec())]);
}

#[test]
fn two_parts_in_order() {
    let parts = parse_ok(&form(&[(&field("title"), b"Hi"), (&field("file"), b"data")]));
    assert_eq!(
        parts,
        vec![(named("title"), b"Hi".to_vec()), (named("file"), b"data".to_vec())]
    );
}

#[test]
fn several_parts_in_order() {
    let names = ["a", "b", "c", "d", "e", "f"];
    let fields: Vec<String> = names.iter().map(|name| field(name)).collect();
    let contents: Vec<Vec<u8>> = names.iter().map(|name| name.repeat(3).into_bytes()).collect();
    let spec: Vec<(&str, &[u8])> = fields
        .iter()
        .map(String::as_str)
        .zip(contents.iter().map(Vec::as_slice))
        .collect();
    let parts = parse_ok(&form(&spec));
    let expected: Vec<_> = names
        .iter()
        .zip(contents)
        .map(|(name, content)| (named(name), content))
        .collect();
    assert_eq!(parts, expected);
}

#[test]
fn empty_part_body() {
    let parts = parse_ok(&form(&[(&field("empty"), b""), (&field("next"), b"")]));
    assert_eq!(parts, vec![(named("empty"), Vec::new()), (named("next"), Vec::new())]);
}

#[test]
fn body_without_parts() {
    assert_eq!(parse_ok(b"--XyZ-boundary--"), Vec::new());
}

#[test]
fn boundary_lookalikes_stay_in_the_body() {
    let content: &[u8] = b"--XyZ-boundary\r\n\
        \r\n--XyZ-boundar\r\n\
        \r\n--XyZ-boundaryX\r\n\
        \r\n--XyZ-boundary-x\r\n\
        \r\n--XyZ-Boundary\r\n\
        \r\n-- \r\n--\r\r\n\r\r\n-\n\r--XyZ-boundary\r\nlone\rcr lone\nlf\r\n\r";
    assert_eq!(
        parse_ok(&form(&[(&field("f"), content)])),
        vec![(named("f"), content.to_vec())]
    );
}

#[test]
fn body_ending_in_line_breaks_and_dashes() {
    for content in [&b"\r"[..], b"\r\n", b"\r\n-", b"\r\n--", b"\r\n\r\n", b"-", b"--"] {
        assert_eq!(
            parse_ok(&form(&[(&field("f"), content)])),
            vec![(named("f"), content.to_vec())]
        );
    }
}

#[test]
fn every_byte_value_survives() {
    let content: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let parts = parse_ok(&form(&[(&field("file"), &content)]));
    assert_eq!(parts, vec![(named("file"), content)]);
}

#[test]
fn preamble_and_epilogue_are_ignored() {
    let mut body = b"A preamble --XyZ-boundary\r\n\r\n--XyZ-boundaryX\r\n".to_vec();
    body.extend_from_slice(&form(&[(&field("f"), b"x")]));
    body.extend_from_slice(b"epilogue \r\n--XyZ-boundary\r\n garbage");
    assert_eq!(parse_ok(&body), vec![(named("f"), b"x".to_vec())]);
}

#[test]
fn transport_padding_after_boundaries() {
    let body = b"--XyZ-boundary \t \r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--XyZ-boundary\t\r\nContent-Disposition: form-data; name=b\r\n\r\n2\r\n--XyZ-boundary--";
    assert_eq!(
        parse_ok(body),
        vec![(named("a"), b"1".to_vec()), (named("b"), b"2".to_vec())]
    );
}

#[test]
fn body_bytes_are_handed_on_before_the_part_ends() {
    let mut parser = Parser::new(BOUNDARY, Limits::default());
    let mut input = form(&[(&field("f"), b"")]);
    input.truncate(input.len() - b"\r\n--XyZ-boundary--\r\n".len());
    input.extend_from_slice(&[b'a'; 1000]);
    input.extend_from_slice(b"\r\n--XyZ-bound");
    let mut streamed = 0;
    let mut rest = &input[..];
    loop {
        let step = parser.step(rest, false).unwrap();
        if let Some(Event::Data(bytes)) = &step.event {
            streamed += bytes.len();
        }
        rest = &rest[step.consumed..];
        if step.event.is_none() {
            break;
        }
    }
    assert_eq!(streamed, 1000);
    assert_eq!(rest, b"\r\n--XyZ-bound");
}

#[test]
fn header_names_are_case_insensitive() {
    let headers = "content-DISPOSITION: FORM-DATA; NAME=\"f\"; FileName=\"a.bin\"\r\ncontent-type:  application/octet-stream \r\nX-Other: ignored";
    let parts = parse_ok(&form(&[(headers, b"x")]));
    let expected = PartHeaders {
        name: Some("f".into()),
        filename: Some("a.bin".into()),
        content_type: Some("application/octet-stream".into()),
    };
    assert_eq!(parts[0].0, expected);
}

#[test]
fn unquoted_and_spaced_disposition_parameters() {
    let parts = parse_ok(&form(&[(
        "Content-Disposition: form-data ;name = f ; filename=my file.txt;",
        b"x",
    )]));
    assert_eq!(parts[0].0.name.as_deref(), Some("f"));
    assert_eq!(parts[0].0.filename.as_deref(), Some("my file.txt"));
}

#[test]
fn rfc5987_filename_is_preferred() {
    let params = "filename=\"fallback.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20%E6%9D%B1%E4%BA%AC.txt";
    assert_eq!(filename_of(params).as_deref(), Some("résumé 東京.txt"));
    let params = "filename*=utf-8'en'a%20b.txt; filename=\"fallback.txt\"";
    assert_eq!(filename_of(params).as_deref(), Some("a b.txt"));
    assert_eq!(
        filename_of("filename*=ISO-8859-1''caf%E9.txt").as_deref(),
        Some("café.txt")
    );
}

#[test]
fn undecodable_rfc5987_filename_falls_back() {
    assert_eq!(
        filename_of("filename=\"plain.txt\"; filename*=UTF-8''%FF%FE").as_deref(),
        Some("plain.txt")
    );
    assert_eq!(
        filename_of("filename=\"plain.txt\"; filename*=KOI8-R''x").as_deref(),
        Some("plain.txt")
    );
    assert_eq!(
        filename_of("filename=\"plain.txt\"; filename*=no-quotes").as_deref(),
        Some("plain.txt")
    );
    assert_eq!(filename_of("filename*=UTF-8''%FF"), None);
}

#[test]
fn non_ascii_file_name_in_plain_filename() {
    assert_eq!(
        filename_of("filename=\"résumé 東京.txt\"").as_deref(),
        Some("résumé 東京.txt")
    );
}

#[test]
fn non_utf8_file_name_is_kept_with_replacement_characters() {
    let mut body =
        b"--XyZ-boundary\r\nContent-Disposition: form-data; name=f; filename=\"r\xe9sum\xe9\"\r\n\r\n".to_vec();
    body.extend_from_slice(b"x\r\n--XyZ-boundary--");
    assert_eq!(parse_ok(&body)[0].0.filename.as_deref(), Some("r\u{fffd}sum\u{fffd}"));
}

#[test]
fn hostile_file_names_are_kept_verbatim() {
    assert_eq!(
        filename_of("filename=\"../../etc/passwd\"").as_deref(),
        Some("../../etc/passwd")
    );
    assert_eq!(
        filename_of(r#"filename="say \"hi\"; rm -rf.txt""#).as_deref(),
        Some(r#"say "hi"; rm -rf.txt"#)
    );
    assert_eq!(filename_of(r#"filename="back\\slash""#).as_deref(), Some(r"back\slash"));
    assert_eq!(
        filename_of(r#"filename="C:\Users\me\a.txt""#).as_deref(),
        Some(r"C:\Users\me\a.txt")
    );
    assert_eq!(
        filename_of("filename*=UTF-8''..%2F..%2Fx%0D%0Ay").as_deref(),
        Some("../../x\r\ny")
    );
    assert_eq!(filename_of("filename=\"\"").as_deref(), Some(""));
}

#[test]
fn part_without_name_or_filename() {
    let parts = parse_ok(&form(&[("Content-Disposition: form-data", b"x")]));
    assert_eq!(parts[0].0, PartHeaders::default());
}

#[test]
fn content_type_with_quoted_or_unquoted_boundary() {
    for value in [
        "multipart/form-data; boundary=XyZ-boundary",
        "multipart/form-data; boundary=\"XyZ-boundary\"",
        "Multipart/Form-Data;BOUNDARY=XyZ-boundary",
        "multipart/form-data; charset=utf-8; Boundary = \"XyZ-boundary\" ; x=y",
        " multipart/form-data ;\tboundary=XyZ-boundary;",
    ] {
        assert_eq!(boundary_from_content_type(value), Ok(BOUNDARY.to_vec()), "{value}");
    }
}

#[test]
fn content_type_with_unusual_valid_boundaries() {
    let longest = "a".repeat(70);
    let value = format!("multipart/form-data; boundary={longest}");
    assert_eq!(boundary_from_content_type(&value), Ok(longest.into_bytes()));
    let value = "multipart/form-data; boundary=\"gc0p4Jq0M2Yt08jU534c0p '()+_,-./:=?\"";
    assert_eq!(
        boundary_from_content_type(value),
        Ok(b"gc0p4Jq0M2Yt08jU534c0p '()+_,-./:=?".to_vec())
    );
}

#[test]
fn content_type_that_is_not_multipart_form_data() {
    for value in [
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/mixed; boundary=x",
        "multipart/form-datax; boundary=x",
    ] {
        assert_eq!(
            boundary_from_content_type(value),
            Err(MultipartError::NotMultipart),
            "{value}"
        );
    }
}

#[test]
fn content_type_with_bad_boundary() {
    let too_long = format!("multipart/form-data; boundary={}", "a".repeat(71));
    for value in [
        "multipart/form-data",
        "multipart/form-data; charset=utf-8",
        "multipart/form-data; boundary=",
        "multipart/form-data; boundary=\"\"",
        too_long.as_str(),
        "multipart/form-data; boundary=\"a@b\"",
        "multipart/form-data; boundary=\"ends with space \"",
        "multipart/form-data; boundary=\"a\\\"b\"",
        "multipart/form-data; boundary=\"unterminated",
        "multipart/form-data; boundary=a; boundary=b",
        "multipart/form-data; boundary",
    ] {
        assert_eq!(
            boundary_from_content_type(value),
            Err(MultipartError::BadBoundary),
            "{value}"
        );
    }
}

#[test]
fn header_block_at_the_limit_is_accepted_and_one_byte_more_refused() {
    let headers = field("f");
    let block_len = headers.len() + 4;
    let body = form(&[(&headers, b"x")]);
    let exact = Limits {
        max_part_header_bytes: block_len,
        ..Limits::default()
    };
    assert_eq!(
        parse_every_way(BOUNDARY, exact, &body),
        Ok(vec![(named("f"), b"x".to_vec())])
    );
    let short = Limits {
        max_part_header_bytes: block_len - 1,
        ..Limits::default()
    };
    assert_eq!(
        parse_every_way(BOUNDARY, short, &body),
        Err(MultipartError::PartHeaderTooLarge)
    );
}

#[test]
fn endless_header_is_refused_as_soon_as_it_is_too_long() {
    let limits = Limits {
        max_part_header_bytes: 100,
        ..Limits::default()
    };
    let mut parser = Parser::new(BOUNDARY, limits);
    let mut input = b"--XyZ-boundary\r\nContent-Disposition: form-data; name=\"".to_vec();
    input.resize(16 + 101, b'a');
    let mut rest = &input[..];
    let error = loop {
        match parser.step(rest, false) {
            Ok(step) => {
                assert!(step.event.is_some() || step.consumed > 0, "stalled before the limit");
                rest = &rest[step.consumed..];
            }
            Err(error) => break error,
        }
    };
    assert_eq!(error, MultipartError::PartHeaderTooLarge);
}

#[test]
fn more_parts_than_the_limit_are_refused() {
    let limits = Limits {
        max_parts: 2,
        ..Limits::default()
    };
    let two = form(&[(&field("a"), b"1"), (&field("b"), b"2")]);
    assert_eq!(parse_every_way(BOUNDARY, limits, &two).map(|parts| parts.len()), Ok(2));
    let three = form(&[(&field("a"), b"1"), (&field("b"), b"2"), (&field("c"), b"3")]);
    assert_eq!(
        parse_every_way(BOUNDARY, limits, &three),
        Err(MultipartError::TooManyParts)
    );
}

#[test]
fn malformed_part_headers_are_refused() {
    for headers in [
        "Content-Disposition form-data; name=\"f\"",
        "X-Other: no disposition",
        "Content-Disposition: attachment; name=\"f\"",
        "Content-Disposition: form-data; name=\"f",
        "Content-Disposition: form-data; name=\"f\"x",
        "Content-Disposition: form-data; name",
        "Content-Disposition: form-data; name=a; NAME=b",
        "Content-Disposition: form-data;; name=a",
        "Content-Disposition: form-data; na me=a",
        "Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b",
        "Content-Disposition: form-data; name=a\r\nContent-Type: a/b\r\ncontent-type: c/d",
        "Content Disposition: form-data; name=a",
        ": form-data",
        "Content-Disposition: form-data; name=a\r\n folded: line",
        "Content-Disposition: form-data; name=\"a\nb\"",
        "Content-Disposition: form-data; name=\"a\rb\"",
        "Content-Disposition: form-data; name=\"a\0b\"",
    ] {
        assert_eq!(
            header_error(headers),
            MultipartError::MalformedPartHeader,
            "{headers:?}"
        );
    }
}

#[test]
fn part_with_empty_header_block_is_refused() {
    assert_eq!(
        parse(b"--XyZ-boundary\r\n\r\nx\r\n--XyZ-boundary--"),
        Err(MultipartError::MalformedPartHeader)
    );
}

#[test]
fn junk_after_a_boundary_line_is_refused() {
    for body in [
        &b"--XyZ-boundary  x\r\n"[..],
        b"--XyZ-boundary\rX",
        b"--XyZ-boundary \n",
        b"--XyZ-boundary\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ-boundary\t-\r\n",
    ] {
        assert_eq!(parse(body), Err(MultipartError::MalformedDelimiter), "{body:?}");
    }
}

#[test]
fn body_without_closing_boundary_is_truncated() {
    let complete = form(&[(&field("f"), b"content")]);
    for cut in [
        0,
        5,
        14,
        16,
        30,
        complete.len() - 20,
        complete.len() - 4,
        complete.len() - 3,
    ] {
        assert_eq!(parse(&complete[..cut]), Err(MultipartError::Truncated), "cut at {cut}");
    }
    assert_eq!(parse(b"only a preamble"), Err(MultipartError::Truncated));
    assert_eq!(parse(b"--XyZ-boundary-"), Err(MultipartError::Truncated));
}

#[test]
fn errors_are_final() {
    let mut parser = Parser::new(BOUNDARY, Limits::default());
    assert_eq!(
        parser.step(b"--XyZ-boundary  x", false),
        Err(MultipartError::MalformedDelimiter)
    );
    assert_eq!(parser.step(b"\r\n", true), Err(MultipartError::MalformedDelimiter));
}

#[test]
fn end_is_repeated_and_epilogue_consumed() {
    let mut parser = Parser::new(BOUNDARY, Limits::default());
    let end = Step {
        consumed: 16,
        event: Some(Event::End),
    };
    assert_eq!(parser.step(b"--XyZ-boundary--\r\nmore", false), Ok(end));
    let again = Step {
        consumed: 6,
        event: Some(Event::End),
    };
    assert_eq!(parser.step(b"\r\nmore", false), Ok(again));
    let at_eof = Step {
        consumed: 0,
        event: Some(Event::End),
    };
    assert_eq!(parser.step(b"", true), Ok(at_eof));
}

#[test]
fn errors_read_as_sentences() {
    for error in [
        MultipartError::NotMultipart,
        MultipartError::BadBoundary,
        MultipartError::PartHeaderTooLarge,
        MultipartError::TooManyParts,
        MultipartError::MalformedPartHeader,
        MultipartError::MalformedDelimiter,
        MultipartError::Truncated,
    ] {
        let text = error.to_string();
        assert!(text.starts_with(char::is_lowercase) && !text.ends_with('.'), "{text}");
        let _: &dyn std::error::Error = &error;
    }
}

#[test]
fn default_limits_match_the_contract() {
    assert_eq!(
        Limits::default(),
        Limits {
            max_part_header_bytes: 8192,
            max_parts: 100
        }
    );
}

mod random {
    //! Property tests of the streaming multipart parser: however a body is split into
    //! reads, the parser reports the same parts and bytes (or the same error) as when it
    //! gets the body in one read, and on any bytes at all it neither panics nor stalls.

    use super::*;
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;

    /// Parses `body` split at `cuts` (each taken modulo its length + 1; none means one
    /// read) with [`parse_reads`], the harness of the unit tests, so that random bodies
    /// and splits are held to the same promises.
    fn parse(boundary: &[u8], limits: Limits, body: &[u8], cuts: &[usize]) -> Parsed {
        let mut points: Vec<usize> = cuts.iter().map(|cut| cut % (body.len() + 1)).collect();
        points.extend([0, body.len()]);
        points.sort_unstable();
        let reads: Vec<&[u8]> = points.windows(2).map(|pair| &body[pair[0]..pair[1]]).collect();
        parse_reads(boundary, limits, &reads)
    }

    /// Body bytes, with a bias towards what the parser has to look at twice.
    #[derive(Debug, Clone)]
    enum Piece {
        Byte(u8),
        /// A prefix of `CRLF--boundary` (of this length modulo its length + 2), or the
        /// whole of it followed by `x`, which keeps it body text.
        Lookalike(usize),
        Text(&'static [u8]),
    }

    fn pieces(max: usize) -> impl Strategy<Value = Vec<Piece>> {
        let text = prop::sample::select(vec![
            &b"\r\n"[..],
            b"--",
            b"\r\n\r\n",
            b" \t",
            b"Content-Disposition: form-data; name=\"file\"; filename=\"a\"",
            b"Content-Type: text/plain",
            b"; filename*=UTF-8''%E6%9D%B1",
        ]);
        let piece = prop_oneof![
            6 => any::<u8>().prop_map(Piece::Byte),
            2 => prop::sample::select(vec![b'\r', b'\n', b'-', b' ']).prop_map(Piece::Byte),
            2 => any::<usize>().prop_map(Piece::Lookalike),
            1 => text.prop_map(Piece::Text),
        ];
        vec(piece, 0..max)
    }

    /// The bytes of `pieces`; with `content`, a whole delimiter is always followed by `x`,
    /// as the body of a part may hold it only that way.
    fn render(pieces: &[Piece], delimiter: &[u8], content: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Byte(byte) => bytes.push(*byte),
                Piece::Lookalike(len) => {
                    let len = len % (delimiter.len() + 2);
                    bytes.extend_from_slice(&delimiter[..len.min(delimiter.len())]);
                    if len > delimiter.len() || (content && len == delimiter.len()) {
                        bytes.push(b'x');
                    }
                }
                Piece::Text(text) => bytes.extend_from_slice(text),
            }
        }
        bytes
    }

    fn delimiter(boundary: &[u8]) -> Vec<u8> {
        [b"\r\n--", boundary].concat()
    }

    /// Whether `content` would end its part early: it holds a real delimiter, counting the
    /// CRLF of the delimiter that follows it.
    fn holds_delimiter(content: &[u8], delimiter: &[u8]) -> bool {
        let text = [content, b"\r\n"].concat();
        text.windows(delimiter.len() + 2).any(|window| {
            window.starts_with(delimiter)
                && (matches!(window[delimiter.len()], b' ' | b'\t' | b'\r') || window.ends_with(b"--"))
        })
    }

    fn boundary() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9A-Za-z'()+_,./:=?-]",
            "[0-9A-Za-z'()+_,./:=?-][0-9A-Za-z'()+_,./:=? -]{0,68}[0-9A-Za-z'()+_,./:=?-]",
        ]
    }

    #[derive(Debug, Clone)]
    struct PartSpec {
        name: String,
        filename: Option<String>,
        content_type: Option<String>,
        content: Vec<Piece>,
    }

    fn part() -> impl Strategy<Value = PartSpec> {
        (
            "\\PC{0,12}",
            option::of("\\PC{0,16}"),
            option::of("[a-z]{1,8}/[a-z0-9.+-]{1,12}"),
            pieces(120),
        )
            .prop_map(|(name, filename, content_type, content)| PartSpec {
                name,
                filename,
                content_type,
                content,
            })
    }

    fn quote(value: &str) -> String {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    }

    /// A well-formed body of `parts` between `preamble` and `epilogue`, and what parsing
    /// it must give; `None` if a part's content happens to hold a real delimiter.
    fn form(boundary: &[u8], preamble: &str, parts: &[PartSpec], epilogue: &[u8]) -> Option<(Vec<u8>, Parts)> {
        let delimiter = delimiter(boundary);
        let mut body = preamble.as_bytes().to_vec();
        let mut expected = Vec::new();
        body.extend_from_slice(if preamble.is_empty() {
            &delimiter[2..]
        } else {
            &delimiter
        });
        for part in parts {
            let content = render(&part.content, &delimiter, true);
            if holds_delimiter(&content, &delimiter) {
                return None;
            }
            body.extend_from_slice(b"\r\nContent-Disposition: form-data; name=");
            body.extend_from_slice(quote(&part.name).as_bytes());
            if let Some(filename) = &part.filename {
                body.extend_from_slice(format!("; filename={}", quote(filename)).as_bytes());
            }
            if let Some(content_type) = &part.content_type {
                body.extend_from_slice(format!("\r\nContent-Type: {content_type}").as_bytes());
            }
            body.extend_from_slice(b"\r\n\r\n");
            body.extend_from_slice(&content);
            body.extend_from_slice(&delimiter);
            let headers = PartHeaders {
                name: Some(part.name.clone()),
                filename: part.filename.clone(),
                content_type: part.content_type.clone(),
            };
            expected.push((headers, content));
        }
        body.extend_from_slice(b"--");
        body.extend_from_slice(epilogue);
        Some((body, expected))
    }

    /// Small limits, so that random bodies reach those errors too.
    const SMALL: Limits = Limits {
        max_part_header_bytes: 96,
        max_parts: 3,
    };

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn generated_forms_parse_the_same_in_any_reads(
            boundary in boundary(),
            preamble in "[a-z \r\n]{0,20}",
            parts in vec(part(), 0..4),
            epilogue in vec(any::<u8>(), 0..20),
            cuts in vec(any::<usize>(), 0..12),
        ) {
            let boundary = boundary.as_bytes();
            let Some((body, expected)) = form(boundary, &preamble, &parts, &epilogue) else {
                return Err(TestCaseError::reject("content holds the delimiter"));
            };
            prop_assert_eq!(parse(boundary, Limits::default(), &body, &[]), Ok(expected.clone()));
            prop_assert_eq!(parse(boundary, Limits::default(), &body, &cuts), Ok(expected));
        }

        #[test]
        fn arbitrary_bytes_parse_the_same_in_any_reads(
            body in pieces(400),
            cuts in vec(any::<usize>(), 0..12),
        ) {
            let boundary = b"b0und";
            let body = render(&body, &delimiter(boundary), false);
            prop_assert_eq!(parse(boundary, SMALL, &body, &cuts), parse(boundary, SMALL, &body, &[]));
        }

        #[test]
        fn valid_prefix_then_arbitrary_bytes_parse_the_same_in_any_reads(
            parts in vec(part(), 1..4),
            keep in any::<usize>(),
            tail in pieces(200),
            cuts in vec(any::<usize>(), 0..12),
        ) {
            let boundary = b"b0und";
            let delimiter = delimiter(boundary);
            let (mut body, _) = form(boundary, "", &parts, b"").unwrap_or_default();
            body.truncate(keep % (body.len() + 1));
            body.extend_from_slice(&render(&tail, &delimiter, false));
            for limits in [SMALL, Limits::default()] {
                prop_assert_eq!(parse(boundary, limits, &body, &cuts), parse(boundary, limits, &body, &[]));
            }
        }

        #[test]
        fn content_type_parsing_never_panics(value in any::<String>(), boundary in ".{0,80}") {
            let _ = boundary_from_content_type(&value);
            let _ = boundary_from_content_type(&format!("multipart/form-data; boundary={boundary}"));
        }

        #[test]
        fn quoted_boundaries_round_trip(boundary in boundary()) {
            let value = format!("multipart/form-data; boundary=\"{boundary}\"");
            prop_assert_eq!(boundary_from_content_type(&value), Ok(boundary.into_bytes()));
        }
    }
}
