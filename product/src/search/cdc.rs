//! Debezium events (JSON converter, schemas disabled) → [`Change`]s.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use super::{Change, ProductDoc};

/// A version that orders events by their binlog position: file number, byte position, row in the
/// event. Later in the binlog ⇒ larger.
pub fn version_of(source: &Value) -> Option<u64> {
    let file = source.get("file")?.as_str()?;
    let file_no: u64 = file.rsplit('.').next()?.parse().ok()?;
    let pos = source.get("pos")?.as_u64()?;
    let row = source.get("row").and_then(Value::as_u64).unwrap_or(0).min(255);
    Some((file_no.min(0xFFFF) << 48) | ((pos & 0xFF_FFFF_FFFF) << 8) | row)
}

/// Parses one event. `Ok(None)` for events that change nothing we index; `Err` for garbage.
pub fn parse(key: Option<&str>, value: Option<&str>) -> Result<Option<Change>, String> {
    let key: Value = serde_json::from_str(key.ok_or("event without a key")?).map_err(|e| format!("key: {e}"))?;
    let id = key.get("id").and_then(Value::as_u64).ok_or("key has no numeric id")?;
    let Some(value) = value else {
        return Ok(Some(Change::Delete { id, version: None })); // tombstone
    };
    let event: Value = serde_json::from_str(value).map_err(|e| format!("value: {e}"))?;
    let op = event.get("op").and_then(Value::as_str).ok_or("event has no op")?;
    let version = event.get("source").and_then(version_of).ok_or("event has no binlog position")?;
    match op {
        "c" | "u" | "r" => {
            let after = event.get("after").ok_or("create/update without `after`")?;
            Ok(Some(Change::Upsert { doc: doc_from_row(after)?, version }))
        }
        "d" => Ok(Some(Change::Delete { id, version: Some(version) })),
        "t" => Ok(None), // truncate: not used by the services
        other => Err(format!("unknown op {other:?}")),
    }
}

fn doc_from_row(row: &Value) -> Result<ProductDoc, String> {
    let text = |k: &str| row.get(k).and_then(Value::as_str).map(str::to_string);
    let price_text = text("price").ok_or("row has no price string (decimal.handling.mode must be string)")?;
    let price = Decimal::from_str(&price_text).map_err(|e| format!("price {price_text:?}: {e}"))?;
    let created_at = text("created_at").unwrap_or_default();
    let created_at_micros = chrono::DateTime::parse_from_rfc3339(&created_at).map(|t| t.timestamp_micros()).unwrap_or(0);
    Ok(ProductDoc {
        id: row.get("id").and_then(Value::as_u64).ok_or("row has no id")?,
        name: text("name").unwrap_or_default(),
        description: text("description").unwrap_or_default(),
        category: text("category").unwrap_or_default(),
        price,
        stock: row.get("stock").and_then(Value::as_i64).unwrap_or(0),
        created_at_micros,
        created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(op: &str, pos: u64, after: Value) -> String {
        json!({"op": op, "before": null, "after": after, "source": {"file": "binlog.000002", "pos": pos, "row": 0}}).to_string()
    }

    #[test]
    fn versions_follow_the_binlog() {
        let v = |f: &str, pos: u64, row: u64| version_of(&json!({"file": f, "pos": pos, "row": row})).unwrap();
        assert!(v("binlog.000001", 900, 0) < v("binlog.000001", 1000, 0));
        assert!(v("binlog.000001", 1000, 0) < v("binlog.000001", 1000, 1));
        assert!(v("binlog.000001", 999_999_999, 5) < v("binlog.000002", 4, 0));
    }

    #[test]
    fn parses_upserts_deletes_and_tombstones_with_exact_prices() {
        let row = json!({"id": 7, "name": "Lamp", "description": "d", "category": "home", "price": "19.9900", "stock": 3, "created_at": "2026-11-23T10:00:00.5Z"});
        let Some(Change::Upsert { doc, version }) = parse(Some(r#"{"id":7}"#), Some(&event("u", 500, row))).unwrap() else { panic!() };
        assert_eq!(doc.price.to_string(), "19.9900");
        assert_eq!(doc.created_at_micros, 1_795_428_000_500_000);
        assert!(version > 0);
        assert!(matches!(parse(Some(r#"{"id":7}"#), Some(&event("d", 600, Value::Null))).unwrap(), Some(Change::Delete { id: 7, version: Some(_) })));
        assert_eq!(parse(Some(r#"{"id":7}"#), None).unwrap(), Some(Change::Delete { id: 7, version: None }));
        assert!(parse(Some("not json"), None).is_err());
        assert!(parse(Some(r#"{"id":7}"#), Some(r#"{"op":"u"}"#)).is_err());
    }
}
