//! The clearing books: every bank's clearing account for every peer and currency exists and moves
//! with every committed leg, so across the banks the positions net to zero per currency; a posting
//! into an account that does not exist aborts its transaction; books written while clearing
//! accounts collided are repaired by the migration.

use std::collections::BTreeMap;

use bank::{
    clock::Clock,
    ledger::{self, CURRENCIES},
    rules::{
        account_number::{AccountNumber, SystemAccount},
        ledger as legs,
    },
};
use futures::StreamExt;
use reqwest::StatusCode;
use rust_decimal::Decimal;
use sagaway_common::config::CommonConfig;
use serde_json::json;
use sqlx::{Connection, MySql, MySqlConnection, migrate::MigrateDatabase};
use uuid::Uuid;

use crate::{
    common::{spawn, spawn_network},
    interbank::{balance, decided, quiet},
};

/// What bank `from` sends bank `to` (indexes 0–2) in every currency: different for every ordered
/// pair, so every position is non-zero (`amount(i, j) − amount(j, i) = 9·(i − j)`).
fn amount(from: usize, to: usize) -> Decimal {
    Decimal::from(10 * (from + 1) + to + 1)
}

#[tokio::test]
async fn transfers_in_every_currency_between_every_pair_of_banks_net_to_zero_per_currency() {
    let banks = spawn_network(&["001", "002", "003"]).await;
    let codes: Vec<String> = banks.iter().map(|b| b.config.code.clone()).collect();
    let opening = Decimal::from(1000);
    // One account of ana's per bank and currency, each funded with 1000.
    let mut accounts: BTreeMap<(usize, &str), (String, String)> = BTreeMap::new();
    for (i, b) in banks.iter().enumerate() {
        for cur in CURRENCIES {
            let a = b.open_with("ana", json!({"type": "individual", "currency": cur, "document": "529.982.247-25"})).await;
            accounts.insert((i, cur), (a["id"].as_str().unwrap().to_string(), a["number"].as_str().unwrap().to_string()));
        }
    }
    futures::future::join_all(accounts.iter().map(|((i, _), (id, _))| banks[*i].fund("ana", id, "1000"))).await;

    // Every ordered pair of banks, every currency: one instant transfer, taken by the paying bank.
    let mut sends = Vec::new();
    for from in 0..banks.len() {
        for to in (0..banks.len()).filter(|t| *t != from) {
            for cur in CURRENCIES {
                sends.push((from, to, *cur));
            }
        }
    }
    let results: Vec<_> = futures::stream::iter(sends.iter().map(|(from, to, cur)| {
        let (bank, source, number) = (&banks[*from], &accounts[&(*from, *cur)].0, &accounts[&(*to, *cur)].1);
        let body = json!({"kind": "instant", "from_account": source, "to": {"bank": codes[*to], "account_number": number}, "amount": amount(*from, *to).to_string()});
        async move {
            let (s, t) = bank.transfer("ana", &body).await;
            assert_eq!(s, StatusCode::ACCEPTED, "{cur} {} → {}: {t}", bank.config.code, body["to"]["bank"]);
            let done = decided(bank, "ana", t["id"].as_str().unwrap()).await;
            assert_eq!(done["status"], "SETTLED", "{cur}: {done}");
        }
    }))
    .buffer_unordered(6)
    .collect()
    .await;
    assert_eq!(results.len(), sends.len());
    quiet(&banks).await;

    // Each customer account moved by exactly what it sent and received.
    for ((i, cur), (id, _)) in &accounts {
        let received: Decimal = (0..banks.len()).filter(|j| j != i).map(|j| amount(j, *i)).sum();
        let sent: Decimal = (0..banks.len()).filter(|j| j != i).map(|j| amount(*i, j)).sum();
        assert_eq!(balance(&banks[*i], "ana", id).await, (opening - sent + received, Decimal::ZERO), "{cur} at {}", codes[*i]);
    }

    // Every bank's position for every peer in every currency is what it owes minus what it is owed,
    // and the two sides of every pair cancel, currency by currency.
    let mut positions: BTreeMap<(String, String, String), Decimal> = BTreeMap::new();
    for b in &banks {
        let (s, body) = b.get("admin", "/admin/clearing").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        for p in body.as_array().unwrap() {
            let key = (b.config.code.clone(), p["peer"].as_str().unwrap().to_string(), p["currency"].as_str().unwrap().to_string());
            *positions.entry(key).or_default() += p["balance"].as_str().unwrap().parse::<Decimal>().unwrap();
        }
    }
    let of = |a: &str, b: &str, cur: &str| positions.get(&(a.to_string(), b.to_string(), cur.to_string())).copied().unwrap_or_default();
    for cur in CURRENCIES {
        for i in 0..banks.len() {
            for j in (0..banks.len()).filter(|j| *j != i) {
                assert_eq!(of(&codes[i], &codes[j], cur), amount(i, j) - amount(j, i), "{cur}: {}'s position for {}: {positions:?}", codes[i], codes[j]);
                assert!((of(&codes[i], &codes[j], cur) + of(&codes[j], &codes[i], cur)).is_zero(), "{cur}: {} and {} do not net", codes[i], codes[j]);
            }
        }
        let total: Decimal = positions.iter().filter(|((_, _, c), _)| c == cur).map(|(_, v)| *v).sum();
        assert!(total.is_zero(), "{cur} nets to {total}");
    }
    assert!(positions.keys().all(|(a, b, _)| a != b), "no bank clears with itself here: {positions:?}");
}

