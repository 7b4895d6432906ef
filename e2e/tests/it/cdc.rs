//! A row inserted, updated and deleted in the product database appears on the Debezium topic as
//! c / u / d plus a tombstone, each within 2 s of its commit. Needs the stack (`scripts/stack up --infra`).

use std::time::{Duration, Instant};

use e2e::{StackAddr, TopicWatcher};
use serde_json::{Value, json};

const TOPIC: &str = "shop.product.products";
const WITHIN: Duration = Duration::from_secs(2);

fn key_is(r: &e2e::Record, id: u64) -> bool {
    r.key.as_ref().and_then(|k| k.get("id")).and_then(Value::as_u64) == Some(id)
}

fn op(r: &e2e::Record) -> Option<&str> {
    r.value.as_ref().and_then(|v| v.get("op")).and_then(Value::as_str)
}

#[tokio::test(flavor = "multi_thread")]
async fn product_row_changes_reach_the_debezium_topic_within_two_seconds() -> anyhow::Result<()> {
    let stack = StackAddr::from_env();
    let pool = sqlx::MySqlPool::connect(&stack.mysql_url("product")).await?;
    product::MIGRATOR.run(&pool).await?;
    let watcher = TopicWatcher::from_end(&stack.brokers(), TOPIC)?;
    let name = format!("cdc-probe-{}", uuid::Uuid::new_v4());

    // Insert → op "c" with the exact decimal price as a string.
    let id = sqlx::query("INSERT INTO products (name, description, category, price, stock) VALUES (?, 'probe', 'test', 12.3400, 5)")
        .bind(&name)
        .execute(&pool)
        .await?
        .last_insert_id();
    let committed = Instant::now();
    let created = watcher.wait_for(WITHIN, |r| key_is(r, id) && op(r) == Some("c"))?;
    let after = &created.value.as_ref().unwrap()["after"];
    assert_eq!(after["name"], json!(name));
    assert_eq!(after["price"], json!("12.3400"), "decimals must arrive exact, as strings");
    println!("insert visible after {:?}", created.received - committed);

    // Update → op "u" carrying before and after.
    sqlx::query("UPDATE products SET price = 99.9900, stock = 4 WHERE id = ?").bind(id).execute(&pool).await?;
    let committed = Instant::now();
    let updated = watcher.wait_for(WITHIN, |r| key_is(r, id) && op(r) == Some("u"))?;
    let v = updated.value.as_ref().unwrap();
    assert_eq!(v["before"]["price"], json!("12.3400"));
    assert_eq!(v["after"]["price"], json!("99.9900"));
    assert_eq!(v["after"]["stock"], json!(4));
    println!("update visible after {:?}", updated.received - committed);

    // Delete → op "d", then a tombstone (same key, null value).
    sqlx::query("DELETE FROM products WHERE id = ?").bind(id).execute(&pool).await?;
    let committed = Instant::now();
    let deleted = watcher.wait_for(WITHIN, |r| key_is(r, id) && op(r) == Some("d"))?;
    assert_eq!(deleted.value.as_ref().unwrap()["before"]["name"], json!(name));
    let tombstone = watcher.wait_for(WITHIN, |r| key_is(r, id))?;
    assert!(tombstone.value.is_none(), "the record after a delete must be a tombstone, got {:?}", tombstone.value);
    println!("delete + tombstone visible after {:?}", tombstone.received - committed);
    Ok(())
}
