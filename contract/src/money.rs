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

/// ISO 4217 currencies Sagaway prices in, with their minor units (decimal places of the smallest
/// coin): what a price may be finer than is decided here, in one place.
const CURRENCIES: &[(&str, u32)] = &[
    ("USD", 2),
    ("EUR", 2),
    ("BRL", 2),
    ("GBP", 2),
    ("CHF", 2),
    ("CAD", 2),
    ("AUD", 2),
    ("JPY", 0),
    ("KRW", 0),
];

/// The minor units (decimal places) of `currency` (an ISO 4217 code), or `None` for a currency
/// Sagaway does not know: 2 for USD/EUR/BRL, 0 for JPY.
pub fn minor_units(currency: &str) -> Option<u32> {
    CURRENCIES.iter().find(|(code, _)| code.eq_ignore_ascii_case(currency.trim())).map(|&(_, units)| units)
}

/// A known currency (parse one with `"USD".parse::<Currency>()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    code: &'static str,
    minor_units: u32,
}

impl Currency {
    pub const USD: Currency = Currency { code: "USD", minor_units: 2 };

    /// The ISO 4217 code (`"USD"`).
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Decimal places of the smallest unit: 2 for USD, 0 for JPY.
    pub fn minor_units(&self) -> u32 {
        self.minor_units
    }

    /// The smallest amount: 0.01 for USD, 1 for JPY.
    pub fn minor_unit(&self) -> Decimal {
        Decimal::new(1, self.minor_units)
    }

    /// Whether `amount` can be a price (and so a charge): at least one minor unit, and no finer
    /// than the minor unit. The error says which rule is broken, for a 422 naming the field.
    pub fn check_price(&self, amount: Decimal) -> Result<(), String> {
        if amount < self.minor_unit() {
            return Err(format!("must be at least {} {} (one minor unit)", format(self.minor_unit()), self.code));
        }
        let decimals = amount.normalize().scale();
        if decimals > self.minor_units {
            return Err(match self.minor_units {
                0 => format!("{} prices are whole numbers; {} has {decimals} decimal places", self.code, amount.normalize()),
                n => format!("{} prices have at most {n} decimal places; {} has {decimals}", self.code, amount.normalize()),
            });
        }
        Ok(())
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code)
    }
}

impl FromStr for Currency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CURRENCIES
            .iter()
            .find(|(code, _)| code.eq_ignore_ascii_case(s.trim()))
            .map(|&(code, minor_units)| Currency { code, minor_units })
            .ok_or_else(|| {
                let known: Vec<&str> = CURRENCIES.iter().map(|(c, _)| *c).collect();
                format!("unknown currency {s:?}; expected one of {}", known.join(", "))
            })
    }
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

/// The ISO 4217 codes Sagaway knows, for a document's `enum`.
pub fn currency_codes() -> Vec<&'static str> {
    CURRENCIES.iter().map(|(code, _)| *code).collect()
}

/// The JSON Schema of an amount field that takes an amount string of at least one cent, at most
/// two decimals (trailing zeros aside) and at most `max` — what [`Currency::check_price`] and an
/// upper limit accept for a two-decimal currency. Whole amounts with fewer digits than `max` are
/// all below it; `max` itself is spelt out; anything between is left out of the pattern (the
/// schema is then narrower than the service, never wider).
pub fn amount_schema(max: Decimal, example: &str) -> serde_json::Value {
    let max = max.trunc().normalize();
    let below = max.to_string().len().saturating_sub(1).max(1);
    let pattern = format!(r"^([1-9][0-9]{{0,{}}}(\.[0-9]{{1,2}}0*)?|0\.(0[1-9]|[1-9][0-9]?)0*|{max}(\.0+)?)$", below - 1);
    serde_json::json!({"type": "string", "pattern": pattern, "example": example,
        "description": format!("A decimal amount as a string: at least one minor unit, no finer than the currency's (2 decimals; whole numbers for JPY/KRW), at most {max}.")})
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

    #[test]
    fn the_amount_pattern_takes_what_the_rules_take() {
        let max = Decimal::new(100_000_000_000, 2);
        let schema = amount_schema(max, "1.00");
        let re = regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
        let rule = |t: &str| parse(&json!(t)).ok().filter(|d| Currency::USD.check_price(*d).is_ok() && *d <= max).is_some();
        for t in ["0.01", "0.1", "0.10", "1", "1.5", "1.500", "999999999.99", "1000000000", "1000000000.00", "42"] {
            assert!(re.is_match(t) && rule(t), "{t}");
        }
        for t in ["0", "0.00", "0.001", "1.234", "1000000000.01", "1000000001", "-1", "", "abc", "1e3", "12."] {
            assert!(!re.is_match(t), "{t} matches");
        }
        // Whatever the pattern takes, the rules take.
        proptest::proptest!(|(t in r"[0-9]{1,11}(\.[0-9]{1,4})?")| {
            if re.is_match(&t) {
                proptest::prop_assert!(rule(&t), "{} matches but is refused", t);
            }
        });
    }

    #[test]
    fn minor_units_per_currency() {
        assert_eq!(minor_units("USD"), Some(2));
        assert_eq!(minor_units("EUR"), Some(2));
        assert_eq!(minor_units("BRL"), Some(2));
        assert_eq!(minor_units("JPY"), Some(0));
        assert_eq!(minor_units("jpy"), Some(0));
        assert_eq!(minor_units("XXX"), None);
        assert_eq!("usd".parse::<Currency>().unwrap(), Currency::USD);
        assert!("US".parse::<Currency>().is_err());
        assert_eq!("JPY".parse::<Currency>().unwrap().minor_unit(), Decimal::ONE);
        assert_eq!(Currency::USD.minor_unit(), Decimal::from_str("0.01").unwrap());
    }

    #[test]
    fn prices_are_at_least_one_minor_unit_and_no_finer() {
        let d = |s: &str| Decimal::from_str(s).unwrap();
        let usd = Currency::USD;
        let jpy: Currency = "JPY".parse().unwrap();
        for ok in ["0.01", "0.10", "1", "19.99", "19.9900", "999999999999999.99"] {
            assert!(usd.check_price(d(ok)).is_ok(), "USD {ok}");
        }
        for bad in ["0", "0.00", "0.009", "-1", "1.001", "19.9950", "0.0001"] {
            assert!(usd.check_price(d(bad)).is_err(), "USD {bad}");
        }
        assert!(usd.check_price(d("0")).unwrap_err().contains("at least 0.01 USD"));
        assert!(usd.check_price(d("1.005")).unwrap_err().contains("at most 2 decimal places"));
        for ok in ["1", "500", "500.00"] {
            assert!(jpy.check_price(d(ok)).is_ok(), "JPY {ok}");
        }
        for bad in ["0", "0.5", "1.5", "100.01"] {
            assert!(jpy.check_price(d(bad)).is_err(), "JPY {bad}");
        }
        assert!(jpy.check_price(d("1.5")).unwrap_err().contains("whole numbers"));
    }
}
