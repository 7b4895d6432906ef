//! Consolidated balances ask the other banks over the banks' own signed channel, on the customer's
//! behalf: a peer gets the bank's signature and the user id it vouches for, never the customer's
//! token, and its holder route takes nothing but a valid bank signature.

use std::sync::{Arc, Mutex};

use axum::{Json, Router, http::HeaderMap};
use bank::rules::interbank_auth::{BankKeyPair, Credentials, Directory, DirectoryEntry, Request, SkewWindow, new_nonce, verify};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Options, spawn_network, spawn_with};

fn unix_now() -> i64 {
    bank::interbank::auth::unix_now()
}

/// What a bank that records every request it gets saw: (method, path and query, headers).
type Seen = Arc<Mutex<Vec<(String, String, HeaderMap)>>>;

/// A peer bank that records each request and answers every one with one BRL account of 20.50.
async fn recording_peer(code: &str) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let code = code.to_string();
    let app = Router::new().fallback(move |method: axum::http::Method, uri: axum::http::Uri, headers: HeaderMap| {
        let (record, code) = (record.clone(), code.clone());
        async move {
            record.lock().unwrap().push((method.to_string(), uri.path_and_query().map(|p| p.to_string()).unwrap_or_default(), headers));
            Json(json!([{"bank": code, "id": "peer-account", "number": "11111111-1", "currency": "BRL", "available": "20.50", "held": "0.00"}]))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// Every request `/me/balances` sends a peer is signed by the asking bank and names the caller, and
/// none carries the caller's token (or any bearer token): the peer, even a hostile one, has nothing
/// to replay as the customer. The totals still add the peer's accounts.
#[tokio::test]
async fn consolidated_balances_never_hand_the_customers_token_to_a_peer() {
    let home = spawn_with(Options { code: "001".into(), ..Options::default() }).await;
    let (peer_url, seen) = recording_peer("002").await;
    let peer_key = BankKeyPair::generate("002");
    let directory = Directory::new([
        DirectoryEntry { code: "001".into(), url: home.base_url.clone(), public_key: home.config.interbank.key.public_key() },
        DirectoryEntry { code: "002".into(), url: peer_url, public_key: peer_key.public_key() },
    ]);
    home.peers.as_ref().unwrap().set_directory(directory.clone());
    let account = home.open("gabi").await;
    home.fund("gabi", account["id"].as_str().unwrap(), "10.00").await;

    for user in ["gabi", "admin"] {
        let (s, body) = home.get(user, "/me/balances").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        if user == "gabi" {
            assert_eq!(body["partial"], false, "{body}");
            assert_eq!(body["totals"], json!([{"currency": "BRL", "available": "30.50", "held": "0.00"}]), "{body}");
        }
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "one request per /me/balances: {seen:?}");
    for ((method, path, headers), user) in seen.iter().zip(["gabi", "ops"]) {
        assert!(headers.get("authorization").is_none(), "the peer got an Authorization header: {path} {headers:?}");
        for (name, value) in headers {
            let value = value.to_str().unwrap_or_default();
            assert!(!value.to_ascii_lowercase().contains("bearer") && !value.contains("eyJ"), "a token in {name}: {value}");
        }
        // Signed by bank 001, over the path that names the user it vouches for.
        let credentials = Credentials::from_headers(|name| headers.get(name).and_then(|v| v.to_str().ok())).expect("signed");
        let request = Request { method, path, body: b"" };
        let verified = verify(&request, &credentials, &directory, unix_now(), SkewWindow::default()).expect("the signature verifies");
        assert_eq!(verified.bank, "001");
        assert_eq!(path, &format!("/interbank/accounts?holder={user}"));
    }
    home.stop().await;
}

/// An answer, and the signature headers the request carried.
type Sent = (StatusCode, Value, Vec<(&'static str, String)>);

/// Sends `GET path` to `base`, signed by `key` (unless `None`) and with extra `headers`.
async fn send(base: &str, path: &str, key: Option<&BankKeyPair>, headers: &[(&str, String)]) -> Sent {
    let mut req = reqwest::Client::new().get(format!("{base}{path}"));
    let mut signed = Vec::new();
    if let Some(key) = key {
        signed = key.sign(&Request { method: "GET", path, body: b"" }, unix_now(), &new_nonce()).unwrap().headers().to_vec();
        for (name, value) in &signed {
            req = req.header(*name, value);
        }
    }
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null), signed)
}

/// The holder route answers a bank of the directory (its signature covers the user named), and
/// refuses everything else with 401: a customer's token (even an admin's), no signature, a forged or
/// unknown one, a signature for another user, a replay. Balances across real banks still add up,
/// and hold only what the user holds (not an account they are merely invited to).
#[tokio::test]
async fn the_holder_route_takes_only_a_bank_signature_and_balances_add_up_across_banks() {
    let banks = spawn_network(&["001", "002", "003"]).await;
    for (bank, amount) in banks.iter().zip(["10.00", "20.50", "0.01"]) {
        let account = bank.open("gabi").await;
        bank.fund("gabi", account["id"].as_str().unwrap(), amount).await;
    }
    // At 002, gabi is only invited to hizo's joint account: not hers, in no bank's answer.
    let joint = banks[1].open_with("hizo", json!({"type": "joint", "currency": "BRL", "holders": ["hizo", "gabi"]})).await;
    banks[1].fund("hizo", joint["id"].as_str().unwrap(), "1000.00").await;

    for b in &banks {
        let (s, body) = b.get("gabi", "/me/balances").await;
        assert_eq!(s, StatusCode::OK, "{body}");
        assert_eq!((body["partial"].clone(), body["accounts"].as_array().unwrap().len()), (json!(false), 3), "{body}");
        assert_eq!(body["totals"], json!([{"currency": "BRL", "available": "30.51", "held": "0.00"}]), "{body}");
    }

    let (peer, asker) = (&banks[1], &banks[0].config.interbank.key);
    let path = "/interbank/accounts?holder=gabi";
    let (s, accounts, signed) = send(&peer.base_url, path, Some(asker), &[]).await;
    assert_eq!(s, StatusCode::OK, "{accounts}");
    assert_eq!(accounts.as_array().unwrap().len(), 1, "{accounts}");
    assert_eq!(accounts[0]["available"], "20.50");

    let bearer = |user: &str| ("authorization", format!("Bearer {}", peer.issuer.token(user)));
    let admin = ("authorization", format!("Bearer {}", peer.issuer.admin_token("ops")));
    let forger = BankKeyPair::generate("001");
    let stranger = BankKeyPair::generate("009");
    let refused: Vec<(&str, Sent)> = vec![
        ("the customer's own token", send(&peer.base_url, path, None, &[bearer("gabi")]).await),
        ("an admin's token", send(&peer.base_url, path, None, &[admin]).await),
        ("nothing", send(&peer.base_url, path, None, &[]).await),
        ("a key that is not 001's", send(&peer.base_url, path, Some(&forger), &[bearer("gabi")]).await),
        ("a bank not in the directory", send(&peer.base_url, path, Some(&stranger), &[]).await),
    ];
    for (what, (s, body, _)) in &refused {
        assert_eq!(*s, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert!(body["code"].is_string(), "{what}: {body}");
    }
    let codes: Vec<&str> = refused.iter().map(|(_, (_, b, _))| b["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["unsigned", "unsigned", "unsigned", "bad_signature", "unknown_bank"]);

    // 001's signature for gabi does not ask for anyone else, and is good once.
    let mut req = reqwest::Client::new().get(format!("{}/interbank/accounts?holder=hizo", peer.base_url));
    for (name, value) in &signed {
        req = req.header(*name, value);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "a signature for gabi used for hizo");
    assert_eq!(res.json::<Value>().await.unwrap()["code"], "bad_signature");
    let mut req = reqwest::Client::new().get(format!("{}{path}", peer.base_url));
    for (name, value) in &signed {
        req = req.header(*name, value);
    }
    let res = req.send().await.unwrap();
    assert_eq!((res.status(), res.json::<Value>().await.unwrap()["code"].clone()), (StatusCode::UNAUTHORIZED, json!("replayed")));

    // Signed but not a user id: 400.
    for bad in ["/interbank/accounts", "/interbank/accounts?holder=", "/interbank/accounts?holder=a%20b", "/interbank/accounts?holder=gabi&x=1"] {
        let (s, body, _) = send(&peer.base_url, bad, Some(asker), &[]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    // Not through the edge either: a customer token on the bank's own port gets 401 above, and the
    // gateway never routes /interbank/*.
    for b in banks {
        b.stop().await;
    }
}
