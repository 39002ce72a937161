//! `edgeauth rule test` (also `rule run`): one rule, one event, the way a
//! sign-in runs it: the gateway's runtime settings, the rule's budgets from
//! the tenant's `rules` entry (or the defaults), the gateway's checks of what
//! it returns. Prints the commands on stdout and the rule's log lines and
//! what it used of its budget on stderr.
//!
//! The rule comes as its crate (built here for wasm32-unknown-unknown), a
//! JavaScript rule's directory (built here with node and componentize-js),
//! a `.wasm` module or a component, run natively (pulley64); or as a signed
//! `.rule` artifact, code for the gateway's 32-bit interpreter, which runs
//! only inside the gateway: `super::gateway_run` runs it in the gateway
//! component itself. Both print the same report ([`Report`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use edgeauth_rules::artifact;
use edgeauth_rules::config::{self, RuleConfig};
use edgeauth_rules::event::{Event, HttpError, HttpRequest, HttpResponse, LogLevel};
use edgeauth_rules::runtime::Io;
use serde_json::Value;

use super::{Args, compile, componentize, native_runtime, random, read};
use crate::client;

/// Flags of `rule test` that take a value (the last four: a signed artifact
/// only, `super::gateway_run`).
pub(super) const VALUE_FLAGS: &[&str] = &[
    "--event",
    "--rules",
    "--tenant",
    "--name",
    "--secrets",
    "--now",
    "--config",
    "--key",
    "--trust",
    "--component",
    "--manifest",
];
/// Flags of `rule test` without a value.
pub(super) const SWITCHES: &[&str] = &["--no-http"];

/// A rule to run: its wasm and the name it goes by when none is given.
pub(super) struct RuleWasm {
    pub bytes: Vec<u8>,
    default_name: String,
}

