//! `edgeauth rule new NAME [--lang rust|js]`: a rule that builds and tests
//! as it is, so a tenant starts from working code instead of copying an
//! example's setup.
//!
//! Both templates are the same rule (refuse an unverified email, count
//! sign-ins in a claim, record the first one) with the same three tests,
//! the sample events of plugins/fixtures and the `rules` entry the gateway
//! needs for it; they differ in how they reach their SDK and build.
//!
//! - Rust: the crate is its own cargo workspace (it builds wherever it is
//!   put, also inside this repository), depends on the SDK by path, and
//!   carries the size-tuned release profile the examples get from the
//!   workspace (the artifact is read, checked and loaded at every sign-in,
//!   so its size is latency).
//! - JavaScript: `sdk` links to plugins/sdk-js, which the rule imports by a
//!   relative path (componentize-js resolves no package names; the SDK's
//!   build.mjs builds a linked rule from a copy, links resolved), and whose
//!   testing.mjs runs the rule's function under Node on the fixtures
//!   (`node --test`, no Wasm build). package.json pins componentize-js as
//!   this repository does.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use edgeauth_rules::config;

use super::Args;

pub(super) const VALUE_FLAGS: &[&str] = &["--dir", "--sdk", "--lang"];

/// The sample events shipped with the SDK (plugins/fixtures), by file name.
pub(super) const FIXTURES: &[(&str, &str)] = &[
    (
        "first-login.json",
        include_str!("../../../../plugins/fixtures/first-login.json"),
    ),
    (
        "returning-user.json",
        include_str!("../../../../plugins/fixtures/returning-user.json"),
    ),
    (
        "unverified-email.json",
        include_str!("../../../../plugins/fixtures/unverified-email.json"),
    ),
    (
        "github-oauth2.json",
        include_str!("../../../../plugins/fixtures/github-oauth2.json"),
    ),
    (
        "saml.json",
        include_str!("../../../../plugins/fixtures/saml.json"),
    ),
    (
        "resumed.json",
        include_str!("../../../../plugins/fixtures/resumed.json"),
    ),
];

/// The repository's package.json: its pin of componentize-js (and the Node
/// version it needs) is the one the JavaScript template's package.json
/// repeats, so the two cannot drift apart.
const REPO_PACKAGE_JSON: &str = include_str!("../../../../package.json");
const COMPONENTIZE_JS: &str = "@bytecodealliance/componentize-js";

/// The language of the rule `new` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lang {
    Rust,
    Js,
}

impl Lang {
    fn parse(text: &str) -> Result<Lang, ScaffoldError> {
        match text {
            "rust" => Ok(Lang::Rust),
            "js" => Ok(Lang::Js),
            other => Err(ScaffoldError::Lang(other.to_owned())),
        }
    }

    /// The SDK's directory in the repository this build of the tool was
    /// built from. A tool moved elsewhere is told with `--sdk`.
    fn sdk_in_repo(self) -> &'static str {
        match self {
            Lang::Rust => "plugins/sdk",
            Lang::Js => "plugins/sdk-js",
        }
    }

    /// A file that tells the SDK's directory from any other.
    fn sdk_marker(self) -> &'static str {
        match self {
            Lang::Rust => "Cargo.toml",
            Lang::Js => "build.mjs",
        }
    }

    fn default_sdk(self) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(self.sdk_in_repo())
    }
}

/// Why `new` wrote nothing.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ScaffoldError {
    /// Not exactly one positional argument.
    Usage,
    /// Not a name a tenant's chain can hold.
    Name(String),
    /// `--lang` other than rust or js.
    Lang(String),
    /// The target directory exists and has something in it.
    NotEmpty(PathBuf),
    /// No SDK of that language at the path.
    Sdk { lang: Lang, path: PathBuf },
    /// The SDK's path is written into the rule's files as text.
    SdkNotUtf8(PathBuf),
    /// The repository's package.json lacks the pin the JS template copies
    /// (a build problem of this tool, caught by its tests).
    Pin(String),
}

