//! Request signing between banks. Every inter-bank request carries the sending bank's code, a
//! timestamp, a nonce and an Ed25519 signature over a canonical string; the receiving bank checks
//! it against the sender's public key in the static directory. No I/O: the adapter (not built yet)
//! reads the headers, asks [`authenticate`], and answers 401 with the [`Refusal`]'s code.
//!
//! The canonical string is, one field a line:
//!
//! ```text
//! SAGAWAY-INTERBANK-V1
//! POST
//! /interbank/tx/7f3e…/prepare
//! <hex SHA-256 of the body (of the empty string when there is none)>
//! 1767225600
//! 4f1c2a9be0d34c5e8a7b6c5d4e3f2a1b
//! 001
//! ```
//!
//! Refused: a request without the four headers ([`Refusal::Unsigned`]), malformed fields, a sender
//! not in the directory, a signature that does not verify with the sender's key (forged, or any byte
//! of method, path, body, timestamp, nonce or sender changed), a timestamp more than the skew window
//! (±30 s by default) from the receiver's clock, and a nonce the sender already used while it could
//! still be accepted (a replay). Nonces live in a [`NonceStore`] (injectable: in memory here, a table
//! with a unique key in the adapter), remembered until their timestamp leaves the window — after that
//! the timestamp check refuses the request anyway.
//!
//! The signature is checked before the nonce is remembered, so forged requests cannot use up a
//! bank's nonces.

use std::{collections::HashMap, fmt};

use base64::{Engine, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};

/// The header carrying the sending bank's code.
pub const HEADER_BANK: &str = "x-interbank-bank";
/// Unix seconds at the sender when it signed.
pub const HEADER_TIMESTAMP: &str = "x-interbank-timestamp";
pub const HEADER_NONCE: &str = "x-interbank-nonce";
/// Base64 (standard, padded) of the 64-byte Ed25519 signature.
pub const HEADER_SIGNATURE: &str = "x-interbank-signature";

/// The first line of the canonical string (the scheme and its version).
pub const SCHEME: &str = "SAGAWAY-INTERBANK-V1";

/// What is signed of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path and query as sent (`/interbank/tx/{tx_id}/prepare`).
    pub path: &'a str,
    pub body: &'a [u8],
}

/// Why a request is refused. Nothing is done for a refused request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("unsigned request: no {0} header")]
    Unsigned(&'static str),
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("bank {0} is not in the directory")]
    UnknownBank(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("timestamp {skew} s away from now, outside the window")]
    Stale { skew: i64 },
    #[error("nonce already used")]
    Replayed,
}

impl Refusal {
    /// The problem's `code` in the 401 answer.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Unsigned(_) => "unsigned",
            Refusal::Malformed(_) => "malformed_signature",
            Refusal::UnknownBank(_) => "unknown_bank",
            Refusal::BadSignature => "bad_signature",
            Refusal::Stale { .. } => "stale",
            Refusal::Replayed => "replayed",
        }
    }
}

/// The four signature headers of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub bank: String,
    pub timestamp: i64,
    pub nonce: String,
    /// Base64 of the signature.
    pub signature: String,
}

impl Credentials {
    /// The headers to send.
    pub fn headers(&self) -> [(&'static str, String); 4] {
        [
            (HEADER_BANK, self.bank.clone()),
            (HEADER_TIMESTAMP, self.timestamp.to_string()),
            (HEADER_NONCE, self.nonce.clone()),
            (HEADER_SIGNATURE, self.signature.clone()),
        ]
    }

    /// Reads them back; `header` looks a header up by its (lower-case) name.
    pub fn from_headers<'h>(header: impl Fn(&str) -> Option<&'h str>) -> Result<Self, Refusal> {
        let get = |name: &'static str| header(name).map(str::trim).filter(|v| !v.is_empty()).ok_or(Refusal::Unsigned(name));
        let (bank, timestamp, nonce, signature) = (get(HEADER_BANK)?, get(HEADER_TIMESTAMP)?, get(HEADER_NONCE)?, get(HEADER_SIGNATURE)?);
        let timestamp = timestamp.parse().map_err(|_| Refusal::Malformed("timestamp"))?;
        Ok(Self { bank: bank.into(), timestamp, nonce: nonce.into(), signature: signature.into() })
    }
}

