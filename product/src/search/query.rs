//! `/findAll` parameters: parsed and validated once, whatever the backend.

use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Best text match first (by id when there is no text query).
    Relevance,
    PriceAsc,
    PriceDesc,
    /// Most recently created first.
    Newest,
}

/// Raw query-string parameters of `GET /findAll` (everything as text, validated by [`SearchQuery::parse`]).
/// Unknown parameters are refused (422 naming them): a misspelt filter must not silently widen a search.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindAllParams {
    /// Full-text query over name and description (at most 200 characters).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Exact category (case-insensitive).
    pub category: Option<String>,
    /// At least this price (a non-negative decimal, at most 4 places).
    #[param(pattern = r"^([0-9]{1,15}(\.[0-9]{1,4})?)?$")]
    pub min_price: Option<String>,
    /// At most this price (above `min_price`: nothing matches).
    #[param(pattern = r"^([0-9]{1,15}(\.[0-9]{1,4})?)?$")]
    pub max_price: Option<String>,
    /// `true`: only products with stock; `false`: only sold-out ones.
    #[param(pattern = "^(|true|false|1|0)$")]
    pub in_stock: Option<String>,
    /// relevance (default), price_asc, price_desc, newest.
    #[param(pattern = "^(|relevance|price_asc|price_desc|newest)$")]
    pub sort: Option<String>,
    /// 1-based page, 1–100 (default 1).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub page: Option<String>,
    /// Items per page, 1–100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub per_page: Option<String>,
    /// `true`: also count the matches per category and per price band (`facets` in the answer).
    /// Off by default: counting visits every match, so a client that shows no facets does not pay for it.
    #[param(pattern = "^(|true|false|1|0)$")]
    pub facets: Option<String>,
}

/// A validated search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub text: Option<String>,
    pub category: Option<String>,
    pub min_price: Option<Decimal>,
    pub max_price: Option<Decimal>,
    pub in_stock: Option<bool>,
    pub sort: Sort,
    pub page: u32,
    pub per_page: u32,
    /// Count facets too.
    pub facets: bool,
}

/// Deep paging is refused beyond this many results (page × per_page): pages past 100 are refused.
pub const MAX_WINDOW: u64 = 10_000;
const MAX_PAGE: u32 = (MAX_WINDOW / 100) as u32;

impl SearchQuery {
    pub fn parse(p: &FindAllParams) -> ApiResult<Self> {
        let non_empty = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_string);
        let price = |field: &'static str, v: &Option<String>| -> ApiResult<Option<Decimal>> {
            match non_empty(v) {
                None => Ok(None),
                Some(t) => {
                    let d = sagaway_contract::money::parse(&serde_json::Value::String(t)).map_err(|m| ApiError::invalid(field, m))?;
                    if d.is_sign_negative() {
                        return Err(ApiError::invalid(field, "must not be negative"));
                    }
                    Ok(Some(d))
                }
            }
        };
        let number = |field: &'static str, v: &Option<String>, default: u32, max: u32| -> ApiResult<u32> {
            match non_empty(v) {
                None => Ok(default),
                Some(t) => match t.parse::<u32>() {
                    Ok(n) if n >= 1 && n <= max => Ok(n),
                    _ => Err(ApiError::invalid(field, format!("must be an integer between 1 and {max}"))),
                },
            }
        };
        let sort = match non_empty(&p.sort).as_deref() {
            None | Some("relevance") => Sort::Relevance,
            Some("price_asc") => Sort::PriceAsc,
            Some("price_desc") => Sort::PriceDesc,
            Some("newest") => Sort::Newest,
            Some(other) => {
                return Err(ApiError::invalid("sort", format!("{other:?} is not one of relevance, price_asc, price_desc, newest")));
            }
        };
        let flag = |field: &'static str, v: &Option<String>| -> ApiResult<Option<bool>> {
            match non_empty(v).as_deref() {
                None => Ok(None),
                Some("true") | Some("1") => Ok(Some(true)),
                Some("false") | Some("0") => Ok(Some(false)),
                Some(other) => Err(ApiError::invalid(field, format!("{other:?} is not true or false"))),
            }
        };
        let in_stock = flag("in_stock", &p.in_stock)?;
        let facets = flag("facets", &p.facets)?.unwrap_or(false);
        let min_price = price("min_price", &p.min_price)?;
        let max_price = price("max_price", &p.max_price)?;
        // (`min_price` above `max_price` is an empty range: it matches nothing, like any filter.)
        let text = non_empty(&p.q);
        if text.as_ref().is_some_and(|t| t.chars().count() > 200) {
            return Err(ApiError::invalid("q", "must be at most 200 characters"));
        }
        // Each bounded on its own, so that their product stays within MAX_WINDOW whatever the pair.
        let page = number("page", &p.page, 1, MAX_PAGE)?;
        let per_page = number("per_page", &p.per_page, 20, 100)?;
        Ok(Self { text, category: non_empty(&p.category), min_price, max_price, in_stock, sort, page, per_page, facets })
    }

    pub fn offset(&self) -> usize {
        ((self.page - 1) * self.per_page) as usize
    }
}

