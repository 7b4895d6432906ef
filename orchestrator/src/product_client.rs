//! Reads reservations through the product service's public HTTP API (the orchestrator never reads
//! another service's tables). Used to validate `POST /payment` and to take the amount from the
//! reservation, never from the client.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sagaway_contract::money;
use serde::Deserialize;

/// The fields of a reservation the orchestrator needs.
#[derive(Debug, Clone, Deserialize)]
pub struct ReservationInfo {
    pub id: String,
    pub product_id: u64,
    pub user_id: String,
    pub quantity: i32,
    #[serde(deserialize_with = "money::deserialize")]
    pub total_price: Decimal,
    pub status: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct ProductClient {
    http: reqwest::Client,
    base: String,
}

impl ProductClient {
    pub fn new(base_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .pool_max_idle_per_host(64)
            .build()
            .expect("static client config");
        Self { http, base: base_url.trim_end_matches('/').to_string() }
    }

    /// Reads a reservation as the caller whose `Authorization` value (`Bearer …`) is relayed: `Ok(None)`
    /// when the product service says it does not exist — or is not the caller's, which it hides the same way.
    pub async fn reservation(&self, id: &str, authorization: &str) -> Result<Option<ReservationInfo>, String> {
        let res = sagaway_messaging::trace::outgoing(self.http.get(format!("{}/reservations/{id}", self.base)))
            .header(reqwest::header::AUTHORIZATION, authorization)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match res.status() {
            s if s.is_success() => res.json().await.map(Some).map_err(|e| e.to_string()),
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            s => Err(format!("GET /reservations/{id} answered {s}")),
        }
    }
}
