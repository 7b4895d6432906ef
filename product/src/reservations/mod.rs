//! Reservations: holds on stock.
//!
//! `POST /reserve` takes stock with ONE conditional UPDATE (`stock = stock - q WHERE stock >= q`)
//! inside the transaction that inserts the reservation, so stock never goes negative and is never
//! oversold, however many requests race. Every way out of HELD (confirm, release, expire) is a
//! conditional UPDATE on `status = 'HELD'`, so whichever of a racing release and expiry commits
//! first returns the stock and the other finds nothing to do: stock comes back exactly once.
//!
//! This module keeps the `reservations` table; the HTTP handlers are in [`api`].

pub mod api;

use std::time::Duration;

use http::StatusCode;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sagaway_messaging::outbox::{self, OutboxRelay, Outgoing};
use sagaway_contract::{messages::ProductReply, money};
use serde::{Deserialize, Serialize};
use sqlx::MySqlConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    AppState,
    error::{ApiError, ApiResult},
    idempotency,
};

/// A reservation as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Reservation {
    pub id: String,
    pub product_id: u64,
    pub user_id: String,
    pub quantity: i32,
    #[serde(serialize_with = "money::serialize", deserialize_with = "money::deserialize")]
    #[schema(value_type = String, example = "19.99")]
    pub unit_price: Decimal,
    #[serde(serialize_with = "money::serialize", deserialize_with = "money::deserialize")]
    #[schema(value_type = String, example = "39.98")]
    pub total_price: Decimal,
    /// HELD, CONFIRMED, RELEASED or EXPIRED.
    pub status: String,
    /// The order that locked it for payment, once the saga has.
    pub order_id: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /reserve` body. The user is the bearer token's subject; `user_id` may repeat it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "sagaway_contract::json::integral")]
    pub product_id: u64,
    /// Optional: if present it must equal the token's subject (403 `user_mismatch` otherwise).
    #[serde(default)]
    pub user_id: Option<String>,
    /// 1 to `PRODUCT_MAX_RESERVATION_QUANTITY` (1000 unless the deployment sets it).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(deserialize_with = "sagaway_contract::json::integral")]
    pub quantity: i64,
}

/// A reservation request once its user is known.
pub struct Hold<'a> {
    pub product_id: u64,
    pub user_id: &'a str,
    pub quantity: i32,
}

const RESERVATION_COLUMNS: &str = "id, product_id, CAST(user_id AS CHAR) AS user_id, quantity, unit_price, total_price, status, order_id, \
     expires_at, created_at, updated_at";

/// The request's fields; the quantity as stored. (The user id is the token's, checked there.)
pub fn validate(app: &AppState, req: &ReserveRequest) -> ApiResult<i32> {
    if req.product_id == 0 {
        return Err(ApiError::invalid("product_id", "must be a positive integer"));
    }
    let max = app.config.max_reservation_quantity as i64;
    if req.quantity < 1 || req.quantity > max {
        return Err(ApiError::invalid("quantity", format!("must be between 1 and {max}")));
    }
    Ok(req.quantity as i32)
}

/// Takes the stock and records the reservation (and, under a key, its answer) in one transaction;
/// returns the answer's JSON body.
pub async fn hold(app: &AppState, req: &Hold<'_>, claim: Option<&idempotency::Claimed>) -> ApiResult<String> {
    let quantity = req.quantity;
    let id = Uuid::now_v7().to_string();
    let ttl = app.config.reservation_ttl.as_micros() as i64;

    let mut tx = app.pool.begin().await?;
    let taken = sqlx::query("UPDATE products SET stock = stock - ? WHERE id = ? AND stock >= ?")
        .bind(quantity)
        .bind(req.product_id)
        .bind(quantity)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if taken == 0 {
        let stock: Option<i32> =
            sqlx::query_scalar("SELECT stock FROM products WHERE id = ?").bind(req.product_id).fetch_optional(&mut *tx).await?;
        return Err(match stock {
            None => ApiError::ProductNotFound(req.product_id),
            Some(available) => ApiError::InsufficientStock { product_id: req.product_id, requested: quantity, available },
        });
    }
    // The row is locked by our UPDATE, so this price is the one in force when the stock was taken.
    let unit_price: Decimal =
        sqlx::query_scalar("SELECT price FROM products WHERE id = ?").bind(req.product_id).fetch_one(&mut *tx).await?;
    // DECIMAL(19,4) cannot hold a larger total: refuse it (the rollback returns the stock) instead of a 500.
    if unit_price.checked_mul(Decimal::from(quantity)).is_none_or(|total| total > money::max_amount()) {
        return Err(ApiError::invalid("quantity", format!("{quantity} × {unit_price} exceeds the largest amount a reservation can hold")));
    }
    sqlx::query(
        "INSERT INTO reservations (id, product_id, user_id, quantity, unit_price, total_price, status, expires_at) \
         SELECT ?, id, ?, ?, price, price * ?, 'HELD', NOW(6) + INTERVAL ? MICROSECOND FROM products WHERE id = ?",
    )
    .bind(&id)
    .bind(req.user_id)
    .bind(quantity)
    .bind(quantity)
    .bind(ttl)
    .bind(req.product_id)
    .execute(&mut *tx)
    .await?;
    let reservation = load_on(&mut tx, &id).await?.ok_or_else(|| ApiError::ReservationNotFound(id.clone()))?;
    let body = serde_json::to_string(&reservation).map_err(anyhow::Error::from)?;
    if let Some(claim) = claim
        && !idempotency::complete(&mut *tx, claim, StatusCode::CREATED, &body).await?
    {
        // We stalled past the lock timeout and another request took the key over: it decides.
        tx.rollback().await?;
        return Err(ApiError::IdempotencyKeyInFlight);
    }
    tx.commit().await?;
    metrics::counter!("reservations_created_total").increment(1);
    Ok(body)
}

pub async fn load_on(conn: &mut MySqlConnection, id: &str) -> sqlx::Result<Option<Reservation>> {
    sqlx::query_as::<_, Reservation>(&format!("SELECT {RESERVATION_COLUMNS} FROM reservations WHERE id = ?")).bind(id).fetch_optional(conn).await
}

/// A reservation row-locked for a state change, with whether its hold has lapsed.
#[derive(Debug, sqlx::FromRow)]
pub struct LockedReservation {
    #[sqlx(flatten)]
    pub reservation: Reservation,
    /// `expires_at <= NOW(6)` (1 or 0), by the database clock, read with the row: one statement.
    lapsed: i64,
}

impl LockedReservation {
    /// True when the hold has lapsed (by the database clock, at the moment the row was locked).
    pub fn lapsed(&self) -> bool {
        self.lapsed == 1
    }
}

/// Loads and row-locks a reservation for a state change.
pub async fn lock_for_update(conn: &mut MySqlConnection, id: &str) -> sqlx::Result<Option<LockedReservation>> {
    sqlx::query_as::<_, LockedReservation>(&format!(
        "SELECT {RESERVATION_COLUMNS}, CAST(expires_at <= NOW(6) AS SIGNED) AS lapsed FROM reservations WHERE id = ? FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Moves a reservation out of HELD into `to` (RELEASED or EXPIRED) and returns its stock, in the
/// caller's transaction. Returns false when it was no longer HELD (someone else already moved it):
/// the stock was returned by that someone, exactly once.
pub async fn end_hold(conn: &mut MySqlConnection, id: &str, to: &'static str) -> sqlx::Result<bool> {
    debug_assert!(to == "RELEASED" || to == "EXPIRED");
    let moved = sqlx::query("UPDATE reservations SET status = ? WHERE id = ? AND status = 'HELD'")
        .bind(to)
        .bind(id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
        == 1;
    if moved {
        sqlx::query("UPDATE products p JOIN reservations r ON r.product_id = p.id SET p.stock = p.stock + r.quantity WHERE r.id = ?")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(moved)
}

/// Where the expiry job tells the saga that a reservation locked by an order expired.
#[derive(Clone)]
pub struct ExpiryNotices {
    /// Full name of `product.replies` (with the topic prefix).
    pub replies_topic: String,
    pub relay: OutboxRelay,
}

/// The expiry job: every `interval`, expire lapsed HELD reservations (returning their stock) and,
/// for those an order had locked, tell the orchestrator.
pub async fn run_expiry(pool: sqlx::MySqlPool, interval: Duration, notices: ExpiryNotices, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        match expire_lapsed_notifying(&pool, 500, Some(&notices)).await {
            Ok(n) if n > 0 => tracing::info!(expired = n, "expired lapsed reservations"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reservation expiry failed; will retry"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// Expires up to `limit` lapsed reservations, one transaction each; returns how many it expired.
pub async fn expire_lapsed(pool: &sqlx::MySqlPool, limit: u32) -> sqlx::Result<u64> {
    expire_lapsed_notifying(pool, limit, None).await
}

/// [`expire_lapsed`], and for each expired reservation bound to an order, a `reservation_released`
/// (status EXPIRED) reply through the outbox in the same transaction, keyed by the user id: a
/// payment parked as FAILED is then compensated instead of waiting for an operator.
pub async fn expire_lapsed_notifying(pool: &sqlx::MySqlPool, limit: u32, notices: Option<&ExpiryNotices>) -> sqlx::Result<u64> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT id FROM reservations WHERE status = 'HELD' AND expires_at <= NOW(6) ORDER BY expires_at LIMIT ?")
            .bind(limit)
            .fetch_all(pool)
            .await?;
    let mut expired = 0;
    let mut notified = false;
    for id in ids {
        let mut tx = pool.begin().await?;
        if end_hold(&mut tx, &id, "EXPIRED").await? {
            expired += 1;
            if let Some(n) = notices {
                let bound: Option<(Option<String>, String)> =
                    sqlx::query_as("SELECT order_id, CAST(user_id AS CHAR) FROM reservations WHERE id = ?").bind(&id).fetch_optional(&mut *tx).await?;
                if let Some((Some(order_id), user_id)) = bound {
                    // Ids this table holds were checked when they came in; one that no longer reads is a corrupt row.
                    let decode = |e: sagaway_contract::ids::InvalidId| sqlx::Error::Decode(Box::new(e));
                    let reply = ProductReply::ReservationReleased { order_id: order_id.parse().map_err(decode)?, reservation_id: id.parse().map_err(decode)?, status: "EXPIRED".into() };
                    outbox::enqueue(&mut tx, &Outgoing::json(&n.replies_topic, user_id, reply.kind(), &reply)).await?;
                    notified = true;
                }
            }
        }
        tx.commit().await?;
    }
    if notified && let Some(n) = notices {
        n.relay.notify();
    }
    metrics::counter!("reservations_expired_total").increment(expired);
    Ok(expired)
}
