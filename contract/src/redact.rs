//! What must never travel onward in clear: card numbers in free text, sealed CVCs in kept copies.
//! Pure text and JSON functions, used wherever untrusted text is copied (dead letters, problem
//! details, logs).

/// How many digits a card number (PAN) has: 13 to 19 (ISO/IEC 7812). Validation accepts exactly
/// these lengths and [`redact_digit_runs`] redacts exactly these, so every number
/// that can be accepted is also one that is redacted.
pub const PAN_LENGTHS: std::ops::RangeInclusive<usize> = 13..=19;

/// Replaces every standalone number of 13 to 19 digits ([`PAN_LENGTHS`]: every length
/// card validation accepts; a card number, possibly grouped with
/// single spaces or dashes) with `[redacted]`, so text copied from an untrusted message can never
/// carry a PAN onward. "Standalone": not glued to a letter or digit on either side, so digit groups
/// inside UUIDs and hex fingerprints (`…-8692-9278c764bbda`) are left intact.
pub fn redact_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let starts_number = chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric());
        if !starts_number {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let mut j = i;
        let mut digits = 0;
        while j < chars.len()
            && (chars[j].is_ascii_digit()
                || ((chars[j] == ' ' || chars[j] == '-') && j + 1 < chars.len() && chars[j + 1].is_ascii_digit()))
        {
            if chars[j].is_ascii_digit() {
                digits += 1;
            }
            j += 1;
        }
        let standalone = j == chars.len() || !chars[j].is_ascii_alphanumeric();
        if standalone && PAN_LENGTHS.contains(&digits) {
            out.push_str("[redacted]");
        } else {
            out.extend(&chars[i..j]);
        }
        i = j;
    }
    out
}

/// `payload` without any `sealed_cvc` member (at any depth of a JSON document), for copies of a
/// message that are kept — dead letters. Keyless: a payload that is not JSON, or has none, is
/// returned as it is.
pub fn drop_sealed_cvcs(payload: &str) -> std::borrow::Cow<'_, str> {
    fn strip(v: &mut serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(map) => {
                let mut changed = map.remove("sealed_cvc").is_some();
                for child in map.values_mut() {
                    changed |= strip(child);
                }
                changed
            }
            serde_json::Value::Array(items) => {
                let mut changed = false;
                for child in items {
                    changed |= strip(child);
                }
                changed
            }
            _ => false,
        }
    }
    if !payload.contains("sealed_cvc") {
        return payload.into();
    }
    match serde_json::from_str::<serde_json::Value>(payload) {
        Ok(mut v) => {
            if strip(&mut v) {
                serde_json::to_string(&v).expect("serialises").into()
            } else {
                payload.into()
            }
        }
        Err(_) => payload.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_digit_runs;

    #[test]
    fn card_numbers_are_redacted_and_short_numbers_kept() {
        assert_eq!(redact_digit_runs(r#"{"n":"4242424242424242","q":3}"#), r#"{"n":"[redacted]","q":3}"#);
        assert_eq!(redact_digit_runs("card 4242 4242 4242 4242 ok"), "card [redacted] ok");
        assert_eq!(redact_digit_runs("order 12345, cvc 123"), "order 12345, cvc 123");
        assert_eq!(redact_digit_runs("invalid type: integer `4000000000000119`"), "invalid type: integer `[redacted]`");
        let uuid = "01a208d3-d4cb-7432-8692-9278c764bbda 11111111-2222-3333-4444-5555aaaa";
        assert_eq!(redact_digit_runs(uuid), uuid, "ids are not card numbers");
    }

    #[test]
    fn every_card_number_length_that_validation_accepts_is_redacted() {
        for len in super::PAN_LENGTHS {
            let pan: String = "4242424242424242424".chars().take(len).collect();
            assert_eq!(redact_digit_runs(&format!("n={pan};")), "n=[redacted];", "{len} digits");
            let grouped: Vec<String> = pan.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
            assert_eq!(redact_digit_runs(&format!("n {} ok", grouped.join(" "))), "n [redacted] ok", "{len} digits, grouped");
            assert_eq!(redact_digit_runs(&format!("n {} ok", grouped.join("-"))), "n [redacted] ok", "{len} digits, dashed");
        }
        assert_eq!(redact_digit_runs("n=424242424242;"), "n=424242424242;", "12 digits is not a card number");
        assert_eq!(redact_digit_runs("n=42424242424242424242;"), "n=42424242424242424242;", "20 digits is not a card number");
    }
}
