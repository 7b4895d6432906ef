//! Settings of the identity service, from `IDENTITY_*` (plus `SAGAWAY_ENV`, `SAGAWAY_STATE_DIR`).
//! Every variable and default is listed in identity/README.md.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail, ensure};
use sagaway_common::config::{env_or, env_string};

use crate::{
    client::Cidr,
    keys::{KeySource, SigningKey},
    passwords::Password,
    throttle,
};

#[derive(Clone, Debug)]
pub struct Config {
    /// Address the HTTP server binds (`IDENTITY_HOST`, default 127.0.0.1).
    pub http_host: String,
    /// HTTP port (`IDENTITY_PORT`, default 3336; 0 = any free port).
    pub http_port: u16,
    /// The service's own database (`IDENTITY_DATABASE_URL`); created and migrated at start.
    pub database_url: String,
    /// Connection pool size (`IDENTITY_DB_MAX_CONNECTIONS`, default 16).
    pub db_max_connections: u32,
    /// The `iss` of every token and the base of the discovery URLs (`IDENTITY_ISSUER`). `None`:
    /// `http://<host>:<bound port>`, which is `http://127.0.0.1:3336` by default.
    pub issuer: Option<String>,
    /// The audiences a token may carry (`IDENTITY_AUDIENCES`, comma-separated; default: every
    /// service of the local stack, `sagaway-gateway,sagaway-product,sagaway-orchestrator,
    /// sagaway-payment,sagaway-bank-001,sagaway-bank-002,sagaway-bank-003`). A client names the
    /// ones it wants (`audience` / RFC 8707 `resource`); others are refused (`invalid_target`).
    pub audiences: Vec<String>,
    /// The `aud` of a token whose client named none (`IDENTITY_DEFAULT_AUDIENCES`, default: all of
    /// `audiences`), so the web app and `identity token` get tokens every service accepts.
    pub default_audiences: Vec<String>,
    /// Proxies whose `X-Forwarded-For` names the client (`IDENTITY_TRUSTED_PROXIES`: addresses or
    /// CIDR ranges, comma-separated; default none: the peer address is the client).
    pub trusted_proxies: Vec<Cidr>,
    /// Lifetime of an access token (`IDENTITY_ACCESS_TTL_SECS`, default 900).
    pub access_ttl: Duration,
    /// Lifetime of a refresh token; each rotation issues a new one with a full lifetime
    /// (`IDENTITY_REFRESH_TTL_SECS`, default 30 days).
    pub refresh_ttl: Duration,
    /// Failed-login throttling per (username, client address): `IDENTITY_LOGIN_MAX_FAILURES`
    /// (default 5) failures go through, then each needs a delay from `IDENTITY_LOGIN_BASE_DELAY_SECS`
    /// (1) doubling up to `IDENTITY_LOGIN_MAX_DELAY_SECS` (900); forgotten after
    /// `IDENTITY_LOGIN_WINDOW_SECS` (900) without an attempt.
    pub login_throttle: throttle::Policy,
    /// `IDENTITY_SIGNING_KEYS`; without it a development key when `SAGAWAY_ENV=dev`, else nothing
    /// (and the service refuses to start).
    pub signing_keys: KeySource,
    /// `IDENTITY_BOOTSTRAP_ADMIN=<username>:<password>`: an admin created at start-up; an existing
    /// user must already be an admin (the start is refused otherwise: see `admin::bootstrap_admin`).
    pub bootstrap_admin: Option<BootstrapAdmin>,
    /// Most password hashes computed at once (`IDENTITY_HASH_CONCURRENCY`, default: the number of
    /// CPUs). Each argon2id hash takes 19 MiB and a CPU for tens of milliseconds; more wait.
    pub hash_concurrency: usize,
    /// How often expired refresh tokens and login-failure windows are deleted
    /// (`IDENTITY_PURGE_INTERVAL_SECS`, default 600).
    pub purge_interval: Duration,
}

/// The operator account `IDENTITY_BOOTSTRAP_ADMIN` asks for. `Debug` hides the password.
#[derive(Clone, Debug)]
pub struct BootstrapAdmin {
    pub username: String,
    pub password: Password,
}

/// `<username>:<password>`, split at the first `:` (so the username cannot contain one; the
/// password may).
pub fn parse_bootstrap_admin(raw: &str) -> anyhow::Result<BootstrapAdmin> {
    let (username, password) = raw
        .split_once(':')
        .context("IDENTITY_BOOTSTRAP_ADMIN must be <username>:<password>")?;
    ensure!(!username.is_empty() && !password.is_empty(), "IDENTITY_BOOTSTRAP_ADMIN must be <username>:<password>");
    Ok(BootstrapAdmin { username: username.to_string(), password: Password::new(password) })
}

