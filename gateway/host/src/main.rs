//! `edgeauth`: serves the gateway component from `spin.toml` with Spin's
//! semantics on machines without Spin (tests, demo, benchmarks).

mod admin_cli;
mod bindings;
mod cache;
mod client;
mod clock;
mod key_value;
mod manifest;
mod outbound;
mod pool;
mod problem;
mod profiles_cmd;
mod rule_cmd;
mod rule_deploy_cmd;
mod runtime_config;
mod server;
mod tenant_cmd;
mod variables;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use crate::manifest::{Manifest, Route};
use crate::outbound::{AllowedHosts, OutboundPolicy, Timeouts};
use crate::runtime_config::RuntimeConfig;
use crate::variables::{AppVariables, ComponentVariables, Source, Template};

const USAGE: &str = "\
edgeauth: serve the edgeauth gateway component with Spin's semantics

USAGE:
    edgeauth up    [OPTIONS]   serve the app's HTTP triggers
    edgeauth check [OPTIONS]   validate spin.toml and print resolved variables
    edgeauth rule ...          tenant rule tooling (see `edgeauth rule help`)
    edgeauth tenant ...        tenant documents (see `edgeauth tenant help`)
    edgeauth profiles ...      people's profiles (see `edgeauth profiles help`)

OPTIONS:
    --manifest PATH        spin.toml to read [default: ./spin.toml]
    --component-id ID      serve only this component (repeatable) [default: the
                           component behind the `/...` route]
    --component [ID=]PATH  wasm file to use instead of the manifest's `source`
    --listen ADDR          address to listen on [default: 127.0.0.1:3000]
    --allow-public         allow a non-loopback --listen address
    --state-dir DIR        key-value data [default: .edgeauth-state/ next to the manifest]
    --runtime-config-file PATH
                           Spin's runtime config, as `spin up` reads it: where each
                           key-value store lives ([key_value_store.<label>], type
                           redis with url redis://HOST:PORT, or spin: local)
    --request-timeout SECS wall-clock limit per request [default: 60]
    --pooling N            pooling allocator with N instance slots (bounds concurrency)
    --no-cache             do not read or write the compiled-component cache

ENVIRONMENT:
    SPIN_VARIABLE_<NAME>   value for application variable <name>
    EDGEAUTH_CACHE_DIR     compiled-component cache [default: ~/.cache/edgeauth/components]
";

#[derive(Debug, Default)]
struct Options {
    manifest: Option<PathBuf>,
    component_ids: Vec<String>,
    component_overrides: Vec<(Option<String>, PathBuf)>,
    listen: Option<String>,
    allow_public: bool,
    state_dir: Option<PathBuf>,
    runtime_config: Option<PathBuf>,
    request_timeout: Option<u64>,
    pooling: Option<u32>,
    no_cache: bool,
}

fn parse_options(args: &[String]) -> Result<Options> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .with_context(|| format!("{flag} needs a value")),
            }
        };
        match flag {
            "--manifest" | "-f" => o.manifest = Some(value()?.into()),
            "--component-id" | "-c" => o.component_ids.push(value()?),
            "--component" => {
                let v = value()?;
                o.component_overrides.push(match v.split_once('=') {
                    Some((id, path)) if !id.contains('/') => (Some(id.to_string()), path.into()),
                    _ => (None, v.into()),
                });
            }
            "--listen" => o.listen = Some(value()?),
            "--allow-public" => o.allow_public = true,
            "--state-dir" => o.state_dir = Some(value()?.into()),
            "--runtime-config-file" => o.runtime_config = Some(value()?.into()),
            "--request-timeout" => {
                o.request_timeout = Some(
                    value()?
                        .parse()
                        .context("--request-timeout takes seconds")?,
                )
            }
            "--pooling" => {
                o.pooling = Some(value()?.parse().context("--pooling takes a slot count")?)
            }
            "--no-cache" => o.no_cache = true,
            other => bail!("unknown option {other:?}\n\n{USAGE}"),
        }
    }
    Ok(o)
}

