//! The durable scheduler of business-hours transfers. Nothing is kept in memory: every tick asks the
//! database for transfers that are due by the bank's clock (`execute_at <= now`, SCHEDULED or
//! PROCESSING) and settles each in its own transaction, claimed with `SELECT … FOR UPDATE SKIP
//! LOCKED` and re-checked under that lock, so a transfer settles exactly once even with several
//! schedulers, a concurrent cancel, or a restart in between. A restart simply finds the rows again.

use std::{sync::Arc, time::Duration};

use sagaway_common::outbox::{self, OutboxRelay};
use sqlx::MySqlPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{clock::SharedClock, transfers};

pub struct Scheduler {
    pub pool: MySqlPool,
    pub clock: SharedClock,
    pub relay: OutboxRelay,
    pub events_topic: String,
    pub interval: Duration,
    /// Woken when a transfer becomes PROCESSING, so it settles without waiting for the next tick.
    pub wake: Arc<Notify>,
}

/// At most this many due transfers are looked at per tick.
const BATCH: u32 = 100;

impl Scheduler {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let settled = match self.tick().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "scheduler tick failed; retrying");
                    0
                }
            };
            if settled as u32 >= BATCH {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// Settles what is due now; returns how many it settled.
    pub async fn tick(&self) -> anyhow::Result<usize> {
        let now = self.clock.now();
        let due: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM transfers WHERE status IN ('SCHEDULED', 'PROCESSING') AND execute_at <= ? ORDER BY execute_at, id LIMIT ?",
        )
        .bind(now)
        .bind(BATCH)
        .fetch_all(&self.pool)
        .await?;
        let mut settled = 0;
        for id in due {
            let mut tx = self.pool.begin().await?;
            match transfers::settle_one(&mut tx, &self.events_topic, now, &id).await? {
                Some(events) => {
                    outbox::enqueue_all(&mut tx, &events).await?;
                    tx.commit().await?;
                    settled += 1;
                    metrics::counter!("bank_transfers_settled_total").increment(1);
                    tracing::info!(transfer_id = %id, "scheduled transfer settled");
                }
                None => tx.rollback().await?, // taken by someone else, canceled, or no longer due
            }
        }
        if settled > 0 {
            self.relay.notify();
        }
        Ok(settled)
    }
}
