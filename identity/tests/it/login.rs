//! `POST /auth/login`: tokens, one answer for unknown users and wrong passwords, throttling.

use crate::common;

use std::time::{Duration, Instant};

use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_answers_a_bearer_access_token_and_a_refresh_token() {
    let app = common::spawn().await;
    app.signup("alice", "correct horse battery").await;
    let a = app.login("alice", "correct horse battery").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(a.body["token_type"], "Bearer");
    assert_eq!(a.body["expires_in"], 900);
    assert!(a.body["refresh_token"].as_str().is_some_and(|t| t.len() >= 43), "{}", a.body);
    let claims = app.verify(a.body["access_token"].as_str().unwrap()).await.unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["roles"], json!(["customer"]));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_and_wrong_passwords_get_the_same_401() {
    let app = common::spawn().await;
    app.signup("alice", "correct horse battery").await;
    let wrong = app.login("alice", "incorrect horse battery").await;
    let unknown = app.login("nobody", "correct horse battery").await;
    let impossible = app.login("no body", "correct horse battery").await;
    for a in [&wrong, &unknown, &impossible] {
        a.assert_problem(401, "invalid_credentials");
        assert!(a.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer")), "{:?}", a.headers);
    }
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.body, impossible.body);

    // An unknown user costs an argon2 verification too (a dummy hash): no fast path to tell them apart.
    let time = |username: &'static str| {
        let app = &app;
        async move {
            let started = Instant::now();
            for _ in 0..3 {
                app.login(username, "some wrong password").await;
            }
            started.elapsed()
        }
    };
    let known = time("alice").await;
    let unknown = time("nobody2").await;
    assert!(unknown * 3 > known, "unknown {unknown:?} vs known {known:?}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_guesses_from_one_address_never_refuse_the_right_password_from_another() {
    // Delays long enough that nothing expires during the test.
    let app = common::spawn_with(|c| {
        c.login_throttle.max_failures = 3;
        c.login_throttle.base_delay = Duration::from_secs(60);
    })
    .await;
    app.signup("ops", "the operator's password").await;
    let attacker = app.client_from("127.0.0.2");
    let operator = app.client_from("127.0.0.3");
    let mut refused = 0;
    for i in 0..8 {
        let a = app.login_with(&attacker, "ops", &format!("guess number {i}"), &[]).await;
        match a.status {
            401 => a.assert_problem(401, "invalid_credentials"),
            _ => {
                a.assert_problem(429, "too_many_attempts");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 5, "three guesses go through, then the attacker's address waits");
    // Even the right password waits from the attacker's address...
    app.login_with(&attacker, "ops", "the operator's password", &[]).await.assert_problem(429, "too_many_attempts");
    // ...but the operator, from their own address, is not refused: the attacker locked out nobody.
    let from_operator = app.login_with(&operator, "ops", "the operator's password", &[]).await;
    assert_eq!(from_operator.status, 200, "{}", from_operator.body);
    // And the attacker's failures are still counted (the operator's success cleared only their own).
    app.login_with(&attacker, "ops", "guess number 9", &[]).await.assert_problem(429, "too_many_attempts");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_past_the_free_ones_doubles_the_delay() {
    let app = common::spawn_with(|c| {
        c.login_throttle.max_failures = 2;
        c.login_throttle.base_delay = Duration::from_secs(1);
        c.login_throttle.max_delay = Duration::from_secs(60);
    })
    .await;
    app.signup("alice", "correct horse battery").await;
    for _ in 0..2 {
        app.login("alice", "wrong password!").await.assert_problem(401, "invalid_credentials");
    }
    // The second failure set a delay of 1 s, the third one of 2 s, the fourth one of 4 s.
    for expected in [1u64, 2, 4] {
        let waiting = app.login("alice", "correct horse battery").await;
        waiting.assert_problem(429, "too_many_attempts");
        let retry_after: u64 = waiting.header("retry-after").expect("Retry-After").parse().unwrap();
        assert!(retry_after <= expected && retry_after >= expected.saturating_sub(1).max(1), "{retry_after} vs {expected}");
        assert_eq!(waiting.body["retry_after"], retry_after);
        tokio::time::sleep(Duration::from_millis(expected * 1000 + 150)).await;
        app.login("alice", "wrong password!").await.assert_problem(401, "invalid_credentials");
    }
    let waiting = app.login("alice", "correct horse battery").await;
    let retry_after: u64 = waiting.header("retry-after").unwrap().parse().unwrap();
    assert!((7..=8).contains(&retry_after), "then 8 s: {retry_after}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_names_the_client_only_when_a_trusted_proxy_sends_it() {
    let app = common::spawn_with(|c| {
        c.login_throttle.max_failures = 2;
        c.login_throttle.base_delay = Duration::from_secs(60);
        // The proxy is 127.0.0.1 (the test's default client address), nothing else.
        c.trusted_proxies = identity::client::parse_cidrs("127.0.0.1").unwrap();
    })
    .await;
    app.signup("ops", "the operator's password").await;
    let proxy = app.client_from("127.0.0.1");
    let via = |client: &'static str| [("x-forwarded-for", client)];
    for _ in 0..2 {
        app.login_with(&proxy, "ops", "a wrong guess!", &via("198.51.100.7")).await.assert_problem(401, "invalid_credentials");
    }
    app.login_with(&proxy, "ops", "a wrong guess!", &via("198.51.100.7")).await.assert_problem(429, "too_many_attempts");
    // Another client behind the same proxy is another client.
    assert_eq!(app.login_with(&proxy, "ops", "the operator's password", &via("198.51.100.8")).await.status, 200);

    // Anyone else's X-Forwarded-For is ignored: inventing a new address per guess buys nothing.
    let direct = app.client_from("127.0.0.4");
    let mut statuses = Vec::new();
    for i in 0..4 {
        let spoofed = format!("203.0.113.{i}");
        statuses.push(app.login_with(&direct, "ops", "a wrong guess!", &[("x-forwarded-for", &spoofed)]).await.status);
    }
    assert_eq!(statuses, vec![401, 401, 429, 429]);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_login_resets_the_failure_count() {
    let app = common::spawn_with(|c| {
        c.login_throttle.max_failures = 3;
        c.login_throttle.base_delay = Duration::from_secs(60);
    })
    .await;
    app.signup("alice", "correct horse battery").await;
    for _ in 0..2 {
        app.login("alice", "wrong password!").await.assert_problem(401, "invalid_credentials");
    }
    assert_eq!(app.login("alice", "correct horse battery").await.status, 200);
    for _ in 0..3 {
        app.login("alice", "wrong password!").await.assert_problem(401, "invalid_credentials");
    }
    app.login("alice", "correct horse battery").await.assert_problem(429, "too_many_attempts");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_guesses_cannot_exceed_the_limit_and_unknown_users_are_throttled_alike() {
    let app = common::spawn_with(|c| {
        c.login_throttle.max_failures = 3;
        c.login_throttle.base_delay = Duration::from_secs(60);
    })
    .await;
    app.signup("alice", "correct horse battery").await;
    for username in ["alice", "nobody"] {
        let guesses = (0..8).map(|i| {
            let app = &app;
            async move { app.login(username, &format!("guess number {i}")).await.status }
        });
        let mut statuses = futures::future::join_all(guesses).await;
        statuses.sort();
        assert_eq!(statuses, vec![401, 401, 401, 429, 429, 429, 429, 429], "{username}");
    }
    app.cleanup().await;
}
