//! Spin's runtime config file (`spin up --runtime-config-file`), the part the
//! host serves: `[key_value_store.<label>]` tables that say where a store
//! lives. One file then configures a `spin up` and an `edgeauth up` alike,
//! e.g. several instances sharing one Redis:
//!
//! ```toml
//! [key_value_store.default]
//! type = "redis"
//! url = "redis://127.0.0.1:6379"
//! ```
//!
//! and `[[variables_provider]]` entries of `type = "static"` (`values = {
//! name = "value", ... }`): variables from the file instead of the process
//! environment, which under Spin saves a blocking lookup per variable and
//! request (bench/README.md).
//!
//! Anything the host would not honour is a startup error naming the field,
//! never silently ignored: a store the operator placed in Redis but that the
//! host kept on local disk would split the instances' state (a logout through
//! one instance not seen by the others).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result, bail};

/// Where one labelled store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `type = "spin"`: the runtime's own local store (Spin: SQLite; the
    /// host: its journal under `--state-dir`).
    Local,
    /// `type = "redis"`: a Redis server, shared by every instance using it.
    Redis { url: String },
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub key_value_stores: BTreeMap<String, StoreConfig>,
    /// The static providers' values; with several providers, the first one
    /// that has a name gives it (Spin asks them in order).
    pub static_variables: BTreeMap<String, String>,
}

/// Spin's types the host does not implement, named so the error says "not
/// supported here" rather than "unknown".
const SPIN_ONLY_TYPES: &[&str] = &["azure_cosmos", "aws_dynamo"];

impl RuntimeConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read runtime config {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("runtime config {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let doc: toml::Table = text.parse().context("not valid TOML")?;
        let mut config = RuntimeConfig::default();
        for (section, value) in doc {
            if section == "variables_provider" {
                let toml::Value::Array(providers) = value else {
                    bail!("variables_provider must be an array of tables ([[variables_provider]])");
                };
                for (i, p) in providers.into_iter().enumerate() {
                    let toml::Value::Table(p) = p else {
                        bail!("variables_provider[{i}] must be a table");
                    };
                    for (name, value) in static_values(i, p)? {
                        config.static_variables.entry(name).or_insert(value);
                    }
                }
                continue;
            }
            if section != "key_value_store" {
                bail!(
                    "[{section}] is not supported by the edgeauth host (it reads [key_value_store.<label>] and [[variables_provider]] type = \"static\"); use `spin up` for it or remove it"
                );
            }
            let toml::Value::Table(stores) = value else {
                bail!("key_value_store must be a table of stores ([key_value_store.<label>])");
            };
            for (label, store) in stores {
                let toml::Value::Table(store) = store else {
                    bail!("key_value_store.{label} must be a table");
                };
                config
                    .key_value_stores
                    .insert(label.clone(), store_config(&label, store)?);
            }
        }
        Ok(config)
    }
}

/// One `[[variables_provider]]`: only `type = "static"` is served here.
fn static_values(i: usize, mut p: toml::Table) -> Result<Vec<(String, String)>> {
    let field = |name: &str| format!("variables_provider[{i}].{name}");
    match p.remove("type") {
        Some(toml::Value::String(t)) if t == "static" => {}
        Some(toml::Value::String(t)) => bail!(
            "{} = {t:?} is not supported by the edgeauth host (it has \"static\"; SPIN_VARIABLE_* stand for \"env\"); use `spin up`",
            field("type")
        ),
        _ => bail!("{} is missing (\"static\")", field("type")),
    }
    let values = match p.remove("values") {
        Some(toml::Value::Table(v)) => v,
        None => toml::Table::new(),
        Some(other) => bail!(
            "{} must be a table, not {}",
            field("values"),
            other.type_str()
        ),
    };
    if let Some(extra) = p.keys().next() {
        bail!("{} is not a setting of a static provider", field(extra));
    }
    values
        .into_iter()
        .map(|(name, v)| match v {
            toml::Value::String(s) => {
                crate::variables::validate_name(&name).map_err(|e| {
                    anyhow::anyhow!("{}: invalid variable name {e}", field("values"))
                })?;
                Ok((name, s))
            }
            other => bail!(
                "{}.{name} must be a string, not {} (variables are strings)",
                field("values"),
                other.type_str()
            ),
        })
        .collect()
}

