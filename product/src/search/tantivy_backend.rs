//! The default search backend: a tantivy index embedded in the service.
//!
//! One document per product id (upsert = delete term + add). A deleted product stays as a tombstone
//! document (`deleted = 1`) that keeps the version of the delete, so a late, older event for it
//! cannot bring it back. Searches always exclude tombstones.
//!
//! The reader reloads explicitly after each commit (the default reload policy lags by ~500 ms).
//!
//! Text queries match word by word (every word must match, in the name or the description, the
//! name counting double); words of five letters or more also match one edit away. Facets come from
//! tantivy's aggregations over fast fields, in the same pass as the page where the query allows. An index on disk with an older layout (fields, options)
//! is replaced by an empty one and [`TantivyBackend::needs_rebuild`] says so: the service then
//! rebuilds it from the CDC topic.

use std::{
    collections::HashMap,
    ops::Bound,
    path::Path,
    str::FromStr,
    sync::{Arc, Mutex},
};

use anyhow::Context;
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde_json::json;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument, Term,
    aggregation::{AggregationCollector, agg_req::Aggregations, agg_result::AggregationResults},
    collector::{Collector, Count, TopDocs},
    directory::MmapDirectory,
    doc,
    query::{AllQuery, BooleanQuery, BoostQuery, FuzzyTermQuery, Occur, Query, RangeQuery, TermQuery},
    schema::{FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, Value},
};

use super::{
    Applied, Change, ProductDoc, SearchBackend, SearchPage, SearchQuery, Sort, facets,
    query::{edits_allowed, price_units, terms},
};

#[derive(Clone, Copy)]
struct Fields {
    id: Field,
    name: Field,
    description: Field,
    category: Field,
    category_key: Field,
    price: Field,
    price_units: Field,
    stock: Field,
    created_at: Field,
    created_at_text: Field,
    version: Field,
    deleted: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_u64_field("id", INDEXED | STORED | FAST),
        name: b.add_text_field("name", TEXT | STORED),
        description: b.add_text_field("description", TEXT | STORED),
        category: b.add_text_field("category", STORED),
        // Fast too: the category facet counts over it.
        category_key: b.add_text_field("category_key", STRING | FAST),
        // The exact decimal as text for display; its ten-thousandths as u64 for filters and sorts.
        price: b.add_text_field("price", STORED),
        price_units: b.add_u64_field("price_units", INDEXED | FAST),
        stock: b.add_i64_field("stock", INDEXED | STORED | FAST),
        created_at: b.add_i64_field("created_at", STORED | FAST),
        created_at_text: b.add_text_field("created_at_text", STORED),
        version: b.add_u64_field("version", STORED | FAST),
        deleted: b.add_u64_field("deleted", INDEXED | STORED | FAST),
    };
    (b.build(), fields)
}

pub struct TantivyBackend {
    reader: IndexReader,
    writer: Arc<Mutex<IndexWriter>>,
    f: Fields,
    /// The directory held an index of an older layout; it was replaced by an empty one.
    rebuilt: bool,
}

