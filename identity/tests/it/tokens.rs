//! Access tokens verify against the JWKS served, carry the documented claims, and survive a key
//! rotation; discovery documents.

use crate::common;

use std::time::Duration;

use identity::keys::{KeySource, SigningKey};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_token_verifies_with_the_served_jwks_and_has_the_claims() {
    let app = common::spawn_with(|c| c.access_ttl = Duration::from_secs(600)).await;
    let login = app.signed_up_and_logged_in("alice@example.com", "correct horse battery").await;
    let token = login["access_token"].as_str().unwrap();

    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.kid.as_deref(), Some(app.issuer.signing_kid()));

    let claims = app.verify(token).await.unwrap();
    assert_eq!(claims["iss"], app.address.as_str());
    assert_eq!(claims["aud"], json!(identity::config::stack_audiences()), "every service of the stack by default");
    assert_eq!(claims["sub"], "alice@example.com");
    assert_eq!(claims["roles"], json!(["customer"]));
    let (iat, exp) = (claims["iat"].as_i64().unwrap(), claims["exp"].as_i64().unwrap());
    assert_eq!(exp - iat, 600);
    assert!((iat - chrono::Utc::now().timestamp()).abs() < 30);
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert_eq!(login["expires_in"], 600);

    let jwks = app.get("/.well-known/jwks.json").await;
    assert_eq!(jwks.status, 200);
    let key = &jwks.body["keys"][0];
    assert_eq!(
        (&key["kty"], &key["crv"], &key["alg"], &key["use"], &key["kid"]),
        (&json!("OKP"), &json!("Ed25519"), &json!("EdDSA"), &json!("sig"), &json!(app.issuer.signing_kid()))
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_the_previous_key_still_verify_after_a_rotation() {
    let (old, new) = (SigningKey::generate(), SigningKey::generate());
    let deploy = |keys: Vec<SigningKey>| {
        move |c: &mut identity::Config| {
            c.signing_keys = KeySource::Keys(keys);
            c.issuer = Some("http://identity.test".into());
        }
    };
    // Before the rotation only the old key exists; alice logs in.
    let before = common::spawn_with(deploy(vec![old.clone()])).await;
    let login = before.signed_up_and_logged_in("alice", "correct horse battery").await;
    let old_token = login["access_token"].as_str().unwrap().to_string();
    assert_eq!(jsonwebtoken::decode_header(&old_token).unwrap().kid.as_deref(), Some(old.kid()));
    before.cleanup().await;

    // After: the new key signs, the old one is still published, and alice's token still verifies.
    let app = common::spawn_with(deploy(vec![new.clone(), old.clone()])).await;
    let jwks = app.get("/.well-known/jwks.json").await.body;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, vec![new.kid(), old.kid()]);
    assert_eq!(app.verify(&old_token).await.unwrap()["sub"], "alice", "a token of the old key still verifies");
    let login = app.signed_up_and_logged_in("bob", "correct horse battery").await;
    let new_token = login["access_token"].as_str().unwrap();
    assert_eq!(jsonwebtoken::decode_header(new_token).unwrap().kid.as_deref(), Some(new.kid()));
    assert_eq!(app.verify(new_token).await.unwrap()["sub"], "bob");
    app.cleanup().await;

    // Once the old key is removed, its tokens stop verifying (what listing it prevents).
    let later = common::spawn_with(deploy(vec![new.clone()])).await;
    assert!(later.verify(&old_token).await.is_err());
    // A key that was never published does not verify either.
    let foreign = later.issuer.with_keys(vec![SigningKey::generate()]).unwrap().access_token("alice", &["admin"]).unwrap();
    assert!(later.verify(&foreign).await.is_err());
    later.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_mints_tokens_for_tests_of_other_services() {
    let app = common::spawn().await;
    let token = app.issuer.access_token("carol", &["customer", "admin"]).unwrap();
    let claims = app.verify(&token).await.unwrap();
    assert_eq!((claims["sub"].clone(), claims["roles"].clone()), (json!("carol"), json!(["customer", "admin"])));
    let expired = app.issuer.access_token_with("carol", &["customer"], |c| c.exp = c.iat - 60).unwrap();
    assert!(app.verify(&expired).await.is_err());
    let elsewhere = app.issuer.access_token_with("carol", &["customer"], |c| c.aud = vec!["another-audience".into()]).unwrap();
    assert!(app.verify(&elsewhere).await.is_err());
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_configuration_points_at_the_jwks_and_the_token_endpoint() {
    let app = common::spawn().await;
    let a = app.get("/.well-known/openid-configuration").await;
    assert_eq!(a.status, 200);
    let c = a.body;
    assert_eq!(c["issuer"], app.address.as_str());
    assert_eq!(c["jwks_uri"], format!("{}/.well-known/jwks.json", app.address));
    assert_eq!(c["token_endpoint"], format!("{}/auth/token", app.address));
    assert_eq!(c["grant_types_supported"], json!(["password", "refresh_token"]));
    assert_eq!(c["token_endpoint_auth_methods_supported"], json!(["none"]));
    assert_eq!(c["response_types_supported"], json!([]), "no authorization endpoint, so no response types");
    assert!(c.get("authorization_endpoint").is_none());
    assert_eq!(c["id_token_signing_alg_values_supported"], json!(["EdDSA"]));
    let jwks = app.http.get(c["jwks_uri"].as_str().unwrap()).send().await.unwrap().json::<Value>().await.unwrap();
    assert_eq!(jwks["keys"][0]["kid"], app.issuer.signing_kid());
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_admin_logs_in_with_the_admin_role() {
    let database = common::test_database();
    let bootstrap = identity::config::parse_bootstrap_admin("root:root's long password").unwrap();
    let with_bootstrap = |c: &mut identity::Config| {
        c.database_url = identity::Config::local(&database).database_url;
        c.bootstrap_admin = Some(bootstrap.clone());
    };
    let app = common::spawn_with(with_bootstrap).await;
    let login = app.login("root", "root's long password").await;
    assert_eq!(login.status, 200, "{}", login.body);
    let claims = app.verify(login.body["access_token"].as_str().unwrap()).await.unwrap();
    assert_eq!(claims["roles"], json!(["customer", "admin"]));
    // A second start with the same setting (a restart, another replica) is fine.
    let again = identity::Application::build({
        let mut c = identity::Config::local(&database);
        with_bootstrap(&mut c);
        c
    })
    .await;
    assert!(again.is_ok(), "{:?}", again.err());

    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_admin_never_promotes_an_account_someone_else_signed_up() {
    let database = common::test_database();
    let app = common::spawn_with(|c| c.database_url = identity::Config::local(&database).database_url).await;
    // Signing up is open: someone takes the operator's name before the operator's first start.
    assert_eq!(app.signup("ops", "squatter's long password").await.status, 201);
    let start = identity::Application::build({
        let mut c = identity::Config::local(&database);
        c.bootstrap_admin = Some(identity::config::parse_bootstrap_admin("ops:the operator's password").unwrap());
        c
    })
    .await;
    let err = format!("{:#}", start.err().expect("the start is refused"));
    assert!(err.contains("IDENTITY_BOOTSTRAP_ADMIN") && err.contains("\"ops\"") && err.contains("not an admin"), "{err}");
    // The squatter is still a customer, and the operator's password opens nothing.
    let squatter = app.login("ops", "squatter's long password").await;
    assert_eq!(app.verify(squatter.body["access_token"].as_str().unwrap()).await.unwrap()["roles"], json!(["customer"]));
    app.login("ops", "the operator's password").await.assert_problem(401, "invalid_credentials");
    app.cleanup().await;
}
