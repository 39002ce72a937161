//! `edgeauth rule ...`: the tenant's and operator's rule tooling.
//!
//! - `keygen` makes the operator's Ed25519 signing key;
//! - `validate` checks a rule (`.wasm` core module or component) against the
//!   `post-login` world and its imports;
//! - `build` validates, precompiles for the gateway's embedded Pulley runtime
//!   and signs, producing the artifact the gateway loads;
//! - `run` runs a rule locally against a JSON event and prints its commands,
//!   with the same budgets and checks as the gateway;
//! - `inspect` prints an artifact's signed header;
//! - `upload` puts an artifact into a running gateway's KV through its admin
//!   endpoint.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use edgeauth_rules::artifact::{self, RUNTIME_ID, SigningKey};
use edgeauth_rules::config::{self, RuleConfig};
use edgeauth_rules::event::{Event, HttpError, HttpRequest, HttpResponse, LogLevel};
use edgeauth_rules::runtime::{self, Io, Runtime};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

use crate::client;

pub const USAGE: &str = "\
edgeauth rule: build, test and ship tenant post-login rules (wit/plugin.wit)

USAGE:
    edgeauth rule keygen   [--kid ID]
    edgeauth rule validate RULE.wasm
    edgeauth rule build    RULE.wasm --name NAME [--key FILE] [-o OUT.rule]
    edgeauth rule run      RULE.wasm --event EVENT.json [--rules RULES.json] [--tenant ID]
                           [--name NAME] [--secrets SECRETS.json] [--no-http]
    edgeauth rule inspect  OUT.rule
    edgeauth rule upload   OUT.rule --gateway URL [--tenant ID]

RULE.wasm is a wasm32-unknown-unknown module built with the edgeauth-plugin SDK
(turned into a component here) or a component. The signing key is read from
--key FILE or EDGEAUTH_RULE_SIGNING_KEY (`kid:<base64url seed>`); upload reads
the admin token from EDGEAUTH_ADMIN_TOKEN. `run` uses the rule's budgets from
--rules (the gateway's `rules` JSON) or the defaults, and makes real outbound
calls to the rule's allowed hosts unless --no-http.
";

struct Args {
    positional: Vec<String>,
    flags: Vec<(String, Option<String>)>,
}

impl Args {
    fn parse(args: &[String], with_values: &[&str]) -> Result<Args> {
        let mut positional = Vec::new();
        let mut flags = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if let Some(flag) = a
                .strip_prefix("--")
                .map(|f| format!("--{f}"))
                .or_else(|| (a == "-o").then(|| a.clone()))
            {
                let (flag, inline) = match flag.split_once('=') {
                    Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
                    None => (flag, None),
                };
                if with_values.contains(&flag.as_str()) {
                    let v = match inline {
                        Some(v) => v,
                        None => it
                            .next()
                            .cloned()
                            .with_context(|| format!("{flag} needs a value"))?,
                    };
                    flags.push((flag, Some(v)));
                } else {
                    flags.push((flag, None));
                }
            } else {
                positional.push(a.clone());
            }
        }
        Ok(Args { positional, flags })
    }

    fn value(&self, flag: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(f, _)| f == flag)
            .and_then(|(_, v)| v.as_deref())
    }

    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|(f, _)| f == flag)
    }

    fn only(&self, allowed: &[&str]) -> Result<()> {
        for (f, _) in &self.flags {
            if !allowed.contains(&f.as_str()) {
                bail!("unknown option {f}\n\n{USAGE}");
            }
        }
        Ok(())
    }

    fn one_file(&self, what: &str) -> Result<PathBuf> {
        match self.positional.as_slice() {
            [one] => Ok(PathBuf::from(one)),
            _ => bail!("expected one {what}\n\n{USAGE}"),
        }
    }
}

