//! Card data handling shared by the orchestrator (which receives a card) and the payment processor
//! (which must see it to charge). The rule: no PAN or CVC in clear in any table, topic, log line or
//! error. What may be kept: brand, last4, expiry, and a keyed fingerprint (HMAC-SHA256 of the PAN,
//! so equal cards match without the PAN being recoverable). The PAN travels to the payment processor
//! sealed with AES-256-GCM, with the order id as associated data (a sealed card cannot be replayed
//! onto another order); the CVC is sealed apart ([`CardRef::sealed_cvc`]) and travels in the first
//! charge command only — PCI DSS 3.2: it is not kept once an authorization has been attempted.
//!
//! # Keys
//!
//! One or more 32-byte master keys, each with an id ([`CardKey`]; `CARD_KEYS=k2:<hex>,k1:<hex>`,
//! the first is active). Each master key gives three subkeys by HKDF-SHA256 with distinct `info`
//! labels, so no key serves two purposes: [`INFO_SEAL`] (AES-256-GCM card sealing),
//! [`INFO_FINGERPRINT`] (HMAC-SHA256 card fingerprints), [`INFO_IDEMPOTENCY`] (HMAC-SHA256 of
//! `Idempotency-Key` request bodies). New data is sealed and hashed under the active key; every
//! configured key opens and verifies, so a rotation needs no drain:
//!
//! - a sealed value names its key: `v2.<key id>.<base64(nonce ‖ ciphertext)>`;
//! - a fingerprint or body hash does not (it is a fixed-size hex column): compare it against the
//!   value under every configured key ([`fingerprints`], [`idempotency_hashes`]).
//!
//! Values from before key versioning (an unprefixed base64 sealed card holding number and CVC, and
//! HMACs under the raw `CARD_KEY`) are still opened and matched with the raw master keys, never
//! produced.

use std::fmt;

use aes_gcm::{
    Aes256Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use anyhow::Context;
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use sagaway_contract::{messages::CardRef, redact::PAN_LENGTHS};

/// The development default of `CARD_KEY` (64 hex characters = 32 bytes). It is public (it is in
/// this file): the services refuse it unless `SAGAWAY_ENV=dev` ([`CardKey::from_env`]).
pub const DEV_CARD_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// HKDF `info` of the card-sealing subkey (AES-256-GCM).
pub const INFO_SEAL: &str = "sagaway/card-seal/aes-256-gcm/v1";
/// HKDF `info` of the card-fingerprint subkey (HMAC-SHA256).
pub const INFO_FINGERPRINT: &str = "sagaway/card-fingerprint/hmac-sha256/v1";
/// HKDF `info` of the idempotency body-hash subkey (HMAC-SHA256).
pub const INFO_IDEMPOTENCY: &str = "sagaway/idempotency-body/hmac-sha256/v1";
/// HKDF `info` of the id of a key configured without one: its first 4 bytes, as 8 hex characters.
pub const INFO_KEY_ID: &str = "sagaway/key-id/v1";

/// The prefix of a sealed value that names its key.
const SEALED_V2: &str = "v2.";

/// One master key and its subkeys.
#[derive(Clone)]
struct MasterKey {
    id: String,
    /// Only to open and match values from before key versioning (never to produce anything).
    raw: [u8; 32],
    seal: [u8; 32],
    fingerprint: [u8; 32],
    idempotency: [u8; 32],
}

fn subkey(master: &[u8; 32], info: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(None, master).expand(info.as_bytes(), &mut out).expect("32 bytes is a valid HKDF-SHA256 length");
    out
}

impl MasterKey {
    fn new(id: Option<&str>, raw: [u8; 32]) -> Self {
        let id = match id {
            Some(id) => id.to_string(),
            None => hex::encode(&subkey(&raw, INFO_KEY_ID)[..4]),
        };
        Self {
            id,
            raw,
            seal: subkey(&raw, INFO_SEAL),
            fingerprint: subkey(&raw, INFO_FINGERPRINT),
            idempotency: subkey(&raw, INFO_IDEMPOTENCY),
        }
    }
}

/// The card keys: one or more master keys with ids, the first active (it seals and hashes new
/// data), all of them able to open and verify. Its `Debug` shows the key ids, never a key.
#[derive(Clone)]
pub struct CardKey {
    keys: Vec<MasterKey>,
}

impl fmt::Debug for CardKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardKey(active {}; ids {:?}; keys ***)", self.active_id(), self.ids())
    }
}

