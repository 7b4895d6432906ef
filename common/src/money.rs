//! Money is exact: `rust_decimal` in Rust, DECIMAL(19,4) in MariaDB, strings in JSON.
//!
//! Amounts are written as strings with at least two decimals (`"12.50"`, `"0.9950"`); input accepts
//! a string or a JSON number, and is rejected (never rounded) when it has more than four decimals.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

/// Decimal places MariaDB keeps (DECIMAL(19,4)).
pub const SCALE: u32 = 4;

/// The largest value DECIMAL(19,4) holds: 15 integer digits.
pub fn max_amount() -> Decimal {
    Decimal::from_str("999999999999999.9999").expect("constant")
}

/// Canonical text of an amount: trailing zeros dropped, but at least two decimals.
pub fn format(amount: Decimal) -> String {
    let mut d = amount.normalize();
    if d.scale() < 2 {
        d.rescale(2);
    }
    d.to_string()
}

/// Parses user input (string or JSON number) into an amount with at most [`SCALE`] decimals.
pub fn parse(value: &serde_json::Value) -> Result<Decimal, String> {
    let text = match value {
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        other => return Err(format!("expected a decimal amount as a string or number, got {other}")),
    };
    let d = Decimal::from_str(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| format!("{text:?} is not a decimal amount"))?;
    if d.normalize().scale() > SCALE {
        return Err(format!("{text} has more than {SCALE} decimal places"));
    }
    Ok(d.normalize())
}

/// `#[serde(serialize_with = "money::serialize")]`: the canonical string.
pub fn serialize<S: Serializer>(amount: &Decimal, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*amount))
}

/// `#[serde(deserialize_with = "money::deserialize")]`: string or number, at most four decimals.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    parse(&v).map_err(D::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats_with_at_least_two_decimals() {
        assert_eq!(format(Decimal::from_str("12.3400").unwrap()), "12.34");
        assert_eq!(format(Decimal::from_str("12").unwrap()), "12.00");
        assert_eq!(format(Decimal::from_str("0.9950").unwrap()), "0.995");
        assert_eq!(format(Decimal::from_str("0.0001").unwrap()), "0.0001");
    }

    #[test]
    fn parses_strings_and_numbers_and_rejects_extra_precision() {
        assert_eq!(parse(&json!("19.99")).unwrap(), Decimal::from_str("19.99").unwrap());
        assert_eq!(parse(&json!(19.99)).unwrap(), Decimal::from_str("19.99").unwrap());
        assert_eq!(parse(&json!(5)).unwrap(), Decimal::from(5));
        assert!(parse(&json!("1.23456")).is_err());
        assert!(parse(&json!("abc")).is_err());
        assert!(parse(&json!(true)).is_err());
    }
}
