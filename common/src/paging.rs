//! The one paging convention for lists that only grow (orders, the DLQ audit log, statements):
//! `?limit=&cursor=` in, `{"items": […], "next_cursor": "…"}` out, newest first. `next_cursor` is
//! absent on the last page; pass it back as `cursor` for the next (older) page. A cursor is opaque
//! (base64url of the last item's sort key): rows inserted meanwhile never shift a page, unlike
//! offsets. Searches (`/findAll`, `/admin/dlq`) keep `page`/`per_page` with a `total`.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};

use crate::http::Problem;

/// `limit` as given (1–`max`), or `default` when absent.
pub fn limit(given: Option<u32>, default: u32, max: u32) -> Result<u32, Problem> {
    let limit = given.unwrap_or(default);
    if (1..=max).contains(&limit) { Ok(limit) } else { Err(Problem::invalid("limit", format!("must be between 1 and {max}"))) }
}

/// A cursor over sort key `key`, tagged with `kind` so a cursor of one list is refused by another.
pub fn encode(kind: &str, key: &str) -> String {
    B64.encode(format!("{kind}:{key}"))
}

/// The sort key inside `cursor`, if it is a `kind` cursor this API issued; an empty cursor is
/// the first page (`Ok(None)`).
pub fn decode(kind: &str, cursor: Option<&str>) -> Result<Option<String>, Problem> {
    let refused = || Problem::invalid("cursor", "not a cursor this list issued (pass next_cursor back unchanged)");
    match cursor {
        None | Some("") => Ok(None),
        Some(c) => {
            let text = B64.decode(c).ok().and_then(|b| String::from_utf8(b).ok()).ok_or_else(refused)?;
            let key = text.strip_prefix(kind).and_then(|t| t.strip_prefix(':')).ok_or_else(refused)?;
            Ok(Some(key.to_string()))
        }
    }
}

/// Cuts `rows` (fetched with `limit + 1`, so one more tells whether an older page exists) to a
/// page and the cursor after its last row.
pub fn page<T>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> String, kind: &str) -> (Vec<T>, Option<String>) {
    if rows.len() <= limit as usize {
        return (rows, None);
    }
    rows.truncate(limit as usize);
    let next = rows.last().map(|last| encode(kind, &key(last)));
    (rows, next)
}

#[cfg(test)]
mod tests {
    use super::{decode, encode, limit, page};

    #[test]
    fn cursors_round_trip_and_foreign_or_garbage_ones_are_refused() {
        let c = encode("o", "1700000000000000:abc");
        assert_eq!(decode("o", Some(&c)).unwrap().as_deref(), Some("1700000000000000:abc"));
        assert_eq!(decode("o", None).unwrap(), None);
        assert_eq!(decode("o", Some("")).unwrap(), None);
        for bad in ["nonsense!", &encode("p", "42"), &encode("ox", "42")] {
            let p = decode("o", Some(bad)).unwrap_err();
            assert_eq!(p.field.as_deref(), Some("cursor"), "{bad}");
        }
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_rows_exist() {
        let (rows, next) = page(vec![5, 4, 3], 3, |r| r.to_string(), "n");
        assert_eq!((rows, next), (vec![5, 4, 3], None));
        let (rows, next) = page(vec![5, 4, 3, 2], 3, |r| r.to_string(), "n");
        assert_eq!(rows, vec![5, 4, 3]);
        assert_eq!(decode("n", next.as_deref()).unwrap().as_deref(), Some("3"));
    }

    #[test]
    fn limits_outside_the_range_are_refused_naming_the_field() {
        assert_eq!(limit(None, 20, 100).unwrap(), 20);
        assert_eq!(limit(Some(100), 20, 100).unwrap(), 100);
        for bad in [0, 101] {
            assert_eq!(limit(Some(bad), 20, 100).unwrap_err().field.as_deref(), Some("limit"));
        }
    }
}
