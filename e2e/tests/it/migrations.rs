//! Every table a service writes at run time comes from its migrations, never from code at start-up
//! (issue 10, defect 12). Needs only MariaDB of the local stack (`scripts/stack up --infra`).

use e2e::StackAddr;
use sqlx::{Connection, MySqlConnection, migrate::Migrator};

/// The services that consume with `inbox::ConsumerLoop`, which keeps its positions in `consumer_offsets`.
fn consumers() -> [(&'static str, &'static Migrator); 4] {
    [("product", &product::MIGRATOR), ("orchestrator", &orchestrator::MIGRATOR), ("payment", &payment::MIGRATOR), ("bank", &bank::MIGRATOR)]
}

/// The table as the services created it at run time before it moved into the migrations.
const RUNTIME_DDL: &str = "CREATE TABLE IF NOT EXISTS consumer_offsets (topic VARCHAR(255) NOT NULL, part INT NOT NULL, \
     next_offset BIGINT NOT NULL, PRIMARY KEY (topic, part)) ENGINE = InnoDB";

async fn fresh_database(stack: &StackAddr, service: &str) -> anyhow::Result<(String, MySqlConnection)> {
    let name = format!("{service}_t_mig_{}", uuid::Uuid::new_v4().simple());
    let mut admin = MySqlConnection::connect(&stack.mysql_url("")).await?;
    sqlx::query(&format!("CREATE DATABASE `{name}`")).execute(&mut admin).await?;
    admin.close().await?;
    Ok((name.clone(), MySqlConnection::connect(&stack.mysql_url(&name)).await?))
}

async fn drop_database(stack: &StackAddr, name: &str) {
    if let Ok(mut admin) = MySqlConnection::connect(&stack.mysql_url("")).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`")).execute(&mut admin).await;
    }
}

/// (column, type, key) of `consumer_offsets` in the connection's database.
async fn offsets_columns(conn: &mut MySqlConnection) -> anyhow::Result<Vec<(String, String, String)>> {
    Ok(sqlx::query_as(
        "SELECT CAST(column_name AS CHAR), CAST(data_type AS CHAR), CAST(column_key AS CHAR) FROM information_schema.columns \
         WHERE table_schema = DATABASE() AND table_name = 'consumer_offsets' ORDER BY ordinal_position",
    )
    .fetch_all(conn)
    .await?)
}

#[tokio::test]
async fn consumer_offsets_comes_from_each_consuming_services_migrations() -> anyhow::Result<()> {
    let stack = StackAddr::from_env();
    let expected = vec![
        ("topic".to_string(), "varchar".to_string(), "PRI".to_string()),
        ("part".to_string(), "int".to_string(), "PRI".to_string()),
        ("next_offset".to_string(), "bigint".to_string(), String::new()),
    ];
    for (service, migrator) in consumers() {
        // A new database: the migrations alone create the table, before any consumer starts.
        let (name, mut conn) = fresh_database(&stack, service).await?;
        migrator.run(&mut conn).await?;
        let columns = offsets_columns(&mut conn).await?;
        conn.close().await?;
        drop_database(&stack, &name).await;
        assert_eq!(columns, expected, "{service}: consumer_offsets after migrating a new database");

        // A database that got the table at run time, before the migration existed, migrates cleanly.
        let (name, mut conn) = fresh_database(&stack, service).await?;
        sqlx::query(RUNTIME_DDL).execute(&mut conn).await?;
        sqlx::query("INSERT INTO consumer_offsets (topic, part, next_offset) VALUES ('t', 0, 42)").execute(&mut conn).await?;
        let migrated = migrator.run(&mut conn).await;
        let kept: Option<i64> = sqlx::query_scalar("SELECT next_offset FROM consumer_offsets WHERE topic = 't' AND part = 0")
            .fetch_optional(&mut conn)
            .await?;
        conn.close().await?;
        drop_database(&stack, &name).await;
        migrated.map_err(|e| anyhow::anyhow!("{service}: migrating a database that already has consumer_offsets: {e}"))?;
        assert_eq!(kept, Some(42), "{service}: the stored positions survive the migration");
    }
    Ok(())
}

/// The shared tables' DDL lives once, in messaging/migrations: every consumer service embeds exactly
/// those files (its migrations directory links to them), so the copies cannot drift apart.
#[test]
fn the_shared_tables_come_from_messaging_migrations_in_every_consumer() {
    let shared = [
        ("inbox outbox", include_str!("../../../messaging/migrations/inbox_outbox.sql")),
        ("consumer offsets", include_str!("../../../messaging/migrations/consumer_offsets.sql")),
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (service, migrator) in consumers() {
        for (description, sql) in shared {
            let found: Vec<_> = migrator.iter().filter(|m| m.description == description).collect();
            assert_eq!(found.len(), 1, "{service} has one {description:?} migration");
            assert_eq!(found[0].sql.as_ref(), sql, "{service}: {description:?} is messaging/migrations' file");
            let file = root.join(format!("{service}/migrations/{}_{}.sql", found[0].version, description.replace(' ', "_")));
            let meta = std::fs::symlink_metadata(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(meta.file_type().is_symlink(), "{} links to messaging/migrations instead of copying it", file.display());
        }
    }
}
