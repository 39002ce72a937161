//! `edgeauth rule new NAME`: a rule crate that builds and tests as it is, so
//! a tenant starts from working code instead of copying an example's setup.
//!
//! The crate is its own cargo workspace (it builds wherever it is put, also
//! inside this repository), depends on the SDK by path, carries the
//! size-tuned release profile the examples get from the workspace (the
//! artifact is read, checked and loaded at every sign-in, so its size is
//! latency), the sample events of plugins/fixtures and the `rules` entry
//! the gateway needs for it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use edgeauth_rules::config;

use super::Args;

pub(super) const VALUE_FLAGS: &[&str] = &["--dir", "--sdk"];

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

/// Where this build of the tool found the SDK: the repository it was built
/// from. A tool moved elsewhere is told with `--sdk`.
fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../plugins/sdk")
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

const README: &str = r#"# {name}

A post-login rule for edgeauth, made by `edgeauth rule new` (the guide:
plugins/README.md in the edgeauth repository).

    cargo test                                    # unit tests (the SDK stands in for the gateway)
    edgeauth rule test . --event fixtures/first-login.json --now 2026-12-07T09:30:00Z
                                                  # built for wasm and run as a sign-in would
    edgeauth rule build . --name {name}          # -> {name}.rule (signed; key: `edgeauth rule keygen`)

`rules.json` is this rule's entry for the gateway's `rules` variable (tenant
`default`); `fixtures/` holds sample events (first login, returning user,
unverified email, GitHub-style OAuth2, SAML, a sign-in resumed after a redirect).
"#;

fn rules_json(name: &str) -> String {
    let v = serde_json::json!({"tenants": {"default": {"chain": [
        {"name": name, "config": {"claim_namespace": "https://example.com/"}}
    ]}}});
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

pub(super) fn new(a: &Args) -> Result<()> {
    let name = match a.positional.as_slice() {
        [one] => one.clone(),
        _ => bail!("expected the rule's name: edgeauth rule new NAME [--dir DIR]"),
    };
    if !config::valid_name(&name) {
        bail!(
            "rule name `{name}` must be 1-64 of a-z 0-9 - _ (it is the name in the tenant's chain)"
        );
    }
    let dir = a
        .value("--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(&name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} exists and is not empty: pick another --dir",
            dir.display()
        );
    }
    let sdk = a
        .value("--sdk")
        .map(PathBuf::from)
        .unwrap_or_else(default_sdk);
    let sdk = std::fs::canonicalize(&sdk)
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .with_context(|| {
            format!(
                "the rule SDK (plugins/sdk of the edgeauth repository) is not at {}: pass --sdk PATH",
                sdk.display()
            )
        })?;
    let sdk_text = sdk.to_str().context("the SDK's path is not UTF-8")?;
    let fill = |t: &str| t.replace("{name}", &name).replace("{sdk}", sdk_text);
    std::fs::create_dir_all(dir.join("src"))
        .and_then(|()| std::fs::create_dir_all(dir.join("fixtures")))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    let mut files = vec![
        ("Cargo.toml".to_owned(), fill(CARGO_TOML)),
        ("src/lib.rs".to_owned(), fill(LIB_RS)),
        ("README.md".to_owned(), fill(README)),
        ("rules.json".to_owned(), rules_json(&name)),
        (".gitignore".to_owned(), "/target\n*.rule\n".to_owned()),
    ];
    for (file, text) in FIXTURES {
        files.push((format!("fixtures/{file}"), (*text).to_owned()));
    }
    for (file, text) in &files {
        let path = dir.join(file);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("created rule crate `{name}` in {}", dir.display());
    println!(
        "next: cd {} && cargo test && edgeauth rule test . --event fixtures/first-login.json",
        dir.display()
    );
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

    #[test]
    fn refuses_bad_names_and_non_empty_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let args = |v: &[&str]| {
            Args::parse(
                &v.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                VALUE_FLAGS,
            )
            .unwrap()
        };
        let d = tmp.path().join("r").to_str().unwrap().to_owned();
        let err = new(&args(&["My Rule", "--dir", &d]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("a-z 0-9"), "{err}");
        new(&args(&["my-rule", "--dir", &d])).unwrap();
        assert!(Path::new(&d).join("fixtures/saml.json").is_file());
        let toml = std::fs::read_to_string(Path::new(&d).join("Cargo.toml")).unwrap();
        assert!(
            toml.contains("name = \"my-rule\"") && toml.contains("plugins/sdk"),
            "{toml}"
        );
        let err = new(&args(&["my-rule", "--dir", &d]))
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
    }
}
