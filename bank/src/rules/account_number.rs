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

    /// The bank's own account number `n` (cash and merchant accounts: bases below 10000000).
    pub fn internal(n: u32) -> Self {
        (n..).find_map(|k| Self::from_base(digits8(k))).expect("some base nearby is issuable")
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
