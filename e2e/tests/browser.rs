//! The web app in a real browser (Debian's Chromium, headless, driven over WebDriver by
//! chromedriver), against the whole local stack through its gateway — what a shopper and an operator
//! do, page by page, with a screenshot of each under `<target>/tmp/browser/<run>/`:
//!
//! 1. a shopper signs up, searches with a slip in the word (found, the word highlighted), narrows
//!    by the category facet, reserves, pays with 4242… and watches the status timeline reach
//!    COMPLETED without a reload (every step once, in order);
//!    Then opens a USD account at bank 001, deposits 100.00 (the balance updates live), pays an
//!    order from the account and sees 87.50 left;
//! 2. pays with 4000…0119 (the acquirer fails every attempt): the order turns FAILED; an operator
//!    signs in, finds the dead letter in the console and abandons it; the shopper's page shows
//!    COMPENSATED;
//! 3. the operator switches the acquirer outage on; a 4242… payment dead-letters; the operator
//!    switches it off, dry-runs and replays the dead letter; the shopper's page shows COMPLETED.
//!
//! Every page it reaches (each screenshot) is checked: no error in the browser's console (a failed
//! request, an exception) and no `null`, `undefined` or `NaN` shown as text. A deposit, a reserve
//! and a transfer whose first answer is lost (the page's `fetch` throws after the request went
//! through) are resubmitted, and each is made once; destructive console actions ask for confirmation.
//!
//! Needs `scripts/stack up` (the whole stack, gateway included) and `chromium` + `chromium-driver`;
//! `scripts/test` provides both and runs it with `--ignored`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn gateway_url() -> String {
    std::env::var("SAGAWAY_GATEWAY_URL").unwrap_or_else(|_| format!("http://127.0.0.1:{}", std::env::var("GATEWAY_PORT").unwrap_or_else(|_| "8080".into())))
}

/// `scripts/stack <args…>` with `stdin`; its stdout.
fn stack(args: &[&str], stdin: &str) -> anyhow::Result<String> {
    use std::io::Write;
    let mut child = Command::new(repo().join("scripts/stack")).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn()?;
    child.stdin.take().context("stdin")?.write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "scripts/stack {args:?} failed: {}", out.status);
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// chromedriver on a free port, stopped (by its PID) when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    async fn start() -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver (Debian: apt-get install chromium chromium-driver; scripts/test installs it)")?;
        let driver = Self { child, url: format!("http://127.0.0.1:{port}") };
        let started = Instant::now();
        while !reqwest::get(format!("{}/status", driver.url)).await.is_ok_and(|r| r.status().is_success()) {
            ensure!(started.elapsed() < Duration::from_secs(20), "chromedriver did not answer on {}", driver.url);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(driver)
    }

    /// A new headless Chromium window (its own profile: its own sessionStorage).
    async fn browser(&self) -> anyhow::Result<Client> {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium",
                   "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]}),
        );
        // The console's messages, read back after each page (`BrowserLog`).
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        Ok(ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new()).capabilities(caps).connect(&self.url).await?)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver's log endpoint: the browser console's entries since the last call.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(json!({"type": "browser"}).to_string()))
    }
}

/// Text that says a value was missing where the page meant to show one (`null`, `undefined`, `NaN`
/// anywhere, `nullnull` too), with some of its surroundings.
fn absent_value_shown(text: &str) -> Option<String> {
    let at = ["null", "undefined", "NaN"].iter().filter_map(|w| text.find(w)).min()?;
    let from = text[..at].char_indices().rev().nth(40).map(|(i, _)| i).unwrap_or(0);
    let to = text[at..].char_indices().nth(40).map(|(i, _)| at + i).unwrap_or(text.len());
    Some(text[from..to].replace('\n', " "))
}

#[test]
fn an_absent_value_shown_as_text_is_found() {
    assert!(absent_value_shown("Accounts\nnullnull\nBalances").is_some_and(|s| s.contains("nullnull")));
    assert!(absent_value_shown("1 × product undefined").is_some());
    assert!(absent_value_shown("Total NaN USD").is_some());
    assert_eq!(absent_value_shown("1 × Brass lantern · 12.50 USD"), None);
}

/// One person at one browser window, saving a screenshot of each page they reach.
struct Person {
    b: Client,
    name: &'static str,
    shots: PathBuf,
}