impl TantivyBackend {
    /// Opens (or creates) the index in `dir`; the directory name `memory` keeps it in RAM.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let (schema, f) = schema();
        let mut rebuilt = false;
        let index = if dir.as_os_str() == "memory" {
            Index::create_in_ram(schema)
        } else {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let mmap = MmapDirectory::open(dir).with_context(|| format!("opening {}", dir.display()))?;
            match Index::exists(&mmap)? {
                true if Index::open(mmap.clone())?.schema() != schema => {
                    // An older layout: the index is a projection of the CDC topic, so it is
                    // replaced and rebuilt rather than migrated.
                    tracing::warn!(dir = %dir.display(), "the search index has an older layout: replacing it (rebuilt from the CDC topic)");
                    drop(mmap);
                    std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
                    std::fs::create_dir_all(dir)?;
                    rebuilt = true;
                    Index::create_in_dir(dir, schema).context("creating the tantivy index")?
                }
                _ => Index::open_or_create(mmap, schema).context("opening the tantivy index (delete it to rebuild with `reindex`)")?,
            }
        };
        let writer = index.writer_with_num_threads(1, 64_000_000).context("tantivy writer (is another process using the index?)")?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Self { reader, writer: Arc::new(Mutex::new(writer)), f, rebuilt })
    }

    /// The stored version and tombstone flag of `id`, if the committed index has it.
    fn current(&self, id: u64) -> anyhow::Result<Option<(u64, bool)>> {
        let searcher = self.reader.searcher();
        let q = TermQuery::new(Term::from_field_u64(self.f.id, id), IndexRecordOption::Basic);
        let hits = searcher.search(&q, &TopDocs::with_limit(1).order_by_score())?;
        let Some((_, addr)) = hits.first() else { return Ok(None) };
        let doc: TantivyDocument = searcher.doc(*addr)?;
        let version = doc.get_first(self.f.version).and_then(|v| v.as_u64()).unwrap_or(0);
        let deleted = doc.get_first(self.f.deleted).and_then(|v| v.as_u64()) == Some(1);
        Ok(Some((version, deleted)))
    }

    fn apply_blocking(&self, changes: Vec<Change>) -> anyhow::Result<Applied> {
        let mut applied = Applied::default();
        // Versions decided within this batch, not yet visible to the reader.
        let mut pending: HashMap<u64, (u64, bool)> = HashMap::new();
        let mut writer = self.writer.lock().expect("index writer lock");
        for change in changes {
            let id = change.id();
            let current = match pending.get(&id) {
                Some(v) => Some(*v),
                None => self.current(id)?,
            };
            let id_term = Term::from_field_u64(self.f.id, id);
            match change {
                Change::Upsert { doc, version } => {
                    if current.is_some_and(|(v, _)| version < v) {
                        applied.stale += 1;
                        continue;
                    }
                    writer.delete_term(id_term);
                    writer.add_document(self.to_document(&doc, version))?;
                    pending.insert(id, (version, false));
                    applied.upserted += 1;
                }
                Change::Delete { version, .. } => {
                    let version = match (version, current) {
                        (Some(v), Some((cur, _))) if v < cur => {
                            applied.stale += 1;
                            continue;
                        }
                        (Some(v), _) => v,
                        // A tombstone: the delete event before it already did the work, or was compacted away.
                        (None, Some((_, true))) => continue,
                        (None, Some((cur, false))) => cur,
                        (None, None) => 0,
                    };
                    writer.delete_term(id_term);
                    writer.add_document(doc!(self.f.id => id, self.f.version => version, self.f.deleted => 1u64))?;
                    pending.insert(id, (version, true));
                    applied.deleted += 1;
                }
            }
        }
        if !pending.is_empty() {
            writer.commit()?;
            self.reader.reload()?;
        }
        Ok(applied)
    }

    fn to_document(&self, d: &ProductDoc, version: u64) -> TantivyDocument {
        let f = self.f;
        doc!(
            f.id => d.id,
            f.name => d.name.clone(),
            f.description => d.description.clone(),
            f.category => d.category.clone(),
            f.category_key => d.category.to_lowercase(),
            f.price => d.price.to_string(),
            f.price_units => price_units(d.price),
            f.stock => d.stock,
            f.created_at => d.created_at_micros,
            f.created_at_text => d.created_at.clone(),
            f.version => version,
            f.deleted => 0u64,
        )
    }

    fn product_doc(&self, doc: &TantivyDocument) -> ProductDoc {
        let f = self.f;
        let text = |field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_string();
        ProductDoc {
            id: doc.get_first(f.id).and_then(|v| v.as_u64()).unwrap_or(0),
            name: text(f.name),
            description: text(f.description),
            category: text(f.category),
            price: Decimal::from_str(&text(f.price)).unwrap_or_default(),
            stock: doc.get_first(f.stock).and_then(|v| v.as_i64()).unwrap_or(0),
            created_at_micros: doc.get_first(f.created_at).and_then(|v| v.as_i64()).unwrap_or(0),
            created_at: text(f.created_at_text),
        }
    }

    fn build_query(&self, q: &SearchQuery) -> Box<dyn Query> {
        let f = self.f;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(
            Occur::Must,
            Box::new(TermQuery::new(Term::from_field_u64(f.deleted, 0), IndexRecordOption::Basic)),
        )];
        // Every word must match, in the name (counting double) or the description; long words also
        // one edit away (a slip scores below the exact word).
        let words = q.text.as_deref().map(terms).unwrap_or_default();
        for word in &words {
            let mut either: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            for (field, boost) in [(f.name, 2.0), (f.description, 1.0)] {
                let term = Term::from_field_text(field, word);
                either.push((Occur::Should, Box::new(BoostQuery::new(Box::new(TermQuery::new(term.clone(), IndexRecordOption::WithFreqs)), boost))));
                let edits = edits_allowed(word);
                if edits > 0 {
                    either.push((Occur::Should, Box::new(BoostQuery::new(Box::new(FuzzyTermQuery::new(term, edits, true)), boost * 0.5))));
                }
            }
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(either))));
        }
        if let Some(c) = &q.category {
            let term = Term::from_field_text(f.category_key, &c.to_lowercase());
            clauses.push((Occur::Must, Box::new(TermQuery::new(term, IndexRecordOption::Basic))));
        }
        if q.min_price.is_some() || q.max_price.is_some() {
            let bound = |p: Option<Decimal>| match p {
                Some(p) => Bound::Included(Term::from_field_u64(f.price_units, price_units(p))),
                None => Bound::Unbounded,
            };
            clauses.push((Occur::Must, Box::new(RangeQuery::new(bound(q.min_price), bound(q.max_price)))));
        }
        match q.in_stock {
            Some(true) => clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(Bound::Included(Term::from_field_i64(f.stock, 1)), Bound::Unbounded)),
            )),
            Some(false) => clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(Bound::Unbounded, Bound::Included(Term::from_field_i64(f.stock, 0)))),
            )),
            None => {}
        }
        if clauses.len() == 1 {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// The addresses of ranked hits, whatever they were ranked by.
    fn addresses<K>(hits: Vec<(K, DocAddress)>) -> Vec<DocAddress> {
        hits.into_iter().map(|(_, a)| a).collect()
    }

    /// The category aggregation (over `category_key`) and the price-band one (over `price_units`).
    fn facet_aggs(categories: bool, bands: bool) -> Option<Aggregations> {
        let mut aggs = serde_json::Map::new();
        if categories {
            aggs.insert("c".into(), json!({"terms": {"field": "category_key", "size": 1000}}));
        }
        if bands {
            let ranges: Vec<serde_json::Value> = facets::PRICE_BANDS
                .iter()
                .map(|(from, to)| match to {
                    Some(to) => json!({"from": *from as f64, "to": *to as f64}),
                    None => json!({"from": *from as f64}),
                })
                .collect();
            aggs.insert("b".into(), json!({"range": {"field": "price_units", "ranges": ranges}}));
        }
        (!aggs.is_empty()).then(|| serde_json::from_value(serde_json::Value::Object(aggs)).expect("a valid aggregation request"))
    }

    /// Counts the matches of `query`, collects `top`, and runs `aggs` — all in one pass.
    fn one_pass<C: Collector>(searcher: &Searcher, query: &dyn Query, top: C, aggs: Option<&Aggregations>) -> tantivy::Result<(usize, C::Fruit, serde_json::Value)> {
        match aggs {
            Some(aggs) => {
                let (n, docs, results): (usize, C::Fruit, AggregationResults) =
                    searcher.search(query, &(Count, top, AggregationCollector::from_aggs(aggs.clone(), Default::default())))?;
                Ok((n, docs, serde_json::to_value(results).unwrap_or_default()))
            }
            None => {
                let (n, docs) = searcher.search(query, &(Count, top))?;
                Ok((n, docs, serde_json::Value::Null))
            }
        }
    }

    fn search_blocking(&self, q: SearchQuery) -> anyhow::Result<SearchPage> {
        let searcher = self.reader.searcher();
        let query = self.build_query(&q);
        // A facet whose own filter the query does not use counts over the query itself: it rides
        // along in the main pass. The others take one pass each over the query without that filter.
        let (categories_here, bands_here) = (q.facets && q.category.is_none(), q.facets && q.min_price.is_none() && q.max_price.is_none());
        let main_aggs = Self::facet_aggs(categories_here, bands_here);
        let main_aggs = main_aggs.as_ref();
        let top = TopDocs::with_limit(q.per_page as usize).and_offset(q.offset());
        let (total, addrs, mut aggs) = match (q.sort, q.text.is_some()) {
            (Sort::Relevance, true) => {
                let (n, hits, aggs) = Self::one_pass(&searcher, &*query, top.order_by_score(), main_aggs)?;
                (n, Self::addresses(hits), aggs)
            }
            (Sort::Relevance, false) => {
                let (n, hits, aggs) = Self::one_pass(&searcher, &*query, top.order_by_u64_field("id", Order::Asc), main_aggs)?;
                (n, Self::addresses(hits), aggs)
            }
            (Sort::PriceAsc, _) => {
                let (n, hits, aggs) = Self::one_pass(&searcher, &*query, top.order_by_u64_field("price_units", Order::Asc), main_aggs)?;
                (n, Self::addresses(hits), aggs)
            }
            (Sort::PriceDesc, _) => {
                let (n, hits, aggs) = Self::one_pass(&searcher, &*query, top.order_by_u64_field("price_units", Order::Desc), main_aggs)?;
                (n, Self::addresses(hits), aggs)
            }
            (Sort::Newest, _) => {
                let (n, hits, aggs) = Self::one_pass(&searcher, &*query, top.order_by_fast_field::<i64>("created_at", Order::Desc), main_aggs)?;
                (n, Self::addresses(hits), aggs)
            }
        };
        if aggs.is_null() {
            aggs = json!({});
        }
        for (needed, without, name) in [(q.facets && !categories_here, q.without_category(), "c"), (q.facets && !bands_here, q.without_price(), "b")] {
            if needed {
                let request = Self::facet_aggs(name == "c", name == "b").expect("one aggregation");
                let results: AggregationResults =
                    searcher.search(&self.build_query(&without), &AggregationCollector::from_aggs(request, Default::default()))?;
                aggs[name] = serde_json::to_value(results)?[name].clone();
            }
        }
        let buckets = |name: &str| aggs[name]["buckets"].as_array().cloned().unwrap_or_default();
        let categories = buckets("c").iter().filter_map(|b| Some((b["key"].as_str()?.to_string(), b["doc_count"].as_u64()?))).collect::<Vec<_>>();
        let mut bands = [0u64; facets::PRICE_BANDS.len()];
        for (i, b) in buckets("b").iter().enumerate().take(bands.len()) {
            bands[i] = b["doc_count"].as_u64().unwrap_or(0);
        }
        let facets = q.facets.then(|| facets::Facets { categories: facets::categories(categories), price_bands: facets::price_bands(bands) });
        let mut items = Vec::with_capacity(addrs.len());
        for a in addrs {
            let doc: TantivyDocument = searcher.doc(a)?;
            items.push(self.product_doc(&doc));
        }
        Ok(SearchPage { total: total as u64, page: q.page, per_page: q.per_page, items, facets })
    }
}