fn valid_bank(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit())
}

fn valid_nonce(nonce: &str) -> bool {
    (16..=128).contains(&nonce.len()) && nonce.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_method(method: &str) -> bool {
    !method.is_empty() && method.bytes().all(|b| b.is_ascii_alphabetic())
}

fn valid_path(path: &str) -> bool {
    path.starts_with('/') && path.bytes().all(|b| b.is_ascii_graphic())
}

/// The string that is signed (fields checked first: none may smuggle a line break).
pub fn canonical(request: &Request<'_>, timestamp: i64, nonce: &str, sender: &str) -> Result<String, Refusal> {
    if !valid_method(request.method) {
        return Err(Refusal::Malformed("method"));
    }
    if !valid_path(request.path) {
        return Err(Refusal::Malformed("path"));
    }
    if !valid_nonce(nonce) {
        return Err(Refusal::Malformed("nonce"));
    }
    if !valid_bank(sender) {
        return Err(Refusal::Malformed("bank"));
    }
    let body = hex::encode(Sha256::digest(request.body));
    Ok(format!("{SCHEME}\n{}\n{}\n{body}\n{timestamp}\n{nonce}\n{sender}", request.method.to_ascii_uppercase(), request.path))
}

/// A bank's public key, as the directory lists it (base64 of the 32 raw bytes).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    pub fn from_base64(text: &str) -> Result<Self, Refusal> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| Refusal::Malformed("public key"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| Refusal::Malformed("public key"))?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map(PublicKey).map_err(|_| Refusal::Malformed("public key"))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_bytes())
    }

    /// Whether `signature` (base64) is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &str) -> Result<(), Refusal> {
        let bytes = STANDARD.decode(signature).map_err(|_| Refusal::Malformed("signature"))?;
        let signature = ed25519_dalek::Signature::from_slice(&bytes).map_err(|_| Refusal::Malformed("signature"))?;
        self.0.verify(message, &signature).map_err(|_| Refusal::BadSignature)?;
        // Strict verification also refuses malleable signatures and weak keys.
        self.0.verify_strict(message, &signature).map_err(|_| Refusal::BadSignature)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

/// A bank's own key pair and code. `Debug` shows the code and the public half only.
#[derive(Clone)]
pub struct BankKeyPair {
    pub code: String,
    key: ed25519_dalek::SigningKey,
}

impl BankKeyPair {
    /// From a 32-byte secret seed (the key file's contents).
    pub fn from_seed(code: impl Into<String>, seed: [u8; 32]) -> Self {
        Self { code: code.into(), key: ed25519_dalek::SigningKey::from_bytes(&seed) }
    }

    /// A fresh key pair.
    pub fn generate(code: impl Into<String>) -> Self {
        Self::from_seed(code, rand::random())
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.key.verifying_key())
    }

    /// The mark this bank puts in the ids of the transfers it coordinates ([`TxIdMark`]).
    pub fn tx_id_mark(&self) -> TxIdMark {
        TxIdMark::derive(&self.code, &self.key.to_bytes())
    }

    /// Signs `request` as of `timestamp` (unix seconds) with `nonce`.
    pub fn sign(&self, request: &Request<'_>, timestamp: i64, nonce: &str) -> Result<Credentials, Refusal> {
        let text = canonical(request, timestamp, nonce, &self.code)?;
        let signature = STANDARD.encode(self.key.sign(text.as_bytes()).to_bytes());
        Ok(Credentials { bank: self.code.clone(), timestamp, nonce: nonce.to_string(), signature })
    }
}

