//! Every service is an OAuth2 resource server: a request carries `Authorization: Bearer <JWT>`,
//! and the token is checked against the issuer's published keys (JWKS) before a handler runs.
//!
//! - [`AuthConfig`]: issuer, audience, JWKS URL, pinned algorithms and where the roles are in the
//!   claims. All configuration, so a real IdP (Keycloak: `AUTH_ROLES_CLAIM=realm_access.roles`)
//!   replaces Sagaway's identity service without code changes (docs/identity.md).
//! - Each service requires its own audience ([`service_audience`]: `sagaway-orchestrator`,
//!   `sagaway-bank-001`, …; `AUTH_AUDIENCE` overrides it), so a token minted for one service (or
//!   relayed by one) does not open another unless its `aud` names that one too.
//! - [`Verifier`]: decodes and checks a token; keys are cached and refetched when a token names an
//!   unknown `kid` (that is how a rotated-in key is picked up), at most once per
//!   [`AuthConfig::refetch_interval`] so forged `kid`s cannot make us hammer the issuer.
//! - [`protect`] / [`admin_only`]: router layers. A protected route without a valid token answers
//!   401 with `WWW-Authenticate: Bearer error="invalid_token"`; an admin route without the admin
//!   role answers 403. Handlers read who is calling with the [`Caller`] extractor.
//!
//! The rules (which claims are required, how roles are read, what is a user id) are plain functions
//! tested without a server; the HTTP fetch of the JWKS is the only I/O.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{FromRequestParts, Request, State},
    http::{HeaderValue, StatusCode, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use serde_json::Value;
use tokio::sync::RwLock;

use sagaway_messaging::env::{env_or, env_string};

use crate::http::Problem;

/// The role that may use `/admin/*`, catalogue writes and the dead-letter tools.
pub const ADMIN: &str = "admin";

/// Where tokens come from and what they must say.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Required `iss`.
    pub issuer: String,
    /// Required `aud` (one of the token's audiences).
    pub audience: String,
    /// The issuer's JWKS document.
    pub jwks_url: String,
    /// Algorithms accepted; a token whose header names another (or `none`) is refused.
    pub algorithms: Vec<Algorithm>,
    /// Dotted path of the roles array in the claims: `roles` (identity), `realm_access.roles` (Keycloak).
    pub roles_claim: String,
    /// Clock skew allowed on `exp`/`nbf`.
    pub leeway: Duration,
    /// At most one JWKS fetch per this interval when a token names an unknown key.
    pub refetch_interval: Duration,
    /// Keys are fetched again once the cache is this old, so a key the issuer retired stops
    /// opening anything within this time (if the issuer cannot be reached, the cached keys stay).
    pub max_age: Duration,
}

/// The audience a service requires unless `AUTH_AUDIENCE` says otherwise: `sagaway-<service>` for
/// the service whose variables carry `prefix` (`PRODUCT` → `sagaway-product`), and for a bank
/// `sagaway-bank-<code>` (`bank_code`, its `BANK_CODE`).
pub fn service_audience(prefix: &str, bank_code: Option<&str>) -> String {
    match (prefix.to_ascii_lowercase().as_str(), bank_code) {
        ("bank", Some(code)) => format!("sagaway-bank-{code}"),
        (service, _) => format!("sagaway-{service}"),
    }
}

/// The services of the local stack besides the banks, by their variables' prefix.
pub const STACK_SERVICES: &[&str] = &["GATEWAY", "PRODUCT", "ORCHESTRATOR", "PAYMENT"];
/// The banks of the local stack (`scripts/stack`, compose, Kubernetes).
pub const STACK_BANKS: &[&str] = &["001", "002", "003"];

/// The default audience of every service of a stack whose banks are `bank_codes`: what a token
/// needs in its `aud` to open all of them (the identity service's default grant).
pub fn stack_audiences<S: AsRef<str>>(bank_codes: &[S]) -> Vec<String> {
    STACK_SERVICES
        .iter()
        .map(|s| service_audience(s, None))
        .chain(bank_codes.iter().map(|c| service_audience("BANK", Some(c.as_ref()))))
        .collect()
}

