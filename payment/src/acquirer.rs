//! The simulated acquirer (the bank side of a card payment). It answers by card number, like the
//! test cards of real payment platforms (documented in the README):
//!
//! | number | answer |
//! | --- | --- |
//! | 4242424242424242 | approved |
//! | 4000000000000002 | declined `card_declined` |
//! | 4000000000009995 | declined `insufficient_funds` |
//! | 4000000000000069 | declined `expired_card` |
//! | 4000000000000119 | transient `processing_error`, every attempt |
//! | 4000000000000341 | transient `processing_error` on the order's first two attempts, then approved |
//! | any other valid card | approved |
//!
//! While the outage switch is on ([`crate::outage`]) every call fails with `acquirer_unavailable`.

/// The acquirer's answer to an authorisation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Approved,
    /// A permanent refusal with its decline code.
    Declined(&'static str),
    /// A failure worth retrying (see [`crate::retry_policy::is_transient`]).
    Transient(&'static str),
}

/// Authorises a charge on the card `digits`; `attempt_of_order` counts every call for this order
/// (1 for the first, across replay rounds).
pub fn authorize(digits: &str, attempt_of_order: u32, outage: bool) -> Answer {
    if outage {
        return Answer::Transient("acquirer_unavailable");
    }
    match digits {
        "4000000000000002" => Answer::Declined("card_declined"),
        "4000000000009995" => Answer::Declined("insufficient_funds"),
        "4000000000000069" => Answer::Declined("expired_card"),
        "4000000000000119" => Answer::Transient("processing_error"),
        "4000000000000341" if attempt_of_order <= 2 => Answer::Transient("processing_error"),
        _ => Answer::Approved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_cards_answer_as_documented() {
        assert_eq!(authorize("4242424242424242", 1, false), Answer::Approved);
        assert_eq!(authorize("5555555555554444", 1, false), Answer::Approved);
        assert_eq!(authorize("4000000000000002", 1, false), Answer::Declined("card_declined"));
        assert_eq!(authorize("4000000000009995", 1, false), Answer::Declined("insufficient_funds"));
        assert_eq!(authorize("4000000000000069", 1, false), Answer::Declined("expired_card"));
        assert_eq!(authorize("4000000000000119", 9, false), Answer::Transient("processing_error"));
        assert_eq!(authorize("4000000000000341", 1, false), Answer::Transient("processing_error"));
        assert_eq!(authorize("4000000000000341", 2, false), Answer::Transient("processing_error"));
        assert_eq!(authorize("4000000000000341", 3, false), Answer::Approved);
        assert_eq!(authorize("4242424242424242", 1, true), Answer::Transient("acquirer_unavailable"));
    }
}
