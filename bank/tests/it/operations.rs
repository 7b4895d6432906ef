//! The per-account operation queue: durable acceptance, exactly-once application in acceptance
//! order, insufficient funds, idempotency, and money conservation under concurrency.

use crate::common;

use std::collections::{BTreeMap, HashMap};

use common::{TestApp, spawn};
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn dec(v: &Value) -> Decimal {
    v.as_str().unwrap().parse().unwrap()
}

/// The available balance after each posting, oldest first, from the statement.
async fn running_available(app: &TestApp, user: &str, id: &str) -> Vec<Decimal> {
    let mut entries = app.statement(user, id).await;
    entries.reverse();
    let mut total = Decimal::ZERO;
    entries.iter().filter(|e| e["bucket"] == "available").map(|e| {
        total += dec(&e["amount"]);
        total
    }).collect()
}

#[tokio::test]
async fn a_hundred_concurrent_withdrawals_of_ten_from_five_hundred_apply_fifty() {
    let app = spawn().await;
    let id = app.open("alice").await["id"].as_str().unwrap().to_string();
    app.fund("alice", &id, "500.00").await;
    let accepted = join_all((0..100).map(|_| app.operate("alice", &id, "withdrawal", "10.00"))).await;
    let mut seqs: Vec<i64> = accepted.iter().map(|a| a["seq"].as_i64().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, (2..=101).collect::<Vec<_>>(), "each accepted operation got its own sequence number");
    let done = join_all(accepted.iter().map(|a| app.settled_operation("alice", a["operation_id"].as_str().unwrap()))).await;
    let applied = done.iter().filter(|o| o["status"] == "APPLIED").count();
    let rejected: Vec<&Value> = done.iter().filter(|o| o["status"] == "REJECTED").collect();
    assert_eq!(applied, 50);
    assert_eq!(rejected.len(), 50);
    assert!(rejected.iter().all(|o| o["reason"] == "insufficient_funds"));
    // Applied in acceptance order: the 50 first accepted are the applied ones.
    let mut by_seq: Vec<&Value> = done.iter().collect();
    by_seq.sort_by_key(|o| o["seq"].as_i64().unwrap());
    assert!(by_seq[..50].iter().all(|o| o["status"] == "APPLIED"));
    assert!(by_seq[0]["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).eq(["QUEUED", "APPLIED"]));
    let account = app.account("alice", &id).await;
    assert_eq!((account["available"].as_str(), account["ledger"].as_str()), (Some("0.00"), Some("0.00")));
    let running = running_available(&app, "alice", &id).await;
    assert!(running.iter().all(|b| *b >= Decimal::ZERO), "never negative: {running:?}");
    assert_eq!(running.len(), 51);
    app.stop().await;
}

#[tokio::test]
async fn the_idempotency_key_replays_the_first_answer_and_refuses_another_body() {
    let app = spawn().await;
    let events = app.watch(sagaway_messaging::topics::BANK_EVENTS);
    let id = app.open("alice").await["id"].as_str().unwrap().to_string();
    let path = format!("/accounts/{id}/operations");
    let body = json!({"type": "deposit", "amount": "12.50"});
    let (s1, first, _) = app.call("alice", Method::POST, &path, Some(&body), Some("k-1")).await;
    assert_eq!(s1, StatusCode::ACCEPTED, "{first}");
    assert_eq!(first["status"], "QUEUED");
    let (s2, again, headers) = app.call("alice", Method::POST, &path, Some(&json!({"amount": 12.5, "type": "deposit"})), Some("k-1")).await;
    assert_eq!((s2, &again), (StatusCode::ACCEPTED, &first));
    assert_eq!(headers.get("idempotent-replayed").unwrap(), "true");
    let (s3, other, _) = app.call("alice", Method::POST, &path, Some(&json!({"type": "deposit", "amount": "13.00"})), Some("k-1")).await;
    assert_eq!((s3, other["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency_key_reused")));
    let (s4, missing, _) = app.call("alice", Method::POST, &path, Some(&body), None).await;
    assert_eq!((s4, missing["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("Idempotency-Key")));
    app.settled_operation("alice", first["operation_id"].as_str().unwrap()).await;
    assert_eq!(app.account("alice", &id).await["available"], "12.50", "one deposit for one key");
    // Each status change is an event on bank.events, keyed by the user.
    let op_id = first["operation_id"].as_str().unwrap();
    let seen = events.wait_for(2, |e| e["id"] == op_id).await;
    assert_eq!(seen.iter().map(|e| e["status"].as_str().unwrap()).collect::<Vec<_>>(), ["QUEUED", "APPLIED"]);
    assert!(seen.iter().all(|e| e["type"] == "operation" && e["account_id"] == id.as_str() && e["at"].is_string()));
    assert!(events.all().iter().filter(|(_, e)| e["id"] == op_id).all(|(k, _)| k.as_deref() == Some("alice")));

    for (body, field) in [
        (json!({"type": "deposit", "amount": "0"}), "amount"),
        (json!({"type": "deposit", "amount": "-5"}), "amount"),
        (json!({"type": "deposit", "amount": "1.005"}), "amount"),
        (json!({"type": "deposit", "amount": "1.23456"}), "amount"),
        (json!({"type": "loan", "amount": "1"}), "type"),
        (json!({"type": "deposit"}), "amount"),
    ] {
        let (s, b) = app.post("alice", &path, &body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body} → {b}");
        assert_eq!(b["field"], field, "{body} → {b}");
    }
    app.stop().await;
}

#[derive(Debug, Clone)]
struct Accepted {
    client: usize,
    account: usize,
    seq: i64,
    id: String,
}

/// 16 clients operate 20 funded accounts at random (deposits, withdrawals, instant transfers) at once.
#[tokio::test]
async fn per_account_order_holds_and_money_is_conserved_under_concurrency() {
    let app = spawn().await;
    let mut ids = Vec::new();
    let mut numbers = Vec::new();
    for _ in 0..20 {
        let a = app.open_with("owner", json!({"type": "business", "currency": "BRL", "document": "11.222.333/0001-81"})).await;
        ids.push(a["id"].as_str().unwrap().to_string());
        numbers.push(a["number"].as_str().unwrap().to_string());
    }
    // Every account starts with money, applied before the clients start. The transfers are
    // instant but deposits wait in the account's queue: with every deposit still queued (a slow
    // consumer on a loaded machine) every transfer was refused and the run proved nothing about
    // them (CI, 2026-12-02).
    let mut funding = Vec::new();
    for (a, id) in ids.iter().enumerate() {
        let r = app.operate("owner", id, "deposit", "100.00").await;
        funding.push(Accepted { client: 16, account: a, seq: r["seq"].as_i64().unwrap(), id: r["operation_id"].as_str().unwrap().into() });
    }
    for f in &funding {
        assert_eq!(app.settled_operation("owner", &f.id).await["status"], "APPLIED");
    }
    let clients = (0..16).map(|client| {
        let (app, ids, numbers) = (&app, &ids, &numbers);
        async move {
            let mut rng = client as u64 * 7919 + 17;
            let mut next = move |m: u64| {
                rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (rng >> 33) % m
            };
            let mut ops = Vec::new();
            let mut transfers = Vec::new();
            for _ in 0..25 {
                let a = next(20) as usize;
                match next(3) {
                    0 | 1 => {
                        let kind = if next(2) == 0 { "deposit" } else { "withdrawal" };
                        let amount = format!("{}.{:02}", 1 + next(50), next(100));
                        let r = app.operate("owner", &ids[a], kind, &amount).await;
                        ops.push(Accepted { client, account: a, seq: r["seq"].as_i64().unwrap(), id: r["operation_id"].as_str().unwrap().into() });
                    }
                    _ => {
                        let b = (a + 1 + next(19) as usize) % 20;
                        let amount = format!("{}.00", 1 + next(30));
                        let (s, t) = app
                            .transfer("owner", &json!({"kind": "instant", "from_account": ids[a], "to": {"bank": "001", "account_number": numbers[b]}, "amount": amount}))
                            .await;
                        match s {
                            StatusCode::CREATED => {
                                assert_eq!(t["status"], "SETTLED");
                                transfers.push((a, b, amount.parse::<Decimal>().unwrap()));
                            }
                            StatusCode::UNPROCESSABLE_ENTITY => assert_eq!(t["code"], "insufficient_funds", "{t}"),
                            other => panic!("transfer answered {other}: {t}"),
                        }
                    }
                }
            }
            (ops, transfers)
        }
    });
    let results = join_all(clients).await;
    let ops: Vec<Accepted> = funding.into_iter().chain(results.iter().flat_map(|(o, _)| o.clone())).collect();
    let transfers: Vec<(usize, usize, Decimal)> = results.iter().flat_map(|(_, t)| t.clone()).collect();

    // Acceptance order: each client's operations on one account got increasing sequence numbers,
    // and each account's numbers are 1..n without gaps.
    for client in 0..=16 {
        let mut last: HashMap<usize, i64> = HashMap::new();
        for op in ops.iter().filter(|o| o.client == client) {
            if let Some(prev) = last.insert(op.account, op.seq) {
                assert!(op.seq > prev, "client {client} account {}: {} after {prev}", op.account, op.seq);
            }
        }
    }
    let mut per_account: BTreeMap<usize, Vec<&Accepted>> = BTreeMap::new();
    for op in &ops {
        per_account.entry(op.account).or_default().push(op);
    }
    for list in per_account.values_mut() {
        list.sort_by_key(|o| o.seq);
        assert!(list.iter().map(|o| o.seq).eq(1..=list.len() as i64));
    }

    // Everything applies; the ledger entries of each account follow its sequence order.
    let done: HashMap<String, Value> =
        join_all(ops.iter().map(|o| app.settled_operation("owner", &o.id))).await.into_iter().map(|o| (o["id"].as_str().unwrap().to_string(), o)).collect();
    let mut expected = vec![Decimal::ZERO; 20];
    let (mut deposits, mut withdrawals) = (Decimal::ZERO, Decimal::ZERO);
    for (a, list) in &per_account {
        let mut statement = app.statement("owner", &ids[*a]).await;
        statement.reverse();
        let applied_order: Vec<&str> = statement.iter().filter(|e| e["kind"] == "deposit" || e["kind"] == "withdrawal").map(|e| e["reference"].as_str().unwrap()).collect();
        let seq_order: Vec<&str> = list.iter().map(|o| o.id.as_str()).filter(|id| done[*id]["status"] == "APPLIED").collect();
        assert_eq!(applied_order, seq_order, "account {a}: ledger order = acceptance order");
        for op in list {
            let o = &done[&op.id];
            let amount = dec(&o["amount"]);
            match (o["type"].as_str().unwrap(), o["status"].as_str().unwrap()) {
                ("deposit", "APPLIED") => {
                    deposits += amount;
                    expected[*a] += amount;
                }
                ("withdrawal", "APPLIED") => {
                    withdrawals += amount;
                    expected[*a] -= amount;
                }
                ("withdrawal", "REJECTED") => assert_eq!(o["reason"], "insufficient_funds"),
                other => panic!("unexpected {other:?}"),
            }
        }
        let running = running_available(&app, "owner", &ids[*a]).await;
        assert!(running.iter().all(|b| *b >= Decimal::ZERO), "account {a} went negative: {running:?}");
    }
    for (a, b, amount) in &transfers {
        expected[*a] -= amount;
        expected[*b] += amount;
    }
    let mut total = Decimal::ZERO;
    for (i, id) in ids.iter().enumerate() {
        let acct = app.account("owner", id).await;
        assert_eq!(dec(&acct["ledger"]), expected[i], "account {i}");
        assert_eq!(dec(&acct["held"]), Decimal::ZERO);
        total += dec(&acct["ledger"]);
    }
    assert_eq!(total, deposits - withdrawals, "Σ deposits − Σ withdrawals = Σ balances");
    assert!(!transfers.is_empty() && ops.len() > 100);
    app.stop().await;
}
