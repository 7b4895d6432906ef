//! The gateway in front of the in-process system: routing and the edge's token check, and live
//! order status over Server-Sent Events — once each and in order, only to its user, on any replica,
//! and resumed exactly with `Last-Event-ID` after the gateway process is SIGKILLed and restarted.
//! Paths spelled to mislead (escaped dot-segments, separators) reach no service's `/metrics`; a
//! stream ends when its token expires; one user cannot exhaust the push edge.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::Context;
use e2e::system::{System, SystemOptions, payment_body, settled, statuses};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const WITHIN: Duration = Duration::from_secs(30);

/// A gateway over `sys`, on `port` (0: any); returns its URL and its stop token.
async fn spawn_gateway(sys: &System, port: u16) -> anyhow::Result<(String, CancellationToken)> {
    spawn_gateway_with(sys, port, |_| {}).await
}

/// [`spawn_gateway`] with its settings changed by `tweak` first.
async fn spawn_gateway_with(sys: &System, port: u16, tweak: impl FnOnce(&mut gateway::Config)) -> anyhow::Result<(String, CancellationToken)> {
    let mut banks = BTreeMap::new();
    if !sys.bank_url.is_empty() {
        banks.insert("001".to_string(), sys.bank_url.clone());
    }
    let upstreams = gateway::config::Upstreams {
        identity: "http://127.0.0.1:9".into(),
        product: sys.product_url.clone(),
        orchestrator: sys.orchestrator_url.clone(),
        payment: sys.payment_url.clone(),
        banks: banks.clone(),
    };
    let mut config = gateway_config(port, sys.issuer.auth_config(), upstreams, gateway::config::default_event_topics(&sys.prefix, banks.keys()));
    tweak(&mut config);
    let app = gateway::Application::build(config).await?;
    let url = format!("http://127.0.0.1:{}", app.port());
    let stop = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    let started = Instant::now();
    while !sys.http.get(format!("{url}/health/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
        anyhow::ensure!(started.elapsed() < WITHIN, "the gateway did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((url, stop))
}

/// The gateway's settings in these tests: on 127.0.0.1:`port`, over `upstreams`.
fn gateway_config(port: u16, auth: sagaway_common::auth::AuthConfig, upstreams: gateway::config::Upstreams, event_topics: Vec<String>) -> gateway::Config {
    gateway::Config {
        host: "127.0.0.1".into(),
        port,
        auth,
        upstreams,
        kafka_brokers: e2e::StackAddr::from_env().brokers(),
        event_topics,
        request_timeout: Duration::from_secs(10),
        max_streams_per_user: 3,
        stream_buffer: 64,
        heartbeat: Duration::from_secs(1),
        metrics_token: None,
        limits: gateway::config::Limits::default(),
        catalogue_currency: "USD".into(),
    }
}

/// One Server-Sent Events stream, read by hand (no client library: the format is four lines).
struct Stream {
    res: reqwest::Response,
    buf: String,
}

#[derive(Debug, Clone)]
struct Sse {
    event: String,
    id: String,
    data: Value,
}

impl Stream {
    async fn open(http: &reqwest::Client, url: &str, token: &str, last_event_id: Option<&str>) -> anyhow::Result<Self> {
        let mut req = http.get(url).bearer_auth(token).header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let res = req.send().await?;
        anyhow::ensure!(res.status() == StatusCode::OK, "stream {url}: {}", res.status());
        Ok(Self { res, buf: String::new() })
    }

    /// The next event within `within` (heartbeat comments skipped); `None` on timeout or end.
    async fn next(&mut self, within: Duration) -> anyhow::Result<Option<Sse>> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut event, mut id, mut data) = ("message".to_string(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        id = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a comment (heartbeat)
                }
                return Ok(Some(Sse { event, id, data: serde_json::from_str(&data)? }));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.res.chunk()).await {
                Err(_) => return Ok(None),
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) => return Ok(None),
            }
        }
    }

    /// Reads `order`'s status events until `last` (or the deadline); returns them with their ids and times.
    async fn statuses_until(&mut self, order: &str, last: &[&str]) -> anyhow::Result<Vec<(String, String, String)>> {
        let deadline = Instant::now() + WITHIN;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            let Some(e) = self.next(deadline.saturating_duration_since(Instant::now())).await? else { break };
            if e.event == "order" && e.data["order_id"] == order {
                let status = e.data["status"].as_str().unwrap_or_default().to_string();
                seen.push((status.clone(), e.id, e.data["at"].as_str().unwrap_or_default().to_string()));
                if last.contains(&status.as_str()) {
                    break;
                }
            }
        }
        Ok(seen)
    }
}

