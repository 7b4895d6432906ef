//! The two load models.
//!
//! - **Open** (fixed arrival rate): operation `i` is scheduled at `start + i / rate` and started at
//!   that time whatever happened to earlier ones, each in its own task. Latencies are measured from
//!   the *scheduled* time, so a slow server (or a late generator) shows up as latency instead of
//!   silently lowering the offered load (no coordinated omission). In-flight operations are capped
//!   (`max_inflight`) so a stalled server cannot exhaust memory; operations skipped at the cap are
//!   counted as `client: inflight cap` errors.
//! - **Closed** (fixed concurrency): `concurrency` workers each run one operation after another.
//!   This finds the maximum throughput; its latencies are service times.
//!
//! Both stop starting operations after `duration` and then wait (bounded) for those in flight.
//! Operations scheduled during the first `warmup` run but are not measured.

use std::{
    future::Future,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::stats::Stats;

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Model {
    Open { rate: f64 },
    Closed { concurrency: usize },
}

impl Model {
    pub fn from_args(rate: Option<f64>, concurrency: Option<usize>, default_rate: f64) -> anyhow::Result<Self> {
        match (rate, concurrency) {
            (Some(_), Some(_)) => anyhow::bail!("give either --rate (open model) or --concurrency (closed model), not both"),
            (_, Some(0)) => anyhow::bail!("--concurrency must be at least 1"),
            (_, Some(c)) => Ok(Model::Closed { concurrency: c }),
            (Some(r), _) if r <= 0.0 => anyhow::bail!("--rate must be positive"),
            (Some(r), _) => Ok(Model::Open { rate: r }),
            (None, None) => Ok(Model::Open { rate: default_rate }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub duration: Duration,
    pub warmup: Duration,
    pub max_inflight: usize,
    /// How long to wait for in-flight operations after the last start.
    pub drain: Duration,
}

/// One operation to run.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub seq: u64,
    /// When it should start (open model) or started (closed model).
    pub scheduled: Instant,
    /// False during the warm-up: run it, but record no latency.
    pub measured: bool,
}

/// When the load ran, in wall-clock time (to compare with server timestamps).
#[derive(Debug, Clone, Serialize)]
pub struct Driven {
    pub started_at: DateTime<Utc>,
    pub measured_from: DateTime<Utc>,
    /// The end of the load window (no operation starts after it).
    pub ended_at: DateTime<Utc>,
    /// When the last in-flight operation finished (or the drain gave up).
    pub drained_at: DateTime<Utc>,
    /// Seconds of the measured window (duration − warmup).
    pub measured_secs: f64,
    pub operations: u64,
    pub ok: u64,
    pub failed: u64,
    pub dropped_at_inflight_cap: u64,
    pub unfinished_after_drain: u64,
    pub max_schedule_lag_ms: f64,
}

/// Runs `op` under `model` for `window`; `op` returns whether the operation succeeded (it records
/// its own latencies and errors in `stats`).
pub async fn run<F, Fut>(model: Model, window: Window, stats: Arc<Stats>, op: F) -> Driven
where
    F: Fn(Op) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let op = Arc::new(op);
    let started_at = Utc::now();
    let start = Instant::now();
    let end = start + window.duration;
    let measure_from = start + window.warmup;
    let mut tasks = JoinSet::new();

    let wrap = |stats: Arc<Stats>, op: Arc<F>, o: Op| async move {
        stats.started.fetch_add(1, Ordering::Relaxed);
        stats.inflight.fetch_add(1, Ordering::Relaxed);
        let ok = op(o).await;
        stats.inflight.fetch_sub(1, Ordering::Relaxed);
        if ok {
            stats.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
        }
    };

    match model {
        Model::Open { rate } => {
            let interval = Duration::from_secs_f64(1.0 / rate);
            let mut seq = 0u64;
            loop {
                let scheduled = start + interval.mul_f64(seq as f64);
                if scheduled >= end {
                    break;
                }
                tokio::time::sleep_until(scheduled.into()).await;
                let lag = Instant::now().saturating_duration_since(scheduled).as_micros() as u64;
                stats.max_schedule_lag_us.fetch_max(lag, Ordering::Relaxed);
                while tasks.try_join_next().is_some() {}
                let o = Op { seq, scheduled, measured: scheduled >= measure_from };
                seq += 1;
                if stats.inflight.load(Ordering::Relaxed) as usize >= window.max_inflight {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    stats.error("client: inflight cap");
                    continue;
                }
                tasks.spawn(wrap(stats.clone(), op.clone(), o));
            }
        }
        Model::Closed { concurrency } => {
            let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
            for _ in 0..concurrency {
                let (stats, op, next) = (stats.clone(), op.clone(), next.clone());
                tasks.spawn(async move {
                    while Instant::now() < end {
                        let scheduled = Instant::now();
                        let o = Op { seq: next.fetch_add(1, Ordering::Relaxed), scheduled, measured: scheduled >= measure_from };
                        wrap(stats.clone(), op.clone(), o).await;
                    }
                });
            }
        }
    }

    let drain_deadline = tokio::time::Instant::now() + window.drain.max(window.duration.saturating_sub(start.elapsed()));
    while !tasks.is_empty() {
        match tokio::time::timeout_at(drain_deadline, tasks.join_next()).await {
            Ok(_) => {}
            Err(_) => break,
        }
    }
    let unfinished = stats.inflight.load(Ordering::Relaxed);
    tasks.abort_all();
    let drained_at = Utc::now();
    Driven {
        started_at,
        measured_from: started_at + chrono::Duration::from_std(window.warmup).unwrap_or_default(),
        ended_at: started_at + chrono::Duration::from_std(window.duration).unwrap_or_default(),
        drained_at,
        measured_secs: window.duration.saturating_sub(window.warmup).as_secs_f64(),
        operations: stats.started.load(Ordering::Relaxed) + stats.dropped.load(Ordering::Relaxed),
        ok: stats.ok.load(Ordering::Relaxed),
        failed: stats.failed.load(Ordering::Relaxed),
        dropped_at_inflight_cap: stats.dropped.load(Ordering::Relaxed),
        unfinished_after_drain: unfinished,
        max_schedule_lag_ms: stats.max_schedule_lag_us.load(Ordering::Relaxed) as f64 / 1000.0,
    }
}
