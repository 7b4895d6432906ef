//! Access tokens: JWTs signed with EdDSA (Ed25519) by the first configured key, with its `kid` in
//! the header, verifiable by anyone holding the JWKS.
//!
//! Claims: `iss`, `aud`, `sub` (the username: the opaque user id everywhere in Sagaway), `exp`,
//! `iat`, `roles` (`customer`, `admin`) and a unique `jti`.

use std::{fmt, time::Duration};

use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};

use crate::keys::{Jwks, SigningKey};

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    /// The username.
    pub sub: String,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issued at, seconds since the Unix epoch.
    pub iat: i64,
    pub roles: Vec<String>,
    /// A unique id of this token.
    pub jti: String,
}

/// Signs access tokens with the first of its keys and publishes all of them.
pub struct Issuer {
    keys: Vec<SigningKey>,
    encoding: EncodingKey,
    issuer: String,
    audience: String,
    access_ttl: Duration,
}

impl Issuer {
    /// `keys[0]` signs; every key is published by [`Issuer::jwks`]. `issuer` is the `iss` claim
    /// (a trailing `/` is dropped), `audience` the `aud` claim.
    pub fn new(
        keys: Vec<SigningKey>,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        access_ttl: Duration,
    ) -> anyhow::Result<Self> {
        let signing = keys.first().context("an issuer needs at least one signing key")?;
        let encoding = EncodingKey::from_ed_der(&signing.to_pkcs8_der()?);
        let issuer = issuer.into().trim_end_matches('/').to_string();
        Ok(Self { keys, encoding, issuer, audience: audience.into(), access_ttl })
    }

    /// The same issuer (`iss`, `aud`, TTL) with other keys: tests mint tokens with a foreign key this way.
    pub fn with_keys(&self, keys: Vec<SigningKey>) -> anyhow::Result<Self> {
        Self::new(keys, self.issuer.clone(), self.audience.clone(), self.access_ttl)
    }

    /// The `iss` of every token, and the base of the discovery URLs.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn access_ttl(&self) -> Duration {
        self.access_ttl
    }

    /// The `kid` of the key that signs new tokens.
    pub fn signing_kid(&self) -> &str {
        self.keys[0].kid()
    }

    /// Every live key, the signing one first.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The public keys, for `/.well-known/jwks.json`.
    pub fn jwks(&self) -> Jwks {
        Jwks { keys: self.keys.iter().map(SigningKey::jwk).collect() }
    }

    /// The claims of a new access token for `sub` with `roles`, valid from now for the access TTL.
    pub fn claims(&self, sub: &str, roles: &[&str]) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: sub.to_string(),
            exp: now.saturating_add(i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX)),
            iat: now,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }

    /// Signs any claims with the signing key (header `alg: EdDSA`, `typ: JWT`, `kid`).
    pub fn sign(&self, claims: &Claims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.signing_kid().to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding).context("signing an access token")
    }

    /// A signed access token for `sub` with `roles`.
    pub fn access_token(&self, sub: &str, roles: &[&str]) -> anyhow::Result<String> {
        self.sign(&self.claims(sub, roles))
    }

    /// A signed access token whose claims `edit` may change first (an expired token, another
    /// audience or issuer, ...): for tests of the services that check tokens.
    pub fn access_token_with(&self, sub: &str, roles: &[&str], edit: impl FnOnce(&mut Claims)) -> anyhow::Result<String> {
        let mut claims = self.claims(sub, roles);
        edit(&mut claims);
        self.sign(&claims)
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .field("keys", &self.keys)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    fn issuer(keys: Vec<SigningKey>) -> Issuer {
        Issuer::new(keys, "http://id.example/", "sagaway", Duration::from_secs(900)).unwrap()
    }

    fn decode(token: &str, key: &SigningKey) -> jsonwebtoken::errors::Result<jsonwebtoken::TokenData<Claims>> {
        let jwk = key.jwk();
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_audience(&["sagaway"]);
        v.set_issuer(&["http://id.example"]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_ed_components(&jwk.x).unwrap(), &v)
    }

    #[test]
    fn signs_with_the_first_key_and_names_it_in_the_header() {
        let (new, old) = (SigningKey::generate(), SigningKey::generate());
        let issuer = issuer(vec![new.clone(), old.clone()]);
        let token = issuer.access_token("alice", &["customer"]).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::EdDSA);
        assert_eq!(header.kid.as_deref(), Some(new.kid()));
        let data = decode(&token, &new).unwrap();
        assert_eq!(data.claims.sub, "alice");
        assert_eq!(data.claims.iss, "http://id.example", "trailing slash dropped");
        assert_eq!(data.claims.roles, vec!["customer"]);
        assert_eq!(data.claims.exp - data.claims.iat, 900);
        assert!(decode(&token, &old).is_err(), "the second key only verifies");
        assert_eq!(issuer.jwks().keys.iter().map(|k| k.kid.clone()).collect::<Vec<_>>(), vec![new.kid(), old.kid()]);
    }

    #[test]
    fn every_token_has_its_own_jti() {
        let issuer = issuer(vec![SigningKey::generate()]);
        let a = issuer.claims("alice", &[]);
        let b = issuer.claims("alice", &[]);
        assert_ne!(a.jti, b.jti);
    }

    #[test]
    fn overrides_make_tokens_the_verifier_refuses() {
        let key = SigningKey::generate();
        let issuer = issuer(vec![key.clone()]);
        let expired = issuer.access_token_with("alice", &["customer"], |c| c.exp = c.iat - 3600).unwrap();
        assert!(decode(&expired, &key).is_err());
        let elsewhere = issuer.access_token_with("alice", &["customer"], |c| c.aud = "other".into()).unwrap();
        assert!(decode(&elsewhere, &key).is_err());
        let foreign = issuer.with_keys(vec![SigningKey::generate()]).unwrap().access_token("alice", &[]).unwrap();
        assert!(decode(&foreign, &key).is_err());
    }
}
