//! `identity [serve|migrate|keygen|create-user|token]`: a thin wrapper around the library.
//!
//! - `serve` (default): the HTTP API.
//! - `migrate`: database schema, then exit.
//! - `keygen <path>`: writes a new Ed25519 signing key (PKCS#8 PEM, mode 0600).
//! - `create-user <username> [--admin] [--password-stdin]`: creates a user (or promotes one with `--admin`).
//! - `token <username> [--admin] [--ttl SECS]`: prints an access token for that user.

use std::{io::BufRead, path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use identity::{
    Config,
    admin::{self, Provisioned},
    keys::SigningKey,
    passwords::{Password, Passwords},
    tokens::Issuer,
};
use sagaway_common::{http::shutdown_signal, service::cancel_on, telemetry};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "identity", about = "Sagaway identity service: accounts, login, and the JWT issuer")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the default).
    Serve,
    /// Create and migrate the database, then exit.
    Migrate,
    /// Write a new Ed25519 signing key (PKCS#8 PEM, mode 0600) to PATH and print its kid.
    Keygen { path: PathBuf },
    /// Create a user (printing a generated password once unless --password-stdin), or with --admin
    /// promote an existing one.
    CreateUser {
        username: String,
        /// Give the user the admin role (promotes an existing user).
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Print an access token for USERNAME (created with a random password when missing).
    Token {
        username: String,
        /// Make the user an admin first.
        #[arg(long)]
        admin: bool,
        /// Lifetime of the token in seconds (default: IDENTITY_ACCESS_TTL_SECS).
        #[arg(long, value_name = "SECS")]
        ttl: Option<u64>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            telemetry::init("identity");
            let app = identity::Application::build(Config::from_env()?).await?;
            let shutdown = CancellationToken::new();
            cancel_on(shutdown_signal(), shutdown.clone());
            app.run_until_stopped(shutdown).await
        }
        Command::Migrate => {
            telemetry::init("identity");
            identity::migrate(&Config::from_env()?).await
        }
        Command::Keygen { path } => {
            let key = SigningKey::generate();
            key.write_new(&path)?;
            println!("wrote {} (kid {})", path.display(), key.kid());
            Ok(())
        }
        Command::CreateUser { username, admin, password_stdin } => {
            logs_to_stderr();
            let config = Config::from_env()?;
            let password = if password_stdin { Some(read_password()?) } else { None };
            let pool = identity::connect(&config).await?;
            let passwords = Passwords::new(1).await?;
            let (outcome, user) = admin::provision(&pool, &passwords, &username, password, admin).await?;
            let roles = user.role_names().join(", ");
            match outcome {
                Provisioned::Created { generated_password } => {
                    println!("created user {username} (roles: {roles})");
                    if let Some(p) = generated_password {
                        println!("password: {}", p.expose());
                        eprintln!("(the password is shown only this once)");
                    }
                }
                Provisioned::Promoted => println!("promoted user {username} (roles: {roles}); password unchanged"),
                Provisioned::Existing if admin => println!("user {username} is already an admin; password unchanged"),
                Provisioned::Existing => bail!("user {username:?} already exists (use --admin to promote it)"),
            }
            Ok(())
        }
        Command::Token { username, admin, ttl } => {
            logs_to_stderr();
            let config = Config::from_env()?;
            let keys = config.signing_keys.load()?;
            let ttl = ttl.map(Duration::from_secs).unwrap_or(config.access_ttl);
            anyhow::ensure!(!ttl.is_zero(), "--ttl must be at least 1");
            let issuer = Issuer::new(keys, config.issuer_url(config.http_port), config.default_audiences.clone(), ttl)?;
            let pool = identity::connect(&config).await?;
            let passwords = Passwords::new(1).await?;
            println!("{}", admin::token_for(&pool, &passwords, &issuer, &username, admin).await?);
            Ok(())
        }
    }
}

/// The operator commands print their answer on stdout (a token, a password): logs go to stderr.
fn logs_to_stderr() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,sqlx=warn"));
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).try_init();
}

/// The first line of stdin, without its line ending.
fn read_password() -> anyhow::Result<Password> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
    let password = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
    anyhow::ensure!(!password.is_empty(), "no password on stdin");
    Ok(Password::new(password))
}
