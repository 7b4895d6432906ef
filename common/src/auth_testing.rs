//! A token issuer for tests of one service (feature `testing`): a fresh Ed25519 key, its JWKS served
//! over real HTTP on port 0, and tokens signed with it. Services under test verify these tokens the
//! way they verify the identity service's (fetching the JWKS). Tests of the whole system use the
//! identity service itself (crate `e2e`).

use std::sync::Arc;

use axum::{Json, Router, routing::get};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64URL};
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::auth::AuthConfig;

/// One signing key with its `kid`.
pub struct TestKey {
    pub kid: String,
    encoding: EncodingKey,
    public: [u8; 32],
}

impl TestKey {
    pub fn generate() -> Self {
        let secret: [u8; 32] = rand::random();
        let key = SigningKey::from_bytes(&secret);
        let der = key.to_pkcs8_der().expect("an Ed25519 key encodes");
        let public = key.verifying_key().to_bytes();
        Self { kid: format!("test-{}", hex::encode(&public[..4])), encoding: EncodingKey::from_ed_der(der.as_bytes()), public }
    }

    /// The public half as a JWK.
    pub fn jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "x": B64URL.encode(self.public), "kid": self.kid, "alg": "EdDSA", "use": "sig"})
    }

    /// Signs `claims` as they are (tests build expired, foreign-audience, … tokens with this).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signing does not fail")
    }
}

/// A JWKS endpoint on 127.0.0.1 and the key behind it.
pub struct TestIssuer {
    pub url: String,
    pub issuer: String,
    pub audience: String,
    pub key: Arc<TestKey>,
    stop: CancellationToken,
}

impl TestIssuer {
    pub async fn start() -> Self {
        let key = Arc::new(TestKey::generate());
        let jwks = json!({"keys": [key.jwk()]});
        let app = Router::new().route("/.well-known/jwks.json", get(move || std::future::ready(Json(jwks.clone()))));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds port 0");
        let url = format!("http://127.0.0.1:{}", listener.local_addr().expect("bound").port());
        let stop = CancellationToken::new();
        let s = stop.clone();
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(async move { s.cancelled().await }).await });
        Self { issuer: url.clone(), url, audience: "sagaway".into(), key, stop }
    }

    /// What a service under test should verify against.
    pub fn auth_config(&self) -> AuthConfig {
        AuthConfig::local(&self.url, &self.issuer, &self.audience)
    }

    /// The audiences of its tokens: [`TestIssuer::audience`] (what [`TestIssuer::auth_config`]
    /// requires) and the default audience of every service of the local stack, so a service under
    /// test accepts them whether it checks the test audience or its own default.
    pub fn audiences(&self) -> Vec<String> {
        std::iter::once(self.audience.clone()).chain(crate::auth::stack_audiences(crate::auth::STACK_BANKS)).collect()
    }

    /// The claims of a valid 15-minute token for `sub` with `roles`.
    pub fn claims(&self, sub: &str, roles: &[&str]) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({"iss": self.issuer, "aud": self.audiences(), "sub": sub, "iat": now, "exp": now + 900, "roles": roles})
    }

    /// A valid customer token for `sub`.
    pub fn token(&self, sub: &str) -> String {
        self.key.sign(&self.claims(sub, &["customer"]))
    }

    /// A valid admin token for `sub`.
    pub fn admin_token(&self, sub: &str) -> String {
        self.key.sign(&self.claims(sub, &["customer", "admin"]))
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