impl AuthConfig {
    /// The token checks of the service whose variables carry `prefix` (`PRODUCT`, `BANK`,
    /// `GATEWAY`, …): [`AuthConfig::from_env`] with that service's own audience as the default
    /// (a bank's from its `BANK_CODE`, default `001`).
    pub fn for_service(prefix: &str) -> anyhow::Result<Self> {
        let bank_code = prefix.eq_ignore_ascii_case("bank").then(|| env_string("BANK_CODE", "001"));
        Self::from_env(&service_audience(prefix, bank_code.as_deref()))
    }

    /// `AUTH_ISSUER`, `AUTH_AUDIENCE` (default `default_audience`), `AUTH_JWKS_URL`,
    /// `AUTH_ALGORITHMS` (comma-separated, default `EdDSA`), `AUTH_ROLES_CLAIM` (default `roles`),
    /// `AUTH_LEEWAY_SECS` (default 30). The defaults are the local identity service on :3336.
    pub fn from_env(default_audience: &str) -> anyhow::Result<Self> {
        let issuer = env_string("AUTH_ISSUER", "http://127.0.0.1:3336");
        let jwks_default = format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'));
        let algorithms = env_string("AUTH_ALGORITHMS", "EdDSA")
            .split(',')
            .map(|a| a.trim().parse::<Algorithm>().map_err(|_| anyhow::anyhow!("AUTH_ALGORITHMS: unknown algorithm {a:?}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            jwks_url: env_string("AUTH_JWKS_URL", &jwks_default),
            issuer,
            audience: env_string("AUTH_AUDIENCE", default_audience),
            algorithms,
            roles_claim: env_string("AUTH_ROLES_CLAIM", "roles"),
            leeway: Duration::from_secs(env_or("AUTH_LEEWAY_SECS", 30)?),
            refetch_interval: Duration::from_secs(env_or("AUTH_JWKS_REFETCH_SECS", 10)?),
            max_age: Duration::from_secs(env_or("AUTH_JWKS_MAX_AGE_SECS", 300)?),
        })
    }

    /// Tokens of a local identity service at `identity_url` (tests).
    pub fn local(identity_url: &str, issuer: &str, audience: &str) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: format!("{}/.well-known/jwks.json", identity_url.trim_end_matches('/')),
            algorithms: vec![Algorithm::EdDSA],
            roles_claim: "roles".into(),
            leeway: Duration::from_secs(5),
            refetch_interval: Duration::from_secs(1),
            max_age: Duration::from_secs(300),
        }
    }
}

/// Who is calling: the token's `sub` and roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The user id (`sub`), checked once here and compared byte-exact everywhere.
    pub user_id: UserId,
    pub roles: Vec<String>,
    /// The raw bearer token, relayed when this service calls another on the caller's behalf.
    token: Arc<str>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == ADMIN)
    }

    /// Whether this caller may see a record owned by `owner` (its owner, or an admin).
    pub fn may_see(&self, owner: &str) -> bool {
        self.user_id == owner || self.is_admin()
    }

    /// `Bearer <token>`: the header value to call another service as this caller.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token)
    }
}

/// Why a token was refused. The text goes into the 401's `detail` (it says what is wrong with the
/// token, never anything about our keys).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send `Authorization: Bearer <access token>`")]
    Missing,
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The issuer's keys could not be fetched and none are cached: not the caller's fault.
    #[error("token keys are unavailable")]
    Unavailable,
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        if self == AuthError::Unavailable {
            return Problem::new(StatusCode::SERVICE_UNAVAILABLE, "auth_unavailable", "the token issuer's keys cannot be fetched; retry shortly")
                .into_response();
        }
        let mut res = Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", self.to_string()).into_response();
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sagaway\", error=\"invalid_token\""),
        );
        res
    }
}