/// Where the signing keys come from: `IDENTITY_SIGNING_KEYS` (comma-separated paths), else in
/// development (`SAGAWAY_ENV=dev`) one generated key file under the state directory, else none.
pub fn key_source(signing_keys: Option<&str>, sagaway_env: Option<&str>, state_dir: Option<&str>) -> KeySource {
    let paths: Vec<PathBuf> = signing_keys
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    if !paths.is_empty() {
        return KeySource::Files(paths);
    }
    if sagaway_env.map(str::trim) == Some("dev") {
        let state = state_dir.map(str::trim).filter(|d| !d.is_empty()).unwrap_or("./.stack");
        return KeySource::DevFile(PathBuf::from(state).join("identity").join("dev-signing-key.pem"));
    }
    KeySource::Missing
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn mysql_port() -> u16 {
    env_or("SAGAWAY_MYSQL_PORT", 3307u16).unwrap_or(3307)
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        if var("IDENTITY_AUDIENCE").is_some() {
            bail!("IDENTITY_AUDIENCE is no longer read: every service checks its own audience; list them in IDENTITY_AUDIENCES (and IDENTITY_DEFAULT_AUDIENCES)");
        }
        let default_url = format!("mysql://sagaway:sagaway@127.0.0.1:{}/identity", mysql_port());
        let bootstrap_admin = var("IDENTITY_BOOTSTRAP_ADMIN").map(|raw| parse_bootstrap_admin(&raw)).transpose()?;
        let config = Self {
            http_host: env_string("IDENTITY_HOST", "127.0.0.1"),
            http_port: env_or("IDENTITY_PORT", 3336)?,
            database_url: sagaway_common::config::database_url("IDENTITY", &default_url)?,
            db_max_connections: env_or("IDENTITY_DB_MAX_CONNECTIONS", 16)?,
            issuer: var("IDENTITY_ISSUER"),
            audiences: audience_list(var("IDENTITY_AUDIENCES").as_deref()).unwrap_or_else(stack_audiences),
            default_audiences: audience_list(var("IDENTITY_DEFAULT_AUDIENCES").as_deref())
                .or_else(|| audience_list(var("IDENTITY_AUDIENCES").as_deref()))
                .unwrap_or_else(stack_audiences),
            trusted_proxies: var("IDENTITY_TRUSTED_PROXIES")
                .map(|raw| crate::client::parse_cidrs(&raw).map_err(|e| anyhow::anyhow!("IDENTITY_TRUSTED_PROXIES: {e}")))
                .transpose()?
                .unwrap_or_default(),
            access_ttl: Duration::from_secs(env_or("IDENTITY_ACCESS_TTL_SECS", 900)?),
            refresh_ttl: Duration::from_secs(env_or("IDENTITY_REFRESH_TTL_SECS", 30 * 24 * 3600)?),
            login_throttle: throttle::Policy {
                max_failures: env_or("IDENTITY_LOGIN_MAX_FAILURES", 5)?,
                base_delay: Duration::from_secs(env_or("IDENTITY_LOGIN_BASE_DELAY_SECS", 1)?),
                max_delay: Duration::from_secs(env_or("IDENTITY_LOGIN_MAX_DELAY_SECS", 900)?),
                window: Duration::from_secs(env_or("IDENTITY_LOGIN_WINDOW_SECS", 900)?),
            },
            signing_keys: key_source(
                var("IDENTITY_SIGNING_KEYS").as_deref(),
                var("SAGAWAY_ENV").as_deref(),
                var("SAGAWAY_STATE_DIR").as_deref(),
            ),
            bootstrap_admin,
            hash_concurrency: env_or("IDENTITY_HASH_CONCURRENCY", default_hash_concurrency())?,
            purge_interval: Duration::from_secs(env_or("IDENTITY_PURGE_INTERVAL_SECS", 600)?),
        };
        config.validate()?;
        Ok(config)
    }

    /// One instance for tests: the local MariaDB (`SAGAWAY_MYSQL_PORT`, default 3307) with its own
    /// `database`, a free port, a fresh in-memory signing key, the issuer derived from the bound
    /// port, and the default throttle (tests shorten `login_throttle.window`).
    pub fn local(database: &str) -> Self {
        Self {
            http_host: "127.0.0.1".into(),
            http_port: 0,
            database_url: format!("mysql://sagaway:sagaway@127.0.0.1:{}/{database}", mysql_port()),
            db_max_connections: 8,
            issuer: None,
            audiences: stack_audiences(),
            default_audiences: stack_audiences(),
            trusted_proxies: Vec::new(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            login_throttle: throttle::Policy::default(),
            signing_keys: KeySource::Keys(vec![SigningKey::generate()]),
            bootstrap_admin: None,
            hash_concurrency: 2,
            purge_interval: Duration::from_secs(600),
        }
    }

    /// Checks the settings that have no sensible zero.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.access_ttl.is_zero() {
            bail!("IDENTITY_ACCESS_TTL_SECS must be at least 1");
        }
        if self.refresh_ttl.is_zero() {
            bail!("IDENTITY_REFRESH_TTL_SECS must be at least 1");
        }
        let t = &self.login_throttle;
        if t.max_failures == 0 || t.window.is_zero() || t.base_delay.is_zero() || t.max_delay < t.base_delay {
            bail!("IDENTITY_LOGIN_MAX_FAILURES, IDENTITY_LOGIN_WINDOW_SECS and IDENTITY_LOGIN_BASE_DELAY_SECS must be at least 1, IDENTITY_LOGIN_MAX_DELAY_SECS at least the base delay");
        }
        if self.hash_concurrency == 0 {
            bail!("IDENTITY_HASH_CONCURRENCY must be at least 1");
        }
        if self.audiences.is_empty() || self.default_audiences.is_empty() {
            bail!("IDENTITY_AUDIENCES and IDENTITY_DEFAULT_AUDIENCES must name at least one audience");
        }
        if let Some(a) = self.default_audiences.iter().find(|a| !self.audiences.contains(a)) {
            bail!("IDENTITY_DEFAULT_AUDIENCES names {a:?}, which IDENTITY_AUDIENCES does not list");
        }
        Ok(())
    }

    /// The issuer URL once the port is known: `IDENTITY_ISSUER`, or `http://<host>:<port>`.
    pub fn issuer_url(&self, port: u16) -> String {
        match &self.issuer {
            Some(issuer) => issuer.trim_end_matches('/').to_string(),
            None if self.http_host.contains(':') => format!("http://[{}]:{port}", self.http_host),
            None => format!("http://{}:{port}", self.http_host),
        }
    }
}

