//! The catalogue: products with exact prices and non-negative stock.
//!
//! Search is NOT served from here: `/findAll` reads the index that the CDC indexer keeps in sync
//! (see [`crate::search`]). This module validates products and keeps the `products` table; the
//! HTTP handlers are in [`api`].

pub mod api;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sagaway_contract::money;
use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// The largest stock a product may carry.
pub const MAX_STOCK: i64 = 1_000_000_000;

/// A product as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, sqlx::FromRow, ToSchema)]
pub struct Product {
    pub id: u64,
    pub name: String,
    pub description: String,
    pub category: String,
    /// Exact decimal, as a string (e.g. `"19.99"`).
    #[serde(serialize_with = "money::serialize", deserialize_with = "money::deserialize")]
    #[schema(value_type = String, example = "19.99")]
    pub price: Decimal,
    pub stock: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /products` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    /// 1–200 characters once trimmed.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    /// 1–100 characters once trimmed; `general` when absent.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub category: Option<String>,
    /// A decimal string or number in the catalogue's currency (`PRODUCT_CURRENCY`, USD by default):
    /// at least one minor unit (0.01 USD) and no finer than it (at most 2 decimals for USD, 0 for JPY).
    #[schema(value_type = String, example = "19.99", pattern = r"^([1-9][0-9]{0,14}(\.[0-9]{1,2}0*)?|0\.(0[1-9]|[1-9][0-9]?)0*)$")]
    pub price: serde_json::Value,
    #[schema(minimum = 0, maximum = 1000000000)]
    #[serde(deserialize_with = "sagaway_contract::json::integral")]
    pub stock: i64,
}

/// `PATCH /products/{id}` body: any subset of the fields.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductPatch {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    #[schema(max_length = 10000)]
    pub description: Option<String>,
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub category: Option<String>,
    #[schema(value_type = Option<String>, example = "17.50", pattern = r"^([1-9][0-9]{0,14}(\.[0-9]{1,2}0*)?|0\.(0[1-9]|[1-9][0-9]?)0*)$")]
    pub price: Option<serde_json::Value>,
    #[schema(minimum = 0, maximum = 1000000000)]
    #[serde(default, deserialize_with = "sagaway_contract::json::optional_integral")]
    pub stock: Option<i64>,
}

const SELECT_PRODUCT: &str =
    "SELECT id, name, description, category, price, stock, created_at, updated_at FROM products";

pub fn validate_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid("name", "must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(ApiError::invalid("name", "must be at most 200 characters"));
    }
    Ok(name.to_string())
}

fn validate_description(d: &str) -> ApiResult<String> {
    if d.chars().count() > 10_000 {
        return Err(ApiError::invalid("description", "must be at most 10000 characters"));
    }
    Ok(d.trim().to_string())
}

fn validate_category(c: &str) -> ApiResult<String> {
    let c = c.trim();
    if c.is_empty() {
        return Err(ApiError::invalid("category", "must not be empty when given"));
    }
    if c.chars().count() > 100 {
        return Err(ApiError::invalid("category", "must be at most 100 characters"));
    }
    Ok(c.to_string())
}

/// A price must be chargeable: at least one minor unit of `currency` and no finer than it.
fn validate_price(v: &serde_json::Value, currency: money::Currency) -> ApiResult<Decimal> {
    let price = money::parse(v).map_err(|m| ApiError::invalid("price", m))?;
    currency.check_price(price).map_err(|m| ApiError::invalid("price", m))?;
    if price > money::max_amount() {
        return Err(ApiError::invalid("price", "is larger than 999999999999999.9999"));
    }
    Ok(price)
}

fn validate_stock(stock: i64) -> ApiResult<i32> {
    if !(0..=MAX_STOCK).contains(&stock) {
        return Err(ApiError::invalid("stock", format!("must be between 0 and {MAX_STOCK}")));
    }
    Ok(stock as i32)
}

/// Parses a `{id}` path segment; anything but a positive integer is a 422 naming `id`.
pub fn parse_product_id(raw: &str) -> ApiResult<u64> {
    match raw.parse::<u64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(ApiError::invalid("id", format!("{raw:?} is not a product id (a positive integer)"))),
    }
}

pub async fn load(pool: &MySqlPool, id: u64) -> ApiResult<Product> {
    sqlx::query_as::<_, Product>(&format!("{SELECT_PRODUCT} WHERE id = ?"))
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(ApiError::ProductNotFound(id))
}

/// Validates a new product and inserts it.
pub async fn insert(pool: &MySqlPool, currency: money::Currency, body: &NewProduct) -> ApiResult<Product> {
    let name = validate_name(&body.name)?;
    let description = validate_description(body.description.as_deref().unwrap_or(""))?;
    let category = match body.category.as_deref() {
        Some(c) => validate_category(c)?,
        None => "general".to_string(),
    };
    let price = validate_price(&body.price, currency)?;
    let stock = validate_stock(body.stock)?;
    let id = sqlx::query("INSERT INTO products (name, description, category, price, stock) VALUES (?, ?, ?, ?, ?)")
        .bind(&name)
        .bind(&description)
        .bind(&category)
        .bind(price)
        .bind(stock)
        .execute(pool)
        .await?
        .last_insert_id();
    load(pool, id).await
}

/// Validates the given fields and changes them.
pub async fn update(pool: &MySqlPool, currency: money::Currency, id: u64, body: &ProductPatch) -> ApiResult<Product> {
    let mut sets: Vec<&str> = Vec::new();
    let mut args: Vec<PatchArg> = Vec::new();
    if let Some(n) = &body.name {
        sets.push("name = ?");
        args.push(PatchArg::Text(validate_name(n)?));
    }
    if let Some(d) = &body.description {
        sets.push("description = ?");
        args.push(PatchArg::Text(validate_description(d)?));
    }
    if let Some(c) = &body.category {
        sets.push("category = ?");
        args.push(PatchArg::Text(validate_category(c)?));
    }
    if let Some(p) = &body.price {
        sets.push("price = ?");
        args.push(PatchArg::Money(validate_price(p, currency)?));
    }
    if let Some(s) = body.stock {
        sets.push("stock = ?");
        args.push(PatchArg::Int(validate_stock(s)?));
    }
    if sets.is_empty() {
        // Nothing to change (`{}`, or only nulls): the product as it is.
        return load(pool, id).await;
    }
    let sql = format!("UPDATE products SET {} WHERE id = ?", sets.join(", "));
    let mut q = sqlx::query(&sql);
    for a in args {
        q = match a {
            PatchArg::Text(t) => q.bind(t),
            PatchArg::Money(m) => q.bind(m),
            PatchArg::Int(i) => q.bind(i),
        };
    }
    q.bind(id).execute(pool).await?;
    // rows_affected is 0 both for "no such row" and "no change"; the read tells them apart.
    load(pool, id).await
}

enum PatchArg {
    Text(String),
    Money(Decimal),
    Int(i32),
}

/// Deletes a product; refused while any reservation of it is still HELD.
pub async fn remove(pool: &MySqlPool, id: u64) -> ApiResult<()> {
    let mut tx = pool.begin().await?;
    let exists = sqlx::query("SELECT id FROM products WHERE id = ? FOR UPDATE").bind(id).fetch_optional(&mut *tx).await?;
    if exists.is_none() {
        return Err(ApiError::ProductNotFound(id));
    }
    let held: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM reservations WHERE product_id = ? AND status = 'HELD'")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    if held > 0 {
        return Err(ApiError::ProductHasHeldReservations(id));
    }
    sqlx::query("DELETE FROM products WHERE id = ?").bind(id).execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Result of seeding the demo catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct SeedResult {
    /// Products created by this call (0 when the catalogue was already seeded).
    pub created: u64,
    /// Demo products that exist now.
    pub demo_products: u64,
}

/// Inserts the demo catalogue once: each demo product has a seed key, so seeding again creates nothing.
pub async fn seed_demo(pool: &MySqlPool, currency: money::Currency) -> ApiResult<SeedResult> {
    let mut created = 0;
    let mut tx = pool.begin().await?;
    for (i, p) in demo_catalogue().iter().enumerate() {
        // The demo prices are in cents: whole units for a currency without a minor unit (JPY).
        let price = p.price.round_dp(currency.minor_units()).max(currency.minor_unit());
        created += sqlx::query(
            "INSERT IGNORE INTO products (name, description, category, price, stock, seed_key) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&p.name)
        .bind(&p.description)
        .bind(&p.category)
        .bind(price)
        .bind(p.stock)
        .bind(format!("demo-{i:03}"))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    tx.commit().await?;
    let demo_products: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM products WHERE seed_key IS NOT NULL").fetch_one(pool).await?;
    Ok(SeedResult { created, demo_products: demo_products as u64 })
}

/// A product to seed or generate.
#[derive(Debug, Clone)]
pub struct Draft {
    pub name: String,
    pub description: String,
    pub category: String,
    pub price: Decimal,
    pub stock: i32,
}

/// The demo catalogue: 48 products over 8 categories, deterministic.
pub fn demo_catalogue() -> Vec<Draft> {
    const CATALOGUE: &[(&str, &[(&str, &str)])] = &[
        ("audio", &[("Wireless Headphones", "Over-ear, noise cancelling, 30 h battery"), ("Bluetooth Speaker", "Waterproof portable speaker with deep bass"), ("Studio Monitors", "Pair of 5-inch active monitors"), ("USB Microphone", "Cardioid condenser microphone for podcasts"), ("Earbuds", "True wireless earbuds with charging case"), ("Turntable", "Belt-drive record player with built-in preamp")]),
        ("computers", &[("Mechanical Keyboard", "Hot-swappable switches, aluminium frame"), ("Wireless Mouse", "Ergonomic mouse with silent clicks"), ("27-inch Monitor", "4K IPS display with USB-C"), ("Laptop Stand", "Adjustable aluminium stand"), ("USB-C Dock", "Twelve ports, 100 W pass-through charging"), ("External SSD", "1 TB portable solid state drive")]),
        ("home", &[("Desk Lamp", "Dimmable LED lamp with warm light"), ("Throw Blanket", "Soft knitted cotton blanket"), ("Wall Clock", "Silent sweep minimalist clock"), ("Plant Pot", "Ceramic pot with drainage tray"), ("Air Purifier", "HEPA filter for rooms up to 40 m2"), ("Scented Candle", "Soy wax candle, cedar and vanilla")]),
        ("kitchen", &[("Chef Knife", "20 cm stainless steel knife"), ("Cast Iron Skillet", "Pre-seasoned 26 cm pan"), ("Espresso Machine", "15-bar pump with milk frother"), ("Cutting Board", "End-grain walnut board"), ("Electric Kettle", "1.7 l kettle with temperature control"), ("Spice Rack", "Rotating rack with 16 jars")]),
        ("outdoors", &[("Camping Tent", "Two-person tent, 2 kg"), ("Hiking Backpack", "40 l pack with rain cover"), ("Sleeping Bag", "Down bag rated to -5 C"), ("Headlamp", "Rechargeable 400-lumen headlamp"), ("Water Bottle", "Insulated steel bottle, 750 ml"), ("Trekking Poles", "Carbon poles with cork grips")]),
        ("books", &[("Rust in Action", "Systems programming with Rust"), ("Designing Data-Intensive Applications", "Reliable, scalable, maintainable systems"), ("The Pragmatic Programmer", "From journeyman to master"), ("Database Internals", "How distributed data systems work"), ("Kafka: The Definitive Guide", "Real-time data and stream processing"), ("Site Reliability Engineering", "How Google runs production systems")]),
        ("toys", &[("Building Blocks Set", "500 pieces for ages 6 and up"), ("Puzzle 1000", "1000-piece landscape jigsaw"), ("Remote Control Car", "Off-road car with rechargeable battery"), ("Board Game", "Strategy game for 2 to 4 players"), ("Plush Bear", "Soft toy, 30 cm"), ("Kite", "Delta kite with 50 m line")]),
        ("fitness", &[("Yoga Mat", "6 mm non-slip mat"), ("Dumbbell Pair", "Adjustable 2 to 20 kg"), ("Jump Rope", "Speed rope with ball bearings"), ("Foam Roller", "High-density roller for recovery"), ("Resistance Bands", "Set of five bands with handles"), ("Fitness Tracker", "Heart rate and sleep tracking band")]),
    ];
    let mut out = Vec::new();
    for (c, (category, items)) in CATALOGUE.iter().enumerate() {
        for (i, (name, description)) in items.iter().enumerate() {
            let cents = 999 + (c as i64 * 7919 + i as i64 * 3571) % 49_000;
            out.push(Draft {
                name: name.to_string(),
                description: description.to_string(),
                category: category.to_string(),
                price: Decimal::new(cents, 2),
                stock: 20 + ((c * 13 + i * 29) % 180) as i32,
            });
        }
    }
    out
}
