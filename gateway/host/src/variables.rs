//! Application variables, resolved the way Spin does: `[variables]` declares
//! names with a default or `required = true`; the environment provider
//! (`SPIN_VARIABLE_<NAME>`) overrides defaults; `[component.<id>.variables]`
//! maps component-visible names to templates over the application variables.
//!
//! A runtime config file's static providers (`[[variables_provider]] type =
//! "static"`, [`crate::runtime_config`]) come first, as under Spin 4.1: a
//! value there beats `SPIN_VARIABLE_<NAME>` (tests/e2e/02-variables-provider
//! checks both runtimes agree).
//!
//! Everything is resolved once at startup: neither provider changes while the
//! host runs, and an unresolvable required variable must stop the host before
//! it serves.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use anyhow::{Context as _, Result, bail};

/// Prefix used by Spin's environment variables provider.
pub const ENV_PREFIX: &str = "SPIN_VARIABLE_";

/// A template such as `"prefix-{{ name }}"`: literal text with `{{ expr }}`
/// references (spaces inside the braces are optional).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

impl Template {
    pub fn parse(text: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after_open) = rest.strip_prefix("{{") {
                let Some((expr, after_close)) = after_open.split_once("}}") else {
                    bail!("invalid template {text:?}: unmatched '{{{{'");
                };
                parts.push(Part::Var(expr.trim().to_string()));
                rest = after_close;
            } else {
                let end = rest.find("{{").unwrap_or(rest.len());
                parts.push(Part::Lit(rest[..end].to_string()));
                rest = &rest[end..];
            }
        }
        Ok(Self { parts })
    }

    /// True when the template has no `{{ }}` reference.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    /// Names referenced by the template, in order.
    pub fn references(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Lit(_) => None,
        })
    }

    pub fn resolve(&self, lookup: impl Fn(&str) -> Result<String>) -> Result<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(l) => out.push_str(l),
                Part::Var(v) => out.push_str(&lookup(v)?),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Lit(l) => f.write_str(l)?,
                Part::Var(v) => write!(f, "{{{{ {v} }}}}")?,
            }
        }
        Ok(())
    }
}

/// Spin's rule for variable names (application and component): lower-case
/// ASCII letters, digits and single underscores, starting with a letter and
/// ending with a letter or digit. Returns the reason a name is invalid.
pub fn validate_name(name: &str) -> std::result::Result<(), String> {
    let reason = if name.is_empty() {
        "must not be empty".to_string()
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        format!(
            "invalid character {c:?}. Variable names may contain only lower-case letters, numbers, and underscores."
        )
    } else if !name.as_bytes()[0].is_ascii_lowercase() {
        "must start with a lowercase ASCII letter".to_string()
    } else if !name.as_bytes()[name.len() - 1].is_ascii_alphanumeric() {
        "must end with a lowercase ASCII letter or digit".to_string()
    } else if name.contains("__") {
        "must not contain multiple consecutive underscores".to_string()
    } else {
        return Ok(());
    };
    Err(format!("{name:?}: {reason}"))
}

/// One `[variables]` entry as written in the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariableDecl {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

/// Where a resolved value came from (shown by `edgeauth check`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    Env,
    /// A static provider of the runtime config file.
    Static,
}

#[derive(Clone, Debug)]
pub struct Resolved {
    pub value: String,
    pub secret: bool,
    pub source: Source,
}

/// The application variables with their values.
#[derive(Clone, Debug, Default)]
pub struct AppVariables {
    values: BTreeMap<String, Resolved>,
}

impl AppVariables {
    /// Resolves every declared variable, reading overrides with `env`
    /// (the process environment in production, a map in tests). Fails naming
    /// every required variable that has no value.
    #[cfg(test)]
    pub fn resolve(
        decls: &BTreeMap<String, VariableDecl>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        Self::resolve_with(decls, &BTreeMap::new(), env)
    }

    /// [`Self::resolve`] with the runtime config's static values first.
    pub fn resolve_with(
        decls: &BTreeMap<String, VariableDecl>,
        statics: &BTreeMap<String, String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for (name, decl) in decls {
            validate_name(name).map_err(|e| anyhow::anyhow!("invalid variable name {e}"))?;
            if decl.required == decl.default.is_some() {
                bail!("variable {name:?} must be `required` OR have a `default`");
            }
            let env_name = format!("{ENV_PREFIX}{}", name.to_ascii_uppercase());
            if let Some(value) = statics.get(name) {
                let resolved = Resolved {
                    value: value.clone(),
                    secret: decl.secret,
                    source: Source::Static,
                };
                values.insert(name.clone(), resolved);
                continue;
            }
            let resolved = match (env(&env_name), &decl.default) {
                (Some(value), _) => Resolved {
                    value,
                    secret: decl.secret,
                    source: Source::Env,
                },
                (None, Some(default)) => Resolved {
                    value: default.clone(),
                    secret: decl.secret,
                    source: Source::Default,
                },
                (None, None) => {
                    missing.push(format!("{name} (set {env_name})"));
                    continue;
                }
            };
            values.insert(name.clone(), resolved);
        }
        if !missing.is_empty() {
            bail!("no value for required variable(s): {}", missing.join(", "));
        }
        Ok(Self { values })
    }

