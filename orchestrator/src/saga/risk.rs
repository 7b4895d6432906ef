//! The risk check: an optional saga step between RESERVATION_LOCKED and the charge
//! (`ORCHESTRATOR_RISK_CHECK=true`). An order over the amount limit, or a shopper placing more than
//! the allowed number of orders in a minute, is DECLINED `risk_rejected` and compensated before any
//! card is touched. The rules are pure ([`verdict`]); [`assess`] only counts the shopper's orders.

use rust_decimal::Decimal;
use sqlx::MySqlConnection;

use super::machine::RiskVerdict;
use crate::orders::Order;

/// The rules (`ORCHESTRATOR_RISK_MAX_AMOUNT`, `ORCHESTRATOR_RISK_MAX_ORDERS_PER_MINUTE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskPolicy {
    pub max_amount: Decimal,
    pub max_orders_per_minute: u32,
}

impl Default for RiskPolicy {
    fn default() -> Self {
        Self { max_amount: Decimal::new(100_000, 2), max_orders_per_minute: 10 }
    }
}

/// The verdict on an order of `amount` by a shopper who placed `orders_last_minute` orders
/// (this one included) in the last minute.
pub fn verdict(policy: &RiskPolicy, amount: Decimal, orders_last_minute: u32) -> RiskVerdict {
    if amount > policy.max_amount {
        return RiskVerdict::Reject { rule: format!("amount {amount} over the limit {}", policy.max_amount) };
    }
    if orders_last_minute > policy.max_orders_per_minute {
        return RiskVerdict::Reject { rule: format!("{orders_last_minute} orders in a minute, limit {}", policy.max_orders_per_minute) };
    }
    RiskVerdict::Accept
}

/// Assesses `order` (the local participant of the `assess_risk` step).
pub async fn assess(conn: &mut MySqlConnection, policy: &RiskPolicy, order: &Order) -> sqlx::Result<RiskVerdict> {
    let recent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE user_id = ? AND created_at > NOW(6) - INTERVAL 1 MINUTE")
        .bind(order.user_id.as_str())
        .fetch_one(conn)
        .await?;
    Ok(verdict(policy, order.amount, u32::try_from(recent).unwrap_or(u32::MAX)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RiskPolicy {
        RiskPolicy { max_amount: "100.00".parse().unwrap(), max_orders_per_minute: 3 }
    }

    #[test]
    fn accepts_within_both_limits_including_the_edges() {
        assert_eq!(verdict(&policy(), "100.00".parse().unwrap(), 3), RiskVerdict::Accept);
        assert_eq!(verdict(&policy(), "0.01".parse().unwrap(), 1), RiskVerdict::Accept);
    }

    #[test]
    fn rejects_an_amount_over_the_limit() {
        let v = verdict(&policy(), "100.01".parse().unwrap(), 1);
        assert!(matches!(v, RiskVerdict::Reject { rule } if rule.contains("100.01")));
    }

    #[test]
    fn rejects_too_many_orders_in_a_minute() {
        let v = verdict(&policy(), "1.00".parse().unwrap(), 4);
        assert!(matches!(v, RiskVerdict::Reject { rule } if rule.contains("4 orders")));
    }
}