fn store_config(label: &str, mut t: toml::Table) -> Result<StoreConfig> {
    let field = |name: &str| format!("key_value_store.{label}.{name}");
    let string = |t: &mut toml::Table, name: &str| -> Result<Option<String>> {
        match t.remove(name) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => bail!("{} must be a string, not {}", field(name), other.type_str()),
        }
    };
    let Some(kind) = string(&mut t, "type")? else {
        bail!("{} is missing (\"redis\" or \"spin\")", field("type"));
    };
    let config = match kind.as_str() {
        "redis" => {
            let Some(url) = string(&mut t, "url")? else {
                bail!(
                    "{} is missing (e.g. \"redis://127.0.0.1:6379\")",
                    field("url")
                );
            };
            crate::key_value::check_redis_url(&url).with_context(|| field("url"))?;
            StoreConfig::Redis { url }
        }
        "spin" => {
            if t.contains_key("path") {
                bail!(
                    "{}: the host keeps its local store under --state-dir (its own format, not Spin's SQLite); remove `path`",
                    field("path")
                );
            }
            StoreConfig::Local
        }
        other if SPIN_ONLY_TYPES.contains(&other) => {
            bail!(
                "{} = {other:?} is not supported by the edgeauth host (it has \"redis\" and \"spin\"); use `spin up`",
                field("type")
            )
        }
        other => bail!(
            "{} = {other:?} is not a key-value store type (\"redis\" or \"spin\")",
            field("type")
        ),
    };
    if let Some(extra) = t.keys().next() {
        bail!("{} is not a setting of a {kind:?} store", field(extra));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        format!("{:#}", RuntimeConfig::parse(text).unwrap_err())
    }

    #[test]
    fn static_variables_providers() {
        let c = RuntimeConfig::parse(
            "[[variables_provider]]\ntype = \"static\"\nvalues = { routes = \"[]\", public_url = \"http://a\" }\n\
             [[variables_provider]]\ntype = \"static\"\nvalues = { public_url = \"http://b\" }\n",
        )
        .unwrap();
        assert_eq!(c.static_variables["routes"], "[]");
        assert_eq!(
            c.static_variables["public_url"], "http://a",
            "the first provider wins"
        );
        assert!(
            err("[[variables_provider]]\ntype = \"vault\"\n")
                .contains("not supported by the edgeauth host")
        );
        assert!(err("[[variables_provider]]\nvalues = {}\n").contains("type is missing"));
        assert!(
            err("[[variables_provider]]\ntype = \"static\"\nvalues = { ttl = 5 }\n")
                .contains("ttl must be a string")
        );
        assert!(
            err("[[variables_provider]]\ntype = \"static\"\nprefix = \"X\"\n")
                .contains("prefix is not a setting")
        );
        assert!(
            err("[[variables_provider]]\ntype = \"static\"\nvalues = { Bad-Name = \"x\" }\n")
                .contains("invalid variable name")
        );
        assert!(err("[variables_provider]\ntype = \"static\"\n").contains("array of tables"));
    }

    #[test]
    fn redis_and_local_stores() {
        let c = RuntimeConfig::parse(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n\
             [key_value_store.cache]\ntype = \"spin\"\n",
        )
        .unwrap();
        assert_eq!(
            c.key_value_stores["default"],
            StoreConfig::Redis {
                url: "redis://127.0.0.1:6379".into()
            }
        );
        assert_eq!(c.key_value_stores["cache"], StoreConfig::Local);
        assert_eq!(RuntimeConfig::parse("").unwrap(), RuntimeConfig::default());
    }

    #[test]
    fn what_the_host_would_not_honour_is_an_error_naming_the_field() {
        let e = err("[key_value_store.default]\ntype = \"memcached\"\n");
        assert!(
            e.contains("key_value_store.default.type") && e.contains("memcached"),
            "{e}"
        );
        let e = err("[key_value_store.default]\ntype = \"aws_dynamo\"\n");
        assert!(e.contains("not supported by the edgeauth host"), "{e}");
        let e = err("[key_value_store.default]\ntype = \"redis\"\n");
        assert!(e.contains("key_value_store.default.url is missing"), "{e}");
        let e = err("[key_value_store.default]\nurl = \"redis://x\"\n");
        assert!(e.contains("key_value_store.default.type is missing"), "{e}");
        let e = err("[key_value_store.default]\ntype = \"redis\"\nurl = 6379\n");
        assert!(e.contains("url must be a string"), "{e}");
        let e = err(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1\"\nurl2 = \"x\"\n",
        );
        assert!(
            e.contains("key_value_store.default.url2 is not a setting"),
            "{e}"
        );
        let e = err("[key_value_store.default]\ntype = \"spin\"\npath = \"kv.db\"\n");
        assert!(e.contains("key_value_store.default.path"), "{e}");
        let e = err("[[config_provider]]\ntype = \"vault\"\n");
        assert!(e.contains("[config_provider] is not supported"), "{e}");
        let e = err("key_value_store = 1\n");
        assert!(e.contains("must be a table"), "{e}");
        let e = err("[key_value_store.default\n");
        assert!(e.contains("not valid TOML"), "{e}");
    }

    #[test]
    fn bad_redis_urls_are_refused_at_load() {
        for (url, why) in [
            ("127.0.0.1:6379", "redis://"),
            ("http://127.0.0.1:6379", "redis://"),
            ("redis://", "host"),
            ("rediss://127.0.0.1:6379", "TLS"),
            ("redis://127.0.0.1:notaport", "url"),
        ] {
            let e = err(&format!(
                "[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n"
            ));
            assert!(
                e.contains("key_value_store.default.url") && e.contains(why),
                "{url}: {e}"
            );
        }
    }
}