fn parse_hex_key(hex_key: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    // The error never repeats the value: it is a secret, even when malformed.
    let bytes = hex::decode(hex_key.trim()).map_err(|_| anyhow::anyhow!("{what} must be 64 hex characters"))?;
    bytes.try_into().map_err(|_| anyhow::anyhow!("{what} must be 32 bytes (64 hex characters)"))
}

fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl CardKey {
    /// One key (the `CARD_KEY` form), from 64 hex characters. Its id is derived from it
    /// ([`INFO_KEY_ID`]), so the same key always has the same id.
    pub fn from_hex(hex_key: &str) -> anyhow::Result<Self> {
        Ok(Self { keys: vec![MasterKey::new(None, parse_hex_key(hex_key, "CARD_KEY")?)] })
    }

    /// The `CARD_KEYS` form: entries `<id>:<64 hex>` separated by commas (or whitespace), the
    /// first active. An entry with no `<id>:` gets the derived id [`CardKey::from_hex`] gives it,
    /// so a key used as `CARD_KEY` keeps its id in a list. Ids are 1-32 letters, digits, `_`, `-`.
    pub fn from_list(list: &str) -> anyhow::Result<Self> {
        let mut keys: Vec<MasterKey> = Vec::new();
        for (i, entry) in list.split(|c: char| c == ',' || c.is_whitespace()).filter(|e| !e.is_empty()).enumerate() {
            let what = format!("CARD_KEYS entry {}", i + 1);
            let key = match entry.split_once(':') {
                Some((id, hex_key)) => {
                    anyhow::ensure!(valid_key_id(id), "{what}: the key id must be 1-32 letters, digits, _ or -");
                    MasterKey::new(Some(id), parse_hex_key(hex_key, &what)?)
                }
                None => MasterKey::new(None, parse_hex_key(entry, &what)?),
            };
            anyhow::ensure!(!keys.iter().any(|k| k.id == key.id), "{what}: key id {:?} appears twice", key.id);
            anyhow::ensure!(!keys.iter().any(|k| k.raw == key.raw), "{what}: the same key appears twice (under ids {:?} and {:?})",
                keys.iter().find(|k| k.raw == key.raw).map(|k| k.id.as_str()).unwrap_or_default(), key.id);
            keys.push(key);
        }
        anyhow::ensure!(!keys.is_empty(), "CARD_KEYS holds no key");
        Ok(Self { keys })
    }

    /// The keys the services run with, from the environment: `CARD_KEYS` (or the file named by
    /// `CARD_KEYS_FILE`, e.g. a mounted secret), else `CARD_KEY`. With none of them the built-in
    /// [`DEV_CARD_KEY`] would be used; that key, or any configured key equal to it, is refused
    /// unless `SAGAWAY_ENV=dev`, and allowed there with a warning in the log. This is what the
    /// binaries' `Config::from_env` calls; tests build keys with [`CardKey::from_hex`] / [`CardKey::from_list`].
    pub fn from_env() -> anyhow::Result<Self> {
        use crate::config::env_string;
        let file = env_string("CARD_KEYS_FILE", "");
        let mut list = env_string("CARD_KEYS", "");
        if !file.trim().is_empty() {
            anyhow::ensure!(list.trim().is_empty(), "set CARD_KEYS or CARD_KEYS_FILE, not both");
            list = std::fs::read_to_string(file.trim()).with_context(|| format!("CARD_KEYS_FILE={}: cannot read the card keys", file.trim()))?;
        }
        let single = env_string("CARD_KEY", "");
        let (keys, dev) = Self::from_settings(&list, &single, &env_string("SAGAWAY_ENV", ""))?;
        if dev {
            tracing::warn!(
                "the built-in development card key is in use (SAGAWAY_ENV=dev): card data is sealed with a public key; \
                 never run like this with real cards — set CARD_KEYS to a secret key"
            );
        }
        tracing::info!(active = keys.active_id(), ids = ?keys.ids(), "card keys loaded");
        Ok(keys)
    }

    /// The policy of [`CardKey::from_env`] on given values (empty = unset): the keys, and whether
    /// the development key is among them (only possible with `sagaway_env == "dev"`).
    pub fn from_settings(card_keys: &str, card_key: &str, sagaway_env: &str) -> anyhow::Result<(Self, bool)> {
        let (card_keys, card_key) = (card_keys.trim(), card_key.trim());
        anyhow::ensure!(card_keys.is_empty() || card_key.is_empty(), "set CARD_KEYS or CARD_KEY, not both (CARD_KEYS=<id>:<64 hex>,... replaces CARD_KEY)");
        let unset = card_keys.is_empty() && card_key.is_empty();
        let keys = if !card_keys.is_empty() {
            Self::from_list(card_keys)?
        } else {
            Self::from_hex(if unset { DEV_CARD_KEY } else { card_key })?
        };
        let dev_raw = parse_hex_key(DEV_CARD_KEY, "DEV_CARD_KEY")?;
        let dev = keys.keys.iter().any(|k| k.raw == dev_raw);
        if dev && sagaway_env.trim() != "dev" {
            if unset {
                anyhow::bail!(
                    "refusing to start: no card key is configured (CARD_KEYS or CARD_KEY), and the built-in development key is public. \
                     Set CARD_KEYS=<id>:<64 hex characters> from a secret, or SAGAWAY_ENV=dev on a development machine"
                );
            }
            anyhow::bail!(
                "refusing to start: the configured card key (CARD_KEYS or CARD_KEY) is the built-in development key, which is public. \
                 Set a secret key, or SAGAWAY_ENV=dev on a development machine"
            );
        }
        Ok((keys, dev))
    }

    /// The id of the active key (the one new data is sealed and hashed under).
    pub fn active_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Every key id, the active one first.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    fn active(&self) -> &MasterKey {
        &self.keys[0]
    }

    fn by_id(&self, id: &str) -> Option<&MasterKey> {
        self.keys.iter().find(|k| k.id == id)
    }
}

