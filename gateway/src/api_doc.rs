//! The gateway's OpenAPI document: the routes the gateway answers itself — the live push (SSE and
//! WebSocket), the bank list, health and metrics. Everything else under `/api/` is forwarded to a
//! service ([`crate::routes`]) and described by that service's own document (`/openapi.json` on its
//! port; the table is in the description below). Written as JSON: the gateway has no other use for
//! utoipa, and most of these answers are streams, which utoipa's derive does not describe.

use serde_json::{Value, json};

/// The document `/openapi.json` serves; `banks` are the codes behind `/api/banks/{code}/…`.
pub fn document(banks: &[String]) -> Value {
    let problem = |what: &str| json!({"description": what, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let unauthorized = problem("no bearer token, or a bad or expired one");
    // One Server-Sent Event (schemathesis checks each against this).
    let event = json!({
        "type": "object", "required": ["event", "data"],
        "properties": {
            "event": {"type": "string", "enum": ["snapshot", "order", "bank", "resync", "auth_expired"],
                      "description": "`snapshot` first (the current state), then `order` and `bank` changes; `resync` when the position asked for is gone (reload, then resume from the next snapshot); `auth_expired` last, when the token the stream was opened with expires (reconnect with a fresh one, this event's id as Last-Event-ID)"},
            "data": {"type": "string", "contentMediaType": "application/json", "description": "a JSON object"},
            "id": {"type": "string", "description": "the position after this event: send it back as Last-Event-ID to resume"},
        },
    });
    let stream = |what: &str| json!({"description": what, "content": {"text/event-stream": {"schema": event}}});
    let last_event_id = json!({"name": "Last-Event-ID", "in": "header", "required": false,
        "description": "resume after this event (the `id` of the last one received); an unknown one starts over with `resync`",
        "schema": {"type": "string"}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Sagaway gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The edge: the web app at `/`, the platform's API under `/api/` and live events. \
                `/api/auth/*` → identity, `/api/findAll`, `/api/products*`, `/api/reserve`, `/api/reservations/*` → product, \
                `/api/payment`, `/api/orders*`, `/api/admin/dlq*` → orchestrator, `/api/admin/outage`, `/api/ledger/summary` → payment, \
                `/api/banks/{code}/…` → that bank (not its `/interbank/…` routes). Each service documents those routes \
                in its own `/openapi.json`; the gateway checks the token (and the admin role for `/api/admin/*`) first, \
                and answers 404 for any other path.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "Problem": {
                    "type": "object", "required": ["type", "title", "status", "code"],
                    "description": "RFC 9457 problem details, with a stable `code` and the `field` at fault when there is one.",
                    "properties": {"type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                                   "code": {"type": "string"}, "detail": {"type": "string"}, "field": {"type": "string"}},
                },
            },
        },
        "paths": {
            "/api/events": {"get": {
                "tags": ["push"], "summary": "The caller's order and bank events (Server-Sent Events)",
                "security": [{"bearer": []}], "parameters": [last_event_id],
                "responses": {"200": stream("the stream; a comment line when idle"), "401": unauthorized,
                              "429": problem("too many open streams for this user, or too many resumes (Retry-After)"), "502": problem("the orchestrator did not answer for the snapshot"), "503": problem("the event feed is not ready")},
            }},
            "/api/orders/{id}/events": {"get": {
                "tags": ["push"], "summary": "One order's events (Server-Sent Events)",
                "security": [{"bearer": []}],
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "pattern": "^[A-Za-z0-9-]{1,64}$"}}, last_event_id],
                "responses": {"200": stream("the stream; a comment line when idle"), "400": problem("an encoded `/` or `\\` in the path (invalid_path)"), "401": unauthorized,
                              "404": problem("not an order id"), "429": problem("too many open streams for this user"),
                              "502": problem("the orchestrator did not answer for the snapshot"), "503": problem("the event feed is not ready")},
            }},
            "/api/ws/ticket": {"post": {
                "tags": ["push"], "summary": "A single-use ticket (30 s) for one WebSocket handshake",
                "security": [{"bearer": []}],
                "responses": {
                    "201": {"description": "the ticket", "content": {"application/json": {"schema": {"type": "object", "required": ["ticket", "expires_in"],
                        "properties": {"ticket": {"type": "string"}, "expires_in": {"type": "integer"}}}}}},
                    "401": unauthorized, "429": problem("this user holds too many unused tickets, or asked too often (Retry-After)"), "503": problem("too many tickets waiting"),
                },
            }},
            "/api/ws": {"get": {
                "tags": ["push"], "summary": "The caller's events over a WebSocket (one JSON text frame each)",
                "description": "A WebSocket handshake; the ticket in the query authenticates it (a browser cannot send a header).",
                "parameters": [
                    {"name": "ticket", "in": "query", "required": false, "schema": {"type": "string"}},
                    {"name": "last_event_id", "in": "query", "required": false, "schema": {"type": "string"}},
                ],
                "responses": {"101": {"description": "switching to the WebSocket"},
                              "400": problem("the query string is malformed"),
                              "401": problem("no ticket, or a used or expired one"),
                              "426": problem("not a WebSocket handshake"),
                              "429": problem("too many open streams for this user"),
                              "502": problem("the orchestrator did not answer for the snapshot"), "503": problem("the event feed is not ready")},
            }},
            "/api/banks": {"get": {
                "tags": ["banks"], "summary": "The banks behind this gateway (`/api/banks/{code}/…`) and the catalogue's currency",
                "responses": {"200": {"description": "their codes, and the currency of every catalogue price", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["banks", "currency"],
                    "properties": {"banks": {"type": "array", "items": {"type": "string", "enum": banks}},
                                   "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}}}}}}},
            }},
            "/health/live": {"get": {"tags": ["health"], "responses": {"200": {"description": "the process answers",
                "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/health/ready": {"get": {"tags": ["health"], "responses": {
                "200": {"description": "ready: the event feed has its starting positions", "content": {"application/json": {"schema": {"type": "object"}}}},
                "503": {"description": "not ready", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/metrics": {"get": {"tags": ["health"], "summary": "The gateway's Prometheus metrics: an admin's token or the scrape token",
                "security": [{"bearer": []}],
                "responses": {"200": {"description": "Prometheus text", "content": {"text/plain": {"schema": {"type": "string"}}}},
                              "401": unauthorized, "403": problem("a token without the admin role (and not the scrape token)")}}},
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_gateways_own_routes_are_documented() {
        let doc = super::document(&["001".into()]);
        for path in ["/api/events", "/api/orders/{id}/events", "/api/ws/ticket", "/api/ws", "/api/banks", "/health/ready"] {
            assert!(doc["paths"][path].is_object(), "{path}");
        }
        assert_eq!(doc["paths"]["/api/banks"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["banks"]["items"]["enum"][0], "001");
    }
}
