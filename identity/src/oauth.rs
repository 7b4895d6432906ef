//! `POST /auth/token`: the OAuth 2.0 token endpoint (RFC 6749 §3.2), beside the JSON login.
//!
//! - Request: `application/x-www-form-urlencoded`, `grant_type=password` (`username`, `password`,
//!   §4.3) or `grant_type=refresh_token` (`refresh_token`, §6). The audiences the token is for may
//!   be named with `resource` (RFC 8707) or `audience`, repeatable; none: the defaults (a refresh:
//!   the login's). Clients are public (`token_endpoint_auth_methods_supported: ["none"]`): a
//!   `client_id` is accepted and not checked; client authentication in an `Authorization` header is
//!   refused (`invalid_client`, 401). No scopes are defined: a non-empty `scope` is `invalid_scope`.
//! - Success (§5.1): `{access_token, token_type: "Bearer", expires_in, refresh_token}` with
//!   `Cache-Control: no-store` and `Pragma: no-cache`.
//! - Errors (§5.2): `{error, error_description}` as JSON, 400 (`invalid_request`,
//!   `unsupported_grant_type`, `invalid_grant`, `invalid_scope`, RFC 8707 `invalid_target`) or 401
//!   (`invalid_client`); a throttled login is 429 `slow_down` with `Retry-After`.
//!
//! The grants themselves are [`crate::api::password_grant`] and [`crate::api::refresh_grant`], the
//! same as the JSON routes'.

use axum::{
    Json,
    body::Bytes,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    AppState,
    api::{self, Issued},
    client::Client,
    error::ApiError,
    passwords::Password,
};

/// The grants this endpoint serves: what discovery advertises.
pub const GRANT_TYPES: &[&str] = &["password", "refresh_token"];

/// A token request's form fields (documentation of the form body; parsed by [`parse`]).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct TokenRequest {
    /// `password` or `refresh_token`.
    #[schema(example = "password")]
    grant_type: String,
    /// `password` grant.
    username: Option<String>,
    /// `password` grant.
    password: Option<String>,
    /// `refresh_token` grant.
    refresh_token: Option<String>,
    /// The audience (service) the token is for; repeatable. RFC 8707.
    resource: Option<Vec<String>>,
    /// The same as `resource`; repeatable.
    audience: Option<Vec<String>>,
    /// Accepted, not checked (public clients).
    client_id: Option<String>,
    /// No scopes are defined: only an empty one is accepted.
    scope: Option<String>,
}

/// An error response (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct OAuthError {
    #[schema(example = "invalid_grant")]
    pub error: &'static str,
    pub error_description: String,
    #[serde(skip)]
    status: u16,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: u16, error: &'static str, description: impl Into<String>) -> Self {
        Self { error, error_description: description.into(), status, retry_after: None }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", description)
    }

    pub fn status(&self) -> u16 {
        self.status
    }
}

/// A parsed token request.
#[derive(PartialEq, Eq)]
pub enum Grant {
    Password { username: String, password: String, audiences: Vec<String> },
    Refresh { refresh_token: String, audiences: Vec<String> },
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Password { username, audiences, .. } => f.debug_struct("Password").field("username", username).field("audiences", audiences).finish_non_exhaustive(),
            Self::Refresh { audiences, .. } => f.debug_struct("Refresh").field("audiences", audiences).finish_non_exhaustive(),
        }
    }
}

/// Whether `content_type` is a form (`application/x-www-form-urlencoded`, any parameters).
pub fn is_form(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// The rules of a token request's form (pure): each parameter at most once (§3.2) except the
/// repeatable `resource`/`audience`, a known grant type, its parameters present and not empty.
pub fn parse(body: &[u8]) -> Result<Grant, OAuthError> {
    let mut single: Vec<(String, String)> = Vec::new();
    let mut audiences: Vec<String> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(body) {
        match &*name {
            "resource" | "audience" => {
                if value.is_empty() {
                    return Err(OAuthError::invalid_request(format!("{name} is empty")));
                }
                audiences.push(value.into_owned());
            }
            _ if single.iter().any(|(n, _)| *n == name) => {
                return Err(OAuthError::invalid_request(format!("the parameter {name} is given more than once")));
            }
            _ => single.push((name.into_owned(), value.into_owned())),
        }
    }
    let get = |name: &str| single.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let required = |name: &str| match get(name) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(OAuthError::invalid_request(format!("the parameter {name} is required"))),
    };
    if get("scope").is_some_and(|s| !s.trim().is_empty()) {
        return Err(OAuthError::new(400, "invalid_scope", "this issuer defines no scopes; leave scope out"));
    }
    match get("grant_type") {
        None | Some("") => Err(OAuthError::invalid_request("the parameter grant_type is required")),
        Some("password") => Ok(Grant::Password { username: required("username")?, password: required("password")?, audiences }),
        Some("refresh_token") => Ok(Grant::Refresh { refresh_token: required("refresh_token")?, audiences }),
        Some(other) => Err(OAuthError::new(
            400,
            "unsupported_grant_type",
            format!("grant_type {other:?} is not supported; supported: {}", GRANT_TYPES.join(", ")),
        )),
    }
}

