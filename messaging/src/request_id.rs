//! Request ids: one id follows a request from the edge through every service it reaches and every
//! Kafka message it causes, so its logs and messages can be found together.
//!
//! - HTTP: `x-request-id` — the caller's when sane (1–128 visible ASCII characters), else a new
//!   UUID; every service answers with it ([`crate::http`]'s middleware runs each request inside
//!   [`scope`] and a `request` log span carrying it).
//! - Kafka: the `request-id` header. [`crate::outbox::enqueue_all`] stamps the id of the request in
//!   scope on the messages it writes; [`crate::inbox`] stamps the id of the message being handled
//!   on the messages its handler returns — so an order's commands, replies and events all carry the
//!   id of the `POST /payment` that started it.

use std::future::Future;

/// The HTTP header.
pub const HEADER: &str = "x-request-id";
/// The Kafka message header.
pub const KAFKA_HEADER: &str = "request-id";

tokio::task_local! {
    static CURRENT: String;
}

/// `value` as a request id, if it is one worth keeping (it goes into logs and headers as is).
pub fn sane(value: &str) -> Option<&str> {
    (!value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic())).then_some(value)
}

/// The caller's id when sane, else a new one.
pub fn or_new(value: Option<&str>) -> String {
    value.and_then(sane).map(str::to_string).unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Runs `fut` with `id` as the current request id.
pub async fn scope<F: Future>(id: String, fut: F) -> F::Output {
    CURRENT.scope(id, fut).await
}

/// The id of the request being served by this task, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// `headers` with `(KAFKA_HEADER, id)` added unless they name one already.
pub fn stamp(headers: &mut Vec<(String, String)>, id: &str) {
    if !headers.iter().any(|(k, _)| k == KAFKA_HEADER) {
        headers.push((KAFKA_HEADER.to_string(), id.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_kept_and_others_replaced() {
        assert_eq!(or_new(Some("abc-123")), "abc-123");
        assert_ne!(or_new(Some("has space")), "has space");
        assert_ne!(or_new(Some("")), "");
        assert_eq!(or_new(Some(&"x".repeat(129))).len(), 36);
        assert_eq!(or_new(None).len(), 36);
    }

    #[tokio::test]
    async fn the_id_is_current_inside_its_scope_only() {
        assert_eq!(current(), None);
        let inside = scope("req-1".into(), async { current() }).await;
        assert_eq!(inside.as_deref(), Some("req-1"));
        assert_eq!(current(), None);
    }

    #[test]
    fn a_header_already_present_is_kept() {
        let mut h = vec![("request-id".to_string(), "first".to_string())];
        stamp(&mut h, "second");
        assert_eq!(h, vec![("request-id".to_string(), "first".to_string())]);
        let mut h = Vec::new();
        stamp(&mut h, "only");
        assert_eq!(h, vec![("request-id".to_string(), "only".to_string())]);
    }
}
