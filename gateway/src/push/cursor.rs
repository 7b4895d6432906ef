//! Where a stream is in the event topics: for each (topic, partition), the next offset it has not
//! been given yet. It is every event's SSE `id`, so a client that reconnects with `Last-Event-ID`
//! resumes exactly after the last event it saw. Encoded as `t:p:o` triples joined by `.`
//! (`0:0:1532.1:0:977`), the topic being its index in the configured list. Pure.

use std::collections::BTreeMap;

/// (topic index, partition) → next offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(pub BTreeMap<(usize, i32), i64>);

impl Cursor {
    pub fn encode(&self) -> String {
        self.0.iter().map(|((t, p), o)| format!("{t}:{p}:{o}")).collect::<Vec<_>>().join(".")
    }

    /// Parses an id this gateway wrote; anything else (including an id from another topic
    /// configuration: an unknown topic index) is `None`, and the stream starts over with `resync`.
    pub fn decode(text: &str, topics: usize) -> Option<Self> {
        if text.is_empty() || text.len() > 4096 {
            return None;
        }
        let mut out = BTreeMap::new();
        for triple in text.split('.') {
            let mut it = triple.split(':');
            let (t, p, o) = (it.next()?.parse::<usize>().ok()?, it.next()?.parse::<i32>().ok()?, it.next()?.parse::<i64>().ok()?);
            if it.next().is_some() || t >= topics || p < 0 || o < 0 || out.insert((t, p), o).is_some() {
                return None;
            }
        }
        Some(Self(out))
    }

    /// Moves past the event at `offset` of (topic, partition).
    pub fn advance(&mut self, topic: usize, partition: i32, offset: i64) {
        let next = self.0.entry((topic, partition)).or_insert(0);
        *next = (*next).max(offset + 1);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn garbage_and_other_configurations_are_refused() {
        for bad in ["", "x", "0:0", "0:0:1:2", "3:0:1", "0:-1:1", "0:0:-4", "0:0:1.0:0:2", "0:0:1..1:0:2"] {
            assert_eq!(Cursor::decode(bad, 3), None, "{bad:?}");
        }
    }

    #[test]
    fn advancing_never_goes_back() {
        let mut c = Cursor::default();
        c.advance(1, 0, 10);
        c.advance(1, 0, 4);
        assert_eq!(c.encode(), "1:0:11");
    }

    proptest! {
        #[test]
        fn cursors_round_trip(entries in proptest::collection::btree_map((0usize..4, 0i32..8), 0i64..1_000_000_000, 1..12)) {
            let c = Cursor(entries);
            prop_assert_eq!(Cursor::decode(&c.encode(), 4), Some(c));
        }
    }
}
