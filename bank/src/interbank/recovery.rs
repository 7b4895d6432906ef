//! The loop that finishes what a crash, a timeout or an unreachable bank left open, every
//! `BANK_INTERBANK_RETRY_MS`:
//! - transfers this bank coordinates that are not COMMITTED or ABORTED are driven again (the
//!   prepare deadline aborts those still PREPARING; a decision is resent until every leg acks);
//! - legs held here that said READY and have waited past their patience ask their coordinator
//!   (`GET /interbank/tx/{tx_id}`) and apply the decision — they never decide alone. A coordinator
//!   that answers 410 `transfer_lost` (it issued the transfer and lost its record) is not an abort:
//!   the leg stays PREPARED, marked (`coordinator_lost_at`, the `bank_interbank_in_doubt_lost`
//!   gauge, an alert) for an operator, and is asked again only every [`LOST_ASK_EVERY`];
//! - nonces past the skew window are forgotten.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{auth, coordinator, participant, peers::PeerError};
use crate::{
    AppState,
    rules::interbank::{Decision, ParticipantInput},
};

/// How many transfers are driven at once by the loop.
const PARALLEL: usize = 16;

/// How often a leg whose coordinator lost the transfer asks again (in case its record comes back).
pub const LOST_ASK_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

pub async fn run(app: AppState, shutdown: CancellationToken) {
    let interval = app.config.interbank.retry_interval;
    let permits = Arc::new(Semaphore::new(PARALLEL));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if let Err(e) = tick(&app, &permits).await {
            tracing::warn!(error = %e, "inter-bank recovery tick failed; next tick retries");
        }
    }
}

/// Sets the gauges of the 2PC backlog: `bank_interbank_in_doubt` (legs held here PREPARED,
/// waiting for their coordinator's decision) and `bank_interbank_undecided` (transfers this bank
/// coordinates that are not yet COMMITTED or ABORTED), each with the age of its oldest
/// (`…_oldest_age_seconds`, 0 when none). Long waits mean a bank or the network is away.
/// `bank_interbank_in_doubt_lost`: legs held here whose coordinator says it lost the transfer.
pub async fn sample_backlog(pool: &sqlx::MySqlPool) {
    use crate::rules::interbank::{CoordinatorStatus, ParticipantStatus};
    let held = sqlx::query_as::<_, (i64, Option<chrono::DateTime<Utc>>)>("SELECT COUNT(*), MIN(created_at) FROM interbank_participants WHERE status = ?")
        .bind(ParticipantStatus::Prepared.as_str())
        .fetch_one(pool)
        .await;
    let driven = sqlx::query_as::<_, (i64, Option<chrono::DateTime<Utc>>)>("SELECT COUNT(*), MIN(created_at) FROM interbank_coordinator WHERE status NOT IN (?, ?)")
        .bind(CoordinatorStatus::Committed.as_str())
        .bind(CoordinatorStatus::Aborted.as_str())
        .fetch_one(pool)
        .await;
    let lost = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM interbank_participants WHERE status = ? AND coordinator_lost_at IS NOT NULL")
        .bind(ParticipantStatus::Prepared.as_str())
        .fetch_one(pool)
        .await;
    if let Ok(n) = lost {
        metrics::gauge!("bank_interbank_in_doubt_lost").set(n as f64);
    }
    let now = Utc::now();
    let age = |oldest: Option<chrono::DateTime<Utc>>| oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1e3);
    if let Ok((n, oldest)) = held {
        metrics::gauge!("bank_interbank_in_doubt").set(n as f64);
        metrics::gauge!("bank_interbank_in_doubt_oldest_age_seconds").set(age(oldest));
    }
    if let Ok((n, oldest)) = driven {
        metrics::gauge!("bank_interbank_undecided").set(n as f64);
        metrics::gauge!("bank_interbank_undecided_oldest_age_seconds").set(age(oldest));
    }
}

async fn tick(app: &AppState, permits: &Arc<Semaphore>) -> sqlx::Result<()> {
    let interval = app.config.interbank.retry_interval;
    for tx_id in coordinator::due(&app.pool, 256).await? {
        // Not again before the next interval, whatever this attempt does.
        coordinator::postpone(&app.pool, &tx_id, interval * 2).await?;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let _permit = permit;
            coordinator::drive(app, tx_id).await;
        });
    }
    let patience = app.config.interbank.inquiry_after;
    for leg in participant::in_doubt(&app.pool, &app.config.code, Utc::now(), 256).await? {
        let index = leg.leg_index as usize;
        participant::postpone(&app.pool, &leg.tx_id, index, Utc::now() + patience).await?;
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let app = app.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = settle_in_doubt(&app, &leg.coordinator, &leg.tx_id, index).await {
                tracing::warn!(tx_id = leg.tx_id, leg = index, error = %e, "a leg in doubt could not settle yet");
            }
        });
    }
    auth::purge_nonces(&app.pool, auth::unix_now()).await?;
    Ok(())
}

/// Asks the coordinator about a PREPARED leg and applies its decision (nothing while undecided,
/// nor when the coordinator lost the transfer: then the leg is marked and stays in doubt).
async fn settle_in_doubt(app: &AppState, coordinator: &str, tx_id: &str, leg: usize) -> anyhow::Result<()> {
    let answer = match app.peers.inquire(coordinator, tx_id, leg).await {
        Err(PeerError::Refused { status: 410, .. }) => {
            if participant::mark_lost(&app.pool, tx_id, leg, app.config.clock.now()).await? {
                tracing::error!(tx_id, leg, coordinator, "the coordinator issued this transfer and has lost its record: the leg stays in doubt (held) until an operator settles it");
            }
            participant::postpone(&app.pool, tx_id, leg, Utc::now() + LOST_ASK_EVERY).await?;
            return Ok(());
        }
        other => other?,
    };
    let Some(decision) = answer else {
        return Ok(());
    };
    let input = match decision {
        Decision::Commit => ParticipantInput::Commit,
        Decision::Abort => ParticipantInput::Abort,
    };
    match participant::apply_alone(app, coordinator, tx_id, leg, input).await? {
        Ok(_) => Ok(()),
        Err(illegal) => anyhow::bail!("the coordinator's decision does not fit: {illegal}"),
    }
}
