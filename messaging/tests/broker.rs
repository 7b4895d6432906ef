//! The local broker answers a waiting fetch as soon as a record arrives, as Kafka does, instead of
//! sleeping out the whole `fetch.wait.max.ms` (tansu 0.6.0 as published does; our patch:
//! `scripts/tansu/patches/`, docs/stack.md#the-broker-patch). With the unpatched broker the records
//! below arrive after hundreds of milliseconds, and this test fails.

use rdkafka::{
    ClientConfig, Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    producer::FutureRecord,
};
use std::time::{Duration, Instant};

/// The consumer's long poll: a fetch with nothing to return waits this long at the broker.
const WAIT_MS: u32 = 1_000;
const SAMPLES: usize = 9;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_waiting_one_second_gets_a_record_within_20_ms_of_its_produce() -> anyhow::Result<()> {
    // The stack's broker (`scripts/stack up --infra`), as the other tests find it.
    let brokers = format!("127.0.0.1:{}", std::env::var("SAGAWAY_KAFKA_PORT").unwrap_or_else(|_| "9092".into()));
    let topic = format!("it-broker-wakeup-{}", uuid::Uuid::new_v4().simple());
    sagaway_messaging::kafka::ensure_topics(&brokers, &[(topic.clone(), 1)], 1).await?;
    let producer = sagaway_messaging::kafka::producer(&brokers)?;
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", WAIT_MS.to_string())
        .set("fetch.min.bytes", "1")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(&topic, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;

    let send = |i: usize| {
        let (producer, topic) = (producer.clone(), topic.clone());
        async move {
            let payload = format!("record {i}");
            producer
                .send(FutureRecord::<str, str>::to(&topic).key("k").payload(&payload), Duration::from_secs(10))
                .await
                .map_err(|(e, _)| anyhow::anyhow!("produce: {e}"))
        }
    };
    let receive = || async {
        let m = tokio::time::timeout(Duration::from_secs(10), consumer.recv()).await??;
        anyhow::Ok(String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string())
    };

    // The first record opens the connections and fetches the metadata: not measured.
    let (sent, got) = tokio::join!(send(0), receive());
    sent?;
    assert_eq!(got?, "record 0");

    let mut latencies = Vec::new();
    for i in 1..=SAMPLES {
        // Let the consumer's next fetch reach the broker and wait there (nothing to fetch): the
        // record below must wake it. A sleep on purpose: the point is an idle, parked fetch.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let start = Instant::now();
        let (sent, got) = tokio::join!(send(i), receive());
        let latency = start.elapsed();
        sent?;
        assert_eq!(got?, format!("record {i}"));
        latencies.push(latency);
    }
    latencies.sort();
    let median = latencies[SAMPLES / 2];
    println!("produce → consumed with fetch.wait.max.ms = {WAIT_MS}: {latencies:?} (median {median:?})");
    assert!(median <= Duration::from_millis(20), "a parked fetch is woken by the produce: median {median:?} of {latencies:?}");
    assert!(
        latencies[SAMPLES - 1] < Duration::from_millis(u64::from(WAIT_MS) / 4),
        "no record waits for the fetch to time out: {latencies:?}"
    );
    Ok(())
}
