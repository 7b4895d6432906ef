//! `POST /auth/token`, the RFC 6749 token endpoint, driven by a maintained OAuth2 client (the
//! `oauth2` crate) pointed at the endpoint discovery advertises; and each service's audience: a
//! token asked for one service is refused by another (checked with the services' own verifier).

use crate::common;

use oauth2::{
    ClientId, RefreshToken, RequestTokenError, ResourceOwnerPassword, ResourceOwnerUsername, TokenResponse, TokenUrl,
    basic::{BasicClient, BasicErrorResponseType, BasicTokenType},
};
use sagaway_common::auth::{AuthConfig, AuthError, Verifier};
use serde_json::{Value, json};

/// An OAuth2 client of `app`, configured from its discovery document (as a third party would).
async fn client(app: &common::TestApp) -> (BasicClient<oauth2::EndpointNotSet, oauth2::EndpointNotSet, oauth2::EndpointNotSet, oauth2::EndpointNotSet, oauth2::EndpointSet>, oauth2::reqwest::Client) {
    let discovery = app.get("/.well-known/openid-configuration").await.body;
    let token_endpoint = discovery["token_endpoint"].as_str().expect("a token endpoint").to_string();
    let client = BasicClient::new(ClientId::new("sagaway-test".into())).set_token_uri(TokenUrl::new(token_endpoint).unwrap());
    // No redirects: the oauth2 crate's advice for token requests.
    let http = oauth2::reqwest::Client::builder().redirect(oauth2::reqwest::redirect::Policy::none()).build().unwrap();
    (client, http)
}

fn user(name: &str) -> ResourceOwnerUsername {
    ResourceOwnerUsername::new(name.into())
}

fn password(p: &str) -> ResourceOwnerPassword {
    ResourceOwnerPassword::new(p.into())
}

/// The error code of a refused token request.
fn error_code<T: std::fmt::Debug>(r: Result<T, RequestTokenError<oauth2::HttpClientError<oauth2::reqwest::Error>, oauth2::basic::BasicErrorResponse>>) -> BasicErrorResponseType {
    match r {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert!(e.error_description().is_some_and(|d| !d.is_empty()), "{e:?}");
            e.error().clone()
        }
        other => panic!("expected an OAuth2 error response, got {other:?}"),
    }
}

