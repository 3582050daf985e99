//! The paging parameters of every listing (`/history`, `/files`), parsed in
//! one place so that both accept and refuse the same things: `offset`
//! (default 0) or, where the listing has keyset forms, `before_id` or
//! `after_id`, never more than one of them, and `limit` 1 to 100 (default
//! 20). Any other parameter is ignored.

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
    /// Only items with a greater id, the oldest of them first.
    AfterId(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageQuery {
    pub start: Start,
    pub limit: u32,
}

/// A page of a listing with keyset forms (`/history`): `offset`,
/// `before_id` or `after_id`, and `limit`.
pub(crate) fn parse(query: &str) -> Result<PageQuery, ApiError> {
    let limit = limit(query)?;
    let starts = [
        number(query, "offset")?.map(Start::Offset),
        number(query, "before_id")?.map(Start::BeforeId),
        number(query, "after_id")?.map(Start::AfterId),
    ];
    let mut given = starts.into_iter().flatten();
    let start = given.next().unwrap_or(Start::Offset(0));
    if given.next().is_some() {
        return Err(ApiError::unprocessable(
            "give at most one of 'offset', 'before_id' and 'after_id'",
        ));
    }
    Ok(PageQuery { start, limit })
}

/// A page of a listing by offset only (`/files`): the offset and the limit.
/// `before_id` is not one of its parameters, so it is ignored like any other.
pub(crate) fn parse_offset(query: &str) -> Result<(i64, u32), ApiError> {
    Ok((number(query, "offset")?.unwrap_or(0), limit(query)?))
}

/// `limit`, 1 to 100, [`DEFAULT_LIMIT`] when absent.
fn limit(query: &str) -> Result<u32, ApiError> {
    match number(query, "limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => Ok(n as u32),
        Some(_) => Err(ApiError::unprocessable("'limit' must be from 1 to 100")),
    }
}

/// The whole number `name`, if present; 422 naming it if it is not one of
/// at least 0.
pub(crate) fn number(query: &str, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(value) = form::get(query, name) else {
        return Ok(None);
    };
    match value.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(Some(n)),
        _ => Err(ApiError::unprocessable(format!(
            "'{name}' must be a whole number of at least 0"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_default_and_validate() {
        let parsed = |q: &str| parse(q).map(|p| (p.start, p.limit));
        assert_eq!(parsed("").unwrap(), (Start::Offset(0), 20));
        assert_eq!(parsed("offset=40&limit=100").unwrap(), (Start::Offset(40), 100));
        assert_eq!(parsed("before_id=7&limit=1&x=y").unwrap(), (Start::BeforeId(7), 1));
        assert_eq!(parsed("after_id=0").unwrap(), (Start::AfterId(0), 20));
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
            "after_id=-1",
            "after_id=x",
            "after_id=1&before_id=5",
            "offset=0&after_id=5",
        ] {
            assert_eq!(parse(bad).unwrap_err().status, 422, "{bad}");
        }
    }

    #[test]
    fn a_listing_without_keyset_ignores_before_id() {
        assert_eq!(parse_offset("offset=3&before_id=oops").unwrap(), (3, 20));
        assert_eq!(parse_offset("limit=0").unwrap_err().status, 422);
    }
}
