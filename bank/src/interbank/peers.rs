//! The HTTP client to other banks. Every request is signed with this bank's key (the path with its
//! query, the body, a timestamp and a fresh nonce); the directory says where each bank is.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use serde::{Serialize, de::DeserializeOwned};

use super::{AckBody, DecisionBody, LegBody, RecipientBody, VoteBody, auth::unix_now, parse_decision};
use crate::rules::{
    interbank::{Decision, Message, Outgoing, Reply},
    interbank_auth::{BankKeyPair, Directory, Request, new_nonce},
};

/// Why a call to another bank gave no usable answer. Every one of them is retried later by the
/// caller (the protocol's messages are idempotent), except [`PeerError::Refused`] for a recipient check.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("bank {0} is not in the directory")]
    UnknownBank(String),
    #[error("bank {bank} did not answer: {cause}")]
    Unreachable { bank: String, cause: String },
    #[error("bank {bank} answered {status}: {body}")]
    Refused { bank: String, status: u16, body: String },
    #[error("bank {bank} sent an answer this bank does not understand: {cause}")]
    BadAnswer { bank: String, cause: String },
}

/// The other banks, as this bank reaches them.
#[derive(Clone)]
pub struct Peers {
    http: reqwest::Client,
    key: BankKeyPair,
    directory: Arc<RwLock<Directory>>,
}

impl Peers {
    pub fn new(key: BankKeyPair, directory: Directory, timeout: Duration) -> Self {
        let http = reqwest::Client::builder().timeout(timeout).pool_idle_timeout(Duration::from_secs(30)).build().expect("an HTTP client");
        Self { http, key, directory: Arc::new(RwLock::new(directory)) }
    }

    /// This bank's code.
    pub fn code(&self) -> &str {
        &self.key.code
    }

    /// The directory as it is now.
    pub fn directory(&self) -> Directory {
        self.directory.read().expect("directory lock").clone()
    }

    /// Replaces the directory (tests start banks on port 0, then tell each the others' addresses).
    pub fn set_directory(&self, directory: Directory) {
        *self.directory.write().expect("directory lock") = directory;
    }

    /// This bank's code and every listed one's, in order: the banks a transfer may name.
    pub fn codes(&self) -> Vec<String> {
        let mut codes: Vec<String> = self.directory.read().expect("directory lock").banks().iter().map(|e| e.code.clone()).collect();
        codes.push(self.code().to_string());
        codes.sort();
        codes.dedup();
        codes
    }

    /// Whether `bank` is listed.
    pub fn knows(&self, bank: &str) -> bool {
        self.directory.read().expect("directory lock").get(bank).is_some()
    }

    async fn call<T: DeserializeOwned>(&self, bank: &str, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> Result<Option<T>, PeerError> {
        let url = self.directory.read().expect("directory lock").get(bank).map(|e| e.url.clone()).ok_or_else(|| PeerError::UnknownBank(bank.into()))?;
        let bytes = body.unwrap_or_default();
        let request = Request { method: method.as_str(), path, body: &bytes };
        let credentials = self.key.sign(&request, unix_now(), &new_nonce()).map_err(|e| PeerError::BadAnswer { bank: bank.into(), cause: e.to_string() })?;
        let mut builder = sagaway_messaging::trace::outgoing(self.http.request(method, format!("{url}{path}")));
        for (name, value) in credentials.headers() {
            builder = builder.header(name, value);
        }
        if !bytes.is_empty() {
            builder = builder.header("content-type", "application/json").body(bytes);
        }
        let unreachable = |e: reqwest::Error| PeerError::Unreachable { bank: bank.into(), cause: e.to_string() };
        let response = builder.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let body: String = text.chars().take(300).collect();
            return Err(PeerError::Refused { bank: bank.into(), status: status.as_u16(), body });
        }
        serde_json::from_str(&text).map(Some).map_err(|e| PeerError::BadAnswer { bank: bank.into(), cause: e.to_string() })
    }

    fn json(body: &impl Serialize) -> Option<Vec<u8>> {
        Some(serde_json::to_vec(body).expect("serializable"))
    }

    /// Sends one of the coordinator's messages to its leg and returns the participant's reply.
    pub async fn deliver(&self, tx_id: &str, out: &Outgoing) -> Result<Reply, PeerError> {
        let bad = |cause: &str| PeerError::BadAnswer { bank: out.to.clone(), cause: cause.into() };
        match &out.message {
            Message::Prepare(request) => {
                let vote: VoteBody = self
                    .call(&out.to, reqwest::Method::POST, &format!("/interbank/tx/{tx_id}/prepare"), Self::json(request))
                    .await?
                    .ok_or_else(|| bad("404 on prepare"))?;
                vote.parse().map(Reply::Vote).ok_or_else(|| bad("an unknown vote"))
            }
            Message::Commit | Message::Abort => {
                let verb = if matches!(out.message, Message::Commit) { "commit" } else { "abort" };
                let ack: AckBody = self
                    .call(&out.to, reqwest::Method::POST, &format!("/interbank/tx/{tx_id}/{verb}"), Self::json(&LegBody { leg: out.leg }))
                    .await?
                    .ok_or_else(|| bad("404 on a decision"))?;
                parse_decision(&ack.ack).map(Reply::Ack).ok_or_else(|| bad("an unknown acknowledgement"))
            }
        }
    }

    /// Asks the coordinator of `tx_id` what it decided (`None`: not yet — keep holding).
    pub async fn inquire(&self, coordinator: &str, tx_id: &str, leg: usize) -> Result<Option<Decision>, PeerError> {
        let body: DecisionBody = self
            .call(coordinator, reqwest::Method::GET, &format!("/interbank/tx/{tx_id}?leg={leg}"), None)
            .await?
            .ok_or_else(|| PeerError::BadAnswer { bank: coordinator.into(), cause: "404 on an inquiry".into() })?;
        match body.decision.as_deref() {
            None => Ok(None),
            Some(text) => parse_decision(text).map(Some).ok_or_else(|| PeerError::BadAnswer { bank: coordinator.into(), cause: format!("decision {text:?}") }),
        }
    }

    /// The recipient check at `bank` for account number `number` (digits; `None`: no such account).
    pub async fn recipient(&self, bank: &str, number: &str) -> Result<Option<RecipientBody>, PeerError> {
        self.call(bank, reqwest::Method::GET, &format!("/interbank/accounts/{number}"), None).await
    }

    /// The accounts `user_id` holds at `bank`, asked over the signed channel on the customer's
    /// behalf (`GET /interbank/accounts?holder=<user>`, signed like every inter-bank request): this
    /// bank vouches for the user it authenticated; their token never leaves it. A user id's
    /// characters need no escaping in a query (and a query has no dot-segments to resolve), so the
    /// path signed is the path received.
    pub async fn accounts_of<T: DeserializeOwned>(&self, bank: &str, user_id: &str) -> Result<T, PeerError> {
        if !sagaway_common::auth::valid_user_id(user_id) {
            return Err(PeerError::BadAnswer { bank: bank.into(), cause: "not a user id".into() });
        }
        self.call(bank, reqwest::Method::GET, &format!("/interbank/accounts?holder={user_id}"), None)
            .await?
            .ok_or_else(|| PeerError::BadAnswer { bank: bank.into(), cause: "404 on a customer's accounts".into() })
    }
}
