//! `edgeauth rule upload|versions|deploy|deployment|rollback|gc|logs`: a
//! tenant's rule versions and deployments, and the rules' execution logs,
//! through a running gateway's admin endpoints
//! (`/.edgeauth/admin/rules/<tenant>/...`, `EDGEAUTH_ADMIN_TOKEN`).
//!
//! Every command prints the gateway's JSON answer after a one-line summary,
//! and fails with the gateway's own reason when it refuses.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use edgeauth_rules::artifact;
use edgeauth_rules::config::DEFAULT_TENANT;

use serde_json::Value;

use crate::admin_cli::{self, Args};
use crate::client;

pub const USAGE: &str = "\
    edgeauth rule upload     OUT.rule --gateway URL [--tenant ID] [--no-deploy]
    edgeauth rule versions   RULE --gateway URL [--tenant ID]
    edgeauth rule deploy     RULE@VERSION... --gateway URL [--tenant ID]
    edgeauth rule deployment --gateway URL [--tenant ID]
    edgeauth rule rollback   [--to N] --gateway URL [--tenant ID]
    edgeauth rule gc         --gateway URL [--tenant ID]
    edgeauth rule logs       RULE --gateway URL [--tenant ID] [--limit N]

`upload` stores the artifact as an immutable version (the start of its
SHA-256; the same bytes again are the same version), prints it, and deploys
it unless --no-deploy. `deploy` switches the named rules to those versions at
once (the others keep theirs); `rollback` makes the previous deployment
active again, `rollback --to N` deployment N (a number `deployment` lists:
the active one and the 3 before it), each as a new deployment; `gc` deletes
the versions no kept deployment uses. Deploys and rollbacks of one tenant
may run at once (from several pipelines, through several instances): each
lands over the others' (compare-and-swap); after many at once the gateway
may answer 409 \"the deployment changed concurrently; retry\". Set
EDGEAUTH_ACTOR to say who uploads or deploys (default: $USER). EDGEAUTH_GATEWAY
may stand for --gateway, as for `edgeauth tenant` and `edgeauth profiles`.
";

/// Flags taking a value; `--no-deploy` (upload) is the one switch.
const WITH_VALUE: &[&str] = &["--gateway", "--tenant", "--limit", "--to"];

fn parse(args: &[String], switches: &[&str]) -> Result<Args> {
    Args::parse_with(args, WITH_VALUE, switches, USAGE)
}

fn tenant(a: &Args) -> &str {
    a.value("--tenant").unwrap_or(DEFAULT_TENANT)
}

/// `edgeauth rule <cmd> ...` for the commands of this module; `None` for others.
pub fn main(cmd: &str, args: &[String]) -> Option<Result<()>> {
    let run = || -> Result<()> {
        match cmd {
            "upload" => {
                let a = parse(args, &["--no-deploy"])?;
                let [path] = a.exactly("one artifact")?;
                upload(
                    Path::new(path),
                    &a.gateway()?,
                    tenant(&a),
                    !a.has("--no-deploy"),
                )
            }
            "versions" => {
                let a = parse(args, &[])?;
                let [rule] = a.exactly("one rule name")?;
                let url = format!("{}/{}/{rule}/versions", base(&a.gateway()?), tenant(&a));
                let v = call("GET", &url, None)?;
                let versions = v["versions"].as_array().map_or(0, Vec::len);
                println!(
                    "rule `{rule}` of tenant `{}`: {versions} version(s), active {}",
                    tenant(&a),
                    v["active"].as_str().unwrap_or("none")
                );
                print_json(&v)
            }
            "deploy" => {
                let a = parse(args, &[])?;
                if a.positional.is_empty() {
                    bail!("name at least one RULE@VERSION\n\n{USAGE}");
                }
                let url = format!("{}/{}/_deploy", base(&a.gateway()?), tenant(&a));
                let body = serde_json::json!({ "rules": a.positional });
                let v = call("POST", &url, Some(body.to_string().into_bytes()))?;
                summarize_deployment(tenant(&a), &v, "deployed");
                print_json(&v)
            }
            "deployment" => {
                let a = parse(args, &[])?;
                a.exactly::<0>("no arguments, only options")?;
                let url = format!("{}/{}/_deployment", base(&a.gateway()?), tenant(&a));
                print_json(&call("GET", &url, None)?)
            }
            "rollback" => {
                let a = parse(args, &[])?;
                a.exactly::<0>("no arguments, only options")?;
                let mut url = format!("{}/{}/_rollback", base(&a.gateway()?), tenant(&a));
                let to = match a.value("--to") {
                    Some(n) => Some(n.parse::<u64>().ok().filter(|n| *n > 0).with_context(|| {
                        format!("--to takes a deployment number (as `edgeauth rule deployment` lists them), not `{n}`")
                    })?),
                    None => None,
                };
                if let Some(n) = to {
                    url.push_str(&format!("?to={n}"));
                }
                let v = call("POST", &url, None)?;
                let what = to.map_or_else(
                    || "rolled back".to_owned(),
                    |n| format!("rolled back to deployment {n}"),
                );
                summarize_deployment(tenant(&a), &v, &what);
                print_json(&v)
            }
            "gc" => {
                let a = parse(args, &[])?;
                a.exactly::<0>("no arguments, only options")?;
                let url = format!("{}/{}/_gc", base(&a.gateway()?), tenant(&a));
                let v = call("POST", &url, None)?;
                let deleted: usize = v["deleted"].as_object().map_or(0, |m| {
                    m.values().filter_map(Value::as_array).map(Vec::len).sum()
                });
                println!(
                    "tenant `{}`: {deleted} unused version(s) deleted",
                    tenant(&a)
                );
                print_json(&v)
            }
            "logs" => {
                let a = parse(args, &[])?;
                let [rule] = a.exactly("one rule name")?;
                let mut url = format!("{}/{}/{rule}/logs", base(&a.gateway()?), tenant(&a));
                if let Some(n) = a.value("--limit") {
                    let n: u32 = n.parse().context("--limit takes a number")?;
                    url.push_str(&format!("?limit={n}"));
                }
                let v = call("GET", &url, None)?;
                print!("{}", run_lines(&v));
                print_json(&v)
            }
            _ => unreachable!("dispatched by name"),
        }
    };
    matches!(
        cmd,
        "upload" | "versions" | "deploy" | "deployment" | "rollback" | "gc" | "logs"
    )
    .then(run)
}

