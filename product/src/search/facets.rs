//! Facets of a search: how many matches each category and each price band would give. Pure: the
//! backends count (tantivy's aggregations, Elasticsearch's), this module fixes the bands, the order
//! and the shape, so both answer alike.
//!
//! Counts are disjunctive, as shops show them: the category counts ignore the chosen category (so
//! the other categories still show what they would give), the price-band counts ignore the chosen
//! price range; every other filter applies.

use serde::Serialize;
use utoipa::ToSchema;

/// Price bands, in ten-thousandths: `[from, to)`; the last is open.
pub const PRICE_BANDS: [(u64, Option<u64>); 6] =
    [(0, Some(100_000)), (100_000, Some(250_000)), (250_000, Some(500_000)), (500_000, Some(1_000_000)), (1_000_000, Some(2_500_000)), (2_500_000, None)];

/// At most this many categories are listed (the largest first).
pub const MAX_CATEGORIES: usize = 20;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Facets {
    /// Matches per category (lower-cased, the way `category=` takes it), most first, then by name.
    pub categories: Vec<CategoryCount>,
    /// Matches per price band, every band in price order (zero counts included).
    pub price_bands: Vec<PriceBandCount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CategoryCount {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PriceBandCount {
    /// `min_price` for this band.
    #[schema(example = "10.00")]
    pub min: String,
    /// The band's exclusive upper bound (`max_price` would include it); absent for the last band.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "25.00")]
    pub below: Option<String>,
    pub count: u64,
}

fn units_to_price(units: u64) -> String {
    format!("{}.{:02}", units / 10_000, (units % 10_000) / 100)
}

/// The category facet from `(category, count)` pairs in any order (zero counts dropped).
pub fn categories(counts: impl IntoIterator<Item = (String, u64)>) -> Vec<CategoryCount> {
    let mut list: Vec<CategoryCount> = counts.into_iter().filter(|(_, n)| *n > 0).map(|(value, count)| CategoryCount { value, count }).collect();
    list.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
    list.truncate(MAX_CATEGORIES);
    list
}

/// The price-band facet from one count per band of [`PRICE_BANDS`], in order.
pub fn price_bands(counts: [u64; PRICE_BANDS.len()]) -> Vec<PriceBandCount> {
    PRICE_BANDS
        .iter()
        .zip(counts)
        .map(|((from, to), count)| PriceBandCount { min: units_to_price(*from), below: to.map(units_to_price), count })
        .collect()
}

/// The band a price (in ten-thousandths) falls in.
pub fn band_of(units: u64) -> usize {
    PRICE_BANDS.iter().position(|(from, to)| units >= *from && to.is_none_or(|t| units < t)).unwrap_or(PRICE_BANDS.len() - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_are_ordered_by_count_then_name_and_capped() {
        let c = categories([("office".to_string(), 3), ("garden".to_string(), 5), ("bath".to_string(), 3), ("none".to_string(), 0)]);
        let names: Vec<&str> = c.iter().map(|c| c.value.as_str()).collect();
        assert_eq!(names, ["garden", "bath", "office"]);
        assert_eq!(categories((0..30).map(|i| (format!("c{i:02}"), 1))).len(), MAX_CATEGORIES);
    }

    #[test]
    fn bands_cover_every_price_once_with_readable_bounds() {
        assert_eq!(band_of(0), 0);
        assert_eq!(band_of(99_999), 0);
        assert_eq!(band_of(100_000), 1, "10.00 starts the second band");
        assert_eq!(band_of(2_500_000), 5);
        assert_eq!(band_of(u64::MAX), 5);
        let bands = price_bands([1, 2, 3, 4, 5, 6]);
        assert_eq!((bands[0].min.as_str(), bands[0].below.as_deref()), ("0.00", Some("10.00")));
        assert_eq!((bands[5].min.as_str(), bands[5].below.as_deref()), ("250.00", None));
        assert_eq!(bands.iter().map(|b| b.count).sum::<u64>(), 21);
    }
}
