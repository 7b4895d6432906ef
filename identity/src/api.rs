//! `POST /auth/signup`, `/auth/login`, `/auth/refresh`, `/auth/logout`: thin adapters from HTTP to
//! the rules (`users`, `throttle`, `refresh`) and the [`Issuer`](crate::tokens::Issuer). The two
//! grants ([`password_grant`], [`refresh_grant`]) are shared with the RFC 6749 token endpoint
//! ([`crate::oauth`]), which answers the same outcomes in OAuth2's terms.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use chrono::Utc;
use sagaway_common::http::ApiJson;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    AppState,
    client::{Client, ClientKey},
    error::{ApiError, ApiResult},
    passwords::Password,
    refresh::{self, Rotation},
    throttle,
    tokens::grant_audiences,
    users::{self, NewUser, Role, User},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// 1–64 letters, digits and `_ - . @ :`; case matters (`alice` and `Alice` are two users).
    #[schema(example = "alice", min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.@:-]+$")]
    pub username: String,
    /// 10–1024 characters, not the username.
    #[schema(value_type = String, min_length = 10, max_length = 1024, example = "correct horse battery staple")]
    pub password: Password,
    /// Shown to people; defaults to the username.
    /// 1–100 characters once trimmed, no control characters.
    #[schema(example = "Alice Liddell", min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$")]
    pub display_name: Option<String>,
}

/// A user as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub username: String,
    pub display_name: String,
    pub roles: Vec<Role>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self { username: u.username.clone(), display_name: u.display_name.clone(), roles: u.roles() }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "alice", min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.@:-]+$")]
    pub username: String,
    #[schema(value_type = String, example = "correct horse battery staple")]
    pub password: Password,
    /// The services the access token is for (their audiences, e.g. `sagaway-orchestrator`); each
    /// must be one the issuer grants (`IDENTITY_AUDIENCES`). Omitted: the default audiences.
    #[serde(default)]
    #[schema(example = json!(["sagaway-gateway", "sagaway-orchestrator"]))]
    pub audience: Vec<String>,
}

/// A refresh token (never logged: no `Debug`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
    /// Fewer audiences than the login was granted (never more). Omitted: the login's.
    #[serde(default)]
    pub audience: Vec<String>,
}

/// A refresh token to revoke (never logged: no `Debug`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    pub refresh_token: String,
}

/// What login and refresh answer (with `Cache-Control: no-store`).
#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    /// An EdDSA-signed JWT; send it as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
    /// Single use: `POST /auth/refresh` exchanges it for a new pair.
    pub refresh_token: String,
}

/// Create an account. Every new user has the role `customer`.
#[utoipa::path(post, path = "/auth/signup", request_body = SignupRequest, tag = "auth",
    responses((status = 201, body = UserView),
              (status = 409, description = "`username_taken`"),
              (status = 422, description = "`weak_password` (field `password`) or `validation_failed` naming the field; unknown fields are refused")))]
pub async fn signup(State(app): State<AppState>, ApiJson(req): ApiJson<SignupRequest>) -> ApiResult<impl IntoResponse> {
    users::check_username(&req.username)?;
    users::check_password(req.password.expose(), &req.username)?;
    let display_name = users::display_name(req.display_name.as_deref(), &req.username)?;
    let password_hash = app.passwords.hash(&req.password).await?;
    let user = NewUser { username: &req.username, display_name: &display_name, password_hash: &password_hash, is_admin: false };
    if !users::insert(&app.pool, &user).await? {
        return Err(ApiError::UsernameTaken);
    }
    tracing::info!(username = %req.username, "user signed up");
    let view = UserView { username: req.username, display_name, roles: users::roles(false) };
    Ok((StatusCode::CREATED, Json(view)))
}

/// Exchange a username and password for an access token and a refresh token.
#[utoipa::path(post, path = "/auth/login", request_body = LoginRequest, tag = "auth",
    responses((status = 200, body = TokenResponse),
              (status = 401, description = "`invalid_credentials` (unknown user or wrong password: one answer)"),
              (status = 422, description = "`invalid_target` (field `audience`): an audience this issuer does not grant"),
              (status = 429, description = "`too_many_attempts`: too many failed logins for this username from this address; see `Retry-After`")))]
pub async fn login(State(app): State<AppState>, client: Client, ApiJson(req): ApiJson<LoginRequest>) -> ApiResult<impl IntoResponse> {
    let issued = password_grant(&app, client, &req.username, &req.password, &req.audience).await?;
    Ok(token_response(issued))
}

/// Tokens a grant issued.
pub struct Issued {
    pub access_token: String,
    pub expires_in: u64,
    pub refresh_token: String,
}

