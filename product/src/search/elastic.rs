//! The Elasticsearch backend (`PRODUCT_SEARCH_BACKEND=elasticsearch`), for deployments that run a
//! cluster instead of the embedded tantivy index. Same semantics as [`super::tantivy_backend`]:
//!
//! - one document per product, `_id` = product id, created with an explicit strict mapping;
//! - a delete leaves a tombstone document (`deleted: true`) that keeps the delete's version;
//! - ordering is checked twice: in the application (the stored versions are read with `_mget`
//!   before a batch is written) and by the cluster (`version_type=external_gte` with the binlog
//!   version), so two writers racing on one index still cannot regress a document. Documents are
//!   never deleted through the API: some emulators (noida-db) accept a stale external-version write
//!   after a real delete, and the tombstone avoids depending on that;
//! - the index is refreshed after each batch, so a change is searchable once `apply` returns.
//!
//! Verified against noida-db 0.2.3 (an Elasticsearch 8.15 emulator), not a real cluster (docs/search.md).

use std::{
    collections::{BTreeSet, HashMap},
    str::FromStr,
};

use anyhow::{Context, bail};
use elasticsearch::{
    BulkParts, Elasticsearch, MgetParts, SearchParts,
    http::{StatusCode, request::JsonBody, transport::Transport},
    indices::{IndicesCreateParts, IndicesDeleteParts, IndicesExistsParts},
    params::Refresh,
};
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::{
    Applied, Change, ProductDoc, SearchBackend, SearchPage, SearchQuery, Sort, facets,
    query::{edits_allowed, price_units, terms},
};

pub struct ElasticBackend {
    client: Elasticsearch,
    index: String,
}

/// The index mapping. `dynamic: strict` so a typo in a field name fails loudly instead of
/// silently creating a new field.
fn mapping() -> Value {
    json!({
        "settings": {
            "number_of_shards": 1,
            "analysis": {"normalizer": {"lowercase": {"type": "custom", "filter": ["lowercase"]}}}
        },
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "id": {"type": "long"},
                "name": {"type": "text"},
                "description": {"type": "text"},
                "category": {"type": "keyword", "index": false},
                // Lower-cased by the application too, so the filter works where normalizers are missing.
                "category_key": {"type": "keyword", "normalizer": "lowercase"},
                // The exact decimal for display; its ten-thousandths for filters and sorts.
                "price": {"type": "keyword", "index": false},
                "price_units": {"type": "long"},
                "stock": {"type": "long"},
                "created_at": {"type": "long"},
                "created_at_text": {"type": "keyword", "index": false},
                "version": {"type": "long"},
                "deleted": {"type": "boolean"}
            }
        }
    })
}

/// `long` is signed: prices above 922337203685477.5807 share the top value (they still display exactly).
fn price_units_long(price: Decimal) -> i64 {
    i64::try_from(price_units(price)).unwrap_or(i64::MAX)
}

fn version_long(version: u64) -> anyhow::Result<i64> {
    i64::try_from(version).with_context(|| format!("version {version} does not fit an Elasticsearch version"))
}

/// Splits user text into terms like tantivy's default tokenizer does, so every term must match
/// name or description (term-centric AND) on both backends.
impl ElasticBackend {
    /// Connects to `url` and creates `index` with its mapping when it does not exist.
    pub async fn open(url: &str, index: &str) -> anyhow::Result<Self> {
        let transport = Transport::single_node(url).with_context(|| format!("Elasticsearch URL {url:?}"))?;
        let me = Self { client: Elasticsearch::new(transport), index: index.to_string() };
        me.ensure_index().await.with_context(|| format!("preparing Elasticsearch index {index} at {url}"))?;
        Ok(me)
    }

