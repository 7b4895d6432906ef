//! Double-entry: every money movement is a journal entry whose postings sum to zero. An account's
//! `available` and `held` are the sums of its postings in each bucket; `ledger` = available + held.
//! The legs of each movement the bank makes are built here.

use rust_decimal::Decimal;

/// Which balance of an account a posting changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Available,
    Held,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Available => "available",
            Bucket::Held => "held",
        }
    }
}

/// One posting: `amount` (signed) into `account`'s `bucket`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub account: String,
    pub bucket: Bucket,
    pub amount: Decimal,
}

fn leg(account: &str, bucket: Bucket, amount: Decimal) -> Leg {
    Leg { account: account.to_string(), bucket, amount }
}

/// Whether the postings of one entry sum to zero (every entry the bank writes must).
pub fn balanced(legs: &[Leg]) -> bool {
    legs.iter().map(|l| l.amount).sum::<Decimal>().is_zero()
}

/// Cash enters the bank into `account`.
pub fn deposit(cash: &str, account: &str, amount: Decimal) -> Vec<Leg> {
    vec![leg(cash, Bucket::Available, -amount), leg(account, Bucket::Available, amount)]
}

/// Cash leaves the bank from `account`.
pub fn withdrawal(cash: &str, account: &str, amount: Decimal) -> Vec<Leg> {
    vec![leg(account, Bucket::Available, -amount), leg(cash, Bucket::Available, amount)]
}

/// `from`'s available → `to`'s available.
pub fn transfer(from: &str, to: &str, amount: Decimal) -> Vec<Leg> {
    vec![leg(from, Bucket::Available, -amount), leg(to, Bucket::Available, amount)]
}

/// Available → held within `account`.
pub fn hold(account: &str, amount: Decimal) -> Vec<Leg> {
    vec![leg(account, Bucket::Available, -amount), leg(account, Bucket::Held, amount)]
}

/// Held → available within `account` (a hold released).
pub fn release(account: &str, amount: Decimal) -> Vec<Leg> {
    vec![leg(account, Bucket::Held, -amount), leg(account, Bucket::Available, amount)]
}

/// `from`'s held → `to`'s available (a held transfer settles, a payment is captured).
pub fn settle_held(from: &str, to: &str, amount: Decimal) -> Vec<Leg> {
    vec![leg(from, Bucket::Held, -amount), leg(to, Bucket::Available, amount)]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn every_movement_balances(cents in 1i64..1_000_000_000_000) {
            let a = Decimal::new(cents, 2);
            for legs in [deposit("c", "x", a), withdrawal("c", "x", a), transfer("x", "y", a), hold("x", a), release("x", a), settle_held("x", "y", a)] {
                prop_assert!(balanced(&legs));
            }
        }

        /// Holding, then releasing or settling, keeps each account's ledger (available + held) right.
        #[test]
        fn hold_then_settle_moves_the_ledger_once(cents in 1i64..1_000_000_000) {
            let a = Decimal::new(cents, 2);
            let all: Vec<Leg> = [hold("x", a), settle_held("x", "y", a)].concat();
            let of = |acct: &str, b: Option<Bucket>| all.iter().filter(|l| l.account == acct && b.is_none_or(|b| l.bucket == b)).map(|l| l.amount).sum::<Decimal>();
            prop_assert_eq!(of("x", None), -a);
            prop_assert_eq!(of("x", Some(Bucket::Held)), Decimal::ZERO);
            prop_assert_eq!(of("y", None), a);
            let released: Vec<Leg> = [hold("x", a), release("x", a)].concat();
            prop_assert!(released.iter().filter(|l| l.account == "x").map(|l| l.amount).sum::<Decimal>().is_zero());
        }
    }
}