/// Card details as a client sends them.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardInput {
    pub number: String,
    #[serde(deserialize_with = "sagaway_contract::json::integral")]
    pub exp_month: u8,
    #[serde(deserialize_with = "sagaway_contract::json::integral")]
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
    validate_stored(&card.number, card.exp_month, card.exp_year, Some(&card.cvc), today)
}

/// [`validate`] of a card as the payment processor holds it: after the first authorization attempt
/// its CVC is gone (`None`, never kept), and then only the number and expiry are checked.
pub fn validate_stored(number: &str, exp_month: u8, exp_year: u16, cvc: Option<&str>, today: (u16, u8)) -> Result<(), CardProblem> {
    let raw_ok = number.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-');
    let d = digits(number);
    if !raw_ok || !PAN_LENGTHS.contains(&d.len()) || !luhn_valid(&d) {
        return Err(CardProblem { field: "payment_method.card.number", code: "incorrect_number", message: "the card number is not valid" });
    }
    if !(1..=12).contains(&exp_month) {
        return Err(CardProblem { field: "payment_method.card.exp_month", code: "invalid_expiry", message: "exp_month must be 1-12" });
    }
    if exp_year < 2000 || exp_year > today.0 + 50 {
        return Err(CardProblem { field: "payment_method.card.exp_year", code: "invalid_expiry", message: "exp_year is not a plausible four-digit year" });
    }
    if (exp_year, exp_month) < today {
        return Err(CardProblem { field: "payment_method.card.exp_year", code: "expired_card", message: "the card has expired" });
    }
    let Some(cvc) = cvc else { return Ok(()) };
    let cvc_len = if brand(&d) == "amex" { 4 } else { 3 };
    if cvc.len() != cvc_len || !cvc.chars().all(|c| c.is_ascii_digit()) {
        return Err(CardProblem { field: "payment_method.card.cvc", code: "invalid_cvc", message: "the CVC is not valid for this card" });
    }
    Ok(())
}