    #[cfg(test)]
    pub fn get(&self, name: &str) -> Option<&Resolved> {
        self.values.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Resolved)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Resolves a template over the application variables. A reference to an
    /// undeclared variable is an error (Spin rejects such templates at load).
    pub fn render(&self, template: &Template) -> Result<String> {
        template.resolve(|name| {
            self.values
                .get(name)
                .map(|r| r.value.clone())
                .with_context(|| format!("unknown variable {name:?}"))
        })
    }

    /// True if any variable referenced by the template is secret.
    pub fn touches_secret(&self, template: &Template) -> bool {
        template
            .references()
            .any(|n| self.values.get(n).is_some_and(|r| r.secret))
    }
}

/// The errors of `fermyon:spin/variables@2.0.0`'s `get`, independent of the
/// generated bindings so this module stays testable without wasmtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GetError {
    InvalidName(String),
    Undefined(String),
}

/// The variables one component may read: its `[component.<id>.variables]`,
/// resolved.
#[derive(Clone, Debug, Default)]
pub struct ComponentVariables {
    component_id: String,
    values: HashMap<String, String>,
}

impl ComponentVariables {
    pub fn new(
        component_id: &str,
        templates: &BTreeMap<String, String>,
        app: &AppVariables,
    ) -> Result<Self> {
        let mut values = HashMap::new();
        for (name, text) in templates {
            validate_name(name).map_err(|e| {
                anyhow::anyhow!("component {component_id:?}: invalid variable name {e}")
            })?;
            let template = Template::parse(text)
                .with_context(|| format!("component {component_id:?} variable {name:?}"))?;
            let value = app
                .render(&template)
                .with_context(|| format!("component {component_id:?} variable {name:?}"))?;
            values.insert(name.clone(), value);
        }
        Ok(Self {
            component_id: component_id.to_string(),
            values,
        })
    }

    /// What the guest's `get(name)` returns.
    pub fn get(&self, name: &str) -> Result<String, GetError> {
        validate_name(name)
            .map_err(|e| GetError::InvalidName(format!("invalid variable name: {e}")))?;
        self.values.get(name).cloned().ok_or_else(|| {
            GetError::Undefined(format!(
                "undefined variable: no variable for {:?}.{name:?}",
                self.component_id
            ))
        })
    }
}

impl ComponentVariables {
    /// Every variable the component may read, as wasi:config's `get-all`
    /// gives them (sorted, so the answer does not depend on hashing).
    pub fn all(&self) -> Vec<(String, String)> {
        let mut all: Vec<_> = self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort();
        all
    }
}

/// `wasi:config/store` for the guest: the same variables as
/// `fermyon:spin/variables`, as Spin serves them. An undeclared or invalid
/// name is simply absent (`none`), as in Spin.
impl crate::bindings::wasi::config::store::Host for crate::server::State {
    async fn get(
        &mut self,
        key: String,
    ) -> wasmtime::Result<Result<Option<String>, crate::bindings::wasi::config::store::Error>> {
        Ok(Ok(self.component.variables.get(&key).ok()))
    }

    async fn get_all(
        &mut self,
    ) -> wasmtime::Result<Result<Vec<(String, String)>, crate::bindings::wasi::config::store::Error>>
    {
        Ok(Ok(self.component.variables.all()))
    }
}