pub fn main(args: &[String]) -> Result<()> {
    let Some(cmd) = args.first() else {
        print!("{USAGE}");
        return Ok(());
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "keygen" => {
            let a = Args::parse(rest, &["--kid"])?;
            a.only(&["--kid"])?;
            keygen(a.value("--kid").unwrap_or("op1"))
        }
        "validate" => {
            let a = Args::parse(rest, &[])?;
            a.only(&[])?;
            let path = a.one_file("rule .wasm file")?;
            let wasm = componentize(&read(&path)?)?;
            let rt = native_runtime()?;
            let component = compile(&rt, &wasm)?;
            rt.check(&component)
                .map_err(|e| anyhow!("{} is not a valid rule: {e}", path.display()))?;
            println!(
                "{}: OK, implements {} world post-login ({} bytes as a component; {})",
                path.display(),
                edgeauth_rules::WIT_PACKAGE,
                wasm.len(),
                memory_note(&wasm)?
            );
            Ok(())
        }
        "build" => {
            let a = Args::parse(rest, &["--name", "--key", "-o"])?;
            a.only(&["--name", "--key", "-o"])?;
            let path = a.one_file("rule .wasm file")?;
            let name = a.value("--name").context("--name NAME is required")?;
            let key = signing_key(a.value("--key"))?;
            let out = a
                .value("-o")
                .map(PathBuf::from)
                .unwrap_or_else(|| path.with_extension("rule"));
            build(&path, name, &key, &out)
        }
        "run" => {
            let a = Args::parse(
                rest,
                &["--event", "--rules", "--tenant", "--name", "--secrets"],
            )?;
            a.only(&[
                "--event",
                "--rules",
                "--tenant",
                "--name",
                "--secrets",
                "--no-http",
            ])?;
            run(&a)
        }
        "inspect" => {
            let a = Args::parse(rest, &[])?;
            a.only(&[])?;
            let path = a.one_file("artifact")?;
            let bytes = read(&path)?;
            let (header, _, _, code) = artifact::parse_unverified(&bytes)
                .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            println!("{}", serde_json::to_string_pretty(&header)?);
            println!(
                "code: {} bytes; signature not checked here (the gateway checks it against rule_keys)",
                code.len()
            );
            Ok(())
        }
        "upload" => {
            let a = Args::parse(rest, &["--gateway", "--tenant"])?;
            a.only(&["--gateway", "--tenant"])?;
            let path = a.one_file("artifact")?;
            let gateway = a.value("--gateway").context("--gateway URL is required")?;
            upload(
                &path,
                gateway,
                a.value("--tenant").unwrap_or(config::DEFAULT_TENANT),
            )
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown rule command {other:?}\n\n{USAGE}"),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn keygen(kid: &str) -> Result<()> {
    let mut seed = [0u8; 32];
    random(&mut seed);
    let key = SigningKey::from_seed(kid, seed);
    SigningKey::parse(&key.secret_spec()).map_err(|e| anyhow!(e))?;
    println!(
        "# signing key (keep secret; give to `edgeauth rule build` via --key FILE or EDGEAUTH_RULE_SIGNING_KEY)"
    );
    println!("{}", key.secret_spec());
    println!("# public key (the gateway's `rule_keys` Spin variable)");
    println!("{}", key.public_spec());
    Ok(())
}

fn random(buf: &mut [u8]) {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .expect("/dev/urandom is readable");
}

fn signing_key(file: Option<&str>) -> Result<SigningKey> {
    let spec = match file {
        Some(f) => std::fs::read_to_string(f).with_context(|| format!("cannot read key file {f}"))?,
        None => std::env::var("EDGEAUTH_RULE_SIGNING_KEY")
            .context("no signing key: pass --key FILE or set EDGEAUTH_RULE_SIGNING_KEY (make one with `edgeauth rule keygen`)")?,
    };
    let line = spec
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .unwrap_or("");
    SigningKey::parse(line).map_err(|e| anyhow!("signing key: {e}"))
}

/// A component from a rule file: components pass through; a core module
/// built with the SDK (it embeds its WIT) is wrapped. WASI imports are
/// refused: the sandbox offers none.
pub fn componentize(bytes: &[u8]) -> Result<Vec<u8>> {
    if wasmparser::Parser::is_component(bytes) {
        return Ok(bytes.to_vec());
    }
    if !wasmparser::Parser::is_core_wasm(bytes) {
        bail!("not a WebAssembly module or component");
    }
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::ImportSection(reader) = payload? {
            for import in reader.into_imports() {
                let module = import?.module;
                if module.starts_with("wasi") {
                    bail!(
                        "the module imports `{module}`: build the rule for wasm32-unknown-unknown (rules get no WASI)"
                    );
                }
            }
        }
    }
    wit_component::ComponentEncoder::default()
        .module(bytes)
        .context("the module carries no usable component type information (build it with the edgeauth-plugin SDK)")?
        .validate(true)
        .encode()
        .context("cannot turn the module into a component")
}

/// Bytes of linear memory a component's core modules define at their
/// initial sizes: what its `memory_bytes` cap must at least allow before the
/// rule runs a line (imported memories are counted where they are defined).
pub fn start_memory(component: &[u8]) -> Result<u64> {
    let mut total = 0u64;
    for payload in wasmparser::Parser::new(0).parse_all(component) {
        if let wasmparser::Payload::MemorySection(reader) = payload? {
            for memory in reader {
                let memory = memory?;
                let page = 1u64 << memory.page_size_log2.unwrap_or(16);
                total = total.saturating_add(memory.initial.saturating_mul(page));
            }
        }
    }
    Ok(total)
}

/// What `validate` and `build` say about memory: the start size, and a
/// warning when the default cap would refuse it.
fn memory_note(component: &[u8]) -> Result<String> {
    let start = start_memory(component)?;
    let default = config::DEFAULT_MEMORY as u64;
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64);
    Ok(if start > default {
        format!(
            "starts with {} of linear memory, more than the default memory_bytes ({}): set memory_bytes in its rule entry",
            mib(start),
            mib(default)
        )
    } else {
        format!(
            "starts with {} of linear memory; memory_bytes must leave room to grow",
            mib(start)
        )
    })
}

