//! Opening accounts, validation, holders (joint accounts), lookups, statements and 404s for others.

use crate::common;

use common::spawn;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// An id no account, operation or transfer can have (non-ASCII: the tables are latin1, and the
/// comparison used to fail in the database, a 500) names nothing: 404 for holders and admins alike.
#[tokio::test]
async fn ids_that_cannot_exist_are_404_not_500() {
    let app = spawn().await;
    for id in ["%F2%AE%BB%A4%C3%AAm", "%C3%A9t%C3%A9", "a%20b"] {
        for (method, path) in [
            (Method::GET, format!("/accounts/{id}")),
            (Method::GET, format!("/accounts/{id}/statement")),
            (Method::GET, format!("/operations/{id}")),
            (Method::GET, format!("/transfers/{id}")),
            (Method::DELETE, format!("/transfers/{id}")),
        ] {
            for user in ["admin", "bob"] {
                let (s, b, _) = app.call(user, method.clone(), &path, None, None).await;
                assert_eq!(s, StatusCode::NOT_FOUND, "{user} {method} {path}: {b}");
                assert!(b["code"].as_str().is_some_and(|c| c.ends_with("_not_found")), "{b}");
            }
        }
        let (s, b) = app.post("bob", &format!("/accounts/{id}/operations"), &json!({"type": "deposit", "amount": "1.00"})).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    }
    app.stop().await;
}

#[tokio::test]
async fn accounts_open_with_valid_documents_and_refuse_invalid_fields() {
    let app = spawn().await;
    let a = app.open("alice").await;
    assert_eq!(a["type"], "individual");
    assert_eq!(a["bank"], "001");
    assert_eq!(a["currency"], "BRL");
    assert_eq!(a["holders"], json!(["alice"]));
    assert_eq!(a["available"], "0.00");
    assert_eq!(a["held"], "0.00");
    assert_eq!(a["ledger"], "0.00");
    assert_eq!(a["document"], "*********25", "documents are answered masked");
    let number = a["number"].as_str().unwrap();
    assert!(bank::rules::account_number::AccountNumber::parse(number).is_ok(), "{number}");
    let biz = app.open_with("acme", json!({"type": "business", "currency": "USD", "document": "11.222.333/0001-81"})).await;
    assert_eq!(biz["type"], "business");

    for (body, field) in [
        (json!({"type": "individual", "currency": "BRL", "document": "529.982.247-24"}), "document"),
        (json!({"type": "individual", "currency": "BRL"}), "document"),
        (json!({"type": "business", "currency": "BRL", "document": "529.982.247-25"}), "document"),
        (json!({"type": "savings", "currency": "BRL", "document": "529.982.247-25"}), "type"),
        (json!({"type": "individual", "currency": "XYZ", "document": "529.982.247-25"}), "currency"),
        (json!({"type": "joint", "currency": "BRL", "holders": ["alice"]}), "holders"),
        (json!({"type": "joint", "currency": "BRL", "holders": ["alice", "bob", "alice"]}), "holders"),
        (json!({"type": "joint", "currency": "BRL"}), "holders"),
        (json!({"type": "individual", "currency": "BRL", "document": "529.982.247-25", "colour": "red"}), "colour"),
    ] {
        let (s, b) = app.post("alice", "/accounts", &body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {b}");
        assert_eq!(b["field"], field, "{body} → {b}");
    }
    // Opening an account for others (not among its holders) is not the caller's to do.
    for body in [
        json!({"type": "individual", "currency": "BRL", "document": "529.982.247-25", "holders": ["bob"]}),
        json!({"type": "joint", "currency": "BRL", "holders": ["bob", "carol"]}),
    ] {
        let (s, b) = app.post("alice", "/accounts", &body).await;
        assert_eq!((s, &b["code"], &b["field"]), (StatusCode::FORBIDDEN, &json!("not_a_holder"), &json!("holders")), "{body} → {b}");
    }
    let (s, _, _) = app.call("alice", Method::GET, "/accounts", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let res = reqwest::get(format!("{}/accounts", app.base_url)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "every route needs a token");
    app.stop().await;
}

#[tokio::test]
async fn joint_accounts_are_operated_by_every_holder_and_hidden_from_others() {
    let app = spawn().await;
    let joint = app.open_with("alice", json!({"type": "joint", "currency": "BRL", "holders": ["alice", "bob"]})).await;
    let id = joint["id"].as_str().unwrap();
    assert_eq!(joint["holders"], json!(["alice", "bob"]));
    app.fund("alice", id, "100.00").await;
    app.fund("bob", id, "50.00").await;
    let op = app.operate("bob", id, "withdrawal", "30.00").await;
    assert_eq!(app.settled_operation("alice", op["operation_id"].as_str().unwrap()).await["status"], "APPLIED");
    assert_eq!(app.account("alice", id).await["available"], "120.00");
    let (_, mine) = app.get("bob", "/accounts").await;
    assert!(mine.as_array().unwrap().iter().any(|a| a["id"] == id));

    // mallory: 404 everywhere, like a missing account
    for path in [format!("/accounts/{id}"), format!("/accounts/{id}/statement"), format!("/operations/{}", op["operation_id"].as_str().unwrap())] {
        let (s, b) = app.get("mallory", &path).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {b}");
    }
    let (s, _) = app.post("mallory", &format!("/accounts/{id}/operations"), &json!({"type": "withdrawal", "amount": "1.00"})).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, theirs) = app.get("mallory", "/accounts").await;
    assert_eq!(theirs, json!([]));
    // an admin may read it
    assert_eq!(app.get("admin", &format!("/accounts/{id}")).await.0, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn lookups_show_only_the_masked_holder_and_statements_page_newest_first() {
    let app = spawn().await;
    let a = app.open("alice").await;
    let id = a["id"].as_str().unwrap();
    let (s, r) = app.get("bob", &format!("/accounts/lookup?number={}", a["number"].as_str().unwrap())).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r, json!({"bank": "001", "number": a["number"], "type": "individual", "currency": "BRL", "holder": "al***e"}));
    let (s, r) = app.get("bob", "/accounts/lookup?number=12345678-0").await;
    assert_eq!((s, r["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("number")));
    let (s, _) = app.get("bob", "/accounts/lookup?number=12345678-9").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    for i in 1..=5 {
        app.fund("alice", id, &format!("{i}.00")).await;
    }
    let (s, page) = app.get("alice", &format!("/accounts/{id}/statement?limit=2")).await;
    assert_eq!(s, StatusCode::OK);
    let amounts: Vec<&str> = page["items"].as_array().unwrap().iter().map(|e| e["amount"].as_str().unwrap()).collect();
    assert_eq!(amounts, ["5.00", "4.00"]);
    let all = app.statement("alice", id).await;
    let amounts: Vec<&str> = all.iter().map(|e| e["amount"].as_str().unwrap()).collect();
    assert_eq!(amounts, ["5.00", "4.00", "3.00", "2.00", "1.00"]);
    let (s, b) = app.get("alice", &format!("/accounts/{id}/statement?cursor=bogus")).await;
    assert_eq!((s, b["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("cursor")));
    app.stop().await;
}
