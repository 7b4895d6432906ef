//! Consumes `payment_dlq` and records every record in `dead_letters`, through the inbox (so a
//! redelivered record is stored once) with its position kept in the database like every consumer.
//! It never rejects a record as malformed: that would dead-letter it onto the topic it reads.

use sagaway_messaging::{inbox::{HandleError, Handler, Incoming}, outbox::Outgoing};
use sqlx::MySqlConnection;

use super::store;

pub struct DeadLetterRecorder;

impl Handler for DeadLetterRecorder {
    async fn handle(&self, conn: &mut MySqlConnection, msg: &Incoming) -> Result<Vec<Outgoing>, HandleError> {
        store::record(conn, msg).await?;
        metrics::counter!("dlq_recorded_total").increment(1);
        tracing::info!(
            topic = %msg.topic, offset = msg.offset,
            original_topic = msg.header("dlq.original.topic").unwrap_or(""),
            error_class = msg.header("dlq.error.class").unwrap_or(""),
            "dead letter recorded"
        );
        Ok(vec![])
    }
}