    async fn ensure_index(&self) -> anyhow::Result<()> {
        let exists = self.client.indices().exists(IndicesExistsParts::Index(&[&self.index])).send().await?;
        if exists.status_code().is_success() {
            return Ok(());
        }
        let res = self.client.indices().create(IndicesCreateParts::Index(&self.index)).body(mapping()).send().await?;
        if res.status_code().is_success() {
            return Ok(());
        }
        let body = res.text().await.unwrap_or_default();
        // Another instance created it between our check and our create.
        if body.contains("resource_already_exists_exception") {
            return Ok(());
        }
        bail!("creating the index failed: {body}")
    }

    /// Stored (version, deleted) of each id the index has.
    async fn current(&self, ids: &BTreeSet<u64>) -> anyhow::Result<HashMap<u64, (u64, bool)>> {
        let id_texts: Vec<String> = ids.iter().map(u64::to_string).collect();
        let res = self
            .client
            .mget(MgetParts::Index(&self.index))
            ._source_includes(&["version", "deleted"])
            .body(json!({"ids": id_texts}))
            .send()
            .await?;
        let status = res.status_code();
        let body: Value = res.json().await.context("mget response")?;
        if !status.is_success() {
            bail!("mget failed ({status}): {body}");
        }
        let mut out = HashMap::new();
        for d in body["docs"].as_array().map(Vec::as_slice).unwrap_or_default() {
            if d["found"].as_bool() != Some(true) {
                continue;
            }
            let id = d["_id"].as_str().and_then(|s| s.parse::<u64>().ok()).context("mget doc without a numeric _id")?;
            let version = d["_source"]["version"].as_u64().unwrap_or(0);
            let deleted = d["_source"]["deleted"].as_bool().unwrap_or(false);
            out.insert(id, (version, deleted));
        }
        Ok(out)
    }

    fn to_source(d: &ProductDoc, version: u64) -> anyhow::Result<Value> {
        Ok(json!({
            "id": d.id,
            "name": d.name,
            "description": d.description,
            "category": d.category,
            "category_key": d.category.to_lowercase(),
            "price": d.price.to_string(),
            "price_units": price_units_long(d.price),
            "stock": d.stock,
            "created_at": d.created_at_micros,
            "created_at_text": d.created_at,
            "version": version_long(version)?,
            "deleted": false,
        }))
    }

    fn from_source(s: &Value) -> ProductDoc {
        let text = |k: &str| s[k].as_str().unwrap_or_default().to_string();
        ProductDoc {
            id: s["id"].as_u64().unwrap_or(0),
            name: text("name"),
            description: text("description"),
            category: text("category"),
            price: Decimal::from_str(&text("price")).unwrap_or_default(),
            stock: s["stock"].as_i64().unwrap_or(0),
            created_at_micros: s["created_at"].as_i64().unwrap_or(0),
            created_at: text("created_at_text"),
        }
    }

