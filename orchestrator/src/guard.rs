//! The two-minute duplicate rule (DESIGN §2): the same user paying for the same product again
//! within the window is refused with 409 naming the original order — atomically, so of N
//! concurrent identical payments exactly one is accepted.
//!
//! One `payment_guard` row per (user, product) names the order that holds it. Only an order that
//! may still sell blocks — one in flight, parked (FAILED) or COMPLETED; a declined or compensated
//! one does not, so a shopper whose card was refused can pay again at once with another card.

use std::time::Duration;

use sqlx::MySqlConnection;

/// What taking the guard found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// `order_id` holds it now.
    Taken,
    /// Another order within the window that may still sell holds it.
    HeldBy(String),
}

/// Takes the guard of (`user_id`, `product_id`) for `order_id`, inside the order's transaction.
pub async fn take(conn: &mut MySqlConnection, user_id: &str, product_id: u64, order_id: &str, window: Duration) -> sqlx::Result<Guard> {
    let window_us = window.as_micros() as i64;
    // The upsert takes the row lock, so racing requests queue here; each then sees the committed
    // winner. The winner is replaced only once its window has passed.
    sqlx::query(
        "INSERT INTO payment_guard (user_id, product_id, order_id, accepted_at) VALUES (?, ?, ?, NOW(6)) \
         ON DUPLICATE KEY UPDATE \
           order_id = IF(accepted_at <= NOW(6) - INTERVAL ? MICROSECOND, VALUES(order_id), order_id), \
           accepted_at = IF(accepted_at <= NOW(6) - INTERVAL ? MICROSECOND, VALUES(accepted_at), accepted_at)",
    )
    .bind(user_id)
    .bind(product_id)
    .bind(order_id)
    .bind(window_us)
    .bind(window_us)
    .execute(&mut *conn)
    .await?;
    let holder: String = sqlx::query_scalar("SELECT order_id FROM payment_guard WHERE user_id = ? AND product_id = ?")
        .bind(user_id)
        .bind(product_id)
        .fetch_one(&mut *conn)
        .await?;
    if holder == order_id {
        return Ok(Guard::Taken);
    }
    let blocks: bool =
        sqlx::query_scalar("SELECT COUNT(*) > 0 FROM orders WHERE id = ? AND compensating = 0 AND status NOT IN ('DECLINED', 'COMPENSATED')")
            .bind(&holder)
            .fetch_one(&mut *conn)
            .await?;
    if blocks {
        return Ok(Guard::HeldBy(holder));
    }
    // We hold the row's lock, so taking it over from a settled order cannot race another request.
    sqlx::query("UPDATE payment_guard SET order_id = ?, accepted_at = NOW(6) WHERE user_id = ? AND product_id = ?")
        .bind(order_id)
        .bind(user_id)
        .bind(product_id)
        .execute(&mut *conn)
        .await?;
    Ok(Guard::Taken)
}
