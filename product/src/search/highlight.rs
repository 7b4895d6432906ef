//! Highlighted matches: which words of a product's name and description a text query matched,
//! exactly or within the typo tolerance. Pure, and the same for both backends (computed from the
//! returned documents, not by the engine).
//!
//! A highlight is the field cut into segments, each marked as a match or not, so a client renders
//! it with text nodes (`<mark>` around the matches) and never has to trust markup from the server.

use serde::Serialize;
use utoipa::ToSchema;

use super::query::{edits_allowed, terms};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Segment {
    pub text: String,
    /// True on a word the query matched.
    #[serde(rename = "match", skip_serializing_if = "std::ops::Not::not")]
    pub matched: bool,
}

/// The highlights of one result: the fields with at least one match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Highlights {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Vec<Segment>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Vec<Segment>>,
}

impl Highlights {
    /// The highlights of `name` and `description` for the text query `q`.
    pub fn of(q: &str, name: &str, description: &str) -> Self {
        let query = terms(q);
        Self { name: segments(name, &query), description: segments(description, &query) }
    }
}

/// Optimal-string-alignment distance ≤ 1 (one substitution, insertion, deletion or swap of
/// neighbours): what "a one-letter slip" means here, as in tantivy's and Elasticsearch's fuzzy
/// matching with transpositions.
fn within_one_edit(a: &[char], b: &[char]) -> bool {
    let (la, lb) = (a.len(), b.len());
    if la.abs_diff(lb) > 1 {
        return false;
    }
    let first = a.iter().zip(b).position(|(x, y)| x != y);
    let Some(i) = first else { return true }; // one is a prefix of the other, lengths ≤ 1 apart
    match la.cmp(&lb) {
        std::cmp::Ordering::Equal => a[i + 1..] == b[i + 1..] || (i + 1 < la && a[i] == b[i + 1] && a[i + 1] == b[i] && a[i + 2..] == b[i + 2..]),
        std::cmp::Ordering::Less => a[i..] == b[i + 1..],
        std::cmp::Ordering::Greater => a[i + 1..] == b[i..],
    }
}

/// Whether a word of the text matches a query term: equal, or within the edits the term allows.
fn matches(word: &str, term: &str) -> bool {
    word == term || (edits_allowed(term) > 0 && within_one_edit(&word.chars().collect::<Vec<_>>(), &term.chars().collect::<Vec<_>>()))
}

/// `text` cut into matched and unmatched segments (`None` when nothing matched).
fn segments(text: &str, query: &[String]) -> Option<Vec<Segment>> {
    let mut out: Vec<Segment> = Vec::new();
    let mut any = false;
    let mut push = |piece: &str, matched: bool| match out.last_mut() {
        Some(last) if last.matched == matched && !matched => last.text.push_str(piece),
        _ => out.push(Segment { text: piece.to_string(), matched }),
    };
    let mut rest = text;
    while !rest.is_empty() {
        // A word (letters and digits, as the tokenizer sees them), or the run of other characters.
        let is_word = rest.chars().next().is_some_and(char::is_alphanumeric);
        let end = rest.char_indices().find(|(_, c)| c.is_alphanumeric() != is_word).map_or(rest.len(), |(i, _)| i);
        let (piece, tail) = rest.split_at(end);
        let hit = is_word && query.iter().any(|t| matches(&piece.to_lowercase(), t));
        any |= hit;
        push(piece, hit);
        rest = tail;
    }
    any.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked(h: &Option<Vec<Segment>>) -> Vec<String> {
        h.iter().flatten().filter(|s| s.matched).map(|s| s.text.clone()).collect()
    }

    #[test]
    fn exact_and_one_slip_matches_are_marked_and_the_text_is_kept_whole() {
        let h = Highlights::of("crimsom LANTERN oak", "Crimson lantern, oak-framed", "An oaken lantern");
        assert_eq!(marked(&h.name), ["Crimson", "lantern", "oak"]);
        let joined: String = h.name.as_ref().unwrap().iter().map(|s| s.text.as_str()).collect();
        assert_eq!(joined, "Crimson lantern, oak-framed", "segments rebuild the field exactly");
        assert_eq!(marked(&h.description), ["lantern"], "`oak` is too short for a slip: `oaken` does not match");
    }

    #[test]
    fn a_field_without_a_match_has_no_highlight() {
        let h = Highlights::of("zither", "Brass lantern", "zithers and drums");
        assert_eq!(h.name, None);
        assert_eq!(marked(&h.description), ["zithers"], "one letter added");
    }

    #[test]
    fn one_edit_means_one() {
        let ok = |a: &str, b: &str| within_one_edit(&a.chars().collect::<Vec<_>>(), &b.chars().collect::<Vec<_>>());
        assert!(ok("lantern", "lantern"));
        assert!(ok("lantern", "lantren"), "neighbours swapped");
        assert!(ok("lantern", "lanern"), "a letter dropped");
        assert!(ok("lantern", "lanterns"), "a letter added");
        assert!(ok("lantern", "lentern"), "a letter changed");
        assert!(!ok("lantern", "lentren"), "two edits");
        assert!(!ok("lantern", "ltnaern"));
        assert!(!ok("abc", "abcde"));
    }
}
