//! Search scenarios run against both backends (tantivy and Elasticsearch/noida-db).

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use anyhow::Context;
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer},
};
use rust_decimal::Decimal;
use sagaway_contract::money;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{TestApp, brokers, poll_until, read_changes, unique_id};

/// Acceptance 3: create, update (price, name) and delete through the API; `/findAll` reflects each
/// within `within`, with one document per product and the exact price. Returns the latencies.
pub async fn crud_is_visible_within(app: &TestApp, within: Duration) -> anyhow::Result<Vec<(&'static str, Duration)>> {
    let token = format!("zq{}", &unique_id()[..10]);
    let q = format!("q={token}&per_page=100");
    let mut latencies = Vec::new();

    let (status, created) = app
        .post_json(
            "/products",
            &json!({"name": format!("{token} Lantern"), "description": "brass", "category": "Lighting", "price": "1234.56", "stock": 7}),
        )
        .await?;
    anyhow::ensure!(status == 201, "create: {created}");
    let id = created["id"].as_u64().unwrap();
    let t = Instant::now();
    let page = poll_until(within, || async { app.find_all(&q).await.ok().filter(|b| b["items"][0]["id"] == json!(id)) })
        .await
        .context("create not visible in time")?;
    latencies.push(("create", t.elapsed()));
    assert_eq!(page["total"], json!(1), "{page}");
    let item = &page["items"][0];
    assert_eq!(item["price"], json!("1234.56"), "exact decimal");
    assert_eq!(item["name"], json!(format!("{token} Lantern")));
    assert_eq!(item["category"], json!("Lighting"));
    assert_eq!(item["stock"], json!(7));

    let (status, body) = app.http_patch(&format!("/products/{id}"), &json!({"price": "0.1000", "name": format!("{token} Lamp")})).await?;
    anyhow::ensure!(status == 200, "patch: {body}");
    let t = Instant::now();
    let page = poll_until(within, || async {
        app.find_all(&q).await.ok().filter(|b| b["items"][0]["name"] == json!(format!("{token} Lamp")))
    })
    .await
    .context("update not visible in time")?;
    latencies.push(("update", t.elapsed()));
    assert_eq!(page["total"], json!(1), "no duplicate documents: {page}");
    assert_eq!(page["items"][0]["price"], json!("0.10"));
    assert_eq!(app.find_all(&format!("q={token}+Lantern")).await?["total"], json!(0), "the old name is gone");
    let all = app.all_docs().await?;
    assert_eq!(all.iter().filter(|d| d["id"] == json!(id)).count(), 1);

    let res = app.http.delete(app.url(&format!("/products/{id}"))).bearer_auth(app.token_for(None)).send().await?;
    anyhow::ensure!(res.status().as_u16() == 204, "delete: {}", res.status());
    let t = Instant::now();
    poll_until(within, || async { app.find_all(&q).await.ok().filter(|b| b["total"] == json!(0)) })
        .await
        .context("delete not visible in time")?;
    latencies.push(("delete", t.elapsed()));
    assert!(app.all_docs().await?.iter().all(|d| d["id"] != json!(id)));
    Ok(latencies)
}

/// Products as the database has them, shaped like `/findAll` items (id ascending).
pub async fn db_docs(app: &TestApp) -> anyhow::Result<Vec<(u64, String, String, i64)>> {
    let rows: Vec<(u64, String, Decimal, i32)> =
        sqlx::query_as("SELECT id, name, price, stock FROM products ORDER BY id").fetch_all(&app.pool).await?;
    Ok(rows.into_iter().map(|(id, name, price, stock)| (id, name, money::format(price), stock as i64)).collect())
}