/// The user a request acts for: the caller. A body may name the user too (the contract's
/// `user_id`, optional now); naming anyone else is 403 `user_mismatch`, never a silent override.
pub fn acting_user(caller: &Caller, named: Option<&str>) -> Result<UserId, Box<Problem>> {
    match named {
        Some(named) if named != caller.user_id => Err(Box::new(
            forbidden("user_mismatch", "user_id names another user than the bearer token's subject; omit it or send your own")
                .with("field", "user_id"),
        )),
        _ => Ok(caller.user_id.clone()),
    }
}

/// 403: authenticated, but not allowed.
pub fn forbidden(code: &str, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::FORBIDDEN, code, detail)
}

/// Checks bearer tokens against the issuer's keys.
pub struct Verifier {
    config: AuthConfig,
    http: reqwest::Client,
    keys: RwLock<KeyCache>,
}

#[derive(Default)]
struct KeyCache {
    by_kid: HashMap<String, (DecodingKey, Algorithm)>,
    fetched_at: Option<Instant>,
}

impl Verifier {
    pub fn new(config: AuthConfig) -> Arc<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("a plain HTTP client builds");
        Arc::new(Self { config, http, keys: RwLock::new(KeyCache::default()) })
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// The caller a token proves, or why it proves nothing.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Invalid(format!("malformed ({e})")))?;
        if !self.config.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| AuthError::Invalid("the header names no key (kid)".into()))?;
        let (key, key_alg) = self.key(&kid).await?;
        if key_alg != header.alg {
            return Err(AuthError::Invalid("the algorithm does not match the key".into()));
        }
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation(&self.config, header.alg))
            .map_err(|e| AuthError::Invalid(describe(&e)))?;
        caller_from_claims(&data.claims, &self.config.roles_claim, token)
    }

    /// The key `kid`, refetching the JWKS when it is unknown (a key rotated in since the last
    /// fetch; at most once per `refetch_interval`) or when the cache is older than `max_age` (a key
    /// rotated out).
    async fn key(&self, kid: &str) -> Result<(DecodingKey, Algorithm), AuthError> {
        let fresh = |c: &KeyCache| c.fetched_at.is_some_and(|at| at.elapsed() < self.config.max_age);
        {
            let cache = self.keys.read().await;
            if let Some(k) = cache.by_kid.get(kid).filter(|_| fresh(&cache)) {
                return Ok(k.clone());
            }
        }
        let mut cache = self.keys.write().await;
        let stale = !fresh(&cache);
        if !stale && let Some(k) = cache.by_kid.get(kid) {
            return Ok(k.clone());
        }
        let recently = cache.fetched_at.is_some_and(|at| at.elapsed() < self.config.refetch_interval);
        if stale || !recently {
            match self.fetch().await {
                Ok(keys) => {
                    cache.by_kid = keys;
                    cache.fetched_at = Some(Instant::now());
                }
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), url = %self.config.jwks_url, "fetching the JWKS failed");
                    cache.fetched_at = Some(Instant::now());
                    if cache.by_kid.is_empty() {
                        return Err(AuthError::Unavailable);
                    }
                }
            }
        }
        cache.by_kid.get(kid).cloned().ok_or_else(|| AuthError::Invalid("unknown signing key (kid)".into()))
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, (DecodingKey, Algorithm)>> {
        let set: JwkSet = self.http.get(&self.config.jwks_url).send().await?.error_for_status()?.json().await?;
        Ok(usable_keys(&set, &self.config.algorithms))
    }
}