/// The resource owner password grant: `username` and `password` from `client`, for the audiences
/// `requested` (none: the defaults). Throttled per (username, client address).
pub async fn password_grant(app: &AppState, client: Client, username: &str, password: &Password, requested: &[String]) -> ApiResult<Issued> {
    let now = Utc::now();
    let audiences = grant_audiences(requested, &app.audiences, app.issuer.default_audiences()).map_err(|e| ApiError::UnknownAudience(e.0))?;
    let plausible = users::check_username(username).is_ok() && password.expose().chars().count() <= users::PASSWORD_MAX_CHARS;
    if !plausible {
        // No such user can exist: answer as for an unknown user, at the same cost.
        app.passwords.verify(password, None).await?;
        return Err(ApiError::InvalidCredentials);
    }
    let key = ClientKey::of(client.0);
    if let Err(retry_after) = throttle::count_attempt(&app.pool, username, key, now, app.login_throttle).await? {
        tracing::info!(username, client = %key, retry_after_secs = retry_after.as_secs(), "login refused: too many failures from this address");
        return Err(ApiError::TooManyAttempts { retry_after });
    }
    let user = users::find(&app.pool, username).await?;
    let matched = app.passwords.verify(password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
    let Some(user) = user.filter(|_| matched) else {
        tracing::info!(username, client = %key, "login failed");
        return Err(ApiError::InvalidCredentials);
    };
    throttle::reset(&app.pool, &user.username, key).await?;
    let refresh_token = refresh::start_family(&app.pool, &user.username, &audiences, now, app.refresh_ttl).await?;
    tracing::info!(username = %user.username, "logged in");
    issue(app, &user, &audiences, refresh_token)
}

/// The refresh-token grant: rotates `token` and issues a new pair for the login's audiences, or
/// the fewer ones `requested`. An audience the login was not granted is refused before the token
/// is used, so the client keeps it.
pub async fn refresh_grant(app: &AppState, token: &str, requested: &[String]) -> ApiResult<Issued> {
    let granted = refresh::audiences_of(&app.pool, token).await?.unwrap_or_else(|| app.issuer.default_audiences().to_vec());
    let audiences = grant_audiences(requested, &granted, &granted).map_err(|e| ApiError::UnknownAudience(e.0))?;
    match refresh::rotate(&app.pool, token, Utc::now(), app.refresh_ttl).await? {
        Rotation::Rotated { username, token, .. } => {
            let user = users::find(&app.pool, &username).await?.ok_or(ApiError::InvalidRefreshToken)?;
            issue(app, &user, &audiences, token)
        }
        Rotation::Reused => Err(ApiError::RefreshTokenReused),
        Rotation::Invalid => Err(ApiError::InvalidRefreshToken),
    }
}

fn issue(app: &AppState, user: &User, audiences: &[String], refresh_token: String) -> ApiResult<Issued> {
    let access_token = app.issuer.access_token_for(&user.username, &user.role_names(), audiences)?;
    Ok(Issued { access_token, expires_in: app.issuer.access_ttl().as_secs(), refresh_token })
}

/// Exchange a refresh token for a new access token and a new refresh token. Each refresh token
/// works once; presenting one again revokes every token of its login.
#[utoipa::path(post, path = "/auth/refresh", request_body = RefreshRequest, tag = "auth",
    responses((status = 200, body = TokenResponse),
              (status = 401, description = "`invalid_refresh_token` (unknown, expired or revoked) or `refresh_token_reused` (the login is now revoked)"),
              (status = 422, description = "`invalid_target` (field `audience`): an audience the login was not granted")))]
pub async fn refresh(State(app): State<AppState>, ApiJson(req): ApiJson<RefreshRequest>) -> ApiResult<impl IntoResponse> {
    Ok(token_response(refresh_grant(&app, &req.refresh_token, &req.audience).await?))
}

/// Revoke the login a refresh token belongs to (every refresh token of it). Access tokens already
/// issued stay valid until they expire. Unknown tokens are accepted too.
#[utoipa::path(post, path = "/auth/logout", request_body = LogoutRequest, tag = "auth",
    responses((status = 204, description = "revoked (or nothing to revoke)")))]
pub async fn logout(State(app): State<AppState>, ApiJson(req): ApiJson<LogoutRequest>) -> ApiResult<StatusCode> {
    refresh::revoke(&app.pool, &req.refresh_token, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The tokens of a grant, as login, refresh and the OAuth token endpoint answer them (RFC 6749 §5.1).
pub(crate) fn token_response(issued: Issued) -> impl IntoResponse {
    let body = TokenResponse { access_token: issued.access_token, token_type: "Bearer", expires_in: issued.expires_in, refresh_token: issued.refresh_token };
    ([(header::CACHE_CONTROL, "no-store")], Json(body))
}
