//! `spin.toml` (manifest version 2): the subset the gateway uses, parsed
//! strictly where a silent misreading would change behaviour (variables,
//! triggers, permissions) and with warnings for Spin features this host does
//! not implement.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use serde::Deserialize;

use crate::variables::VariableDecl;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    #[serde(default)]
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: BTreeMap<String, Vec<toml::Table>>,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Debug, Default, Deserialize)]
struct RawApplication {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    #[serde(default)]
    #[allow(dead_code)] // accepted because Spin accepts it; only documentation
    description: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    secret: bool,
}

#[derive(Debug, Deserialize)]
struct RawComponent {
    source: toml::Value,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    allowed_http_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    build: Option<RawBuild>,
    #[serde(default)]
    files: Vec<toml::Value>,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

#[derive(Debug, Deserialize)]
struct RawBuild {
    command: toml::Value,
    #[serde(default)]
    workdir: Option<String>,
}

/// How an HTTP trigger's `route` matches request paths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `route = "/a/b"`: only that path.
    Exact(String),
    /// `route = "/a/..."`: `/a` and everything below it (`""` for `/...`).
    Prefix(String),
    /// `route = { private = true }`: reachable only by service chaining.
    Private,
}

impl Route {
    fn parse(value: &toml::Value) -> Result<Self> {
        match value {
            toml::Value::String(s) => {
                if !s.starts_with('/') {
                    bail!("route {s:?} must start with '/'");
                }
                if let Some(prefix) = s.strip_suffix("/...") {
                    Ok(Route::Prefix(prefix.trim_end_matches('/').to_string()))
                } else if s.contains("...") || s.contains("/:") {
                    bail!(
                        "route {s:?}: only exact routes and trailing '/...' wildcards are supported"
                    )
                } else {
                    Ok(Route::Exact(normalize_exact(s)))
                }
            }
            toml::Value::Table(t)
                if t.get("private").and_then(toml::Value::as_bool) == Some(true) =>
            {
                Ok(Route::Private)
            }
            other => bail!("unsupported route {other}"),
        }
    }

    /// Spin's precedence: an exact match beats any wildcard, and a longer
    /// wildcard prefix beats a shorter one. `None` if the path is not matched.
    pub fn match_rank(&self, path: &str) -> Option<usize> {
        match self {
            Route::Exact(p) => (normalize_exact(path) == *p).then_some(usize::MAX),
            Route::Prefix(p) => {
                let below = path.len() > p.len()
                    && path.starts_with(p.as_str())
                    && path.as_bytes()[p.len()] == b'/';
                (path == p || below || p.is_empty()).then_some(p.len())
            }
            Route::Private => None,
        }
    }

    /// What Spin passes as `spin-path-info`: the part after the route prefix.
    pub fn path_info<'a>(&self, path: &'a str) -> &'a str {
        match self {
            Route::Prefix(p) => &path[p.len().min(path.len())..],
            _ => "",
        }
    }

    /// The route as written (`spin-raw-component-route`).
    pub fn raw(&self) -> String {
        match self {
            Route::Exact(p) => p.clone(),
            Route::Prefix(p) => format!("{p}/..."),
            Route::Private => "<private>".to_string(),
        }
    }

    /// The route without its wildcard (`spin-component-route`).
    pub fn prefix(&self) -> &str {
        match self {
            Route::Exact(p) | Route::Prefix(p) => p,
            Route::Private => "",
        }
    }
}

fn normalize_exact(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

#[derive(Clone, Debug)]
pub struct HttpTrigger {
    pub route: Route,
    pub component: String,
}

#[derive(Clone, Debug)]
pub struct Component {
    /// Wasm file, already joined to the manifest's directory.
    pub source: PathBuf,
    pub allowed_outbound_hosts: Vec<String>,
    pub key_value_stores: Vec<String>,
    pub variables: BTreeMap<String, String>,
    pub environment: BTreeMap<String, String>,
    /// `[component.<id>.build] command`, shown when the wasm is missing.
    pub build_command: Option<String>,
    pub build_workdir: Option<String>,
    /// `files`: directories mounted read-only (e.g. signed rule artifacts).
    pub files: Vec<FileMount>,
}

/// A directory of the app mounted read-only into the component.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMount {
    /// Host directory, already joined to the manifest's directory.
    pub source: PathBuf,
    /// Absolute guest path.
    pub destination: String,
}

