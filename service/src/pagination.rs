//! Keyset pagination: `?limit=&cursor=` → `{items, next_cursor}`, newest first, never OFFSET.

use serde::{Deserialize, Serialize};

use crate::error::{FieldError, ServiceError};

pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 200;
/// What a cursor looks like (the OpenAPI document declares it): the id the next page starts
/// below, in decimal, or empty for the first page. Ids never reach 18 digits, so every string
/// of this shape parses.
pub const CURSOR_PATTERN: &str = "^([1-9][0-9]{0,17})?$";

/// A validated page request: at most `limit` rows with an id below `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: u64,
    pub before: Option<i64>,
}

impl PageRequest {
    pub fn parse(limit: Option<u64>, cursor: Option<&str>) -> Result<Self, ServiceError> {
        let mut errors = Vec::new();
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let before = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => match decode(c) {
                Some(id) => Some(id),
                None => {
                    errors.push(FieldError::new(
                        "cursor",
                        "is not a cursor this API returned",
                    ));
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(Self { limit, before })
        } else {
            Err(ServiceError::Validation(errors))
        }
    }

    /// Rows to fetch: one more than the page, to know whether another page follows.
    pub fn fetch(&self) -> u64 {
        self.limit + 1
    }
}

/// One page of a list, newest first. Pass `next_cursor` back as `cursor` for the next page;
/// it is `null` on the last page.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows ordered by id descending.
    pub fn from_rows<R>(
        request: PageRequest,
        mut rows: Vec<R>,
        id: impl Fn(&R) -> i64,
        map: impl Fn(R) -> T,
    ) -> Self {
        let limit = usize::try_from(request.limit).unwrap_or(usize::MAX);
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|r| encode(id(r)))
        } else {
            None
        };
        Self {
            items: rows.into_iter().map(map).collect(),
            next_cursor,
        }
    }
}

fn encode(id: i64) -> String {
    id.to_string()
}

/// The id a cursor names: digits of `CURSOR_PATTERN`'s shape only (no sign, no leading zero).
fn decode(cursor: &str) -> Option<i64> {
    let digits = cursor.len() <= 18
        && cursor.starts_with(|c: char| ('1'..='9').contains(&c))
        && cursor.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| cursor.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_bad_input() {
        let req = PageRequest::parse(Some(2), None).unwrap();
        let page = Page::from_rows(req, vec![9, 8, 7], |r| *r, |r| r);
        assert_eq!(page.items, vec![9, 8]);
        let next = PageRequest::parse(Some(2), page.next_cursor.as_deref()).unwrap();
        assert_eq!(next.before, Some(8));
        let last = Page::from_rows(next, vec![7], |r| *r, |r| r);
        assert!(last.next_cursor.is_none());
        assert!(PageRequest::parse(Some(0), None).is_err());
        assert!(PageRequest::parse(Some(500), None).is_err());
        assert!(PageRequest::parse(None, Some("garbage!")).is_err());
        for bad in ["0", "-5", "+5", "012", "1234567890123456789", " 5"] {
            assert!(PageRequest::parse(None, Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            PageRequest::parse(None, Some("123456789012345678"))
                .unwrap()
                .before,
            Some(123_456_789_012_345_678)
        );
    }
}
