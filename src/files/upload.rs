//! `POST /files/upload`: a `multipart/form-data` body whose `file` part is
//! streamed to disk as it arrives.
//!
//! Everything that can refuse the request without its body (the token, the
//! content type, a declared length that cannot fit) is checked before the
//! first read of the body, because that first read is what sends
//! `100 Continue`: a refused client never sends its body at all.
//!
//! Memory does not grow with the upload: the body is read a socket buffer at
//! a time, the parser holds back at most a possible delimiter, and the file
//! is written in fixed-size pieces (see [`Incoming`]).

use std::path::PathBuf;

use super::store::Incoming;
use super::{FileView, Files};
use crate::api::{ApiError, Ctx};
use crate::clock::Timestamp;
use crate::db::files::FileRow;
use crate::http::is_token;
use crate::http::multipart::{self, Event, Limits, Parser, PartHeaders};
use crate::http::response::Response;
use crate::metrics::METRICS;

/// The form field that carries the file.
const FILE_FIELD: &str = "file";
/// Room for the multipart framing, part headers and small extra fields on
/// top of `--max-upload-bytes`: a body larger than both together is refused.
const MULTIPART_ALLOWANCE: u64 = 1024 * 1024;
/// Stored file names are cut to this many characters.
const MAX_FILENAME_CHARS: usize = 255;
/// The name recorded when the client sends none.
const DEFAULT_FILENAME: &str = "file";
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";
/// A part's content type longer than this is not kept.
const MAX_CONTENT_TYPE_LEN: usize = 255;

pub(crate) async fn upload(ctx: &mut Ctx<'_, '_>, files: &Files) -> Result<Response, ApiError> {
    let claims = ctx.authenticate()?;
    let content_type = ctx.request.header("content-type").unwrap_or_default();
    let boundary = multipart::boundary_from_content_type(content_type)?;
    let max_file = files.max_upload_bytes;
    let max_body = max_file.saturating_add(MULTIPART_ALLOWANCE);
    if ctx.body.exceeds(max_body) {
        return Err(too_large(max_file));
    }
    let mut form = Form {
        parser: Parser::new(&boundary, Limits::default()),
        dir: files.dir.clone(),
        node: files.node.clone(),
        max_file,
        file: None,
        in_file: false,
    };
    let mut pending = Vec::new();
    let mut received = 0u64;
    loop {
        let piece = ctx.body.chunk().await?;
        let eof = piece.is_none();
        if let Some(piece) = piece {
            received += piece.len() as u64;
            if received > max_body {
                return Err(too_large(max_file));
            }
        }
        // What the parser leaves unconsumed (at most a possible delimiter)
        // waits in `pending` for the next piece. Without such a tail, the
        // piece is parsed where it lies, in the connection's buffer.
        let ended = if pending.is_empty() {
            let input = piece.unwrap_or_default();
            let (consumed, ended) = form.feed(input, eof).await?;
            pending.extend_from_slice(&input[consumed..]);
            ended
        } else {
            pending.extend_from_slice(piece.unwrap_or_default());
            let (consumed, ended) = form.feed(&pending, eof).await?;
            pending.drain(..consumed);
            ended
        };
        if ended {
            break;
        }
    }
    let file = form
        .file
        .ok_or_else(|| ApiError::unprocessable(format!("the form has no '{FILE_FIELD}' part")))?;
    let stored = file.incoming.commit().await.map_err(ApiError::storage)?;
    let row = FileRow {
        id: stored.id,
        filename: file.filename,
        size: stored.size,
        content_type: file.content_type,
        sha256: stored.sha256,
        uploaded_by: claims.uid,
        uploader: claims.sub,
        created_at: Timestamp::now(),
        shared: false,
    };
    files.db.insert_file(row.clone()).await?;
    // Committed: the row owns the bytes now. Had anything above failed, the
    // guard would have removed them.
    stored.discard.keep();
    METRICS.upload_bytes.add(row.size);
    Ok(Response::json(201, &FileView::from(&row)).header("Location", format!("/files/{}", row.id)))
}

/// The state of one form body being read.
struct Form {
    parser: Parser,
    dir: PathBuf,
    /// This node's name in cluster mode (see `Files::node`).
    node: Option<String>,
    max_file: u64,
    /// The first `file` part, once it has begun; later ones are ignored.
    file: Option<FilePart>,
    /// Whether the part being read is that `file` part.
    in_file: bool,
}

struct FilePart {
    incoming: Incoming,
    filename: String,
    content_type: String,
}

impl Form {
    /// Parses as much of `input` as it can, acting on every event. Returns
    /// how many bytes were consumed and whether the body has ended.
    async fn feed(&mut self, mut input: &[u8], eof: bool) -> Result<(usize, bool), ApiError> {
        let total = input.len();
        loop {
            let step = self.parser.step(input, eof)?;
            input = &input[step.consumed..];
            match step.event {
                None => return Ok((total - input.len(), false)),
                Some(Event::End) => return Ok((total - input.len(), true)),
                Some(Event::Part(headers)) => self.begin_part(headers).await?,
                Some(Event::Data(bytes)) if self.in_file => self.write(bytes).await?,
                Some(Event::Data(_)) => {}
                Some(Event::PartEnd) => self.in_file = false,
            }
        }
    }

