//! Settings from the environment: every setting has a default, and a value that is set but does
//! not parse stops the start with the variable's name.

use std::{fmt::Display, str::FromStr};

use anyhow::{Context, anyhow};

/// Reads `key` from the environment and parses it, or returns `default` when it is unset or empty.
pub fn env_or<T>(key: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: Display,
{
    match std::env::var(key) {
        Ok(raw) if !raw.trim().is_empty() => raw
            .trim()
            .parse::<T>()
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("environment variable {key}={raw:?} is invalid")),
        _ => Ok(default),
    }
}

/// Reads a string setting, or `default` when unset or empty.
pub fn env_string(key: &str, default: &str) -> String {
    match std::env::var(key) {
        Ok(raw) if !raw.trim().is_empty() => raw,
        _ => default.to_string(),
    }
}

/// `<PREFIX>_DATABASE_URL` (or `default`), with the password taken from the file named by
/// `<PREFIX>_DATABASE_PASSWORD_FILE` when that is set (a mounted secret): deployments then keep
/// the password out of the URL, the manifests and the process environment.
pub fn database_url(prefix: &str, default: &str) -> anyhow::Result<String> {
    let url = env_string(&format!("{prefix}_DATABASE_URL"), default);
    let file_var = format!("{prefix}_DATABASE_PASSWORD_FILE");
    match std::env::var(&file_var) {
        Ok(path) if !path.trim().is_empty() => {
            let password = std::fs::read_to_string(path.trim()).with_context(|| format!("{file_var}: cannot read {path}"))?;
            with_password(&url, password.trim()).with_context(|| format!("{prefix}_DATABASE_URL with the password of {file_var}"))
        }
        _ => Ok(url),
    }
}

/// `url` with its password replaced by `password` (percent-encoded as a URL needs).
fn with_password(url: &str, password: &str) -> anyhow::Result<String> {
    anyhow::ensure!(!password.is_empty(), "the password file is empty");
    let mut parsed = url::Url::parse(url).context("not a URL")?;
    anyhow::ensure!(!parsed.username().is_empty(), "the URL names no user");
    parsed.set_password(Some(password)).map_err(|()| anyhow!("this URL cannot carry a password"))?;
    Ok(parsed.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_replaces_the_urls_password_encoded() {
        assert_eq!(with_password("mysql://sagaway@db:3306/product", "s3cret").unwrap(), "mysql://sagaway:s3cret@db:3306/product");
        assert_eq!(with_password("mysql://sagaway:old@db:3306/product", "p@ss/w:rd").unwrap(), "mysql://sagaway:p%40ss%2Fw%3Ard@db:3306/product");
        assert!(with_password("mysql://db:3306/product", "x").is_err(), "no user to give the password to");
        assert!(with_password("mysql://sagaway@db/product", "").is_err(), "an empty file is a mistake, not a password");
    }

    #[test]
    fn database_url_reads_the_password_file_named_by_the_prefix() {
        let dir = std::env::temp_dir().join(format!("sagaway-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("db_password");
        std::fs::write(&file, "from-the-file\n").unwrap();
        // SAFETY: this test alone uses the CONFIGTEST_ prefix; no other thread reads these variables.
        unsafe {
            std::env::set_var("CONFIGTEST_DATABASE_URL", "mysql://svc@db:3306/x");
            std::env::set_var("CONFIGTEST_DATABASE_PASSWORD_FILE", &file);
        }
        assert_eq!(database_url("CONFIGTEST", "unused").unwrap(), "mysql://svc:from-the-file@db:3306/x");
        unsafe { std::env::set_var("CONFIGTEST_DATABASE_PASSWORD_FILE", dir.join("missing")) };
        assert!(database_url("CONFIGTEST", "unused").is_err(), "a named file that cannot be read stops the start");
        unsafe { std::env::remove_var("CONFIGTEST_DATABASE_PASSWORD_FILE") };
        assert_eq!(database_url("CONFIGTEST", "unused").unwrap(), "mysql://svc@db:3306/x");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