/// Spin's `files` entries this host supports: `{ source = "dir", destination
/// = "/path" }` and a plain relative directory `"dir"` (mounted at `/dir`).
/// Glob patterns and single files are refused with a hint.
fn file_mounts(id: &str, entries: &[toml::Value], dir: &Path) -> Result<Vec<FileMount>> {
    let mut mounts = Vec::new();
    for entry in entries {
        let (source, destination) = match entry {
            toml::Value::String(s) => (
                s.clone(),
                format!("/{}", s.trim_start_matches("./").trim_end_matches('/')),
            ),
            toml::Value::Table(t) => match (
                t.get("source").and_then(toml::Value::as_str),
                t.get("destination").and_then(toml::Value::as_str),
            ) {
                (Some(s), Some(d)) => (s.to_string(), d.to_string()),
                _ => bail!("component {id:?}: a `files` table needs `source` and `destination`"),
            },
            other => bail!("component {id:?}: unsupported `files` entry {other}"),
        };
        if source.contains(['*', '?', '[']) {
            bail!(
                "component {id:?}: `files` pattern {source:?} is not supported by this host; mount a directory with {{ source = \"dir\", destination = \"/dir\" }}"
            );
        }
        if Path::new(&source).is_absolute() || source.split('/').any(|c| c == "..") {
            bail!(
                "component {id:?}: `files` source {source:?} must be a relative path inside the app"
            );
        }
        if !destination.starts_with('/') || destination.split('/').any(|c| c == "..") {
            bail!(
                "component {id:?}: `files` destination {destination:?} must be an absolute guest path"
            );
        }
        mounts.push(FileMount {
            source: dir.join(&source),
            destination,
        });
    }
    Ok(mounts)
}