impl fmt::Debug for BankKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BankKeyPair").field("code", &self.code).field("public_key", &self.public_key()).finish_non_exhaustive()
    }
}

/// How a coordinator tells a transfer it issued from one it never did, with no record of either:
/// the ids it issues carry a mark only it can make. A transfer id is a UUIDv7 (time-ordered, like
/// every id here) whose 74 free bits are 34 random bits and a 40-bit tag, the first 5 bytes of
/// SHA-256(secret ‖ the id's first 11 bytes); the secret is derived from the bank's signing key.
/// Unlike a table, the mark survives the loss of the database rows that recorded the transfer (a
/// restore from a backup loses any table with them): the coordinator still knows the id is its own
/// and that the transfer was begun, so it never presumes such a transfer aborted. A bank that
/// changes its signing key no longer recognises the ids issued under the old one (see
/// docs/banks.md: rotate with no leg in doubt).
#[derive(Clone)]
pub struct TxIdMark {
    secret: [u8; 32],
}

impl TxIdMark {
    /// The mark of bank `code` with signing seed `seed`.
    pub fn derive(code: &str, seed: &[u8; 32]) -> Self {
        let mut h = Sha256::new();
        h.update(b"SAGAWAY-TX-ID-V1\n");
        h.update(code.as_bytes());
        h.update(b"\n");
        h.update(seed);
        Self { secret: h.finalize().into() }
    }

    fn tag(&self, head: &[u8]) -> [u8; 5] {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(head);
        let digest = h.finalize();
        digest[..5].try_into().expect("5 bytes")
    }

    /// A new id issued at `unix_ms` with 34 bits of `random`, as UUID text (lowercase, hyphenated).
    pub fn issue(&self, unix_ms: u64, random: u64) -> String {
        let mut b = [0u8; 16];
        b[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
        b[6] = 0x70 | ((random >> 30) & 0x0f) as u8;
        b[7] = (random >> 22) as u8;
        b[8] = 0x80 | ((random >> 16) & 0x3f) as u8;
        b[9] = (random >> 8) as u8;
        b[10] = random as u8;
        let tag = self.tag(&b[..11]);
        b[11..].copy_from_slice(&tag);
        uuid::Uuid::from_bytes(b).hyphenated().to_string()
    }

    /// Whether `tx_id` is an id this mark issued.
    pub fn issued(&self, tx_id: &str) -> bool {
        let Ok(id) = uuid::Uuid::try_parse(tx_id) else {
            return false;
        };
        let b = id.as_bytes();
        b[6] >> 4 == 7 && b[8] >> 6 == 0b10 && b[11..] == self.tag(&b[..11])
    }
}

impl fmt::Debug for TxIdMark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TxIdMark(..)")
    }
}

/// A fresh nonce: 16 random bytes in hex.
pub fn new_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// One bank in the static directory (configuration, not a service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    pub code: String,
    pub url: String,
    pub public_key: PublicKey,
}

/// The banks this bank knows, by code.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    entries: HashMap<String, DirectoryEntry>,
}

impl Directory {
    pub fn new(entries: impl IntoIterator<Item = DirectoryEntry>) -> Self {
        Self { entries: entries.into_iter().map(|e| (e.code.clone(), e)).collect() }
    }

    pub fn get(&self, code: &str) -> Option<&DirectoryEntry> {
        self.entries.get(code)
    }

    /// Every bank, in code order.
    pub fn banks(&self) -> Vec<&DirectoryEntry> {
        let mut all: Vec<&DirectoryEntry> = self.entries.values().collect();
        all.sort_by(|a, b| a.code.cmp(&b.code));
        all
    }

