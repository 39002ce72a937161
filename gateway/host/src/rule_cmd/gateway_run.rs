//! `edgeauth rule test X.rule`: a signed artifact runs where it was built to
//! run, in the gateway component. Its code is for the gateway's 32-bit Pulley
//! interpreter, which this 64-bit process cannot load; the component is
//! wasm32, so its embedded runtime can, and everything on the way is the
//! gateway's own: the signature checked against the trusted keys and the
//! artifact bound with the gateway's MAC at upload, the name it was signed
//! for, deserialization, the rule's budgets and the checks of its commands.
//!
//! The gateway is the one `edgeauth up` serves (the manifest's component, or
//! `--component`), started in this process on an ephemeral loopback port with
//! a temporary KV directory and settings made for this run: one tenant whose
//! `rules` chain is this rule's entry, `rule_keys` the key to trust, fresh
//! session and assertion keys and admin token. The artifact goes in through
//! the admin upload endpoint (`PUT .../rules/<tenant>/<rule>`), the event
//! through the admin dry run (`POST .../rules/<tenant>/_run`), whose answer
//! is printed as `rule test` prints a native run. Then the server stops and
//! the directory is removed. A refusal is the gateway's own text.
//!
//! The dry run makes no outbound calls (a rule's `http` call gets
//! `unreachable`, as with `--no-http`); `--now` stops the component's wall
//! clock at that instant for the run.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use edgeauth_core::encoding::b64url;
use edgeauth_rules::artifact::{self, TrustedKeys};
use edgeauth_rules::config::{self, RuleConfig};

use serde_json::{Value, json};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::run::{self, Prepared, Report};
use super::{Args, random, read, signing_key};
use crate::clock::Clock;
use crate::runtime_config::RuntimeConfig;
use crate::{Load, Options, client};

/// `rule test` flags for a signed artifact only.
pub(super) const VALUE_FLAGS: &[&str] = &["--key", "--trust", "--component", "--manifest"];

/// How long one admin call may take (the first request instantiates the
/// component; a rule's budget is far below).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The gateway's output kept when quiet; shown when something went wrong.
const CAPTURE_BYTES: usize = 1 << 20;

const RAN_IN: &str = "ran in the gateway component (pulley32)";

pub(super) fn test(a: &Args, path: &Path) -> Result<()> {
    let given = run::given(a)?;
    let bytes = read(path)?;
    // The name it was signed for, unless --name says otherwise (the gateway
    // then refuses it, as it would the upload). An unreadable header is the
    // gateway's to refuse too.
    let signed_name = artifact::parse_unverified(&bytes)
        .ok()
        .map(|(header, ..)| header.name)
        .unwrap_or_else(|| {
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("rule")
                .to_owned()
        });
    let Prepared {
        event,
        mut rule,
        now_ms,
    } = run::prepare(a, given, &signed_name)?;
    // The gateway gives the rule its entry's config: the one `prepare` chose.
    rule.config = event.config.value().clone();
    let trusted = trusted_keys(a)?;
    let secrets = a
        .value("--secrets")
        .map(|f| std::fs::read_to_string(f).with_context(|| format!("cannot read {f}")))
        .transpose()?;
    let manifest = manifest_path(a)?;
    // A rule without allowed hosts cannot call out anywhere.
    if !a.has("--no-http") && !rule.allowed_hosts.is_empty() {
        eprintln!(
            "note: the gateway's dry run makes no outbound calls: the rule's http calls to {} get `unreachable`, as with --no-http",
            rule.allowed_hosts.join(", ")
        );
    }
    let run = GatewayRun {
        manifest,
        component: a.value("--component").map(PathBuf::from),
        tenant: event.tenant_id.clone(),
        rules: rules_variable(&event.tenant_id, &rule),
        trusted,
        secrets,
        clock: now_ms.map_or(Clock::Real, |ms| Clock::Fixed(Duration::from_millis(ms))),
    };
    let event_json = serde_json::to_vec(&event)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let answer = tokio.block_on(run.run(&rule.name, bytes, event_json))?;
    report(&event.tenant_id, &rule, &answer)
}

/// The trusted keys (the gateway's `rule_keys`): `--trust` as given, else the
/// public half of the signing key (`--key FILE` or EDGEAUTH_RULE_SIGNING_KEY).
fn trusted_keys(a: &Args) -> Result<String> {
    let spec = match (a.value("--trust"), a.value("--key")) {
        (Some(_), Some(_)) => bail!("give --trust or --key, not both"),
        (Some(spec), None) => spec.to_owned(),
        (None, key) => {
            if key.is_none() && std::env::var_os("EDGEAUTH_RULE_SIGNING_KEY").is_none() {
                bail!(
                    "which key does the gateway trust? Pass --key FILE (the signing key: its public half is trusted), --trust kid:<public key>[,...] (as the gateway's rule_keys) or set EDGEAUTH_RULE_SIGNING_KEY"
                );
            }
            signing_key(key)?.public_spec()
        }
    };
    TrustedKeys::parse(&spec).map_err(|e| anyhow!("--trust: {e}"))?;
    Ok(spec)
}