/// `fermyon:spin/variables@2.0.0` for the guest.
impl crate::bindings::fermyon::spin::variables::Host for crate::server::State {
    async fn get(
        &mut self,
        name: String,
    ) -> wasmtime::Result<Result<String, crate::bindings::fermyon::spin::variables::Error>> {
        use crate::bindings::fermyon::spin::variables::Error;
        Ok(self.component.variables.get(&name).map_err(|e| match e {
            GetError::InvalidName(m) => Error::InvalidName(m),
            GetError::Undefined(m) => Error::Undefined(m),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(default: Option<&str>, required: bool, secret: bool) -> VariableDecl {
        VariableDecl {
            default: default.map(str::to_string),
            required,
            secret,
        }
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn template_parsing_and_rendering() {
        let mut decls = BTreeMap::new();
        decls.insert("a".to_string(), decl(Some("A"), false, false));
        decls.insert("b_2".to_string(), decl(Some("B"), false, false));
        let app = AppVariables::resolve(&decls, no_env).unwrap();
        for (tmpl, want) in [
            ("", ""),
            ("plain", "plain"),
            ("{{a}}", "A"),
            ("{{ a }}", "A"),
            ("{{   a   }}", "A"),
            ("prefix-{{ a }}", "prefix-A"),
            ("{{ a }}{{b_2}}-x", "AB-x"),
            ("x } y { z", "x } y { z"),
        ] {
            let t = Template::parse(tmpl).unwrap();
            assert_eq!(app.render(&t).unwrap(), want, "{tmpl:?}");
        }
        assert!(Template::parse("{{ a }} {{ unmatched").is_err());
        assert!(Template::parse("lit").unwrap().is_literal());
        assert!(!Template::parse("{{ a }}").unwrap().is_literal());
        assert!(app.render(&Template::parse("{{ nope }}").unwrap()).is_err());
        assert_eq!(Template::parse("p-{{a}}").unwrap().to_string(), "p-{{ a }}");
    }

    #[test]
    fn names_follow_spin_rules() {
        for ok in ["a", "abc", "a1", "a_b", "public_url", "x9_y"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "a-b", "1a", "_a", "a_", "a__b", "a.b", "é"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_overrides_default_and_fills_required() {
        let mut decls = BTreeMap::new();
        decls.insert(
            "public_url".to_string(),
            decl(Some("http://d"), false, false),
        );
        decls.insert("session_key".to_string(), decl(None, true, true));
        decls.insert("untouched".to_string(), decl(Some("u"), false, false));
        let env = |k: &str| match k {
            "SPIN_VARIABLE_PUBLIC_URL" => Some("http://env".to_string()),
            "SPIN_VARIABLE_SESSION_KEY" => Some("k".to_string()),
            _ => None,
        };
        let app = AppVariables::resolve(&decls, env).unwrap();
        let url = app.get("public_url").unwrap();
        assert_eq!(
            (url.value.as_str(), url.source),
            ("http://env", Source::Env)
        );
        let key = app.get("session_key").unwrap();
        assert!(key.secret);
        assert_eq!(key.value, "k");
        assert_eq!(app.get("untouched").unwrap().source, Source::Default);
    }

    #[test]
    fn static_values_come_before_the_environment() {
        let decls = BTreeMap::from([
            ("a".to_string(), decl(Some("default-a"), false, false)),
            ("b".to_string(), decl(None, true, true)),
            ("c".to_string(), decl(Some("default-c"), false, false)),
        ]);
        let statics = BTreeMap::from([
            ("a".to_string(), "static-a".to_string()),
            ("b".to_string(), "static-b".to_string()),
        ]);
        let env = |k: &str| (k == "SPIN_VARIABLE_A").then(|| "env-a".to_string());
        let app = AppVariables::resolve_with(&decls, &statics, env).unwrap();
        let a = app.get("a").unwrap();
        assert_eq!((a.value.as_str(), a.source), ("static-a", Source::Static));
        let b = app.get("b").unwrap();
        assert_eq!(
            (b.value.as_str(), b.secret),
            ("static-b", true),
            "fills a required secret"
        );
        assert_eq!(app.get("c").unwrap().source, Source::Default);
    }

    #[test]
    fn missing_required_variables_are_named() {
        let mut decls = BTreeMap::new();
        decls.insert("one".to_string(), decl(None, true, false));
        decls.insert("two".to_string(), decl(None, true, true));
        decls.insert("ok".to_string(), decl(Some(""), false, false));
        let err = AppVariables::resolve(&decls, no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("one (set SPIN_VARIABLE_ONE)"), "{err}");
        assert!(err.contains("two (set SPIN_VARIABLE_TWO)"), "{err}");
        assert!(!err.contains("ok"), "{err}");
    }

    #[test]
    fn required_xor_default() {
        for bad in [decl(Some("x"), true, false), decl(None, false, false)] {
            let mut decls = BTreeMap::new();
            decls.insert("v".to_string(), bad);
            let err = AppVariables::resolve(&decls, no_env)
                .unwrap_err()
                .to_string();
            assert!(err.contains("`required` OR have a `default`"), "{err}");
        }
        let mut decls = BTreeMap::new();
        decls.insert("Bad".to_string(), decl(Some("x"), false, false));
        assert!(AppVariables::resolve(&decls, no_env).is_err());
    }

    #[test]
    fn component_sees_only_its_variables() {
        let mut decls = BTreeMap::new();
        decls.insert(
            "public_url".to_string(),
            decl(Some("http://gw"), false, false),
        );
        decls.insert("secret_key".to_string(), decl(Some("s3"), false, true));
        let app = AppVariables::resolve(&decls, no_env).unwrap();
        let mut templates = BTreeMap::new();
        templates.insert("base".to_string(), "{{ public_url }}/x".to_string());
        let vars = ComponentVariables::new("gateway", &templates, &app).unwrap();
        assert_eq!(vars.get("base").unwrap(), "http://gw/x");
        // Declared for the app but not granted to the component.
        assert!(matches!(
            vars.get("secret_key"),
            Err(GetError::Undefined(_))
        ));
        assert!(matches!(
            vars.get("public_url"),
            Err(GetError::Undefined(_))
        ));
        assert!(matches!(
            vars.get("Bad-Name"),
            Err(GetError::InvalidName(_))
        ));
        // wasi:config's get-all: the same granted variables, no others.
        assert_eq!(
            vars.all(),
            [("base".to_string(), "http://gw/x".to_string())]
        );

        templates.insert("other".to_string(), "{{ not_declared }}".to_string());
        assert!(ComponentVariables::new("gateway", &templates, &app).is_err());
        assert!(app.touches_secret(&Template::parse("a{{ secret_key }}").unwrap()));
        assert!(!app.touches_secret(&Template::parse("{{ public_url }}").unwrap()));
    }
}