    async fn apply_changes(&self, changes: Vec<Change>) -> anyhow::Result<Applied> {
        let mut applied = Applied::default();
        if changes.is_empty() {
            return Ok(applied);
        }
        let ids: BTreeSet<u64> = changes.iter().map(Change::id).collect();
        // Starts as what the index holds; updated as the batch decides, so later changes in the
        // batch compare against earlier ones.
        let mut known = self.current(&ids).await?;
        // The last accepted write per id: only that one needs sending.
        let mut writes: HashMap<u64, (u64, Value, bool)> = HashMap::new();
        for change in changes {
            let id = change.id();
            let current = known.get(&id).copied();
            match change {
                Change::Upsert { doc, version } => {
                    if current.is_some_and(|(v, _)| version < v) {
                        applied.stale += 1;
                        continue;
                    }
                    writes.insert(id, (version, Self::to_source(&doc, version)?, false));
                    known.insert(id, (version, false));
                    applied.upserted += 1;
                }
                Change::Delete { version, .. } => {
                    let version = match (version, current) {
                        (Some(v), Some((cur, _))) if v < cur => {
                            applied.stale += 1;
                            continue;
                        }
                        (Some(v), _) => v,
                        // A tombstone after the delete event: already done.
                        (None, Some((_, true))) => continue,
                        (None, Some((cur, false))) => cur,
                        (None, None) => 0,
                    };
                    let tombstone = json!({"id": id, "version": version_long(version)?, "deleted": true});
                    writes.insert(id, (version, tombstone, true));
                    known.insert(id, (version, true));
                    applied.deleted += 1;
                }
            }
        }
        if writes.is_empty() {
            return Ok(applied);
        }
        let mut body: Vec<JsonBody<Value>> = Vec::with_capacity(writes.len() * 2);
        let mut order = Vec::with_capacity(writes.len());
        for (id, (version, source, is_delete)) in writes {
            body.push(json!({"index": {"_id": id.to_string(), "version": version, "version_type": "external_gte"}}).into());
            body.push(source.into());
            order.push(is_delete);
        }
        let res = self.client.bulk(BulkParts::Index(&self.index)).refresh(Refresh::True).body(body).send().await?;
        let status = res.status_code();
        let reply: Value = res.json().await.context("bulk response")?;
        if !status.is_success() {
            bail!("bulk failed ({status}): {reply}");
        }
        if reply["errors"].as_bool() == Some(true) {
            let items = reply["items"].as_array().map(Vec::as_slice).unwrap_or_default();
            for (item, is_delete) in items.iter().zip(order) {
                let op = &item["index"];
                match op["status"].as_u64() {
                    Some(s) if s < 300 => {}
                    // Another writer stored a newer version meanwhile: ours is stale.
                    Some(409) => {
                        applied.stale += 1;
                        if is_delete {
                            applied.deleted = applied.deleted.saturating_sub(1);
                        } else {
                            applied.upserted = applied.upserted.saturating_sub(1);
                        }
                    }
                    _ => bail!("bulk item failed: {}", op["error"]),
                }
            }
        }
        Ok(applied)
    }

    /// The `query` part of a search for `q`: every word must match the name (counting double) or
    /// the description, long words also one edit away; the filters as filters.
    fn query_of(q: &SearchQuery) -> Value {
        let mut filter = vec![json!({"term": {"deleted": false}})];
        let mut must = Vec::new();
        if let Some(text) = &q.text {
            for term in terms(text) {
                let mut mm = json!({"query": term, "fields": ["name^2", "description"]});
                let edits = edits_allowed(&term);
                if edits > 0 {
                    mm["fuzziness"] = json!(edits);
                }
                must.push(json!({"multi_match": mm}));
            }
        }
        if let Some(c) = &q.category {
            filter.push(json!({"term": {"category_key": c.to_lowercase()}}));
        }
        if q.min_price.is_some() || q.max_price.is_some() {
            let mut range = serde_json::Map::new();
            if let Some(p) = q.min_price {
                range.insert("gte".into(), price_units_long(p).into());
            }
            if let Some(p) = q.max_price {
                range.insert("lte".into(), price_units_long(p).into());
            }
            filter.push(json!({"range": {"price_units": range}}));
        }
        match q.in_stock {
            Some(true) => filter.push(json!({"range": {"stock": {"gte": 1}}})),
            Some(false) => filter.push(json!({"range": {"stock": {"lte": 0}}})),
            None => {}
        }
        json!({"bool": {"filter": filter, "must": must}})
    }

    fn search_body(q: &SearchQuery) -> Value {
        // The id tie-break makes pages stable when sort keys repeat.
        let sort = match (q.sort, q.text.is_some()) {
            (Sort::Relevance, true) => json!([{"_score": "desc"}, {"id": "asc"}]),
            (Sort::Relevance, false) => json!([{"id": "asc"}]),
            (Sort::PriceAsc, _) => json!([{"price_units": "asc"}, {"id": "asc"}]),
            (Sort::PriceDesc, _) => json!([{"price_units": "desc"}, {"id": "asc"}]),
            (Sort::Newest, _) => json!([{"created_at": "desc"}, {"id": "desc"}]),
        };
        json!({
            "track_total_hits": true,
            "from": q.offset(),
            "size": q.per_page,
            "query": Self::query_of(q),
            "sort": sort,
        })
    }

