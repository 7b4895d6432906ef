//! The default search backend: a tantivy index embedded in the service.
//!
//! One document per product id (upsert = delete term + add). A deleted product stays as a tombstone
//! document (`deleted = 1`) that keeps the version of the delete, so a late, older event for it
//! cannot bring it back. Searches always exclude tombstones.
//!
//! The reader reloads explicitly after each commit (the default reload policy lags by ~500 ms).

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
use tantivy::{
    Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term,
    collector::{Count, TopDocs},
    directory::MmapDirectory,
    doc,
    query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery},
    schema::{FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TEXT, Value},
};

use super::{
    Applied, Change, ProductDoc, SearchBackend, SearchPage, SearchQuery, Sort,
    query::price_units,
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
        category_key: b.add_text_field("category_key", STRING),
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
    index: Index,
    reader: IndexReader,
    writer: Arc<Mutex<IndexWriter>>,
    f: Fields,
}

impl TantivyBackend {
    /// Opens (or creates) the index in `dir`; the directory name `memory` keeps it in RAM.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let (schema, f) = schema();
        let index = if dir.as_os_str() == "memory" {
            Index::create_in_ram(schema)
        } else {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let mmap = MmapDirectory::open(dir).with_context(|| format!("opening {}", dir.display()))?;
            Index::open_or_create(mmap, schema).context("opening the tantivy index (delete it to rebuild with `reindex`)")?
        };
        let writer = index.writer_with_num_threads(1, 64_000_000).context("tantivy writer (is another process using the index?)")?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        Ok(Self { index, reader, writer: Arc::new(Mutex::new(writer)), f })
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
        if let Some(text) = &q.text {
            let mut parser = QueryParser::for_index(&self.index, vec![f.name, f.description]);
            parser.set_field_boost(f.name, 2.0);
            parser.set_conjunction_by_default();
            // Lenient: a stray quote or colon in user input narrows the query instead of failing it.
            let (parsed, _errors) = parser.parse_query_lenient(text);
            clauses.push((Occur::Must, parsed));
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
        if clauses.len() == 1 && q.text.is_none() {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    fn search_blocking(&self, q: SearchQuery) -> anyhow::Result<SearchPage> {
        let searcher = self.reader.searcher();
        let query = self.build_query(&q);
        let total = searcher.search(&query, &Count)? as u64;
        let top = TopDocs::with_limit(q.per_page as usize).and_offset(q.offset());
        let addrs: Vec<_> = match (q.sort, q.text.is_some()) {
            (Sort::Relevance, true) => searcher.search(&query, &top.order_by_score())?.into_iter().map(|(_, a)| a).collect(),
            (Sort::Relevance, false) => {
                searcher.search(&query, &top.order_by_u64_field("id", Order::Asc))?.into_iter().map(|(_, a)| a).collect()
            }
            (Sort::PriceAsc, _) => {
                searcher.search(&query, &top.order_by_u64_field("price_units", Order::Asc))?.into_iter().map(|(_, a)| a).collect()
            }
            (Sort::PriceDesc, _) => {
                searcher.search(&query, &top.order_by_u64_field("price_units", Order::Desc))?.into_iter().map(|(_, a)| a).collect()
            }
            (Sort::Newest, _) => searcher
                .search(&query, &top.order_by_fast_field::<i64>("created_at", Order::Desc))?
                .into_iter()
                .map(|(_, a)| a)
                .collect(),
        };
        let mut items = Vec::with_capacity(addrs.len());
        for a in addrs {
            let doc: TantivyDocument = searcher.doc(a)?;
            items.push(self.product_doc(&doc));
        }
        Ok(SearchPage { total, page: q.page, per_page: q.per_page, items })
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
}
