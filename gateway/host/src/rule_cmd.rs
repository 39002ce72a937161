//! `edgeauth rule ...`: the tenant's and operator's rule tooling.
//!
//! - `keygen` makes the operator's Ed25519 signing key;
//! - `validate` checks a rule (`.wasm` core module or component) against the
//!   `post-login` world and its imports;
//! - `build` validates, precompiles for the gateway's embedded Pulley runtime
//!   and signs, producing the artifact the gateway loads;
//! - `new` makes a rule (a Rust crate or a JavaScript module) that builds
//!   and tests out of the box;
//! - `test` (also `run`) runs a rule locally against a JSON event and prints
//!   its commands, logs and budget used, with the gateway's budgets and checks
//!   (a signed artifact: in the gateway component itself, `gateway_run`);
//! - `inspect` prints an artifact's signed header;
//! - `upload`, `versions`, `deploy`, `deployment`, `rollback`, `gc` and
//!   `logs` talk to a running gateway's admin endpoints
//!   (`crate::rule_deploy_cmd`).

mod gateway_run;
mod run;
mod scaffold;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, anyhow, bail};
use edgeauth_rules::artifact::{self, RUNTIME_ID, SigningKey};
use edgeauth_rules::config;
use edgeauth_rules::runtime::{self, Runtime};
use wasmtime::component::Component;
use wasmtime::{Config, Engine};

pub const USAGE: &str = "\
edgeauth rule: build, test and ship tenant post-login rules (wit/plugin.wit)

USAGE:
    edgeauth rule new      NAME [--lang rust|js] [--dir DIR] [--sdk PATH]
    edgeauth rule keygen   [--kid ID]
    edgeauth rule validate RULE
    edgeauth rule test     RULE --event EVENT.json [--config JSON|@FILE] [--now TIME]
                           [--rules RULES.json] [--tenant ID] [--name NAME]
                           [--secrets SECRETS.json] [--no-http]
    edgeauth rule test     OUT.rule --event EVENT.json [--key FILE | --trust KID:PUBKEY]
                           [--component GATEWAY.wasm] [--manifest spin.toml]
                           (and the options above)
    edgeauth rule build    RULE --name NAME [--key FILE] [-o OUT.rule]
    edgeauth rule inspect  OUT.rule
    (versions and deployments: see below)

RULE is the rule's directory (a crate, built here with cargo for
wasm32-unknown-unknown; or a JavaScript rule's, with package.json, built with
node and its `sdk`'s build.mjs; the built file's path printed), a .wasm module
built with the edgeauth-plugin SDK (turned into a component here) or a
component. `new` writes a rule with its tests, sample events (fixtures/) and a
`rules` entry: a Rust crate, or with --lang js a JavaScript module whose tests
run under Node. `test` (also
`run`) prints the commands on stdout, the rule's log lines and the fuel, memory
and time it used on stderr; it uses the rule's entry in --rules (the gateway's
`rules` JSON) or the defaults, the clock at --now (RFC 3339 or Unix ms), and
makes real outbound calls to the rule's allowed hosts unless --no-http.
A signed OUT.rule runs inside the gateway component, exactly as the gateway
runs it (pulley32; signature, upload, budgets, command checks), started here
on a loopback port with temporary state: the component `edgeauth up` serves
(spin.toml here, --manifest, or --component), the public key to trust that of
--key FILE (or EDGEAUTH_RULE_SIGNING_KEY) or --trust (as in `rule_keys`); it
makes no outbound calls (as --no-http) and the gateway's refusals are its own.
The signing key is read from --key FILE or EDGEAUTH_RULE_SIGNING_KEY
(`kid:<base64url seed>`); upload reads the admin token from EDGEAUTH_ADMIN_TOKEN.
Large components (JavaScript rules) are compiled once per content and kept in
EDGEAUTH_CACHE_DIR (default ~/.cache/edgeauth/components), as `edgeauth up` does.

VERSIONS AND DEPLOYMENTS (a running gateway; EDGEAUTH_ADMIN_TOKEN):
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
        print!("{USAGE}{}", crate::rule_deploy_cmd::USAGE);
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
            let path = a.one_file("rule (its directory, a .wasm module or a component)")?;
            let wasm = componentize(&run::rule_wasm(&path)?.bytes)?;
            let rt = native_runtime()?;
            let component = compile(&rt, &wasm, &path)?;
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
            let path = a.one_file("rule (its directory, a .wasm module or a component)")?;
            let name = a.value("--name").context("--name NAME is required")?;
            let key = signing_key(a.value("--key"))?;
            let out = a.value("-o").map(PathBuf::from).unwrap_or_else(|| {
                if path.is_dir() {
                    path.join(format!("{name}.rule"))
                } else {
                    path.with_extension("rule")
                }
            });
            build(&path, name, &key, &out)
        }
        "test" | "run" => {
            let a = Args::parse(rest, run::VALUE_FLAGS)?;
            a.only(&[run::VALUE_FLAGS, run::SWITCHES].concat())?;
            run::test(&a)
        }
        "new" => {
            let a = Args::parse(rest, scaffold::VALUE_FLAGS)?;
            a.only(scaffold::VALUE_FLAGS)?;
            scaffold::new(&a)
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
        "help" | "--help" | "-h" => {
            print!("{USAGE}{}", crate::rule_deploy_cmd::USAGE);
            Ok(())
        }
        other => crate::rule_deploy_cmd::main(other, rest).unwrap_or_else(|| {
            bail!(
                "unknown rule command {other:?}\n\n{USAGE}{}",
                crate::rule_deploy_cmd::USAGE
            )
        }),
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

/// Components at least this large are compiled through the host's
/// compiled-component cache: a JavaScript rule carries its engine (~12 MB),
/// which the debug tool takes most of a minute to compile at every `test`,
/// `validate` and `build`; a Rust rule compiles in well under a second and
/// would only fill the cache with every edit.
const CACHE_FROM_BYTES: usize = 1 << 20;

/// Compiles `wasm` (the rule at `path`) for the native engine, through
/// the host's compiled-component cache (`EDGEAUTH_CACHE_DIR`) when large.
fn compile(rt: &Runtime, wasm: &[u8], path: &Path) -> Result<Component> {
    let cache_dir = (wasm.len() >= CACHE_FROM_BYTES)
        .then(crate::cache::default_dir)
        .flatten();
    let (component, outcome) =
        crate::cache::load_bytes(rt.engine(), wasm, path, cache_dir.as_deref())
            .context("the component does not compile")?;
    if outcome == crate::cache::Outcome::Hit {
        eprintln!("edgeauth: {} compiled earlier (cached)", path.display());
    }
    Ok(component)
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
    let wasm = componentize(&run::rule_wasm(path)?.bytes)?;
    let rt = native_runtime()?;
    let component = compile(&rt, &wasm, path)?;
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
