//! The paging parameters of every listing (`/history`, `/files`), parsed in
//! one place so that both accept and refuse the same things: `offset`
//! (default 0) or, where the listing has a keyset form, `before_id`, never
//! both, and `limit` 1 to 100 (default 20). Any other parameter is ignored.

use super::ApiError;
use crate::http::form;

/// The page size when `limit` is not given.
pub(crate) const DEFAULT_LIMIT: u32 = 20;
pub(crate) const MAX_LIMIT: u32 = 100;

/// Where a page starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Skip this many of the newest items.
    Offset(i64),
    /// Only items with a smaller id.
    BeforeId(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageQuery {
    pub start: Start,
    pub limit: u32,
}

/// Whether a listing takes `before_id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keyset {
    Allowed,
    /// `before_id` is not a parameter of this listing, so it is ignored.
    Ignored,
}

/// Parses a query string into a page; a bad value is 422 naming the
/// parameter.
pub(crate) fn parse(query: &str, keyset: Keyset) -> Result<PageQuery, ApiError> {
    let number = |name: &str| -> Result<Option<i64>, ApiError> {
        let Some(value) = form::get(query, name) else {
            return Ok(None);
        };
        match value.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n)),
            _ => Err(ApiError::unprocessable(format!(
                "'{name}' must be a whole number of at least 0"
            ))),
        }
    };
    let limit = match number("limit")? {
        None => DEFAULT_LIMIT,
        Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => n as u32,
        Some(_) => return Err(ApiError::unprocessable("'limit' must be from 1 to 100")),
    };
    let before_id = match keyset {
        Keyset::Allowed => number("before_id")?,
        Keyset::Ignored => None,
    };
    let start = match (number("offset")?, before_id) {
        (Some(_), Some(_)) => return Err(ApiError::unprocessable("give either 'offset' or 'before_id', not both")),
        (_, Some(id)) => Start::BeforeId(id),
        (offset, None) => Start::Offset(offset.unwrap_or(0)),
    };
    Ok(PageQuery { start, limit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_query(query: &str) -> Result<PageQuery, ApiError> {
        parse(query, Keyset::Allowed)
    }

    #[test]
    fn queries_default_and_validate() {
        let parsed = |q: &str| parse_query(q).map(|p| (p.start, p.limit));
        assert_eq!(parsed("").unwrap(), (Start::Offset(0), 20));
        assert_eq!(parsed("offset=40&limit=100").unwrap(), (Start::Offset(40), 100));
        assert_eq!(parsed("before_id=7&limit=1&x=y").unwrap(), (Start::BeforeId(7), 1));
        for bad in [
            "limit=0",
            "limit=101",
            "limit=ten",
            "limit=",
            "offset=-1",
            "offset=1.5",
            "before_id=-3",
            "offset=99999999999999999999",
            "offset=0&before_id=5",
        ] {
            assert_eq!(parse_query(bad).unwrap_err().status, 422, "{bad}");
        }
    }

    #[test]
    fn a_listing_without_keyset_ignores_before_id() {
        let page = parse("offset=3&before_id=oops", Keyset::Ignored).unwrap();
        assert_eq!((page.start, page.limit), (Start::Offset(3), 20));
    }
}