    /// Parses the directory file: one bank a line, `<code> <url> <public key, base64>`; blank lines
    /// and lines starting with `#` are skipped. A malformed line, a repeated code or a URL that is
    /// not http(s) is an error naming the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut entries: HashMap<String, DirectoryEntry> = HashMap::new();
        for (n, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [code, url, key] = fields[..] else {
                return Err(format!("line {n}: expected `<code> <url> <public key>`"));
            };
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("line {n}: the bank code must be 3 digits"));
            }
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("line {n}: the URL must start with http:// or https://"));
            }
            let public_key = PublicKey::from_base64(key).map_err(|_| format!("line {n}: the public key is not 32 bytes of base64"))?;
            let entry = DirectoryEntry { code: code.to_string(), url: url.trim_end_matches('/').to_string(), public_key };
            if entries.insert(code.to_string(), entry).is_some() {
                return Err(format!("line {n}: bank {code} is listed twice"));
            }
        }
        Ok(Self { entries })
    }

    /// The file [`Directory::parse`] reads back.
    pub fn render(&self) -> String {
        self.banks().iter().map(|e| format!("{} {} {}\n", e.code, e.url, e.public_key.to_base64())).collect()
    }
}

/// How far a request's timestamp may be from the receiver's clock, either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkewWindow {
    pub seconds: i64,
}

impl Default for SkewWindow {
    fn default() -> Self {
        Self { seconds: 30 }
    }
}

/// Remembers the nonces seen, per sending bank.
pub trait NonceStore {
    /// Records `nonce` of `bank` until `until` (unix seconds) and says whether it was fresh: `false`
    /// if it was already recorded and not yet expired at `now`.
    fn remember(&mut self, bank: &str, nonce: &str, until: i64, now: i64) -> bool;
}

/// A [`NonceStore`] in memory (tests, and a single-process bank).
#[derive(Debug, Default)]
pub struct MemoryNonces {
    seen: HashMap<(String, String), i64>,
}

impl MemoryNonces {
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

impl NonceStore for MemoryNonces {
    fn remember(&mut self, bank: &str, nonce: &str, until: i64, now: i64) -> bool {
        self.seen.retain(|_, expires| *expires >= now);
        let key = (bank.to_string(), nonce.to_string());
        if self.seen.contains_key(&key) {
            return false;
        }
        self.seen.insert(key, until);
        true
    }
}

/// A request that passed every check except the nonce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub bank: String,
    pub nonce: String,
    /// Until when the nonce must be remembered: the last instant its timestamp is still accepted.
    pub remember_until: i64,
}

/// Checks the signature and the timestamp of `request` (at `now`, unix seconds). Pure; the nonce is
/// checked by [`authenticate`] (or by the adapter with [`Verified::remember_until`]).
pub fn verify(request: &Request<'_>, credentials: &Credentials, directory: &Directory, now: i64, window: SkewWindow) -> Result<Verified, Refusal> {
    let text = canonical(request, credentials.timestamp, &credentials.nonce, &credentials.bank)?;
    let entry = directory.get(&credentials.bank).ok_or_else(|| Refusal::UnknownBank(credentials.bank.clone()))?;
    entry.public_key.verify(text.as_bytes(), &credentials.signature)?;
    let skew = credentials.timestamp.saturating_sub(now);
    if skew.abs() > window.seconds {
        return Err(Refusal::Stale { skew });
    }
    Ok(Verified { bank: credentials.bank.clone(), nonce: credentials.nonce.clone(), remember_until: credentials.timestamp + window.seconds })
}

/// Every check: signature, timestamp, then the nonce (remembered only for a request that verified).
pub fn authenticate(
    request: &Request<'_>,
    credentials: &Credentials,
    directory: &Directory,
    now: i64,
    window: SkewWindow,
    nonces: &mut impl NonceStore,
) -> Result<Verified, Refusal> {
    let verified = verify(request, credentials, directory, now, window)?;
    if !nonces.remember(&verified.bank, &verified.nonce, verified.remember_until, now) {
        return Err(Refusal::Replayed);
    }
    Ok(verified)
}