/// The wasm of `path`: a rule's directory (a Rust crate, or a JavaScript
/// rule as `rule new --lang js` makes it) is built first (the built file's
/// path printed: it is the file `rule build` takes next).
pub(super) fn rule_wasm(path: &Path) -> Result<RuleWasm> {
    if path.is_dir() {
        let built = if path.join("Cargo.toml").is_file() {
            build_crate(path)?
        } else if path.join("package.json").is_file() {
            build_js(path)?
        } else {
            bail!(
                "{} is a directory without Cargo.toml or package.json: pass a rule crate, a JavaScript rule's directory (`edgeauth rule new --lang js`), a .wasm file or a component",
                path.display()
            );
        };
        eprintln!("built {}", built.wasm.display());
        return Ok(RuleWasm {
            bytes: read(&built.wasm)?,
            default_name: built.package,
        });
    }
    let bytes = read(path)?;
    if artifact::is_artifact(&bytes) {
        bail!(
            "{} is a signed artifact: code precompiled for the gateway's 32-bit interpreter, which runs only inside the gateway (`edgeauth rule test` runs it there). Validate or build the .wasm it was built from, or the rule's directory",
            path.display()
        );
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("rule");
    Ok(RuleWasm {
        bytes,
        default_name: stem
            .to_ascii_lowercase()
            .replace(['.', ' '], "-")
            .replace("rule_", "")
            .replace('_', "-"),
    })
}

/// A rule built from its directory: its package's name and the wasm made.
struct Built {
    package: String,
    wasm: PathBuf,
}

/// `cargo build --release --target wasm32-unknown-unknown` for the rule crate
/// in `dir` (its own workspace or a member of one); the `.wasm` it made.
fn build_crate(dir: &Path) -> Result<Built> {
    let manifest = dir.join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(&manifest)
        .output()
        .context("cannot run cargo (is Rust installed?)")?;
    if !out.status.success() {
        bail!(
            "cargo metadata for {}: {}",
            manifest.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let meta: Value = serde_json::from_slice(&out.stdout).context("cargo metadata output")?;
    let wanted = std::fs::canonicalize(&manifest)?;
    let package = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| {
            p["manifest_path"]
                .as_str()
                .and_then(|m| std::fs::canonicalize(m).ok())
                .is_some_and(|m| m == wanted)
        })
        .with_context(|| format!("{} names no package", manifest.display()))?;
    let name = package["name"].as_str().unwrap_or_default().to_owned();
    let lib = package["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| {
            t["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .and_then(|t| t["name"].as_str())
        .with_context(|| {
            format!("package `{name}` has no cdylib library: a rule crate needs `[lib] crate-type = [\"cdylib\"]`")
        })?
        .replace('-', "_");
    let target_dir = meta["target_directory"]
        .as_str()
        .context("cargo metadata gave no target directory")?;
    let status = Command::new(&cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-unknown-unknown",
            "--manifest-path",
        ])
        .arg(&manifest)
        .args(["--package", &name])
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!(
            "cargo build of `{name}` failed (the target may be missing: rustup target add wasm32-unknown-unknown)"
        );
    }
    Ok(Built {
        package: name,
        wasm: Path::new(target_dir)
            .join("wasm32-unknown-unknown/release")
            .join(format!("{lib}.wasm")),
    })
}

/// A JavaScript rule's directory, as `rule new --lang js` makes it: its
/// package.json names the rule (`name`) and its module (`main`), and `sdk`
/// links to plugins/sdk-js, whose build.mjs makes the component (the same
/// command as the package's `npm run build`). Built into `NAME.wasm` there,
/// through the host's cache directory when there is one (a build of
/// unchanged sources is copied instead of redone: ~20 s).
fn build_js(dir: &Path) -> Result<Built> {
    let manifest = dir.join("package.json");
    let text = std::fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let package: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}: not JSON: {e}", manifest.display()))?;
    let name = package["name"]
        .as_str()
        .filter(|n| config::valid_name(n))
        .with_context(|| {
            format!(
                "{}: `name` must be the rule's name (1-64 of a-z 0-9 - _)",
                manifest.display()
            )
        })?
        .to_owned();
    let main = package["main"].as_str().unwrap_or("rule.js");
    let builder = dir.join("sdk").join("build.mjs");
    if !builder.is_file() {
        bail!(
            "{} is missing: a JavaScript rule's directory links `sdk` to plugins/sdk-js of the edgeauth repository (`ln -s PATH/plugins/sdk-js {}`)",
            builder.display(),
            dir.join("sdk").display()
        );
    }
    let wasm = dir.join(format!("{name}.wasm"));
    let mut node = Command::new("node");
    node.current_dir(dir)
        .arg(Path::new("sdk").join("build.mjs"))
        .arg(main)
        .arg("-o")
        .arg(format!("{name}.wasm"));
    if let Some(cache) = crate::cache::default_dir() {
        node.arg("--cache").arg(cache);
    }
    // Its report goes to stderr with cargo's: stdout is the commands `rule
    // test` prints.
    node.stdout(std::io::stderr());
    let status = node.status().map_err(|e| {
        anyhow!(
            "cannot run node ({e}): a JavaScript rule is built with Node.js (20.18 or later) and componentize-js"
        )
    })?;
    if !status.success() {
        bail!(
            "the JavaScript build of `{name}` failed (above; componentize-js comes from `npm install` in {} or `npm ci` in the edgeauth repository)",
            dir.display()
        );
    }
    Ok(Built {
        package: name,
        wasm,
    })
}

/// `--now`: RFC 3339 (`2026-12-07T09:30:00Z`) or Unix time in milliseconds.
fn parse_now(text: &str) -> Result<u64> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().context("--now: Unix time in milliseconds");
    }
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            anyhow!("--now {text:?}: {e} (give RFC 3339, e.g. 2026-12-07T09:30:00Z, or Unix milliseconds)")
        })?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| anyhow!("--now {text:?} is before 1970"))
}

