//! Acceptance 6: bad input is a 4xx problem+json naming the field, never a 5xx.

use crate::common;

use common::{Options, spawn_app};
use serde_json::{Value, json};

/// (what, method, path, body, expected status, expected field)
type Case<'a> = (&'a str, &'a str, String, Option<String>, u16, Option<&'a str>);

struct Answer {
    status: u16,
    content_type: String,
    body: Value,
}

async fn send(app: &common::TestApp, method: &str, path: &str, body: Option<&str>) -> Answer {
    let parsed = body.and_then(|b| serde_json::from_str::<Value>(b).ok());
    let mut req = app.http.request(method.parse().unwrap(), app.url(path)).bearer_auth(app.token_for(parsed.as_ref()));
    if let Some(b) = body {
        req = req.header("content-type", "application/json").body(b.to_string());
    }
    let res = req.send().await.expect("request sent");
    let status = res.status().as_u16();
    let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let body = res.json().await.unwrap_or(Value::Null);
    Answer { status, content_type, body }
}

/// Asserts a 4xx problem document with `status` and, when given, the named `field`.
fn assert_problem(what: &str, a: &Answer, status: u16, field: Option<&str>) {
    assert_eq!(a.status, status, "{what}: {}", a.body);
    assert_eq!(a.content_type, "application/problem+json", "{what}");
    assert_eq!(a.body["status"], json!(status), "{what}");
    assert!(a.body["code"].is_string() && a.body["type"].is_string(), "{what}: {}", a.body);
    if let Some(f) = field {
        assert_eq!(a.body["field"], json!(f), "{what}: {}", a.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_4xx_problem_naming_the_field() -> anyhow::Result<()> {
    let app = spawn_app(Options::default()).await?;
    let (_, p) = app.post_json("/products", &json!({"name": "Max Price", "price": "999999999999999.99", "stock": 10})).await?;
    let expensive = p["id"].as_u64().unwrap();
    let (_, p) = app.post_json("/products", &json!({"name": "Cheap", "price": "1.00", "stock": 5})).await?;
    let cheap = p["id"].as_u64().unwrap();

    // (what, method, path, body, status, field)
    let reserve = |b: Value| Some(b.to_string());
    let cases: Vec<Case> = vec![
        ("unknown product", "POST", "/reserve".into(), reserve(json!({"product_id": 999_999, "user_id": "u", "quantity": 1})), 404, None),
        ("quantity 0", "POST", "/reserve".into(), reserve(json!({"product_id": cheap, "user_id": "u", "quantity": 0})), 422, Some("quantity")),
        ("quantity negative", "POST", "/reserve".into(), reserve(json!({"product_id": cheap, "user_id": "u", "quantity": -3})), 422, Some("quantity")),
        ("quantity absurd", "POST", "/reserve".into(), reserve(json!({"product_id": cheap, "user_id": "u", "quantity": 1_000_000_000})), 422, Some("quantity")),
        ("quantity beyond i64", "POST", "/reserve".into(), Some(format!(r#"{{"product_id":{cheap},"user_id":"u","quantity":99999999999999999999999}}"#)), 422, Some("quantity")),
        ("quantity fractional", "POST", "/reserve".into(), Some(format!(r#"{{"product_id":{cheap},"user_id":"u","quantity":1.5}}"#)), 422, Some("quantity")),
        ("quantity as string", "POST", "/reserve".into(), reserve(json!({"product_id": cheap, "user_id": "u", "quantity": "2"})), 422, Some("quantity")),
        ("more than the stock", "POST", "/reserve".into(), reserve(json!({"product_id": cheap, "user_id": "u", "quantity": 6})), 409, None),
        ("total beyond DECIMAL(19,4)", "POST", "/reserve".into(), reserve(json!({"product_id": expensive, "user_id": "u", "quantity": 2})), 422, Some("quantity")),
        ("product_id negative", "POST", "/reserve".into(), reserve(json!({"product_id": -1, "user_id": "u", "quantity": 1})), 422, Some("product_id")),
        ("product_id zero", "POST", "/reserve".into(), reserve(json!({"product_id": 0, "user_id": "u", "quantity": 1})), 422, Some("product_id")),
        ("user_id number", "POST", "/reserve".into(), reserve(json!({"product_id": cheap, "user_id": 7, "quantity": 1})), 422, Some("user_id")),
        // The user is the token's subject: a body naming anyone else (even "") is refused.
        ("user_id empty", "POST", "/reserve".into(), reserve(json!({"product_id": cheap, "user_id": "", "quantity": 1})), 403, Some("user_id")),
        ("missing quantity", "POST", "/reserve".into(), reserve(json!({"product_id": cheap, "user_id": "u"})), 422, Some("quantity")),
        ("unknown field", "POST", "/reserve".into(), reserve(json!({"product_id": cheap, "user_id": "u", "quantity": 1, "coupon": "X"})), 422, Some("coupon")),
        ("array body", "POST", "/reserve".into(), Some("[1,2]".into()), 422, Some("body")),
        ("malformed JSON", "POST", "/reserve".into(), Some(r#"{"product_id": 1,"#.into()), 400, None),
        ("empty body", "POST", "/reserve".into(), Some(String::new()), 400, None),
        ("price not a number", "POST", "/products".into(), reserve(json!({"name": "X", "price": "abc", "stock": 1})), 422, Some("price")),
        ("price negative", "POST", "/products".into(), reserve(json!({"name": "X", "price": "-1", "stock": 1})), 422, Some("price")),
        ("price five decimals", "POST", "/products".into(), reserve(json!({"name": "X", "price": "1.23456", "stock": 1})), 422, Some("price")),
        ("price zero", "POST", "/products".into(), reserve(json!({"name": "X", "price": "0", "stock": 1})), 422, Some("price")),
        ("price zero as a number", "POST", "/products".into(), reserve(json!({"name": "X", "price": 0, "stock": 1})), 422, Some("price")),
        ("price below one cent", "POST", "/products".into(), reserve(json!({"name": "X", "price": "0.001", "stock": 1})), 422, Some("price")),
        ("price finer than a cent", "POST", "/products".into(), reserve(json!({"name": "X", "price": "1.005", "stock": 1})), 422, Some("price")),
        ("price four decimals", "POST", "/products".into(), reserve(json!({"name": "X", "price": "19.9999", "stock": 1})), 422, Some("price")),
        ("patch price zero", "PATCH", format!("/products/{cheap}"), reserve(json!({"price": "0.00"})), 422, Some("price")),
        ("patch price finer than a cent", "PATCH", format!("/products/{cheap}"), reserve(json!({"price": 0.995})), 422, Some("price")),
        ("price beyond DECIMAL(19,4)", "POST", "/products".into(), reserve(json!({"name": "X", "price": "1e20", "stock": 1})), 422, Some("price")),
        ("price boolean", "POST", "/products".into(), reserve(json!({"name": "X", "price": true, "stock": 1})), 422, Some("price")),
        ("stock negative", "POST", "/products".into(), reserve(json!({"name": "X", "price": "1", "stock": -1})), 422, Some("stock")),
        ("stock with a fraction", "POST", "/products".into(), reserve(json!({"name": "X", "price": "1", "stock": 2.5})), 422, Some("stock")),
        ("stock absurd", "POST", "/products".into(), reserve(json!({"name": "X", "price": "1", "stock": 10_000_000_000i64})), 422, Some("stock")),
        ("name empty", "POST", "/products".into(), reserve(json!({"name": "  ", "price": "1", "stock": 1})), 422, Some("name")),
        ("name too long", "POST", "/products".into(), reserve(json!({"name": "x".repeat(201), "price": "1", "stock": 1})), 422, Some("name")),
        ("missing name", "POST", "/products".into(), reserve(json!({"price": "1", "stock": 1})), 422, Some("name")),
        ("unknown product field", "POST", "/products".into(), reserve(json!({"name": "X", "price": "1", "stock": 1, "colour": "red"})), 422, Some("colour")),
        ("patch unknown product", "PATCH", "/products/999999".into(), reserve(json!({"name": "Y"})), 404, None),
        ("patch wrong type", "PATCH", format!("/products/{cheap}"), reserve(json!({"stock": "many"})), 422, Some("stock")),
        ("patch unknown field", "PATCH", format!("/products/{cheap}"), reserve(json!({"sku": "1"})), 422, Some("sku")),
        ("get unknown product", "GET", "/products/999999".into(), None, 404, None),
        ("path id not a number", "GET", "/products/abc".into(), None, 422, Some("id")),
        ("path id zero", "GET", "/products/0".into(), None, 422, Some("id")),
        ("path id negative", "DELETE", "/products/-4".into(), None, 422, Some("id")),
        ("path id beyond u64", "PATCH", "/products/99999999999999999999999".into(), reserve(json!({"name": "Y"})), 422, Some("id")),
        ("delete unknown product", "DELETE", "/products/999999".into(), None, 404, None),
        ("reservation id not a uuid", "GET", "/reservations/nope".into(), None, 404, None),
        ("unknown reservation", "GET", format!("/reservations/{}", uuid::Uuid::new_v4()), None, 404, None),
        ("unknown sort", "GET", "/findAll?sort=cheapest".into(), None, 422, Some("sort")),
        ("per_page zero", "GET", "/findAll?per_page=0".into(), None, 422, Some("per_page")),
        ("per_page huge", "GET", "/findAll?per_page=100000".into(), None, 422, Some("per_page")),
        ("page not a number", "GET", "/findAll?page=two".into(), None, 422, Some("page")),
        ("page past the window", "GET", "/findAll?page=1000&per_page=100".into(), None, 422, Some("page")),
        ("page past 100", "GET", "/findAll?page=101&per_page=1".into(), None, 422, Some("page")),
        ("min_price text", "GET", "/findAll?min_price=cheap".into(), None, 422, Some("min_price")),
        ("in_stock text", "GET", "/findAll?in_stock=maybe".into(), None, 422, Some("in_stock")),
        ("q too long", "GET", format!("/findAll?q={}", "a".repeat(201)), None, 422, Some("q")),
        ("unknown parameter", "GET", "/findAll?colour=red".into(), None, 422, Some("colour")),
        ("duplicate parameter", "GET", "/findAll?page=1&page=2".into(), None, 422, Some("page")),
    ];
    for (what, method, path, body, status, field) in &cases {
        let a = send(&app, method, path, body.as_deref()).await;
        assert_problem(what, &a, *status, *field);
    }

    // An empty patch changes nothing and answers the product; an integer may come as `5.0` (JSON
    // Schema's `integer` allows it, so a client following the document may send it).
    let a = send(&app, "PATCH", &format!("/products/{cheap}"), Some("{}")).await;
    assert_eq!((a.status, a.body["id"].as_u64()), (200, Some(cheap)), "{}", a.body);
    let a = send(&app, "PATCH", &format!("/products/{cheap}"), Some(r#"{"stock": 7.0}"#)).await;
    assert_eq!((a.status, a.body["stock"].as_i64()), (200, Some(7)), "{}", a.body);

    // The price rule is the currency's (USD by default): the answer says which rule and the limit.
    let a = send(&app, "POST", "/products", Some(&json!({"name": "Free", "price": "0", "stock": 1}).to_string())).await;
    assert!(a.body["detail"].as_str().is_some_and(|d| d.contains("at least 0.01 USD")), "{}", a.body);
    let a = send(&app, "POST", "/products", Some(&json!({"name": "Fine", "price": "1.005", "stock": 1}).to_string())).await;
    assert!(a.body["detail"].as_str().is_some_and(|d| d.contains("at most 2 decimal places")), "{}", a.body);
    // Trailing zeros are not extra precision, and one cent is a price.
    for price in ["0.01", "12.3400"] {
        let a = send(&app, "POST", "/products", Some(&json!({"name": "Ok", "price": price, "stock": 1}).to_string())).await;
        assert_eq!(a.status, 201, "price {price}: {}", a.body);
    }

    // Odd but valid input is served, never a 5xx.
    for path in ["/findAll?q=%22%3A%5B*", "/findAll?max_price=99999999999999999999999", "/findAll?q=caf%C3%A9&category=%F0%9F%98%80"] {
        let a = send(&app, "GET", path, None).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
    }
    let a = send(&app, "POST", "/reserve", Some(&json!({"product_id": cheap, "user_id": "u", "quantity": 5}).to_string())).await;
    assert_eq!(a.status, 201, "{}", a.body);
    // A product with a held reservation cannot be deleted (409), and nothing above touched its stock.
    let a = send(&app, "DELETE", &format!("/products/{cheap}"), None).await;
    assert_problem("delete with held reservations", &a, 409, None);
    app.cleanup().await;
    Ok(())
}