/// The keys of a JWKS this service can use: those with a `kid`, a supported key type, and an
/// algorithm (stated, or implied by the key type) among the pinned ones.
pub fn usable_keys(set: &JwkSet, algorithms: &[Algorithm]) -> HashMap<String, (DecodingKey, Algorithm)> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, KeyAlgorithm};
    let mut out = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else { continue };
        let implied = match &jwk.algorithm {
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Some(Algorithm::EdDSA),
            AlgorithmParameters::RSA(_) => Some(Algorithm::RS256),
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Some(Algorithm::ES256),
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => Some(Algorithm::ES384),
            _ => None,
        };
        let stated = jwk.common.key_algorithm.and_then(|a| match a {
            KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
            KeyAlgorithm::RS256 => Some(Algorithm::RS256),
            KeyAlgorithm::RS384 => Some(Algorithm::RS384),
            KeyAlgorithm::RS512 => Some(Algorithm::RS512),
            KeyAlgorithm::PS256 => Some(Algorithm::PS256),
            KeyAlgorithm::ES256 => Some(Algorithm::ES256),
            KeyAlgorithm::ES384 => Some(Algorithm::ES384),
            _ => None,
        });
        let Some(alg) = stated.or(implied) else { continue };
        if !algorithms.contains(&alg) {
            continue;
        }
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            out.insert(kid, (key, alg));
        }
    }
    out
}

/// What a token must carry: the pinned algorithm, our issuer and audience, and `exp`/`sub`.
fn validation(cfg: &AuthConfig, alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[&cfg.issuer]);
    v.set_audience(&[&cfg.audience]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    v.leeway = cfg.leeway.as_secs();
    v.validate_nbf = true;
    v
}

fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "the token has expired".into(),
        K::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        K::InvalidSignature => "the signature does not verify".into(),
        K::InvalidIssuer => "wrong issuer (iss)".into(),
        K::InvalidAudience => "wrong audience (aud)".into(),
        K::MissingRequiredClaim(c) => format!("the claim {c:?} is required"),
        K::InvalidAlgorithm => "the algorithm does not match the key".into(),
        _ => "the token cannot be decoded".into(),
    }
}

pub use sagaway_contract::ids::{MAX_USER_ID, UserId, valid_user_id};

/// The caller described by verified claims: `sub`, and the string array at `roles_claim`.
pub fn caller_from_claims(claims: &Value, roles_claim: &str, token: &str) -> Result<Caller, AuthError> {
    let sub = claims.get("sub").and_then(Value::as_str).unwrap_or_default();
    let user_id: UserId = sub.parse().map_err(|_| AuthError::Invalid("the subject (sub) is not a valid user id".into()))?;
    let roles = roles_claim
        .split('.')
        .try_fold(claims, |v, part| v.get(part))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default();
    Ok(Caller { user_id, roles, token: Arc::from(token) })
}

/// The token of an `Authorization: Bearer …` header (scheme case-insensitive, RFC 6750).
pub fn bearer_token(value: Option<&HeaderValue>) -> Result<&str, AuthError> {
    let text = value.ok_or(AuthError::Missing)?.to_str().map_err(|_| AuthError::Invalid("the Authorization header is not text".into()))?;
    let (scheme, token) = text.split_once(' ').ok_or_else(|| AuthError::Invalid("expected `Bearer <token>`".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Invalid("expected `Bearer <token>`".into()));
    }
    Ok(token.trim())
}

/// Requires a valid bearer token on every route of `router`; the [`Caller`] is then available to handlers.
pub fn protect<S: Clone + Send + Sync + 'static>(router: Router<S>, verifier: Arc<Verifier>) -> Router<S> {
    router.layer(axum::middleware::from_fn_with_state(verifier, authenticate))
}

/// Requires a valid token with the admin role on every route of `router` (403 otherwise).
pub fn admin_only<S: Clone + Send + Sync + 'static>(router: Router<S>, verifier: Arc<Verifier>) -> Router<S> {
    let router = router.layer(axum::middleware::from_fn(require_admin));
    protect(router, verifier)
}

