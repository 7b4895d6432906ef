//! Latency histograms (HdrHistogram, microseconds), counters and error tallies shared by every
//! scenario, plus the live progress line.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency a histogram holds exactly (longer samples are clamped): 10 minutes.
const MAX_MICROS: u64 = 600_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// Percentiles of one latency metric, in milliseconds.
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
pub struct Latency {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            mean_ms: h.mean() / 1000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "n={} p50={:.2}ms p90={:.2}ms p99={:.2}ms p99.9={:.2}ms max={:.2}ms",
            self.count, self.p50_ms, self.p90_ms, self.p99_ms, self.p999_ms, self.max_ms
        )
    }
}

struct Metric {
    all: Histogram<u64>,
    /// Reset by the progress line every second.
    interval: Histogram<u64>,
}

/// Everything a run records. Cheap to share (`Arc`); the mutexes are held for a histogram update.
#[derive(Default)]
pub struct Stats {
    metrics: Mutex<BTreeMap<&'static str, Metric>>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// Operations started / finished well / finished with an error.
    pub started: AtomicU64,
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub inflight: AtomicU64,
    /// Open model: operations not started because the in-flight cap was reached (counted as errors too).
    pub dropped: AtomicU64,
    /// Open model: the worst lateness of a send against its schedule, in microseconds.
    pub max_schedule_lag_us: AtomicU64,
}

impl Stats {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn record(&self, metric: &'static str, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, MAX_MICROS);
        let mut m = self.metrics.lock().unwrap();
        let e = m.entry(metric).or_insert_with(|| Metric { all: histogram(), interval: histogram() });
        e.all.saturating_record(us);
        e.interval.saturating_record(us);
    }

    pub fn error(&self, what: impl Into<String>) {
        *self.errors.lock().unwrap().entry(what.into()).or_default() += 1;
    }

    pub fn latency(&self, metric: &str) -> Latency {
        self.metrics.lock().unwrap().get(metric).map(|m| Latency::of(&m.all)).unwrap_or_default()
    }

    pub fn latencies(&self) -> BTreeMap<String, Latency> {
        self.metrics.lock().unwrap().iter().map(|(k, m)| (k.to_string(), Latency::of(&m.all))).collect()
    }

    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().unwrap().clone()
    }

    /// p99 of `metric` since the last call, then resets the interval histogram.
    fn take_interval_p99(&self, metric: &str) -> Option<f64> {
        let mut m = self.metrics.lock().unwrap();
        let e = m.get_mut(metric)?;
        if e.interval.is_empty() {
            return None;
        }
        let p = e.interval.value_at_quantile(0.99) as f64 / 1000.0;
        e.interval.reset();
        Some(p)
    }
}

/// Prints one progress line per second on stderr until the returned handle is aborted.
pub fn progress(stats: Arc<Stats>, label: String, metric: &'static str) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last_done = 0u64;
        loop {
            tick.tick().await;
            let ok = stats.ok.load(Ordering::Relaxed);
            let failed = stats.failed.load(Ordering::Relaxed);
            let done = ok + failed;
            let p99 = stats.take_interval_p99(metric).map(|p| format!("{p:.1}ms")).unwrap_or_else(|| "-".into());
            eprintln!(
                "[{label} {:>4}s] started {} ok {} err {} inflight {} | {}/s | {metric} p99(1s) {p99}",
                start.elapsed().as_secs(),
                stats.started.load(Ordering::Relaxed),
                ok,
                failed,
                stats.inflight.load(Ordering::Relaxed),
                done - last_done,
            );
            last_done = done;
        }
    })
}
