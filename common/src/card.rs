//! Card data handling shared by the orchestrator (which receives a card) and the payment processor
//! (which must see it to charge). The rule: no PAN or CVC in clear in any table, topic, log line or
//! error. What may be kept: brand, last4, expiry, and a keyed fingerprint (HMAC-SHA256 of the PAN
//! under the card key, so equal cards match without the PAN being recoverable). The PAN and CVC
//! travel to the payment processor sealed with AES-256-GCM under the same configured key, with the
//! order id as associated data (a sealed card cannot be replayed onto another order).

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::messages::CardRef;

/// The development default of `CARD_KEY` (64 hex characters = 32 bytes). Production sets its own.
pub const DEV_CARD_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// The 32-byte card key. Its `Debug` never prints the key.
#[derive(Clone)]
pub struct CardKey([u8; 32]);

impl std::fmt::Debug for CardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardKey(***)")
    }
}

impl CardKey {
    /// Parses 64 hex characters.
    pub fn from_hex(hex_key: &str) -> anyhow::Result<Self> {
        let bytes = hex::decode(hex_key.trim()).map_err(|_| anyhow::anyhow!("CARD_KEY must be 64 hex characters"))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| anyhow::anyhow!("CARD_KEY must be 32 bytes (64 hex characters)"))?;
        Ok(Self(key))
    }

    /// `CARD_KEY` from the environment, or the development key.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_hex(&crate::config::env_string("CARD_KEY", DEV_CARD_KEY))
    }
}

/// Card details as a client sends them.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardInput {
    pub number: String,
    pub exp_month: u8,
    pub exp_year: u16,
    pub cvc: String,
}

impl std::fmt::Debug for CardInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardInput(****{}, {:02}/{})", last4(&digits(&self.number)), self.exp_month, self.exp_year)
    }
}

/// Why a card is refused before any acquirer sees it. `code` is the stable decline code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardProblem {
    pub field: &'static str,
    pub code: &'static str,
    pub message: &'static str,
}

/// How many digits a card number (PAN) has: 13 to 19 (ISO/IEC 7812). Validation accepts exactly
/// these lengths and [`crate::inbox::redact_digit_runs`] redacts exactly these, so every number
/// that can be accepted is also one that is redacted.
pub const PAN_LENGTHS: std::ops::RangeInclusive<usize> = 13..=19;

/// The digits of a card number, spaces and dashes removed.
pub fn digits(number: &str) -> String {
    number.chars().filter(|c| c.is_ascii_digit()).collect()
}

fn last4(d: &str) -> String {
    d.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect()
}