#[tokio::test]
async fn a_posting_into_an_account_that_does_not_exist_aborts_its_transaction() {
    let app = spawn().await;
    let mut conn = MySqlConnection::connect(&app.db_url).await.unwrap();
    let now = app.clock.now();
    let missing = "clearing:009:BRL";
    let mut tx = conn.begin().await.unwrap();
    let locked = ledger::lock(&mut tx, &["cash-BRL", missing]).await;
    assert!(locked.is_err(), "locking a missing ledger account is an error: {locked:?}");
    let posted = ledger::post(&mut tx, "test", "t1", now, &legs::transfer("cash-BRL", missing, Decimal::ONE)).await;
    assert!(posted.is_err(), "a posting into a missing account is an error");
    tx.rollback().await.unwrap();
    // The foreign key refuses the row even written by hand.
    let journal = sqlx::query("INSERT INTO journal (kind, reference, created_at) VALUES ('test', 't2', ?)").bind(now).execute(&mut conn).await.unwrap().last_insert_id();
    let raw = sqlx::query("INSERT INTO postings (journal_id, account_id, bucket, amount) VALUES (?, ?, 'available', 1)").bind(journal).bind(missing).execute(&mut conn).await;
    assert!(raw.is_err(), "postings → accounts has a foreign key");
    let cash: Decimal = sqlx::query_scalar("SELECT available FROM accounts WHERE id = 'cash-BRL'").fetch_one(&mut conn).await.unwrap();
    assert_eq!(cash, Decimal::ZERO, "nothing moved");
    conn.close().await.unwrap();
    app.stop().await;
}

/// The clearing account number the code used to give (`internal(1000 + 10·peer + currency)`).
fn old_number(peer: u32, currency: usize) -> AccountNumber {
    AccountNumber::internal(1_000 + peer * 10 + currency as u32)
}

