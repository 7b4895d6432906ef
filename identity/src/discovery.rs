//! `GET /.well-known/jwks.json` (every live public key) and `GET /.well-known/openid-configuration`.

use axum::{Json, extract::State, http::header, response::IntoResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{AppState, keys::Jwks};

/// How long verifiers may cache the JWKS. A new key is published (listed second) at least this
/// long before it starts signing: see the rotation procedure in identity/README.md.
pub const JWKS_MAX_AGE_SECS: u64 = 300;

/// The public keys that verify access tokens: the signing key and every older key still listed.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "discovery",
    responses((status = 200, body = Jwks, description = "JWK set (RFC 7517); Ed25519 keys as `kty: OKP` (RFC 8037)")))]
pub async fn jwks(State(app): State<AppState>) -> impl IntoResponse {
    let cache = format!("public, max-age={JWKS_MAX_AGE_SECS}");
    ([(header::CACHE_CONTROL, cache)], Json(app.issuer.jwks()))
}

/// Provider metadata (OpenID Connect Discovery / RFC 8414), listing only what this issuer serves:
/// a token endpoint (RFC 6749, form-encoded) for the `password` and `refresh_token` grants with
/// public clients, and the JWKS. It has no authorization endpoint, so no response types, and
/// issues access tokens only (signed EdDSA, like the ID tokens it does not issue would be).
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenIdConfiguration {
    pub issuer: String,
    pub jwks_uri: String,
    /// `POST`, `application/x-www-form-urlencoded` (RFC 6749 §3.2).
    pub token_endpoint: String,
    pub grant_types_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// Empty: there is no authorization endpoint.
    pub response_types_supported: Vec<&'static str>,
    pub subject_types_supported: Vec<&'static str>,
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    pub claims_supported: Vec<&'static str>,
}

#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "discovery",
    responses((status = 200, body = OpenIdConfiguration)))]
pub async fn openid_configuration(State(app): State<AppState>) -> Json<OpenIdConfiguration> {
    let issuer = app.issuer.issuer().to_string();
    Json(OpenIdConfiguration {
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        token_endpoint: format!("{issuer}/auth/token"),
        issuer,
        grant_types_supported: crate::oauth::GRANT_TYPES.to_vec(),
        token_endpoint_auth_methods_supported: vec!["none"],
        response_types_supported: vec![],
        subject_types_supported: vec!["public"],
        id_token_signing_alg_values_supported: vec!["EdDSA"],
        claims_supported: vec!["iss", "aud", "sub", "exp", "iat", "jti", "roles"],
    })
}