/// `--config`: JSON text, or `@FILE`.
fn parse_config(arg: &str) -> Result<Value> {
    let (text, from) = match arg.strip_prefix('@') {
        Some(file) => (
            std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?,
            file,
        ),
        None => (arg.to_owned(), "--config"),
    };
    serde_json::from_str(&text).map_err(|e| anyhow!("{from}: not JSON: {e}"))
}

struct LocalIo {
    http: bool,
    /// `--now`, else the real clock.
    now_ms: Option<u64>,
    rt: tokio::runtime::Runtime,
}

impl Io for LocalIo {
    fn now_ms(&mut self) -> u64 {
        self.now_ms.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0)
        })
    }

    fn random(&mut self, buf: &mut [u8]) {
        random(buf)
    }

    fn log(&mut self, tenant: &str, rule: &str, level: LogLevel, message: &str) {
        print_log(tenant, rule, &format!("{}: {message}", level.as_str()));
    }

    fn http(&mut self, req: &HttpRequest) -> Result<HttpResponse, HttpError> {
        if !self.http {
            eprintln!(
                "rule http (not sent, --no-http): {} {}",
                req.method, req.url
            );
            return Err(HttpError::Unreachable(
                "outbound calls disabled by --no-http".into(),
            ));
        }
        eprintln!("rule http: {} {}", req.method, req.url);
        let timeout = Duration::from_millis(u64::from(req.timeout_ms));
        self.rt.block_on(client::send(req, timeout))
    }
}

