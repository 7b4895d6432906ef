//! The service around the API: OpenAPI, health, refusing to start without keys, and the operator
//! commands of the binary (`keygen`, `create-user`, `token`).

use crate::common;

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Stdio},
};

use identity::keys::{KeySource, SigningKey};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_and_health_checks_the_database() {
    let app = common::spawn().await;
    let doc = app.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    for (path, method) in [
        ("/auth/signup", "post"),
        ("/auth/login", "post"),
        ("/auth/refresh", "post"),
        ("/auth/logout", "post"),
        ("/auth/token", "post"),
        ("/.well-known/jwks.json", "get"),
        ("/.well-known/openid-configuration", "get"),
    ] {
        assert!(doc.body["paths"][path][method].is_object(), "{method} {path} missing from /openapi.json");
    }
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.body, json!({"service": "identity", "status": "ready", "checks": {"database": "up"}}));
    assert_eq!(app.get("/health/live").await.status, 200);
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("sagaway_http_requests_total"), "{metrics}");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_signing_keys_the_service_refuses_to_start() {
    let mut config = identity::Config::local(&common::test_database());
    config.signing_keys = KeySource::Missing;
    let err = identity::Application::build(config).await.err().expect("no keys, no start");
    assert!(format!("{err:#}").contains("IDENTITY_SIGNING_KEYS"), "{err:#}");

    // The binary: no IDENTITY_SIGNING_KEYS and not SAGAWAY_ENV=dev → a clear error, exit non-zero.
    let out = identity_bin()
        .env_remove("IDENTITY_SIGNING_KEYS")
        .env_remove("SAGAWAY_ENV")
        .env("IDENTITY_PORT", "0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("IDENTITY_SIGNING_KEYS is not set"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_create_user_and_token_commands() {
    let dir = temp_dir();
    let key_path = dir.join("signing.pem");
    let keygen = identity_bin().arg("keygen").arg(&key_path).output().unwrap();
    assert!(keygen.status.success(), "{}", String::from_utf8_lossy(&keygen.stderr));
    let key = SigningKey::load(&key_path).unwrap();
    assert!(String::from_utf8_lossy(&keygen.stdout).contains(key.kid()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(!identity_bin().arg("keygen").arg(&key_path).output().unwrap().status.success(), "never overwrites");

    // An app on the same database and key, as `scripts/stack` would run it.
    let app = common::spawn_with(|c| c.signing_keys = KeySource::Files(vec![key_path.clone()])).await;
    let env = |cmd: &mut Command| {
        cmd.env("IDENTITY_DATABASE_URL", &app.config.database_url)
            .env("IDENTITY_SIGNING_KEYS", &key_path)
            .env("IDENTITY_ISSUER", app.issuer.issuer())
            .env_remove("SAGAWAY_ENV");
    };

    // create-user with the password on stdin
    let mut cmd = identity_bin();
    env(&mut cmd);
    let mut child = cmd.args(["create-user", "operator", "--admin", "--password-stdin"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"operator's long password\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("operator's long password"));
    let login = app.login("operator", "operator's long password").await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(app.verify(login.body["access_token"].as_str().unwrap()).await.unwrap()["roles"], json!(["customer", "admin"]));

    // create-user without a password prints a generated one, once; it works for login
    let mut cmd = identity_bin();
    env(&mut cmd);
    let out = cmd.args(["create-user", "erin"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let password = stdout.lines().find_map(|l| l.strip_prefix("password: ")).expect("the generated password is printed");
    assert_eq!(app.login("erin", password).await.status, 200);
    // again without --admin: it exists → error; with --admin: promoted
    let mut cmd = identity_bin();
    env(&mut cmd);
    assert!(!cmd.args(["create-user", "erin"]).output().unwrap().status.success());

    // IDENTITY_BOOTSTRAP_ADMIN naming erin (a customer) refuses to start, saying why.
    let mut cmd = identity_bin();
    env(&mut cmd);
    let child = cmd.env("IDENTITY_BOOTSTRAP_ADMIN", "erin:someone else's password").env("IDENTITY_PORT", "0").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let (status, stderr) = exits_within(child, std::time::Duration::from_secs(60));
    assert!(!status.success(), "the squatted bootstrap admin must not start the service");
    assert!(stderr.contains("IDENTITY_BOOTSTRAP_ADMIN") && stderr.contains("\"erin\" already exists and is not an admin"), "{stderr}");
    let erin = app.login("erin", password).await;
    assert_eq!(app.verify(erin.body["access_token"].as_str().unwrap()).await.unwrap()["roles"], json!(["customer"]), "erin was not promoted");

    // token: prints only a token, for an existing user or a new one, promoted with --admin
    let mut cmd = identity_bin();
    env(&mut cmd);
    let out = cmd.args(["token", "frank", "--admin", "--ttl", "120"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(token.trim_end().lines().count(), 1, "{token}");
    let claims = app.verify(token.trim()).await.unwrap();
    assert_eq!((claims["sub"].clone(), claims["roles"].clone()), (json!("frank"), json!(["customer", "admin"])));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 120);
    let mut cmd = identity_bin();
    env(&mut cmd);
    let out = cmd.args(["token", "erin"]).output().unwrap();
    let claims = app.verify(String::from_utf8(out.stdout).unwrap().trim()).await.unwrap();
    assert_eq!(claims["roles"], json!(["customer"]));

    app.cleanup().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_dev_mode_a_key_is_generated_once_under_the_state_dir() {
    let dir = temp_dir();
    let database = common::test_database();
    let url = identity::Config::local(&database).database_url;
    let token = |user: &str| {
        let out = identity_bin()
            .args(["token", user])
            .env_remove("IDENTITY_SIGNING_KEYS")
            .env("SAGAWAY_ENV", "dev")
            .env("SAGAWAY_STATE_DIR", &dir)
            .env("IDENTITY_DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("DEVELOPMENT signing key"), "the dev key is announced");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (a, b) = (token("gina"), token("hank"));
    let key = SigningKey::load(&dir.join("identity/dev-signing-key.pem")).unwrap();
    for t in [a, b] {
        assert_eq!(jsonwebtoken::decode_header(&t).unwrap().kid.as_deref(), Some(key.kid()), "one key, reused");
    }
    let pool = sqlx::MySqlPool::connect(&url).await.unwrap();
    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{database}`")).execute(&pool).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Waits for `child` to exit (killing it after `limit`: a service that started serving instead).
fn exits_within(mut child: std::process::Child, limit: std::time::Duration) -> (std::process::ExitStatus, String) {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (status, stderr);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}: it started serving");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn identity_bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_identity"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("identity-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
