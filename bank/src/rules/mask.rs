//! What a recipient check may show of a holder: the user id masked (`alice` → `al***e`).

/// The first two characters and the last of `user_id`, the rest `***` (`alice` → `al***e`);
/// ids of three characters or fewer keep only the first (`bob` → `b***`).
pub fn holder(user_id: &str) -> String {
    let chars: Vec<char> = user_id.chars().collect();
    if chars.len() <= 3 {
        return format!("{}***", chars.first().map(|c| c.to_string()).unwrap_or_default());
    }
    format!("{}{}***{}", chars[0], chars[1], chars[chars.len() - 1])
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::holder;

    #[test]
    fn examples() {
        assert_eq!(holder("alice"), "al***e");
        assert_eq!(holder("bob"), "b***");
        assert_eq!(holder(""), "***");
    }

    proptest! {
        #[test]
        fn at_most_three_characters_are_shown(id in "[a-z0-9._@-]{0,64}") {
            let m = holder(&id);
            prop_assert!(m.chars().filter(|c| *c != '*').count() <= 3);
            prop_assert!(m.contains("***"));
        }
    }
}
