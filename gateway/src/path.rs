//! The one reading of a request path (pure). Every request's path is normalised here once, before
//! anything looks at it: the gateway's own routes, the web app's files, the route table
//! ([`crate::routes`]) and the upstream URI ([`crate::proxy`]) all see the same segments.
//!
//! - Percent-escapes of unreserved characters (RFC 3986 §2.3: `A–Z a–z 0–9 - . _ ~`) are decoded
//!   (`%61dmin` is `admin`, `%2e%2e` is `..`); every other escape is kept, its hex in upper case;
//!   a byte that may not appear raw in a path segment is escaped.
//! - Dot-segments are resolved (RFC 3986 §5.2.4): `.` goes, `..` removes the segment before it
//!   (never above the root).
//! - An encoded `/` (`%2F`) or `\` (`%5C`), a raw `\`, a NUL and a broken escape (`%`, `%4`, `%zz`)
//!   are refused: URL parsers disagree about them (WHATWG treats `\` as `/`), so the gateway never
//!   guesses — 400 `invalid_path`.
//!
//! The result is canonical: normalising it again changes nothing, and a URL parser (the `url`
//! crate under `reqwest`, the WHATWG rules) resolves it to itself — no dot-segment, separator or
//! escape is left that a later parser could read differently.

use std::fmt::Write as _;

/// Why a path is refused (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path does not start with `/`")]
    NotAbsolute,
    #[error("an encoded `/` or `\\` (%2F, %5C) or a `\\` is not accepted in a path")]
    Separator,
    #[error("a broken percent-escape in the path")]
    BadEscape,
    #[error("a NUL byte in the path")]
    Nul,
    #[error("the path is too long")]
    TooLong,
}

/// The longest path accepted (bytes, as received).
pub const MAX_PATH: usize = 4096;

/// A normalised path: its segments, each in canonical form (unreserved characters literal, every
/// other byte that is not a sub-delimiter, `:` or `@` percent-encoded in upper-case hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    pub segments: Vec<String>,
}

impl Normalised {
    /// `/seg/seg…` (`/` for no segments).
    pub fn path(&self) -> String {
        format!("/{}", self.segments.join("/"))
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Bytes kept literal in a canonical segment: unreserved, sub-delims and `:` `@` (RFC 3986 `pchar`).
fn literal(b: u8) -> bool {
    unreserved(b) || matches!(b, b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'@')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// One raw segment (no `/` in it) in canonical form.
fn segment(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let (byte, escaped) = if b == b'%' {
            let (Some(h), Some(l)) = (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) else {
                return Err(PathError::BadEscape);
            };
            i += 3;
            (h << 4 | l, true)
        } else {
            i += 1;
            (b, false)
        };
        match byte {
            b'/' | b'\\' => return Err(PathError::Separator),
            0 => return Err(PathError::Nul),
            _ => {}
        }
        // An escaped reserved character stays escaped (it is not the same as the character);
        // an unreserved one is the character itself; anything else is escaped.
        if (escaped && unreserved(byte)) || (!escaped && literal(byte)) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    Ok(out)
}

/// Normalises a request path as received (`uri.path()`, still percent-encoded).
pub fn normalise(raw: &str) -> Result<Normalised, PathError> {
    if raw.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    let rest = raw.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    let mut segments: Vec<String> = Vec::new();
    let parts: Vec<&str> = rest.split('/').collect();
    let last = parts.len() - 1;
    for (n, part) in parts.into_iter().enumerate() {
        let s = segment(part)?;
        match s.as_str() {
            "." => {
                // `/a/.` is `/a/`: the path keeps its trailing slash.
                if n == last {
                    segments.push(String::new());
                }
            }
            ".." => {
                segments.pop();
                if n == last {
                    segments.push(String::new());
                }
            }
            _ => segments.push(s),
        }
    }
    // `/` alone is no segment at all.
    if segments.len() == 1 && segments[0].is_empty() {
        segments.clear();
    }
    Ok(Normalised { segments })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(raw: &str) -> Result<String, PathError> {
        normalise(raw).map(|p| p.path())
    }

    #[test]
    fn unreserved_escapes_are_decoded_dot_segments_resolved_and_separators_refused() {
        assert_eq!(n("/api/orders").unwrap(), "/api/orders");
        assert_eq!(n("/").unwrap(), "/");
        assert_eq!(n("/api/%61uth/%2e%2e/metrics").unwrap(), "/api/metrics");
        assert_eq!(n("/api/auth/.%2E/%2e/metrics").unwrap(), "/api/metrics");
        assert_eq!(n("/api/orders/../../../../x").unwrap(), "/x");
        assert_eq!(n("/api/orders/.").unwrap(), "/api/orders/");
        assert_eq!(n("/api/orders/%20a%7e").unwrap(), "/api/orders/%20a~");
        assert_eq!(n("/api/orders/%3a%21!").unwrap(), "/api/orders/%3A%21!");
        assert_eq!(n("/api/x/%252e%252e").unwrap(), "/api/x/%252e%252e", "an escaped `%` is not decoded twice");
        assert_eq!(n("/api/x/é").unwrap(), "/api/x/%C3%A9");
        for bad in ["/api/auth/..%2Fmetrics", "/api/auth/..%2fmetrics", "/api/x/..%5Cmetrics", "/api/x\\..\\metrics", "/api/%", "/api/%4", "/api/%zz", "/api/%00", "api"] {
            assert!(n(bad).is_err(), "{bad:?} is refused");
        }
    }

    #[test]
    fn a_url_parser_reads_the_canonical_path_as_itself() {
        for raw in ["/api/auth/%2e%2e/metrics", "/api/a/%2E./b", "/api/%7B%7D/%23/%3F", "/api/x;y/=z", "/api/ok/"] {
            let path = n(raw).unwrap();
            let url = url::Url::parse(&format!("http://upstream:1{path}")).unwrap();
            assert_eq!(url.path(), path, "{raw:?}");
        }
    }
}
