//! Purge: drop a dead letter from the store — its payload is erased and it is marked PURGED (the
//! row stays as a tombstone so the audit trail and later operations can still name it). The
//! record on the `payment_dlq` topic itself cannot be deleted: Kafka topics are append-only and
//! lose records only through retention. The order is not touched.
//!
//! Only resolved letters are purged (REPLAYED, ABANDONED). A PENDING letter is the only handle an
//! operator has on a parked order, so it is purged only with `force`, and only once its order is
//! settled (terminal) or there is no order.

use sqlx::MySqlConnection;

use super::{Outcome, PENDING, PURGED, store};
use crate::orders;

pub async fn purge_one(conn: &mut MySqlConnection, id: u64, force: bool, dry_run: bool) -> sqlx::Result<Outcome> {
    let Some(dl) = store::lock(conn, id).await? else { return Ok(Outcome::new(id, "not_found", "no such dead letter")) };
    if dl.status == PURGED {
        return Ok(Outcome::skipped(id, "already PURGED"));
    }
    if dl.status == PENDING {
        if !force {
            return Ok(Outcome::skipped(id, "PENDING: replay or abandon it first (or force, once its order is settled)"));
        }
        let order = match &dl.order_id {
            Some(order_id) => orders::load(conn, order_id).await?,
            None => None,
        };
        if let Some(o) = order.filter(|o| !o.is_terminal()) {
            return Ok(Outcome::skipped(id, format!("PENDING and its order {} is {}: act on it before purging", o.id, o.status)));
        }
    }
    if dry_run {
        return Ok(Outcome::new(id, "would_purge", format!("would erase the payload; is {}", dl.status)));
    }
    sqlx::query("UPDATE dead_letters SET status = ?, status_reason = ?, payload = NULL WHERE id = ?")
        .bind(PURGED)
        .bind(format!("purged (was {})", dl.status))
        .bind(id)
        .execute(conn)
        .await?;
    metrics::counter!("dlq_purged_total").increment(1);
    Ok(Outcome::new(id, "purged", format!("payload erased; was {}", dl.status)))
}
