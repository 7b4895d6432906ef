//! The non-blocking retry path. A charge that failed transiently is not retried in place: the
//! command handler writes a copy to `saga.retry` (through the outbox) with a due time, and answers
//! nothing yet. [`RetryForwarder`], a consumer in its own group, waits for the due time and puts the
//! copy back on its original topic (again through the outbox, with the inbox recording the retry
//! message, in one transaction).
//!
//! Consequence of waiting inside the forwarder: retries that share a `saga.retry` partition queue
//! behind each other (a retry due in 5 s delays one due in 1 s behind it on the same partition),
//! and the waiting message holds one pooled connection in an open transaction. The commands
//! consumer is never held up: first attempts of other orders go straight through.
//!
//! `saga.retry` may be shared with other services; this forwarder only forwards messages whose
//! original topic is one of the payment service's own and leaves the rest to their owners.

use chrono::{DateTime, Utc};
use sagaway_messaging::{inbox::{HandleError, Handler, Incoming}, outbox::{MESSAGE_ID, Outgoing}};
use sqlx::MySqlConnection;
use tokio_util::sync::CancellationToken;

/// Header: the attempt number the retried message is (2 for the first retry).
pub const RETRY_ATTEMPT: &str = "retry.attempt";
/// Header: when to put the message back (RFC 3339, milliseconds, UTC).
pub const RETRY_DUE_AT: &str = "retry.due_at";
/// Header: the topic to put it back on.
pub const RETRY_ORIGINAL_TOPIC: &str = "retry.original_topic";

/// The retry copy of `msg`, due at `due_at`, to be consumed as attempt `next_attempt`.
pub fn retry_message(retry_topic: &str, msg: &Incoming, next_attempt: u32, due_at: DateTime<Utc>) -> Outgoing {
    let mut out = Outgoing {
        topic: retry_topic.to_string(),
        key: msg.key.clone().unwrap_or_default(),
        payload: msg.payload.clone().unwrap_or_default(),
        headers: carried_headers(msg),
    };
    out = out
        .header(RETRY_ATTEMPT, next_attempt.to_string())
        .header(RETRY_DUE_AT, due_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .header(RETRY_ORIGINAL_TOPIC, msg.topic.clone());
    out
}

/// Headers that travel with a retried message: all but its id (the outbox gives each copy its own).
fn carried_headers(msg: &Incoming) -> Vec<(String, String)> {
    msg.headers.iter().filter(|(k, _)| k != MESSAGE_ID).cloned().collect()
}

/// Puts due retries back on their original topic.
pub struct RetryForwarder {
    /// Full names of the topics this service retries (others' retries are skipped).
    pub own_topics: Vec<String>,
    /// Ends a wait early at shutdown (the retry is then redelivered on restart).
    pub shutdown: CancellationToken,
}

impl Handler for RetryForwarder {
    async fn handle(&self, _conn: &mut MySqlConnection, msg: &Incoming) -> Result<Vec<Outgoing>, HandleError> {
        let original =
            msg.header(RETRY_ORIGINAL_TOPIC).ok_or_else(|| HandleError::Malformed(format!("missing {RETRY_ORIGINAL_TOPIC} header")))?;
        if !self.own_topics.iter().any(|t| t == original) {
            return Ok(vec![]);
        }
        let due_at = msg
            .header(RETRY_DUE_AT)
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .ok_or_else(|| HandleError::Malformed(format!("missing or invalid {RETRY_DUE_AT} header")))?
            .with_timezone(&Utc);
        if msg.payload.is_none() {
            return Err(HandleError::Malformed("empty payload".into()));
        }
        let early_ms = (due_at - Utc::now()).num_milliseconds();
        tracing::debug!(topic = original, early_ms, "retry received");
        if let Ok(wait) = (due_at - Utc::now()).to_std() {
            tokio::select! {
                _ = self.shutdown.cancelled() => return Err(HandleError::Transient(anyhow::anyhow!("shutting down before the retry was due"))),
                _ = tokio::time::sleep(wait) => {}
            }
        }
        metrics::counter!("payment_retries_forwarded_total").increment(1);
        Ok(vec![Outgoing {
            topic: original.to_string(),
            key: msg.key.clone().unwrap_or_default(),
            payload: msg.payload.clone().unwrap_or_default(),
            headers: carried_headers(msg),
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming() -> Incoming {
        Incoming {
            topic: "t.payment.commands".into(),
            partition: 2,
            offset: 41,
            key: Some("user-1".into()),
            payload: Some(r#"{"type":"charge"}"#.into()),
            headers: vec![
                (MESSAGE_ID.into(), "m-1".into()),
                ("message_type".into(), "charge".into()),
                (RETRY_ATTEMPT.into(), "2".into()),
            ],
            message_id: "m-1".into(),
        }
    }

    #[test]
    fn a_retry_copy_keeps_key_payload_and_type_and_says_when_and_where() {
        let due = "2026-11-23T10:00:00.250Z".parse::<DateTime<Utc>>().unwrap();
        let out = retry_message("t.saga.retry", &incoming(), 3, due);
        assert_eq!((out.topic.as_str(), out.key.as_str()), ("t.saga.retry", "user-1"));
        assert_eq!(out.payload, r#"{"type":"charge"}"#);
        let header = |name: &str| out.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
        assert_eq!(header(RETRY_ATTEMPT), Some("3"), "the attempt header is replaced, not duplicated");
        assert_eq!(out.headers.iter().filter(|(k, _)| k == RETRY_ATTEMPT).count(), 1);
        assert_eq!(header(RETRY_DUE_AT), Some("2026-11-23T10:00:00.250Z"));
        assert_eq!(header(RETRY_ORIGINAL_TOPIC), Some("t.payment.commands"));
        assert_eq!(header("message_type"), Some("charge"));
        assert_eq!(header(MESSAGE_ID), None, "each copy gets its own id from the outbox");
    }
}
