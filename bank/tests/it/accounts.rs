//! Opening accounts, validation, holders (joint accounts and the invitations that make a co-holder),
//! lookups, statements and 404s for others.

use crate::common;

use common::{TestApp, spawn};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

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
    assert_eq!((&joint["holders"], &joint["invited"]), (&json!(["alice"]), &json!(["bob"])));
    let (s, b) = app.post("bob", &format!("/accounts/{id}/invitations/bob/accept"), &json!({})).await;
    assert_eq!((s, &b["holders"]), (StatusCode::OK, &json!(["alice", "bob"])), "{b}");
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

/// What `user` gets from every route that concerns account `id` (and its operation `op` and
/// transfer `tr`): each route's status, and whether the account is among theirs (`GET /accounts`,
/// `GET /me/balances`). The writes are ones that change nothing when allowed: a withdrawal larger
/// than the balance (rejected in the queue) and a transfer over the balance (422), so the probe can
/// run again and again.
async fn reach(app: &TestApp, user: &str, id: &str, op: &str, tr: &str, to_number: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for path in [format!("/accounts/{id}"), format!("/accounts/{id}/statement"), format!("/operations/{op}"), format!("/transfers/{tr}")] {
        let (s, _) = app.get(user, &path).await;
        out.push((format!("GET {path}"), json!(s.as_u16())));
    }
    let (s, _) = app.post(user, &format!("/accounts/{id}/operations"), &json!({"type": "withdrawal", "amount": "999999.00"})).await;
    out.push(("POST operations".into(), json!(s.as_u16())));
    let transfer = json!({"kind": "instant", "from_account": id, "amount": "999999.00", "to": {"bank": "001", "account_number": to_number}});
    let (s, b) = app.transfer(user, &transfer).await;
    out.push(("POST /transfers".into(), json!([s.as_u16(), b["code"]])));
    let (_, mine) = app.get(user, "/accounts").await;
    out.push(("GET /accounts lists it".into(), json!(mine.as_array().unwrap().iter().any(|a| a["id"] == id))));
    let (_, balances) = app.get(user, "/me/balances").await;
    out.push(("GET /me/balances lists it".into(), json!(balances["accounts"].as_array().unwrap().iter().any(|a| a["id"] == id))));
    out
}