/// `--manifest`, else `spin.toml` here (as `edgeauth up`), else the one of
/// the source tree this `edgeauth` was built from.
fn manifest_path(a: &Args) -> Result<PathBuf> {
    if let Some(m) = a.value("--manifest") {
        return Ok(PathBuf::from(m));
    }
    let here = PathBuf::from("spin.toml");
    if here.is_file() {
        return Ok(here);
    }
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spin.toml");
    if let Ok(built_from) = std::fs::canonicalize(built_from) {
        return Ok(built_from);
    }
    bail!(
        "no spin.toml here: pass --manifest PATH (the gateway's spin.toml) and, if its component is elsewhere, --component PATH"
    )
}

/// The `rules` variable: the tenant's chain is this one rule, from KV.
fn rules_variable(tenant: &str, rule: &RuleConfig) -> String {
    let entry = json!({
        "name": rule.name,
        "config": rule.config,
        "fuel": rule.fuel,
        "memory_bytes": rule.memory_bytes,
        "output_bytes": rule.output_bytes,
        "fail_open": rule.fail_open,
        "allowed_hosts": rule.allowed_hosts,
        "headers": rule.headers,
        "secrets": rule.secrets,
        "http_timeout_ms": rule.http_timeout_ms,
        "http_calls": rule.http_calls,
    });
    json!({"tenants": {tenant: {"chain": [entry]}}}).to_string()
}