/// One component to serve, fully resolved but not yet compiled.
struct Planned {
    id: String,
    wasm: PathBuf,
    routes: Vec<Route>,
    variables: ComponentVariables,
    allowed: AllowedHosts,
    kv_labels: Vec<String>,
    environment: Vec<(String, String)>,
    files: Vec<manifest::FileMount>,
}

struct Plan {
    manifest: Manifest,
    app_vars: AppVariables,
    components: Vec<Planned>,
    runtime_config: RuntimeConfig,
}

fn plan(o: &Options) -> Result<Plan> {
    let runtime_config = match &o.runtime_config {
        Some(path) => RuntimeConfig::load(path)?,
        None => RuntimeConfig::default(),
    };
    plan_with(o, runtime_config)
}

/// [`plan`] with this runtime config (`rule test` makes its own).
fn plan_with(o: &Options, runtime_config: RuntimeConfig) -> Result<Plan> {
    let manifest_path = o
        .manifest
        .clone()
        .unwrap_or_else(|| PathBuf::from("spin.toml"));
    let manifest = Manifest::load(&manifest_path)?;
    let app_vars =
        AppVariables::resolve_with(&manifest.variables, &runtime_config.static_variables, |k| {
            std::env::var(k).ok()
        })
        .with_context(|| format!("cannot start app {:?}", manifest.app_name))?;
    // Spin ignores values for names the manifest does not declare; so does
    // the host, but a misspelled name should not go unnoticed.
    for name in runtime_config.static_variables.keys() {
        if !manifest.variables.contains_key(name) {
            eprintln!(
                "warning: the runtime config's static provider sets `{name}`, which the manifest does not declare (ignored)"
            );
        }
    }

    let ids: Vec<String> = if o.component_ids.is_empty() {
        vec![manifest.default_component()?.to_string()]
    } else {
        o.component_ids.clone()
    };
    let mut seen = HashSet::new();
    let mut components = Vec::new();
    for id in ids {
        if !seen.insert(id.clone()) {
            continue;
        }
        let c = manifest
            .components
            .get(&id)
            .with_context(|| format!("no component {id:?} in {}", manifest.path.display()))?;
        let routes: Vec<Route> = manifest
            .http_triggers
            .iter()
            .filter(|t| t.component == id && t.route != Route::Private)
            .map(|t| t.route.clone())
            .collect();
        if routes.is_empty() {
            bail!("component {id:?} has no public HTTP trigger");
        }
        let wasm = o
            .component_overrides
            .iter()
            .find(|(oid, _)| oid.as_deref() == Some(id.as_str()))
            .or_else(|| {
                // An unqualified --component applies to the first component.
                components
                    .is_empty()
                    .then(|| o.component_overrides.iter().find(|(oid, _)| oid.is_none()))
                    .flatten()
            })
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| c.source.clone());
        let variables = ComponentVariables::new(&id, &c.variables, &app_vars)?;
        let allowed = AllowedHosts::resolve(&c.allowed_outbound_hosts, &app_vars)
            .with_context(|| format!("component {id:?}: `allowed_outbound_hosts` is malformed"))?;
        components.push(Planned {
            id: id.clone(),
            wasm,
            routes,
            variables,
            allowed,
            kv_labels: c.key_value_stores.clone(),
            environment: c.environment.clone().into_iter().collect(),
            files: c.files.clone(),
        });
    }
    Ok(Plan {
        manifest,
        app_vars,
        components,
        runtime_config,
    })
}