fn hmac_hex(key: &[u8], data: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

/// The keyed fingerprint of a card number (hex HMAC-SHA256 under the active fingerprint subkey).
pub fn fingerprint(key: &CardKey, number: &str) -> String {
    hmac_hex(&key.active().fingerprint, digits(number).as_bytes())
}

/// The card's fingerprint under every configured key (the active one first), then under the raw
/// keys of before key versioning: a stored fingerprint is the same card if it is one of these.
pub fn fingerprints(key: &CardKey, number: &str) -> Vec<String> {
    let d = digits(number);
    let derived = key.keys.iter().map(|k| hmac_hex(&k.fingerprint, d.as_bytes()));
    derived.chain(key.keys.iter().map(|k| hmac_hex(&k.raw, d.as_bytes()))).collect()
}

/// Whether `stored` (a fingerprint recorded under any configured key, before or after a rotation)
/// is the fingerprint of `number`.
pub fn fingerprint_matches(key: &CardKey, stored: &str, number: &str) -> bool {
    fingerprints(key, number).iter().any(|f| f == stored)
}

/// Hex HMAC-SHA256 of an `Idempotency-Key` request body under the active idempotency subkey: the
/// body holds a card number, and a plain hash of a PAN can be brute-forced.
pub fn idempotency_hash(key: &CardKey, body: &[u8]) -> String {
    hmac_hex(&key.active().idempotency, body)
}

/// The body's hash under every configured key (the active one first), then under the raw keys of
/// before key versioning: a stored hash is the same body if it is one of these, so a retry that
/// arrives after a rotation still replays.
pub fn idempotency_hashes(key: &CardKey, body: &[u8]) -> Vec<String> {
    let derived = key.keys.iter().map(|k| hmac_hex(&k.idempotency, body));
    derived.chain(key.keys.iter().map(|k| hmac_hex(&k.raw, body))).collect()
}

/// What a sealed value holds: the card number (`sealed`), or the CVC (`sealed_cvc`). Part of the
/// associated data, so one cannot be passed off as the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Number,
    Cvc,
}

impl Part {
    fn label(self) -> &'static str {
        match self {
            Part::Number => "number",
            Part::Cvc => "cvc",
        }
    }
}

/// What a sealed value decrypts to. The unversioned (legacy) `sealed` held both fields.
#[derive(Serialize, Deserialize)]
struct Secret {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cvc: Option<String>,
}

fn aad(key_id: &str, part: Part, order_id: &str) -> Vec<u8> {
    format!("sagaway-card|v2|{key_id}|{}|{order_id}", part.label()).into_bytes()
}

fn seal_part(key: &CardKey, order_id: &str, part: Part, secret: &Secret) -> String {
    let k = key.active();
    let cipher = Aes256Gcm::new_from_slice(&k.seal).expect("32-byte key");
    let nonce_bytes: [u8; 12] = rand::random();
    let plaintext = serde_json::to_vec(secret).expect("serialises");
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce_bytes), Payload { msg: &plaintext, aad: &aad(&k.id, part, order_id) })
        .expect("AES-GCM encryption does not fail for small inputs");
    let mut blob = nonce_bytes.to_vec();
    blob.extend(sealed);
    format!("{SEALED_V2}{}.{}", k.id, B64.encode(blob))
}

fn decrypt(key: &[u8; 32], blob: &str, aad: &[u8]) -> anyhow::Result<Vec<u8>> {
    let blob = B64.decode(blob).map_err(|_| anyhow::anyhow!("sealed card is not base64"))?;
    anyhow::ensure!(blob.len() > 12, "sealed card is too short");
    let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
    cipher
        .decrypt(Nonce::from_slice(&blob[..12]), Payload { msg: &blob[12..], aad })
        .map_err(|_| anyhow::anyhow!("sealed card does not open with this key and order"))
}