impl std::fmt::Display for ScaffoldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScaffoldError::Usage => write!(
                f,
                "expected the rule's name: edgeauth rule new NAME [--lang rust|js] [--dir DIR] [--sdk PATH]"
            ),
            ScaffoldError::Name(name) => write!(
                f,
                "rule name `{name}` must be 1-64 of a-z 0-9 - _ (it is the name in the tenant's chain)"
            ),
            ScaffoldError::Lang(lang) => write!(
                f,
                "--lang {lang:?}: the templates are `rust` (the default) and `js` (JavaScript)"
            ),
            ScaffoldError::NotEmpty(dir) => write!(
                f,
                "{} exists and is not empty: pick another --dir",
                dir.display()
            ),
            ScaffoldError::Sdk { lang, path } => write!(
                f,
                "the rule SDK ({} of the edgeauth repository) is not at {}: pass --sdk PATH",
                lang.sdk_in_repo(),
                path.display()
            ),
            ScaffoldError::SdkNotUtf8(path) => {
                write!(f, "the SDK's path {} is not UTF-8", path.display())
            }
            ScaffoldError::Pin(what) => write!(
                f,
                "this tool's copy of the repository's package.json has no {what}"
            ),
        }
    }
}

impl std::error::Error for ScaffoldError {}

/// What `new` was asked for, checked before anything is written.
#[derive(Debug)]
struct Plan {
    name: String,
    lang: Lang,
    dir: PathBuf,
    /// The SDK's directory, canonical.
    sdk: PathBuf,
}

fn plan(a: &Args) -> Result<Plan, ScaffoldError> {
    let name = match a.positional.as_slice() {
        [one] => one.clone(),
        _ => return Err(ScaffoldError::Usage),
    };
    if !config::valid_name(&name) {
        return Err(ScaffoldError::Name(name));
    }
    let lang = a.value("--lang").map_or(Ok(Lang::Rust), Lang::parse)?;
    let dir = a
        .value("--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(&name));
    // An unreadable directory counts as not empty: nothing is written into
    // what cannot be looked at.
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(ScaffoldError::NotEmpty(dir));
    }
    let sdk = a
        .value("--sdk")
        .map(PathBuf::from)
        .unwrap_or_else(|| lang.default_sdk());
    let sdk = std::fs::canonicalize(&sdk)
        .ok()
        .filter(|p| p.join(lang.sdk_marker()).is_file())
        .ok_or(ScaffoldError::Sdk { lang, path: sdk })?;
    if sdk.to_str().is_none() {
        return Err(ScaffoldError::SdkNotUtf8(sdk));
    }
    Ok(Plan {
        name,
        lang,
        dir,
        sdk,
    })
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

# A rule is a cdylib built for wasm32-unknown-unknown (no WASI).
[lib]
crate-type = ["cdylib"]

[dependencies]
edgeauth-plugin = { path = "{sdk}" }
serde = { version = "1", features = ["derive"] }

# Its own workspace: builds wherever the directory is put.
[workspace]

# The gateway reads, checks and loads the artifact at every sign-in: small
# is fast. `edgeauth rule build` precompiles what this produces.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"
"#;

/// How the repository builds its own rules for wasm32-unknown-unknown.
const CARGO_CONFIG: &str = include_str!("../../../../.cargo/config.toml");

const LIB_RS: &str = r#"//! `{name}`: a post-login rule for edgeauth (wit/plugin.wit).
//!
//! Starting point made by `edgeauth rule new`: people without a verified
//! email are refused; everyone else gets a namespaced claim with their sign-in
//! count, and a first sign-in records when it happened in app metadata.
//!
//! Config (the `config` of the rule's entry in the gateway's `rules`):
//! `{"claim_namespace": "https://example.com/"}`.

use edgeauth_plugin::{Commands, Login, json};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    #[serde(default = "default_namespace")]
    claim_namespace: String,
}

fn default_namespace() -> String {
    "https://example.com/".into()
}

fn on_login(login: &Login) -> Result<Commands, String> {
    let config: Config = login.config()?;
    let mut out = Commands::new();
    if !login.user.email_verified {
        out.deny("a verified email address is required");
        return Ok(out);
    }
    if login.transaction.first_login {
        out.patch_app_metadata(json!({"first_login_ms": edgeauth_plugin::host::now_ms()}));
    }
    out.claim(
        format!("{}login_count", config.claim_namespace),
        login.transaction.login_count + 1,
    );
    Ok(out)
}

