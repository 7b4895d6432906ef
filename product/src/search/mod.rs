//! Product search, fed by change data capture and never by SQL.
//!
//! Debezium turns every committed change of `product.products` into an event on
//! `shop.product.products`; [`crate::indexer`] turns events into [`Change`]s; a [`SearchBackend`]
//! applies them and answers `/findAll`. Two backends sit behind the trait: tantivy embedded in the
//! service (the default) and Elasticsearch.
//!
//! Ordering: every change carries a version taken from its binlog position, and a backend applies
//! a change only when its version is not older than what it holds for that product (deletes leave
//! a tombstone that keeps the version), so a replayed or stale event is a no-op.

pub mod cdc;
pub mod elastic;
pub mod facets;
pub mod highlight;
pub mod query;
pub mod tantivy_backend;

use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde::Serialize;
use utoipa::ToSchema;

pub use facets::Facets;
pub use highlight::Highlights;
pub use query::{SearchQuery, Sort};

/// A product as the index holds it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProductDoc {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub category: String,
    #[serde(serialize_with = "sagaway_contract::money::serialize")]
    #[schema(value_type = String, example = "19.99")]
    pub price: Decimal,
    pub stock: i64,
    /// Creation time, microseconds since the epoch (UTC).
    #[serde(skip)]
    pub created_at_micros: i64,
    pub created_at: String,
}

/// One change to apply, in topic order.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Upsert { doc: ProductDoc, version: u64 },
    /// `version` is `None` for a tombstone (which carries no source position).
    Delete { id: u64, version: Option<u64> },
}

impl Change {
    pub fn id(&self) -> u64 {
        match self {
            Change::Upsert { doc, .. } => doc.id,
            Change::Delete { id, .. } => *id,
        }
    }
}

/// What applying a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub upserted: u64,
    pub deleted: u64,
    /// Changes older than what the index held: skipped.
    pub stale: u64,
}

/// One page of results, the total number of matches, and the facets of the query when asked.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SearchPage {
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
    pub items: Vec<ProductDoc>,
    pub facets: Option<Facets>,
}

/// What `GET /findAll` answers: a [`SearchPage`] whose items carry their highlights.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FindAllAnswer {
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
    pub items: Vec<Found>,
    /// With `facets=true` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facets: Option<Facets>,
}

/// One product found, with the words the text query matched (absent without `q` or a match).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Found {
    #[serde(flatten)]
    pub product: ProductDoc,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub highlight: Option<Highlights>,
}

impl FindAllAnswer {
    /// `page` for the query text `q`: each item highlighted where the query matched it.
    pub fn new(page: SearchPage, q: Option<&str>) -> Self {
        let items = page
            .items
            .into_iter()
            .map(|product| {
                let highlight = q.map(|q| Highlights::of(q, &product.name, &product.description)).filter(|h| *h != Highlights::default());
                Found { product, highlight }
            })
            .collect();
        Self { total: page.total, page: page.page, per_page: page.per_page, items, facets: page.facets }
    }
}

/// A search index fed by [`Change`]s.
pub trait SearchBackend: Send + Sync + 'static {
    /// Applies changes in order, skipping any older than the stored version, and makes them visible.
    fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, anyhow::Result<Applied>>;
    fn search(&self, query: SearchQuery) -> BoxFuture<'_, anyhow::Result<SearchPage>>;
    /// Removes every document (the first step of a reindex).
    fn clear(&self) -> BoxFuture<'_, anyhow::Result<()>>;
    fn name(&self) -> &'static str;
    /// True when the index was created afresh for a newer layout than the one on disk (tantivy):
    /// the service rebuilds it from the CDC topic before indexing on.
    fn needs_rebuild(&self) -> bool {
        false
    }
}
