//! The one paging convention for lists that only grow (orders, the DLQ audit log, statements):
//! `?limit=&cursor=` in, `{"items": […], "next_cursor": "…"}` out, newest first. `next_cursor` is
//! absent on the last page; pass it back as `cursor` for the next (older) page. A cursor is the
//! list's name and the last item's sort key, `<list>.<key>` (`audit.1326`): rows inserted meanwhile
//! never shift a page, unlike offsets. Its form is documented (each list's `cursor` parameter has a
//! pattern), so that any cursor a document allows is one the list takes — an OpenAPI fuzzer, or a
//! client generated from the document, cannot produce one that is refused. Searches (`/findAll`,
//! `/admin/dlq`) keep `page`/`per_page` with a `total`.

use crate::http::Problem;

/// `limit` as given (1–`max`), or `default` when absent.
pub fn limit(given: Option<u32>, default: u32, max: u32) -> Result<u32, Problem> {
    let limit = given.unwrap_or(default);
    if (1..=max).contains(&limit) { Ok(limit) } else { Err(Problem::invalid("limit", format!("must be between 1 and {max}"))) }
}

/// A cursor over sort key `key`, tagged with `kind` so a cursor of one list is refused by another.
pub fn encode(kind: &str, key: &str) -> String {
    format!("{kind}.{key}")
}

/// The sort key inside `cursor`, if it is a `kind` cursor (the caller then parses the key, and
/// refuses it with [`refused`] if it is not one); an empty cursor is the first page (`Ok(None)`).
pub fn decode(kind: &str, cursor: Option<&str>) -> Result<Option<String>, Problem> {
    match cursor {
        None | Some("") => Ok(None),
        Some(c) => {
            let key = c.strip_prefix(kind).and_then(|t| t.strip_prefix('.')).filter(|k| !k.is_empty()).ok_or_else(refused)?;
            Ok(Some(key.to_string()))
        }
    }
}

/// The answer to a cursor this list did not issue.
pub fn refused() -> Problem {
    Problem::invalid("cursor", "not a cursor this list issued (pass next_cursor back unchanged)")
}

/// The pattern of a `kind` cursor whose key matches `key_pattern` (or an empty one: the first page),
/// for the `cursor` parameter's schema.
pub fn pattern(kind: &str, key_pattern: &str) -> String {
    format!("^({kind}\\.{key_pattern})?$")
}

/// A numeric key (an auto-increment id) that fits every integer type the lists use.
pub const NUMERIC_KEY: &str = "[0-9]{1,18}";

/// A [`NUMERIC_KEY`] as a number, or [`refused`] (digits only: no sign, no spaces).
pub fn numeric_key(key: &str) -> Result<u64, Problem> {
    if key.is_empty() || key.len() > 18 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused());
    }
    key.parse().map_err(|_| refused())
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
    use super::{NUMERIC_KEY, decode, encode, limit, numeric_key, page, pattern};

    #[test]
    fn cursors_round_trip_and_foreign_or_garbage_ones_are_refused() {
        let c = encode("o", "1700000000000000:abc");
        assert_eq!(decode("o", Some(&c)).unwrap().as_deref(), Some("1700000000000000:abc"));
        assert_eq!(decode("o", None).unwrap(), None);
        assert_eq!(decode("o", Some("")).unwrap(), None);
        assert_eq!(c, "o.1700000000000000:abc", "the form the documents state");
        for bad in ["nonsense!", &encode("p", "42"), &encode("ox", "42"), "o.", "o"] {
            let p = decode("o", Some(bad)).unwrap_err();
            assert_eq!(p.field.as_deref(), Some("cursor"), "{bad}");
        }
    }

    #[test]
    fn the_pattern_states_the_form() {
        let re = regex::Regex::new(&pattern("audit", NUMERIC_KEY)).unwrap();
        for good in ["", "audit.1", "audit.123456789012345678"] {
            assert!(re.is_match(good), "{good}");
        }
        for bad in ["audit.", "audit.x", "posting.1", "audit.1234567890123456789", "YXVkaXQ6MQ", "audit.+5"] {
            assert!(!re.is_match(bad), "{bad}");
        }
        assert_eq!(numeric_key("123456789012345678").unwrap(), 123_456_789_012_345_678);
        for bad in ["", "+5", "-5", " 5", "1234567890123456789"] {
            assert!(numeric_key(bad).is_err(), "{bad}");
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
