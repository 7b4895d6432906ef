//! Access tokens: JWTs signed with EdDSA (Ed25519) by the first configured key, with its `kid` in
//! the header, verifiable by anyone holding the JWKS.
//!
//! Claims: `iss`, `aud`, `sub` (the username: the opaque user id everywhere in Sagaway), `exp`,
//! `iat`, `roles` (`customer`, `admin`) and a unique `jti`. `aud` names the services the token is
//! for (each service requires its own audience): one as a string, several as an array (RFC 7519
//! §4.1.3). Which a token gets is [`grant_audiences`].

use std::{fmt, time::Duration};

use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::keys::{Jwks, SigningKey};

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The audiences; serialised as a string when there is one, an array otherwise.
    #[serde(serialize_with = "one_or_many", deserialize_with = "string_or_array")]
    pub aud: Vec<String>,
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
    audiences: Vec<String>,
    access_ttl: Duration,
}

impl Issuer {
    /// `keys[0]` signs; every key is published by [`Issuer::jwks`]. `issuer` is the `iss` claim
    /// (a trailing `/` is dropped), `audiences` the `aud` of a token whose client named none (at
    /// least one).
    pub fn new<A: Into<String>>(
        keys: Vec<SigningKey>,
        issuer: impl Into<String>,
        audiences: impl IntoIterator<Item = A>,
        access_ttl: Duration,
    ) -> anyhow::Result<Self> {
        let signing = keys.first().context("an issuer needs at least one signing key")?;
        let encoding = EncodingKey::from_ed_der(&signing.to_pkcs8_der()?);
        let issuer = issuer.into().trim_end_matches('/').to_string();
        let audiences: Vec<String> = audiences.into_iter().map(Into::into).collect();
        anyhow::ensure!(!audiences.is_empty(), "an issuer needs at least one default audience");
        Ok(Self { keys, encoding, issuer, audiences, access_ttl })
    }

    /// The same issuer (`iss`, `aud`, TTL) with other keys: tests mint tokens with a foreign key this way.
    pub fn with_keys(&self, keys: Vec<SigningKey>) -> anyhow::Result<Self> {
        Self::new(keys, self.issuer.clone(), self.audiences.clone(), self.access_ttl)
    }

    /// The `iss` of every token, and the base of the discovery URLs.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of a token whose client named no audience.
    pub fn default_audiences(&self) -> &[String] {
        &self.audiences
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

    /// The claims of a new access token for `sub` with `roles` and the default audiences, valid
    /// from now for the access TTL.
    pub fn claims(&self, sub: &str, roles: &[&str]) -> Claims {
        self.claims_for(sub, roles, &self.audiences)
    }

    /// The same for the audiences `aud` (already granted: see [`grant_audiences`]).
    pub fn claims_for(&self, sub: &str, roles: &[&str], aud: &[String]) -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            iss: self.issuer.clone(),
            aud: aud.to_vec(),
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

    /// A signed access token for `sub` with `roles`, for the default audiences.
    pub fn access_token(&self, sub: &str, roles: &[&str]) -> anyhow::Result<String> {
        self.sign(&self.claims(sub, roles))
    }

    /// A signed access token for `sub` with `roles`, for the audiences `aud`.
    pub fn access_token_for(&self, sub: &str, roles: &[&str], aud: &[String]) -> anyhow::Result<String> {
        self.sign(&self.claims_for(sub, roles, aud))
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
            .field("audiences", &self.audiences)
            .field("access_ttl", &self.access_ttl)
            .field("keys", &self.keys)
            .finish()
    }
}

/// A client named an audience this issuer does not issue, or one its refresh token was not granted
/// (RFC 8707 `invalid_target`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the audience {0:?} is not one this issuer grants here")]
pub struct UnknownAudience(pub String);

/// The audiences a token gets. `requested`: what the client asked for (RFC 8707 `resource` or the
/// `audience` parameter; empty: nothing). `allowed`: what this issuer may put in a token at all
/// (`IDENTITY_AUDIENCES`), or, on a refresh, what the login was granted (a refresh may narrow, never
/// widen). Nothing requested: `default` (within `allowed`). Duplicates are dropped; order is kept.
pub fn grant_audiences(requested: &[String], allowed: &[String], default: &[String]) -> Result<Vec<String>, UnknownAudience> {
    let wanted = if requested.is_empty() { default } else { requested };
    let mut granted: Vec<String> = Vec::with_capacity(wanted.len());
    for a in wanted {
        if !allowed.contains(a) {
            return Err(UnknownAudience(a.clone()));
        }
        if !granted.contains(a) {
            granted.push(a.clone());
        }
    }
    if granted.is_empty() {
        return Err(UnknownAudience(String::new()));
    }
    Ok(granted)
}

fn one_or_many<S: Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
    match aud {
        [one] => s.serialize_str(one),
        many => many.serialize(s),
    }
}

fn string_or_array<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(a) => vec![a],
        OneOrMany::Many(a) => a,
    })
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    fn issuer(keys: Vec<SigningKey>) -> Issuer {
        Issuer::new(keys, "http://id.example/", ["sagaway"], Duration::from_secs(900)).unwrap()
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

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_token_gets_the_audiences_asked_for_within_the_allowed_or_else_the_default() {
        let allowed = strings(&["sagaway-gateway", "sagaway-product", "sagaway-bank-001"]);
        let default = strings(&["sagaway-gateway", "sagaway-product"]);
        assert_eq!(grant_audiences(&[], &allowed, &default), Ok(default.clone()));
        assert_eq!(grant_audiences(&strings(&["sagaway-bank-001"]), &allowed, &default), Ok(strings(&["sagaway-bank-001"])));
        assert_eq!(
            grant_audiences(&strings(&["sagaway-product", "sagaway-gateway", "sagaway-product"]), &allowed, &default),
            Ok(strings(&["sagaway-product", "sagaway-gateway"])),
            "duplicates dropped"
        );
        assert_eq!(
            grant_audiences(&strings(&["sagaway-product", "sagaway-bank-002"]), &allowed, &default),
            Err(UnknownAudience("sagaway-bank-002".into())),
            "one unknown audience refuses the request"
        );
        // A refresh: `allowed` is what the login was granted; it may narrow, never widen.
        let login = strings(&["sagaway-product"]);
        assert_eq!(grant_audiences(&[], &login, &login), Ok(login.clone()));
        assert!(grant_audiences(&strings(&["sagaway-gateway"]), &login, &login).is_err());
    }

    #[test]
    fn one_audience_is_a_string_several_an_array() {
        let issuer = issuer(vec![SigningKey::generate()]);
        let one = serde_json::to_value(issuer.claims_for("alice", &[], &strings(&["a"]))).unwrap();
        assert_eq!(one["aud"], serde_json::json!("a"));
        let two = issuer.claims_for("alice", &[], &strings(&["a", "b"]));
        let json = serde_json::to_value(&two).unwrap();
        assert_eq!(json["aud"], serde_json::json!(["a", "b"]));
        assert_eq!(serde_json::from_value::<Claims>(json).unwrap(), two);
        assert_eq!(serde_json::from_value::<Claims>(one).unwrap().aud, strings(&["a"]));
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
        let elsewhere = issuer.access_token_with("alice", &["customer"], |c| c.aud = vec!["other".into()]).unwrap();
        assert!(decode(&elsewhere, &key).is_err());
        let foreign = issuer.with_keys(vec![SigningKey::generate()]).unwrap().access_token("alice", &[]).unwrap();
        assert!(decode(&foreign, &key).is_err());
    }
}