fn check(o: &Options) -> Result<()> {
    let plan = plan(o)?;
    let m = &plan.manifest;
    println!("manifest: {} (app {:?})", m.path.display(), m.app_name);
    println!("variables:");
    for (name, v) in plan.app_vars.iter() {
        let shown = if v.secret {
            "<secret>".to_string()
        } else {
            format!("{:?}", v.value)
        };
        let from = match v.source {
            Source::Default => "default".to_string(),
            Source::Env => format!("env {}{}", variables::ENV_PREFIX, name.to_ascii_uppercase()),
            Source::Static => "runtime config, static provider".to_string(),
        };
        println!("  {name} = {shown} ({from})");
    }
    for c in &plan.components {
        let routes: Vec<String> = c.routes.iter().map(Route::raw).collect();
        println!("component {:?}: routes {}", c.id, routes.join(", "));
        let wasm_state = if c.wasm.exists() {
            "present".to_string()
        } else {
            format!("MISSING: {}", m.build_hint(&c.id))
        };
        println!("  wasm: {} ({wasm_state})", c.wasm.display());
        let decl = &m.components[&c.id];
        if !decl.variables.is_empty() {
            println!("  variables:");
            for (name, text) in &decl.variables {
                let template = Template::parse(text)?;
                let shown = if plan.app_vars.touches_secret(&template) {
                    "<secret>".to_string()
                } else {
                    format!("{:?}", plan.app_vars.render(&template)?)
                };
                println!("    {name} = {shown}");
            }
        }
        println!(
            "  allowed_outbound_hosts: {}",
            list_or_none(c.allowed.display())
        );
        let stores: Vec<String> = c
            .kv_labels
            .iter()
            .map(|l| match plan.runtime_config.key_value_stores.get(l) {
                Some(runtime_config::StoreConfig::Redis { .. }) => format!("{l} (Redis)"),
                _ => format!("{l} (local)"),
            })
            .collect();
        println!("  key_value_stores: {}", list_or_none(&stores));
        let files: Vec<String> = c
            .files
            .iter()
            .map(|f| format!("{} -> {} (read-only)", f.source.display(), f.destination))
            .collect();
        println!("  files: {}", list_or_none(&files));
    }
    for w in &m.warnings {
        println!("warning: {w}");
    }
    println!("OK");
    Ok(())
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

fn parse_listen(s: &str) -> Result<SocketAddr> {
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port.parse().context("invalid port in --listen")?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .with_context(|| format!("--listen {s:?} is not an IP:PORT address"))
}

async fn up(o: Options) -> Result<()> {
    let started = Instant::now();
    let listen = parse_listen(o.listen.as_deref().unwrap_or("127.0.0.1:3000"))?;
    if !listen.ip().is_loopback() && !o.allow_public {
        bail!("refusing to listen on non-loopback address {listen}; pass --allow-public to do so");
    }
    let plan = plan(&o)?;
    for w in &plan.manifest.warnings {
        eprintln!("edgeauth: warning: {w}");
    }
    let state_dir = o
        .state_dir
        .clone()
        .unwrap_or_else(|| plan.manifest.dir.join(".edgeauth-state"));
    let clock = match clock::offset_from_env()? {
        Some(offset) => {
            eprintln!(
                "edgeauth: TEST ONLY: components see the wall clock moved by {offset} s ({})",
                clock::ENV
            );
            clock::Clock::OffsetSecs(offset)
        }
        None => clock::Clock::Real,
    };
    let how = Load {
        limits: server::Limits {
            request_timeout: Duration::from_secs(o.request_timeout.unwrap_or(60)),
            pooling: o.pooling,
            ..Default::default()
        },
        cache: !o.no_cache,
        clock,
        capture: None,
    };
    // Bound before compiling so a busy port fails fast; the readiness line
    // comes only once requests can be served.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    let server = load(plan, &state_dir, local, how).await?;
    eprintln!(
        "edgeauth: ready in {} ms (state in {})",
        started.elapsed().as_millis(),
        state_dir.display()
    );
    println!("edgeauth host listening on http://{local}");
    server.serve(listener).await
}

/// How [`load`] serves an app.
struct Load {
    limits: server::Limits,
    /// Read and write the compiled-component cache.
    cache: bool,
    clock: clock::Clock,
    /// `Some`: quiet, the components' output kept there (`server::Server`).
    capture: Option<wasmtime_wasi::p2::pipe::MemoryOutputPipe>,
}

/// What `up` and `rule test` (of a signed artifact, in the gateway) share:
/// the planned app's stores opened and its components compiled and routed,
/// ready to serve on `local` (the bound listener's address).
async fn load(
    plan: Plan,
    state_dir: &std::path::Path,
    local: SocketAddr,
    how: Load,
) -> Result<Arc<server::Server>> {
    let quiet = how.capture.is_some();
    for c in &plan.components {
        for f in &c.files {
            if !f.source.is_dir() {
                bail!(
                    "component {:?}: `files` source {} is not a directory",
                    c.id,
                    f.source.display()
                );
            }
        }
        if !c.wasm.exists() {
            bail!(
                "component {:?}: wasm file {} not found; {}",
                c.id,
                c.wasm.display(),
                plan.manifest.build_hint(&c.id)
            );
        }
    }
    let kv = Arc::new(key_value::KvStores::open(
        state_dir,
        plan.components
            .iter()
            .flat_map(|c| c.kv_labels.iter().map(|l| (c.id.clone(), l.clone()))),
        &plan.runtime_config,
    )?);
    if !quiet {
        for line in kv.describe() {
            eprintln!("edgeauth: key-value store {line}");
        }
    }
    kv.check_reachable().await;

    let engine = server::engine(&how.limits)?;
    let linker = server::linker(&engine)?;

    let cache_dir = if how.cache {
        cache::default_dir()
    } else {
        None
    };
    let mut routes = Vec::new();
    for c in plan.components {
        let (component, outcome) = cache::load(&engine, &c.wasm, cache_dir.as_deref())?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "component {:?} imports something this host does not provide",
                    c.id
                )
            })?;
        let pre = wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "component {:?} does not export wasi:http/incoming-handler",
                    c.id
                )
            })?;
        if outcome == cache::Outcome::Hit && !quiet {
            eprintln!("edgeauth: loaded {} from cache", c.wasm.display());
        }
        let runtime = Arc::new(server::ComponentRuntime {
            id: c.id.clone(),
            pre,
            variables: c.variables,
            kv_allowed: c.kv_labels.into_iter().collect(),
            kv: kv.clone(),
            outbound: Arc::new(OutboundPolicy {
                component_id: c.id.clone(),
                allowed: c.allowed,
                self_authority: local.to_string(),
                timeouts: Timeouts::default(),
            }),
            environment: c.environment,
            files: c
                .files
                .into_iter()
                .map(|f| (f.source, f.destination))
                .collect(),
        });
        for route in c.routes {
            if !quiet {
                eprintln!("edgeauth: {} -> component {:?}", route.raw(), c.id);
            }
            routes.push(server::RouteEntry {
                route,
                component: runtime.clone(),
            });
        }
    }
    let server = Arc::new(server::Server {
        engine,
        routes,
        limits: how.limits,
        clock: how.clock,
        capture: how.capture,
    });
    Ok(server)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "up" | "check" => match parse_options(&args[1..]) {
            Ok(o) if cmd == "check" => check(&o),
            Ok(o) => tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(up(o))),
            Err(e) => Err(e),
        },
        "rule" => rule_cmd::main(&args[1..]),
        "tenant" => tenant_cmd::main(&args[1..]),
        "profiles" => profiles_cmd::main(&args[1..]),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        "--version" | "-V" => {
            println!("edgeauth {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        other => Err(anyhow::anyhow!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edgeauth: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn options_parse() {
        let o = parse_options(&args(
            "--manifest m/spin.toml --listen=127.0.0.1:0 --component gateway=x.wasm --component y.wasm -c gateway --no-cache",
        ))
        .unwrap();
        assert_eq!(o.manifest.as_deref(), Some(Path::new("m/spin.toml")));
        assert_eq!(o.listen.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(
            o.component_overrides[0],
            (Some("gateway".into()), "x.wasm".into())
        );
        assert_eq!(o.component_overrides[1], (None, "y.wasm".into()));
        assert_eq!(o.component_ids, ["gateway"]);
        assert!(o.no_cache);
        assert!(parse_options(&args("--bogus")).is_err());
        assert!(parse_options(&args("--listen")).is_err());
    }

    #[test]
    fn listen_addresses() {
        assert!(parse_listen("127.0.0.1:3000").unwrap().ip().is_loopback());
        assert!(parse_listen("localhost:3000").unwrap().ip().is_loopback());
        assert!(parse_listen("[::1]:3000").unwrap().ip().is_loopback());
        assert!(!parse_listen("0.0.0.0:3000").unwrap().ip().is_loopback());
        assert!(parse_listen("nonsense").is_err());
    }
}