/// A user named as a co-holder reaches the account exactly as a stranger does (every route) until
/// they accept their invitation, and exactly as its opener does after; nobody can accept for them,
/// and a declined or revoked invitation makes no holder.
#[tokio::test]
async fn co_holders_are_invited_and_hold_the_account_only_once_they_accept() {
    let app = spawn().await;
    let joint = app.open_with("alice", json!({"type": "joint", "currency": "BRL", "holders": ["alice", "bob", "carol"]})).await;
    let id = joint["id"].as_str().unwrap().to_string();
    assert_eq!(joint["holders"], json!(["alice"]), "the opener alone holds it: {joint}");
    assert_eq!(joint["invited"], json!(["bob", "carol"]), "{joint}");
    app.fund("alice", &id, "100.00").await;
    let op = app.operate("alice", &id, "deposit", "1.00").await["operation_id"].as_str().unwrap().to_string();
    app.settled_operation("alice", &op).await;
    let other = app.open("alice").await;
    let to_number = other["number"].as_str().unwrap().to_string();
    let (s, t) = app.transfer("alice", &json!({"kind": "instant", "from_account": id, "amount": "1.00", "to": {"bank": "001", "account_number": to_number}})).await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let tr = t["id"].as_str().unwrap().to_string();

    let stranger = reach(&app, "mallory", &id, &op, &tr, &to_number).await;
    assert!(stranger.iter().take(5).all(|(_, s)| *s == json!(404)), "{stranger:?}");
    for invitee in ["bob", "carol"] {
        assert_eq!(reach(&app, invitee, &id, &op, &tr, &to_number).await, stranger, "{invitee} before accepting");
    }

    // The invitee is told, without the account's money.
    let (s, mine) = app.get("bob", "/me/invitations").await;
    assert_eq!(s, StatusCode::OK, "{mine}");
    let mine = mine.as_array().unwrap();
    assert_eq!(mine.len(), 1, "{mine:?}");
    let inv = &mine[0];
    assert_eq!(
        (&inv["account_id"], &inv["bank"], &inv["number"], &inv["type"], &inv["currency"], &inv["user_id"], &inv["invited_by"], &inv["status"]),
        (&json!(id), &json!("001"), &joint["number"], &json!("joint"), &json!("BRL"), &json!("bob"), &json!("alice"), &json!("PENDING")),
        "{inv}"
    );
    assert!(inv.get("available").is_none() && inv.get("held").is_none(), "{inv}");
    assert_eq!(app.get("mallory", "/me/invitations").await.1, json!([]));

    // Nobody else can answer for bob: not the opener, not another invitee, not an admin, not a stranger.
    for who in ["alice", "carol", "admin", "mallory", "Bob"] {
        for verb in ["accept", "decline"] {
            let (s, b) = app.post(who, &format!("/accounts/{id}/invitations/bob/{verb}"), &json!({})).await;
            assert_eq!((s, b["code"].as_str()), (StatusCode::FORBIDDEN, Some("not_the_invitee")), "{who} {verb}: {b}");
        }
    }
    // A user who was not invited has nothing to accept.
    let (s, b) = app.post("mallory", &format!("/accounts/{id}/invitations/mallory/accept"), &json!({})).await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::NOT_FOUND, Some("invitation_not_found")), "{b}");
    assert_eq!(reach(&app, "bob", &id, &op, &tr, &to_number).await, stranger, "bob after the others tried");
    assert_eq!(app.account("alice", &id).await["holders"], json!(["alice"]));

    // bob accepts: from now on he reaches it exactly as alice does.
    let (s, acc) = app.post("bob", &format!("/accounts/{id}/invitations/bob/accept"), &json!({})).await;
    assert_eq!(s, StatusCode::OK, "{acc}");
    assert_eq!((&acc["holders"], &acc["invited"], &acc["available"]), (&json!(["alice", "bob"]), &json!(["carol"]), &json!("100.00")), "{acc}");
    let opener = reach(&app, "alice", &id, &op, &tr, &to_number).await;
    assert_eq!(reach(&app, "bob", &id, &op, &tr, &to_number).await, opener);
    assert_ne!(opener, stranger);
    app.fund("bob", &id, "5.00").await;
    assert_eq!(app.account("alice", &id).await["available"], "105.00");
    // Accepting again answers the same; declining now is too late.
    let (s, again) = app.post("bob", &format!("/accounts/{id}/invitations/bob/accept"), &json!({})).await;
    assert_eq!((s, &again["holders"]), (StatusCode::OK, &json!(["alice", "bob"])));
    let (s, b) = app.post("bob", &format!("/accounts/{id}/invitations/bob/decline"), &json!({})).await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::CONFLICT, Some("invitation_accepted")), "{b}");
    assert_eq!(app.get("bob", "/me/invitations").await.1, json!([]));

    // carol declines: she never holds it, and cannot change her mind into holding it.
    let (s, d) = app.post("carol", &format!("/accounts/{id}/invitations/carol/decline"), &json!({})).await;
    assert_eq!((s, &d["status"]), (StatusCode::OK, &json!("DECLINED")), "{d}");
    let (s, b) = app.post("carol", &format!("/accounts/{id}/invitations/carol/accept"), &json!({})).await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::CONFLICT, Some("invitation_declined")), "{b}");
    assert_eq!(reach(&app, "carol", &id, &op, &tr, &to_number).await, stranger, "carol after declining");
    let acc = app.account("alice", &id).await;
    assert_eq!((&acc["holders"], &acc["invited"]), (&json!(["alice", "bob"]), &json!([])));
    app.stop().await;
}

/// A holder may withdraw a pending invitation (someone who does not hold the account may not), and
/// a withdrawn invitation cannot be accepted.
#[tokio::test]
async fn a_holder_revokes_a_pending_invitation_and_it_can_no_longer_be_accepted() {
    let app = spawn().await;
    let joint = app.open_with("alice", json!({"type": "joint", "currency": "USD", "holders": ["dave", "alice"]})).await;
    let id = joint["id"].as_str().unwrap();
    for who in ["mallory", "dave", "admin"] {
        let (s, b, _) = app.call(who, Method::DELETE, &format!("/accounts/{id}/invitations/dave"), None, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{who}: {b}");
    }
    let (s, b, _) = app.call("alice", Method::DELETE, &format!("/accounts/{id}/invitations/erin"), None, None).await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::NOT_FOUND, Some("invitation_not_found")), "{b}");
    let (s, r, _) = app.call("alice", Method::DELETE, &format!("/accounts/{id}/invitations/dave"), None, None).await;
    assert_eq!((s, &r["status"]), (StatusCode::OK, &json!("REVOKED")), "{r}");
    assert_eq!(app.get("dave", "/me/invitations").await.1, json!([]));
    let (s, b) = app.post("dave", &format!("/accounts/{id}/invitations/dave/accept"), &json!({})).await;
    assert_eq!((s, b["code"].as_str()), (StatusCode::CONFLICT, Some("invitation_revoked")), "{b}");
    assert_eq!(app.get("dave", &format!("/accounts/{id}")).await.0, StatusCode::NOT_FOUND);
    let acc = app.account("alice", id).await;
    assert_eq!((&acc["holders"], &acc["invited"]), (&json!(["alice"]), &json!([])));
    // Ids that cannot exist name nothing.
    for path in ["/accounts/%C3%A9t%C3%A9/invitations/dave/accept", &format!("/accounts/{id}/invitations/%C3%A9/accept")] {
        let (s, _) = app.post("dave", path, &json!({})).await;
        assert!(s == StatusCode::NOT_FOUND || s == StatusCode::FORBIDDEN, "{path}: {s}");
    }
    app.stop().await;
}