fn shape(docs: &[Value]) -> Vec<(u64, String, String, i64)> {
    docs.iter()
        .map(|d| {
            (
                d["id"].as_u64().unwrap_or(0),
                d["name"].as_str().unwrap_or("").to_string(),
                d["price"].as_str().unwrap_or("").to_string(),
                d["stock"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

/// Acceptance 4: replaying old Debezium events (one by one, as one batch, and through a second
/// indexer consumer group) never regresses a document, and `POST /admin/reindex` rebuilds exactly
/// what incremental indexing built.
pub async fn replays_do_not_regress_and_reindex_matches(app: &TestApp) -> anyhow::Result<()> {
    let mut ids = Vec::new();
    for i in 0..6 {
        let (status, p) =
            app.post_json("/products", &json!({"name": format!("Replay item {i}"), "price": format!("{i}.5"), "stock": 10 + i})).await?;
        anyhow::ensure!(status == 201, "{p}");
        ids.push(p["id"].as_u64().unwrap());
    }
    for round in 1..=3 {
        for (i, id) in ids.iter().enumerate() {
            let body = json!({"name": format!("Replay item {i} v{round}"), "price": format!("{}.{round}5", i * 10 + round), "stock": round * 3});
            let (status, p) = app.http_patch(&format!("/products/{id}"), &body).await?;
            anyhow::ensure!(status == 200, "{p}");
        }
    }
    for id in &ids[..2] {
        app.http.delete(app.url(&format!("/products/{id}"))).bearer_auth(app.token_for(None)).send().await?.error_for_status()?;
    }
    let (status, r) = app.post_json("/reserve", &json!({"product_id": ids[2], "user_id": "replayer", "quantity": 2})).await?;
    anyhow::ensure!(status == 201, "{r}");

    let truth = db_docs(app).await?;
    let before = poll_until(Duration::from_secs(10), || async {
        let docs = app.all_docs().await.ok()?;
        (shape(&docs) == truth).then_some(docs)
    })
    .await
    .context("the index never matched the database")?;

    // 1. Every event again, oldest first, one at a time: each is older than (or equal to) what is indexed.
    let changes = read_changes(&app.config.cdc_topic).await?;
    assert!(changes.len() > 6 + 18 + 4, "only {} events", changes.len());
    let mut stale = 0;
    for c in changes.iter().cloned() {
        stale += app.search.apply(vec![c]).await?.stale;
    }
    assert!(stale > 0, "old events must be recognised as stale");
    assert_eq!(app.all_docs().await?, before, "replaying events one by one regressed the index");

    // 2. The whole topic as one batch.
    app.search.apply(changes.clone()).await?;
    assert_eq!(app.all_docs().await?, before, "replaying the topic as one batch regressed the index");

    // 3. A second indexer group replaying the topic into the same backend, while the app's own
    //    indexer keeps running.
    let group = format!("{}second-indexer", app.config.common.topic_prefix);
    let consumer = sagaway_messaging::kafka::consumer(&brokers(), &group, 10)?;
    product::indexer::assign_all(&consumer, &app.config.cdc_topic)?;
    let stop = CancellationToken::new();
    let second = tokio::spawn(product::indexer::run(consumer, app.search.clone(), Default::default(), std::time::Duration::ZERO, stop.clone()));
    let topic = app.config.cdc_topic.clone();
    poll_until(Duration::from_secs(30), || {
        let (group, topic) = (group.clone(), topic.clone());
        async move { tokio::task::spawn_blocking(move || caught_up(&group, &topic)).await.ok()?.ok()?.then_some(()) }
    })
    .await
    .context("the second indexer group did not reach the end of the topic")?;
    stop.cancel();
    let _ = second.await;
    assert_eq!(app.all_docs().await?, before, "a second indexer group regressed the index");

    // 4. A full reindex builds the same documents.
    let (status, report) = app.post_json("/admin/reindex", &json!({})).await?;
    anyhow::ensure!(status == 200, "reindex: {report}");
    assert_eq!(report["events"].as_u64(), Some(changes.len() as u64), "{report}");
    assert_eq!(app.all_docs().await?, before, "reindex differs from incremental indexing");
    Ok(())
}

fn high_watermark(topic: &str) -> anyhow::Result<i64> {
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers()).create()?;
    Ok(consumer.fetch_watermarks(topic, 0, Duration::from_secs(5))?.1)
}

/// True when `group` has committed the end of partition 0 of `topic`.
fn caught_up(group: &str, topic: &str) -> anyhow::Result<bool> {
    let consumer: BaseConsumer =
        ClientConfig::new().set("bootstrap.servers", brokers()).set("group.id", group).set("enable.auto.commit", "false").create()?;
    let (_, high) = consumer.fetch_watermarks(topic, 0, Duration::from_secs(5))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(5))?;
    Ok(matches!(committed.find_partition(topic, 0).map(|p| p.offset()), Some(Offset::Offset(o)) if o >= high))
}

const ADJECTIVES: [&str; 20] = [
    "amber", "brisk", "crimson", "dusky", "elegant", "frosty", "golden", "hollow", "ivory", "jolly", "kinetic", "lunar",
    "mellow", "nimble", "opal", "plush", "quartz", "rustic", "silken", "tidal",
];
const NOUNS: [&str; 25] = [
    "anchor", "basket", "candle", "drum", "easel", "fan", "globe", "hammock", "inkwell", "jug", "kettle", "lantern", "mirror",
    "notebook", "ottoman", "pillow", "quilt", "rug", "stool", "teapot", "umbrella", "vase", "wallet", "yoyo", "zither",
];
const MATERIALS: [&str; 15] =
    ["oak", "walnut", "bamboo", "steel", "copper", "linen", "wool", "cotton", "glass", "clay", "marble", "leather", "cork", "brass", "resin"];
const CATEGORIES: [&str; 10] = ["Garden", "Kitchen", "Office", "Toys", "Outdoors", "Bath", "Decor", "Travel", "Music", "Crafts"];

/// The `i`-th generated product (created at 2026-01-01 00:00:00 + `i` seconds).
pub fn generated(i: usize) -> product::catalogue::Draft {
    product::catalogue::Draft {
        name: format!("{} {} no{i}", ADJECTIVES[i % 20], NOUNS[(i / 20) % 25]),
        description: format!("Made of {} and finished by hand", MATERIALS[(i * 7) % 15]),
        category: CATEGORIES[(i * 3) % 10].to_string(),
        // Four decimals, from 0.0001 up to 999.9999, many repeats (ties in price sorts).
        price: Decimal::new(((i * 7919) % 9_999_999 + 1) as i64, 4),
        stock: if i.is_multiple_of(7) { 0 } else { (i % 50 + 1) as i32 },
    }
}

/// Inserts `n` generated products with SQL (batches of 1000 rows) and waits until the index has them.
pub async fn generate_catalogue(app: &TestApp, n: usize, within: Duration) -> anyhow::Result<Duration> {
    // When Debezium has published them all (separates CDC lag from indexing lag).
    let topic = app.config.cdc_topic.clone();
    let base = tokio::task::spawn_blocking({
        let topic = topic.clone();
        move || high_watermark(&topic)
    })
    .await??;
    let started = Instant::now();
    for chunk_start in (0..n).step_by(1000) {
        let rows: Vec<usize> = (chunk_start..(chunk_start + 1000).min(n)).collect();
        let values = vec!["(?, ?, ?, ?, ?, TIMESTAMP'2026-01-01 00:00:00' + INTERVAL ? SECOND)"; rows.len()].join(",");
        let sql = format!("INSERT INTO products (name, description, category, price, stock, created_at) VALUES {values}");
        let mut q = sqlx::query(&sql);
        for i in rows {
            let g = generated(i);
            q = q.bind(g.name).bind(g.description).bind(g.category).bind(g.price).bind(g.stock).bind(i as i64);
        }
        q.execute(&app.pool).await?;
    }
    let inserted = started.elapsed();
    let on_topic = poll_until(within, || {
        let topic = topic.clone();
        async move {
            let high = tokio::task::spawn_blocking(move || high_watermark(&topic)).await.ok()?.ok()?;
            (high >= base + n as i64).then(|| started.elapsed())
        }
    })
    .await;
    println!("{n} products on the CDC topic after {on_topic:?}");
    poll_until(within, || async { app.find_all("per_page=1").await.ok().filter(|b| b["total"] == json!(n)).map(|_| ()) })
        .await
        .with_context(|| format!("the index did not reach {n} documents"))?;
    println!("{n} products: inserted in {inserted:?}, all searchable after {:?}", started.elapsed());
    Ok(started.elapsed())
}

/// Every item of every page of `query` with `per_page`; checks page sizes and that totals agree.
async fn walk(app: &TestApp, query: &str, per_page: u64) -> anyhow::Result<(u64, Vec<Value>)> {
    let first = app.find_all(&format!("{query}&per_page={per_page}&page=1")).await?;
    let total = first["total"].as_u64().unwrap();
    let pages = total.div_ceil(per_page).max(1);
    let mut items: Vec<Value> = first["items"].as_array().cloned().unwrap_or_default();
    for page in 2..=pages {
        let body = app.find_all(&format!("{query}&per_page={per_page}&page={page}")).await?;
        assert_eq!(body["total"].as_u64(), Some(total), "total changes between pages of {query}");
        assert_eq!(body["page"].as_u64(), Some(page));
        let expected = if page == pages { total - per_page * (pages - 1) } else { per_page };
        let got = body["items"].as_array().cloned().unwrap_or_default();
        assert_eq!(got.len() as u64, expected, "page {page} of {query}");
        items.extend(got);
    }
    // One past the end: empty, same total.
    let past = app.find_all(&format!("{query}&per_page={per_page}&page={}", pages + 1)).await?;
    assert_eq!(past["items"], json!([]), "{query}");
    assert_eq!(past["total"].as_u64(), Some(total));
    let ids: HashSet<u64> = items.iter().map(|d| d["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), items.len(), "a product appears twice across pages of {query}");
    Ok((total, items))
}

async fn sql_ids(app: &TestApp, where_clause: &str) -> anyhow::Result<HashSet<u64>> {
    let ids: Vec<u64> = sqlx::query_scalar(&format!("SELECT id FROM products WHERE {where_clause}")).fetch_all(&app.pool).await?;
    Ok(ids.into_iter().collect())
}

fn ids_of(items: &[Value]) -> HashSet<u64> {
    items.iter().map(|d| d["id"].as_u64().unwrap()).collect()
}

/// Acceptance 5: every filter, sort and page of `/findAll` agrees with SQL over the generated catalogue.
pub async fn search_agrees_with_sql(app: &TestApp, n: usize) -> anyhow::Result<()> {
    let all = app.find_all("per_page=1").await?;
    assert_eq!(all["total"].as_u64(), Some(n as u64));

    // (query, SQL condition). Words are whole tokens, so LIKE with spaces matches the same rows.
    let filters: Vec<(String, String)> = vec![
        ("q=crimson".into(), "name LIKE 'crimson %'".into()),
        ("q=LANTERN".into(), "name LIKE '% lantern %'".into()),
        ("q=walnut".into(), "description LIKE '% walnut %'".into()),
        ("q=golden+kettle".into(), "name LIKE 'golden kettle %'".into()),
        ("q=amber+oak".into(), "name LIKE 'amber %' AND description LIKE '% oak %'".into()),
        ("category=garden".into(), "category = 'Garden'".into()),
        ("category=Kitchen&in_stock=true".into(), "category = 'Kitchen' AND stock > 0".into()),
        ("in_stock=false&min_price=500".into(), "stock = 0 AND price >= 500".into()),
        ("min_price=10.5&max_price=42.0001".into(), "price BETWEEN 10.5 AND 42.0001".into()),
        ("max_price=5".into(), "price <= 5".into()),
        ("q=crimson&category=decor&min_price=100&max_price=900&in_stock=true".into(),
         "name LIKE 'crimson %' AND category = 'Decor' AND price BETWEEN 100 AND 900 AND stock > 0".into()),
    ];
    for (query, condition) in &filters {
        let expected = sql_ids(app, condition).await?;
        anyhow::ensure!(!expected.is_empty(), "{query} matches nothing: a useless check");
        let (total, items) = walk(app, query, 100).await?;
        assert_eq!(total, expected.len() as u64, "total of {query}");
        assert_eq!(ids_of(&items), expected, "results of {query}");
    }

    // Typo tolerance: one slip (changed, dropped, added, swapped letters) in a word of five letters
    // or more still finds exactly what the right word finds; a short word must be exact.
    for (typo, condition) in [
        ("q=crimsom", "name LIKE 'crimson %'"),
        ("q=lantren", "name LIKE '% lantern %'"),
        ("q=walnt", "description LIKE '% walnut %'"),
        ("q=golden+kettles", "name LIKE 'golden kettle %'"),
    ] {
        let (total, items) = walk(app, typo, 100).await?;
        assert_eq!(total as usize, items.len(), "{typo}");
        assert_eq!(ids_of(&items), sql_ids(app, condition).await?, "results of {typo}");
    }
    assert_eq!(app.find_all("q=oek").await?["total"].as_u64(), Some(0), "`oak` is too short to tolerate a slip");

    // Highlights: the matched words of each result, exact or slipped, and nothing else.
    let found = app.find_all("q=ambar+oak&per_page=50").await?;
    let items = found["items"].as_array().unwrap();
    assert!(!items.is_empty(), "amber + oak matches something");
    for item in items {
        let marked = |field: &str| -> Vec<String> {
            item["highlight"][field].as_array().map(Vec::as_slice).unwrap_or_default().iter().filter(|s| s["match"] == true).map(|s| s["text"].as_str().unwrap().to_lowercase()).collect()
        };
        assert_eq!(marked("name"), ["amber"], "{item}");
        assert_eq!(marked("description"), ["oak"], "{item}");
        let whole: String = item["highlight"]["name"].as_array().unwrap().iter().map(|s| s["text"].as_str().unwrap()).collect();
        assert_eq!(whole, item["name"].as_str().unwrap(), "the segments rebuild the name");
    }
    assert!(app.find_all("per_page=1").await?["items"][0].get("highlight").is_none(), "no text query, no highlight");

    // Facets, as SQL counts them: categories without the category filter, price bands without the
    // price range, every other filter applied.
    let bands = "CASE WHEN price < 10 THEN 0 WHEN price < 25 THEN 1 WHEN price < 50 THEN 2 WHEN price < 100 THEN 3 WHEN price < 250 THEN 4 ELSE 5 END";
    assert!(app.find_all("per_page=1").await?.get("facets").is_none(), "facets only when asked");
    for (query, without_category, without_price) in [
        ("per_page=1&facets=true", "TRUE", "TRUE"),
        (
            "q=crimson&category=decor&min_price=100&max_price=900&in_stock=true&per_page=1&facets=true",
            "name LIKE 'crimson %' AND price BETWEEN 100 AND 900 AND stock > 0",
            "name LIKE 'crimson %' AND category = 'Decor' AND stock > 0",
        ),
        ("q=walnut&max_price=50&per_page=1&facets=true", "description LIKE '% walnut %' AND price <= 50", "description LIKE '% walnut %'"),
    ] {
        let facets = app.find_all(query).await?["facets"].clone();
        let got: Vec<(String, i64)> =
            facets["categories"].as_array().unwrap().iter().map(|c| (c["value"].as_str().unwrap().to_string(), c["count"].as_i64().unwrap())).collect();
        let mut want: Vec<(String, i64)> =
            sqlx::query_as(&format!("SELECT LOWER(category), COUNT(*) FROM products WHERE {without_category} GROUP BY LOWER(category)")).fetch_all(&app.pool).await?;
        want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        assert_eq!(got, want, "category facet of {query}");
        let got: Vec<i64> = facets["price_bands"].as_array().unwrap().iter().map(|b| b["count"].as_i64().unwrap()).collect();
        let rows: Vec<(i64, i64)> =
            sqlx::query_as(&format!("SELECT CAST({bands} AS SIGNED) AS band, COUNT(*) FROM products WHERE {without_price} GROUP BY band")).fetch_all(&app.pool).await?;
        let mut want = vec![0i64; 6];
        for (band, count) in rows {
            want[band as usize] = count;
        }
        assert_eq!(got, want, "price-band facet of {query}");
    }

    // Sorts: the first 300 results in SQL's order (prices compared as exact strings; ties may
    // order differently, so price sorts compare the price sequence).
    let sorted = |sql: &'static str| async move {
        let rows: Vec<(u64, Decimal)> = sqlx::query_as(sql).fetch_all(&app.pool).await?;
        anyhow::Ok(rows.into_iter().map(|(id, p)| (id, money::format(p))).collect::<Vec<_>>())
    };
    let first_300 = |query: String| async move {
        let mut out = Vec::new();
        for page in 1..=3 {
            let body = app.find_all(&format!("{query}&per_page=100&page={page}")).await?;
            for d in body["items"].as_array().unwrap() {
                out.push((d["id"].as_u64().unwrap(), d["price"].as_str().unwrap().to_string()));
            }
        }
        anyhow::Ok(out)
    };
    let prices = |v: &[(u64, String)]| v.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>();
    let ids = |v: &[(u64, String)]| v.iter().map(|(i, _)| *i).collect::<Vec<_>>();

    let want = sorted("SELECT id, price FROM products ORDER BY price, id LIMIT 300").await?;
    assert_eq!(prices(&first_300("sort=price_asc".into()).await?), prices(&want), "price_asc");
    let want = sorted("SELECT id, price FROM products ORDER BY price DESC, id LIMIT 300").await?;
    assert_eq!(prices(&first_300("sort=price_desc".into()).await?), prices(&want), "price_desc");
    let want = sorted("SELECT id, price FROM products ORDER BY created_at DESC LIMIT 300").await?;
    assert_eq!(ids(&first_300("sort=newest".into()).await?), ids(&want), "newest");
    let want = sorted("SELECT id, price FROM products ORDER BY id LIMIT 300").await?;
    assert_eq!(first_300("sort=relevance".into()).await?, want, "relevance without text is id order, exact prices");

    // Relevance with text: the matching set (scores are not asserted), and a name match (boosted)
    // ranks first when only some matches have the word in their name.
    let (_, items) = walk(app, "q=oak&sort=relevance", 100).await?;
    assert_eq!(ids_of(&items), sql_ids(app, "description LIKE '% oak %'").await?);

    // Sorted and filtered pages: walking every page gives each match once, in order.
    for (query, condition) in [
        ("category=travel&sort=price_asc", "category = 'Travel'"),
        ("category=music&in_stock=true&sort=price_desc", "category = 'Music' AND stock > 0"),
        ("q=tidal&sort=newest", "name LIKE 'tidal %'"),
    ] {
        let (total, items) = walk(app, query, 37).await?;
        assert_eq!(total as usize, items.len());
        assert_eq!(ids_of(&items), sql_ids(app, condition).await?, "{query}");
        let units: Vec<Decimal> = items.iter().map(|d| d["price"].as_str().unwrap().parse().unwrap()).collect();
        if query.contains("price_asc") {
            assert!(units.windows(2).all(|w| w[0] <= w[1]), "{query} not ascending");
        }
        if query.contains("price_desc") {
            assert!(units.windows(2).all(|w| w[0] >= w[1]), "{query} not descending");
        }
        if query.contains("newest") {
            let created: Vec<String> = items.iter().map(|d| d["created_at"].as_str().unwrap().to_string()).collect();
            assert!(created.windows(2).all(|w| w[0] >= w[1]), "{query} not newest first");
        }
    }
    Ok(())
}
