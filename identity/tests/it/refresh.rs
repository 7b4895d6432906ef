//! `POST /auth/refresh` and `/auth/logout`: single-use rotating refresh tokens, reuse revokes the
//! family, logout revokes it, only hashes are stored.

use crate::common;

use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

fn token(body: &serde_json::Value, field: &str) -> String {
    body[field].as_str().unwrap_or_else(|| panic!("no {field} in {body}")).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refresh_rotates_the_pair() {
    let app = common::spawn().await;
    let login = app.signed_up_and_logged_in("alice", "correct horse battery").await;
    let r1 = token(&login, "refresh_token");
    let a = app.refresh(&r1).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("cache-control"), Some("no-store"));
    assert_eq!(a.body["token_type"], "Bearer");
    assert_eq!(a.body["expires_in"], 900);
    let r2 = token(&a.body, "refresh_token");
    assert_ne!(r1, r2);
    let claims = app.verify(&token(&a.body, "access_token")).await.unwrap();
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["roles"], json!(["customer"]));
    let b = app.refresh(&r2).await;
    assert_eq!(b.status, 200, "the new token works once: {}", b.body);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reusing_a_refresh_token_revokes_its_whole_family_and_only_it() {
    let app = common::spawn().await;
    let login = app.signed_up_and_logged_in("alice", "correct horse battery").await;
    let other_login = app.login("alice", "correct horse battery").await.body;
    let r1 = token(&login, "refresh_token");
    let r2 = token(&app.refresh(&r1).await.body, "refresh_token");

    let replay = app.refresh(&r1).await;
    replay.assert_problem(401, "refresh_token_reused");
    assert!(replay.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer")));
    // every token of the family fails now, the unused newest one included
    app.refresh(&r2).await.assert_problem(401, "invalid_refresh_token");
    app.refresh(&r1).await.assert_problem(401, "refresh_token_reused");
    // another login of the same user is another family
    assert_eq!(app.refresh(&token(&other_login, "refresh_token")).await.status, 200);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_expired_refresh_tokens_are_invalid() {
    let app = common::spawn_with(|c| c.refresh_ttl = Duration::from_secs(1)).await;
    app.refresh("not-a-token").await.assert_problem(401, "invalid_refresh_token");
    let unknown = app.refresh(&"A".repeat(43)).await;
    unknown.assert_problem(401, "invalid_refresh_token");
    assert!(unknown.header("www-authenticate").is_some_and(|h| h.starts_with("Bearer")));
    app.post("/auth/refresh", &json!({"refresh_token": "x", "extra": 1})).await.assert_problem(422, "validation_failed");

    let login = app.signed_up_and_logged_in("alice", "correct horse battery").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    app.refresh(&token(&login, "refresh_token")).await.assert_problem(401, "invalid_refresh_token");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_revokes_the_family_and_is_idempotent() {
    let app = common::spawn().await;
    let login = app.signed_up_and_logged_in("alice", "correct horse battery").await;
    let r1 = token(&login, "refresh_token");
    let r2 = token(&app.refresh(&r1).await.body, "refresh_token");
    let other = token(&app.login("alice", "correct horse battery").await.body, "refresh_token");

    // logging out with an older token of the family revokes the newest too
    let out = app.post("/auth/logout", &json!({"refresh_token": r1})).await;
    assert_eq!(out.status, 204);
    app.refresh(&r2).await.assert_problem(401, "invalid_refresh_token");
    assert_eq!(app.post("/auth/logout", &json!({"refresh_token": r2})).await.status, 204, "again");
    assert_eq!(app.post("/auth/logout", &json!({"refresh_token": "never issued"})).await.status, 204, "unknown");
    assert_eq!(app.refresh(&other).await.status, 200, "the other login is still alive");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_sha256_of_each_refresh_token_is_stored() {
    let app = common::spawn().await;
    let login = app.signed_up_and_logged_in("alice", "correct horse battery").await;
    let r1 = token(&login, "refresh_token");
    let stored: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT token_hash FROM refresh_tokens").fetch_all(&app.pool).await.unwrap();
    assert_eq!(stored, vec![(Sha256::digest(r1.as_bytes()).to_vec(),)]);
    let (found,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM refresh_tokens WHERE INSTR(token_hash, ?) > 0")
        .bind(&r1)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(found, 0);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_only_families_whose_tokens_all_expired() {
    let app = common::spawn().await;
    let login = app.signed_up_and_logged_in("alice", "correct horse battery").await;
    let now = chrono::Utc::now();
    assert_eq!(identity::refresh::purge(&app.pool, now).await.unwrap(), 0);
    assert_eq!(app.refresh(&token(&login, "refresh_token")).await.status, 200);
    let later = now + chrono::Duration::days(31);
    assert_eq!(identity::refresh::purge(&app.pool, later).await.unwrap(), 1);
    let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM refresh_tokens").fetch_one(&app.pool).await.unwrap();
    assert_eq!(left, 0, "the family's tokens went with it");
    app.cleanup().await;
}