/// Luhn check.
pub fn luhn_valid(d: &str) -> bool {
    if d.is_empty() || !d.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = d
        .chars()
        .rev()
        .enumerate()
        .map(|(i, c)| {
            let mut n = c.to_digit(10).unwrap();
            if i % 2 == 1 {
                n *= 2;
                if n > 9 {
                    n -= 9;
                }
            }
            n
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The card brand from its number's prefix.
pub fn brand(d: &str) -> &'static str {
    let p2: u32 = d.get(..2).and_then(|s| s.parse().ok()).unwrap_or(0);
    let p4: u32 = d.get(..4).and_then(|s| s.parse().ok()).unwrap_or(0);
    if d.starts_with('4') {
        "visa"
    } else if (51..=55).contains(&p2) || (2221..=2720).contains(&p4) {
        "mastercard"
    } else if p2 == 34 || p2 == 37 {
        "amex"
    } else if d.starts_with("6011") || d.starts_with("65") {
        "discover"
    } else {
        "unknown"
    }
}

/// Validates number (format + Luhn), expiry (not past, by `today` = (year, month)) and CVC.
pub fn validate(card: &CardInput, today: (u16, u8)) -> Result<(), CardProblem> {
    let raw_ok = card.number.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-');
    let d = digits(&card.number);
    if !raw_ok || !PAN_LENGTHS.contains(&d.len()) || !luhn_valid(&d) {
        return Err(CardProblem { field: "payment_method.card.number", code: "incorrect_number", message: "the card number is not valid" });
    }
    if !(1..=12).contains(&card.exp_month) {
        return Err(CardProblem { field: "payment_method.card.exp_month", code: "invalid_expiry", message: "exp_month must be 1-12" });
    }
    if card.exp_year < 2000 || card.exp_year > today.0 + 50 {
        return Err(CardProblem { field: "payment_method.card.exp_year", code: "invalid_expiry", message: "exp_year is not a plausible four-digit year" });
    }
    if (card.exp_year, card.exp_month) < today {
        return Err(CardProblem { field: "payment_method.card.exp_year", code: "expired_card", message: "the card has expired" });
    }
    let cvc_len = if brand(&d) == "amex" { 4 } else { 3 };
    if card.cvc.len() != cvc_len || !card.cvc.chars().all(|c| c.is_ascii_digit()) {
        return Err(CardProblem { field: "payment_method.card.cvc", code: "invalid_cvc", message: "the CVC is not valid for this card" });
    }
    Ok(())
}

/// The keyed fingerprint of a card number (hex HMAC-SHA256).
pub fn fingerprint(key: &CardKey, number: &str) -> String {
    keyed_hash(key, digits(number).as_bytes())
}

/// Hex HMAC-SHA256 of `data` under the card key: for anything derived from card data that must be
/// compared but never recovered (fingerprints, idempotency body hashes).
pub fn keyed_hash(key: &CardKey, data: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key.0).expect("any key length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Serialize, Deserialize)]
struct Secret {
    number: String,
    cvc: String,
}

/// Seals a (validated) card for `order_id`: display fields + fingerprint + AES-GCM ciphertext.
pub fn seal(key: &CardKey, order_id: &str, card: &CardInput) -> CardRef {
    let d = digits(&card.number);
    let cipher = Aes256Gcm::new_from_slice(&key.0).expect("32-byte key");
    let nonce_bytes: [u8; 12] = rand::random();
    let plaintext = serde_json::to_vec(&Secret { number: d.clone(), cvc: card.cvc.clone() }).expect("serialises");
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce_bytes), Payload { msg: &plaintext, aad: order_id.as_bytes() })
        .expect("AES-GCM encryption does not fail for small inputs");
    let mut blob = nonce_bytes.to_vec();
    blob.extend(sealed);
    CardRef {
        brand: brand(&d).to_string(),
        last4: last4(&d),
        exp_month: card.exp_month,
        exp_year: card.exp_year,
        fingerprint: fingerprint(key, &d),
        sealed: B64.encode(blob),
    }
}

/// Opens a sealed card: `(number, cvc)`. Fails if the key, the order id or the blob do not match.
pub fn open(key: &CardKey, order_id: &str, card: &CardRef) -> anyhow::Result<(String, String)> {
    let blob = B64.decode(&card.sealed).map_err(|_| anyhow::anyhow!("sealed card is not base64"))?;
    anyhow::ensure!(blob.len() > 12, "sealed card is too short");
    let cipher = Aes256Gcm::new_from_slice(&key.0).expect("32-byte key");
    let plain = cipher
        .decrypt(Nonce::from_slice(&blob[..12]), Payload { msg: &blob[12..], aad: order_id.as_bytes() })
        .map_err(|_| anyhow::anyhow!("sealed card does not open with this key and order"))?;
    let s: Secret = serde_json::from_slice(&plain)?;
    Ok((s.number, s.cvc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(n: &str) -> CardInput {
        CardInput { number: n.into(), exp_month: 12, exp_year: 2030, cvc: "123".into() }
    }

    #[test]
    fn validates_test_cards_and_rejects_bad_ones() {
        let today = (2026, 11);
        assert!(validate(&card("4242 4242 4242 4242"), today).is_ok());
        assert!(validate(&card("4000000000000341"), today).is_ok());
        assert_eq!(validate(&card("4242424242424241"), today).unwrap_err().code, "incorrect_number");
        assert_eq!(validate(&card("42x2424242424242"), today).unwrap_err().code, "incorrect_number");
        let mut expired = card("4242424242424242");
        expired.exp_year = 2026;
        expired.exp_month = 10;
        assert_eq!(validate(&expired, today).unwrap_err().code, "expired_card");
        let mut cvc = card("4242424242424242");
        cvc.cvc = "12".into();
        assert_eq!(validate(&cvc, today).unwrap_err().code, "invalid_cvc");
    }

    #[test]
    fn card_numbers_have_13_to_19_digits() {
        let today = (2026, 11);
        // All Luhn-valid: only the length decides.
        assert_eq!(validate(&card("424242424242"), today).unwrap_err().code, "incorrect_number", "12 digits");
        assert_eq!(validate(&card("4000 0000 0002"), today).unwrap_err().code, "incorrect_number", "12 digits, grouped");
        assert!(validate(&card("4000000000006"), today).is_ok(), "13 digits");
        assert!(validate(&card("4242424242424242428"), today).is_ok(), "19 digits");
        assert_eq!(validate(&card("42424242424242424242"), today).unwrap_err().code, "incorrect_number", "20 digits");
    }

    #[test]
    fn sealed_cards_open_only_for_their_order_and_hide_the_pan() {
        let key = CardKey::from_hex(DEV_CARD_KEY).unwrap();
        let r = seal(&key, "order-1", &card("4242424242424242"));
        assert_eq!((r.brand.as_str(), r.last4.as_str()), ("visa", "4242"));
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains("4242424242424242") && !text.contains("\"123\""));
        assert_eq!(open(&key, "order-1", &r).unwrap(), ("4242424242424242".to_string(), "123".to_string()));
        assert!(open(&key, "order-2", &r).is_err());
        assert_eq!(r.fingerprint, seal(&key, "order-9", &card("4242 4242 4242 4242")).fingerprint);
        assert!(format!("{:?}", card("4242424242424242")).contains("****4242"));
    }
}