/// The native engine for `validate` and `run`: the gateway's settings, on
/// the 64-bit Pulley interpreter (the gateway runs the 32-bit one).
fn native_runtime() -> Result<Runtime> {
    let mut config = Config::new();
    runtime::configure(&mut config);
    config.target("pulley64")?;
    let engine = Engine::new(&config)?;
    Runtime::with_engine(engine).map_err(|e| anyhow!(e))
}

fn compile(rt: &Runtime, wasm: &[u8]) -> Result<Component> {
    Component::new(rt.engine(), wasm)
        .map_err(anyhow::Error::from)
        .context("the component does not compile")
}

/// Precompiles for the gateway's embedded runtime (pulley32, same settings).
pub fn precompile(wasm: &[u8]) -> Result<Vec<u8>> {
    let mut config = Config::new();
    runtime::configure(&mut config);
    config.target("pulley32")?;
    // Smaller artifacts (less to read, hash and load per sign-in); the runtime
    // does not check it. Backtraces then show no wasm offsets.
    config.generate_address_map(false);
    let engine = Engine::new(&config)?;
    engine
        .precompile_component(wasm)
        .map_err(anyhow::Error::from)
        .context("precompiling for pulley32 failed")
}

fn build(path: &Path, name: &str, key: &SigningKey, out: &Path) -> Result<()> {
    if !config::valid_name(name) {
        bail!("rule name `{name}` must be 1-64 of a-z 0-9 - _");
    }
    let started = Instant::now();
    let wasm = componentize(&read(path)?)?;
    let rt = native_runtime()?;
    let component = compile(&rt, &wasm)?;
    rt.check(&component)
        .map_err(|e| anyhow!("{} is not a valid rule: {e}", path.display()))?;
    let code = precompile(&wasm)?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let signed = key.sign(name, &wasm, &code, RUNTIME_ID, created);
    if signed.len() > artifact::MAX_ARTIFACT {
        bail!(
            "the artifact would be {} bytes, over the gateway's limit of {} bytes (it would be refused at upload and load)",
            signed.len(),
            artifact::MAX_ARTIFACT
        );
    }
    std::fs::write(out, &signed).with_context(|| format!("cannot write {}", out.display()))?;
    println!(
        "{}: rule `{name}` ({} bytes component, {} bytes artifact, runtime {RUNTIME_ID}, key {}; {}) in {} ms",
        out.display(),
        wasm.len(),
        signed.len(),
        key.kid,
        memory_note(&wasm)?,
        started.elapsed().as_millis()
    );

    Ok(())
}

struct LocalIo {
    http: bool,
    rt: tokio::runtime::Runtime,
}

