//! MariaDB access: each service owns one database on the shared server.

use std::time::Duration;

use anyhow::Context;
use sqlx::{
    MySql, MySqlPool,
    migrate::{MigrateDatabase, Migrator},
    mysql::MySqlPoolOptions,
};

/// Creates the database named in `url` when it does not exist, runs `migrator`, and returns a pool.
pub async fn connect_and_migrate(url: &str, max_connections: u32, migrator: &Migrator) -> anyhow::Result<MySqlPool> {
    if !MySql::database_exists(url).await.with_context(|| format!("cannot reach MariaDB at {}", redact(url)))? {
        // Two processes may race to create it; losing that race is fine.
        if let Err(e) = MySql::create_database(url).await
            && !MySql::database_exists(url).await.unwrap_or(false)
        {
            return Err(e).context("creating the service database");
        }
    }
    let pool = MySqlPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .with_context(|| format!("connecting to {}", redact(url)))?;
    migrator.run(&pool).await.context("running migrations")?;
    Ok(pool)
}

/// The URL without its password, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme], user, &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

/// True when `err` is MariaDB's duplicate-key error (1062), which callers turn into a 409.
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("23000") && db.message().contains("Duplicate"))
}

/// True for errors that only mean "another transaction got in the way" (deadlock victim, lock wait
/// timeout): the whole transaction can simply be run again.
pub fn is_retryable_conflict(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db)
        if db.code().as_deref() == Some("40001") || db.message().contains("Deadlock") || db.message().contains("Lock wait timeout"))
}

/// A pool that connects on first use, giving up after `acquire_timeout` (probes and tests of an
/// unreachable server).
pub fn lazy(url: &str, acquire_timeout: Duration) -> anyhow::Result<MySqlPool> {
    MySqlPoolOptions::new().acquire_timeout(acquire_timeout).connect_lazy(url).with_context(|| format!("the database URL {}", redact(url)))
}
