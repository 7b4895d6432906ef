//! The statuses of the public contract (DESIGN §6): where an order is, and where a stock
//! reservation is. Their names are what the HTTP answers, the messages and the tables hold; the
//! moves between them belong to each service's own state machine (the orchestrator's saga, the
//! product service's hold), not here.

use std::fmt;

/// Where an order is. The public statuses of DESIGN §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Accepted,
    ReservationLocked,
    PaymentPending,
    Paid,
    Completed,
    /// A permanent refusal of the charge (or the risk check); compensation follows at once.
    Declined,
    /// A step was dead-lettered: parked until an operator replays or abandons it, or the hold expires.
    Failed,
    Compensated,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        Self::Accepted,
        Self::ReservationLocked,
        Self::PaymentPending,
        Self::Paid,
        Self::Completed,
        Self::Declined,
        Self::Failed,
        Self::Compensated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "ACCEPTED",
            Self::ReservationLocked => "RESERVATION_LOCKED",
            Self::PaymentPending => "PAYMENT_PENDING",
            Self::Paid => "PAID",
            Self::Completed => "COMPLETED",
            Self::Declined => "DECLINED",
            Self::Failed => "FAILED",
            Self::Compensated => "COMPENSATED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// COMPLETED and COMPENSATED never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Compensated)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a stock reservation is (`GET /reservations/{id}`'s `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStatus {
    Held,
    Confirmed,
    Released,
    Expired,
}

impl HoldStatus {
    pub const ALL: [HoldStatus; 4] = [Self::Held, Self::Confirmed, Self::Released, Self::Expired];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Held => "HELD",
            Self::Confirmed => "CONFIRMED",
            Self::Released => "RELEASED",
            Self::Expired => "EXPIRED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.as_str() == s)
    }
}

impl fmt::Display for HoldStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::{HoldStatus, OrderStatus};

    #[test]
    fn every_status_parses_back_from_its_name_and_nothing_else_does() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        for h in HoldStatus::ALL {
            assert_eq!(HoldStatus::parse(h.as_str()), Some(h));
        }
        for bad in ["", "completed", "HELD ", "PENDING"] {
            assert_eq!(OrderStatus::parse(bad), None, "{bad:?}");
        }
        assert_eq!(HoldStatus::parse("COMPLETED"), None);
    }

    #[test]
    fn only_completed_and_compensated_are_terminal() {
        let terminal: Vec<_> = OrderStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(terminal, [OrderStatus::Completed, OrderStatus::Compensated]);
    }
}
