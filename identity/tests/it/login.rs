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
async fn failed_logins_lock_the_username_with_retry_after_until_the_window_passes() {
    let window = Duration::from_secs(3);
    let app = common::spawn_with(|c| {
        c.login_throttle.max_failures = 3;
        c.login_throttle.window = window;
    })
    .await;
    app.signup("alice", "correct horse battery").await;
    app.signup("bob", "bob's long password").await;
    let opened = Instant::now();
    for _ in 0..3 {
        app.login("alice", "wrong password!").await.assert_problem(401, "invalid_credentials");
    }
    // locked: even the right password gets 429 now
    let locked = app.login("alice", "correct horse battery").await;
    locked.assert_problem(429, "too_many_attempts");
    let retry_after: u64 = locked.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=3).contains(&retry_after), "{retry_after}");
    assert_eq!(locked.body["retry_after"], retry_after);
    // other usernames are not affected
    assert_eq!(app.login("bob", "bob's long password").await.status, 200);

    tokio::time::sleep((opened + window + Duration::from_millis(200)).saturating_duration_since(Instant::now())).await;
    let after = app.login("alice", "correct horse battery").await;
    assert_eq!(after.status, 200, "the window has passed: {}", after.body);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_login_resets_the_failure_count() {
    let app = common::spawn_with(|c| c.login_throttle.max_failures = 3).await;
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
    let app = common::spawn_with(|c| c.login_throttle.max_failures = 3).await;
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
