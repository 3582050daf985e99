//! The head parser is fed as the connection feeds it, in pieces, through one
//! harness: the unit tests' heads in every split, the property tests' in
//! random ones, so that both check the same thing about where reads end.

use super::*;
use proptest::sample::Index;

/// What the connection does with a head arriving in reads that end at `ends`
/// (ascending), then one last read up to the end of `input`: after each read,
/// look for the end of the head from where the last search stopped, and check
/// the partial head (limits, bare CRs) while it is incomplete. Returns the
/// length of the head, the refusal, or `Ok(None)` if it is still incomplete.
fn head_end_in_pieces(input: &[u8], ends: &[usize]) -> Result<Option<usize>, HeadError> {
    let mut scanned = 0;
    for &end in ends.iter().chain([&input.len()]) {
        let buffered = &input[..end];
        if let Some(found) = find_head_end(buffered, scanned) {
            return Ok(Some(found));
        }
        check_partial(buffered, scanned)?;
        scanned = end;
    }
    Ok(None)
}

/// The status a refusal is answered with.
fn status(refusal: &HeadError) -> u16 {
    match refusal {
        HeadError::UriTooLong => 414,
        HeadError::HeadersTooLarge => 431,
        HeadError::UnknownMethod => 501,
        HeadError::VersionNotSupported => 505,
        HeadError::Malformed(_) => 400,
    }
}

/// What the connection answers a head arriving in reads that end at `ends`:
/// `Ok` with the length of a head the parser accepts, `Err` with the status
/// of a refusal, `None` while it is incomplete. A fault may be found by the
/// partial check in one split and by the parser in another (a bare CR before
/// the end of the head), so it is the answer, not where the search stopped,
/// that must not depend on the split.
fn answer_in_pieces(input: &[u8], ends: &[usize]) -> Option<Result<usize, u16>> {
    match head_end_in_pieces(input, ends) {
        Ok(Some(end)) => Some(parse(&input[..end]).map(|_| end).map_err(|e| status(&e))),
        Ok(None) => None,
        Err(refusal) => Some(Err(status(&refusal))),
    }
}

/// Where the reads end when `input` arrives cut at `cuts`, as TCP may cut it.
fn read_ends(input: &[u8], cuts: &[Index]) -> Vec<usize> {
    let mut ends: Vec<usize> = cuts.iter().map(|cut| cut.index(input.len() + 1)).collect();
    ends.sort_unstable();
    ends
}

/// Feeds `input` whole and split in two at every position, and checks that
/// the head end is found at the same place each time.
fn head_end_with_every_split(input: &[u8]) -> Option<usize> {
    let whole = head_end_in_pieces(input, &[]);
    for split in 0..=input.len() {
        assert_eq!(head_end_in_pieces(input, &[split]), whole, "split at {split}");
    }
    whole.expect("a head within the limits")
}

/// [`answer_in_pieces`] for `input` whole and split in two at every
/// position, checked to be the same each time.
fn answer_at_every_split(input: &[u8]) -> Option<Result<usize, u16>> {
    let whole = answer_in_pieces(input, &[]);
    for split in 0..=input.len() {
        assert_eq!(answer_in_pieces(input, &[split]), whole, "split at {split}");
    }
    whole
}

fn parse_ok(input: &[u8]) -> Request {
    let end = head_end_with_every_split(input).expect("complete head");
    parse(&input[..end]).expect("valid head")
}