edgeauth_plugin::rule!(on_login);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeauth_plugin::Command;
    use edgeauth_plugin::testing::{self, Grant};

    /// A sample event (fixtures/), as `edgeauth rule test --event` reads it.
    fn fixture(text: &str) -> Login {
        Login::from_file_text(text).expect("fixture")
    }

    #[test]
    fn unverified_email_is_refused() {
        let login = fixture(include_str!("../fixtures/unverified-email.json"));
        let out = testing::run(on_login, &login, &Grant::new()).unwrap();
        assert!(matches!(out.as_slice(), [Command::Deny { .. }]), "{out:?}");
    }

    #[test]
    fn first_login_is_recorded_and_counted() {
        testing::set_now_ms(1_800_000_000_000);
        let login = fixture(include_str!("../fixtures/first-login.json"));
        let out = testing::run(on_login, &login, &Grant::new()).unwrap();
        assert_eq!(
            out,
            vec![
                Command::PatchAppMetadata { patch: json!({"first_login_ms": 1_800_000_000_000u64}) },
                Command::SetClaim { name: "https://example.com/login_count".into(), value: json!(1) },
            ]
        );
    }

    #[test]
    fn returning_user_only_gets_the_claim() {
        let login = fixture(include_str!("../fixtures/returning-user.json"));
        let out = testing::run(on_login, &login, &Grant::new()).unwrap();
        assert_eq!(out.len(), 1, "{out:?}");
    }
}
"#;

const README_RUST: &str = r#"# {name}

A post-login rule for edgeauth, made by `edgeauth rule new` (the guide:
plugins/README.md in the edgeauth repository).

    cargo test                                    # unit tests (the SDK stands in for the gateway)
    edgeauth rule test . --event fixtures/first-login.json --now 2026-12-07T09:30:00Z
                                                  # built for wasm and run as a sign-in would
    edgeauth rule build . --name {name}          # -> {name}.rule (signed; key: `edgeauth rule keygen`)
"#;

const README_JS: &str = r#"# {name}

A post-login rule for edgeauth in JavaScript, made by
`edgeauth rule new --lang js` (the guide: plugins/README.md in the edgeauth
repository).

    node --test                                   # rule.test.js under Node, no Wasm build (also: npm test)
    edgeauth rule test . --event fixtures/first-login.json --now 2026-12-07T09:30:00Z
                                                  # built into a component and run as a sign-in would
    edgeauth rule build . --name {name}          # -> {name}.rule (signed; key: `edgeauth rule keygen`)
    npm run build                                 # only the component: {name}.wasm

`sdk` links to the JavaScript SDK (plugins/sdk-js); `rule.js` imports it as
`./sdk/index.js`, and the tests use its `testing.mjs` (a stand-in host: clock,
randomness, log lines). The build (`sdk/build.mjs`, what `rule test` and
`rule build` run) needs componentize-js, pinned in package.json: this
directory's (`npm install`) or the edgeauth checkout's (`npm ci` there).
"#;

/// The part of the README both templates share.
const README_TAIL: &str = r#"
`rules.json` is this rule's entry for the gateway's `rules` variable (tenant
`default`); `fixtures/` holds sample events (first login, returning user,
unverified email, GitHub-style OAuth2, SAML, a sign-in resumed after a redirect).
"#;

const RULE_JS: &str = r#"// @ts-check
// `{name}`: a post-login rule for edgeauth (wit/plugin.wit), in JavaScript.
//
// Starting point made by `edgeauth rule new --lang js`: people without a
// verified email are refused; everyone else gets a namespaced claim with
// their sign-in count, and a first sign-in records when it happened in app
// metadata.
//
// Config (the `config` of the rule's entry in the gateway's `rules`):
// {"claim_namespace": "https://example.com/"}.

import { defineRule, deny, patchAppMetadata, setClaim } from './sdk/index.js';

export const rule = defineRule((login) => {
  const namespace = login.config.claim_namespace ?? 'https://example.com/';
  if (typeof namespace !== 'string') {
    // Thrown: the sign-in fails with this as the rule's error.
    throw new Error('invalid rule configuration: `claim_namespace` must be a string');
  }
  if (!login.user.emailVerified) return [deny('a verified email address is required')];
  const commands = [];
  if (login.transaction.firstLogin) {
    // Date.now() is the gateway's clock: the SDK points it at the host's.
    commands.push(patchAppMetadata({ first_login_ms: Date.now() }));
  }
  commands.push(setClaim(`${namespace}login_count`, login.transaction.loginCount + 1));
  return commands;
});
"#;