impl Io for LocalIo {
    fn now_ms(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn random(&mut self, buf: &mut [u8]) {
        random(buf)
    }

    fn log(&mut self, tenant: &str, rule: &str, level: LogLevel, message: &str) {
        eprintln!("rule log [{tenant}/{rule}] {}: {message}", level.as_str());
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

fn run(a: &Args) -> Result<()> {
    let path = a.one_file("rule .wasm file")?;
    let event_path = a
        .value("--event")
        .context("--event EVENT.json is required")?;
    let mut event: Event =
        serde_json::from_slice(&read(Path::new(event_path))?).with_context(|| {
            format!("{event_path} is not a valid event (see `edgeauth_rules::event::Event`)")
        })?;
    let tenant = a
        .value("--tenant")
        .unwrap_or(config::DEFAULT_TENANT)
        .to_owned();
    let name = a.value("--name").map(str::to_owned).unwrap_or_else(|| {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("rule");
        stem.to_ascii_lowercase()
            .replace(['.', ' '], "-")
            .replace("rule_", "")
            .replace('_', "-")
    });
    let rule: RuleConfig = match a.value("--rules") {
        Some(file) => {
            let text =
                std::fs::read_to_string(file).with_context(|| format!("cannot read {file}"))?;
            let rules = config::parse(&text, |_| false).map_err(|e| anyhow!("{file}: {e}"))?;
            rules
                .tenant(&tenant)
                .and_then(|t| t.chain.iter().find(|r| r.name == name))
                .cloned()
                .with_context(|| {
                    format!("{file} has no rule `{name}` for tenant `{tenant}` (pass --name)")
                })?
        }
        None => config::parse(
            &format!(r#"{{"tenants": {{"{tenant}": {{"chain": [{{"name": "{name}"}}]}}}}}}"#),
            |_| false,
        )
        .map_err(|e| anyhow!(e))?
        .tenants[&tenant]
            .chain[0]
            .clone(),
    };
    if event.tenant_id.is_empty() {
        event.tenant_id = tenant.clone();
    }
    event.rule_name = rule.name.clone();
    if a.value("--rules").is_some() || event.config.is_null() {
        event.config = rule.config.clone();
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
    let wasm = componentize(&read(&path)?)?;
    let rt = native_runtime()?;
    let component = compile(&rt, &wasm)?;
    rt.check(&component)
        .map_err(|e| anyhow!("{} is not a valid rule: {e}", path.display()))?;
    let io = LocalIo {
        http: !a.has("--no-http"),
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
    };
    let started = Instant::now();
    match rt.run(&component, &rule, &event, Box::new(io)) {
        Ok(outcome) => {
            println!("{}", serde_json::to_string_pretty(&outcome.commands)?);
            eprintln!(
                "rule `{}` OK: {} command(s), fuel {} of {}, {} us (native pulley64; the gateway runs pulley32)",
                rule.name,
                outcome.commands.len(),
                outcome.fuel_used,
                rule.fuel,
                started.elapsed().as_micros()
            );
            Ok(())
        }
        Err(failed) => {
            let fail_open = if rule.fail_open {
                " (fail-open: the gateway would skip it)"
            } else {
                " (the sign-in would fail closed)"
            };
            // Its log lines were printed as it ran; repeated here as the
            // gateway's audit line carries them.
            for line in &failed.logs {
                eprintln!("rule `{}` logged before failing: {line}", rule.name);
            }
            bail!(
                "rule `{}` failed [{}]: {} after fuel {} of {}, {} us{fail_open}",
                rule.name,
                failed.failure.kind(),
                failed.failure,
                failed.fuel_used,
                rule.fuel,
                failed.instantiate_us + failed.call_us,
            )
        }
    }
}

fn upload(path: &Path, gateway: &str, tenant: &str) -> Result<()> {
    let bytes = read(path)?;
    let (header, _, _, _) =
        artifact::parse_unverified(&bytes).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let token = std::env::var("EDGEAUTH_ADMIN_TOKEN")
        .context("set EDGEAUTH_ADMIN_TOKEN to the gateway's admin_token")?;
    let url = format!(
        "{}/.edgeauth/admin/rules/{tenant}/{}",
        gateway.trim_end_matches('/'),
        header.name
    );
    let req = HttpRequest {
        method: "PUT".into(),
        url: url.clone(),
        headers: vec![
            ("authorization".into(), format!("Bearer {token}")),
            (
                "content-type".into(),
                "application/vnd.edgeauth.rule".into(),
            ),
        ],
        body: Some(bytes),
        timeout_ms: 30_000,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let resp = rt
        .block_on(client::send(&req, Duration::from_secs(30)))
        .map_err(|e| anyhow!("PUT {url}: {e}"))?;
    let body = String::from_utf8_lossy(&resp.body);
    if resp.status != 200 && resp.status != 201 {
        // The gateway's reason in its own words when it gives one.
        let message = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message")?.as_str().map(str::to_owned));
        match message {
            Some(m) => bail!("upload refused (HTTP {}): {m}", resp.status),
            None => bail!("PUT {url}: HTTP {}: {}", resp.status, body.trim()),
        }
    }
    println!("uploaded rule `{}` to {url}: {}", header.name, body.trim());
    Ok(())
}