/// A grant's failure in OAuth2's terms.
pub fn oauth_error(e: ApiError) -> OAuthError {
    match e {
        ApiError::InvalidCredentials => OAuthError::new(400, "invalid_grant", "unknown username or wrong password"),
        ApiError::InvalidRefreshToken => OAuthError::new(400, "invalid_grant", "the refresh token is unknown, expired or revoked; log in again"),
        ApiError::RefreshTokenReused => OAuthError::new(
            400,
            "invalid_grant",
            "the refresh token was already used; every token of this login is now revoked; log in again",
        ),
        ApiError::UnknownAudience(a) => OAuthError::new(400, "invalid_target", format!("the audience {a:?} is not one this issuer grants here")),
        ApiError::TooManyAttempts { retry_after } => OAuthError {
            retry_after: Some(retry_after.as_secs()),
            ..OAuthError::new(
                429,
                "slow_down",
                format!("too many failed logins for this username from this address; try again in {} s", retry_after.as_secs()),
            )
        },
        ApiError::Rule(v) => OAuthError::invalid_request(v.to_string()),
        other => {
            tracing::error!(error = %other, "token endpoint failed");
            OAuthError::new(500, "server_error", "internal error; try again")
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut res = (status, no_store(), Json(&self)).into_response();
        if self.status == 401 {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"sagaway\""));
        }
        if let Some(secs) = self.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [(header::CACHE_CONTROL, "no-store"), (header::PRAGMA, "no-cache")]
}

/// Exchange a username and password, or a refresh token, for tokens: the OAuth 2.0 token endpoint
/// (RFC 6749), form-encoded. Answers and errors are OAuth2's (`{error, error_description}`), not
/// problem+json.
#[utoipa::path(post, path = "/auth/token", tag = "auth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = api::TokenResponse, description = "tokens (`Cache-Control: no-store`)"),
              (status = 400, body = OAuthError, description = "`invalid_request`, `unsupported_grant_type`, `invalid_grant` (wrong credentials or refresh token), `invalid_scope`, `invalid_target` (an audience not granted)"),
              (status = 401, body = OAuthError, description = "`invalid_client`: client authentication was attempted; clients here are public"),
              (status = 429, body = OAuthError, description = "`slow_down`: too many failed logins for this username from this address; see `Retry-After`")))]
pub async fn token(State(app): State<AppState>, client: Client, headers: HeaderMap, body: Bytes) -> Response {
    match grant(&app, client, &headers, &body).await {
        // The same answer as the JSON login's: it is RFC 6749's already.
        Ok(issued) => api::token_response(issued).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn grant(app: &AppState, client: Client, headers: &HeaderMap, body: &[u8]) -> Result<Issued, OAuthError> {
    if !is_form(headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())) {
        return Err(OAuthError::invalid_request("the body must be application/x-www-form-urlencoded"));
    }
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(OAuthError::new(401, "invalid_client", "clients here are public: send client_id in the body, without credentials"));
    }
    match parse(body)? {
        Grant::Password { username, password, audiences } => {
            api::password_grant(app, client, &username, &Password::new(&password), &audiences).await.map_err(oauth_error)
        }
        Grant::Refresh { refresh_token, audiences } => api::refresh_grant(app, &refresh_token, &audiences).await.map_err(oauth_error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(body: &str) -> (u16, &'static str) {
        let e = parse(body.as_bytes()).unwrap_err();
        (e.status, e.error)
    }

    #[test]
    fn a_password_grant_names_its_user_and_audiences() {
        let g = parse(b"grant_type=password&username=alice&password=correct+horse%21&resource=sagaway-product&audience=sagaway-gateway&client_id=web").unwrap();
        assert_eq!(
            g,
            Grant::Password { username: "alice".into(), password: "correct horse!".into(), audiences: vec!["sagaway-product".into(), "sagaway-gateway".into()] }
        );
        assert!(!format!("{g:?}").contains("correct horse"), "the password is not in Debug");
        let r = parse(b"grant_type=refresh_token&refresh_token=abc&scope=").unwrap();
        assert_eq!(r, Grant::Refresh { refresh_token: "abc".into(), audiences: vec![] });
    }

    #[test]
    fn malformed_requests_get_the_rfc_6749_error_codes() {
        assert_eq!(error_of(""), (400, "invalid_request"));
        assert_eq!(error_of("grant_type=password&username=alice"), (400, "invalid_request"));
        assert_eq!(error_of("grant_type=password&username=&password=x"), (400, "invalid_request"));
        assert_eq!(error_of("grant_type=password&username=a&username=b&password=x"), (400, "invalid_request"), "a parameter twice");
        assert_eq!(error_of("grant_type=refresh_token"), (400, "invalid_request"));
        assert_eq!(error_of("grant_type=client_credentials"), (400, "unsupported_grant_type"));
        assert_eq!(error_of("grant_type=authorization_code&code=x"), (400, "unsupported_grant_type"));
        assert_eq!(error_of("grant_type=password&username=a&password=b&scope=openid"), (400, "invalid_scope"));
        assert_eq!(error_of("grant_type=password&username=a&password=b&resource="), (400, "invalid_request"));
    }

    #[test]
    fn only_form_bodies_are_token_requests() {
        assert!(is_form(Some("application/x-www-form-urlencoded")));
        assert!(is_form(Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8")));
        assert!(!is_form(Some("application/json")));
        assert!(!is_form(None));
    }

    #[test]
    fn grant_failures_map_to_oauth_errors() {
        let cases = [
            (ApiError::InvalidCredentials, 400, "invalid_grant"),
            (ApiError::InvalidRefreshToken, 400, "invalid_grant"),
            (ApiError::RefreshTokenReused, 400, "invalid_grant"),
            (ApiError::UnknownAudience("x".into()), 400, "invalid_target"),
            (ApiError::TooManyAttempts { retry_after: std::time::Duration::from_secs(7) }, 429, "slow_down"),
        ];
        for (e, status, code) in cases {
            let o = oauth_error(e);
            assert_eq!((o.status, o.error), (status, code));
            let json = serde_json::to_value(&o).unwrap();
            assert_eq!(json.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["error", "error_description"], "{json}");
        }
    }
}
