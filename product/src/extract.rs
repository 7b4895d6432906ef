//! Request extractors: the shared problem+json ones from `sagaway_common::http`, plus the field name
//! for serde's root-level errors (`missing field`, `unknown field`, `duplicate field`), which carry
//! no path, so every 422 names the field a client has to fix.

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
};
use sagaway_common::http::{ApiJson, ApiQuery, Problem};
use serde::de::DeserializeOwned;

/// A JSON body (see [`ApiJson`]) whose problems always name a field.
#[derive(Debug, Clone, Copy, Default)]
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        ApiJson::<T>::from_request(req, state).await.map(|ApiJson(v)| Body(v)).map_err(|p| name_field(p, "body"))
    }
}

/// Query parameters (see [`ApiQuery`]) whose problems always name a parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        ApiQuery::<T>::from_request_parts(parts, state).await.map(|ApiQuery(v)| Params(v)).map_err(|p| name_field(p, "query"))
    }
}

/// Fills `field` from serde's message when the shared extractor could not; `fallback` for a 422
/// about the whole input (e.g. an array where an object belongs).
fn name_field(mut p: Problem, fallback: &str) -> Problem {
    // serde reads a struct from an array too; `[1]` names a position, not a field.
    if p.field.as_deref().is_some_and(|f| f.starts_with('[')) {
        p.field = None;
    }
    if p.field.is_none() {
        p.field = field_in_message(&p.detail).or_else(|| (p.status == 422).then(|| fallback.to_string()));
    }
    p
}

fn field_in_message(detail: &str) -> Option<String> {
    ["missing field `", "unknown field `", "duplicate field `"].iter().find_map(|marker| {
        let rest = detail.split(marker).nth(1)?;
        Some(rest[..rest.find('`')?].to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::field_in_message;

    #[test]
    fn names_fields_from_root_level_serde_errors() {
        assert_eq!(field_in_message("missing field `quantity` at line 1 column 40").as_deref(), Some("quantity"));
        assert_eq!(field_in_message("unknown field `colour`, expected one of `name`, `price`").as_deref(), Some("colour"));
        assert_eq!(field_in_message("expected value at line 1 column 1"), None);
    }
}
