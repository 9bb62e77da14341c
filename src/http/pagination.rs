//! Cursor pagination: `?limit=` 1..=100 (default 20) and an opaque `?cursor=`; responses are
//! `{data, next_cursor}`. Lists are ordered newest first by id (ids sort by creation time), and
//! the cursor is the last id seen, so rows inserted while a client pages never shift a page.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::validate::Validate;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The raw query parameters; strings so that a bad value gets our message, not serde's.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

impl Validate for PageQuery {}

/// Validated paging: how many, and the id to continue below.
#[derive(Debug, Clone)]
pub struct PageParams {
    pub limit: i64,
    pub after: Option<String>,
}

impl PageQuery {
    pub fn parse(&self) -> Result<PageParams, ApiError> {
        let limit = match self.limit.as_deref() {
            None => 20,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "limit must be an integer from 1 to 100; got {s:?}"
                    )));
                }
            },
        };
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(c) => Some(decode_cursor(c).ok_or_else(|| {
                ApiError::bad_request("cursor is not a cursor this API returned")
            })?),
        };
        Ok(PageParams { limit, after })
    }
}

pub fn encode_cursor(id: &str) -> String {
    B64.encode(format!("v1:{id}"))
}

fn decode_cursor(c: &str) -> Option<String> {
    let raw = B64.decode(c).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let id = s.strip_prefix("v1:")?;
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    ok.then(|| id.to_owned())
}

/// One page of results.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched items (the extra one says there is more).
    pub fn from_rows(mut items: Vec<T>, limit: i64, id_of: impl Fn(&T) -> &str) -> Page<T> {
        let more = items.len() as i64 > limit;
        items.truncate(limit as usize);
        let next_cursor = if more {
            items.last().map(|t| encode_cursor(id_of(t)))
        } else {
            None
        };
        Page {
            data: items,
            next_cursor,
        }
    }

    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page {
            data: self.data.into_iter().map(f).collect::<Result<_, E>>()?,
            next_cursor: self.next_cursor,
        })
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            data: self.data.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors() {
        let q = |l: &str| {
            PageQuery {
                limit: Some(l.into()),
                cursor: None,
            }
            .parse()
        };
        assert_eq!(q("1").unwrap().limit, 1);
        assert_eq!(q("100").unwrap().limit, 100);
        for bad in ["0", "101", "-1", "ten", ""] {
            let e = q(bad).unwrap_err();
            assert!(e.to_string().contains("from 1 to 100"), "{bad}");
        }
        let c = encode_cursor("con_01abc");
        let p = PageQuery {
            limit: None,
            cursor: Some(c),
        }
        .parse()
        .unwrap();
        assert_eq!(p.after.as_deref(), Some("con_01abc"));
        assert!(
            PageQuery {
                limit: None,
                cursor: Some("garbage!".into())
            }
            .parse()
            .is_err()
        );
    }
}