/// Reserves one unit through the gateway and pays with `card`; returns the order id.
async fn buy(sys: &System, gw: &str, user: &str, product: u64, card: &str) -> anyhow::Result<String> {
    let token = sys.token(user);
    let r: Value = sys.http.post(format!("{gw}/api/reserve")).bearer_auth(&token).json(&json!({"product_id": product, "quantity": 1})).send().await?.json().await?;
    let rid = r["id"].as_str().ok_or_else(|| anyhow::anyhow!("reserve: {r}"))?;
    let res = sys.http.post(format!("{gw}/api/payment")).bearer_auth(&token).json(&payment_body(rid, user, card)).send().await?;
    anyhow::ensure!(res.status() == StatusCode::ACCEPTED, "payment: {}", res.status());
    Ok(res.json::<Value>().await?["order_id"].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_routes_every_service_and_checks_tokens_at_the_edge() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions { bank: true, ..Default::default() }).await?;
    // A second bank that is away: its routes answer 502, and streams open without it.
    let (gw, stop) = spawn_gateway_with(&sys, 0, |c| {
        c.upstreams.banks.insert("002".into(), "http://127.0.0.1:9".into());
        c.request_timeout = Duration::from_secs(3);
    })
    .await?;
    let product = sys.create_product("9.99", 5).await?;
    let (customer, admin) = (sys.token("gabi"), sys.admin_token("ops"));
    let get = |path: &str, token: Option<&str>| {
        let mut req = sys.http.get(format!("{gw}{path}"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };

    assert_eq!(get("/api/findAll?q=item", None).await?.status(), StatusCode::OK, "search is public");
    assert_eq!(get(&format!("/api/products/{product}"), None).await?.status(), StatusCode::OK);
    let refused = get("/api/orders", None).await?;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get("www-authenticate").is_some());
    assert!(refused.headers().get("x-request-id").is_some(), "every answer names its request");
    let bad = get("/api/orders", Some("not-a-token")).await?;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get("/api/orders", Some(&customer)).await?.status(), StatusCode::OK);
    let traced = sys.http.get(format!("{gw}/api/orders")).bearer_auth(&customer).header("x-request-id", "trace-me-42").send().await?;
    assert_eq!(traced.headers()["x-request-id"], "trace-me-42");
    assert_eq!(get("/api/admin/dlq", Some(&customer)).await?.status(), StatusCode::FORBIDDEN, "the edge refuses customers on admin routes");
    assert_eq!(get("/api/admin/dlq", Some(&admin)).await?.status(), StatusCode::OK);

    let opened = sys
        .http
        .post(format!("{gw}/api/banks/001/accounts"))
        .bearer_auth(&customer)
        .json(&json!({"type": "individual", "currency": "BRL", "document": "529.982.247-25"}))
        .send()
        .await?;
    assert_eq!(opened.status(), StatusCode::CREATED, "a bank behind the gateway, body streamed through");
    let account: Value = opened.json().await?;
    assert_eq!(get("/api/banks/002/accounts", Some(&customer)).await?.status(), StatusCode::BAD_GATEWAY, "a bank that is away");
    // A new stream's snapshot: the caller's accounts at every bank that answered, and which did not.
    let mut stream = Stream::open(&sys.http, &format!("{gw}/api/events"), &customer, None).await?;
    let snapshot = stream.next(WITHIN).await?.expect("a snapshot");
    assert_eq!(snapshot.event, "snapshot");
    let accounts = snapshot.data["accounts"].as_array().expect("accounts in the snapshot");
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!((&accounts[0]["id"], accounts[0]["bank"].as_str()), (&account["id"], Some("001")));
    assert_eq!(snapshot.data["unavailable_banks"], json!(["002"]));
    drop(stream);
    assert_eq!(get("/api/banks/009/accounts", Some(&customer)).await?.status(), StatusCode::NOT_FOUND);
    let interbank = sys.http.post(format!("{gw}/api/banks/001/interbank/tx/x/commit")).json(&json!({"leg": 0})).send().await?;
    assert_eq!(interbank.status(), StatusCode::NOT_FOUND, "bank-to-bank routes are not exposed");
    let nothing = get("/api/nothing", Some(&customer)).await?;
    assert_eq!(nothing.status(), StatusCode::NOT_FOUND);
    assert_eq!(nothing.headers()["content-type"], "application/problem+json");
    let no_stream = get("/api/events", None).await?;
    assert_eq!(no_stream.status(), StatusCode::UNAUTHORIZED, "streams need a token too");

    stop.cancel();
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_orders_statuses_arrive_once_in_order_and_only_to_its_user() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    let (gw, stop) = spawn_gateway(&sys, 0).await?;
    let product = sys.create_product("4.50", 5).await?;
    let mut ana = Stream::open(&sys.http, &format!("{gw}/api/events"), &sys.token("ana-push"), None).await?;
    let mut bia = Stream::open(&sys.http, &format!("{gw}/api/events"), &sys.token("bia-push"), None).await?;
    let first = ana.next(WITHIN).await?.expect("a snapshot first");
    assert_eq!(first.event, "snapshot");
    assert_eq!(first.data["orders"], json!([]));
    assert_eq!(bia.next(WITHIN).await?.expect("a snapshot").event, "snapshot");

    let order = buy(&sys, &gw, "ana-push", product, "4242424242424242").await?;
    let pushed = ana.statuses_until(&order, &["COMPLETED"]).await?;
    let final_order = sys.wait_order(&order, WITHIN, settled).await?;
    // Each event carries the time of its history entry: a client merges the two by (status, at).
    let history: Vec<(String, String)> = final_order["history"].as_array().unwrap().iter().map(|h| (h["status"].as_str().unwrap().to_string(), h["at"].as_str().unwrap().to_string())).collect();
    let times: Vec<(String, String)> = pushed.iter().map(|(s, _, at)| (s.clone(), at.clone())).collect();
    assert_eq!(times, history, "the events' times are the history's");
    let pushed: Vec<String> = pushed.into_iter().map(|(s, ..)| s).collect();
    assert_eq!(pushed, statuses(&final_order), "every status once, in order");
    assert_eq!(pushed.last().map(String::as_str), Some("COMPLETED"));

    // One order's stream: a snapshot of it, and nobody else may open it.
    let mut one = Stream::open(&sys.http, &format!("{gw}/api/orders/{order}/events"), &sys.token("ana-push"), None).await?;
    let snap = one.next(WITHIN).await?.expect("the order's snapshot");
    assert_eq!((snap.event.as_str(), snap.data["order"]["status"].as_str()), ("snapshot", Some("COMPLETED")));
    let other = sys.http.get(format!("{gw}/api/orders/{order}/events")).bearer_auth(sys.token("bia-push")).send().await?;
    assert_eq!(other.status(), StatusCode::NOT_FOUND, "another user's order does not exist for them");

    // Bia saw nothing of Ana's.
    let leaked = bia.next(Duration::from_millis(500)).await?;
    assert!(leaked.is_none(), "bia received another user's event: {leaked:?}");
    // At most three streams per user (one is `one`, one is `ana`).
    let _third = Stream::open(&sys.http, &format!("{gw}/api/events"), &sys.token("ana-push"), None).await?;
    let fourth = sys.http.get(format!("{gw}/api/events")).bearer_auth(sys.token("ana-push")).send().await?;
    assert_eq!(fourth.status(), StatusCode::TOO_MANY_REQUESTS);

    stop.cancel();
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_request_id_follows_the_order_from_the_edge_into_every_message() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    let (gw, stop) = spawn_gateway(&sys, 0).await?;
    let product = sys.create_product("6.00", 5).await?;
    let topic = gateway::config::default_event_topics(&sys.prefix, std::iter::empty::<&String>()).remove(0);
    let watcher = e2e::TopicWatcher::from_end(&e2e::StackAddr::from_env().brokers(), &topic)?;
    let token = sys.token("hugo-trace");
    let r: Value = sys.http.post(format!("{gw}/api/reserve")).bearer_auth(&token).json(&json!({"product_id": product, "quantity": 1})).send().await?.json().await?;
    let trace = format!("trace-{}", uuid::Uuid::new_v4());
    let res = sys
        .http
        .post(format!("{gw}/api/payment"))
        .bearer_auth(&token)
        .header("x-request-id", &trace)
        .json(&payment_body(r["id"].as_str().unwrap(), "hugo-trace", "4242424242424242"))
        .send()
        .await?;
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    assert_eq!(res.headers()["x-request-id"], trace.as_str(), "the service answers with the id");
    let order = res.json::<Value>().await?["order_id"].as_str().unwrap().to_string();
    // ACCEPTED is written by the request itself; COMPLETED after the order went through the queue,
    // the orchestrator, the payment service and back — each hop a consumed message.
    for status in ["ACCEPTED", "COMPLETED"] {
        let event = tokio::task::block_in_place(|| {
            watcher.wait_for(WITHIN, |r| r.value.as_ref().is_some_and(|v| v["order_id"] == order.as_str() && v["status"] == status))
        })?;
        assert_eq!(event.header("request-id"), Some(trace.as_str()), "{status} carries the request id: {:?}", event.headers);
    }
    stop.cancel();
    sys.stop().await;
    Ok(())
}