impl Person {
    async fn shot(&self, step: &str) -> anyhow::Result<()> {
        let png = self.b.screenshot().await?;
        let n = std::fs::read_dir(&self.shots)?.count();
        std::fs::write(self.shots.join(format!("{n:02}-{}-{step}.png", self.name)), png)?;
        self.check(step).await
    }

    /// The page as the person sees it now: no console error since the last check, and no absent
    /// value written out as text.
    async fn check(&self, step: &str) -> anyhow::Result<()> {
        let logs = self.b.issue_cmd(BrowserLog).await?;
        let errors: Vec<String> = logs
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect();
        ensure!(errors.is_empty(), "{} at `{step}`: the browser console shows errors: {errors:#?}", self.name);
        let text = self.b.execute("return document.body.innerText", vec![]).await?;
        if let Some(around) = absent_value_shown(text.as_str().unwrap_or_default()) {
            bail!("{} at `{step}`: the page shows an absent value as text: …{around}…", self.name);
        }
        Ok(())
    }

    /// From now on the page's next `fetch` whose URL contains `part` (a POST) reaches the server,
    /// but its answer is lost: the page sees a network error, as after a timeout or a dropped
    /// connection.
    async fn lose_next_answer(&self, part: &str) -> anyhow::Result<()> {
        self.b
            .execute(
                "if (!window.__sagaway_real_fetch) {
                   window.__sagaway_real_fetch = window.fetch;
                   window.__sagaway_lost = 0;
                   window.fetch = async (url, init) => {
                     const res = await window.__sagaway_real_fetch(url, init);
                     const drop = window.__sagaway_drop;
                     if (drop && String(url).includes(drop) && (init?.method || 'GET') === 'POST') {
                       window.__sagaway_drop = null;
                       window.__sagaway_lost += 1;
                       await res.text();
                       throw new TypeError('the answer was lost on the way back');
                     }
                     return res;
                   };
                 }
                 window.__sagaway_drop = arguments[0];
                 return true;",
                vec![json!(part)],
            )
            .await?;
        Ok(())
    }

    /// How many answers `lose_next_answer` dropped so far.
    async fn answers_lost(&self) -> anyhow::Result<u64> {
        Ok(self.b.execute("return window.__sagaway_lost || 0", vec![]).await?.as_u64().unwrap_or(0))
    }

    /// The signed-in person's access token (the app keeps it in sessionStorage).
    async fn token(&self) -> anyhow::Result<String> {
        let v = self.b.execute("return JSON.parse(sessionStorage.getItem('sagaway.session')).access", vec![]).await?;
        v.as_str().map(str::to_string).context("no session in the page")
    }

    /// Clicks `css`, then answers the confirmation dialog it opens: `yes` confirms, else cancels.
    async fn click_and_confirm(&self, css: &str, yes: bool) -> anyhow::Result<()> {
        self.click(css).await?;
        self.find("dialog#confirm[open]").await.with_context(|| format!("{}: `{css}` asked for no confirmation", self.name))?;
        self.click(if yes { "#confirm-yes" } else { "#confirm-no" }).await?;
        Ok(())
    }

    async fn find(&self, css: &str) -> anyhow::Result<fantoccini::elements::Element> {
        self.b.wait().at_most(WITHIN).for_element(Locator::Css(css)).await.with_context(|| format!("{}: waiting for `{css}`", self.name))
    }

    async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        self.on_fresh(css, |e| async move {
            e.clear().await?;
            e.send_keys(text).await
        })
        .await
    }

    async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.on_fresh(css, |e| async move { e.click().await }).await
    }

    /// Does `act` on the element `css` names, finding it again when the page re-rendered between
    /// the find and the act (a stale element: the app replaces a page's content when its data
    /// arrives or after an action), until the deadline.
    async fn on_fresh<F, Fut>(&self, css: &str, act: F) -> anyhow::Result<()>
    where
        F: Fn(fantoccini::elements::Element) -> Fut,
        Fut: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>,
    {
        let deadline = Instant::now() + WITHIN;
        loop {
            match act(self.find(css).await?).await {
                Ok(()) => return Ok(()),
                Err(e) if e.to_string().contains("stale element") && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e).with_context(|| format!("{}: on `{css}`", self.name)),
            }
        }
    }

    async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.b.goto(url).await?;
        Ok(())
    }

    /// The page's error banner, if it shows one (for failure messages).
    async fn banner(&self) -> String {
        match self.b.find(Locator::Id("flash")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Waits until the order page's status badge shows `status` (the page is never reloaded).
    async fn sees_status(&self, status: &str) -> anyhow::Result<()> {
        let css = format!("#order-status[data-status=\"{status}\"]");
        self.b.wait().at_most(WITHIN).for_element(Locator::Css(&css)).await.with_context(|| format!("{}: the order never showed {status}", self.name))?;
        Ok(())
    }

    /// The statuses of the order page's timeline, top to bottom.
    async fn timeline(&self) -> anyhow::Result<Vec<String>> {
        let items = self.b.find_all(Locator::Css("#timeline li")).await?;
        let mut out = Vec::new();
        for li in items {
            out.push(li.attr("data-status").await?.unwrap_or_default());
        }
        Ok(out)
    }

    /// Reserves one of the product on its page and pays with `card`; returns the order id.
    async fn buy(&self, base: &str, product: u64, card: &str) -> anyhow::Result<String> {
        self.goto(&format!("{base}/#/product/{product}")).await?;
        self.click("#reserve-form button[type=submit]").await?;
        self.fill("#pay-form input[name=number]", card).await?;
        self.fill("#pay-form input[name=exp_month]", "12").await?;
        self.fill("#pay-form input[name=exp_year]", "2031").await?;
        self.fill("#pay-form input[name=cvc]", "123").await?;
        self.shot("pay").await?;
        self.click("#pay-form button[type=submit]").await?;
        let started = Instant::now();
        loop {
            let url = self.b.current_url().await?;
            if let Some(id) = url.fragment().and_then(|f| f.strip_prefix("/orders/")) {
                // A marker that a reload would erase: the timeline must move without one.
                self.b.execute("window.__sagaway_no_reload = true; return true", vec![]).await?;
                return Ok(id.to_string());
            }
            ensure!(started.elapsed() < WITHIN, "{}: paying did not open the order page: {}", self.name, self.banner().await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn was_not_reloaded(&self) -> anyhow::Result<()> {
        let marker = self.b.execute("return window.__sagaway_no_reload === true", vec![]).await?;
        ensure!(marker == Value::Bool(true), "{}: the order page was reloaded", self.name);
        Ok(())
    }
}

/// Polls `/api/findAll` until the search index has the product named `name` (CDC → index is
/// asynchronous); its id.
async fn indexed(http: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<u64> {
    let started = Instant::now();
    loop {
        let found: Value = http.get(format!("{base}/api/findAll")).query(&[("q", name)]).send().await?.json().await?;
        let items = found["items"].as_array().map(Vec::as_slice).unwrap_or_default();
        if let Some(id) = items.iter().find(|i| i["name"] == name).and_then(|i| i["id"].as_u64()) {
            return Ok(id);
        }
        ensure!(started.elapsed() < WITHIN, "the product `{name}` never reached the search index");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the whole stack (scripts/stack up) and Chromium; run by scripts/test with --ignored"]
async fn a_shopper_and_an_operator_use_the_web_app_in_a_real_browser() -> anyhow::Result<()> {
    let base = gateway_url();
    let http = reqwest::Client::new();
    if !http.get(format!("{base}/health/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
        bail!("no gateway at {base}: start the whole stack first (scripts/stack up)");
    }
    let run = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser").join(&run);
    std::fs::create_dir_all(&shots)?;
    println!("screenshots: {}", shots.display());

    // The catalogue entries this run buys, one per scenario (a second order of the same product by
    // the same user within minutes is refused as a duplicate). An admin's call; names unique to the run.
    let admin = stack(&["token", &format!("catalogue-{run}"), "--admin"], "")?;
    let word = format!("lantern{run}");
    let mut products = Vec::new();
    for suffix in ["", "b", "c", "d"] {
        let name = format!("Brass {word}{suffix}");
        let res = http
            .post(format!("{base}/api/products"))
            .bearer_auth(&admin)
            .json(&json!({"name": name, "description": "A lantern for the browser test", "category": format!("lights{run}"), "price": "12.50", "stock": 20}))
            .send()
            .await?;
        ensure!(res.status() == 201, "creating the product: {} {}", res.status(), res.text().await?);
        products.push(indexed(&http, &base, &name).await?);
    }
    let product = products[0];

    // The operator: an account with a password, given the admin role from the command line.
    let (operator, password) = (format!("op-{run}"), format!("operator-pw-{run}"));
    stack(&["user", &operator, "--password-stdin"], &format!("{password}\n"))?;
    stack(&["user", &operator, "--admin"], "")?;

    let driver = Driver::start().await?;
    let shopper = Person { b: driver.browser().await?, name: "shopper", shots: shots.clone() };
    let outcome = async {
        // 1. Sign up, search, reserve, pay 4242 → COMPLETED, live.
        shopper.goto(&format!("{base}/#/signup")).await?;
        shopper.fill("#signup-form input[name=username]", &format!("shopper-{run}")).await?;
        shopper.fill("#signup-form input[name=password]", &format!("shopper-pw-{run}")).await?;
        shopper.shot("signup").await?;
        shopper.click("#signup-form button[type=submit]").await?;
        shopper.find("#signed-in-as").await?;
        // A slip in the word (its second letter dropped) still finds the product, the matched
        // word highlighted; the category facet offers the product's category.
        let slipped = format!("l{}", &word[2..]);
        shopper.fill("#search-form input[name=q]", &slipped).await?;
        shopper.click("#search-form button[type=submit]").await?;
        let mark = shopper.find(&format!("article[data-product=\"{product}\"] h3 mark")).await?;
        ensure!(mark.text().await?.eq_ignore_ascii_case(&word), "the highlighted word: {}", mark.text().await?);
        shopper.click(&format!("#facets a[href*=\"category=lights{run}\"]")).await?;
        shopper.find(&format!("#facets a[aria-current][href*=\"category=lights{run}\"]")).await?;
        shopper.find(&format!("article[data-product=\"{product}\"]")).await?;
        shopper.shot("search").await?;
        shopper.click(&format!("article[data-product=\"{product}\"] a")).await?;
        shopper.find("#reserve-form").await?;
        shopper.shot("product").await?;
        let paid = shopper.buy(&base, product, "4242 4242 4242 4242").await?;
        shopper.sees_status("COMPLETED").await?;
        shopper.was_not_reloaded().await?;
        shopper.shot("completed").await?;
        let steps = shopper.timeline().await?;
        ensure!(steps == ["ACCEPTED", "RESERVATION_LOCKED", "PAYMENT_PENDING", "PAID", "COMPLETED"], "order {paid}: timeline {steps:?}");

        // The bank: open a USD account at bank 001, deposit 100.00 (the balance updates when the
        // queue applies it, pushed), pay an order from the account, and see 87.50 left.
        shopper.goto(&format!("{base}/#/bank")).await?;
        shopper.find("#open-account-form").await?;
        // A new shopper, no account yet: the balances card says so, and nothing reads `null`.
        shopper.find("#no-balances").await?;
        shopper.shot("bank-empty").await?;
        shopper.find("#open-account-form select[name=currency]").await?.select_by_value("USD").await?;
        shopper.fill("#open-account-form input[name=document]", "529.982.247-25").await?;
        shopper.click("#open-account-form button[type=submit]").await?;
        let account_id = shopper.find("#accounts tr[data-account]").await?.attr("data-account").await?.context("the account's id")?;
        // The deposit's first answer is lost; the shopper submits again: one deposit, not two.
        shopper.fill("#operation-form input[name=amount]", "100.00").await?;
        shopper.lose_next_answer("/operations").await?;
        shopper.click("#operation-form button[type=submit]").await?;
        shopper.b.wait().at_most(WITHIN).for_element(Locator::XPath("//div[@id='flash' and contains(., 'cannot be reached')]")).await.context("the lost answer showed no error")?;
        ensure!(shopper.answers_lost().await? == 1, "the deposit's answer was not dropped");
        shopper.click("#operation-form button[type=submit]").await?;
        shopper.b.wait().at_most(WITHIN).for_element(Locator::XPath("//div[@id='flash' and contains(., 'queued')]")).await.context("the resubmitted deposit was not queued")?;
        let balance = |amount: &str| format!("//table[@id='accounts']//td[contains(., '{amount} USD')]");
        shopper.b.wait().at_most(WITHIN).for_element(Locator::XPath(&balance("100.00"))).await.context("the deposit never showed")?;
        shopper.shot("bank-deposited").await?;
        let token = shopper.token().await?;
        tokio::time::sleep(Duration::from_secs(2)).await; // a second deposit, had there been one, is applied by now
        let statement: Value = http.get(format!("{base}/api/banks/001/accounts/{account_id}/statement")).bearer_auth(&token).send().await?.json().await?;
        let deposits = statement["items"].as_array().map(|i| i.iter().filter(|e| e["kind"].as_str().is_some_and(|k| k.contains("deposit"))).count()).unwrap_or(0);
        ensure!(deposits == 1, "a submit whose answer was lost and its resubmit made {deposits} deposits: {statement}");
        let account: Value = http.get(format!("{base}/api/banks/001/accounts/{account_id}")).bearer_auth(&token).send().await?.json().await?;
        ensure!(account["available"] == "100.00", "after one deposit of 100.00: {account}");
        // The reserve's first answer is lost too; resubmitted, it is one hold of one unit.
        shopper.goto(&format!("{base}/#/product/{}", products[3])).await?;
        shopper.find("#reserve-form").await?;
        shopper.lose_next_answer("/api/reserve").await?;
        shopper.click("#reserve-form button[type=submit]").await?;
        shopper.b.wait().at_most(WITHIN).for_element(Locator::XPath("//div[@id='flash' and contains(., 'cannot be reached')]")).await.context("the lost reserve answer showed no error")?;
        ensure!(shopper.answers_lost().await? == 2, "the reserve's answer was not dropped");
        shopper.click("#reserve-form button[type=submit]").await?;
        shopper.find("#pay-form select[name=method]").await?.select_by_value("account").await?;
        let stock: Value = http.get(format!("{base}/api/products/{}", products[3])).send().await?.json().await?;
        ensure!(stock["stock"] == 19, "a reserve whose answer was lost and its resubmit held {} units: {stock}", 20 - stock["stock"].as_i64().unwrap_or(0));
        shopper.shot("pay-from-account").await?;
        shopper.click("#pay-form button[type=submit]").await?;
        shopper.sees_status("COMPLETED").await?;
        shopper.goto(&format!("{base}/#/bank")).await?;
        shopper.b.wait().at_most(WITHIN).for_element(Locator::XPath(&balance("87.50"))).await.context("the account was not debited 12.50")?;
        shopper.shot("bank-after-order").await?;
        // A transfer of 10.00 to a second account of the shopper's, its first answer lost and the
        // form resubmitted: one transfer (87.50 → 77.50, and 10.00 arrives once).
        shopper.find("#open-account-form select[name=currency]").await?.select_by_value("USD").await?;
        shopper.fill("#open-account-form input[name=document]", "529.982.247-25").await?;
        shopper.click("#open-account-form button[type=submit]").await?;
        let second = loop {
            let rows = shopper.b.find_all(Locator::Css("#accounts tr[data-account]")).await?;
            let mut other = None;
            for row in rows {
                let id = row.attr("data-account").await?.unwrap_or_default();
                if id != account_id {
                    let number = row.find(Locator::Css("td:nth-child(2)")).await?.text().await?;
                    other = Some((id, number));
                }
            }
            if let Some(o) = other {
                break o;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        shopper.find("#transfer-form select[name=from]").await?.select_by_value(&format!("001:{account_id}")).await?;
        shopper.fill("#transfer-form input[name=to_number]", &second.1).await?;
        shopper.fill("#transfer-form input[name=amount]", "10.00").await?;
        shopper.lose_next_answer("/transfers").await?;
        shopper.click("#transfer-form button[type=submit]").await?;
        shopper.b.wait().at_most(WITHIN).for_element(Locator::XPath("//div[@id='flash' and contains(., 'cannot be reached')]")).await.context("the lost transfer answer showed no error")?;
        ensure!(shopper.answers_lost().await? == 3, "the transfer's answer was not dropped");
        shopper.click("#transfer-form button[type=submit]").await?;
        shopper.find("#transfers [data-transfer]").await.context("the resubmitted transfer was not answered")?;
        shopper.shot("transferred").await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let token = shopper.token().await?;
        for (id, expected) in [(&account_id, "77.50"), (&second.0, "10.00")] {
            let a: Value = http.get(format!("{base}/api/banks/001/accounts/{id}")).bearer_auth(&token).send().await?.json().await?;
            ensure!(a["available"] == expected, "a transfer whose answer was lost and its resubmit: account {id} has {}, not {expected}", a["available"]);
        }
        // The orders: each names its product and its amount with the currency.
        shopper.goto(&format!("{base}/#/orders")).await?;
        let row = shopper.find(&format!("#orders tr[data-order=\"{paid}\"]")).await?.text().await?;
        ensure!(row.contains(&format!("Brass {word}")) && row.contains("12.50 USD"), "the orders list row: {row}");
        shopper.shot("orders").await?;
        shopper.goto(&format!("{base}/#/orders/{paid}")).await?;
        let detail = shopper.find("#order-detail").await?.text().await?;
        ensure!(detail.contains(&format!("Brass {word}")) && detail.contains("12.50 USD") && !detail.contains("product "), "the order's detail: {detail}");
        shopper.shot("order-detail").await?;

        // 2. 0119 fails every attempt → FAILED; the operator abandons the dead letter → COMPENSATED.
        let failing = shopper.buy(&base, products[1], "4000000000000119").await?;
        shopper.sees_status("FAILED").await?;
        shopper.shot("failed").await?;

        let op = Person { b: driver.browser().await?, name: "operator", shots: shots.clone() };
        let outcome = async {
            op.goto(&format!("{base}/#/login")).await?;
            op.fill("#login-form input[name=username]", &operator).await?;
            op.fill("#login-form input[name=password]", &password).await?;
            op.click("#login-form button[type=submit]").await?;
            op.find("#signed-in-as").await?;
            op.goto(&format!("{base}/#/console?order_id={failing}")).await?;
            op.click(&format!("tr[data-order=\"{failing}\"] button")).await?;
            op.find("#dlq-abandon").await?;
            op.shot("dead-letter").await?;
            op.click_and_confirm("#dlq-abandon", true).await?;
            shopper.sees_status("COMPENSATED").await?;
            shopper.was_not_reloaded().await?;
            shopper.shot("compensated").await?;

            // 3. Outage on → a 4242 payment dead-letters; off → dry-run, replay → COMPLETED.
            op.goto(&format!("{base}/#/console")).await?;
            op.find("#outage-state").await?;
            // Cancelled, the switch stays as it was; confirmed, it turns.
            op.click_and_confirm("#outage-toggle", false).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            let state = op.find("#outage-state").await?.text().await?;
            ensure!(state == "off", "a cancelled outage switch turned: {state}");
            op.click_and_confirm("#outage-toggle", true).await?;
            op.b.wait().at_most(WITHIN).for_element(Locator::XPath("//strong[@id='outage-state' and starts-with(., 'ON')]")).await?;
            op.shot("outage-on").await?;
            let stuck = shopper.buy(&base, products[2], "4242424242424242").await?;
            shopper.sees_status("FAILED").await?;
            op.click_and_confirm("#outage-toggle", true).await?;
            op.b.wait().at_most(WITHIN).for_element(Locator::XPath("//strong[@id='outage-state' and .='off']")).await?;
            op.goto(&format!("{base}/#/console?order_id={stuck}")).await?;
            op.click(&format!("tr[data-order=\"{stuck}\"] button")).await?;
            op.find("#dlq-replay").await?;
            op.click("#dlq-detail button.secondary").await?; // the dry run first
            op.b.wait().at_most(WITHIN).for_element(Locator::XPath("//div[@id='dlq-result' and contains(., 'Dry run')]")).await?;
            op.shot("dry-run").await?;
            op.click("#dlq-replay").await?;
            shopper.sees_status("COMPLETED").await?;
            shopper.was_not_reloaded().await?;
            shopper.shot("replayed-completed").await?;
            op.shot("after-replay").await?;
            let steps = shopper.timeline().await?;
            ensure!(steps.first().map(String::as_str) == Some("ACCEPTED") && steps.last().map(String::as_str) == Some("COMPLETED") && steps.contains(&"FAILED".to_string()), "order {stuck}: timeline {steps:?}");
            anyhow::Ok(())
        }
        .await;
        if outcome.is_err() {
            let _ = op.shot("failure").await;
            eprintln!("operator's banner: {}", op.banner().await);
        }
        let _ = op.b.close().await;
        outcome
    }
    .await;
    if outcome.is_err() {
        let _ = shopper.shot("failure").await;
        eprintln!("shopper's banner: {}", shopper.banner().await);
    }
    let _ = shopper.b.close().await;
    outcome?;
    println!("{} screenshots in {}", std::fs::read_dir(&shots)?.count(), shots.display());
    Ok(())
}