/// Joint accounts opened before invitations named their co-holders without asking them: the upgrade
/// (migration 20261212000001, run here again on rows written the old way) leaves each such account
/// its opener's alone and gives every other co-holder a pending invitation; no other account changes.
#[tokio::test]
async fn the_upgrade_turns_co_holders_named_without_consent_into_pending_invitations() {
    let app = spawn().await;
    let joint = app.open_with("alice", json!({"type": "joint", "currency": "BRL", "holders": ["alice", "bob", "carol"]})).await;
    let id = joint["id"].as_str().unwrap();
    let accepted = app.open_with("dave", json!({"type": "joint", "currency": "BRL", "holders": ["dave", "erin"]})).await;
    let solo = app.open("frank").await;
    let pool = sqlx::MySqlPool::connect(&app.db_url).await.unwrap();
    // As the old code wrote a joint account: every named user a holder, no invitation.
    sqlx::query("DELETE FROM account_invitations").execute(&pool).await.unwrap();
    for user in ["bob", "carol"] {
        sqlx::query("INSERT INTO account_holders (account_id, user_id) VALUES (?, ?)").bind(id).bind(user).execute(&pool).await.unwrap();
    }
    sqlx::query("INSERT INTO account_holders (account_id, user_id) VALUES (?, 'erin')").bind(accepted["id"].as_str().unwrap()).execute(&pool).await.unwrap();
    assert_eq!(app.get("bob", &format!("/accounts/{id}")).await.0, StatusCode::OK, "the old way: bob holds it unasked");
    let before: Vec<(String, String)> = sqlx::query_as("SELECT account_id, user_id FROM account_holders ORDER BY account_id, user_id").fetch_all(&pool).await.unwrap();

    let migration = include_str!("../../migrations/20261212000001_account_invitations.sql");
    for statement in migration.split(';') {
        let sql: String = statement.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
        if sql.trim_start().starts_with("INSERT") || sql.trim_start().starts_with("DELETE") {
            sqlx::query(&sql).execute(&pool).await.unwrap();
        }
    }

    for (user, account) in [("bob", id), ("carol", id), ("erin", accepted["id"].as_str().unwrap())] {
        assert_eq!(app.get(user, &format!("/accounts/{account}")).await.0, StatusCode::NOT_FOUND, "{user}");
        let (_, invitations) = app.get(user, "/me/invitations").await;
        let invitations = invitations.as_array().unwrap().clone();
        assert_eq!(invitations.len(), 1, "{user}: {invitations:?}");
        assert_eq!((&invitations[0]["account_id"], &invitations[0]["status"]), (&json!(account), &json!("PENDING")));
    }
    let acc = app.account("alice", id).await;
    assert_eq!((&acc["holders"], &acc["invited"]), (&json!(["alice"]), &json!(["bob", "carol"])));
    assert_eq!(app.account("frank", solo["id"].as_str().unwrap()).await["holders"], json!(["frank"]), "individual accounts are untouched");
    let after: Vec<(String, String)> = sqlx::query_as("SELECT account_id, user_id FROM account_holders ORDER BY account_id, user_id").fetch_all(&pool).await.unwrap();
    let removed: Vec<&(String, String)> = before.iter().filter(|r| !after.contains(r)).collect();
    assert_eq!(removed.len(), 3, "only the three unasked co-holders leave: {removed:?}");
    assert!(after.iter().all(|r| before.contains(r)));
    // And they join by accepting, like any invitee.
    let (s, acc) = app.post("bob", &format!("/accounts/{id}/invitations/bob/accept"), &json!({})).await;
    assert_eq!((s, &acc["holders"]), (StatusCode::OK, &json!(["alice", "bob"])), "{acc}");
    pool.close().await;
    app.stop().await;
}