#[derive(Clone, Debug)]
pub struct Manifest {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub app_name: String,
    pub variables: BTreeMap<String, VariableDecl>,
    pub http_triggers: Vec<HttpTrigger>,
    pub components: BTreeMap<String, Component>,
    /// Things Spin would do that this host ignores; printed as warnings.
    pub warnings: Vec<String>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read manifest {}", path.display()))?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, path, &dir)
            .with_context(|| format!("invalid manifest {}", path.display()))
    }

    pub fn parse(text: &str, path: &Path, dir: &Path) -> Result<Self> {
        let raw: RawManifest = toml::from_str(text)?;
        if raw.spin_manifest_version.as_integer() != Some(2) {
            bail!(
                "spin_manifest_version must be 2 (found {})",
                raw.spin_manifest_version
            );
        }
        let mut warnings = Vec::new();

        let variables = raw
            .variables
            .into_iter()
            .map(|(name, v)| {
                (
                    name,
                    VariableDecl {
                        default: v.default,
                        required: v.required,
                        secret: v.secret,
                    },
                )
            })
            .collect();

        let mut components = BTreeMap::new();
        for (id, c) in raw.component {
            let source = match &c.source {
                toml::Value::String(s) => dir.join(s),
                other => bail!(
                    "component {id:?}: source {other} is not a local file; this host only loads local wasm files (use --component PATH)"
                ),
            };
            if !c.allowed_http_hosts.is_empty() {
                bail!(
                    "component {id:?}: `allowed_http_hosts` is deprecated; use `allowed_outbound_hosts`"
                );
            }
            for key in c.other.keys() {
                if key != "description" {
                    warnings.push(format!(
                        "component {id:?}: `{key}` is not supported by this host and is ignored"
                    ));
                }
            }
            let files = file_mounts(&id, &c.files, dir)?;
            let (build_command, build_workdir) = match c.build {
                Some(b) => (Some(command_text(&b.command)?), b.workdir),
                None => (None, None),
            };
            components.insert(
                id,
                Component {
                    source,
                    allowed_outbound_hosts: c.allowed_outbound_hosts,
                    key_value_stores: c.key_value_stores,
                    variables: c.variables,
                    environment: c.environment,
                    build_command,
                    build_workdir,
                    files,
                },
            );
        }

        let mut http_triggers = Vec::new();
        for (kind, triggers) in raw.trigger {
            if kind != "http" {
                warnings.push(format!(
                    "`[[trigger.{kind}]]` is ignored (only HTTP triggers are served)"
                ));
                continue;
            }
            for t in triggers {
                let route = t.get("route").context("an HTTP trigger has no `route`")?;
                let route = Route::parse(route)?;
                let component = match t.get("component") {
                    Some(toml::Value::String(c)) => c.clone(),
                    Some(_) => bail!(
                        "HTTP trigger {}: inline components are not supported",
                        route.raw()
                    ),
                    None => bail!("HTTP trigger {} has no `component`", route.raw()),
                };
                if !components.contains_key(&component) {
                    bail!(
                        "HTTP trigger {} refers to unknown component {component:?}",
                        route.raw()
                    );
                }
                if let Some(exec) = t.get("executor") {
                    let is_http = exec
                        .as_table()
                        .and_then(|e| e.get("type"))
                        .and_then(toml::Value::as_str)
                        == Some("http");
                    if !is_http {
                        bail!(
                            "HTTP trigger {}: only the default `http` executor is supported",
                            route.raw()
                        );
                    }
                }
                http_triggers.push(HttpTrigger { route, component });
            }
        }

        Ok(Self {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            app_name: raw
                .application
                .name
                .unwrap_or_else(|| "<unnamed>".to_string()),
            variables,
            http_triggers,
            components,
            warnings,
        })
    }

    /// The components to serve when none is named: the one behind the
    /// catch-all `/...` route, else the only HTTP-triggered one.
    pub fn default_component(&self) -> Result<&str> {
        if let Some(t) = self
            .http_triggers
            .iter()
            .find(|t| t.route == Route::Prefix(String::new()))
        {
            return Ok(&t.component);
        }
        let mut ids: Vec<&str> = self
            .http_triggers
            .iter()
            .filter(|t| t.route != Route::Private)
            .map(|t| t.component.as_str())
            .collect();
        ids.dedup();
        match ids.as_slice() {
            [one] => Ok(one),
            [] => bail!("the manifest has no HTTP trigger"),
            _ => bail!(
                "several HTTP-triggered components ({}); choose with --component-id",
                ids.join(", ")
            ),
        }
    }

    /// How to build a component's wasm, for error messages.
    pub fn build_hint(&self, id: &str) -> String {
        match self
            .components
            .get(id)
            .and_then(|c| c.build_command.as_ref())
        {
            Some(cmd) => {
                let workdir = self.components[id]
                    .build_workdir
                    .as_deref()
                    .map(|w| self.dir.join(w))
                    .unwrap_or_else(|| self.dir.clone());
                format!("build it with `{cmd}` (in {})", workdir.display())
            }
            None => "build the component first".to_string(),
        }
    }
}