fn open_part(key: &CardKey, order_id: &str, part: Part, sealed: &str) -> anyhow::Result<Secret> {
    let plain = match sealed.strip_prefix(SEALED_V2) {
        Some(rest) => {
            let (id, blob) = rest.split_once('.').ok_or_else(|| anyhow::anyhow!("sealed card has no key id"))?;
            let k = key.by_id(id).ok_or_else(|| anyhow::anyhow!("sealed card names key id {id:?}, which is not configured"))?;
            decrypt(&k.seal, blob, &aad(id, part, order_id))?
        }
        // Before key versioning: the raw key, the order id as associated data, number and CVC together.
        None if part == Part::Number => key
            .keys
            .iter()
            .find_map(|k| decrypt(&k.raw, sealed, order_id.as_bytes()).ok())
            .ok_or_else(|| anyhow::anyhow!("sealed card does not open with any configured key for this order"))?,
        None => anyhow::bail!("a sealed CVC names no key"),
    };
    Ok(serde_json::from_slice(&plain)?)
}

/// The id of the key a sealed value was sealed under (`None` for the unversioned legacy form).
pub fn sealed_key_id(sealed: &str) -> Option<&str> {
    sealed.strip_prefix(SEALED_V2)?.split_once('.').map(|(id, _)| id)
}

/// Seals a (validated) card for `order_id` under the active key: display fields, fingerprint, the
/// number in `sealed` and the CVC apart in `sealed_cvc` (dropped after the first charge attempt).
pub fn seal(key: &CardKey, order_id: &str, card: &CardInput) -> CardRef {
    let d = digits(&card.number);
    CardRef {
        brand: brand(&d).to_string(),
        last4: last4(&d),
        exp_month: card.exp_month,
        exp_year: card.exp_year,
        fingerprint: fingerprint(key, &d),
        sealed: seal_number(key, order_id, &d),
        sealed_cvc: Some(seal_part(key, order_id, Part::Cvc, &Secret { number: None, cvc: Some(card.cvc.clone()) })),
    }
}

/// The card number alone, sealed for `order_id` under the active key: what a card becomes once
/// its CVC may no longer be kept (retries, dead letters).
pub fn seal_number(key: &CardKey, order_id: &str, number: &str) -> String {
    seal_part(key, order_id, Part::Number, &Secret { number: Some(digits(number)), cvc: None })
}

/// Opens a sealed card: `(number, cvc)`, the CVC `None` once it has been dropped. Fails if no
/// configured key, the order id or the blob match.
pub fn open(key: &CardKey, order_id: &str, card: &CardRef) -> anyhow::Result<(String, Option<String>)> {
    let secret = open_part(key, order_id, Part::Number, &card.sealed)?;
    let number = secret.number.ok_or_else(|| anyhow::anyhow!("sealed card holds no number"))?;
    let cvc = match &card.sealed_cvc {
        Some(sealed_cvc) => Some(open_part(key, order_id, Part::Cvc, sealed_cvc)?.cvc.ok_or_else(|| anyhow::anyhow!("sealed CVC holds no CVC"))?),
        None => secret.cvc,
    };
    Ok((number, cvc))
}

/// Whether a sealed card still holds a CVC: a `sealed_cvc`, or an unversioned `sealed` (which held
/// number and CVC together). Keyless: what a carrier checks before keeping a card.
pub fn may_hold_cvc(card: &CardRef) -> bool {
    card.sealed_cvc.is_some() || !card.sealed.starts_with(SEALED_V2)
}

/// The card without its CVC, as retries, dead letters and replays carry it: the number resealed
/// alone under the active key, no `sealed_cvc`. `None` when the card does not open (then nothing
/// of it can be kept but the display fields).
pub fn without_cvc(key: &CardKey, order_id: &str, card: &CardRef) -> Option<CardRef> {
    let number = open_part(key, order_id, Part::Number, &card.sealed).ok()?.number?;
    Some(CardRef { sealed: seal_number(key, order_id, &number), sealed_cvc: None, ..card.clone() })
}

