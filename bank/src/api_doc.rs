//! The bank's OpenAPI document: utoipa's, with the request bodies stated as exactly as the handlers
//! check them — `oneOf` per account type and per transfer shape, `const`/`enum` for the kinds and
//! the banks this one knows, patterns for amounts and account numbers — which utoipa's derive
//! cannot hold. Built per request: the directory of banks can change while the bank runs.
//!
//! What no schema can say is left to the answer: a CPF/CNPJ/account number's check digit (named by
//! a `format`), the caller being a holder (403), balances and limits (422 with a stable code).

use rust_decimal::Decimal;
use sagaway_common::http::document_json;
use sagaway_contract::money;
use serde_json::{Value, json};
use utoipa::OpenApi;

/// The document `/openapi.json` serves: `banks` are the codes a transfer may name (this bank's
/// and its directory's), `max_amount` the largest amount one operation or transfer moves.
pub fn document(banks: &[String], max_amount: Decimal) -> Value {
    let mut doc = document_json(crate::ApiDoc::openapi());
    let amount = money::amount_schema(max_amount, "10.00");
    let schemas = &mut doc["components"]["schemas"];
    schemas["NewAccount"] = new_account();
    schemas["NewOperation"] = json!({
        "type": "object", "additionalProperties": false, "required": ["type", "amount"],
        "properties": {"type": {"type": "string", "enum": ["deposit", "withdrawal"]}, "amount": amount},
    });
    schemas["NewTransfer"] = new_transfer(banks, &amount);
    for param in doc["paths"]["/accounts/lookup"]["get"]["parameters"].as_array_mut().into_iter().flatten() {
        if param["name"] == "number" {
            param["schema"] = account_number();
        }
    }
    doc
}

/// `12345678-9`: 8 digits, an optional dash, a mod-11 check digit (the `format` names the rule).
fn account_number() -> Value {
    json!({"type": "string", "format": "account-number", "pattern": "^[0-9]{8}-?[0-9]$", "example": "12345678-9"})
}

fn user_id() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_.@:-]{1,64}$"})
}

/// One branch per account type: individual (a CPF), business (a CNPJ), joint (the caller and 1–7
/// invitees).
fn new_account() -> Value {
    let currency = json!({"type": "string", "enum": money::currency_codes(), "description": "ISO 4217 code"});
    let one_holder = json!({"type": ["array", "null"], "minItems": 1, "maxItems": 1, "items": user_id(),
        "description": "optional: the caller (opening an account for someone else is 403 not_a_holder)"});
    let single = |kind: &str, document: &str| {
        json!({
            "type": "object", "additionalProperties": false, "required": ["type", "currency", "document"],
            "properties": {
                "type": {"type": "string", "const": kind}, "currency": currency,
                "document": {"type": "string", "format": document, "maxLength": 32,
                             "description": format!("the holder's {} (check digits; punctuation . - / allowed)", document.to_uppercase())},
                "holders": one_holder,
            },
        })
    };
    let joint = json!({
        "type": "object", "additionalProperties": false, "required": ["type", "currency", "holders"],
        "properties": {
            "type": {"type": "string", "const": "joint"}, "currency": currency,
            "holders": {"type": "array", "minItems": 2, "maxItems": 8, "uniqueItems": true, "items": user_id(),
                        "description": "the caller (else 403 not_a_holder) and the users invited to hold it with them: the caller holds it at once, \
                                        each other user gets an invitation (GET /me/invitations) and becomes a holder only by accepting it"},
            "document": {"type": ["string", "null"], "format": "cpf", "maxLength": 32},
        },
    });
    json!({"oneOf": [single("individual", "cpf"), single("business", "cnpj"), joint]})
}

/// From one account here (`from_account` + `amount`), or from several anywhere (`sources`).
fn new_transfer(banks: &[String], amount: &Value) -> Value {
    // No examples here: a transfer is valid only to an account that exists, and schemathesis's
    // examples phase would send the examples as a request that must be accepted.
    let mut amount = amount.clone();
    amount.as_object_mut().expect("object").remove("example");
    let mut recipient = account_number();
    recipient.as_object_mut().expect("object").remove("example");
    let amount = &amount;
    let bank = json!({"type": "string", "enum": banks, "description": "a bank code: this bank or one in its directory"});
    let account_id = json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,36}$", "description": "an account id (the one the bank issued)"});
    let destination = json!({
        "type": "object", "additionalProperties": false, "required": ["bank", "account_number"],
        "properties": {"bank": bank, "account_number": recipient},
    });
    let source = json!({
        "type": "object", "additionalProperties": false, "required": ["bank", "account_id", "amount"],
        "properties": {"bank": bank, "account_id": account_id, "amount": amount},
    });
    let common = |extra: Value| {
        let mut properties = json!({
            "kind": {"type": "string", "enum": ["instant", "business_hours"]},
            "to": destination,
            // `char::is_control`: the C0 and C1 controls and DEL.
            "description": {"type": ["string", "null"], "maxLength": 140, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"},
        });
        properties.as_object_mut().expect("object").extend(extra.as_object().expect("object").clone());
        properties
    };
    let none = json!({"type": "null"});
    json!({"oneOf": [
        {
            "type": "object", "additionalProperties": false, "required": ["kind", "from_account", "amount", "to"],
            "properties": common(json!({"from_account": account_id, "amount": amount, "sources": none})),
        },
        {
            "type": "object", "additionalProperties": false, "required": ["kind", "sources", "to"],
            "properties": common(json!({
                "sources": {"type": "array", "minItems": 1, "maxItems": 15, "items": source,
                            "description": "the paying accounts (each once), all debited or none; the amount is their sum"},
                "from_account": none, "amount": none,
            })),
        },
    ]})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_stated_exactly() {
        let doc = document(&["001".into(), "002".into()], Decimal::new(100_000, 2));
        let s = &doc["components"]["schemas"];
        assert_eq!(s["NewAccount"]["oneOf"].as_array().unwrap().len(), 3);
        assert_eq!(s["NewOperation"]["properties"]["type"]["enum"], json!(["deposit", "withdrawal"]));
        assert_eq!(s["NewTransfer"]["oneOf"][0]["properties"]["to"]["properties"]["bank"]["enum"], json!(["001", "002"]));
        let lookup = &doc["paths"]["/accounts/lookup"]["get"]["parameters"];
        assert!(lookup.as_array().unwrap().iter().any(|p| p["schema"]["format"] == "account-number"));
        assert_eq!(s["NewTransfer"]["oneOf"][1]["properties"]["sources"]["maxItems"], 15);
    }

    #[test]
    fn invitations_and_the_holder_route_are_documented() {
        let doc = document(&["001".into()], Decimal::new(100_000, 2));
        let p = &doc["paths"];
        assert!(p["/me/invitations"]["get"].is_object());
        for verb in ["accept", "decline"] {
            let op = &p[format!("/accounts/{{id}}/invitations/{{user}}/{verb}")]["post"];
            for status in ["200", "403", "404", "409"] {
                assert!(op["responses"][status].is_object(), "{verb} {status}");
            }
        }
        assert!(p["/accounts/{id}/invitations/{user}"]["delete"]["responses"]["409"].is_object());
        // Other banks ask for a holder's accounts with the banks' signature, not a bearer token.
        let holder = &p["/interbank/accounts"]["get"];
        assert_eq!(holder["security"], json!([{"interbank": []}]));
        assert!(holder["responses"]["401"].is_object());
    }
}