#[tokio::test]
async fn books_written_while_clearing_accounts_collided_are_repaired_by_the_migration() {
    let name = format!("bank_t_repair_{}", &Uuid::new_v4().simple().to_string()[..12]);
    let url = CommonConfig::local(&name, "unused.").database_url;
    MySql::create_database(&url).await.unwrap();
    let mut conn = MySqlConnection::connect(&url).await.unwrap();
    // The schema as it was before the repair.
    let before = sqlx::migrate::Migrator {
        migrations: std::borrow::Cow::Owned(bank::MIGRATOR.iter().filter(|m| m.version < 20261211000001).cloned().collect()),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.run(&mut conn).await.unwrap();
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    let now = chrono::Utc::now();
    ledger::ensure_bank_accounts(&pool, now).await.unwrap();

    // Every (peer, currency) of peers 001–003 whose old number was the next currency's: the next
    // currency's clearing account was never opened (INSERT IGNORE on the number), its postings were.
    let mut victims = Vec::new();
    for peer in 1..=3u32 {
        for (cur, code) in CURRENCIES.iter().enumerate() {
            let id = format!("clearing:{peer:03}:{code}");
            let inserted = sqlx::query("INSERT IGNORE INTO accounts (id, number, kind, currency, owner_user, created_at) VALUES (?, ?, 'system', ?, 'bank', ?)")
                .bind(&id)
                .bind(old_number(peer, cur).digits())
                .bind(*code)
                .bind(now)
                .execute(&mut conn)
                .await
                .unwrap()
                .rows_affected();
            // A committed debit of 7 into the clearing account, as the old code wrote it: the
            // postings always, the balance only where the account row was there.
            let journal = sqlx::query("INSERT INTO journal (kind, reference, created_at) VALUES ('interbank_debit', ?, ?)")
                .bind(Uuid::new_v4().to_string())
                .bind(now)
                .execute(&mut conn)
                .await
                .unwrap()
                .last_insert_id();
            let cash = format!("cash-{code}");
            for (account, amount) in [(cash.as_str(), Decimal::from(-7)), (id.as_str(), Decimal::from(7))] {
                sqlx::query("INSERT INTO postings (journal_id, account_id, bucket, amount) VALUES (?, ?, 'available', ?)")
                    .bind(journal)
                    .bind(account)
                    .bind(amount)
                    .execute(&mut conn)
                    .await
                    .unwrap();
                sqlx::query("UPDATE accounts SET available = available + ? WHERE id = ?").bind(amount).bind(account).execute(&mut conn).await.unwrap();
            }
            if inserted == 0 {
                victims.push((peer, cur, id));
            }
        }
    }
    assert!(!victims.is_empty(), "the old numbering collided for some currency of peers 001–003");

    bank::MIGRATOR.run(&mut conn).await.unwrap();
    for (peer, cur, id) in &victims {
        let row: Option<(String, String, String, Decimal)> =
            sqlx::query_as("SELECT number, kind, currency, available FROM accounts WHERE id = ?").bind(id).fetch_optional(&mut conn).await.unwrap();
        let expected = SystemAccount::Clearing { peer: *peer as u16, currency: *cur }.number().unwrap();
        assert_eq!(row, Some((expected.digits(), "system".into(), CURRENCIES[*cur].into(), Decimal::from(7))), "{id} opened, numbered and balanced");
    }
    // Every clearing account's balance is the sum of its postings; every posting has its account.
    let off: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM accounts a WHERE a.available <> (SELECT COALESCE(SUM(p.amount), 0) FROM postings p WHERE p.account_id = a.id AND p.bucket = 'available')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let orphans: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM postings p LEFT JOIN accounts a ON a.id = p.account_id WHERE a.id IS NULL").fetch_one(&mut conn).await.unwrap();
    assert_eq!((off, orphans), (0, 0));
    let journal = sqlx::query("INSERT INTO journal (kind, reference, created_at) VALUES ('test', 'x', ?)").bind(now).execute(&mut conn).await.unwrap().last_insert_id();
    let raw = sqlx::query("INSERT INTO postings (journal_id, account_id, bucket, amount) VALUES (?, 'clearing:009:BRL', 'available', 1)").bind(journal).execute(&mut conn).await;
    assert!(raw.is_err(), "the foreign key is in place");
    conn.close().await.unwrap();
    pool.close().await;
    let _ = MySql::drop_database(&url).await;
}