    /// The two facet searches (no hits, one aggregation each): categories without the category
    /// filter, price bands without the price range (see [`facets`]).
    fn facet_bodies(q: &SearchQuery) -> (Value, Value) {
        let ranges: Vec<Value> = facets::PRICE_BANDS
            .iter()
            .map(|(from, to)| match to {
                Some(to) => json!({"from": from, "to": to}),
                None => json!({"from": from}),
            })
            .collect();
        (
            json!({"size": 0, "query": Self::query_of(&q.without_category()), "aggs": {"c": {"terms": {"field": "category_key", "size": 1000}}}}),
            json!({"size": 0, "query": Self::query_of(&q.without_price()), "aggs": {"b": {"range": {"field": "price_units", "ranges": ranges}}}}),
        )
    }

    async fn post_search(&self, body: Value) -> anyhow::Result<Value> {
        let res = self.client.search(SearchParts::Index(&[&self.index])).body(body).send().await?;
        let status = res.status_code();
        let body: Value = res.json().await.context("search response")?;
        if !status.is_success() {
            bail!("search failed ({status}): {body}");
        }
        Ok(body)
    }

    async fn run_search(&self, q: SearchQuery) -> anyhow::Result<SearchPage> {
        if !q.facets {
            let body = self.post_search(Self::search_body(&q)).await?;
            return Ok(SearchPage { total: Self::total(&body), page: q.page, per_page: q.per_page, items: Self::items(&body), facets: None });
        }
        let (by_category, by_band) = Self::facet_bodies(&q);
        let (body, by_category, by_band) = futures::try_join!(self.post_search(Self::search_body(&q)), self.post_search(by_category), self.post_search(by_band))?;
        let buckets = |v: &Value, name: &str| v["aggregations"][name]["buckets"].as_array().cloned().unwrap_or_default();
        let categories = buckets(&by_category, "c").iter().filter_map(|b| Some((b["key"].as_str()?.to_string(), b["doc_count"].as_u64()?))).collect::<Vec<_>>();
        let mut bands = [0u64; facets::PRICE_BANDS.len()];
        for (i, b) in buckets(&by_band, "b").iter().enumerate().take(bands.len()) {
            bands[i] = b["doc_count"].as_u64().unwrap_or(0);
        }
        let facets = facets::Facets { categories: facets::categories(categories), price_bands: facets::price_bands(bands) };
        Ok(SearchPage { total: Self::total(&body), page: q.page, per_page: q.per_page, items: Self::items(&body), facets: Some(facets) })
    }

    fn total(body: &Value) -> u64 {
        body["hits"]["total"]["value"].as_u64().unwrap_or(0)
    }

    fn items(body: &Value) -> Vec<ProductDoc> {
        body["hits"]["hits"].as_array().map(Vec::as_slice).unwrap_or_default().iter().map(|h| Self::from_source(&h["_source"])).collect()
    }

    /// Drops and recreates the index: external versions start over with the replay.
    async fn recreate(&self) -> anyhow::Result<()> {
        let res = self.client.indices().delete(IndicesDeleteParts::Index(&[&self.index])).send().await?;
        if !res.status_code().is_success() && res.status_code() != StatusCode::NOT_FOUND {
            bail!("deleting the index failed: {}", res.text().await.unwrap_or_default());
        }
        self.ensure_index().await
    }
}

impl SearchBackend for ElasticBackend {
    fn apply(&self, changes: Vec<Change>) -> BoxFuture<'_, anyhow::Result<Applied>> {
        Box::pin(self.apply_changes(changes))
    }

    fn search(&self, query: SearchQuery) -> BoxFuture<'_, anyhow::Result<SearchPage>> {
        Box::pin(self.run_search(query))
    }

    fn clear(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.recreate())
    }

    fn name(&self) -> &'static str {
        "elasticsearch"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_prices_saturate_instead_of_wrapping() {
        assert_eq!(price_units_long(Decimal::from_str("999999999999999.9999").unwrap()), i64::MAX);
        assert_eq!(price_units_long(Decimal::from_str("19.99").unwrap()), 199_900);
    }
}
