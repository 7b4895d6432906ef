//! The bank's answers on `bank.replies`: each carries an account charge on (capture after a hold,
//! void or refund of a late one) and, once settled, answers the saga. What an answer does is
//! decided by [`crate::lifecycle::on_bank_reply`] on the charge's stored status.

use rust_decimal::Decimal;
use sagaway_contract::{
    ids::OrderId,
    messages::{BankCommand, BankReply, PaymentReply},
};
use sagaway_messaging::{inbox::{HandleError, Handler, Incoming}, outbox::Outgoing};
use sqlx::{MySqlConnection, Row};

use super::{METHOD, command};
use crate::{
    ledger,
    lifecycle::{self, BankAnswer, ChargeStatus, OnBankReply},
    refunds,
};

/// Consumes `bank.replies`: carries each account charge on and answers the saga.
pub struct BankReplyHandler {
    /// `payment.replies` (full name).
    pub replies_topic: String,
    /// `bank.commands` (full name).
    pub bank_commands_topic: String,
}

impl BankReplyHandler {
    /// A reply to the orchestrator, keyed by the order's user like every `payment.replies` message.
    fn reply(&self, user_id: &str, reply: &PaymentReply) -> Outgoing {
        Outgoing::json(&self.replies_topic, user_id, reply.kind(), reply)
    }
}

impl Handler for BankReplyHandler {
    async fn handle(&self, conn: &mut MySqlConnection, msg: &Incoming) -> Result<Vec<Outgoing>, HandleError> {
        let answer: BankReply = msg.json()?;
        let kind = BankAnswer::parse(&answer.kind).ok_or_else(|| HandleError::Malformed(format!("bank answer {:?}", answer.kind)))?;
        let order_id = answer.payment_id.as_str();
        let row = sqlx::query(
            "SELECT id, CAST(user_id AS CHAR) AS user_id, status, method, account_id, amount, currency, refund_reason \
             FROM charges WHERE order_id = ? FOR UPDATE",
        )
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?;
        let row = row.filter(|r| r.get::<String, _>("method") == METHOD);
        let status = match &row {
            Some(r) => {
                let raw: String = r.get("status");
                Some(ChargeStatus::parse(&raw).ok_or_else(|| HandleError::Transient(anyhow::anyhow!("charge of order {order_id} in an unknown status {raw:?}")))?)
            }
            None => None,
        };
        let decision = lifecycle::on_bank_reply(status, kind);
        metrics::counter!("payment_bank_replies_total", "answer" => kind_name(kind)).increment(1);
        let (
            Some(row),
            OnBankReply::Capture | OnBankReply::Succeed | OnBankReply::Decline | OnBankReply::RefundLateCapture | OnBankReply::VoidLateHold | OnBankReply::FinishRefund,
        ) = (row, decision)
        else {
            if let OnBankReply::Ignore(why) = decision {
                if kind == BankAnswer::Rejected {
                    tracing::warn!(order_id, reason = answer.reason.as_deref().unwrap_or_default(), why, "the bank rejected a command; nothing to do");
                } else {
                    tracing::info!(order_id, answer = %answer.kind, why, "bank answer skipped");
                }
            }
            return Ok(vec![]);
        };
        // A charge was found under it, so the payment id is one of our order ids.
        let order: OrderId = order_id.parse().map_err(|e| HandleError::Malformed(format!("payment_id: {e}")))?;
        let charge_id: String = row.get("id");
        let user_id: String = row.get("user_id");
        let account_id: String = row.get::<Option<String>, _>("account_id").unwrap_or_default();
        let amount: Decimal = row.get("amount");
        let currency: String = row.get("currency");
        Ok(match decision {
            OnBankReply::Capture => {
                vec![command(&self.bank_commands_topic, &account_id, &BankCommand::Capture { payment_id: order_id.into() })]
            }
            OnBankReply::Succeed => {
                let customer = ledger::ensure_customer(conn, &user_id).await?;
                ledger::transfer(conn, order_id, "capture", &currency, &customer, ledger::MERCHANT, amount).await?;
                sqlx::query("UPDATE charges SET status = 'succeeded' WHERE id = ?").bind(&charge_id).execute(&mut *conn).await?;
                tracing::info!(order_id, "account charge captured by the bank");
                let reply = PaymentReply::Charged { order_id: order.clone(), charge_id, amount: ledger::canonical(amount), currency: Some(currency) };
                vec![self.reply(&user_id, &reply)]
            }
            OnBankReply::Decline => {
                let reason = answer.reason.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| "declined_by_bank".into());
                sqlx::query("UPDATE charges SET status = 'declined', decline_code = ? WHERE id = ?")
                    .bind(reason.chars().take(64).collect::<String>())
                    .bind(&charge_id)
                    .execute(&mut *conn)
                    .await?;
                tracing::info!(order_id, reason, "account charge declined by the bank");
                vec![self.reply(&user_id, &PaymentReply::Declined { order_id: order.clone(), reason })]
            }
            OnBankReply::RefundLateCapture => {
                tracing::warn!(order_id, "the bank captured a charge voided meanwhile; asking it to refund");
                metrics::counter!("payment_late_captures_refunded_total").increment(1);
                vec![command(&self.bank_commands_topic, &account_id, &BankCommand::Refund { payment_id: order_id.into() })]
            }
            OnBankReply::VoidLateHold => {
                tracing::warn!(order_id, "the bank held money for a charge declined meanwhile; asking it to void");
                metrics::counter!("payment_late_holds_voided_total").increment(1);
                vec![command(&self.bank_commands_topic, &account_id, &BankCommand::Void { payment_id: order_id.into() })]
            }
            OnBankReply::FinishRefund => {
                let reason: String = row.get::<Option<String>, _>("refund_reason").unwrap_or_else(|| "compensation".into());
                let reply = refunds::settle(conn, &order, &charge_id, &user_id, amount, &currency, &reason).await?;
                vec![self.reply(&user_id, &reply)]
            }
            OnBankReply::Ignore(_) => vec![],
        })
    }
}

fn kind_name(kind: BankAnswer) -> &'static str {
    match kind {
        BankAnswer::Held => "held",
        BankAnswer::Declined => "declined",
        BankAnswer::Captured => "captured",
        BankAnswer::Voided => "voided",
        BankAnswer::Refunded => "refunded",
        BankAnswer::Rejected => "rejected",
    }
}
