//! `limits`: what this machine can do at all, measured with the same tooling, so Sagaway's figures
//! can be read as a fraction of the limit that binds them.
//!
//! - MariaDB: autocommit single-row INSERTs into a scratch database (dropped afterwards), with 1
//!   and 32 connections: commits/s. Every saga step is at least one commit, so this is the floor.
//! - Broker: the idempotent producer the services use (`sagaway_messaging::kafka::producer`), 200-byte
//!   messages into a scratch topic (left in place: see [`broker`]): produced msgs/s with many in flight, the
//!   produce round trip with one in flight, then consumed msgs/s reading them back.
//! - HTTP ([`http`]): a trivial axum handler in this process (port 0) driven by the same client and
//!   closed model as the scenarios: requests/s.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::{StreamExt, stream::FuturesUnordered};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::Consumer,
    producer::FutureRecord,
    util::Timeout,
};
use serde::Serialize;
use sqlx::{Connection, Executor, mysql::MySqlPoolOptions};

use crate::stats::{Latency, Stats};

mod http;

#[derive(Debug, Serialize)]
pub struct DbLimit {
    pub connections: usize,
    pub commits: u64,
    pub commits_per_s: f64,
    pub latency: Latency,
}

#[derive(Debug, Serialize)]
pub struct BrokerLimit {
    pub partitions: i32,
    pub message_bytes: usize,
    pub produced: u64,
    pub produce_per_s: f64,
    pub produce_ack_latency: Latency,
    /// One message in flight at a time: the produce round trip.
    pub produce_one_by_one_per_s: f64,
    pub produce_one_by_one_latency: Latency,
    pub consumed: u64,
    pub consume_per_s: f64,
    pub topic: String,
}

#[derive(Debug, Serialize)]
pub struct HttpLimit {
    pub concurrency: usize,
    pub requests_per_s: f64,
    pub latency: Latency,
    pub errors: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub duration_s: f64,
    pub mariadb: Vec<DbLimit>,
    pub broker: Option<BrokerLimit>,
    pub http: Vec<HttpLimit>,
    pub errors: Vec<String>,
}

pub struct Settings {
    pub mysql_url: String,
    pub brokers: String,
    pub duration: Duration,
    pub db_connections: Vec<usize>,
    pub http_concurrency: Vec<usize>,
    pub partitions: i32,
    pub skip: Vec<String>,
}

pub async fn run(s: Settings) -> anyhow::Result<Report> {
    let mut report =
        Report { scenario: "limits", duration_s: s.duration.as_secs_f64(), mariadb: vec![], broker: None, http: vec![], errors: vec![] };
    if !s.skip.iter().any(|x| x == "mariadb") {
        match mariadb(&s).await {
            Ok(r) => report.mariadb = r,
            Err(e) => report.errors.push(format!("mariadb: {e:#}")),
        }
    }
    if !s.skip.iter().any(|x| x == "broker") {
        match broker(&s).await {
            Ok(r) => report.broker = Some(r),
            Err(e) => report.errors.push(format!("broker: {e:#}")),
        }
    }
    if !s.skip.iter().any(|x| x == "http") {
        for &c in &s.http_concurrency {
            match http::limit(c, s.duration).await {
                Ok(r) => report.http.push(r),
                Err(e) => report.errors.push(format!("http: {e:#}")),
            }
        }
    }
    Ok(report)
}

