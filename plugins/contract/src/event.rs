//! What a rule receives: the WIT `event` record and its parts. JSON-typed
//! WIT fields are [`Json`]: a [`serde_json::Value`] (through `Deref`) that a
//! rule parses only if it reads it. A missing field takes its default, so
//! event files and test fixtures only name what matters to them.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A JSON-typed field of the event (`config`, `app_metadata`,
/// `user_metadata`, each identity's `profile`): a [`serde_json::Value`]
/// to read, through `Deref` (`login.config.get("domains")`,
/// `login.user.app_metadata["plan"]`, `.as_object()`).
///
/// Inside a rule it holds the JSON text the gateway sent and parses it on
/// first use, so a rule pays for parsing only the fields it reads (on the
/// gateway's interpreter, parsing every field cost a rule that reads none
/// of them more than half of its call). Text that is not JSON reads as
/// `null`, as does a missing field (the default). It serializes and
/// deserializes as the plain JSON value, and compares by value (also with a
/// [`Value`]: `assert_eq!(login.config, json!({..}))`). Made from a value:
/// `json!({..}).into()`; the value, owned: [`Json::into_value`].
///
/// It parses in place through `&self` (a [`OnceCell`]), so a `Login` is
/// `Send` but not `Sync`: the rule reads it on one thread. `std::sync::OnceLock`
/// would have cost every call ~150 fuel more.
#[derive(Clone, Default)]
pub struct Json {
    /// The text the value comes from, if it came as text.
    text: Option<String>,
    /// The value: set when made from one, else parsed from `text` on first use.
    value: OnceCell<Value>,
}

impl Json {
    /// A value to parse from `text` when first read (`null` if `text` is not JSON).
    pub fn from_text(text: String) -> Json {
        Json {
            text: Some(text),
            value: OnceCell::new(),
        }
    }

    /// The value, parsed now if it was not yet.
    pub fn value(&self) -> &Value {
        self.value
            .get_or_init(|| self.text.as_deref().map(json_value).unwrap_or_default())
    }

    /// The text the value is still to be parsed from, if it is.
    fn unparsed_text(&self) -> Option<&str> {
        match self.value.get() {
            Some(_) => None,
            None => self.text.as_deref(),
        }
    }

    /// The value, owned.
    pub fn into_value(self) -> Value {
        self.value();
        self.value.into_inner().unwrap_or_default()
    }
}

/// A panic while the value is parsed (none is expected: text that is not
/// JSON reads as `null`) leaves it unparsed, never half-set: a rule's test
/// may read a [`Json`] across `catch_unwind`.
impl std::panic::RefUnwindSafe for Json {}

impl Deref for Json {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

/// Changing the value forgets the text it came from.
impl DerefMut for Json {
    fn deref_mut(&mut self) -> &mut Value {
        self.value();
        self.text = None;
        match self.value.get_mut() {
            Some(v) => v,
            None => unreachable!("value() set it"),
        }
    }
}

impl From<Value> for Json {
    fn from(v: Value) -> Json {
        Json {
            text: None,
            value: OnceCell::from(v),
        }
    }
}

impl From<Json> for Value {
    fn from(j: Json) -> Value {
        j.into_value()
    }
}

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.value() == other.value()
    }
}

impl Eq for Json {}

impl PartialEq<Value> for Json {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl PartialEq<Json> for Value {
    fn eq(&self, other: &Json) -> bool {
        self == other.value()
    }
}

impl fmt::Debug for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.value(), f)
    }
}

impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.value(), f)
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        Value::deserialize(d).map(Json::from)
    }
}

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
    pub profile: Json,
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
    pub app_metadata: Json,
    pub user_metadata: Json,
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
    pub config: Json,
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
        // Straight from the gateway's text when the config was not read as
        // a value yet: no `Value` built and dropped on the way. Anything
        // that does not read that way (`null`, not JSON, not a `T`) takes
        // the path below, for its `{}` default and its error message.
        if let Some(text) = self.config.unparsed_text()
            && text.trim() != "null"
            && let Ok(config) = serde_json::from_str(text)
        {
            return Ok(config);
        }
        // Read in place: cloning the config for `from_value` cost the
        // example rules ~1,300-1,500 fuel per call (~5 %) on the interpreter.
        let empty = Value::Object(Default::default());
        let v = if self.config.is_null() {
            &empty
        } else {
            self.config.value()
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

/// JSON text for a WIT `json` field: `null` (absent, or text that is not
/// JSON) becomes `{}`; text the field came as is passed on as it is.
pub fn json_text(v: &Json) -> String {
    if v.is_null() {
        "{}".into()
    } else if let Some(text) = &v.text {
        text.clone()
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
        assert_eq!(json_text(&Json::default()), "{}");
        assert_eq!(json_value("{nope"), Value::Null);
    }

    #[test]
    fn json_fields_parse_on_first_use_and_read_as_values() {
        let text = r#"{"plan": "pro", "roles": ["admin"]}"#;
        let j = Json::from_text(text.into());
        assert!(j.value.get().is_none(), "not parsed before it is read");
        assert_eq!(j["plan"], "pro");
        assert_eq!(
            j.get("roles").and_then(Value::as_array).map(Vec::len),
            Some(1)
        );
        assert!(j.value.get().is_some());
        assert_eq!(j, json!({"plan": "pro", "roles": ["admin"]}));
        assert_eq!(json!({"plan": "pro", "roles": ["admin"]}), j);
        assert_eq!(j, Json::from(json!({"roles": ["admin"], "plan": "pro"})));
        assert_eq!(format!("{j}"), r#"{"plan":"pro","roles":["admin"]}"#);
        assert_eq!(format!("{j:?}"), format!("{:?}", j.value()));
        // Passed on as it came, not written again.
        assert_eq!(json_text(&j), text);
        assert_eq!(json_text(&Json::from(json!({"a": 1}))), r#"{"a":1}"#);
        assert_eq!(Value::from(Json::from_text("[1]".into())), json!([1]));
        assert_eq!(
            Json::from_text("[1]".into()).clone().into_value(),
            json!([1])
        );
    }

    #[test]
    fn json_text_that_is_not_json_reads_as_null_as_missing_fields_do() {
        for bad in ["{nope", "", "nul", r#"{"a": 1} trailing"#] {
            let j = Json::from_text(bad.into());
            assert!(j.is_null(), "{bad:?}");
            assert_eq!(j.get("a"), None);
            assert_eq!(j, Json::default());
            assert_eq!(json_text(&j), "{}", "{bad:?}");
            assert_eq!(Json::from_text(bad.into()).into_value(), Value::Null);
        }
        assert_eq!(json_text(&Json::from_text(" null ".into())), "{}");
        assert!(Json::default().is_null());
        assert!(Event::default().config.is_null());
        let e = Event::from_json(json!({"config": null, "user": {"app_metadata": {"x": 1}}}));
        assert!(e.config.is_null() && e.user.user_metadata.is_null());
        assert_eq!(e.user.app_metadata["x"], 1);
    }

    #[test]
    fn config_reads_from_the_text_as_from_the_value() {
        #[derive(Debug, PartialEq, Deserialize)]
        struct Config {
            domains: Vec<String>,
            #[serde(default)]
            message: Option<String>,
        }
        let with = |text: &str| Event {
            config: Json::from_text(text.into()),
            ..Default::default()
        };
        let e = with(r#"{"domains": ["example.com"]}"#);
        assert_eq!(
            e.config::<Config>().unwrap().domains,
            ["example.com"],
            "read from the text"
        );
        assert!(e.config.value.get().is_none(), "no value built on the way");
        // No config (`null`, or text that is not JSON) reads as `{}`; errors
        // are the value's, without the text's line and column.
        for empty in ["null", " null", "{nope", ""] {
            let e = with(empty);
            assert_eq!(e.config::<BTreeMap<String, u32>>().unwrap().len(), 0);
            assert_eq!(
                e.config::<Option<BTreeMap<String, u32>>>().unwrap(),
                Some(BTreeMap::new()),
                "{empty:?}"
            );
            assert_eq!(
                e.config::<Config>().unwrap_err(),
                "invalid rule configuration: missing field `domains`"
            );
        }
        let bad = with(r#"{"domains": "example.com"}"#);
        assert_eq!(
            bad.config::<Config>().unwrap_err(),
            Event::from_json(json!({"config": {"domains": "example.com"}}))
                .config::<Config>()
                .unwrap_err()
        );
        // Once read as a value, the value is what counts.
        let mut e = with(r#"{"domains": ["a"]}"#);
        e.config["domains"] = json!(["b"]);
        assert_eq!(e.config::<Config>().unwrap().domains, ["b"]);
    }

    #[test]
    fn json_fields_serialize_as_plain_values_and_change_in_place() {
        let mut e = Event {
            config: Json::from_text(r#"{"domains": ["example.com"]}"#.into()),
            ..Default::default()
        };
        e.user.identities.push(LinkedIdentity {
            profile: Json::from_text(r#"{"sub": "s"}"#.into()),
            ..Default::default()
        });
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["config"], json!({"domains": ["example.com"]}));
        assert_eq!(v["user"]["identities"][0]["profile"], json!({"sub": "s"}));
        assert_eq!(v["user"]["app_metadata"], Value::Null);
        assert_eq!(Event::from_json(v), e);
        // A change is what is sent then, not the text it came as.
        e.config["domains"] = json!(["example.org"]);
        assert_eq!(json_text(&e.config), r#"{"domains":["example.org"]}"#);
        e.user.user_metadata = json!({"company": "Acme"}).into();
        assert_eq!(e.user.user_metadata["company"], "Acme");
    }
}