/// A gateway binary over `sys` on `port`: a real process, so it can be SIGKILLed.
struct GatewayProcess {
    child: std::process::Child,
    url: String,
}

impl GatewayProcess {
    async fn start(sys: &System, port: u16) -> anyhow::Result<Self> {
        // The binary of this checkout, built if missing or stale; it lands beside this test's own executable.
        e2e::build_service_binaries()?;
        let bin = std::env::current_exe()?.parent().and_then(|deps| deps.parent()).map(|dir| dir.join("gateway")).unwrap();
        let auth = sys.issuer.auth_config();
        let mut banks = BTreeMap::new();
        if !sys.bank_url.is_empty() {
            banks.insert("001".to_string(), sys.bank_url.clone());
        }
        let topics = gateway::config::default_event_topics(&sys.prefix, banks.keys()).join(",");
        let child = std::process::Command::new(&bin)
            .envs([
                ("GATEWAY_HOST", "127.0.0.1".to_string()),
                ("GATEWAY_PORT", port.to_string()),
                ("AUTH_ISSUER", auth.issuer.clone()),
                ("AUTH_AUDIENCE", auth.audience.clone()),
                ("AUTH_JWKS_URL", auth.jwks_url.clone()),
                ("PRODUCT_URL", sys.product_url.clone()),
                ("ORCHESTRATOR_URL", sys.orchestrator_url.clone()),
                ("PAYMENT_URL", sys.payment_url.clone()),
                ("IDENTITY_URL", "http://127.0.0.1:9".to_string()),
                ("GATEWAY_BANKS", format!("001={}", if sys.bank_url.is_empty() { "http://127.0.0.1:9" } else { &sys.bank_url })),
                ("KAFKA_BROKERS", e2e::StackAddr::from_env().brokers()),
                ("GATEWAY_EVENT_TOPICS", topics),
                ("GATEWAY_HEARTBEAT_SECS", "1".to_string()),
                ("RUST_LOG", "warn".to_string()),
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let gw = Self { child, url: format!("http://127.0.0.1:{port}") };
        let started = Instant::now();
        while !sys.http.get(format!("{}/health/ready", gw.url)).send().await.is_ok_and(|r| r.status().is_success()) {
            anyhow::ensure!(started.elapsed() < WITHIN, "the gateway process did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(gw)
    }

    fn sigkill(&mut self) {
        let _ = self.child.kill(); // SIGKILL: no graceful shutdown, streams cut mid-event
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.sigkill();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_resumes_exactly_after_the_gateway_process_is_sigkilled() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    let port = free_port()?;
    let mut gw = GatewayProcess::start(&sys, port).await?;
    let product = sys.create_product("3.00", 5).await?;
    let token = sys.token("cora-push");
    let mut stream = Stream::open(&sys.http, &format!("{}/api/events", gw.url), &token, None).await?;
    let snapshot = stream.next(WITHIN).await?.expect("a snapshot");
    let order = buy(&sys, &gw.url, "cora-push", product, "4242424242424242").await?;
    // The first status arrives; then the gateway is killed mid-saga.
    let before = stream.statuses_until(&order, &["ACCEPTED", "RESERVATION_LOCKED", "PAYMENT_PENDING", "PAID", "COMPLETED"]).await?;
    assert!(!before.is_empty(), "at least the first status before the kill");
    let last_id = before.last().map(|(_, id, _)| id.clone()).unwrap_or(snapshot.id);
    gw.sigkill();
    drop(stream);
    let final_order = sys.wait_order(&order, WITHIN, settled).await?;

    // The gateway comes back on the same address; the client returns with the last id it saw.
    let gw = GatewayProcess::start(&sys, port).await?;
    let mut resumed = Stream::open(&sys.http, &format!("{}/api/events", gw.url), &token, Some(&last_id)).await?;
    let after = resumed.statuses_until(&order, &["COMPLETED"]).await?;
    let mut all: Vec<String> = before.into_iter().map(|(s, ..)| s).collect();
    all.extend(after.into_iter().map(|(s, ..)| s));
    assert_eq!(all, statuses(&final_order), "exactly the missed statuses, in order, none twice");
    while let Some(e) = resumed.next(Duration::from_millis(500)).await? {
        assert!(e.event != "order", "nothing after COMPLETED: {e:?}");
    }
    // An id this gateway never wrote: start over.
    let mut garbage = Stream::open(&sys.http, &format!("{}/api/events", gw.url), &token, Some("not-a-cursor")).await?;
    assert_eq!(garbage.next(WITHIN).await?.map(|e| e.event), Some("resync".to_string()));

    drop(gw);
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_on_one_replica_sees_a_saga_driven_through_the_other() -> anyhow::Result<()> {
    let sys = System::spawn(SystemOptions::default()).await?;
    let (a, stop_a) = spawn_gateway(&sys, 0).await?;
    let (b, stop_b) = spawn_gateway(&sys, 0).await?;
    let product = sys.create_product("1.25", 5).await?;
    let mut on_a = Stream::open(&sys.http, &format!("{a}/api/events"), &sys.token("eva-replicas"), None).await?;
    assert_eq!(on_a.next(WITHIN).await?.expect("a snapshot").event, "snapshot");
    let mut other_user_on_b = Stream::open(&sys.http, &format!("{b}/api/events"), &sys.token("fred-replicas"), None).await?;
    assert_eq!(other_user_on_b.next(WITHIN).await?.expect("a snapshot").event, "snapshot");

    // Reserved and paid through replica B; watched on replica A.
    let order = buy(&sys, &b, "eva-replicas", product, "4242424242424242").await?;
    let seen: Vec<String> = on_a.statuses_until(&order, &["COMPLETED"]).await?.into_iter().map(|(s, ..)| s).collect();
    let final_order = sys.wait_order(&order, WITHIN, settled).await?;
    assert_eq!(seen, statuses(&final_order), "every status once, in order, on the other replica");
    let leaked = other_user_on_b.next(Duration::from_millis(500)).await?;
    assert!(leaked.is_none(), "another user received the events on replica B: {leaked:?}");

    stop_a.cancel();
    stop_b.cancel();
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_websocket_carries_the_same_events_after_a_single_use_ticket() -> anyhow::Result<()> {
    use futures::SinkExt;
    use tokio_tungstenite::tungstenite::Message;

    let sys = System::spawn(SystemOptions::default()).await?;
    let (gw, stop) = spawn_gateway(&sys, 0).await?;
    let product = sys.create_product("2.00", 5).await?;
    let token = sys.token("dora-ws");
    let ticket = |token: String| {
        let (http, gw) = (sys.http.clone(), gw.clone());
        async move {
            let res = http.post(format!("{gw}/api/ws/ticket")).bearer_auth(token).send().await?;
            anyhow::ensure!(res.status() == StatusCode::CREATED, "ticket: {}", res.status());
            Ok::<_, anyhow::Error>(res.json::<Value>().await?["ticket"].as_str().unwrap().to_string())
        }
    };
    let ws_url = gw.replace("http://", "ws://");
    let t = ticket(token.clone()).await?;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{ws_url}/api/ws?ticket={t}")).await?;
    let snapshot = next_frame(&mut socket).await?;
    assert_eq!(snapshot["event"], "snapshot", "{snapshot}");

    let order = buy(&sys, &gw, "dora-ws", product, "4242424242424242").await?;
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("COMPLETED") {
        let frame = next_frame(&mut socket).await?;
        if frame["event"] == "order" && frame["data"]["order_id"] == order.as_str() {
            assert!(frame["id"].as_str().is_some_and(|id| !id.is_empty()), "{frame}");
            seen.push(frame["data"]["status"].as_str().unwrap().to_string());
        }
    }
    let final_order = sys.wait_order(&order, WITHIN, settled).await?;
    assert_eq!(seen, statuses(&final_order), "every status once, in order");
    socket.send(Message::Close(None)).await?;

    // A ticket opens one socket only; no ticket, no socket; a token in the URL is not a ticket.
    let used = tokio_tungstenite::connect_async(format!("{ws_url}/api/ws?ticket={t}")).await;
    assert!(used.is_err(), "a used ticket is refused");
    assert!(tokio_tungstenite::connect_async(format!("{ws_url}/api/ws")).await.is_err());
    assert!(tokio_tungstenite::connect_async(format!("{ws_url}/api/ws?ticket={token}")).await.is_err());
    let anonymous = sys.http.post(format!("{gw}/api/ws/ticket")).send().await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "tickets need a token");
    // A plain GET is not a handshake: a problem (it was a bare text 400), and the ticket is kept.
    let t = ticket(token.clone()).await?;
    let plain = sys.http.get(format!("{gw}/api/ws?ticket={t}")).send().await?;
    assert_eq!(plain.status(), StatusCode::UPGRADE_REQUIRED);
    assert_eq!(plain.json::<Value>().await?["code"], "websocket_required");
    let (socket, _) = tokio_tungstenite::connect_async(format!("{ws_url}/api/ws?ticket={t}")).await?;
    drop(socket);
    // The gateway documents its own routes.
    let doc: Value = sys.http.get(format!("{gw}/openapi.json")).send().await?.json().await?;
    assert!(doc["paths"]["/api/ws"]["get"]["responses"]["426"].is_object(), "{doc}");

    stop.cancel();
    sys.stop().await;
    Ok(())
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame of `socket`, as JSON (heartbeat pings skipped).
async fn next_frame(socket: &mut Socket) -> anyhow::Result<Value> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let deadline = Instant::now() + WITHIN;
    loop {
        match tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Ok(serde_json::from_str(&text)?),
            // The server's heartbeat pings (answered by the library) and their pongs.
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => anyhow::bail!("no text frame: {other:?}"),
        }
    }
}

/// `GET <target>` written byte for byte on a socket: no client-side URL parser resolves the
/// dot-segments or escapes first (reqwest's would). The status and the body.
async fn raw_get(addr: &str, target: &str, token: Option<&str>) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    socket.write_all(format!("GET {target} HTTP/1.1\r\nhost: {addr}\r\n{auth}connection: close\r\n\r\n").as_bytes()).await?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await??;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).with_context(|| format!("no status line: {text:?}"))?;
    Ok((status, text))
}

/// Every service at one address: its `/metrics` (what must never answer through the edge without
/// a token) says `secret_metric`; any other path echoes itself.
async fn fake_upstream() -> anyhow::Result<String> {
    use axum::{Router, extract::OriginalUri, routing::get};
    let app = Router::new()
        .route("/metrics", get(|| async { "# TYPE secret_metric counter\nsecret_metric 1\n" }))
        .fallback(|uri: OriginalUri| async move { format!("echo {}", uri.0.path()) });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_spelling_of_a_path_reaches_a_services_metrics_without_a_token() -> anyhow::Result<()> {
    let issuer = sagaway_common::auth_testing::TestIssuer::start().await;
    let upstream = fake_upstream().await?;
    let scrape = "scrape-token-0123456789abcdef";
    let config = gateway::Config {
        host: "127.0.0.1".into(),
        port: 0,
        auth: issuer.auth_config(),
        upstreams: gateway::config::Upstreams {
            identity: upstream.clone(),
            product: upstream.clone(),
            orchestrator: upstream.clone(),
            payment: upstream.clone(),
            banks: [("001".to_string(), upstream.clone())].into(),
        },
        // No broker is needed to route: the event feed retries in the background.
        kafka_brokers: "127.0.0.1:9".into(),
        event_topics: vec!["order.events".into()],
        request_timeout: Duration::from_secs(5),
        max_streams_per_user: 3,
        stream_buffer: 8,
        heartbeat: Duration::from_secs(1),
        metrics_token: Some(scrape.into()),
        limits: gateway::config::Limits::default(),
        catalogue_currency: "USD".into(),
    };
    let app = gateway::Application::build(config).await?;
    let addr = format!("127.0.0.1:{}", app.port());
    let stop = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    let started = Instant::now();
    while raw_get(&addr, "/health/live", None).await.map(|(s, _)| s).unwrap_or(0) != 200 {
        anyhow::ensure!(started.elapsed() < WITHIN, "the gateway did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let customer = issuer.token("mallory");

    // Every prefix the table routes, public or not, then a way back up to the service's root.
    let prefixes = ["auth", "auth/login", "findAll", "products", "products/7", "reserve", "orders", "orders/1", "payment", "admin/dlq", "banks/001", "banks/001/accounts"];
    let climbs = ["%2e%2e", "%2E%2E", ".%2e", "%2e.", "%2e%2e/%2e", "x/%2e%2e/%2e%2e", "%2e%2e/%2e%2e/%2e%2e"];
    let mut reached = Vec::new();
    for prefix in prefixes {
        for climb in climbs {
            for token in [None, Some(customer.as_str())] {
                let target = format!("/api/{prefix}/{climb}/metrics");
                let (status, body) = raw_get(&addr, &target, token).await?;
                if body.contains("secret_metric") {
                    reached.push(format!("{target} (token: {}) → {status}", token.is_some()));
                }
            }
        }
        // Separators spelled as escapes or backslashes are refused outright.
        for sep in ["..%2Fmetrics", "..%2fmetrics", "..%5Cmetrics", "%2e%2e%5cmetrics"] {
            let target = format!("/api/{prefix}/{sep}");
            let (status, body) = raw_get(&addr, &target, None).await?;
            anyhow::ensure!(status == 400 && body.contains("invalid_path"), "{target}: {status} {body}");
        }
    }
    anyhow::ensure!(reached.is_empty(), "a service's /metrics answered through the edge: {reached:#?}");
    // The admin route to it still works (and only it).
    let (status, body) = raw_get(&addr, "/api/admin/metrics/product", Some(&issuer.admin_token("ops"))).await?;
    anyhow::ensure!(status == 200 && body.contains("secret_metric"), "{status} {body}");
    // A spelled path reaches what its plain form would: `/api/%6frders/x/%2e%2e/7` is `/api/orders/7`.
    let (status, body) = raw_get(&addr, "/api/%6frders/x/%2e%2e/7", Some(&customer)).await?;
    anyhow::ensure!(status == 200 && body.contains("echo /orders/7"), "{status} {body}");

    // The gateway's own /metrics: an admin's token or the scrape token.
    assert_eq!(raw_get(&addr, "/metrics", None).await?.0, 401);
    assert_eq!(raw_get(&addr, "/metrics", Some(&customer)).await?.0, 403);
    assert_eq!(raw_get(&addr, "/metrics", Some("scrape-token-wrong-0123456789")).await?.0, 401);
    assert_eq!(raw_get(&addr, "/metrics", Some(scrape)).await?.0, 200);
    assert_eq!(raw_get(&addr, "/metrics", Some(&issuer.admin_token("ops"))).await?.0, 200);
    assert_eq!(raw_get(&addr, "/api/x/%2e%2e/%2e%2e/metrics", None).await?.0, 401, "the gateway's /metrics through a climb is still its /metrics");
    stop.cancel();
    Ok(())
}

/// A token for `user` that expires `secs` from now.
fn short_token(sys: &System, user: &str, secs: i64) -> String {
    let mut claims = sys.issuer.claims(user, &["customer"]);
    claims["exp"] = json!(chrono::Utc::now().timestamp() + secs);
    sys.issuer.key.sign(&claims)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stream_ends_with_auth_expired_when_its_token_expires() -> anyhow::Result<()> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;

    let sys = System::spawn(SystemOptions::default()).await?;
    let (gw, stop) = spawn_gateway(&sys, 0).await?;
    let user = "ivo-expiry";

    // Server-Sent Events: the snapshot, then `auth_expired` when the token expires, then the end.
    let short = short_token(&sys, user, 3);
    let opened = Instant::now();
    let mut sse = Stream::open(&sys.http, &format!("{gw}/api/events"), &short, None).await?;
    assert_eq!(sse.next(WITHIN).await?.map(|e| e.event), Some("snapshot".into()));
    let expired = sse.next(Duration::from_secs(15)).await?.context("no event when the token expired")?;
    assert_eq!((expired.event.as_str(), &expired.data["reason"]), ("auth_expired", &json!("token_expired")));
    assert!(opened.elapsed() >= Duration::from_secs(1), "ended before the token expired");
    assert!(sse.next(Duration::from_secs(3)).await?.is_none(), "the stream ends after auth_expired");
    // The client comes back with a fresh token and the event's id: resumed, not started over.
    let mut again = Stream::open(&sys.http, &format!("{gw}/api/events"), &sys.token(user), Some(&expired.id)).await?;
    let first = again.next(Duration::from_secs(2)).await?;
    assert!(first.as_ref().is_none_or(|e| e.event != "resync"), "{first:?}");

    // The WebSocket: the same last frame, then a close frame saying why.
    let short = short_token(&sys, user, 3);
    let res = sys.http.post(format!("{gw}/api/ws/ticket")).bearer_auth(&short).send().await?;
    let ticket = res.json::<Value>().await?["ticket"].as_str().context("a ticket")?.to_string();
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{}/api/ws?ticket={ticket}", gw.replace("http://", "ws://"))).await?;
    assert_eq!(next_frame(&mut socket).await?["event"], "snapshot");
    let last = next_frame(&mut socket).await?;
    assert_eq!((&last["event"], &last["data"]["reason"]), (&json!("auth_expired"), &json!("token_expired")), "{last}");
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await? {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => anyhow::bail!("no close frame: {other:?}"),
        }
    };
    let close = close.context("the close frame says why")?;
    assert_eq!((u16::from(close.code), close.reason.as_str()), (4401, "auth_expired"));

    drop(again);
    stop.cancel();
    sys.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_user_cannot_exhaust_the_push_edge() -> anyhow::Result<()> {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let sys = System::spawn(SystemOptions::default()).await?;
    let (gw, stop) = spawn_gateway_with(&sys, 0, |c| {
        c.limits.tickets_per_user = 2;
        c.limits.replay_max_events = 1;
        c.max_streams_per_user = 10;
    })
    .await?;
    let ticket = |token: String| {
        let (http, gw) = (sys.http.clone(), gw.clone());
        async move { http.post(format!("{gw}/api/ws/ticket")).bearer_auth(token).send().await }
    };
    // Tickets: a user holds two at most; another user is not affected.
    let greedy = sys.token("gil-greedy");
    let mut held = Vec::new();
    for _ in 0..2 {
        let res = ticket(greedy.clone()).await?;
        assert_eq!(res.status(), StatusCode::CREATED);
        held.push(res.json::<Value>().await?["ticket"].as_str().unwrap().to_string());
    }
    let third = ticket(greedy.clone()).await?;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(third.json::<Value>().await?["code"], "too_many_tickets");
    assert_eq!(ticket(sys.token("hana-other")).await?.status(), StatusCode::CREATED, "one user's cap is theirs alone");

    // A client frame above the small limit closes the socket.
    let ws = gw.replace("http://", "ws://");
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{ws}/api/ws?ticket={}", held.pop().unwrap())).await?;
    assert_eq!(next_frame(&mut socket).await?["event"], "snapshot");
    socket.send(Message::Text("x".repeat(64 * 1024).into())).await?;
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return true,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await
    .unwrap_or(false);
    assert!(closed, "a 64 KiB client frame did not close the socket");

    // A resume from far behind (a forged cursor at offset 0) is refused before any scan.
    let product = sys.create_product("1.00", 5).await?;
    let token = sys.token("gil-greedy");
    let mut live = Stream::open(&sys.http, &format!("{gw}/api/events"), &token, None).await?;
    live.next(WITHIN).await?;
    let order = buy(&sys, &gw, "gil-greedy", product, "4242424242424242").await?;
    let seen = live.statuses_until(&order, &["COMPLETED"]).await?;
    assert!(seen.len() >= 2, "{seen:?}");
    let forged = seen[0].1.split('.').map(|tpo| format!("{}:0", tpo.rsplit_once(':').unwrap().0)).collect::<Vec<_>>().join(".");
    let mut far = Stream::open(&sys.http, &format!("{gw}/api/events"), &token, Some(&forged)).await?;
    let e = far.next(WITHIN).await?.context("an answer to the resume")?;
    assert_eq!((e.event.as_str(), &e.data["reason"]), ("resync", &json!("too_far_behind")), "{forged}");
    // And resumes are rate-limited per user (bursts of 5).
    let mut refused = None;
    for n in 0..10 {
        let res = sys.http.get(format!("{gw}/api/events")).bearer_auth(&token).header("last-event-id", &seen[0].1).send().await?;
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some((n, res.json::<Value>().await?["code"].clone()));
            break;
        }
    }
    let (n, code) = refused.context("ten resumes in a row were all served")?;
    assert_eq!(code, "too_many_resumes");
    assert!(n >= 3, "refused after {n}");

    stop.cancel();
    sys.stop().await;
    Ok(())
}

/// Logins through the gateway are throttled per client address: the gateway names the address a
/// request came from in `X-Forwarded-For` (replacing whatever the client wrote there) and identity
/// trusts the gateway's. So a shopper guessing an operator's password from one address is slowed
/// down, however it spells the header, and the operator signing in from another is not refused.
/// Loopback has many addresses: the clients connect from 127.0.0.2 and 127.0.0.3, the gateway is
/// 127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_through_the_gateway_are_throttled_per_client_address_not_per_gateway() -> anyhow::Result<()> {
    let mut cfg = identity::Config::local(&format!("it_gw_identity_{}", uuid::Uuid::new_v4().simple()));
    cfg.login_throttle.max_failures = 2;
    cfg.login_throttle.base_delay = Duration::from_secs(60);
    cfg.trusted_proxies = identity::client::parse_cidrs("127.0.0.1").map_err(anyhow::Error::msg)?;
    let identity = identity::Application::build(cfg).await?;
    let identity_url = format!("http://127.0.0.1:{}", identity.port());
    let stop_identity = CancellationToken::new();
    tokio::spawn(identity.run_until_stopped(stop_identity.clone()));

    let issuer = sagaway_common::auth_testing::TestIssuer::start().await;
    let nowhere = "http://127.0.0.1:9".to_string();
    let upstreams = gateway::config::Upstreams {
        identity: identity_url.clone(),
        product: nowhere.clone(),
        orchestrator: nowhere.clone(),
        payment: nowhere,
        banks: BTreeMap::new(),
    };
    let topics = gateway::config::default_event_topics(&format!("t{}.", uuid::Uuid::new_v4().simple()), std::iter::empty::<&String>());
    let config = gateway_config(0, issuer.auth_config(), upstreams, topics);
    let app = gateway::Application::build(config).await?;
    let gw = format!("http://127.0.0.1:{}", app.port());
    let stop_gateway = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop_gateway.clone()));

    let from = |addr: &str| reqwest::Client::builder().local_address(addr.parse::<std::net::IpAddr>().unwrap()).build().unwrap();
    let (attacker, operator) = (from("127.0.0.2"), from("127.0.0.3"));
    let deadline = Instant::now() + WITHIN;
    let signup = loop {
        match operator.post(format!("{gw}/api/auth/signup")).json(&json!({"username": "ops", "password": "the operator's password"})).send().await {
            Ok(r) if r.status() != StatusCode::BAD_GATEWAY => break r.status(),
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => anyhow::bail!("identity behind the gateway did not answer: {other:?}"),
        }
    };
    assert_eq!(signup, StatusCode::CREATED);
    let login = |client: &reqwest::Client, password: &str, spoofed: Option<String>| {
        let mut req = client.post(format!("{gw}/api/auth/login")).json(&json!({"username": "ops", "password": password}));
        if let Some(s) = spoofed {
            req = req.header("x-forwarded-for", s);
        }
        async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    // The attacker writes a new address into X-Forwarded-For at every guess: it buys nothing.
    let mut guesses = Vec::new();
    for i in 0..4 {
        guesses.push(login(&attacker, "a wrong guess!", Some(format!("198.51.100.{i}"))).await);
    }
    assert_eq!(guesses, vec![401, 401, 429, 429], "the attacker is throttled at its own address");
    assert_eq!(login(&operator, "the operator's password", None).await, 200, "the operator, at another address, is not refused");

    stop_gateway.cancel();
    stop_identity.cancel();
    Ok(())
}
