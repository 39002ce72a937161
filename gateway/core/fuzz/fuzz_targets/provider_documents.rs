//! What an identity provider publishes, on arbitrary input: its discovery
//! document (raw bytes with any status, and JSON-shaped documents whose
//! endpoint URLs are arbitrary strings, so the endpoint checks run) and its
//! key set (`id_token::Jwks::parse`). Every accepted document must be usable
//! without a panic: the JWKS and token requests build with the URI the
//! document named, the authorization URL builds, and the metadata survives
//! the round trip through the KV cache unchanged.
#![no_main]

use arbitrary::Arbitrary;
use edgeauth_core::callback::{CallbackStart, token_request};
use edgeauth_core::id_token::Jwks;
use edgeauth_core::login::{LoginState, authorization_url};
use edgeauth_core::provider::{ProviderMetadata, get, parse_discovery};
use edgeauth_core_fuzz::{NOW, SETTINGS, seeded_rng};
use libfuzzer_sys::fuzz_target;
use serde_json::json;

#[derive(Arbitrary, Debug)]
enum Input {
    Raw {
        status: u16,
        body: Vec<u8>,
    },
    Shaped {
        /// Appended to the configured issuer when set, so documents pass the
        /// issuer check and reach the endpoint checks.
        relative: [bool; 4],
        authorization: String,
        token: String,
        jwks: String,
        end_session: Option<String>,
        extra: Option<(String, String)>,
    },
    Jwks(Vec<u8>),
}

fuzz_target!(|input: Input| {
    let settings = &*SETTINGS;
    let connection = &settings.connections[0];
    let issuer = connection.issuer().unwrap_or_default();
    match input {
        Input::Raw { status, body } => {
            if let Ok(meta) = parse_discovery(connection, status, &body) {
                usable(&meta);
            }
        }
        Input::Shaped {
            relative,
            authorization,
            token,
            jwks,
            end_session,
            extra,
        } => {
            let at = |rel: bool, s: String| {
                if rel { format!("{issuer}{s}") } else { s }
            };
            let mut doc = json!({
                "issuer": issuer,
                "authorization_endpoint": at(relative[0], authorization),
                "token_endpoint": at(relative[1], token),
                "jwks_uri": at(relative[2], jwks),
            });
            if let Some(e) = end_session {
                doc["end_session_endpoint"] = json!(at(relative[3], e));
            }
            if let Some((k, v)) = extra {
                doc[k] = json!(v);
            }
            if let Ok(meta) = parse_discovery(connection, 200, doc.to_string().as_bytes()) {
                usable(&meta);
            }
        }
        Input::Jwks(body) => {
            let _ = Jwks::parse(&body);
        }
    }
});

fn usable(meta: &ProviderMetadata) {
    let connection = &SETTINGS.connections[0];
    assert_eq!(Some(meta.issuer.as_str()), connection.issuer());
    let jwks = get(&meta.jwks_uri);
    assert_eq!(jwks.uri(), meta.jwks_uri.uri());
    let login = LoginState::new(&connection.id, "/".into(), NOW, &mut seeded_rng(1));
    let start = CallbackStart {
        login,
        code: "c".into(),
        iss: None,
    };
    let token = token_request(&SETTINGS, connection, meta, &start);
    assert_eq!(token.uri(), meta.token_endpoint.uri());
    assert_eq!(token.method(), http::Method::POST);
    for endpoint in [
        &meta.authorization_endpoint,
        &meta.token_endpoint,
        &meta.jwks_uri,
    ]
    .into_iter()
    .chain(meta.end_session_endpoint.as_ref())
    {
        // Both readings name the same host.
        let url = url::Url::parse(endpoint).expect("accepted endpoints are URLs");
        let host = endpoint
            .uri()
            .host()
            .expect("accepted endpoints have a host");
        assert!(
            url.host_str().is_some_and(|h| h.eq_ignore_ascii_case(host)),
            "{endpoint:?}: url host {:?}, uri host {host}",
            url.host_str()
        );
    }
    let target = edgeauth_core::login::Target {
        connection,
        authorization_endpoint: &meta.authorization_endpoint,
    };
    authorization_url(&SETTINGS, target, &start.login, None).expect("authorization URL builds");
    let cached = serde_json::to_vec(meta).expect("metadata serializes");
    let back: ProviderMetadata =
        serde_json::from_slice(&cached).expect("cached metadata reads back");
    assert_eq!(&back, meta);
}