/// The gateway's settings for the run: generated keys and token, `public_url`
/// on `local`; a tenant other than `default` is the one the `tenants`
/// variable has there.
fn variables(
    local: SocketAddr,
    tenant: &str,
    rules: &str,
    trusted: &str,
    secrets: Option<&str>,
    admin_token: &str,
) -> BTreeMap<String, String> {
    let secret = || {
        let mut b = [0u8; 32];
        random(&mut b);
        b64url(&b)
    };
    let public_url = format!("http://{local}");
    let mut v: BTreeMap<String, String> = [
        ("public_url", public_url.clone()),
        // Never called: the dry run signs no one in.
        ("origin_url", "http://127.0.0.1:9".into()),
        ("oidc_issuer", "http://127.0.0.1:9".into()),
        ("oidc_client_secret", "rule-test".into()),
        ("session_keys", format!("rt:{}", secret())),
        ("assertion_keys", format!("rt:ed25519:{}", secret())),
        ("tenant_store", String::new()),
        ("rules", rules.to_owned()),
        ("rule_keys", trusted.to_owned()),
        ("rule_secrets", secrets.unwrap_or_default().to_owned()),
        ("admin_token", admin_token.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let tenants = if tenant == config::DEFAULT_TENANT {
        String::new()
    } else {
        json!({tenant: {"public_url": public_url}}).to_string()
    };
    v.insert("tenants".into(), tenants);
    v
}

struct GatewayRun {
    manifest: PathBuf,
    component: Option<PathBuf>,
    tenant: String,
    rules: String,
    trusted: String,
    secrets: Option<String>,
    clock: Clock,
}

/// A temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let mut b = [0u8; 8];
        random(&mut b);
        let dir = std::env::temp_dir().join(format!(
            "edgeauth-rule-test-{}-{}",
            std::process::id(),
            b64url(&b)
        ));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl GatewayRun {
    /// Starts the gateway, uploads, dry-runs, stops it: the dry run's answer
    /// for the rule.
    async fn run(self, rule: &str, artifact: Vec<u8>, event: Vec<u8>) -> Result<Value> {
        let state = TempDir::new()?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot listen on 127.0.0.1")?;
        let local = listener.local_addr()?;
        let mut token = [0u8; 24];
        random(&mut token);
        let token = b64url(&token);
        let mut options = Options {
            manifest: Some(self.manifest.clone()),
            ..Options::default()
        };
        if let Some(c) = &self.component {
            options.component_overrides.push((None, c.clone()));
        }
        // Every variable the manifest declares gets its value here (a static
        // provider's, which beats SPIN_VARIABLE_*): this gateway's settings
        // are the run's alone.
        let declared = crate::manifest::Manifest::load(&self.manifest)?.variables;
        let mine = variables(
            local,
            &self.tenant,
            &self.rules,
            &self.trusted,
            self.secrets.as_deref(),
            &token,
        );
        let runtime_config = RuntimeConfig {
            static_variables: declared
                .iter()
                .map(|(name, decl)| {
                    let value = mine
                        .get(name)
                        .or(decl.default.as_ref())
                        .cloned()
                        .unwrap_or_default();
                    (name.clone(), value)
                })
                .collect(),
            ..RuntimeConfig::default()
        };
        let plan = crate::plan_with(&options, runtime_config)?;
        let wasm = plan.components[0].wasm.clone();
        if !wasm.is_file() {
            bail!(
                "the gateway component {} is missing: {}, or pass --component PATH",
                wasm.display(),
                plan.manifest.build_hint(&plan.components[0].id)
            );
        }
        let started = Instant::now();
        let capture = MemoryOutputPipe::new(CAPTURE_BYTES);
        let how = Load {
            limits: crate::server::Limits {
                request_timeout: CALL_TIMEOUT,
                ..Default::default()
            },
            cache: true,
            clock: self.clock,
            capture: Some(capture.clone()),
        };
        let server = crate::load(plan, &state.0, local, how).await?;
        eprintln!(
            "gateway: {} loaded in {} ms, on http://{local} (state in a temporary directory)",
            wasm.display(),
            started.elapsed().as_millis()
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = server.serve_until(listener, async move {
            let _ = stopped.await;
            "rule test done"
        });
        let base = format!("http://{local}/.edgeauth/admin/rules/{}", self.tenant);
        let calls = async {
            let uploaded = call(
                &token,
                "PUT",
                &format!("{base}/{rule}"),
                "application/vnd.edgeauth.rule",
                artifact,
            )
            .await
            .map_err(|e| e.context("the gateway refused the artifact"))?;
            eprintln!(
                "gateway: uploaded rule `{rule}` version {} for tenant `{}`",
                uploaded["version"].as_str().unwrap_or("?"),
                self.tenant
            );
            call(
                &token,
                "POST",
                &format!("{base}/_run"),
                "application/json",
                event,
            )
            .await
            .map_err(|e| e.context("the gateway's dry run failed"))
        };
        // The server stops once the calls are done, whatever they came to.
        let (_, answer) = tokio::join!(serving, async {
            let answer = calls.await;
            let _ = stop.send(());
            answer
        });
        match answer {
            Ok(v) => Ok(v),
            Err(e) if e.downcast_ref::<Refused>().is_some() => Err(e),
            // Not a refusal: what the gateway logged may say why.
            Err(e) => {
                let log = capture.contents();
                let log = String::from_utf8_lossy(&log);
                if !log.trim().is_empty() {
                    eprintln!("gateway log:\n{}", log.trim_end());
                }
                Err(e)
            }
        }
    }
}

/// The gateway said no, in its own words.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// One admin call; a refusal carries the gateway's `message`.
async fn call(
    token: &str,
    method: &str,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<Value> {
    let req = crate::admin_cli::request(
        token,
        method,
        url,
        Some((body, content_type)),
        Some("rule-test"),
        CALL_TIMEOUT,
    );
    let resp = client::send(&req, CALL_TIMEOUT)
        .await
        .map_err(|e| anyhow!("{method} {url}: {e}"))?;
    let text = String::from_utf8_lossy(&resp.body);
    if !(200..300).contains(&resp.status) {
        return Err(match crate::admin_cli::refusal(&resp.body) {
            Some(m) => anyhow::Error::new(Refused(format!("HTTP {}: {m}", resp.status))),
            None => anyhow!("{method} {url}: HTTP {}: {}", resp.status, text.trim()),
        });
    }
    serde_json::from_str::<Value>(&text)
        .map_err(|_| anyhow!("{method} {url}: the answer is not JSON: {}", text.trim()))
}

/// The dry run's answer for the rule, as `rule test` reports a native run.
fn report(tenant: &str, rule: &RuleConfig, answer: &Value) -> Result<()> {
    let result = answer["results"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r["rule"] == rule.name.as_str()))
        .with_context(|| format!("the dry run reported no result for the rule: {answer}"))?;
    let n = |field: &str| result[field].as_u64().unwrap_or(0);
    let logs: Vec<String> = result["logs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str().map(str::to_owned))
        .collect();
    for line in &logs {
        run::print_log(tenant, &rule.name, line);
    }
    let ran_in = format!("{RAN_IN}; load {} us", n("load_us"));
    let report = Report {
        rule,
        fuel: n("fuel"),
        instantiate_us: n("instantiate_us"),
        call_us: n("call_us"),
        total_us: n("load_us") + n("instantiate_us") + n("call_us"),
        ran_in: &ran_in,
    };
    match result.get("failure").and_then(Value::as_str) {
        // The lines were printed above.
        Some(kind) => Err(report.failed(kind, result["detail"].as_str().unwrap_or(""), &[])),
        None => report.ok(&result["commands"], n("memory_bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str) -> RuleConfig {
        let rules = config::parse(text, |_| false).unwrap();
        rules.tenants.values().next().unwrap().chain[0].clone()
    }

    #[test]
    fn the_rules_variable_is_the_entry_as_the_gateway_parses_it() {
        let given = entry(
            r#"{"tenants": {"acme": {"chain": [{"name": "r", "source": "file:r.rule", "config": {"a": 1},
                "fuel": 1000000, "memory_bytes": 1048576, "output_bytes": 4096, "fail_open": true,
                "allowed_hosts": ["https://crm.example"], "headers": ["x-plan"], "secrets": ["tok"],
                "http_timeout_ms": 500, "http_calls": 2}]}}}"#,
        );
        let text = rules_variable("acme", &given);
        let back = config::parse(&text, |_| false).unwrap();
        let back = &back.tenant("acme").unwrap().chain;
        assert_eq!(back.len(), 1);
        // Everything but where it comes from: the upload puts it in KV.
        assert_eq!(
            back[0],
            RuleConfig {
                source: config::Source::Kv,
                ..given
            }
        );
        let defaults = entry(r#"{"tenants": {"default": {"chain": [{"name": "d"}]}}}"#);
        let back = config::parse(&rules_variable("default", &defaults), |_| false).unwrap();
        assert_eq!(back.tenant("default").unwrap().chain[0], defaults);
    }

    #[test]
    fn settings_name_a_tenant_only_when_not_the_default() {
        let local: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        let v = variables(local, "default", "{}", "k:pub", None, "tok");
        assert_eq!(v["public_url"], "http://127.0.0.1:4321");
        assert_eq!(v["tenants"], "");
        assert_eq!(v["rule_keys"], "k:pub");
        assert_eq!(v["admin_token"], "tok");
        assert_eq!(v["rule_secrets"], "");
        assert!(v["session_keys"].starts_with("rt:"));
        assert!(v["assertion_keys"].starts_with("rt:ed25519:"));
        let v = variables(local, "acme", "{}", "k:pub", Some(r#"{"acme": {}}"#), "tok");
        let tenants: Value = serde_json::from_str(&v["tenants"]).unwrap();
        assert_eq!(tenants["acme"]["public_url"], "http://127.0.0.1:4321");
        assert_eq!(v["rule_secrets"], r#"{"acme": {}}"#);
        assert!(edgeauth_core::tenants::Tenants::parse(&v["tenants"]).is_ok());
    }

    #[test]
    fn the_trusted_key_is_given_or_derived_once() {
        let dir = std::env::temp_dir().join(format!("edgeauth-gw-run-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = artifact::SigningKey::from_seed("k1", [7; 32]);
        let file = dir.join("k1.key");
        std::fs::write(&file, format!("# signing key\n{}\n", key.secret_spec())).unwrap();
        let args = |s: &str| {
            Args::parse(
                &s.split_whitespace().map(str::to_owned).collect::<Vec<_>>(),
                VALUE_FLAGS,
            )
            .unwrap()
        };
        let from_key = trusted_keys(&args(&format!("--key {}", file.display()))).unwrap();
        assert_eq!(from_key, key.public_spec());
        let given = trusted_keys(&args(&format!("--trust {}", key.public_spec()))).unwrap();
        assert_eq!(given, key.public_spec());
        let both = args(&format!(
            "--trust {} --key {}",
            key.public_spec(),
            file.display()
        ));
        assert!(trusted_keys(&both).is_err());
        let bad = trusted_keys(&args("--trust nonsense"))
            .unwrap_err()
            .to_string();
        assert!(bad.starts_with("--trust"), "{bad}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_answer_is_reported_and_a_failure_is_an_error() {
        let rule = entry(r#"{"tenants": {"default": {"chain": [{"name": "r"}]}}}"#);
        let ok = json!({"results": [{"rule": "r", "commands": [{"command": "deny", "reason": "no"}],
            "logs": ["info: hi"], "fuel": 10, "memory_bytes": 65536, "load_us": 1, "instantiate_us": 2, "call_us": 3}]});
        assert!(report("default", &rule, &ok).is_ok());
        let failed = json!({"results": [{"rule": "r", "failure": "trap", "detail": "boom", "logs": [],
            "fuel": 10, "memory_bytes": 0, "load_us": 1, "instantiate_us": 2, "call_us": 3}]});
        let e = report("default", &rule, &failed).unwrap_err().to_string();
        assert!(
            e.contains("failed [trap]: boom") && e.contains("gateway component (pulley32)"),
            "{e}"
        );
        assert!(report("default", &rule, &json!({"results": []})).is_err());
    }
}