fn verifier(app: &common::TestApp, audience: &str) -> std::sync::Arc<Verifier> {
    Verifier::new(AuthConfig::local(&app.address, app.issuer.issuer(), audience))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth2_client_logs_in_with_the_password_grant_and_refreshes() {
    let app = common::spawn().await;
    app.signup("alice", "correct horse battery").await;
    let (client, http) = client(&app).await;

    let token = client.exchange_password(&user("alice"), &password("correct horse battery")).request_async(&http).await.expect("a token");
    assert_eq!(*token.token_type(), BasicTokenType::Bearer);
    assert_eq!(token.expires_in(), Some(std::time::Duration::from_secs(900)));
    let claims = app.verify(token.access_token().secret()).await.unwrap();
    assert_eq!((claims["sub"].clone(), claims["roles"].clone()), (json!("alice"), json!(["customer"])));
    assert_eq!(claims["aud"], json!(identity::config::stack_audiences()), "no audience asked for: every service of the stack");

    // The refresh_token grant rotates: the new pair works, the old refresh token is refused.
    let first = token.refresh_token().expect("a refresh token").clone();
    let refreshed = client.exchange_refresh_token(&first).request_async(&http).await.expect("refreshed");
    assert_eq!(app.verify(refreshed.access_token().secret()).await.unwrap()["sub"], "alice");
    let second = refreshed.refresh_token().expect("a new refresh token");
    assert_ne!(second.secret(), first.secret());
    assert_eq!(error_code(client.exchange_refresh_token(&first).request_async(&http).await), BasicErrorResponseType::InvalidGrant);
    // Reuse revoked the login: its newest token is refused too.
    assert_eq!(error_code(client.exchange_refresh_token(second).request_async(&http).await), BasicErrorResponseType::InvalidGrant);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_token_requests_get_rfc_6749_errors() {
    let app = common::spawn().await;
    app.signup("alice", "correct horse battery").await;
    let (client, http) = client(&app).await;

    let wrong = client.exchange_password(&user("alice"), &password("not the password")).request_async(&http).await;
    assert_eq!(error_code(wrong), BasicErrorResponseType::InvalidGrant);
    let unknown = client.exchange_password(&user("nobody"), &password("not the password")).request_async(&http).await;
    assert_eq!(error_code(unknown), BasicErrorResponseType::InvalidGrant);
    let forged = client.exchange_refresh_token(&RefreshToken::new("not-a-refresh-token".into())).request_async(&http).await;
    assert_eq!(error_code(forged), BasicErrorResponseType::InvalidGrant);
    // A grant this endpoint does not serve (and does not advertise).
    assert_eq!(error_code(client.exchange_client_credentials().request_async(&http).await), BasicErrorResponseType::UnsupportedGrantType);
    let scoped = client.exchange_password(&user("alice"), &password("correct horse battery")).add_scope(oauth2::Scope::new("openid".into())).request_async(&http).await;
    assert_eq!(error_code(scoped), BasicErrorResponseType::InvalidScope);

    // The wire format: 400 with {error, error_description} as JSON, never cached; the JSON login's body is not a token request.
    let res = app.http.post(app.url("/auth/token")).json(&json!({"grant_type": "password", "username": "alice", "password": "correct horse battery"})).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    // Client authentication is refused with 401 invalid_client: clients here are public.
    let res = app.http.post(app.url("/auth/token")).basic_auth("some-client", Some("secret")).form(&[("grant_type", "password"), ("username", "alice"), ("password", "correct horse battery")]).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_client");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_asked_for_one_service_is_refused_by_another() {
    let app = common::spawn().await;
    app.signup("alice", "correct horse battery").await;
    let (client, http) = client(&app).await;
    let product = verifier(&app, "sagaway-product");
    let orchestrator = verifier(&app, "sagaway-orchestrator");
    let bank_002 = verifier(&app, "sagaway-bank-002");

    // RFC 8707: the client names the resource it will call.
    let for_product = client
        .exchange_password(&user("alice"), &password("correct horse battery"))
        .add_extra_param("resource", "sagaway-product")
        .request_async(&http)
        .await
        .expect("a token for the product service");
    let token = for_product.access_token().secret();
    assert_eq!(app.verify_for(token, "sagaway-product").await.unwrap()["aud"], "sagaway-product");
    assert_eq!(product.verify(token).await.unwrap().user_id, "alice");
    assert_eq!(orchestrator.verify(token).await.unwrap_err(), AuthError::Invalid("wrong audience (aud)".into()));
    assert!(bank_002.verify(token).await.is_err());

    // Its refresh keeps that audience (a refresh may narrow, never widen).
    let refresh = for_product.refresh_token().unwrap();
    let widened = client.exchange_refresh_token(refresh).add_extra_param("resource", "sagaway-orchestrator").request_async(&http).await;
    assert_eq!(error_code(widened), BasicErrorResponseType::Extension("invalid_target".into()));
    let refreshed = client.exchange_refresh_token(refresh).request_async(&http).await.expect("the refresh token was not spent by the refused request");
    assert!(orchestrator.verify(refreshed.access_token().secret()).await.is_err());
    assert!(product.verify(refreshed.access_token().secret()).await.is_ok());

    // Two audiences (the `audience` parameter works too), and an unknown one is refused.
    let both = client
        .exchange_password(&user("alice"), &password("correct horse battery"))
        .add_extra_param("audience", "sagaway-orchestrator")
        .add_extra_param("audience", "sagaway-bank-002")
        .request_async(&http)
        .await
        .unwrap();
    assert!(orchestrator.verify(both.access_token().secret()).await.is_ok());
    assert!(bank_002.verify(both.access_token().secret()).await.is_ok());
    assert!(product.verify(both.access_token().secret()).await.is_err());
    let elsewhere = client.exchange_password(&user("alice"), &password("correct horse battery")).add_extra_param("resource", "https://evil.example").request_async(&http).await;
    assert_eq!(error_code(elsewhere), BasicErrorResponseType::Extension("invalid_target".into()));

    // The JSON login takes the same parameter.
    let json_login = app.post("/auth/login", &json!({"username": "alice", "password": "correct horse battery", "audience": ["sagaway-bank-002"]})).await;
    assert_eq!(json_login.status, 200, "{}", json_login.body);
    let token = json_login.body["access_token"].as_str().unwrap();
    assert!(bank_002.verify(token).await.is_ok());
    assert!(orchestrator.verify(token).await.is_err());
    app.post("/auth/login", &json!({"username": "alice", "password": "correct horse battery", "audience": ["nope"]})).await.assert_problem(422, "invalid_target");
    app.cleanup().await;
}