async fn authenticate(State(verifier): State<Arc<Verifier>>, mut req: Request, next: Next) -> Response {
    let token = match bearer_token(req.headers().get(header::AUTHORIZATION)) {
        Ok(t) => t.to_string(),
        Err(e) => return e.into_response(),
    };
    match verifier.verify(&token).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

async fn require_admin(req: Request, next: Next) -> Response {
    match req.extensions().get::<Caller>() {
        Some(c) if c.is_admin() => next.run(req).await,
        Some(_) => forbidden("forbidden", "this route needs the admin role").into_response(),
        None => AuthError::Missing.into_response(),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Set by `protect`; absent only if a handler taking a Caller was mounted outside it.
        parts.extensions.get::<Caller>().cloned().ok_or(AuthError::Missing)
    }
}

/// Routes of the services that need no token (the identity service's own are public by nature).
pub const PUBLIC_ROUTES: &[(&str, &str)] = &[("get", "/findAll"), ("get", "/products/{id}"), ("get", "/openapi.json")];

/// Documents the bearer scheme in a service's OpenAPI document: the `bearer` security scheme
/// (JWT), required by every operation except [`PUBLIC_ROUTES`], each of which may then answer 401.
/// Use as `#[openapi(modifiers(&sagaway_common::auth::BearerAuth))]`.
pub struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{
            ResponseBuilder,
            security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme},
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token from the identity service (POST /auth/login) or the configured IdP. \
                         Routes for operators (/admin/*, catalogue writes, the ledger summary) also need the admin role (403 otherwise).",
                    ))
                    .build(),
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                ("get", &mut item.get),
                ("post", &mut item.post),
                ("put", &mut item.put),
                ("patch", &mut item.patch),
                ("delete", &mut item.delete),
            ];
            for (method, op) in ops {
                let Some(op) = op.as_mut() else { continue };
                if PUBLIC_ROUTES.contains(&(method, path.as_str())) {
                    op.security = None;
                    continue;
                }
                op.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
                op.responses
                    .responses
                    .entry("401".into())
                    .or_insert_with(|| ResponseBuilder::new().description("no or invalid bearer token (problem+json)").build().into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn roles_are_read_from_a_configurable_path() {
        let identity = json!({"sub": "alice", "roles": ["customer", "admin"]});
        assert!(caller_from_claims(&identity, "roles", "t").unwrap().is_admin());
        let keycloak = json!({"sub": "6f1c7a3e-0000-4000-8000-000000000001", "realm_access": {"roles": ["admin"]}});
        let c = caller_from_claims(&keycloak, "realm_access.roles", "t").unwrap();
        assert_eq!((c.user_id.as_str(), c.is_admin()), ("6f1c7a3e-0000-4000-8000-000000000001", true));
        // The same token read with the wrong path has no roles: never an admin by accident.
        assert!(!caller_from_claims(&keycloak, "roles", "t").unwrap().is_admin());
        assert!(caller_from_claims(&json!({"sub": "bob", "roles": "admin"}), "roles", "t").unwrap().roles.is_empty());
    }

    #[test]
    fn the_subject_must_be_a_user_id() {
        for bad in [json!({}), json!({"sub": ""}), json!({"sub": 7}), json!({"sub": "a b"}), json!({"sub": "x".repeat(65)})] {
            assert!(matches!(caller_from_claims(&bad, "roles", "t"), Err(AuthError::Invalid(_))), "{bad}");
        }
        assert!(valid_user_id("Alice") && valid_user_id("user-17@example.org") && valid_user_id(&"x".repeat(64)));
    }

    #[test]
    fn owners_and_admins_may_see_a_record() {
        let alice = caller_from_claims(&json!({"sub": "alice", "roles": ["customer"]}), "roles", "t").unwrap();
        assert!(alice.may_see("alice"));
        assert!(!alice.may_see("Alice"), "ids compare byte-exact");
        let admin = caller_from_claims(&json!({"sub": "ops", "roles": ["admin"]}), "roles", "t").unwrap();
        assert!(admin.may_see("alice"));
    }

    #[test]
    fn a_body_may_name_only_the_caller() {
        let alice = caller_from_claims(&json!({"sub": "alice", "roles": ["customer"]}), "roles", "t").unwrap();
        assert_eq!(acting_user(&alice, None).unwrap(), "alice");
        assert_eq!(acting_user(&alice, Some("alice")).unwrap(), "alice");
        let p = acting_user(&alice, Some("Alice")).unwrap_err();
        assert_eq!((p.status, p.code.as_str()), (403, "user_mismatch"));
    }

    /// Decodes `claims` signed with a throwaway HMAC key under the checks `cfg` makes (the
    /// algorithm is not what is tested here: the issuer, audience and required claims are).
    fn check(cfg: &AuthConfig, claims: &Value) -> Result<Value, jsonwebtoken::errors::ErrorKind> {
        let secret = b"unit-test-secret-unit-test-secret";
        let token = jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::HS256), claims, &jsonwebtoken::EncodingKey::from_secret(secret)).unwrap();
        jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(secret), &validation(cfg, Algorithm::HS256))
            .map(|d| d.claims)
            .map_err(|e| e.into_kind())
    }

    fn config_of(audience: &str) -> AuthConfig {
        AuthConfig::local("http://id.test", "http://id.test", audience)
    }

    fn claims_for(aud: Value) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": "http://id.test", "aud": aud, "sub": "alice", "iat": now, "exp": now + 600, "roles": ["customer"]})
    }

    #[test]
    fn every_service_of_the_stack_has_its_own_audience() {
        let all = stack_audiences(STACK_BANKS);
        assert_eq!(all.len(), STACK_SERVICES.len() + STACK_BANKS.len());
        let distinct: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), all.len(), "{all:?}");
        assert_eq!(service_audience("ORCHESTRATOR", None), "sagaway-orchestrator");
        assert_eq!(service_audience("BANK", Some("002")), "sagaway-bank-002");
        assert_eq!(service_audience("GATEWAY", None), "sagaway-gateway");
        assert!(all.contains(&"sagaway-bank-001".to_string()) && all.contains(&"sagaway-payment".to_string()));
    }

    #[test]
    fn a_token_for_one_service_is_refused_by_every_other() {
        let all = stack_audiences(STACK_BANKS);
        for a in &all {
            for b in &all {
                let outcome = check(&config_of(b), &claims_for(json!(a)));
                if a == b {
                    assert!(outcome.is_ok(), "{a} at {b}: {outcome:?}");
                } else {
                    assert_eq!(outcome.unwrap_err(), jsonwebtoken::errors::ErrorKind::InvalidAudience, "a token for {a} opened {b}");
                }
            }
        }
    }

    #[test]
    fn a_token_listing_several_audiences_opens_exactly_those() {
        let all = stack_audiences(STACK_BANKS);
        for granted in all.iter().enumerate().flat_map(|(i, a)| all.iter().skip(i + 1).map(move |b| [a.clone(), b.clone()])) {
            let claims = claims_for(json!(granted));
            for service in &all {
                assert_eq!(check(&config_of(service), &claims).is_ok(), granted.contains(service), "{granted:?} at {service}");
            }
        }
        // No audience at all is refused too: `aud` is required.
        let mut none = claims_for(json!("x"));
        none.as_object_mut().unwrap().remove("aud");
        assert!(check(&config_of("sagaway-product"), &none).is_err());
        assert_eq!(describe(&jsonwebtoken::errors::ErrorKind::InvalidAudience.into()), "wrong audience (aud)");
    }

    #[test]
    fn only_bearer_headers_carry_a_token() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(bearer_token(Some(&h("Bearer abc"))), Ok("abc"));
        assert_eq!(bearer_token(Some(&h("bearer abc"))), Ok("abc"));
        assert_eq!(bearer_token(None), Err(AuthError::Missing));
        assert!(bearer_token(Some(&h("Basic YWxpY2U6cHc="))).is_err());
        assert!(bearer_token(Some(&h("Bearer "))).is_err());
        assert!(bearer_token(Some(&h("Bearer"))).is_err());
    }
}
