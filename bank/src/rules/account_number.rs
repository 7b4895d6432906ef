//! Account numbers: 8 digits and a mod-11 check digit (`12345678-9`).
//!
//! The check digit is `(11 - Σ dᵢ·wᵢ mod 11) mod 11` with weights 9, 8, …, 2 from the left. Bases whose
//! digit would be 10 are never issued, so every issued number has one decimal check digit and every
//! single wrong digit and every swap of two adjacent different digits is detected (weights are
//! distinct and non-zero mod 11).

/// The check digit of an 8-digit base, or `None` when it would be 10 (such a base is not issued).
pub fn check_digit(base: &[u8; 8]) -> Option<u8> {
    let sum: u32 = base.iter().zip((2..=9).rev()).map(|(d, w)| u32::from(*d) * w).sum();
    let digit = (11 - sum % 11) % 11;
    (digit < 10).then_some(digit as u8)
}

/// An issued account number, canonical as 9 digits (the API shows `12345678-9`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountNumber([u8; 9]);

impl AccountNumber {
    /// The number with base `base` (its check digit appended), or `None` for a base that is not issued.
    pub fn from_base(base: [u8; 8]) -> Option<Self> {
        let c = check_digit(&base)?;
        let mut all = [0u8; 9];
        all[..8].copy_from_slice(&base);
        all[8] = c;
        Some(Self(all))
    }

    /// A random issuable number whose base is at least 10000000 (lower bases are the bank's own accounts).
    pub fn random(mut next: impl FnMut() -> u32) -> Self {
        loop {
            let n = 10_000_000 + next() % 90_000_000;
            if let Some(a) = Self::from_base(digits8(n)) {
                return a;
            }
        }
    }

    /// The first issuable number at or after base `n` (a test's number that no account has: it
    /// may be any bank account's, so the bank's own accounts use [`AccountNumber::system`]).
    pub fn internal(n: u32) -> Self {
        (n..).find_map(|k| Self::from_base(digits8(k))).expect("some base nearby is issuable")
    }

    /// The number of the bank's own account in block `slot`: the first issuable base of
    /// `10·slot … 10·slot + 9`. Ten consecutive bases ending in 0…9 have ten different check sums
    /// mod 11, so at most one of them is not issuable and the number never leaves its block: two
    /// slots never share a number. `None` past the system range (bases below 10000000).
    pub fn system(slot: u32) -> Option<Self> {
        if slot >= SYSTEM_SLOTS {
            return None;
        }
        (slot * 10..slot * 10 + 10).find_map(|k| Self::from_base(digits8(k)))
    }

    /// Parses `12345678-9` or `123456789`; the check digit must match.
    pub fn parse(text: &str) -> Result<Self, String> {
        let digits: Vec<u8> = text.trim().chars().filter(|c| *c != '-').map(|c| c.to_digit(10).map(|d| d as u8).ok_or(())).collect::<Result<_, _>>()
            .map_err(|_| "must be 8 digits and a check digit (12345678-9)".to_string())?;
        let dash_ok = match text.trim().find('-') {
            None => true,
            Some(i) => i == 8 && text.trim().matches('-').count() == 1,
        };
        if digits.len() != 9 || !dash_ok {
            return Err("must be 8 digits and a check digit (12345678-9)".into());
        }
        let base: [u8; 8] = digits[..8].try_into().expect("8 digits");
        match check_digit(&base) {
            Some(c) if c == digits[8] => Ok(Self(digits.try_into().expect("9 digits"))),
            _ => Err("check digit does not match".into()),
        }
    }

    /// The 9 digits as stored (`123456789`).
    pub fn digits(&self) -> String {
        self.0.iter().map(|d| char::from(b'0' + d)).collect()
    }

    /// As shown: `12345678-9`.
    pub fn display(&self) -> String {
        let d = self.digits();
        format!("{}-{}", &d[..8], &d[8..])
    }
}

/// Blocks of ten bases below the customer range (10000000): the bank's own accounts.
pub const SYSTEM_SLOTS: u32 = 1_000_000;

/// The bank's own accounts, each with a slot of its own ([`AccountNumber::system`]): cash and
/// merchant per currency (slots 10·(i+1) and 10·(i+1)+5: the numbers they always had) and the
/// clearing account per peer bank and currency (slots 100000 + 100·peer + currency index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemAccount {
    /// Index `i` into the bank's currency list.
    Cash(usize),
    Merchant(usize),
    /// A peer bank's code (0–999) and a currency index.
    Clearing { peer: u16, currency: usize },
}

/// The most currencies a system slot scheme has room for (per block of peer slots).
pub const MAX_SYSTEM_CURRENCIES: usize = 100;

impl SystemAccount {
    /// Its slot; `None` for a currency index or peer code out of range.
    pub fn slot(self) -> Option<u32> {
        match self {
            Self::Cash(i) if i < 9_999 => Some(10 * (i as u32 + 1)),
            Self::Merchant(i) if i < 9_999 => Some(10 * (i as u32 + 1) + 5),
            Self::Clearing { peer, currency } if peer < 1000 && currency < MAX_SYSTEM_CURRENCIES => Some(100_000 + 100 * u32::from(peer) + currency as u32),
            _ => None,
        }
    }

    /// Its account number (distinct for every distinct account).
    pub fn number(self) -> Option<AccountNumber> {
        self.slot().and_then(AccountNumber::system)
    }
}