/// Test and audit aid: the plaintext JSON of any sealed value (`sealed` or `sealed_cvc`, versioned
/// or legacy) of `order_id`, or `None` if no configured key opens it. For checking that what is
/// stored holds no CVC; never log its result.
pub fn open_any(key: &CardKey, order_id: &str, sealed: &str) -> Option<String> {
    [Part::Number, Part::Cvc].into_iter().find_map(|part| {
        let s = open_part(key, order_id, part, sealed).ok()?;
        serde_json::to_string(&s).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sagaway_contract::redact::drop_sealed_cvcs;

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
        assert_eq!(open(&key, "order-1", &r).unwrap(), ("4242424242424242".to_string(), Some("123".to_string())));
        assert!(open(&key, "order-2", &r).is_err());
        assert_eq!(r.fingerprint, seal(&key, "order-9", &card("4242 4242 4242 4242")).fingerprint);
        assert!(format!("{:?}", card("4242424242424242")).contains("****4242"));
    }

    const K1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const K2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn the_three_subkeys_are_distinct_and_none_is_the_master_key() {
        let raw: [u8; 32] = hex::decode(K1).unwrap().try_into().unwrap();
        let k = MasterKey::new(None, raw);
        let all = [k.raw, k.seal, k.fingerprint, k.idempotency];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Deterministic: the same master key always gives the same subkeys and id.
        let again = MasterKey::new(None, raw);
        assert_eq!((again.seal, again.fingerprint, again.idempotency, again.id.clone()), (k.seal, k.fingerprint, k.idempotency, k.id.clone()));
        assert_eq!(k.id.len(), 8);
        assert!(k.id.chars().all(|c| c.is_ascii_hexdigit()));
        // A fingerprint and a body hash of the same bytes differ: different subkeys.
        let key = CardKey::from_hex(K1).unwrap();
        assert_ne!(fingerprint(&key, "4242424242424242"), idempotency_hash(&key, b"4242424242424242"));
    }

    #[test]
    fn a_sealed_card_names_its_key_and_every_configured_key_opens() {
        let old = CardKey::from_list(&format!("k1:{K1}")).unwrap();
        let rotated = CardKey::from_list(&format!("k2:{K2},k1:{K1}")).unwrap();
        assert_eq!((rotated.active_id(), rotated.ids()), ("k2", vec!["k2", "k1"]));
        let before = seal(&old, "order-1", &card("4242424242424242"));
        assert_eq!(sealed_key_id(&before.sealed), Some("k1"));
        assert_eq!(sealed_key_id(before.sealed_cvc.as_deref().unwrap()), Some("k1"));
        assert!(before.sealed.starts_with("v2.k1."));
        // After the rotation: the old key still opens what it sealed; new cards use the new key.
        assert_eq!(open(&rotated, "order-1", &before).unwrap(), ("4242424242424242".into(), Some("123".into())));
        let after = seal(&rotated, "order-2", &card("4242424242424242"));
        assert_eq!(sealed_key_id(&after.sealed), Some("k2"));
        // ...which the old configuration cannot open (it does not know k2).
        let err = open(&old, "order-2", &after).unwrap_err().to_string();
        assert!(err.contains("\"k2\"") && err.contains("not configured"), "{err}");
        // Fingerprints and body hashes of before the rotation still match.
        assert_ne!(before.fingerprint, after.fingerprint);
        assert!(fingerprint_matches(&rotated, &before.fingerprint, "4242 4242 4242 4242"));
        assert!(fingerprint_matches(&rotated, &after.fingerprint, "4242424242424242"));
        assert!(!fingerprint_matches(&rotated, &before.fingerprint, "4000000000000002"));
        let body = br#"{"user_id":"alice"}"#;
        assert!(idempotency_hashes(&rotated, body).contains(&idempotency_hash(&old, body)));
        assert_eq!(idempotency_hashes(&rotated, body)[0], idempotency_hash(&rotated, body), "the active key's hash comes first");
    }

    #[test]
    fn a_wrong_key_order_part_or_key_id_does_not_open() {
        let key = CardKey::from_list(&format!("k1:{K1}")).unwrap();
        let other = CardKey::from_list(&format!("k1:{K2}")).unwrap();
        let r = seal(&key, "order-1", &card("4242424242424242"));
        assert!(open(&other, "order-1", &r).is_err(), "same id, another key");
        assert!(open(&key, "order-2", &r).is_err(), "another order");
        // The CVC blob passed off as the number (and back) does not open: the part is bound in.
        let swapped = CardRef { sealed: r.sealed_cvc.clone().unwrap(), sealed_cvc: Some(r.sealed.clone()), ..r.clone() };
        assert!(open(&key, "order-1", &swapped).is_err());
        // Relabelling the key id does not open either (the id is bound in too).
        let relabelled = CardKey::from_list(&format!("k9:{K1}")).unwrap();
        let moved = CardRef { sealed: r.sealed.replacen("v2.k1.", "v2.k9.", 1), sealed_cvc: None, ..r.clone() };
        assert!(open(&relabelled, "order-1", &moved).is_err());
        assert!(open(&key, "order-1", &CardRef { sealed: "v2.k1".into(), ..r.clone() }).is_err());
        assert!(open(&key, "order-1", &CardRef { sealed: "v2.k1.!!".into(), ..r }).is_err());
    }

    #[test]
    fn a_card_without_its_cvc_opens_to_the_number_alone() {
        let rotated = CardKey::from_list(&format!("k2:{K2},k1:{K1}")).unwrap();
        let old = CardKey::from_list(&format!("k1:{K1}")).unwrap();
        let r = seal(&old, "order-1", &card("4242424242424242"));
        assert!(may_hold_cvc(&r));
        let stripped = without_cvc(&rotated, "order-1", &r).unwrap();
        assert!(!may_hold_cvc(&stripped));
        assert_eq!(stripped.sealed_cvc, None);
        assert_eq!(sealed_key_id(&stripped.sealed), Some("k2"), "resealed under the active key");
        assert_eq!((stripped.fingerprint.as_str(), stripped.last4.as_str()), (r.fingerprint.as_str(), "4242"));
        assert_eq!(open(&rotated, "order-1", &stripped).unwrap(), ("4242424242424242".into(), None));
        let plain = open_any(&rotated, "order-1", &stripped.sealed).unwrap();
        assert!(!plain.contains("cvc") && plain.contains("4242424242424242"));
        assert!(open_any(&rotated, "order-1", r.sealed_cvc.as_deref().unwrap()).unwrap().contains("\"cvc\""));
        assert!(!serde_json::to_string(&stripped).unwrap().contains("sealed_cvc"));
        assert!(without_cvc(&rotated, "order-2", &r).is_none(), "a card that does not open is not resealed");
        let command = serde_json::json!({"type": "charge", "order_id": "order-1", "card": r});
        let kept = drop_sealed_cvcs(&command.to_string()).into_owned();
        assert!(!kept.contains("sealed_cvc") && kept.contains(&r.sealed), "{kept}");
        assert_eq!(drop_sealed_cvcs("not json sealed_cvc"), "not json sealed_cvc");
        // Validation without a CVC checks number and expiry only.
        assert!(validate_stored("4242424242424242", 12, 2030, None, (2026, 11)).is_ok());
        assert_eq!(validate_stored("4242424242424241", 12, 2030, None, (2026, 11)).unwrap_err().code, "incorrect_number");
        assert_eq!(validate_stored("4242424242424242", 12, 2030, Some(""), (2026, 11)).unwrap_err().code, "invalid_cvc");
    }

    /// The unversioned format of before key versioning: base64(nonce ‖ AES-GCM under the raw key),
    /// the order id as associated data, `{"number", "cvc"}` inside.
    fn legacy_seal(raw_hex: &str, order_id: &str, number: &str, cvc: &str) -> String {
        let raw = hex::decode(raw_hex).unwrap();
        let cipher = Aes256Gcm::new_from_slice(&raw).unwrap();
        let nonce = [7u8; 12];
        let plain = serde_json::to_vec(&serde_json::json!({"number": number, "cvc": cvc})).unwrap();
        let ct = cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: order_id.as_bytes() }).unwrap();
        B64.encode([nonce.to_vec(), ct].concat())
    }

    #[test]
    fn legacy_sealed_cards_and_hashes_still_open_and_match() {
        let legacy = CardRef {
            brand: "visa".into(),
            last4: "4242".into(),
            exp_month: 12,
            exp_year: 2030,
            fingerprint: hmac_hex(&hex::decode(K1).unwrap(), b"4242424242424242"),
            sealed: legacy_seal(K1, "order-1", "4242424242424242", "123"),
            sealed_cvc: None,
        };
        // CARD_KEY=K1 as it was, and K1 kept (under its derived id) after a rotation to K2.
        let rotated = CardKey::from_list(&format!("k2:{K2},{K1}")).unwrap();
        assert_eq!(rotated.ids()[1], CardKey::from_hex(K1).unwrap().active_id(), "a bare key keeps its derived id in a list");
        for key in [CardKey::from_hex(K1).unwrap(), rotated.clone()] {
            assert_eq!(open(&key, "order-1", &legacy).unwrap(), ("4242424242424242".into(), Some("123".into())));
            assert!(fingerprint_matches(&key, &legacy.fingerprint, "4242424242424242"));
            assert!(idempotency_hashes(&key, b"body").contains(&hmac_hex(&hex::decode(K1).unwrap(), b"body")));
        }
        assert!(may_hold_cvc(&legacy));
        assert!(open(&rotated, "order-2", &legacy).is_err());
        let stripped = without_cvc(&rotated, "order-1", &legacy).unwrap();
        assert_eq!(open(&rotated, "order-1", &stripped).unwrap(), ("4242424242424242".into(), None));
    }

    #[test]
    fn key_lists_are_parsed_strictly_and_never_echo_a_key() {
        let secret = "abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd";
        for (list, why) in [
            ("", "empty"),
            ("k1:abc", "short"),
            (&format!("k1:{K1},k1:{K2}") as &str, "duplicate id"),
            (&format!("k1:{K1},k2:{K1}"), "duplicate key"),
            (&format!("bad.id:{K1}"), "a dot in the id"),
            (&format!("k1:{}", &secret[..63]), "odd length"),
        ] {
            let err = CardKey::from_list(list).map(|_| ()).unwrap_err().to_string();
            assert!(!err.contains(&K1[..16]) && !err.contains(&secret[..16]), "{why}: {err}");
        }
        let keys = CardKey::from_list(&format!(" k2:{K2}\n k1:{K1} ")).unwrap();
        assert_eq!(keys.ids(), vec!["k2", "k1"], "whitespace separates too (a mounted file)");
        let debug = format!("{keys:?}");
        assert!(debug.contains("k2") && !debug.contains(&K2[..8]) && !debug.contains(&K1[..8]), "{debug}");
    }

    #[test]
    fn the_development_key_is_refused_unless_sagaway_env_is_dev() {
        // Unset: the development key, only under SAGAWAY_ENV=dev.
        let err = CardKey::from_settings("", "", "").unwrap_err().to_string();
        assert!(err.contains("CARD_KEYS") && err.contains("SAGAWAY_ENV=dev"), "{err}");
        assert!(CardKey::from_settings("", "", "production").is_err());
        let (keys, dev) = CardKey::from_settings("", "", "dev").unwrap();
        assert!(dev);
        assert_eq!(keys.active_id(), CardKey::from_hex(DEV_CARD_KEY).unwrap().active_id());
        // Set explicitly to it (either form, even as an old key): the same.
        let err = CardKey::from_settings("", DEV_CARD_KEY, "").unwrap_err().to_string();
        assert!(err.contains("development key") && err.contains("SAGAWAY_ENV"), "{err}");
        assert!(CardKey::from_settings(&format!("k2:{K2},old:{DEV_CARD_KEY}"), "", "staging").is_err());
        assert!(CardKey::from_settings(&format!("k2:{K2},old:{DEV_CARD_KEY}"), "", "dev").unwrap().1);
        // A real key: fine anywhere, and not flagged.
        let (keys, dev) = CardKey::from_settings("", K1, "").unwrap();
        assert!(!dev);
        assert_eq!(keys.ids().len(), 1);
        let (keys, dev) = CardKey::from_settings(&format!("k2:{K2},k1:{K1}"), "", "").unwrap();
        assert_eq!((keys.active_id(), dev), ("k2", false));
        assert!(CardKey::from_settings(&format!("k2:{K2}"), K1, "dev").is_err(), "both forms at once are ambiguous");
    }
}