/// The tenant's entry for `name` in `--rules`, or the defaults.
pub(super) fn rule_entry(a: &Args, tenant: &str, name: &str) -> Result<RuleConfig> {
    match a.value("--rules") {
        Some(file) => {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?;
            let rules = config::parse(&text, |_| false).map_err(|e| anyhow!("{file}: {e}"))?;
            let t = rules.tenant(tenant).with_context(|| {
                format!(
                    "{file} has no tenant `{tenant}` (it has: {}; pass --tenant)",
                    rules.tenants.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
            t.chain.iter().find(|r| r.name == name).cloned().with_context(|| {
                format!(
                    "{file} has no rule `{name}` for tenant `{tenant}` (its chain: {}; pass --name)",
                    t.chain.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
                )
            })
        }
        None => {
            let text = serde_json::json!({"tenants": {tenant: {"chain": [{"name": name}]}}});
            let rules = config::parse(&text.to_string(), |_| false).map_err(|e| anyhow!(e))?;
            Ok(rules.tenants[tenant].chain[0].clone())
        }
    }
}

/// One run of one rule, as the gateway would make it: the event (with the
/// rule's config and granted secrets), the rule's entry, the clock.
pub(super) struct Prepared {
    pub event: Event,
    pub rule: RuleConfig,
    pub now_ms: Option<u64>,
}

/// What `rule test` reads before it knows the rule: the event file, the
/// clock and `--config` (checked before a crate is built).
pub(super) struct Given {
    event: Event,
    now_ms: Option<u64>,
    config: Option<Value>,
}

pub(super) fn given(a: &Args) -> Result<Given> {
    let event_path = a
        .value("--event")
        .context("--event EVENT.json is required (sample events: plugins/fixtures/)")?;
    let event_text =
        std::fs::read_to_string(event_path).with_context(|| format!("cannot read {event_path}"))?;
    Ok(Given {
        event: Event::from_file_text(&event_text).map_err(|e| anyhow!("{event_path}: {e}"))?,
        now_ms: a.value("--now").map(parse_now).transpose()?,
        config: a.value("--config").map(parse_config).transpose()?,
    })
}

/// The event, entry and clock for the rule `default_name` names unless
/// `--name` does.
pub(super) fn prepare(a: &Args, given: Given, default_name: &str) -> Result<Prepared> {
    let Given {
        mut event,
        now_ms,
        config: config_arg,
    } = given;
    let tenant = a.value("--tenant").map(str::to_owned).unwrap_or_else(|| {
        if event.tenant_id.is_empty() {
            config::DEFAULT_TENANT.to_owned()
        } else {
            event.tenant_id.clone()
        }
    });
    let name = a.value("--name").unwrap_or(default_name).to_owned();
    let rule = rule_entry(a, &tenant, &name)?;
    event.tenant_id = tenant.clone();
    event.rule_name = rule.name.clone();
    // The gateway gives a rule its entry's config; the event file's counts
    // only when no rules file says otherwise, and --config beats both.
    if let Some(c) = config_arg {
        event.config = c.into();
    } else if a.value("--rules").is_some() || event.config.is_null() {
        event.config = rule.config.clone().into();
    }
    if let Some(file) = a.value("--secrets") {
        let all = config::parse_secrets(&std::fs::read_to_string(file)?)
            .map_err(|e| anyhow!("{file}: {e}"))?;
        let mine = all.get(&tenant).cloned().unwrap_or_default();
        event.secrets = rule
            .secrets
            .iter()
            .filter_map(|s| mine.get(s).map(|v| (s.clone(), v.clone())))
            .collect();
    }
    Ok(Prepared {
        event,
        rule,
        now_ms,
    })
}

pub(super) fn test(a: &Args) -> Result<()> {
    let path = a.one_file("rule (its directory, a .wasm module, a component or a signed .rule)")?;
    if path.is_file() && artifact::is_artifact(&read(&path)?) {
        return super::gateway_run::test(a, &path);
    }
    if let Some(flag) = super::gateway_run::VALUE_FLAGS
        .iter()
        .find(|f| a.value(f).is_some())
    {
        bail!(
            "{flag} is for a signed .rule artifact (run in the gateway component); {} is not one",
            path.display()
        );
    }
    let given = given(a)?;
    let wasm = rule_wasm(&path)?;
    let Prepared {
        event,
        rule,
        now_ms,
    } = prepare(a, given, &wasm.default_name)?;
    let component_bytes = componentize(&wasm.bytes)?;
    let rt = native_runtime()?;
    let component = compile(&rt, &component_bytes, &path)?;
    rt.check(&component)
        .map_err(|e| anyhow!("{} is not a valid rule: {e}", path.display()))?;
    let io = LocalIo {
        http: !a.has("--no-http"),
        now_ms,
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    let started = Instant::now();
    let ran = rt.run(&component, &rule, &event, Box::new(io));
    let report = |fuel, instantiate_us, call_us| Report {
        rule: &rule,
        fuel,
        instantiate_us,
        call_us,
        total_us: started.elapsed().as_micros() as u64,
        ran_in: "native pulley64; the gateway runs pulley32",
    };
    match ran {
        Ok(outcome) => report(outcome.fuel_used, outcome.instantiate_us, outcome.call_us).ok(
            &serde_json::to_value(&outcome.commands)?,
            outcome.memory_bytes as u64,
        ),
        // Its log lines were printed as it ran; repeated here as the
        // gateway's audit line carries them.
        Err(failed) => Err(
            report(failed.fuel_used, failed.instantiate_us, failed.call_us).failed(
                failed.failure.kind(),
                &failed.failure.to_string(),
                &failed.logs,
            ),
        ),
    }
}

/// One of the rule's log lines (`level: message`) on stderr.
pub(super) fn print_log(tenant: &str, rule: &str, line: &str) {
    eprintln!("rule log [{tenant}/{rule}] {line}");
}

/// What a run of the rule used, wherever it ran: the one report of `rule
/// test`, commands on stdout and the rest on stderr.
pub(super) struct Report<'a> {
    pub rule: &'a RuleConfig,
    pub fuel: u64,
    pub instantiate_us: u64,
    pub call_us: u64,
    pub total_us: u64,
    /// Where it ran, the end of the summary line.
    pub ran_in: &'a str,
}

impl Report<'_> {
    /// A successful run: its commands, then the summary line.
    pub fn ok(&self, commands: &Value, memory_bytes: u64) -> Result<()> {
        println!("{}", serde_json::to_string_pretty(commands)?);
        eprintln!(
            "rule `{}` OK: {} command(s); fuel {} of {}; memory {} of {} bytes; instantiate {} us, call {} us, {} us in all ({})",
            self.rule.name,
            commands.as_array().map_or(0, Vec::len),
            self.fuel,
            self.rule.fuel,
            memory_bytes,
            self.rule.memory_bytes,
            self.instantiate_us,
            self.call_us,
            self.total_us,
            self.ran_in
        );
        Ok(())
    }

    /// A failed run: the error to exit with, after `logs` (the rule's lines
    /// before it failed) are repeated.
    pub fn failed(&self, kind: &str, detail: &str, logs: &[String]) -> anyhow::Error {
        let fail_open = if self.rule.fail_open {
            " (fail-open: the gateway would skip it)"
        } else {
            " (the sign-in would fail closed)"
        };
        for line in logs {
            eprintln!("rule `{}` logged before failing: {line}", self.rule.name);
        }
        anyhow!(
            "rule `{}` failed [{kind}]: {detail} after fuel {} of {}, {} us{fail_open} ({})",
            self.rule.name,
            self.fuel,
            self.rule.fuel,
            self.instantiate_us + self.call_us,
            self.ran_in
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_takes_rfc3339_or_milliseconds() {
        assert_eq!(
            parse_now("2026-12-07T09:30:00Z").unwrap(),
            1_796_635_800_000
        );
        assert_eq!(
            parse_now("2026-12-07T10:30:00.250+01:00").unwrap(),
            1_796_635_800_250
        );
        assert_eq!(parse_now("1796635800000").unwrap(), 1_796_635_800_000);
        for bad in ["", "yesterday", "2026-12-07", "1969-12-31T23:59:59Z"] {
            assert!(parse_now(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_is_json_or_a_file() {
        assert_eq!(
            parse_config(r#"{"domains": ["example.com"]}"#).unwrap()["domains"][0],
            "example.com"
        );
        let err = parse_config("{domains").unwrap_err().to_string();
        assert!(err.contains("--config: not JSON"), "{err}");
        assert!(parse_config("@/nonexistent/c.json").is_err());
    }

    #[test]
    fn signed_artifacts_are_refused_with_what_to_pass() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.rule");
        std::fs::write(&f, [artifact::MAGIC, b"rest".as_slice()].concat()).unwrap();
        let err = rule_wasm(&f).err().unwrap().to_string();
        assert!(
            err.contains("signed artifact") && err.contains(".wasm"),
            "{err}"
        );
        assert!(artifact::is_artifact(&read(&f).unwrap()));
        assert!(!artifact::is_artifact(b"\0asm\x01\0\0\0"));
        let err = rule_wasm(dir.path()).err().unwrap().to_string();
        assert!(err.contains("without Cargo.toml or package.json"), "{err}");
    }

    #[test]
    fn a_javascript_rule_directory_says_what_it_lacks() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("package.json");
        std::fs::write(&pkg, "{not json").unwrap();
        let err = rule_wasm(dir.path()).err().unwrap().to_string();
        assert!(err.contains("package.json: not JSON"), "{err}");
        std::fs::write(&pkg, r#"{"name": "@scope/Rule"}"#).unwrap();
        let err = rule_wasm(dir.path()).err().unwrap().to_string();
        assert!(err.contains("`name` must be the rule's name"), "{err}");
        std::fs::write(&pkg, r#"{"name": "my-rule", "main": "rule.js"}"#).unwrap();
        let err = rule_wasm(dir.path()).err().unwrap().to_string();
        assert!(
            err.contains("sdk/build.mjs is missing") && err.contains("plugins/sdk-js"),
            "{err}"
        );
    }
}