/// Shows stored digits (`123456789`) as `12345678-9`.
pub fn display_stored(stored: &str) -> String {
    if stored.len() == 9 { format!("{}-{}", &stored[..8], &stored[8..]) } else { stored.to_string() }
}

fn digits8(n: u32) -> [u8; 8] {
    let mut out = [0u8; 8];
    let mut n = n;
    for i in (0..8).rev() {
        out[i] = (n % 10) as u8;
        n /= 10;
    }
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_numbers() {
        // 1·9+2·8+3·7+4·6+5·5+6·4+7·3+8·2 = 156; 156 mod 11 = 2; 11-2 = 9
        assert_eq!(check_digit(&[1, 2, 3, 4, 5, 6, 7, 8]), Some(9));
        assert_eq!(AccountNumber::parse("12345678-9").unwrap().display(), "12345678-9");
        assert_eq!(AccountNumber::parse("123456789").unwrap().digits(), "123456789");
        assert!(AccountNumber::parse("12345678-0").is_err());
        assert!(AccountNumber::parse("1234567-89").is_err());
        assert!(AccountNumber::parse("12345678-").is_err());
        assert!(AccountNumber::parse("abcdefgh-9").is_err());
        assert!(AccountNumber::internal(1).digits().starts_with("0000000"));
    }

    #[test]
    fn every_system_slot_has_a_number_in_its_own_block() {
        for slot in 0..SYSTEM_SLOTS {
            let n = AccountNumber::system(slot).unwrap_or_else(|| panic!("slot {slot} has no number"));
            let base: u32 = n.digits()[..8].parse().unwrap();
            assert_eq!(base / 10, slot, "slot {slot} got base {base}");
        }
        assert_eq!(AccountNumber::system(SYSTEM_SLOTS), None);
    }

    #[test]
    fn the_banks_own_accounts_never_share_a_number_and_cash_and_merchant_keep_theirs() {
        let mut all = std::collections::HashMap::new();
        let mut accounts: Vec<SystemAccount> = (0..9).flat_map(|i| [SystemAccount::Cash(i), SystemAccount::Merchant(i)]).collect();
        for peer in 0..1000u16 {
            for currency in 0..MAX_SYSTEM_CURRENCIES {
                accounts.push(SystemAccount::Clearing { peer, currency });
            }
        }
        for a in accounts {
            let n = a.number().unwrap_or_else(|| panic!("{a:?} has no number"));
            assert!(n.digits().as_str() < "10000000", "{a:?} is in the customer range");
            if let Some(other) = all.insert(n.digits(), a) {
                panic!("{a:?} and {other:?} share {}", n.display());
            }
        }
        // Cash and merchant accounts were numbered internal(100·(i+1)) and internal(100·(i+1)+50).
        for i in 0..9 {
            assert_eq!(SystemAccount::Cash(i).number(), Some(AccountNumber::internal(100 * (i as u32 + 1))));
            assert_eq!(SystemAccount::Merchant(i).number(), Some(AccountNumber::internal(100 * (i as u32 + 1) + 50)));
        }
        assert_eq!(SystemAccount::Clearing { peer: 1000, currency: 0 }.number(), None);
        assert_eq!(SystemAccount::Clearing { peer: 1, currency: MAX_SYSTEM_CURRENCIES }.number(), None);
        assert_eq!(SystemAccount::Cash(9_999).number(), None);
    }

    #[test]
    fn the_old_clearing_numbers_collided() {
        // internal(1000 + 10·peer + currency) stepped over unissuable bases into the next currency's.
        let old = |peer: u32, cur: u32| AccountNumber::internal(1_000 + peer * 10 + cur);
        let collides = (1..=3).any(|peer| (0..8).any(|cur| old(peer, cur) == old(peer, cur + 1)));
        assert!(collides, "the scheme this replaced gave two currencies one number");
    }

    proptest! {
        #[test]
        fn issued_numbers_parse_back(seed in any::<u32>()) {
            let mut s = seed;
            let n = AccountNumber::random(|| { s = s.wrapping_mul(1_103_515_245).wrapping_add(12345); s });
            prop_assert_eq!(AccountNumber::parse(&n.display()).unwrap(), n);
            prop_assert_eq!(AccountNumber::parse(&n.digits()).unwrap(), n);
            prop_assert!(n.digits().as_str() >= "10000000");
        }

        #[test]
        fn every_single_wrong_digit_is_detected(seed in any::<u32>(), pos in 0usize..9, delta in 1u8..10) {
            let mut s = seed;
            let n = AccountNumber::random(|| { s = s.wrapping_mul(1_103_515_245).wrapping_add(12345); s });
            let mut d: Vec<u8> = n.digits().bytes().collect();
            d[pos] = b'0' + ((d[pos] - b'0' + delta) % 10);
            prop_assert!(AccountNumber::parse(std::str::from_utf8(&d).unwrap()).is_err());
        }

        #[test]
        fn every_adjacent_swap_is_detected(seed in any::<u32>(), pos in 0usize..8) {
            let mut s = seed;
            let n = AccountNumber::random(|| { s = s.wrapping_mul(1_103_515_245).wrapping_add(12345); s });
            let mut d: Vec<u8> = n.digits().bytes().collect();
            prop_assume!(d[pos] != d[pos + 1]);
            d.swap(pos, pos + 1);
            prop_assert!(AccountNumber::parse(std::str::from_utf8(&d).unwrap()).is_err());
        }
    }
}
