//! Purge: drop a dead letter from the store — its payload is erased and it is marked PURGED (the
//! row stays as a tombstone so the audit trail and later operations can still name it). The
//! record on the `payment_dlq` topic itself cannot be deleted: Kafka topics are append-only and
//! lose records only through retention. The order is not touched.

use sqlx::MySqlConnection;

use super::{Outcome, PURGED, store};

pub async fn purge_one(conn: &mut MySqlConnection, id: u64) -> sqlx::Result<Outcome> {
    let Some(dl) = store::lock(conn, id).await? else { return Ok(Outcome::new(id, "not_found", "no such dead letter")) };
    if dl.status == PURGED {
        return Ok(Outcome::skipped(id, "already PURGED"));
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
