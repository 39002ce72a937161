//! The WIT `event` (and the outbound HTTP types) as plain Rust: defined once
//! in `edgeauth-contract`, shared with the rule SDK. JSON-typed WIT fields
//! are [`Json`] here (a [`serde_json::Value`] through `Deref`); these types
//! are also the format of the event files `edgeauth rule run` reads.

pub use edgeauth_contract::command::{LogLevel, RawCommand};
pub use edgeauth_contract::event::{
    Connection, ConnectionKind, Event, Json, LinkedIdentity, RequestInfo, Transaction, User,
    json_text, json_value,
};
pub use edgeauth_contract::http::{HttpError, HttpRequest, HttpResponse, MAX_HTTP_BODY};
