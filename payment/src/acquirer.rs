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
//!
//! The CVC: the order's first authorization must carry it (else `invalid_cvc`); later attempts —
//! retries, replays — come without it, as merchant-initiated charges of a card already verified
//! (the CVC is not kept after the first attempt: PCI DSS 3.2), and are accepted.

/// The acquirer's answer to an authorisation request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Approved,
    /// A permanent refusal with its decline code.
    Declined(&'static str),
    /// A failure worth retrying (see [`crate::retry_policy::is_transient`]).
    Transient(&'static str),
}

/// Authorises a charge on the card `digits` with its `cvc` (`None` after the first attempt);
/// `attempt_of_order` counts every call for this order (1 for the first, across replay rounds).
pub fn authorize(digits: &str, cvc: Option<&str>, attempt_of_order: u32, outage: bool) -> Answer {
    if outage {
        return Answer::Transient("acquirer_unavailable");
    }
    if cvc.is_none() && attempt_of_order <= 1 {
        return Answer::Declined("invalid_cvc");
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
        let cvc = Some("123");
        assert_eq!(authorize("4242424242424242", cvc, 1, false), Answer::Approved);
        assert_eq!(authorize("5555555555554444", cvc, 1, false), Answer::Approved);
        assert_eq!(authorize("4000000000000002", cvc, 1, false), Answer::Declined("card_declined"));
        assert_eq!(authorize("4000000000009995", cvc, 1, false), Answer::Declined("insufficient_funds"));
        assert_eq!(authorize("4000000000000069", cvc, 1, false), Answer::Declined("expired_card"));
        assert_eq!(authorize("4000000000000119", None, 9, false), Answer::Transient("processing_error"));
        assert_eq!(authorize("4000000000000341", cvc, 1, false), Answer::Transient("processing_error"));
        assert_eq!(authorize("4000000000000341", None, 2, false), Answer::Transient("processing_error"));
        assert_eq!(authorize("4000000000000341", None, 3, false), Answer::Approved);
        assert_eq!(authorize("4242424242424242", cvc, 1, true), Answer::Transient("acquirer_unavailable"));
    }

    #[test]
    fn the_first_attempt_needs_the_cvc_and_retries_go_without_it() {
        assert_eq!(authorize("4242424242424242", None, 1, false), Answer::Declined("invalid_cvc"));
        assert_eq!(authorize("4242424242424242", None, 2, false), Answer::Approved);
        assert_eq!(authorize("4242424242424242", Some("123"), 2, false), Answer::Approved);
    }
}