    async fn begin_part(&mut self, headers: PartHeaders) -> Result<(), ApiError> {
        if self.file.is_some() || headers.name.as_deref() != Some(FILE_FIELD) {
            return Ok(());
        }
        let incoming = Incoming::create(&self.dir, self.node.as_deref())
            .await
            .map_err(ApiError::storage)?;
        self.file = Some(FilePart {
            incoming,
            filename: sanitize_filename(headers.filename.as_deref().unwrap_or_default()),
            content_type: headers
                .content_type
                .as_deref()
                .and_then(media_type)
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string()),
        });
        self.in_file = true;
        Ok(())
    }

    /// The limit is enforced before the bytes are written, so a file over it
    /// never reaches the disk in full.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        let Some(file) = &mut self.file else {
            return Ok(());
        };
        if file.incoming.received() + bytes.len() as u64 > self.max_file {
            return Err(too_large(self.max_file));
        }
        file.incoming.write(bytes).await.map_err(ApiError::storage)
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(413, format!("the file is larger than {limit} bytes")).closing()
}

/// The client's file name as metadata: control characters (CR, LF, NUL, ...)
/// and invisible ones (see [`is_invisible`]) removed and cut to
/// [`MAX_FILENAME_CHARS`]; otherwise as given, `../` and all, since it is
/// never used as a path.
fn sanitize_filename(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|&c| !c.is_control() && !is_invisible(c))
        .take(MAX_FILENAME_CHARS)
        .collect();
    if clean.is_empty() {
        DEFAULT_FILENAME.to_string()
    } else {
        clean
    }
}

/// Bidirectional controls and zero-width characters: a name holding them
/// shows as something else (`invoice\u{202E}gpj.exe` reads "invoice" then
/// "exe.jpg" reversed) or hides characters from whoever reads it.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// A well-formed media type `type/subtype` with optional `; name=value`
/// parameters, normalised (type lower-cased, single spaces), or `None`: the
/// value is sent back in a `Content-Type` header, so only what is certainly
/// a media type is kept.
fn media_type(value: &str) -> Option<String> {
    let mut pieces = value.split(';');
    let essence = pieces.next()?.trim();
    let (kind, subtype) = essence.split_once('/')?;
    if !is_token(kind.as_bytes()) || !is_token(subtype.as_bytes()) {
        return None;
    }
    let mut normal = essence.to_ascii_lowercase();
    for parameter in pieces {
        let (name, value) = parameter.trim().split_once('=')?;
        let quoted = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .is_some_and(|inner| {
                inner
                    .chars()
                    .all(|c| c == ' ' || (c.is_ascii_graphic() && c != '"' && c != '\\'))
            });
        if !is_token(name.as_bytes()) || !(is_token(value.as_bytes()) || quoted) {
            return None;
        }
        normal.push_str("; ");
        normal.push_str(&name.to_ascii_lowercase());
        normal.push('=');
        normal.push_str(value);
    }
    (normal.len() <= MAX_CONTENT_TYPE_LEN).then_some(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_lose_control_and_invisible_characters_only() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "../../etc/passwd");
        assert_eq!(sanitize_filename("a\r\nb\0c\u{7f}d\u{85}e.txt"), "abcde.txt");
        assert_eq!(sanitize_filename("say \"hi\"\\.txt"), "say \"hi\"\\.txt");
        assert_eq!(sanitize_filename("résumé 東京.txt"), "résumé 東京.txt");
        assert_eq!(
            sanitize_filename("in\u{200B}vo\u{200F}i\u{202A}c\u{202E}e\u{2066}\u{2069}\u{FEFF}.gpj\u{200A}\u{2070}"),
            "invoice.gpj\u{200A}\u{2070}"
        );
        assert_eq!(sanitize_filename(""), "file");
        assert_eq!(sanitize_filename("\r\n"), "file");
        assert_eq!(sanitize_filename(&"é".repeat(1000)), "é".repeat(255));
    }

    #[test]
    fn well_formed_media_types_are_kept() {
        assert_eq!(media_type("text/plain").as_deref(), Some("text/plain"));
        assert_eq!(media_type(" Image/PNG ").as_deref(), Some("image/png"));
        assert_eq!(
            media_type("text/plain;charset=UTF-8").as_deref(),
            Some("text/plain; charset=UTF-8")
        );
        assert_eq!(
            media_type("text/plain; Charset=\"utf 8\"").as_deref(),
            Some("text/plain; charset=\"utf 8\"")
        );
        assert_eq!(
            media_type("application/vnd.api+json").as_deref(),
            Some("application/vnd.api+json")
        );
    }

    #[test]
    fn anything_else_is_not_a_media_type() {
        for bad in [
            "",
            "text",
            "text/",
            "/plain",
            "text/plain/x",
            "text /plain",
            "tëxt/plain",
            "text/plain; charset",
            "text/plain; charset=",
            "text/plain; a=\"b",
            "text/plain; a=\"b\"c\"",
            "text/plain; =x",
            "text/plain; a=b c",
        ] {
            assert_eq!(media_type(bad), None, "{bad:?}");
        }
        assert_eq!(media_type(&format!("text/{}", "a".repeat(300))), None);
    }
}
