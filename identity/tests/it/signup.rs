//! `POST /auth/signup`: accounts, the password and username rules, byte-exact usernames.

use crate::common;

use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_creates_a_customer_whose_password_is_stored_as_an_argon2id_hash() {
    let app = common::spawn().await;
    let a = app.post("/auth/signup", &json!({"username": "alice", "password": "correct horse battery", "display_name": " Alice L. "})).await;
    assert_eq!(a.status, 201, "{}", a.body);
    assert_eq!(a.body, json!({"username": "alice", "display_name": "Alice L.", "roles": ["customer"]}));

    let b = app.signup("bob", "another fine password").await;
    assert_eq!(b.body, json!({"username": "bob", "display_name": "bob", "roles": ["customer"]}), "display_name defaults to the username");

    let (hash,): (String,) = sqlx::query_as("SELECT password_hash FROM users WHERE username = 'alice'").fetch_one(&app.pool).await.unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
    assert!(!hash.contains("correct horse battery"));
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_and_capital_alice_are_two_users() {
    let app = common::spawn().await;
    assert_eq!(app.signup("alice", "lower-case alice pw").await.status, 201);
    let upper = app.signup("Alice", "upper-case Alice pw").await;
    assert_eq!(upper.status, 201, "usernames are unique byte for byte: {}", upper.body);

    let lower = app.login("alice", "lower-case alice pw").await;
    assert_eq!(lower.status, 200, "{}", lower.body);
    assert_eq!(app.verify(lower.body["access_token"].as_str().unwrap()).await.unwrap()["sub"], "alice");
    let upper = app.login("Alice", "upper-case Alice pw").await;
    assert_eq!(upper.status, 200, "{}", upper.body);
    assert_eq!(app.verify(upper.body["access_token"].as_str().unwrap()).await.unwrap()["sub"], "Alice");
    app.login("ALICE", "upper-case Alice pw").await.assert_problem(401, "invalid_credentials");
    app.login("Alice", "lower-case alice pw").await.assert_problem(401, "invalid_credentials");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_username_is_409() {
    let app = common::spawn().await;
    assert_eq!(app.signup("carol", "first password here").await.status, 201);
    let again = app.signup("carol", "second password here").await;
    again.assert_problem(409, "username_taken");
    assert_eq!(again.body["field"], "username");
    // the first account is untouched
    assert_eq!(app.login("carol", "first password here").await.status, 200);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_passwords_and_bad_fields_are_422_naming_the_field() {
    let app = common::spawn().await;
    let short = app.signup("dave", "123456789").await;
    short.assert_problem(422, "weak_password");
    assert_eq!(short.body["field"], "password");
    let same = app.signup("dave.smith01", "Dave.Smith01").await;
    same.assert_problem(422, "weak_password");
    assert_eq!(same.body["field"], "password");
    let long = app.signup("dave", &"p".repeat(1025)).await;
    long.assert_problem(422, "validation_failed");
    assert_eq!(long.body["field"], "password");

    for bad in ["", "da ve", "dave/1", "dävé", &"d".repeat(65)] {
        let a = app.signup(bad, "a good long password").await;
        a.assert_problem(422, "validation_failed");
        assert_eq!(a.body["field"], "username", "{bad:?}");
    }
    let a = app.post("/auth/signup", &json!({"username": "dave", "password": "a good long password", "display_name": ""})).await;
    a.assert_problem(422, "validation_failed");
    assert_eq!(a.body["field"], "display_name");

    let unknown = app.post("/auth/signup", &json!({"username": "dave", "password": "a good long password", "roles": ["admin"]})).await;
    unknown.assert_problem(422, "validation_failed");
    assert_eq!(unknown.body["field"], "roles");
    let missing = app.post("/auth/signup", &json!({"username": "dave"})).await;
    missing.assert_problem(422, "validation_failed");
    assert_eq!(missing.body["field"], "password");

    let (users,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users").fetch_one(&app.pool).await.unwrap();
    assert_eq!(users, 0, "nothing refused was created");
    // the same name with a good password is fine
    assert_eq!(app.signup("dave", "a good long password").await.status, 201);
    app.cleanup().await;
}