impl SearchBackend for Arc<TantivyBackend> {
    fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, anyhow::Result<Applied>> {
        let me = self.clone();
        Box::pin(async move { tokio::task::spawn_blocking(move || me.apply_blocking(changes)).await? })
    }

    fn search(&self, query: SearchQuery) -> BoxFuture<'_, anyhow::Result<SearchPage>> {
        let me = self.clone();
        Box::pin(async move { tokio::task::spawn_blocking(move || me.search_blocking(query)).await? })
    }

    fn clear(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        let me = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let mut w = me.writer.lock().expect("index writer lock");
                w.delete_all_documents()?;
                w.commit()?;
                me.reader.reload()?;
                Ok(())
            })
            .await?
        })
    }

    fn name(&self) -> &'static str {
        "tantivy"
    }

    fn needs_rebuild(&self) -> bool {
        self.rebuilt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_of_an_older_layout_is_replaced_and_flagged_for_a_rebuild() {
        let dir = std::env::temp_dir().join(format!("sagaway-index-{}", uuid::Uuid::new_v4()));
        {
            // The layout before facets: category_key not a fast field.
            let mut b = Schema::builder();
            b.add_u64_field("id", INDEXED | STORED | FAST);
            b.add_text_field("category_key", STRING);
            std::fs::create_dir_all(&dir).unwrap();
            let old = Index::create_in_dir(&dir, b.build()).unwrap();
            let mut w: IndexWriter = old.writer_with_num_threads(1, 15_000_000).unwrap();
            w.commit().unwrap();
        }
        let reopened = TantivyBackend::open(&dir).unwrap();
        assert!(reopened.rebuilt, "the old layout was replaced");
        assert_eq!(reopened.reader.searcher().schema(), &schema().0);
        drop(reopened);
        assert!(!TantivyBackend::open(&dir).unwrap().rebuilt, "the current layout is kept");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