/// The default audience of every service of the local stack (`sagaway_common::auth::stack_audiences`).
pub fn stack_audiences() -> Vec<String> {
    sagaway_common::auth::stack_audiences(sagaway_common::auth::STACK_BANKS)
}

/// A comma-separated list of audiences; `None` when it names none.
pub fn audience_list(raw: Option<&str>) -> Option<Vec<String>> {
    let list: Vec<String> = raw?.split(',').map(str::trim).filter(|a| !a.is_empty()).map(str::to_string).collect();
    (!list.is_empty()).then_some(list)
}

fn default_hash_concurrency() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_keys_are_comma_separated_paths_the_first_signing() {
        match key_source(Some(" /k/new.pem, /k/old.pem ,"), Some("dev"), None) {
            KeySource::Files(paths) => assert_eq!(paths, vec![PathBuf::from("/k/new.pem"), PathBuf::from("/k/old.pem")]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_keys_only_dev_gets_a_generated_key() {
        match key_source(None, Some("dev"), Some("/srv/state")) {
            KeySource::DevFile(p) => assert_eq!(p, PathBuf::from("/srv/state/identity/dev-signing-key.pem")),
            other => panic!("{other:?}"),
        }
        match key_source(Some(""), Some("dev"), None) {
            KeySource::DevFile(p) => assert_eq!(p, PathBuf::from("./.stack/identity/dev-signing-key.pem")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(key_source(None, None, None), KeySource::Missing));
        assert!(matches!(key_source(None, Some("production"), Some("/srv")), KeySource::Missing));
    }

    #[test]
    fn bootstrap_admin_splits_at_the_first_colon_and_hides_the_password() {
        let b = parse_bootstrap_admin("root:pa:ss:word").unwrap();
        assert_eq!(b.username, "root");
        assert_eq!(b.password.expose(), "pa:ss:word");
        assert!(!format!("{b:?}").contains("pa:ss"), "{b:?}");
        assert!(parse_bootstrap_admin("root").is_err());
        assert!(parse_bootstrap_admin(":pw").is_err());
        assert!(parse_bootstrap_admin("root:").is_err());
    }

    #[test]
    fn the_issuer_defaults_to_the_bound_address() {
        let mut c = Config::local("x");
        assert_eq!(c.issuer_url(3336), "http://127.0.0.1:3336");
        c.http_host = "::1".into();
        assert_eq!(c.issuer_url(3336), "http://[::1]:3336");
        c.issuer = Some("https://id.example.com/".into());
        assert_eq!(c.issuer_url(3336), "https://id.example.com");
    }

    #[test]
    fn the_default_audiences_are_every_service_of_the_stack_and_must_be_allowed() {
        let c = Config::local("x");
        assert_eq!(c.default_audiences, c.audiences);
        for a in ["sagaway-gateway", "sagaway-product", "sagaway-orchestrator", "sagaway-payment", "sagaway-bank-001", "sagaway-bank-003"] {
            assert!(c.default_audiences.iter().any(|d| d == a), "{a}");
        }
        assert_eq!(audience_list(Some(" a, b ,,")), Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(audience_list(Some(" , ")), None);
        let mut c = Config::local("x");
        c.default_audiences = vec!["elsewhere".into()];
        assert!(c.validate().is_err());
    }

    #[test]
    fn zero_limits_are_refused() {
        let mut c = Config::local("x");
        c.validate().unwrap();
        c.login_throttle.max_failures = 0;
        assert!(c.validate().is_err());
    }
}