#[cfg(test)]
mod tx_id_tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn an_issued_id_is_a_uuid_v7_its_issuer_recognises_and_no_one_else(ms in 0u64..(1 << 48), random in any::<u64>(), flip in 0usize..128) {
            let mark = BankKeyPair::from_seed("001", [7; 32]).tx_id_mark();
            let id = mark.issue(ms, random);
            let parsed = uuid::Uuid::parse_str(&id).unwrap();
            prop_assert_eq!(parsed.get_version_num(), 7);
            prop_assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
            prop_assert_eq!(parsed.get_timestamp().map(|t| t.to_unix()), Some((ms / 1000, (ms % 1000) as u32 * 1_000_000)));
            prop_assert!(mark.issued(&id));
            prop_assert!(mark.issued(&id.to_uppercase()));
            // Another bank's mark, or the same key under another code, does not recognise it.
            prop_assert!(!BankKeyPair::from_seed("001", [8; 32]).tx_id_mark().issued(&id));
            prop_assert!(!BankKeyPair::from_seed("002", [7; 32]).tx_id_mark().issued(&id));
            // Any one bit changed and it is not one this bank issued.
            let mut bytes = *parsed.as_bytes();
            bytes[flip / 8] ^= 1 << (flip % 8);
            prop_assert!(!mark.issued(&uuid::Uuid::from_bytes(bytes).to_string()));
        }
    }

    #[test]
    fn ids_not_issued_here_are_not_recognised() {
        let mark = BankKeyPair::generate("001").tx_id_mark();
        for _ in 0..1000 {
            assert!(!mark.issued(&uuid::Uuid::now_v7().to_string()));
        }
        assert!(!mark.issued("not-a-uuid"));
        assert!(!mark.issued(""));
        let a = mark.issue(1_767_225_600_000, rand::random());
        let b = mark.issue(1_767_225_600_000, rand::random());
        assert_ne!(a, b, "34 random bits per millisecond");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_directory_file_round_trips_and_refuses_bad_lines() {
        let a = super::BankKeyPair::from_seed("001", [1; 32]).public_key().to_base64();
        let b = super::BankKeyPair::from_seed("002", [2; 32]).public_key().to_base64();
        let text = format!("# banks\n001 http://127.0.0.1:3340/ {a}\n\n002 http://127.0.0.1:3341 {b}\n");
        let dir = super::Directory::parse(&text).unwrap();
        assert_eq!(dir.get("001").unwrap().url, "http://127.0.0.1:3340");
        assert_eq!(dir.banks().len(), 2);
        assert_eq!(super::Directory::parse(&dir.render()).unwrap().render(), dir.render());
        for (bad, why) in [
            (format!("01 http://x {a}"), "3 digits"),
            (format!("001 ftp://x {a}"), "http"),
            ("001 http://x AAAA".to_string(), "public key"),
            (format!("001 http://x {a}\n001 http://y {a}"), "twice"),
            ("001 http://x".to_string(), "expected"),
        ] {
            let err = super::Directory::parse(&bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    use super::*;

    const NOW: i64 = 1_767_225_600;
    const NONCE: &str = "4f1c2a9be0d34c5e8a7b6c5d4e3f2a1b";

    fn banks() -> (BankKeyPair, BankKeyPair, Directory) {
        let a = BankKeyPair::from_seed("001", [1; 32]);
        let b = BankKeyPair::from_seed("002", [2; 32]);
        let dir = Directory::new([a.clone(), b.clone()].map(|k| DirectoryEntry {
            code: k.code.clone(),
            url: format!("http://localhost:334{}", &k.code[2..]),
            public_key: k.public_key(),
        }));
        (a, b, dir)
    }

    fn prepare() -> Request<'static> {
        Request { method: "POST", path: "/interbank/tx/tx-1/prepare", body: br#"{"leg_index":0}"# }
    }

    fn check(req: &Request<'_>, creds: &Credentials, dir: &Directory, now: i64, nonces: &mut MemoryNonces) -> Result<Verified, Refusal> {
        authenticate(req, creds, dir, now, SkewWindow::default(), nonces)
    }

    #[test]
    fn a_signed_request_is_accepted_once() {
        let (a, _, dir) = banks();
        let creds = a.sign(&prepare(), NOW, NONCE).unwrap();
        let mut nonces = MemoryNonces::default();
        let ok = check(&prepare(), &creds, &dir, NOW + 5, &mut nonces).unwrap();
        assert_eq!(ok, Verified { bank: "001".into(), nonce: NONCE.into(), remember_until: NOW + 30 });
        // The same request again is a replay.
        assert_eq!(check(&prepare(), &creds, &dir, NOW + 6, &mut nonces), Err(Refusal::Replayed));
        // The headers round-trip.
        let headers = creds.headers();
        let back = Credentials::from_headers(|name| headers.iter().find(|(h, _)| *h == name).map(|(_, v)| v.as_str())).unwrap();
        assert_eq!(back, creds);
    }

    #[test]
    fn the_canonical_string_has_every_field_on_its_own_line() {
        let text = canonical(&Request { method: "post", path: "/interbank/tx/t/commit", body: b"" }, NOW, NONCE, "003").unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![SCHEME, "POST", "/interbank/tx/t/commit", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "1767225600", NONCE, "003"]
        );
    }

    #[test]
    fn unsigned_requests_are_refused() {
        assert_eq!(Credentials::from_headers(|_| None), Err(Refusal::Unsigned(HEADER_BANK)));
        let (a, _, _) = banks();
        let headers = a.sign(&prepare(), NOW, NONCE).unwrap().headers();
        for missing in [HEADER_BANK, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE] {
            let got = Credentials::from_headers(|name| headers.iter().find(|(h, _)| *h == name && *h != missing).map(|(_, v)| v.as_str()));
            assert_eq!(got, Err(Refusal::Unsigned(missing)));
        }
        let got = Credentials::from_headers(|name| if name == HEADER_TIMESTAMP { Some("yesterday") } else { Some("x") });
        assert_eq!(got, Err(Refusal::Malformed("timestamp")));
        assert_eq!(Refusal::Unsigned(HEADER_BANK).code(), "unsigned");
    }

    #[test]
    fn mis_signed_requests_are_refused() {
        let (a, b, dir) = banks();
        let mut nonces = MemoryNonces::default();
        let creds = a.sign(&prepare(), NOW, NONCE).unwrap();
        // Any signed field changed.
        let other_body = Request { body: br#"{"leg_index":1}"#, ..prepare() };
        let other_path = Request { path: "/interbank/tx/tx-2/prepare", ..prepare() };
        let other_method = Request { method: "PUT", ..prepare() };
        for req in [other_body, other_path, other_method] {
            assert_eq!(check(&req, &creds, &dir, NOW, &mut nonces), Err(Refusal::BadSignature), "{req:?}");
        }
        for tampered in [
            Credentials { timestamp: NOW + 1, ..creds.clone() },
            Credentials { nonce: "0000000000000000".into(), ..creds.clone() },
            // Signed by 001, claimed to be from 002.
            Credentials { bank: "002".into(), ..creds.clone() },
            // 002 signs and claims to be 001: forged.
            Credentials { bank: "001".into(), ..b.sign(&prepare(), NOW, NONCE).unwrap() },
        ] {
            assert_eq!(check(&prepare(), &tampered, &dir, NOW, &mut nonces), Err(Refusal::BadSignature), "{tampered:?}");
        }
        // A key no one knows.
        let stranger = BankKeyPair::from_seed("009", [9; 32]);
        let creds9 = stranger.sign(&prepare(), NOW, NONCE).unwrap();
        assert_eq!(check(&prepare(), &creds9, &dir, NOW, &mut nonces), Err(Refusal::UnknownBank("009".into())));
        // Garbage signatures.
        for sig in ["not base64!", "AAAA"] {
            let bad = Credentials { signature: sig.into(), ..creds.clone() };
            assert_eq!(check(&prepare(), &bad, &dir, NOW, &mut nonces), Err(Refusal::Malformed("signature")));
        }
        assert!(nonces.is_empty(), "refused requests use up no nonce");
        // The genuine one still passes.
        assert!(check(&prepare(), &creds, &dir, NOW, &mut nonces).is_ok());
    }

    #[test]
    fn stale_or_early_timestamps_are_refused() {
        let (a, _, dir) = banks();
        let mut nonces = MemoryNonces::default();
        for (signed_at, ok) in [(NOW - 31, false), (NOW - 30, true), (NOW + 30, true), (NOW + 31, false), (NOW - 3600, false)] {
            let creds = a.sign(&prepare(), signed_at, &new_nonce()).unwrap();
            let got = check(&prepare(), &creds, &dir, NOW, &mut nonces);
            if ok {
                assert!(got.is_ok(), "{signed_at}: {got:?}");
            } else {
                assert_eq!(got, Err(Refusal::Stale { skew: signed_at - NOW }));
            }
        }
        // A configured window.
        let creds = a.sign(&prepare(), NOW - 50, &new_nonce()).unwrap();
        assert!(authenticate(&prepare(), &creds, &dir, NOW, SkewWindow { seconds: 60 }, &mut nonces).is_ok());
    }

    #[test]
    fn replayed_nonces_are_refused_while_they_could_be_accepted() {
        let (a, b, dir) = banks();
        let mut nonces = MemoryNonces::default();
        let first = a.sign(&prepare(), NOW, NONCE).unwrap();
        assert!(check(&prepare(), &first, &dir, NOW, &mut nonces).is_ok());
        // Same nonce, another request and timestamp: still a replay.
        let commit = Request { method: "POST", path: "/interbank/tx/tx-1/commit", body: b"" };
        let again = a.sign(&commit, NOW + 10, NONCE).unwrap();
        assert_eq!(check(&commit, &again, &dir, NOW + 10, &mut nonces), Err(Refusal::Replayed));
        // Another bank may use the same nonce.
        assert!(check(&prepare(), &b.sign(&prepare(), NOW, NONCE).unwrap(), &dir, NOW, &mut nonces).is_ok());
        // Once the first request's timestamp has left the window, the nonce is forgotten, and the
        // old request is refused as stale instead.
        assert_eq!(check(&prepare(), &first, &dir, NOW + 31, &mut nonces), Err(Refusal::Stale { skew: -31 }));
        let later = a.sign(&prepare(), NOW + 45, NONCE).unwrap();
        assert!(check(&prepare(), &later, &dir, NOW + 45, &mut nonces).is_ok());
        assert!(nonces.len() <= 2, "expired nonces are purged");
    }

    #[test]
    fn malformed_fields_cannot_be_signed_or_verified() {
        let (a, _, dir) = banks();
        let mut nonces = MemoryNonces::default();
        assert_eq!(a.sign(&prepare(), NOW, "short"), Err(Refusal::Malformed("nonce")));
        assert_eq!(a.sign(&prepare(), NOW, "4f1c2a9be0d34c5e\n001"), Err(Refusal::Malformed("nonce")));
        assert_eq!(a.sign(&Request { path: "/x\n/y", ..prepare() }, NOW, NONCE), Err(Refusal::Malformed("path")));
        assert_eq!(a.sign(&Request { method: "PO ST", ..prepare() }, NOW, NONCE), Err(Refusal::Malformed("method")));
        let creds = Credentials { bank: "1".into(), ..a.sign(&prepare(), NOW, NONCE).unwrap() };
        assert_eq!(check(&prepare(), &creds, &dir, NOW, &mut nonces), Err(Refusal::Malformed("bank")));
        assert_eq!(PublicKey::from_base64("AAAA"), Err(Refusal::Malformed("public key")));
        let key = a.public_key();
        assert_eq!(PublicKey::from_base64(&key.to_base64()), Ok(key));
        assert!(format!("{a:?}").contains("001"));
    }
}