/// The words of a text query as both backends index them: runs of letters and digits, lower-cased
/// (tantivy's default tokenizer; the Elasticsearch backend queries word by word the same way).
pub fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_lowercase).collect()
}

/// Words this long or longer also match one edit away (a letter changed, added, dropped, or two
/// neighbours swapped); shorter ones only exactly (one edit in "oak" would match half the catalogue).
pub const FUZZY_MIN_CHARS: usize = 5;

/// The edits a query word tolerates: 1 for words of [`FUZZY_MIN_CHARS`] or more, else 0.
pub fn edits_allowed(term: &str) -> u8 {
    u8::from(term.chars().count() >= FUZZY_MIN_CHARS)
}

impl SearchQuery {
    /// The query with the category filter dropped: what the category facet counts over (a shopper
    /// sees how many each other category would give, not only the chosen one).
    pub fn without_category(&self) -> Self {
        Self { category: None, ..self.clone() }
    }

    /// The query with the price range dropped: what the price-band facet counts over.
    pub fn without_price(&self) -> Self {
        Self { min_price: None, max_price: None, ..self.clone() }
    }
}

/// A price in ten-thousandths (exact for DECIMAL(19,4)); what the index sorts and filters on.
pub fn price_units(price: Decimal) -> u64 {
    let scaled = (price * Decimal::from(10_000)).trunc();
    let units = scaled.mantissa() / 10i128.pow(scaled.scale());
    // Query bounds beyond any storable price saturate (a huge max_price means "no upper bound"),
    // never wrap to 0; negative prices do not exist.
    u64::try_from(units).unwrap_or(if units < 0 { 0 } else { u64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn terms_split_like_the_default_tokenizer_and_long_words_tolerate_one_edit() {
        assert_eq!(terms("Red  lamp-shade, 40W!"), vec!["red", "lamp", "shade", "40w"]);
        assert!(terms(" :: ").is_empty());
        assert_eq!(edits_allowed("oak"), 0);
        assert_eq!(edits_allowed("lamp"), 0);
        assert_eq!(edits_allowed("chair"), 1);
        assert_eq!(edits_allowed("café"), 0, "characters, not bytes");
    }

    #[test]
    fn price_units_are_exact() {
        assert_eq!(price_units(Decimal::from_str("19.9900").unwrap()), 199_900);
        assert_eq!(price_units(Decimal::from_str("999999999999999.9999").unwrap()), 9_999_999_999_999_999_999);
        assert_eq!(price_units(Decimal::from_str("0.0001").unwrap()), 1);
        assert_eq!(price_units(Decimal::from_str("99999999999999999999999").unwrap()), u64::MAX);
    }

    #[test]
    fn rejects_bad_parameters_naming_them() {
        let bad = |p: FindAllParams| match SearchQuery::parse(&p) {
            Err(ApiError::Invalid { field, .. }) => field,
            other => panic!("expected invalid, got {other:?}"),
        };
        assert_eq!(bad(FindAllParams { sort: Some("cheapest".into()), ..Default::default() }), "sort");
        assert_eq!(bad(FindAllParams { per_page: Some("0".into()), ..Default::default() }), "per_page");
        assert_eq!(bad(FindAllParams { per_page: Some("abc".into()), ..Default::default() }), "per_page");
        assert_eq!(bad(FindAllParams { min_price: Some("-1".into()), ..Default::default() }), "min_price");
        assert!(SearchQuery::parse(&FindAllParams { min_price: Some("5".into()), max_price: Some("2".into()), ..Default::default() }).is_ok(), "an empty range");
        assert_eq!(bad(FindAllParams { page: Some("101".into()), ..Default::default() }), "page");
        assert_eq!(bad(FindAllParams { in_stock: Some("maybe".into()), ..Default::default() }), "in_stock");
        assert_eq!(bad(FindAllParams { facets: Some("yes".into()), ..Default::default() }), "facets");
        assert_eq!(bad(FindAllParams { page: Some("1000".into()), per_page: Some("100".into()), ..Default::default() }), "page");
    }
}