const RULE_TEST_JS: &str = r#"// Unit tests of rule.js: `node --test` (or `npm test`), under Node, without
// building WebAssembly. The SDK's testing.mjs stands in for the gateway's
// host (clock, randomness, log lines) and turns the sample events of
// fixtures/ into the event the rule gets; `edgeauth rule test` then runs the
// built component with the gateway's budgets and checks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deny, patchAppMetadata, setClaim } from './sdk/commands.js';
import { fixture, loadRule, run } from './sdk/testing.mjs';

// Loaded with the stand-in host in place (a static import would look for the real one).
const { rule } = await loadRule(new URL('./rule.js', import.meta.url));
const event = (file) => fixture(new URL(`./fixtures/${file}`, import.meta.url));

test('an unverified email is refused', () => {
  const { commands } = run(rule, event('unverified-email.json'));
  assert.deepEqual(commands, [deny('a verified email address is required')]);
});

test('a first sign-in is recorded and counted', () => {
  const { commands } = run(rule, event('first-login.json'), { nowMs: 1_800_000_000_000 });
  assert.deepEqual(commands, [
    patchAppMetadata({ first_login_ms: 1_800_000_000_000 }),
    setClaim('https://example.com/login_count', 1),
  ]);
});

test('a returning user only gets the claim, in the configured namespace', () => {
  const { commands } = run(rule, event('returning-user.json'), { config: { claim_namespace: 'https://acme.test/' } });
  assert.deepEqual(commands, [setClaim('https://acme.test/login_count', 13)]);
});
"#;

