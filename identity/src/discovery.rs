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

/// OpenID Provider metadata (the subset that applies: this issuer has no authorization endpoint;
/// its token endpoint takes a JSON body, not a form).
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenIdConfiguration {
    pub issuer: String,
    pub jwks_uri: String,
    pub token_endpoint: String,
    pub id_token_signing_alg_values_supported: Vec<&'static str>,
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    pub grant_types_supported: Vec<&'static str>,
    pub response_types_supported: Vec<&'static str>,
    pub subject_types_supported: Vec<&'static str>,
    pub claims_supported: Vec<&'static str>,
}

#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "discovery",
    responses((status = 200, body = OpenIdConfiguration)))]
pub async fn openid_configuration(State(app): State<AppState>) -> Json<OpenIdConfiguration> {
    let issuer = app.issuer.issuer().to_string();
    Json(OpenIdConfiguration {
        jwks_uri: format!("{issuer}/.well-known/jwks.json"),
        token_endpoint: format!("{issuer}/auth/login"),
        issuer,
        id_token_signing_alg_values_supported: vec!["EdDSA"],
        token_endpoint_auth_methods_supported: vec!["none"],
        grant_types_supported: vec!["password", "refresh_token"],
        response_types_supported: vec!["token"],
        subject_types_supported: vec!["public"],
        claims_supported: vec!["iss", "aud", "sub", "exp", "iat", "jti", "roles"],
    })
}
