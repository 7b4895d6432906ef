//! `product reindex`: asks a running product service to rebuild its search index
//! (`POST /admin/reindex`, an admin route) and prints its report.
//!
//! `product reindex [--url <URL>] [--token <JWT>]`: the token is an admin's bearer token, from
//! `--token` or `SAGAWAY_TOKEN` (as for the operator's `sagaway` command; on the local stack
//! `export SAGAWAY_TOKEN=$(scripts/stack token <you> --admin)`). The URL defaults to this
//! service's own address (`PRODUCT_HOST`, `PRODUCT_PORT`). Without a token nothing is sent.

/// What the command will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReindexCommand {
    /// The service's base URL, without a trailing `/`.
    pub url: String,
    pub token: String,
}

/// The usage line, for errors.
pub const USAGE: &str = "usage: product reindex [--url <URL>] [--token <JWT>] (or SAGAWAY_TOKEN)";

/// Parses the arguments after `reindex`. `env_token` is `SAGAWAY_TOKEN`; `--token` wins over it.
/// `default_url` is the service's own address. An empty token counts as none.
pub fn parse(args: &[String], env_token: Option<String>, default_url: &str) -> Result<ReindexCommand, String> {
    let (mut url, mut token) = (None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let slot = match name {
            "--url" => &mut url,
            "--token" => &mut token,
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other:?}; {USAGE}")),
        };
        let value = match inline {
            Some(v) => v,
            None => it.next().cloned().ok_or_else(|| format!("{name} needs a value; {USAGE}"))?,
        };
        *slot = Some(value);
    }
    let token = token.or(env_token).map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).ok_or_else(|| {
        "an admin's bearer token is required: --token <JWT> or SAGAWAY_TOKEN (local stack: scripts/stack token <you> --admin)".to_string()
    })?;
    let url = url.unwrap_or_else(|| default_url.to_string()).trim_end_matches('/').to_string();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("--url must be an http:// or https:// URL, not {url:?}"));
    }
    Ok(ReindexCommand { url, token })
}

/// The service's own address as a client reaches it: a wildcard bind address is asked on loopback.
pub fn own_url(host: &str, port: u16) -> String {
    let host = match host {
        "0.0.0.0" | "" => "127.0.0.1",
        "::" | "[::]" => "[::1]",
        h => h,
    };
    format!("http://{host}:{port}")
}

/// Sends the request; the report (JSON) on success, else an error naming the status and the
/// service's problem detail.
pub async fn run(cmd: &ReindexCommand) -> anyhow::Result<String> {
    let url = format!("{}/admin/reindex", cmd.url);
    // A reindex replays the whole CDC topic: it may take a while.
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(3600)).build()?;
    let res = client.post(&url).bearer_auth(&cmd.token).send().await.map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}"))?;
    let status = res.status();
    let body = res.text().await?;
    if status.is_success() {
        return Ok(body);
    }
    let detail = serde_json::from_str::<serde_json::Value>(&body).ok().and_then(|p| p["detail"].as_str().map(str::to_string)).unwrap_or(body);
    let hint = match status.as_u16() {
        401 => " (the token is missing, expired or not this issuer's)",
        403 => " (the token is not an admin's)",
        _ => "",
    };
    anyhow::bail!("reindex failed with HTTP {status}{hint}: {detail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    const OWN: &str = "http://127.0.0.1:3333";

    #[test]
    fn the_token_comes_from_the_flag_or_the_environment_and_is_required() {
        let cmd = |a: &str, env: Option<&str>| parse(&args(a), env.map(str::to_string), OWN);
        assert_eq!(cmd("--token a.b.c", None).unwrap(), ReindexCommand { url: OWN.into(), token: "a.b.c".into() });
        assert_eq!(cmd("", Some("e.n.v")).unwrap().token, "e.n.v");
        assert_eq!(cmd("--token=f.l.g", Some("e.n.v")).unwrap().token, "f.l.g", "the flag wins");
        for (a, env) in [("", None), ("", Some("  ")), ("--url http://h:1", None)] {
            let e = cmd(a, env).unwrap_err();
            assert!(e.contains("--token") && e.contains("SAGAWAY_TOKEN"), "{e}");
        }
    }

    #[test]
    fn the_url_defaults_to_the_service_and_may_be_given() {
        let cmd = |a: &str| parse(&args(a), Some("t".into()), OWN);
        assert_eq!(cmd("--url http://product:3333/").unwrap().url, "http://product:3333");
        assert_eq!(cmd("--url=https://p.example").unwrap().url, "https://p.example");
        assert!(cmd("--url product:3333").unwrap_err().contains("http://"));
        assert!(cmd("--url").unwrap_err().contains("needs a value"));
        assert!(cmd("--force").unwrap_err().contains("unknown argument"));
        assert_eq!(own_url("0.0.0.0", 3333), "http://127.0.0.1:3333");
        assert_eq!(own_url("10.0.0.5", 80), "http://10.0.0.5:80");
    }
}
