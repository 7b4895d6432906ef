//! JSON field readers for request bodies and messages: what serde's defaults get wrong for a
//! contract described by JSON Schema.

/// `#[serde(deserialize_with = "integral")]`: an integer field that also takes a JSON number with
/// a zero fraction (`3.0`). JSON Schema's `integer` is any number without a fraction, so a client
/// following the document may send one; serde's integers would refuse it. Anything with a
/// fraction, or out of `T`'s range, is refused as before.
pub fn integral<'de, D: serde::Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<T, D::Error> {
    use serde::{Deserialize, de::Error};
    let n = serde_json::Number::deserialize(d)?;
    let wide: i128 = match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => i.into(),
        (None, Some(u), _) => u.into(),
        (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => f as i128,
        _ => return Err(D::Error::custom(format!("expected an integer, got {n}"))),
    };
    T::try_from(wide).map_err(|_| D::Error::custom(format!("{n} is out of range")))
}

/// [`integral`] for an optional field (`#[serde(default, deserialize_with = "optional_integral")]`).
pub fn optional_integral<'de, D: serde::Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<Option<T>, D::Error> {
    use serde::Deserialize;
    Ok(Option::<Integral<T>>::deserialize(d)?.map(|w| w.0))
}

/// One [`integral`] value, for the optional and list forms.
#[derive(serde::Deserialize)]
struct Integral<T: TryFrom<i128>>(#[serde(deserialize_with = "integral")] T);

/// [`integral`] for an optional list (`#[serde(default, deserialize_with = "optional_integrals")]`):
/// `[1, 2.0]` is `[1, 2]`.
pub fn optional_integrals<'de, D: serde::Deserializer<'de>, T: TryFrom<i128>>(d: D) -> Result<Option<Vec<T>>, D::Error> {
    use serde::Deserialize;
    Ok(Option::<Vec<Integral<T>>>::deserialize(d)?.map(|v| v.into_iter().map(|w| w.0).collect()))
}

/// `#[serde(default, deserialize_with = "present")]`: an optional field that may be left out but
/// not sent as `null` — so a document that lists it as a plain string (not nullable) is exact.
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    #[test]
    fn integers_may_come_with_a_zero_fraction_but_not_with_another() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct T {
            #[serde(deserialize_with = "super::integral")]
            n: u8,
            #[serde(default, deserialize_with = "super::optional_integral")]
            o: Option<i64>,
        }
        let parse = |s: &str| serde_json::from_str::<T>(s).map_err(|e| e.to_string());
        assert_eq!(parse(r#"{"n": 12, "o": -3.0}"#), Ok(T { n: 12, o: Some(-3) }));
        assert_eq!(parse(r#"{"n": 12.0}"#), Ok(T { n: 12, o: None }));
        assert_eq!(parse(r#"{"n": 1, "o": null}"#), Ok(T { n: 1, o: None }));
        for bad in [r#"{"n": 1.5}"#, r#"{"n": 256}"#, r#"{"n": -1.0}"#, r#"{"n": "1"}"#, r#"{"n": 1e300}"#] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn integral_lists_and_present_fields() {
        #[derive(serde::Deserialize, Debug, PartialEq)]
        struct T {
            #[serde(default, deserialize_with = "super::optional_integrals")]
            ids: Option<Vec<u64>>,
            #[serde(default, deserialize_with = "super::present")]
            until: Option<String>,
        }
        let parse = |s: &str| serde_json::from_str::<T>(s).map_err(|e| e.to_string());
        assert_eq!(parse(r#"{"ids": [1, 2.0]}"#), Ok(T { ids: Some(vec![1, 2]), until: None }));
        assert_eq!(parse(r#"{"ids": null, "until": "x"}"#), Ok(T { ids: None, until: Some("x".into()) }));
        assert_eq!(parse("{}"), Ok(T { ids: None, until: None }));
        // Read as the nearest double (serde_json's float_roundtrip), not one ulp off (…170.5).
        assert_eq!(parse(r#"{"ids": [4288506285096170.0]}"#), Ok(T { ids: Some(vec![4_288_506_285_096_170]), until: None }));
        for bad in [r#"{"ids": [1.5]}"#, r#"{"ids": [-1]}"#, r#"{"until": null}"#] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