async fn mariadb(s: &Settings) -> anyhow::Result<Vec<DbLimit>> {
    let base = s.mysql_url.trim_end_matches('/').to_string();
    let db = format!("loadgen_scratch_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let mut admin = sqlx::MySqlConnection::connect(&base).await.with_context(|| format!("connecting to {base}"))?;
    admin.execute(format!("CREATE DATABASE {db}").as_str()).await?;
    let result = async {
        admin
            .execute(
                format!(
                    "CREATE TABLE {db}.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, k BIGINT NOT NULL, payload VARCHAR(200) NOT NULL) ENGINE=InnoDB"
                )
                .as_str(),
            )
            .await?;
        let mut out = vec![];
        for &conns in &s.db_connections {
            let pool = MySqlPoolOptions::new()
                .max_connections(conns as u32)
                .min_connections(conns as u32)
                .connect(&format!("{base}/{db}"))
                .await?;
            let stats = Stats::new();
            let end = Instant::now() + s.duration;
            let mut workers = vec![];
            for w in 0..conns {
                let (pool, stats) = (pool.clone(), stats.clone());
                workers.push(tokio::spawn(async move {
                    let mut conn = pool.acquire().await?;
                    let payload = "x".repeat(120);
                    let mut n = 0u64;
                    while Instant::now() < end {
                        let t = Instant::now();
                        sqlx::query("INSERT INTO t (k, payload) VALUES (?, ?)").bind(w as i64).bind(&payload).execute(&mut *conn).await?;
                        stats.record("insert", t.elapsed());
                        n += 1;
                    }
                    anyhow::Ok(n)
                }));
            }
            let started = Instant::now();
            let mut commits = 0;
            for w in workers {
                commits += w.await??;
            }
            let secs = started.elapsed().as_secs_f64();
            pool.close().await;
            let r = DbLimit { connections: conns, commits, commits_per_s: commits as f64 / secs, latency: stats.latency("insert") };
            eprintln!("[limits] mariadb {conns:>2} connection(s): {:.0} commits/s ({})", r.commits_per_s, r.latency.line());
            out.push(r);
        }
        anyhow::Ok(out)
    }
    .await;
    let dropped = admin.execute(format!("DROP DATABASE {db}").as_str()).await;
    let out = result?;
    dropped.context("dropping the scratch database")?;
    Ok(out)
}

async fn broker(s: &Settings) -> anyhow::Result<BrokerLimit> {
    let topic = format!("loadgen.scratch.{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    sagaway_messaging::kafka::ensure_topics(&s.brokers, &[(topic.clone(), s.partitions)], 1).await?;
    // The scratch topic is NOT deleted: after a DeleteTopics, tansu 0.6.0 stopped answering metadata
    // requests on our bench stack (every service turned not-ready). Its name is unique and it holds
    // a few MB; the bench stack's state dir is thrown away afterwards.
    broker_inner(s, &topic).await
}

async fn broker_inner(s: &Settings, topic: &str) -> anyhow::Result<BrokerLimit> {
    const BYTES: usize = 200;
    const MAX_IN_FLIGHT: usize = 20_000;
    let producer = sagaway_messaging::kafka::producer(&s.brokers)?;
    let payload = vec![b'x'; BYTES];
    let stats = Stats::new();

    // Many in flight (what a batching relay achieves).
    let mut inflight = FuturesUnordered::new();
    let mut produced = 0u64;
    let mut failed = 0u64;
    let started = Instant::now();
    let end = started + s.duration;
    let mut seq = 0u64;
    while Instant::now() < end {
        while inflight.len() < MAX_IN_FLIGHT && Instant::now() < end {
            let key = format!("user-{}", seq % 1000);
            seq += 1;
            let (producer, payload, stats, topic) = (&producer, &payload, stats.clone(), topic.to_string());
            inflight.push(async move {
                let t = Instant::now();
                let r = producer.send(FutureRecord::to(&topic).key(&key).payload(payload), Timeout::After(Duration::from_secs(30))).await;
                stats.record("produce", t.elapsed());
                r.is_ok()
            });
            if inflight.len() % 256 == 0 {
                break;
            }
        }
        if let Some(ok) = inflight.next().await {
            if ok { produced += 1 } else { failed += 1 }
        }
    }
    while let Some(ok) = inflight.next().await {
        if ok { produced += 1 } else { failed += 1 }
    }
    let produce_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(failed == 0 || produced > 0, "every produce failed");
    eprintln!("[limits] broker produce: {:.0} msgs/s ({} acked, {failed} failed)", produced as f64 / produce_secs, produced);

    // One in flight.
    let one = Stats::new();
    let t0 = Instant::now();
    let mut n1 = 0u64;
    let end1 = t0 + (s.duration / 2).max(Duration::from_secs(1));
    while Instant::now() < end1 {
        let t = Instant::now();
        producer
            .send(FutureRecord::to(topic).key("one").payload(&payload), Timeout::After(Duration::from_secs(30)))
            .await
            .map_err(|(e, _)| e)?;
        one.record("produce1", t.elapsed());
        n1 += 1;
    }
    let one_secs = t0.elapsed().as_secs_f64();
    produced += n1;
    eprintln!("[limits] broker produce one-by-one: {:.0} msgs/s ({})", n1 as f64 / one_secs, one.latency("produce1").line());

    // Consume everything back (assigned partitions from the beginning, like the services' assign mode).
    let consumer = sagaway_messaging::kafka::consumer(&s.brokers, &format!("{topic}.reader"), 25)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..s.partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut consumed = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let deadline = Instant::now() + s.duration * 4 + Duration::from_secs(20);
    let mut stream = consumer.stream();
    while consumed < produced && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
            Ok(Some(Ok(m))) => {
                let _ = m.payload();
                consumed += 1;
                last = Instant::now();
                first.get_or_insert(last);
            }
            Ok(Some(Err(e))) => anyhow::bail!("consuming: {e}"),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    let consume_secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
    let consume_per_s = if consume_secs > 0.0 { consumed as f64 / consume_secs } else { 0.0 };
    eprintln!("[limits] broker consume: {consume_per_s:.0} msgs/s ({consumed} of {produced})");
    Ok(BrokerLimit {
        partitions: s.partitions,
        message_bytes: BYTES,
        produced,
        produce_per_s: (produced - n1) as f64 / produce_secs,
        produce_ack_latency: stats.latency("produce"),
        produce_one_by_one_per_s: n1 as f64 / one_secs,
        produce_one_by_one_latency: one.latency("produce1"),
        consumed,
        consume_per_s,
        topic: topic.to_string(),
    })
}
