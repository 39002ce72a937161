//! What a rule receives: the WIT `event` record and its parts. JSON-typed
//! WIT fields are [`serde_json::Value`]; a missing field takes its default,
//! so event files and test fixtures only name what matters to them.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    #[default]
    Oidc,
    Oauth2,
    Saml,
}

/// The identity provider connection a sign-in used. The default is the one
/// connection of a gateway configured without `connections`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Connection {
    pub id: String,
    pub kind: ConnectionKind,
    pub display_name: String,
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            id: "default".into(),
            kind: ConnectionKind::Oidc,
            display_name: "Identity provider".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct LinkedIdentity {
    pub connection: String,
    pub user_id: String,
    pub profile: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct User {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub groups: Vec<String>,
    pub identities: Vec<LinkedIdentity>,
    pub app_metadata: Value,
    pub user_metadata: Value,
}

impl User {
    /// The email's domain (lower-case), only if the provider verified the email.
    pub fn verified_email_domain(&self) -> Option<String> {
        if !self.email_verified {
            return None;
        }
        let (_, domain) = self.email.as_deref()?.rsplit_once('@')?;
        Some(domain.to_ascii_lowercase())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RequestInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub host: String,
    pub path: String,
    pub method: String,
    pub accepted_languages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Transaction {
    pub first_login: bool,
    pub login_count: u64,
    pub return_url: String,
    pub correlation_id: String,
    pub reauthenticated: bool,
    pub resumed: Option<Vec<(String, String)>>,
}

/// One sign-in, as a rule sees it (the SDK calls it `Login`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Event {
    pub tenant_id: String,
    pub rule_name: String,
    pub config: Value,
    pub user: User,
    pub connection: Connection,
    pub request: RequestInfo,
    pub transaction: Transaction,
    /// Granted secrets by name.
    pub secrets: BTreeMap<String, String>,
}

impl Event {
    /// An event from JSON (the shape of `edgeauth rule run` event files), for
    /// tests and fixtures: panics with serde's message if `v` does not fit.
    #[track_caller]
    pub fn from_json(v: Value) -> Event {
        match serde_json::from_value(v) {
            Ok(e) => e,
            Err(e) => panic!("not a valid login event: {e}"),
        }
    }

    /// An event from the text of an event file, refusing what serde alone
    /// would let through silently: a field this contract does not have
    /// (`emial_verified`, `userMetadata`) would otherwise be dropped and take
    /// its default, and a tenant's test would pass for the wrong reason.
    pub fn from_file_text(text: &str) -> Result<Event, String> {
        let given: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let event: Event =
            serde_json::from_value(given.clone()).map_err(|e| format!("not a login event: {e}"))?;
        let known = serde_json::to_value(&event).map_err(|e| e.to_string())?;
        let mut unknown = Vec::new();
        unknown_fields(&given, &known, String::new(), &mut unknown);
        match unknown.as_slice() {
            [] => Ok(event),
            fields => Err(format!(
                "unknown field{} {} (the event's fields are those of wit/plugin.wit's `event`, in snake_case)",
                if fields.len() == 1 { "" } else { "s" },
                fields.join(", ")
            )),
        }
    }

    /// The rule's configuration as `T` (`{}` when there is none).
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, String> {
        // Read in place: cloning the config for `from_value` cost the
        // example rules ~1,300-1,500 fuel per call (~5 %) on the interpreter.
        let empty = Value::Object(Default::default());
        let v = if self.config.is_null() {
            &empty
        } else {
            &self.config
        };
        T::deserialize(v).map_err(|e| format!("invalid rule configuration: {e}"))
    }

    pub fn secret(&self, name: &str) -> Option<&str> {
        self.secrets.get(name).map(String::as_str)
    }

    /// A field the browser brought back to the continue endpoint.
    pub fn resumed(&self, field: &str) -> Option<&str> {
        self.transaction
            .resumed
            .as_ref()?
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }
}

/// Object keys in `given` that `known` (the same event parsed and written
/// back) lacks. JSON-typed fields (`config`, metadata, profiles) are free-form
/// and come back whole, so only the contract's own records are compared.
fn unknown_fields(given: &Value, known: &Value, at: String, out: &mut Vec<String>) {
    match (given, known) {
        (Value::Object(g), Value::Object(k)) => {
            for (name, value) in g {
                let here = if at.is_empty() {
                    name.clone()
                } else {
                    format!("{at}.{name}")
                };
                match k.get(name) {
                    None => out.push(here),
                    Some(kv) => unknown_fields(value, kv, here, out),
                }
            }
        }
        (Value::Array(g), Value::Array(k)) => {
            for (i, (gv, kv)) in g.iter().zip(k).enumerate() {
                unknown_fields(gv, kv, format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// JSON text for a WIT `json` field: `null` (absent) becomes `{}`.
pub fn json_text(v: &Value) -> String {
    if v.is_null() {
        "{}".into()
    } else {
        v.to_string()
    }
}

/// A WIT `json` field as a value: text that is not JSON becomes `null`
/// (the gateway only ever sends valid JSON).
pub fn json_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_fields_take_the_gateways_defaults() {
        let e = Event::from_json(json!({"user": {"sub": "alice"}}));
        assert_eq!(e.user.sub, "alice");
        assert_eq!(e.connection.id, "default");
        assert_eq!(e.connection.kind, ConnectionKind::Oidc);
        assert_eq!(e.config::<BTreeMap<String, u32>>().unwrap().len(), 0);
    }

    #[test]
    fn event_files_with_unknown_fields_are_refused() {
        let ok = Event::from_file_text(
            r#"{"user": {"sub": "a", "email_verified": true, "app_metadata": {"anything": [1, {"x": 2}]}},
                "config": {"free": "form"}, "transaction": {"resumed": [["k", "v"]]}}"#,
        )
        .unwrap();
        assert!(ok.user.email_verified);
        let err = Event::from_file_text(
            r#"{"user": {"sub": "a", "emial_verified": true, "identities": [{"conection": "x"}]}, "extra": 1}"#,
        )
        .unwrap_err();
        assert!(
            err.contains("user.emial_verified")
                && err.contains("user.identities[0].conection")
                && err.contains("extra"),
            "{err}"
        );
        assert!(
            Event::from_file_text(r#"{"user": {"email_verified": "true"}}"#)
                .unwrap_err()
                .contains("not a login event"),
            "a string is not a bool"
        );
        assert!(
            Event::from_file_text("{nope")
                .unwrap_err()
                .contains("not JSON")
        );
    }

    #[test]
    fn helpers_read_the_event() {
        let e = Event::from_json(json!({
            "user": {"email": "A@Example.COM", "email_verified": true},
            "transaction": {"resumed": [["company", "Acme"]]},
            "secrets": {"k": "v"}
        }));
        assert_eq!(
            e.user.verified_email_domain().as_deref(),
            Some("example.com")
        );
        assert_eq!(e.resumed("company"), Some("Acme"));
        assert_eq!(e.resumed("other"), None);
        assert_eq!(e.secret("k"), Some("v"));
        assert_eq!(json_text(&Value::Null), "{}");
        assert_eq!(json_value("{nope"), Value::Null);
    }
}
