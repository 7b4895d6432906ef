//! Brazilian taxpayer documents: CPF (individuals, 11 digits) and CNPJ (companies, 14 digits), each
//! with two mod-11 check digits. Punctuation (`123.456.789-09`, `12.345.678/0001-95`) is accepted and
//! dropped; documents of one repeated digit are refused (they pass the arithmetic but are not issued).
//! Documents are never logged or answered in clear: [`mask`].

/// Digits of `text` with the usual punctuation (`.`, `-`, `/`, spaces) removed; `None` if anything else is in it.
fn digits(text: &str) -> Option<Vec<u32>> {
    text.chars().filter(|c| !matches!(c, '.' | '-' | '/' | ' ')).map(|c| c.to_digit(10)).collect()
}

fn mod11_digit(digits: &[u32], weights: &[u32]) -> u32 {
    let sum: u32 = digits.iter().zip(weights).map(|(d, w)| d * w).sum();
    let r = sum % 11;
    if r < 2 { 0 } else { 11 - r }
}

/// A valid CPF's 11 digits, or why not.
pub fn cpf(text: &str) -> Result<String, String> {
    let d = digits(text).ok_or("a CPF has only digits (punctuation . - allowed)")?;
    if d.len() != 11 {
        return Err(format!("a CPF has 11 digits, not {}", d.len()));
    }
    if d.iter().all(|x| *x == d[0]) {
        return Err("not a valid CPF".into());
    }
    let first = mod11_digit(&d[..9], &[10, 9, 8, 7, 6, 5, 4, 3, 2]);
    let second = mod11_digit(&d[..10], &[11, 10, 9, 8, 7, 6, 5, 4, 3, 2]);
    if d[9] != first || d[10] != second {
        return Err("CPF check digits do not match".into());
    }
    Ok(d.iter().map(|x| char::from_digit(*x, 10).expect("digit")).collect())
}

/// A valid CNPJ's 14 digits, or why not.
pub fn cnpj(text: &str) -> Result<String, String> {
    let d = digits(text).ok_or("a CNPJ has only digits (punctuation . - / allowed)")?;
    if d.len() != 14 {
        return Err(format!("a CNPJ has 14 digits, not {}", d.len()));
    }
    if d.iter().all(|x| *x == d[0]) {
        return Err("not a valid CNPJ".into());
    }
    let first = mod11_digit(&d[..12], &[5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]);
    let second = mod11_digit(&d[..13], &[6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]);
    if d[12] != first || d[13] != second {
        return Err("CNPJ check digits do not match".into());
    }
    Ok(d.iter().map(|x| char::from_digit(*x, 10).expect("digit")).collect())
}

/// Completes 9 CPF digits (or 12 CNPJ digits) with their check digits (tests and fixtures).
pub fn with_check_digits(base: &str) -> String {
    let mut d: Vec<u32> = base.chars().filter_map(|c| c.to_digit(10)).collect();
    match d.len() {
        9 => {
            d.push(mod11_digit(&d, &[10, 9, 8, 7, 6, 5, 4, 3, 2]));
            d.push(mod11_digit(&d, &[11, 10, 9, 8, 7, 6, 5, 4, 3, 2]));
        }
        12 => {
            d.push(mod11_digit(&d, &[5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]));
            d.push(mod11_digit(&d, &[6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]));
        }
        _ => {}
    }
    d.iter().map(|x| char::from_digit(*x, 10).expect("digit")).collect()
}

/// A document as it may be shown or logged: every digit but the last two hidden (`*********09`).
pub fn mask(document: &str) -> String {
    let n = document.chars().count();
    document.chars().enumerate().map(|(i, c)| if i + 2 < n { '*' } else { c }).collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn known_documents() {
        assert_eq!(cpf("529.982.247-25").unwrap(), "52998224725");
        assert_eq!(cpf("52998224725").unwrap(), "52998224725");
        assert!(cpf("529.982.247-24").is_err());
        assert!(cpf("111.111.111-11").is_err());
        assert!(cpf("5299822472").is_err());
        assert!(cpf("52998224725x").is_err());
        assert_eq!(cnpj("11.222.333/0001-81").unwrap(), "11222333000181");
        assert!(cnpj("11.222.333/0001-80").is_err());
        assert!(cnpj("00000000000000").is_err());
        assert_eq!(mask("52998224725"), "*********25");
    }

    proptest! {
        #[test]
        fn completed_cpfs_and_cnpjs_validate(base in "[0-9]{9}", base2 in "[0-9]{12}") {
            let c = with_check_digits(&base);
            prop_assume!(!c.chars().all(|x| x == c.chars().next().unwrap()));
            prop_assert_eq!(cpf(&c).unwrap(), c.clone());
            let j = with_check_digits(&base2);
            prop_assume!(!j.chars().all(|x| x == j.chars().next().unwrap()));
            prop_assert_eq!(cnpj(&j).unwrap(), j.clone());
        }

        #[test]
        fn a_wrong_check_digit_is_refused(base in "[0-9]{9}", delta in 1u32..10, which in 9usize..11) {
            let c = with_check_digits(&base);
            let mut d: Vec<u32> = c.chars().map(|x| x.to_digit(10).unwrap()).collect();
            d[which] = (d[which] + delta) % 10;
            let s: String = d.iter().map(|x| char::from_digit(*x, 10).unwrap()).collect();
            prop_assert!(cpf(&s).is_err());
        }

        #[test]
        fn masks_never_show_more_than_two_digits(doc in "[0-9]{11,14}") {
            let m = mask(&doc);
            prop_assert_eq!(m.chars().filter(|c| c.is_ascii_digit()).count(), 2);
            prop_assert!(m.ends_with(&doc[doc.len() - 2..]));
        }
    }
}
