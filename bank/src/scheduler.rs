//! The durable scheduler of business-hours transfers. Nothing is kept in memory: every tick asks the
//! database for transfers that are due by the bank's clock (`execute_at <= now`, SCHEDULED or
//! PROCESSING) and settles each in its own transaction, claimed with `SELECT … FOR UPDATE SKIP
//! LOCKED` and re-checked under that lock, so a transfer settles exactly once even with several
//! schedulers, a concurrent cancel, or a restart in between. A restart simply finds the rows again.
//! A due transfer to another bank is not settled here: its two-phase commit starts (its holds here
//! become the legs' holds in the same transaction) and the coordinator carries it on.

use std::{sync::Arc, time::Duration};

use sagaway_messaging::outbox;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{AppState, interbank::coordinator, transfers};

pub struct Scheduler {
    pub app: AppState,
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
        let app = &self.app;
        let now = app.config.clock.now();
        let due: Vec<(String, bool)> = sqlx::query_as(
            "SELECT id, interbank = 1 FROM transfers WHERE (status = 'SCHEDULED' OR (status = 'PROCESSING' AND interbank = 0)) AND execute_at <= ? \
             ORDER BY execute_at, id LIMIT ?",
        )
        .bind(now)
        .bind(BATCH)
        .fetch_all(&app.pool)
        .await?;
        let mut settled = 0;
        for (id, interbank) in due {
            if interbank {
                if transfers::start_scheduled_interbank(app, &id).await? {
                    settled += 1;
                    tokio::spawn(coordinator::drive(app.clone(), id));
                }
                continue;
            }
            let mut tx = app.pool.begin().await?;
            match transfers::settle_one(&mut tx, &app.topics.events, now, &id).await? {
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
            app.relay.notify();
        }
        Ok(settled)
    }
}