fn base(gateway: &str) -> String {
    format!("{gateway}/.edgeauth/admin/rules")
}

fn print_json(v: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

fn summarize_deployment(tenant: &str, v: &Value, what: &str) {
    let d = &v["deployment"];
    let versions = d["versions"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(r, v)| format!("{r}@{}", v.as_str().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    if v["changed"] == Value::Bool(false) {
        println!(
            "tenant `{tenant}`: already deployed (deployment {} is already active): {versions}",
            d["id"]
        );
    } else {
        println!(
            "tenant `{tenant}`: {what}, deployment {}: {versions}",
            d["id"]
        );
    }
}

/// One line per run, newest first: number, outcome (and failure kind),
/// version, duration, fuel, correlation id.
fn run_lines(v: &Value) -> String {
    let runs = v["runs"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = format!(
        "rule `{}` of tenant `{}`: last {} run(s), newest first\n",
        v["rule"].as_str().unwrap_or("?"),
        v["tenant"].as_str().unwrap_or("?"),
        runs.len()
    );
    for r in runs {
        let outcome = match r["kind"].as_str() {
            Some(kind) => format!("{} [{kind}]", r["outcome"].as_str().unwrap_or("?")),
            None => r["outcome"].as_str().unwrap_or("?").to_owned(),
        };
        out.push_str(&format!(
            "  #{:<5} at {:<10} {:<18} version {:<16} {:>8} us  fuel {:<10} {}\n",
            r["n"],
            r["at"],
            outcome,
            r["version"].as_str().unwrap_or("(pre-version)"),
            r["duration_us"],
            r["fuel"],
            r["correlation_id"].as_str().unwrap_or("")
        ));
    }
    out
}

fn actor() -> String {
    std::env::var("EDGEAUTH_ACTOR")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "cli".into())
}

/// One admin call; the gateway's `message` on a refusal.
fn call(method: &str, url: &str, body: Option<Vec<u8>>) -> Result<Value> {
    let token = std::env::var("EDGEAUTH_ADMIN_TOKEN")
        .context("set EDGEAUTH_ADMIN_TOKEN to the gateway's admin_token")?;
    let content_type = if url.ends_with("/versions") || !url.contains("/_") {
        "application/vnd.edgeauth.rule"
    } else {
        "application/json"
    };
    let body = body.map(|b| (b, content_type));
    let req = admin_cli::request(
        &token,
        method,
        url,
        body,
        Some(&actor()),
        Duration::from_secs(30),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let resp = rt
        .block_on(client::send(&req, Duration::from_secs(30)))
        .map_err(|e| anyhow!("{method} {url}: {e}"))?;
    let text = String::from_utf8_lossy(&resp.body);
    if !(200..300).contains(&resp.status) {
        match admin_cli::refusal(&resp.body) {
            Some(m) => bail!("refused (HTTP {}): {m}", resp.status),
            None => bail!("{method} {url}: HTTP {}: {}", resp.status, text.trim()),
        }
    }
    serde_json::from_str::<Value>(&text)
        .map_err(|_| anyhow!("{method} {url}: the answer is not JSON: {}", text.trim()))
}

/// Uploads an artifact as a version (and deploys it unless told not to).
fn upload(path: &Path, gateway: &str, tenant: &str, deploy: bool) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (header, _, _, _) =
        artifact::parse_unverified(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let rule = &header.name;
    let (method, url) = if deploy {
        ("PUT", format!("{}/{tenant}/{rule}", base(gateway)))
    } else {
        (
            "POST",
            format!("{}/{tenant}/{rule}/versions", base(gateway)),
        )
    };
    let v = call(method, &url, Some(bytes)).map_err(|e| {
        // Kept as before versions: scripts match "upload refused (HTTP n)".
        anyhow!("upload {e}")
    })?;
    let version = v["version"].as_str().unwrap_or("?");
    let new = if v["created"] == Value::Bool(true) {
        "new"
    } else {
        "already stored"
    };
    match v.get("deployment") {
        Some(d) => println!(
            "rule `{rule}` version {version} ({new}), deployed to tenant `{tenant}` (deployment {})",
            d["id"]
        ),
        None => println!(
            "rule `{rule}` version {version} ({new}) uploaded to tenant `{tenant}`; deploy it with `edgeauth rule deploy {rule}@{version} --tenant {tenant} --gateway {gateway}`"
        ),
    }
    println!("version: {version}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_and_names_are_parsed() {
        let p = parse(
            &args("a@1111111111111111 --gateway=http://gw/ --tenant acme b@2222222222222222"),
            &[],
        )
        .unwrap();
        assert_eq!(p.positional, ["a@1111111111111111", "b@2222222222222222"]);
        assert_eq!(p.gateway().unwrap(), "http://gw");
        assert_eq!(tenant(&p), "acme");
        let p = parse(&args("x.rule --no-deploy --gateway g"), &["--no-deploy"]).unwrap();
        assert!(p.has("--no-deploy"));
        assert_eq!(tenant(&p), "default");
        assert!(p.exactly::<1>("one artifact").is_ok());
    }

    #[test]
    fn runs_are_listed_one_line_each() {
        let v = serde_json::json!({"tenant": "acme", "rule": "roles", "runs": [
            {"n": 7, "at": 1700000000, "outcome": "failed", "kind": "trap", "version": "1111111111111111",
             "duration_us": 950, "fuel": 1234, "correlation_id": "cid-7", "logs": []},
            {"n": 6, "at": 1699999999, "outcome": "ok", "duration_us": 800, "fuel": 1000, "correlation_id": "cid-6"},
        ]});
        let text = run_lines(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "rule `roles` of tenant `acme`: last 2 run(s), newest first"
        );
        assert!(
            lines[1].contains("#7")
                && lines[1].contains("failed [trap]")
                && lines[1].ends_with("cid-7"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("(pre-version)") && lines[2].ends_with("cid-6"),
            "{}",
            lines[2]
        );
        assert!(
            !text.contains('{'),
            "the JSON after it starts at the first brace"
        );
    }

    #[test]
    fn mistakes_are_refused_with_the_usage() {
        let e = parse(&args("--no-deploy"), &[]).err().unwrap();
        assert!(
            e.to_string().starts_with("unknown option --no-deploy"),
            "{e}"
        );
        assert!(parse(&args("--gateway"), &[]).is_err());
        let p = parse(&args("a b"), &[]).unwrap();
        assert!(p.exactly::<1>("one rule name").is_err());
        assert!(p.exactly::<0>("no arguments, only options").is_err());
        if std::env::var_os("EDGEAUTH_GATEWAY").is_none() {
            assert!(parse(&[], &[]).unwrap().gateway().is_err());
        }
        // Not one of these commands: left to `rule_cmd`.
        assert!(main("build", &[]).is_none());
        let e = main("deploy", &args("--gateway http://127.0.0.1:9"))
            .unwrap()
            .unwrap_err();
        assert!(
            e.to_string().starts_with("name at least one RULE@VERSION"),
            "{e}"
        );
    }
}
