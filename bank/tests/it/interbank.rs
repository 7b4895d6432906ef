//! Transfers between banks: real bank processes (in-process servers, each with its own database),
//! talking over HTTP with signed requests.

use std::time::{Duration, Instant};

use bank::rules::interbank_auth::{BankKeyPair, Request, new_nonce};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{TestApp, poll, spawn_network};

/// Opens a BRL account for `user` at `bank` with `amount` deposited; returns (id, number).
pub(crate) async fn funded(bank: &TestApp, user: &str, amount: &str) -> (String, String) {
    let account = bank.open(user).await;
    let id = account["id"].as_str().unwrap().to_string();
    if amount != "0.00" {
        bank.fund(user, &id, amount).await;
    }
    (id, account["number"].as_str().unwrap().to_string())
}

/// (available, held) of an account.
pub(crate) async fn balance(bank: &TestApp, user: &str, id: &str) -> (Decimal, Decimal) {
    let a = bank.account(user, id).await;
    (a["available"].as_str().unwrap().parse().unwrap(), a["held"].as_str().unwrap().parse().unwrap())
}

pub(crate) fn d(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// Waits until the transfer is decided (SETTLED or FAILED) at the bank that took it.
pub(crate) async fn decided(bank: &TestApp, user: &str, id: &str) -> Value {
    poll(|| async {
        let (s, b) = bank.get(user, &format!("/transfers/{id}")).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        (b["status"] == "SETTLED" || b["status"] == "FAILED").then_some(b)
    })
    .await
}

/// Waits until every leg of every transfer the banks coordinate has acknowledged the decision and
/// no leg is left prepared (the log says COMMITTED / ABORTED everywhere).
pub(crate) async fn quiet(banks: &[TestApp]) {
    for b in banks {
        let pool = sqlx::MySqlPool::connect(&b.db_url).await.unwrap();
        poll(|| async {
            let open: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM interbank_coordinator WHERE status NOT IN ('COMMITTED', 'ABORTED')").fetch_one(&pool).await.unwrap();
            let prepared: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM interbank_participants WHERE status = 'PREPARED'").fetch_one(&pool).await.unwrap();
            (open == 0 && prepared == 0).then_some(())
        })
        .await;
        pool.close().await;
    }
}

/// Every bank's clearing positions, from the admin API: (bank, peer, currency) → balance.
pub(crate) async fn clearing(banks: &[TestApp]) -> Vec<(String, String, Decimal)> {
    let mut all = Vec::new();
    for b in banks {
        let (s, body) = b.get("admin", "/admin/clearing").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        for p in body.as_array().unwrap() {
            all.push((b.config.code.clone(), p["peer"].as_str().unwrap().to_string(), p["balance"].as_str().unwrap().parse().unwrap()));
        }
    }
    all
}

pub(crate) fn nets_to_zero(positions: &[(String, String, Decimal)]) -> bool {
    let of = |a: &str, b: &str| positions.iter().filter(|(x, y, _)| x == a && y == b).map(|p| p.2).sum::<Decimal>();
    positions.iter().all(|(a, b, _)| (of(a, b) + of(b, a)).is_zero()) && positions.iter().map(|p| p.2).sum::<Decimal>().is_zero()
}

#[tokio::test]
async fn a_transfer_to_another_bank_commits_on_both_and_clears() {
    let banks = spawn_network(&["001", "002"]).await;
    let (a, b) = (&banks[0], &banks[1]);
    let (alice, _) = funded(a, "alice", "100.00").await;
    let (bob, bob_number) = funded(b, "bob", "0.00").await;

    let (s, t) =
        a.transfer("alice", &json!({"kind": "instant", "from_account": alice, "to": {"bank": "002", "account_number": bob_number}, "amount": "40.00"})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    assert_eq!(t["status"], "PROCESSING");
    assert_eq!(t["sources"][0]["bank"], "001");
    let id = t["id"].as_str().unwrap();
    let done = decided(a, "alice", id).await;
    assert_eq!(done["status"], "SETTLED", "{done}");
    quiet(&banks).await;

    assert_eq!(balance(a, "alice", &alice).await, (d("60.00"), d("0")));
    assert_eq!(balance(b, "bob", &bob).await, (d("40.00"), d("0")));
    let statement = b.statement("bob", &bob).await;
    assert!(statement.iter().any(|e| e["kind"] == "interbank_credit" && e["reference"] == id), "{statement:?}");
    let positions = clearing(&banks).await;
    assert!(positions.contains(&("001".into(), "002".into(), d("40.00"))), "{positions:?}");
    assert!(nets_to_zero(&positions), "{positions:?}");

    // Unknown recipient at the other bank, unknown bank, not enough money: refused at once.
    let nobody = bank::rules::account_number::AccountNumber::internal(55_555_555).display();
    let (s, e) =
        a.transfer("alice", &json!({"kind": "instant", "from_account": alice, "to": {"bank": "002", "account_number": nobody}, "amount": "1.00"})).await;
    assert_eq!((s, e["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_account")), "{e}");
    let (s, e) =
        a.transfer("alice", &json!({"kind": "instant", "from_account": alice, "to": {"bank": "009", "account_number": bob_number}, "amount": "1.00"})).await;
    assert_eq!((s, e["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("unknown_bank")), "{e}");
    let (s, e) =
        a.transfer("alice", &json!({"kind": "instant", "from_account": alice, "to": {"bank": "002", "account_number": bob_number}, "amount": "60.01"})).await;
    assert_eq!((s, e["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("insufficient_funds")), "{e}");
    // Both forms at once is a clear 422.
    let (s, e) = a
        .transfer("alice", &json!({"kind": "instant", "from_account": alice, "amount": "1.00", "sources": [{"bank": "001", "account_id": alice, "amount": "1.00"}], "to": {"bank": "002", "account_number": bob_number}}))
        .await;
    assert_eq!((s, e["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("sources")), "{e}");
    assert_eq!(balance(a, "alice", &alice).await, (d("60.00"), d("0")));
}

#[tokio::test]
async fn two_spends_of_one_balance_through_two_banks_commit_once() {
    let banks = spawn_network(&["001", "002"]).await;
    let (a, b) = (&banks[0], &banks[1]);
    let (alice, _) = funded(a, "alice", "100.00").await;
    let (_, alice_at_b) = funded(b, "alice", "0.00").await;
    let (_, carol_number) = funded(b, "carol", "0.00").await;
    for round in 0..5 {
        // The same 100.00 spent twice at once: once at bank 001 (its own account), once from bank 002
        // (naming the account at 001 as a source).
        let at_a = json!({"kind": "instant", "from_account": alice, "to": {"bank": "002", "account_number": alice_at_b}, "amount": "80.00"});
        let at_b = json!({"kind": "instant", "sources": [{"bank": "001", "account_id": alice, "amount": "80.00"}], "to": {"bank": "002", "account_number": carol_number}});
        let (one, two) = tokio::join!(a.transfer("alice", &at_a), b.transfer("alice", &at_b));
        let mut settled = 0;
        for ((s, t), bank) in [(one, a), (two, b)] {
            if s == StatusCode::ACCEPTED {
                let done = decided(bank, "alice", t["id"].as_str().unwrap()).await;
                if done["status"] == "SETTLED" {
                    settled += 1;
                } else {
                    assert_eq!(done["reason"], "insufficient_funds", "{done}");
                }
            } else {
                assert_eq!((s, t["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("insufficient_funds")), "{t}");
            }
        }
        assert_eq!(settled, 1, "round {round}: exactly one of the two spends commits");
        quiet(&banks).await;
        let (available, held) = balance(a, "alice", &alice).await;
        assert_eq!((available, held), (d("20.00"), d("0")), "round {round}");
        a.fund("alice", &alice, "80.00").await;
    }
    assert!(nets_to_zero(&clearing(&banks).await));
}

#[tokio::test]
async fn many_to_one_across_three_banks_commits_all_or_nothing() {
    let banks = spawn_network(&["001", "002", "003"]).await;
    let (x, y, z) = (&banks[0], &banks[1], &banks[2]);
    let (a1, _) = funded(x, "dana", "10.00").await;
    let (a2, _) = funded(y, "dana", "20.00").await;
    let (a3, _) = funded(z, "dana", "5.00").await;
    let (dest, dest_number) = funded(z, "erin", "0.00").await;
    let sources = |second: &str| json!([{"bank": "001", "account_id": a1, "amount": "10.00"}, {"bank": "002", "account_id": a2, "amount": second}, {"bank": "003", "account_id": a3, "amount": "5.00"}]);

    // One source short of funds (asks 20.01 of 20.00): nothing moves anywhere.
    let (s, t) = y.transfer("dana", &json!({"kind": "instant", "sources": sources("20.01"), "to": {"bank": "003", "account_number": dest_number}})).await;
    match s {
        StatusCode::ACCEPTED => assert_eq!(decided(y, "dana", t["id"].as_str().unwrap()).await["status"], "FAILED"),
        _ => assert_eq!(t["code"], "insufficient_funds", "{t}"),
    }
    quiet(&banks).await;
    assert_eq!(balance(x, "dana", &a1).await, (d("10.00"), d("0")));
    assert_eq!(balance(y, "dana", &a2).await, (d("20.00"), d("0")));
    assert_eq!(balance(z, "dana", &a3).await, (d("5.00"), d("0")));
    assert_eq!(balance(z, "erin", &dest).await, (d("0"), d("0")));

    // Started at bank 001 this time, every source able to pay: all three debited, 35.00 credited.
    let (s, t) = x.transfer("dana", &json!({"kind": "instant", "sources": sources("20.00"), "to": {"bank": "003", "account_number": dest_number}})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    assert_eq!(t["amount"], "35.00");
    assert_eq!(decided(x, "dana", t["id"].as_str().unwrap()).await["status"], "SETTLED");
    quiet(&banks).await;
    for (bank, id) in [(x, &a1), (y, &a2), (z, &a3)] {
        assert_eq!(balance(bank, "dana", id).await, (d("0"), d("0")));
    }
    assert_eq!(balance(z, "erin", &dest).await, (d("35.00"), d("0")));
    let positions = clearing(&banks).await;
    assert!(nets_to_zero(&positions), "{positions:?}");

    // A source the caller does not hold: refused by its bank, nothing moves.
    let (frank, _) = funded(y, "frank", "50.00").await;
    let (s, t) = x
        .transfer("dana", &json!({"kind": "instant", "sources": [{"bank": "002", "account_id": frank, "amount": "50.00"}], "to": {"bank": "003", "account_number": dest_number}}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    let done = decided(x, "dana", t["id"].as_str().unwrap()).await;
    assert_eq!((done["status"].as_str(), done["reason"].as_str()), (Some("FAILED"), Some("unknown_account")), "{done}");
    quiet(&banks).await;
    assert_eq!(balance(y, "frank", &frank).await, (d("50.00"), d("0")));
}

/// Sends a request to `bank`'s /interbank API as `signer` would (or unsigned).
pub(crate) async fn raw(bank: &TestApp, method: Method, path: &str, body: &Value, sign: Option<(&BankKeyPair, i64, String)>) -> (StatusCode, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let mut req = bank.http.request(method.clone(), format!("{}{path}", bank.base_url)).header("content-type", "application/json").body(bytes.clone());
    if let Some((key, ts, nonce)) = sign {
        let creds = key.sign(&Request { method: method.as_str(), path, body: &bytes }, ts, &nonce).unwrap();
        for (h, v) in creds.headers() {
            req = req.header(h, v);
        }
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn forged_unsigned_stale_and_replayed_bank_requests_are_refused() {
    let banks = spawn_network(&["001", "002"]).await;
    let (a, b) = (&banks[0], &banks[1]);
    let (alice, _) = funded(a, "alice", "100.00").await;
    let tx = Uuid::now_v7().to_string();
    // A prepare that would hold 90.00 of alice's at bank 001, "from" bank 002.
    let prepare = json!({"tx_id": tx, "leg_index": 0, "currency": "BRL",
        "leg": {"bank": "001", "account": alice, "side": "Debit", "amount": "90.00"}, "counterparts": [["002", "90.00"]], "initiator": "alice"});
    let path = format!("/interbank/tx/{tx}/prepare");
    let now = bank::interbank::auth::unix_now();
    let b_key = b.config.interbank.key.clone();
    let forger = BankKeyPair::generate("002");

    for (what, sign, code) in [
        ("unsigned", None, "unsigned"),
        ("forged", Some((&forger, now, new_nonce())), "bad_signature"),
        ("stale", Some((&b_key, now - 120, new_nonce())), "stale"),
        ("from the future", Some((&b_key, now + 120, new_nonce())), "stale"),
    ] {
        let (s, e) = raw(a, Method::POST, &path, &prepare, sign).await;
        assert_eq!((s, e["code"].as_str()), (StatusCode::UNAUTHORIZED, Some(code)), "{what}: {e}");
    }
    // A signed request whose body was changed after signing.
    let nonce = new_nonce();
    let creds = b_key.sign(&Request { method: "POST", path: &path, body: &serde_json::to_vec(&prepare).unwrap() }, now, &nonce).unwrap();
    let mut tampered = prepare.clone();
    tampered["leg"]["amount"] = json!("99.00");
    let mut req = a.http.post(format!("{}{path}", a.base_url)).body(serde_json::to_vec(&tampered).unwrap());
    for (h, v) in creds.headers() {
        req = req.header(h, v);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(balance(a, "alice", &alice).await, (d("100.00"), d("0")), "nothing was held by a refused request");

    // A genuine request is accepted once; the same bytes again are a replay.
    let nonce = new_nonce();
    let (s, v) = raw(a, Method::POST, &path, &prepare, Some((&b_key, now, nonce.clone()))).await;
    assert_eq!((s, v["vote"].as_str()), (StatusCode::OK, Some("READY")), "{v}");
    let (s, e) = raw(a, Method::POST, &path, &prepare, Some((&b_key, now, nonce))).await;
    assert_eq!((s, e["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("replayed")), "{e}");
    assert_eq!(balance(a, "alice", &alice).await, (d("10.00"), d("90.00")), "held once");
    // Bank 002 never logged tx: when bank 001's leg asks, the answer is abort, and the hold goes.
    quiet(&banks).await;
    assert_eq!(balance(a, "alice", &alice).await, (d("100.00"), d("0")), "presumed abort released the hold");
    // A customer token does not open the bank API.
    let (s, _, _) = a.call("alice", Method::GET, &format!("/interbank/tx/{tx}?leg=0"), None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn consolidated_balances_add_every_bank_and_say_when_one_is_missing() {
    let mut banks = spawn_network(&["001", "002", "003"]).await;
    funded(&banks[0], "gabi", "10.00").await;
    funded(&banks[1], "gabi", "20.50").await;
    funded(&banks[2], "gabi", "0.01").await;
    for b in &banks {
        let (s, body) = b.get("gabi", "/me/balances").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!(body["partial"], false, "{body}");
        assert_eq!(body["accounts"].as_array().unwrap().len(), 3, "{body}");
        assert_eq!(body["totals"], json!([{"currency": "BRL", "available": "30.51", "held": "0.00"}]), "{body}");
    }
    let (s, body) = banks[0].get("nobody", "/me/balances").await;
    assert_eq!((s, body["totals"].clone()), (StatusCode::OK, json!([])));

    let stopped = banks.pop().unwrap();
    stopped.stop().await;
    let started = Instant::now();
    let (s, body) = banks[0].get("gabi", "/me/balances").await;
    let took = started.elapsed();
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!((body["partial"].clone(), body["unavailable"].clone()), (json!(true), json!(["003"])), "{body}");
    assert_eq!(body["totals"][0]["available"], "30.50");
    assert!(took < Duration::from_millis(2500), "answered within the peer timeout: {took:?}");
}

#[tokio::test]
async fn transfers_finish_after_the_coordinator_restarts_and_a_peer_is_away() {
    let mut banks = spawn_network(&["001", "002"]).await;
    let (alice, _) = funded(&banks[0], "alice", "100.00").await;
    let (bob, bob_number) = funded(&banks[1], "bob", "0.00").await;
    // Ten transfers in flight, then the coordinator restarts at once.
    let mut ids = Vec::new();
    for _ in 0..10 {
        let (s, t) = banks[0]
            .transfer("alice", &json!({"kind": "instant", "from_account": alice, "to": {"bank": "002", "account_number": bob_number}, "amount": "1.00"}))
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{t}");
        ids.push(t["id"].as_str().unwrap().to_string());
    }
    banks[0].restart().await;
    // The peer goes away for a while: prepares and commits to it fail, then succeed when it is back.
    let peer = banks.pop().unwrap();
    let peer_config = peer.config.clone();
    let mut peer = peer;
    peer.shutdown_only().await;
    for _ in 0..5 {
        let (s, t) = banks[0]
            .transfer("alice", &json!({"kind": "instant", "from_account": alice, "to": {"bank": "002", "account_number": bob_number}, "amount": "1.00"}))
            .await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "the recipient check needs the peer: {t}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    peer.start_again().await;
    assert_eq!(peer.config.common.http_port, peer_config.common.http_port);
    banks.push(peer);
    let mut settled = 0;
    for id in &ids {
        let t = decided(&banks[0], "alice", id).await;
        if t["status"] == "SETTLED" {
            settled += 1;
        }
    }
    quiet(&banks).await;
    let (available, held) = balance(&banks[0], "alice", &alice).await;
    let (received, _) = balance(&banks[1], "bob", &bob).await;
    assert_eq!(held, d("0"));
    assert_eq!(available + received, d("100.00"), "money is conserved");
    assert_eq!(received, Decimal::from(settled), "bob got exactly the settled ones");
    assert!(nets_to_zero(&clearing(&banks).await));
}

#[tokio::test]
async fn a_business_hours_transfer_to_another_bank_waits_for_the_opening_and_can_be_canceled() {
    let banks = spawn_network(&["001", "002"]).await;
    let (a, b) = (&banks[0], &banks[1]);
    let (alice, _) = funded(a, "alice", "100.00").await;
    let (bob, bob_number) = funded(b, "bob", "0.00").await;
    // Saturday morning at bank 001: outside business hours.
    a.clock.set(crate::common::local("2026-12-05 10:00:00"));
    let body = json!({"kind": "business_hours", "from_account": alice, "to": {"bank": "002", "account_number": bob_number}, "amount": "30.00"});
    let (s, kept) = a.transfer("alice", &body).await;
    assert_eq!((s, kept["status"].as_str()), (StatusCode::ACCEPTED, Some("SCHEDULED")), "{kept}");
    let (s, canceled) = a.transfer("alice", &body).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{canceled}");
    assert_eq!(balance(a, "alice", &alice).await, (d("40.00"), d("60.00")), "both held at once");

    let (s, c, _) = a.call("alice", Method::DELETE, &format!("/transfers/{}", canceled["id"].as_str().unwrap()), None, None).await;
    assert_eq!((s, c["status"].as_str()), (StatusCode::OK, Some("CANCELED")), "{c}");
    assert_eq!(balance(a, "alice", &alice).await, (d("70.00"), d("30.00")));
    // One paid only from another bank: its maker cancels it here, where no paying account is
    // (this was a 404: only holders of a local paying account could).
    let (alice_at_b, _) = funded(b, "alice", "10.00").await;
    let remote = json!({"kind": "business_hours", "sources": [{"bank": "002", "account_id": alice_at_b, "amount": "5.00"}],
                        "to": {"bank": "001", "account_number": a.open("carol").await["number"]}});
    let (s, scheduled) = a.transfer("alice", &remote).await;
    assert_eq!((s, scheduled["status"].as_str()), (StatusCode::ACCEPTED, Some("SCHEDULED")), "{scheduled}");
    let path = format!("/transfers/{}", scheduled["id"].as_str().unwrap());
    assert_eq!(a.call("mallory", Method::DELETE, &path, None, None).await.0, StatusCode::NOT_FOUND);
    let (s, c, _) = a.call("alice", Method::DELETE, &path, None, None).await;
    assert_eq!((s, c["status"].as_str()), (StatusCode::OK, Some("CANCELED")), "{c}");

    // Monday's opening: the scheduler starts the two-phase commit; the hold becomes the leg's hold.
    a.clock.set(crate::common::local("2026-12-07 08:00:01"));
    let done = decided(a, "alice", kept["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "SETTLED", "{done}");
    quiet(&banks).await;
    assert_eq!(balance(a, "alice", &alice).await, (d("70.00"), d("0")));
    assert_eq!(balance(b, "bob", &bob).await, (d("30.00"), d("0")));
    let history: Vec<&str> = done["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["SCHEDULED", "PROCESSING", "SETTLED"]);
}

#[tokio::test]
async fn the_bank_holding_a_source_applies_its_own_limits_whoever_coordinates() {
    let mut banks = spawn_network(&["001", "002"]).await;
    let (_, carol_number) = funded(&banks[0], "carol", "0.00").await;
    let (dana_a, _) = funded(&banks[0], "dana", "5000.00").await;
    let (dana_b, _) = funded(&banks[1], "dana", "5000.00").await;
    let biz = banks[1].open_with("dana", json!({"type": "business", "currency": "BRL", "document": "11.222.333/0001-81"})).await;
    let biz = biz["id"].as_str().unwrap().to_string();
    banks[1].fund("dana", &biz, "5000.00").await;
    let to = json!({"bank": "001", "account_number": carol_number});
    // Transfers taken by bank 001 (noon there) whose sources are at bank 002.
    async fn send(coordinator: &TestApp, sources: Value, to: &Value) -> Value {
        let (s, t) = coordinator.transfer("dana", &json!({"kind": "instant", "sources": sources, "to": to})).await;
        assert_eq!(s, StatusCode::ACCEPTED, "{t}");
        decided(coordinator, "dana", t["id"].as_str().unwrap()).await
    }
    let refused = |t: &Value| (t["status"].as_str() == Some("FAILED") && t["reason"].as_str() == Some("limit_exceeded"), t.to_string());

    // Night at bank 002: its individual account moves at most its night limit (1000.00) per
    // instant transfer, alone or beside a source at the coordinating bank.
    banks[1].clock.set(crate::common::local("2026-12-02 22:00:00"));
    for sources in [
        json!([{"bank": "002", "account_id": dana_b, "amount": "1000.01"}]),
        json!([{"bank": "001", "account_id": dana_a, "amount": "10.00"}, {"bank": "002", "account_id": dana_b, "amount": "1500.00"}]),
    ] {
        let t = send(&banks[0], sources, &to).await;
        let (ok, text) = refused(&t);
        assert!(ok, "refused by the bank holding the account: {text}");
    }
    quiet(&banks).await;
    assert_eq!(balance(&banks[1], "dana", &dana_b).await, (d("5000.00"), d("0")), "nothing held or moved at 002");
    assert_eq!(balance(&banks[0], "dana", &dana_a).await, (d("5000.00"), d("0")), "nothing moved at 001 either");
    // Within the limit, and from a business account (no night limit), it goes through.
    assert_eq!(send(&banks[0], json!([{"bank": "002", "account_id": dana_b, "amount": "1000.00"}]), &to).await["status"], "SETTLED");
    assert_eq!(send(&banks[0], json!([{"bank": "002", "account_id": biz, "amount": "3000.00"}]), &to).await["status"], "SETTLED");

    // Daytime at 002, but its own BANK_MAX_AMOUNT is lower than 001's: 002's applies.
    banks[1].config.max_amount = d("100.00");
    banks[1].restart().await;
    banks[1].clock.set(crate::common::local(crate::common::WEDNESDAY_NOON));
    let t = send(&banks[0], json!([{"bank": "002", "account_id": biz, "amount": "100.01"}]), &to).await;
    let (ok, text) = refused(&t);
    assert!(ok, "over the holding bank's max_amount: {text}");
    assert_eq!(send(&banks[0], json!([{"bank": "002", "account_id": biz, "amount": "100.00"}]), &to).await["status"], "SETTLED");
    quiet(&banks).await;
    assert_eq!(balance(&banks[1], "dana", &dana_b).await, (d("4000.00"), d("0")));
    assert_eq!(balance(&banks[1], "dana", &biz).await, (d("1900.00"), d("0")));
    assert!(nets_to_zero(&clearing(&banks).await));
}

/// The status and `coordinator_lost_at` of leg `leg` of `tx` at `bank`.
async fn leg_record(bank: &TestApp, tx: &str, leg: i32) -> (String, bool) {
    let pool = sqlx::MySqlPool::connect(&bank.db_url).await.unwrap();
    let row: (String, Option<chrono::DateTime<chrono::Utc>>) =
        sqlx::query_as("SELECT status, coordinator_lost_at FROM interbank_participants WHERE tx_id = ? AND leg_index = ?")
            .bind(tx)
            .bind(leg)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    (row.0, row.1.is_some())
}

#[tokio::test]
async fn a_leg_of_a_transfer_its_coordinator_lost_stays_in_doubt_but_a_never_issued_one_is_presumed_aborted() {
    use bank::rules::{
        interbank::Coordinator,
        interbank_auth::{Directory, DirectoryEntry},
    };
    let banks = spawn_network(&["001", "002"]).await;
    let (a, b) = (&banks[0], &banks[1]);
    let (_, carol_number) = funded(a, "carol", "0.00").await;
    let (dana, _) = funded(b, "dana", "100.00").await;

    // Bank 001 takes a transfer paid from bank 002 while it cannot reach 002: logged, not delivered.
    let peers = a.peers.as_ref().unwrap();
    let real = peers.directory();
    let cut = Directory::new(
        real.banks().into_iter().map(|e| if e.code == "002" { DirectoryEntry { url: "http://127.0.0.1:9".into(), ..e.clone() } } else { e.clone() }),
    );
    peers.set_directory(cut);
    let (s, t) = a
        .transfer("dana", &json!({"kind": "instant", "sources": [{"bank": "002", "account_id": dana, "amount": "60.00"}], "to": {"bank": "001", "account_number": carol_number}}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{t}");
    let tx = t["id"].as_str().unwrap().to_string();
    // The prepare 001 sends 002's leg; then 001 loses its record of the transfer (a restore from a
    // backup taken before it) — and the prepare reaches 002 (it had left just before).
    let pool = sqlx::MySqlPool::connect(&a.db_url).await.unwrap();
    let state: String = sqlx::query_scalar("SELECT state FROM interbank_coordinator WHERE tx_id = ?").bind(&tx).fetch_one(&pool).await.unwrap();
    let prepare = serde_json::from_str::<Coordinator>(&state).unwrap().transfer.prepare_request(0);
    sqlx::query("DELETE FROM interbank_coordinator WHERE tx_id = ?").bind(&tx).execute(&pool).await.unwrap();
    pool.close().await;
    peers.set_directory(real);
    let key = &a.config.interbank.key;
    let sign = || Some((key, bank::interbank::auth::unix_now(), new_nonce()));
    let (s, v) = raw(b, Method::POST, &format!("/interbank/tx/{tx}/prepare"), &serde_json::to_value(&prepare).unwrap(), sign()).await;
    assert_eq!((s, v["vote"].as_str()), (StatusCode::OK, Some("READY")), "{v}");
    assert_eq!(balance(b, "dana", &dana).await, (d("40.00"), d("60.00")));

    // A never-issued id (not 001's mark), prepared the same way: presumed aborted when it asks.
    let never = Uuid::now_v7().to_string();
    let mut other = prepare.clone();
    other.tx_id = never.clone();
    other.leg.amount = d("30.00");
    other.counterparts = vec![("001".into(), d("30.00"))];
    let (s, v) = raw(b, Method::POST, &format!("/interbank/tx/{never}/prepare"), &serde_json::to_value(&other).unwrap(), sign()).await;
    assert_eq!((s, v["vote"].as_str()), (StatusCode::OK, Some("READY")), "{v}");
    assert_eq!(balance(b, "dana", &dana).await, (d("10.00"), d("90.00")));

    // 002's legs ask 001 after their patience (0.5 s here), again and again.
    poll(|| async { (leg_record(b, &never, 0).await.0 == "ABORTED").then_some(()) }).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(balance(b, "dana", &dana).await, (d("40.00"), d("60.00")), "only the never-issued transfer's hold was released");
    assert_eq!(leg_record(b, &tx, 0).await, ("PREPARED".to_string(), true), "the lost transfer's leg stays in doubt, marked for an operator");
    assert_eq!(leg_record(b, &never, 0).await, ("ABORTED".to_string(), false));

    // The coordinator's answers as the participant gets them.
    let b_key = &b.config.interbank.key;
    let ask = |id: String| async move { raw(a, Method::GET, &format!("/interbank/tx/{id}?leg=0"), &Value::Null, Some((b_key, bank::interbank::auth::unix_now(), new_nonce()))).await };
    let (s, e) = ask(tx.clone()).await;
    assert_eq!((s, e["code"].as_str()), (StatusCode::GONE, Some("transfer_lost")), "{e}");
    let (s, v) = ask(never.clone()).await;
    assert_eq!((s, v["decision"].as_str()), (StatusCode::OK, Some("ABORT")), "{v}");

    // The operator finds no leg committed (001's credit is still pending) and aborts it
    // (`bank settle-leg`); a leg whose coordinator still decides cannot be settled by hand.
    use bank::{interbank::participant::settle_lost, rules::interbank::Decision};
    let pool = sqlx::MySqlPool::connect(&b.db_url).await.unwrap();
    assert!(settle_lost(&pool, &b.config, &tx, 0, Decision::Abort).await.is_ok());
    assert_eq!(balance(b, "dana", &dana).await, (d("100.00"), d("0")), "released once");
    assert!(settle_lost(&pool, &b.config, &tx, 0, Decision::Abort).await.is_ok(), "idempotent");
    assert!(settle_lost(&pool, &b.config, &tx, 0, Decision::Commit).await.is_err(), "not the other way");
    assert_eq!(balance(b, "dana", &dana).await, (d("100.00"), d("0")));
    pool.close().await;
}