#[test]
fn parses_a_simple_get() {
    let req = parse_ok(b"GET /history?offset=5 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
    assert_eq!(req.method, Method::Get);
    assert_eq!(req.path(), "/history");
    assert_eq!(req.query(), "offset=5");
    assert_eq!(req.header("HOST"), Some("x"));
    assert_eq!(req.framing, Framing::None);
    assert!(req.keep_alive);
}

#[test]
fn finds_the_end_of_bare_lf_heads_and_leaves_the_body() {
    let input = b"POST /a HTTP/1.1\nHost: x\nContent-Length: 2\n\nhi";
    let end = head_end_with_every_split(input).unwrap();
    assert_eq!(&input[end..], b"hi");
    assert_eq!(parse(&input[..end]).unwrap().framing, Framing::Length(2));
}

#[test]
fn http10_closes_and_connection_close_is_honoured() {
    assert!(!parse_ok(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
    assert!(!parse_ok(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, Close\r\n\r\n").keep_alive);
}

#[test]
fn expect_continue_is_recognised_on_http11_only() {
    assert!(
        parse_ok(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n").expect_continue
    );
    assert!(!parse_ok(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n").expect_continue);
}

#[test]
fn chunked_and_identical_lengths_are_accepted() {
    assert_eq!(
        parse_ok(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n").framing,
        Framing::Chunked
    );
    let req = parse_ok(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n");
    assert_eq!(req.framing, Framing::Length(5));
}

#[test]
fn smuggling_shapes_are_refused() {
    for head in [
        &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n",
        b"G@T / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
    ] {
        let end = find_head_end(head, 0).unwrap();
        assert!(
            matches!(parse(&head[..end]), Err(HeadError::Malformed(_))),
            "{:?}",
            String::from_utf8_lossy(head)
        );
    }
}

/// The smallest header section an HTTP/1.1 head can have: its `Host` and
/// the blank line.
const LEAST_SECTION: usize = "Host: x\r\n\r\n".len();

/// A head with a request line of `line_len` bytes and a header section
/// (`Host`, other fields and the closing blank line) of exactly `section_len`
/// bytes, at least [`LEAST_SECTION`].
fn head_of_sizes(line_len: usize, section_len: usize) -> Vec<u8> {
    let path = "a".repeat(line_len - "GET / HTTP/1.1".len());
    let mut head = format!("GET /{path} HTTP/1.1\r\nHost: x\r\n").into_bytes();
    let mut fields = section_len - LEAST_SECTION;
    while fields > 0 {
        // `X-F: v..v\r\n` is 7 bytes and its value; the last field keeps at least 8.
        let line = if fields > 208 { 200 } else { fields };
        head.extend_from_slice(format!("X-F: {}\r\n", "v".repeat(line - 7)).as_bytes());
        fields -= line;
    }
    head.extend_from_slice(b"\r\n");
    head
}

#[test]
fn request_line_limit_is_exact_and_checked_first() {
    assert!(parse(&head_of_sizes(MAX_REQUEST_LINE, LEAST_SECTION)).is_ok());
    assert_eq!(
        parse(&head_of_sizes(MAX_REQUEST_LINE + 1, LEAST_SECTION)).unwrap_err(),
        HeadError::UriTooLong
    );
    // A long line is 414 even with a header section that is too large too.
    assert_eq!(
        parse(&head_of_sizes(MAX_REQUEST_LINE + 1, MAX_HEADER_SECTION + 1)).unwrap_err(),
        HeadError::UriTooLong
    );
    // Before the line ends, its length alone decides.
    let partial = format!("GET /{}", "a".repeat(MAX_REQUEST_LINE));
    assert_eq!(check_partial(partial.as_bytes(), 0), Err(HeadError::UriTooLong));
    assert_eq!(check_partial(&partial.as_bytes()[..MAX_REQUEST_LINE], 0), Ok(()));
}

#[test]
fn header_section_limit_is_exact_and_independent_of_the_request_line() {
    for line in [16, MAX_REQUEST_LINE] {
        assert!(parse(&head_of_sizes(line, MAX_HEADER_SECTION)).is_ok(), "line {line}");
        assert_eq!(
            parse(&head_of_sizes(line, MAX_HEADER_SECTION + 1)).unwrap_err(),
            HeadError::HeadersTooLarge,
            "line {line}"
        );
    }
    // A head that never ends is refused once its headers pass the limit.
    let mut endless = b"GET / HTTP/1.1\r\n".to_vec();
    while check_partial(&endless, 0).is_ok() {
        endless.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    assert_eq!(check_partial(&endless, 0), Err(HeadError::HeadersTooLarge));
    assert!(endless.len() <= 16 + MAX_HEADER_SECTION + 64);
}

#[test]
fn too_many_header_fields_is_431() {
    let mut many = b"GET / HTTP/1.1\r\n".to_vec();
    for _ in 0..=MAX_HEADERS {
        many.extend_from_slice(b"a: b\r\n");
    }
    many.extend_from_slice(b"\r\n");
    assert_eq!(parse(&many).unwrap_err(), HeadError::HeadersTooLarge);
}

#[test]
fn control_bytes_in_headers_are_refused() {
    for byte in (0u8..0x20).filter(|&b| b != b'\t').chain([0x7f]) {
        let mut head = b"GET / HTTP/1.1\r\nX-A: a".to_vec();
        head.push(byte);
        head.extend_from_slice(b"b\r\n\r\n");
        assert!(
            matches!(answer_in_pieces(&head, &[]), Some(Err(400)) | None),
            "byte {byte:#04x}"
        );
    }
}

mod rfc9112 {
    //! The RFC 9112 table that `tests/rfc9112.rs` sends over sockets, fed
    //! here to the head parser at every split.

    use super::*;

    include!("../../../tests/rfc9112/cases.rs");

    #[test]
    fn every_case_gets_its_status_from_the_head_parser_at_every_split() {
        for case in CASES {
            let answer =
                answer_at_every_split(case.input).unwrap_or_else(|| panic!("{}: the head never ends", case.name));
            let expected = (case.layer == Layer::Head && refused_by_parser(case.status)).then_some(case.status);
            assert_eq!(answer.err(), expected, "{}", case.name);
            // A refusal closes; an accepted head keeps the connection if it asks to.
            let keep_alive = answer.is_ok_and(|end| parse(&case.input[..end]).unwrap().keep_alive);
            assert!(keep_alive || !case.stays_open, "{}", case.name);
        }
    }

    #[test]
    fn an_absolute_form_target_routes_by_its_path_and_names_its_host() {
        let request = parse_ok(b"GET HTTP://Example.com:8080/a/b?c=d HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!((request.path(), request.query()), ("/a/b", "c=d"));
        assert_eq!(request.host(), Some("Example.com:8080"));
        let request = parse_ok(b"GET http://example.com?x HTTP/1.1\r\nHost: other\r\n\r\n");
        assert_eq!(request.target, "/?x");
        assert_eq!(parse_ok(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").host(), Some("h"));
    }

    #[test]
    fn a_later_http_1_minor_version_is_served_as_1_1() {
        let request = parse_ok(b"POST / HTTP/1.7\r\nHost: h\r\nContent-Length: 3\r\n\r\n");
        assert_eq!((request.version, request.framing), (1, Framing::Length(3)));
        assert!(request.keep_alive);
    }
}

mod random {
    use super::*;
    use proptest::prelude::*;

    /// A valid head and what parsing it must give back.
    #[derive(Debug, Clone)]
    struct Case {
        bytes: Vec<u8>,
        target: String,
        fields: Vec<(String, String)>,
        framing: Framing,
    }

    fn case() -> impl Strategy<Value = Case> {
        let method = prop::sample::select(vec!["GET", "HEAD", "POST", "DELETE", "PATCH"]);
        let target = "/[a-z0-9/._-]{0,20}(\\?[a-z0-9=&%+]{0,20})?";
        let field = ("x-[a-z0-9-]{1,12}", "([!-~]([ -~]{0,30}[!-~])?)?");
        let framing = prop_oneof![
            Just(Framing::None),
            (0u64..=u64::MAX).prop_map(Framing::Length),
            Just(Framing::Chunked)
        ];
        let line_end = prop::sample::select(vec!["\r\n", "\n"]);
        (method, target, prop::collection::vec(field, 0..8), framing, line_end).prop_map(
            |(method, target, fields, framing, eol)| {
                let mut text = format!("{method} {target} HTTP/1.1{eol}Host: x{eol}");
                for (name, value) in &fields {
                    text.push_str(&format!("{name}: {value}{eol}"));
                }
                match framing {
                    Framing::None => {}
                    Framing::Length(n) => text.push_str(&format!("Content-Length: {n}{eol}")),
                    Framing::Chunked => text.push_str(&format!("Transfer-Encoding: chunked{eol}")),
                }
                text.push_str(eol);
                Case {
                    bytes: text.into_bytes(),
                    target,
                    fields,
                    framing,
                }
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_split_of_a_valid_head_parses_the_same(
            case in case(),
            body in prop::collection::vec(any::<u8>(), 0..16),
            cuts in prop::collection::vec(any::<Index>(), 0..6),
        ) {
            let mut input = case.bytes.clone();
            input.extend_from_slice(&body);
            let end = head_end_in_pieces(&input, &read_ends(&input, &cuts)).expect("a head within the limits");
            prop_assert_eq!(end, Some(case.bytes.len()));
            let request = parse(&input[..case.bytes.len()]).unwrap();
            prop_assert_eq!(&request.target, &case.target);
            prop_assert_eq!(request.framing, case.framing);
            for (name, value) in &case.fields {
                prop_assert!(request.headers.contains(&(name.clone(), value.clone())));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_parser(input in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = check_partial(&input, 0);
            if let Some(end) = find_head_end(&input, 0) {
                let _ = parse(&input[..end]);
            }
        }
    }
}

mod hostile {
    //! Property tests of the request head parser, which sees raw client bytes
    //! first, with hostile and boundary inputs: bytes shaped to get deep into
    //! its state machine, delivered in random pieces as TCP may deliver them
    //! (the answer must not depend on where reads were split), request lines
    //! over the limit, and every mix of framing headers. That valid heads
    //! round-trip in any pieces is checked by `random`; the chunked body
    //! decoder (`http::chunked`) and the multipart parser (`files::multipart`)
    //! have the like beside them.

    use super::*;
    use proptest::prelude::*;

    /// Bytes that look a little like HTTP: mostly printable, with plenty of
    /// line ends, colons and spaces, and the odd control byte.
    fn http_ish_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            6 => 0x20u8..0x7f,
            2 => Just(b'\n'),
            2 => Just(b'\r'),
            1 => Just(b':'),
            1 => any::<u8>(),
        ];
        prop::collection::vec(byte, 0..max)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// Arbitrary bytes, however split, get the answer a single read gets:
        /// a request whose head ends at the same byte, or a refusal with the
        /// same status (whether the partial check or the parser found the
        /// fault), or still nothing; and never a panic.
        #[test]
        fn arbitrary_bytes_give_the_same_answer_whatever_the_split(
            input in http_ish_bytes(2048),
            cuts in prop::collection::vec(any::<Index>(), 0..8),
        ) {
            prop_assert_eq!(answer_in_pieces(&input, &read_ends(&input, &cuts)), answer_in_pieces(&input, &[]));
        }

        /// However long a request line grows, it is refused with 414 once it
        /// passes the limit, before its end arrives, and never before.
        #[test]
        fn request_lines_over_the_limit_are_414_before_they_end(
            extra in 1usize..20_000,
            filler in prop::sample::select(vec![b'a', b'/', b'%', b' ', 0u8]),
        ) {
            let mut line = b"GET /".to_vec();
            line.resize(MAX_REQUEST_LINE + extra, filler);
            prop_assert_eq!(check_partial(&line, 0), Err(HeadError::UriTooLong));
            prop_assert_eq!(check_partial(&line[..MAX_REQUEST_LINE], 0), Ok(()));
            line.extend_from_slice(b" HTTP/1.1\r\n\r\n");
            prop_assert_eq!(parse(&line).unwrap_err(), HeadError::UriTooLong);
        }

        /// Framing is never ambiguous: any mix of `Content-Length` and
        /// `Transfer-Encoding` is refused; `Content-Length` values are accepted
        /// only when they all agree, and only when they fit in 64 bits.
        #[test]
        fn framing_headers_are_accepted_only_when_unambiguous(
            lengths in prop::collection::vec(prop_oneof![
                3 => (0u64..5).prop_map(|n| n.to_string()),
                1 => any::<u64>().prop_map(|n| n.to_string()),
                1 => "[0-9]{20,30}",
                1 => "[+-]?[0-9a-f ]{1,5}",
            ], 0..4),
            chunked in any::<bool>(),
        ) {
            let mut head = String::from("POST /register HTTP/1.1\r\nHost: t\r\n");
            for value in &lengths {
                head.push_str(&format!("Content-Length: {value}\r\n"));
            }
            if chunked {
                head.push_str("Transfer-Encoding: chunked\r\n");
            }
            head.push_str("\r\n");
            let parsed = parse(head.as_bytes()).map(|r| r.framing);
            let numbers: Vec<Option<u64>> = lengths
                .iter()
                .map(|v| v.trim())
                .map(|v| v.bytes().all(|b| b.is_ascii_digit()).then(|| v.parse().ok()).flatten())
                .collect();
            let expected = match (numbers.first(), chunked) {
                (Some(_), true) => None,
                (None, true) => Some(Framing::Chunked),
                (None, false) => Some(Framing::None),
                (Some(first), false) => match first {
                    Some(n) if numbers.iter().all(|m| *m == Some(*n)) => Some(Framing::Length(*n)),
                    _ => None,
                },
            };
            match expected {
                Some(framing) => prop_assert_eq!(parsed, Ok(framing)),
                None => prop_assert!(matches!(parsed, Err(HeadError::Malformed(_))), "{:?}", parsed),
            }
        }
    }
}