fn rules_json(name: &str) -> String {
    let v = serde_json::json!({"tenants": {"default": {"chain": [
        {"name": name, "config": {"claim_namespace": "https://example.com/"}}
    ]}}});
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

/// The JavaScript rule's package.json: its tests and build as npm scripts,
/// the SDK by path (as the Rust crate's Cargo.toml has it), componentize-js
/// and Node pinned as the repository pins them.
fn package_json(name: &str, sdk: &str) -> Result<String, ScaffoldError> {
    let repo: serde_json::Value =
        serde_json::from_str(REPO_PACKAGE_JSON).map_err(|_| ScaffoldError::Pin("JSON".into()))?;
    let pin = repo["devDependencies"][COMPONENTIZE_JS]
        .as_str()
        .ok_or_else(|| ScaffoldError::Pin(format!("devDependencies.{COMPONENTIZE_JS}")))?;
    let node = repo["engines"]["node"]
        .as_str()
        .ok_or_else(|| ScaffoldError::Pin("engines.node".into()))?;
    let v = serde_json::json!({
        "name": name,
        "private": true,
        "version": "0.1.0",
        "description": "An edgeauth post-login rule (edgeauth rule new --lang js)",
        "type": "module",
        "main": "rule.js",
        "scripts": {
            "test": "node --test",
            "build": format!("node sdk/build.mjs rule.js -o {name}.wasm"),
        },
        "engines": {"node": node},
        "dependencies": {"@edgeauth/rule-sdk": format!("file:{sdk}")},
        "devDependencies": {COMPONENTIZE_JS: pin},
    });
    Ok(format!(
        "{}\n",
        serde_json::to_string_pretty(&v).unwrap_or_default()
    ))
}

/// Every file of the rule `p` describes, by path within its directory.
fn files(p: &Plan) -> Result<Vec<(String, String)>, ScaffoldError> {
    let sdk = p
        .sdk
        .to_str()
        .ok_or_else(|| ScaffoldError::SdkNotUtf8(p.sdk.clone()))?;
    let fill = |t: &str| t.replace("{name}", &p.name).replace("{sdk}", sdk);
    let mut files = match p.lang {
        Lang::Rust => vec![
            ("Cargo.toml".to_owned(), fill(CARGO_TOML)),
            ("src/lib.rs".to_owned(), fill(LIB_RS)),
            ("README.md".to_owned(), fill(README_RUST) + README_TAIL),
            (".gitignore".to_owned(), "/target\n*.rule\n".to_owned()),
            // The workspace's own setting (one definition): a 128 KiB stack,
            // so the rule starts in ~0.25 MiB instead of 1.1 MiB.
            (".cargo/config.toml".to_owned(), CARGO_CONFIG.to_owned()),
        ],
        Lang::Js => vec![
            ("package.json".to_owned(), package_json(&p.name, sdk)?),
            ("rule.js".to_owned(), fill(RULE_JS)),
            ("rule.test.js".to_owned(), fill(RULE_TEST_JS)),
            ("README.md".to_owned(), fill(README_JS) + README_TAIL),
            (
                ".gitignore".to_owned(),
                "/node_modules\n*.wasm\n*.rule\n".to_owned(),
            ),
        ],
    };
    files.push(("rules.json".to_owned(), rules_json(&p.name)));
    for (file, text) in FIXTURES {
        files.push((format!("fixtures/{file}"), (*text).to_owned()));
    }
    Ok(files)
}

/// The JavaScript rule's `sdk` link: Node and the SDK's build follow it, so
/// the rule imports the SDK without a package manager or a bundler.
#[cfg(unix)]
fn link_sdk(sdk: &Path, dir: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(sdk, dir.join("sdk"))
}

#[cfg(not(unix))]
fn link_sdk(sdk: &Path, dir: &Path) -> std::io::Result<()> {
    // Directory links need privileges elsewhere; say what to do instead.
    Err(std::io::Error::other(format!(
        "link {} to {} yourself (a directory link or junction named `sdk`)",
        dir.join("sdk").display(),
        sdk.display()
    )))
}

pub(super) fn new(a: &Args) -> Result<()> {
    let p = plan(a)?;
    let files = files(&p)?;
    for (file, text) in &files {
        let path = p.dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let dir = p.dir.display();
    match p.lang {
        Lang::Rust => {
            println!("created rule crate `{}` in {dir}", p.name);
            println!(
                "next: cd {dir} && cargo test && edgeauth rule test . --event fixtures/first-login.json"
            );
        }
        Lang::Js => {
            link_sdk(&p.sdk, &p.dir)
                .with_context(|| format!("cannot link {dir}/sdk to {}", p.sdk.display()))?;
            println!("created JavaScript rule `{}` in {dir}", p.name);
            println!(
                "next: cd {dir} && node --test && edgeauth rule test . --event fixtures/first-login.json"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use edgeauth_rules::event::Event;

    #[test]
    fn shipped_fixtures_are_valid_events_of_every_kind() {
        let mut kinds = std::collections::BTreeSet::new();
        for (file, text) in FIXTURES {
            let e = Event::from_file_text(text).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(!e.user.sub.is_empty(), "{file}");
            kinds.insert(format!("{:?}", e.connection.kind));
        }
        assert_eq!(kinds.len(), 3, "oidc, oauth2 and saml: {kinds:?}");
        // Every file of plugins/fixtures is shipped (none forgotten here).
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/fixtures");
        let on_disk = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json"))
            .count();
        assert_eq!(on_disk, FIXTURES.len());
    }

    fn args(v: &[&str]) -> Args {
        Args::parse(
            &v.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            VALUE_FLAGS,
        )
        .unwrap()
    }

    #[test]
    fn refuses_bad_names_and_non_empty_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("r").to_str().unwrap().to_owned();
        let err = new(&args(&["My Rule", "--dir", &d]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("a-z 0-9"), "{err}");
        assert_eq!(plan(&args(&["a", "b"])).unwrap_err(), ScaffoldError::Usage);
        new(&args(&["my-rule", "--dir", &d])).unwrap();
        assert!(Path::new(&d).join("fixtures/saml.json").is_file());
        let toml = std::fs::read_to_string(Path::new(&d).join("Cargo.toml")).unwrap();
        assert!(
            toml.contains("name = \"my-rule\"") && toml.contains("plugins/sdk"),
            "{toml}"
        );
        let config = std::fs::read_to_string(Path::new(&d).join(".cargo/config.toml")).unwrap();
        assert!(config.contains("-zstack-size=131072"), "{config}");
        let err = new(&args(&["my-rule", "--dir", &d]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not empty"), "{err}");
        let err = new(&args(&["my-rule", "--lang", "js", "--dir", &d]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not empty"), "{err}");
        let err = new(&args(&[
            "x",
            "--dir",
            &format!("{d}2"),
            "--sdk",
            "/nonexistent",
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("--sdk"), "{err}");
        assert!(!Path::new(&format!("{d}2")).exists(), "nothing written");
    }

    #[test]
    fn lang_is_rust_by_default_js_on_request_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("r").to_str().unwrap().to_owned();
        assert_eq!(plan(&args(&["r", "--dir", &d])).unwrap().lang, Lang::Rust);
        assert_eq!(
            plan(&args(&["r", "--dir", &d, "--lang", "rust"]))
                .unwrap()
                .lang,
            Lang::Rust
        );
        assert_eq!(
            plan(&args(&["r", "--dir", &d, "--lang=js"])).unwrap().lang,
            Lang::Js
        );
        for bad in ["python", "JS", "javascript", "ts", ""] {
            let err = plan(&args(&["r", "--dir", &d, "--lang", bad])).unwrap_err();
            assert_eq!(err, ScaffoldError::Lang(bad.into()));
            let text = err.to_string();
            assert!(text.contains("`rust`") && text.contains("`js`"), "{text}");
        }
        assert!(!Path::new(&d).exists(), "nothing written");
        // The other language's SDK is not taken for this one's.
        let rust_sdk = Lang::Rust.default_sdk();
        let err = plan(&args(&[
            "r",
            "--dir",
            &d,
            "--lang",
            "js",
            "--sdk",
            rust_sdk.to_str().unwrap(),
        ]))
        .unwrap_err();
        assert!(
            matches!(err, ScaffoldError::Sdk { lang: Lang::Js, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("plugins/sdk-js"), "{err}");
    }

    #[test]
    fn js_template_links_the_sdk_pins_the_toolchain_and_shares_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let js = tmp.path().join("js");
        let rs = tmp.path().join("rs");
        new(&args(&[
            "hello-js",
            "--lang",
            "js",
            "--dir",
            js.to_str().unwrap(),
        ]))
        .unwrap();
        new(&args(&["hello-js", "--dir", rs.to_str().unwrap()])).unwrap();
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };

        let sdk = std::fs::canonicalize(Lang::Js.default_sdk()).unwrap();
        assert_eq!(std::fs::read_link(js.join("sdk")).unwrap(), sdk);
        assert!(js.join("sdk/index.js").is_file(), "the link resolves");
        assert!(js.join("sdk/testing.mjs").is_file());

        let pkg: serde_json::Value = serde_json::from_str(&read(js.join("package.json"))).unwrap();
        let repo: serde_json::Value = serde_json::from_str(REPO_PACKAGE_JSON).unwrap();
        assert_eq!(pkg["name"], "hello-js");
        assert_eq!(
            pkg["devDependencies"][COMPONENTIZE_JS],
            repo["devDependencies"][COMPONENTIZE_JS]
        );
        assert_eq!(pkg["devDependencies"][COMPONENTIZE_JS], "0.23.0");
        assert_eq!(pkg["engines"]["node"], repo["engines"]["node"]);
        assert_eq!(
            pkg["dependencies"]["@edgeauth/rule-sdk"],
            format!("file:{}", sdk.display())
        );
        assert_eq!(pkg["scripts"]["test"], "node --test");
        assert_eq!(
            pkg["scripts"]["build"],
            "node sdk/build.mjs rule.js -o hello-js.wasm"
        );

        let rule = read(js.join("rule.js"));
        assert!(
            rule.contains("from './sdk/index.js'") && rule.contains("defineRule"),
            "{rule}"
        );
        assert!(rule.contains("`hello-js`"), "{rule}");
        let test = read(js.join("rule.test.js"));
        assert!(
            test.contains("./sdk/testing.mjs") && test.contains("fixtures/"),
            "{test}"
        );
        assert!(read(js.join("README.md")).contains("node --test"));

        // One definition of what both templates carry: the same rules
        // entry, fixtures and README tail.
        assert_eq!(read(js.join("rules.json")), read(rs.join("rules.json")));
        for (file, text) in FIXTURES {
            assert_eq!(read(js.join("fixtures").join(file)), *text, "{file}");
        }
        assert!(read(js.join("README.md")).ends_with(README_TAIL));
        assert!(read(rs.join("README.md")).ends_with(README_TAIL));
        assert!(!js.join("Cargo.toml").exists() && !rs.join("package.json").exists());
    }
}