fn command_text(v: &toml::Value) -> Result<String> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Array(a) => Ok(a
            .iter()
            .map(|c| {
                c.as_str()
                    .map(str::to_string)
                    .context("build commands must be strings")
            })
            .collect::<Result<Vec<_>>>()?
            .join(" && ")),
        other => bail!("invalid build command {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
spin_manifest_version = 2

[application]
name = "edgeauth"

[variables]
public_url = { default = "http://127.0.0.1:3000" }
session_key = { required = true, secret = true }

[[trigger.http]]
route = "/..."
component = "gateway"

[[trigger.http]]
route = "/idp/..."
component = "idp"

[component.gateway]
source = "target/wasm32-wasip2/release/edgeauth_component.wasm"
allowed_outbound_hosts = ["{{ origin_url }}", "https://*.example.com"]
key_value_stores = ["default"]
files = [{ source = "rules", destination = "/rules" }, "static"]
ai_models = ["llama2-chat"]
[component.gateway.variables]
public_url = "{{ public_url }}"
[component.gateway.build]
command = "cargo build --release --target wasm32-wasip2 -p edgeauth-component"

[component.idp]
source = "idp.wasm"
"#;

    fn sample() -> Manifest {
        Manifest::parse(SAMPLE, Path::new("/app/spin.toml"), Path::new("/app")).unwrap()
    }

    #[test]
    fn parses_the_gateway_manifest() {
        let m = sample();
        assert_eq!(m.app_name, "edgeauth");
        assert_eq!(m.variables.len(), 2);
        assert!(m.variables["session_key"].required && m.variables["session_key"].secret);
        let gw = &m.components["gateway"];
        assert_eq!(
            gw.source,
            Path::new("/app/target/wasm32-wasip2/release/edgeauth_component.wasm")
        );
        assert_eq!(gw.key_value_stores, ["default"]);
        assert_eq!(gw.variables["public_url"], "{{ public_url }}");
        assert!(
            gw.build_command
                .as_deref()
                .unwrap()
                .starts_with("cargo build")
        );
        assert!(m.build_hint("gateway").contains("cargo build --release"));
        assert_eq!(m.default_component().unwrap(), "gateway");
        assert_eq!(m.warnings.len(), 1, "{:?}", m.warnings);
        assert!(m.warnings[0].contains("ai_models"));
        assert_eq!(
            gw.files,
            [
                FileMount {
                    source: "/app/rules".into(),
                    destination: "/rules".into()
                },
                FileMount {
                    source: "/app/static".into(),
                    destination: "/static".into()
                },
            ]
        );
    }

    #[test]
    fn rejects_bad_manifests() {
        let cases = [
            ("spin_manifest_version = 1", "must be 2"),
            (
                "spin_manifest_version = 2\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"nope\"",
                "unknown component",
            ),
            (
                "spin_manifest_version = 2\n[variables]\nx = { default = \"a\", bogus = 1 }",
                "bogus",
            ),
            (
                "spin_manifest_version = 2\n[component.c]\nsource = { url = \"https://x\", digest = \"d\" }",
                "not a local file",
            ),
            (
                "spin_manifest_version = 2\n[component.c]\nsource = \"c.wasm\"\nfiles = [\"static/*.html\"]",
                "not supported by this host",
            ),
            (
                "spin_manifest_version = 2\n[component.c]\nsource = \"c.wasm\"\nfiles = [{ source = \"../etc\", destination = \"/etc\" }]",
                "relative path inside the app",
            ),
            (
                "spin_manifest_version = 2\n[component.c]\nsource = \"c.wasm\"\n[[trigger.http]]\nroute = \"/a/:id\"\ncomponent = \"c\"",
                "only exact routes",
            ),
        ];
        for (text, want) in cases {
            let err = Manifest::parse(text, Path::new("spin.toml"), Path::new("."))
                .map(|_| ())
                .unwrap_err();
            let msg = format!("{err:#}");
            assert!(msg.contains(want), "{text}: {msg}");
        }
    }

    #[test]
    fn route_matching_follows_spin_precedence() {
        let all = Route::parse(&"/...".into()).unwrap();
        let idp = Route::parse(&"/idp/...".into()).unwrap();
        let exact = Route::parse(&"/idp/health".into()).unwrap();
        assert_eq!(all, Route::Prefix(String::new()));
        assert!(all.match_rank("/").is_some());
        assert!(all.match_rank("/anything/else").is_some());
        assert!(idp.match_rank("/idp").is_some());
        assert!(idp.match_rank("/idp/x/y").is_some());
        assert!(idp.match_rank("/idpx").is_none());
        assert!(exact.match_rank("/idp/health/").is_some());
        assert!(exact.match_rank("/idp/health/x").is_none());
        assert!(idp.match_rank("/idp/a") > all.match_rank("/idp/a"));
        assert!(exact.match_rank("/idp/health") > idp.match_rank("/idp/health"));
        assert_eq!(idp.path_info("/idp/a/b"), "/a/b");
        assert_eq!(all.path_info("/a/b"), "/a/b");
        assert_eq!(idp.raw(), "/idp/...");
        assert_eq!(idp.prefix(), "/idp");
    }

    #[test]
    fn default_component_needs_a_choice_when_ambiguous() {
        let text = r#"
spin_manifest_version = 2
[[trigger.http]]
route = "/a/..."
component = "a"
[[trigger.http]]
route = "/b/..."
component = "b"
[component.a]
source = "a.wasm"
[component.b]
source = "b.wasm"
"#;
        let m = Manifest::parse(text, Path::new("spin.toml"), Path::new(".")).unwrap();
        assert!(m.default_component().is_err());
    }
}
