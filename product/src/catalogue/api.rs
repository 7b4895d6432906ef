//! The catalogue's HTTP handlers: parse the request, call [`super`], shape the answer.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use sagaway_common::http::ApiJson;

use super::{NewProduct, Product, ProductPatch, SeedResult, parse_product_id};
use crate::{AppState, error::ApiResult};

/// The `{id}` of the product routes: a positive integer (anything else is 422 naming `id`).
#[derive(utoipa::IntoParams)]
#[into_params(names("id"), parameter_in = Path)]
#[allow(dead_code)]
struct ID(#[param(minimum = 1)] u64);

/// Create a product.
#[utoipa::path(post, path = "/products", request_body = NewProduct, tag = "catalogue",
    responses((status = 201, body = Product), (status = 422, description = "invalid field (problem+json names it)")))]
pub async fn create(State(app): State<AppState>, ApiJson(body): ApiJson<NewProduct>) -> ApiResult<(StatusCode, Json<Product>)> {
    Ok((StatusCode::CREATED, Json(super::insert(&app.pool, app.config.currency, &body).await?)))
}

/// Read a product from the database (authoritative, not the search index).
#[utoipa::path(get, path = "/products/{id}", tag = "catalogue", params(ID),
    responses((status = 200, body = Product), (status = 404, description = "no such product"), (status = 422, description = "not a product id")))]
pub async fn get(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Product>> {
    let id = parse_product_id(&id)?;
    Ok(Json(super::load(&app.pool, id).await?))
}

/// Change some fields of a product (none given: the product unchanged).
#[utoipa::path(patch, path = "/products/{id}", request_body = ProductPatch, tag = "catalogue", params(ID),
    responses((status = 200, body = Product), (status = 404, description = "no such product"), (status = 422, description = "invalid field")))]
pub async fn patch(
    State(app): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProductPatch>,
) -> ApiResult<Json<Product>> {
    let id = parse_product_id(&id)?;
    Ok(Json(super::update(&app.pool, app.config.currency, id, &body).await?))
}

/// Delete a product. Refused (409) while any reservation of it is still HELD.
#[utoipa::path(delete, path = "/products/{id}", tag = "catalogue", params(ID),
    responses((status = 204), (status = 404, description = "no such product"), (status = 409, description = "reservations still held"),
              (status = 422, description = "not a product id")))]
pub async fn delete(State(app): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let id = parse_product_id(&id)?;
    super::remove(&app.pool, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Seed the demo catalogue. Idempotent: each demo product has a seed key, so calling it again creates nothing.
#[utoipa::path(post, path = "/", tag = "catalogue", responses((status = 201, body = SeedResult)))]
pub async fn seed(State(app): State<AppState>) -> ApiResult<(StatusCode, Json<SeedResult>)> {
    Ok((StatusCode::CREATED, Json(super::seed_demo(&app.pool, app.config.currency).await?)))
}
