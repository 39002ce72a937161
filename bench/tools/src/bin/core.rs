//! Native timings of edgeauth-core's per-request and login-callback work,
//! without any network: what the component spends CPU on, minus wasm overhead.
//!
//! Usage: bench-core [--budget-ms N]   prints one JSON object (µs per operation)

// The core returns ready-made error pages; their size is not a concern here.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

type Duration = std::time::Duration;

use edgeauth_core::access::{self, Access};
use edgeauth_core::callback::{self, CallbackStart, Tokens};
use edgeauth_core::encoding::b64url;
use edgeauth_core::events::{self, LoginOutcome};
use edgeauth_core::id_token::Jwks;
use edgeauth_core::identity::Identity;
use edgeauth_core::login::LoginState;
use edgeauth_core::profiles::{self, Found, Linking, SignInFacts};
use edgeauth_core::provider::{Endpoint, ProviderCache, ProviderMetadata};
use edgeauth_core::routes::{self, Route};
use edgeauth_core::seal::Purpose;
use edgeauth_core::session::{self, Session};
use edgeauth_core::settings::Settings;
use edgeauth_core::webhooks;
use edgeauth_core::{forward, policy};
use http::request::Parts;
use jwt_simple::prelude::*;
use serde_json::json;

const ISSUER: &str = "http://127.0.0.2:9400";
const KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE";
const SEED: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";

/// Deterministic bytes; nothing here needs real randomness.
fn rng() -> impl FnMut(&mut [u8]) {
    let mut n: u64 = 0x9e37_79b9_7f4a_7c15;
    move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            n ^= n << 13;
            n ^= n >> 7;
            n ^= n << 17;
            *b = n as u8;
        }
    }
}

/// Median µs per call of `f`, over batches of about a millisecond within `budget`.
fn time<T>(budget: Duration, mut f: impl FnMut() -> T) -> f64 {
    let start = Instant::now();
    black_box(f());
    let once = start.elapsed().max(Duration::from_nanos(50));
    let batch = (Duration::from_millis(1).as_nanos() / once.as_nanos()).clamp(1, 100_000) as u32;
    let mut samples = Vec::new();
    let end = Instant::now() + budget;
    while samples.len() < 5 || (Instant::now() < end && samples.len() < 10_000) {
        let t = Instant::now();
        for _ in 0..batch {
            black_box(f());
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6 / f64::from(batch));
    }
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    (median * 100.0).round() / 100.0
}

fn variables(public_url: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("public_url", public_url.to_owned()),
        ("origin_url", "http://127.0.0.1:3001".to_owned()),
        ("oidc_issuer", ISSUER.to_owned()),
        ("oidc_client_id", "edgeauth".to_owned()),
        ("oidc_client_secret", "edgeauth-dev-secret".to_owned()),
        ("session_keys", format!("s1:{KEY}")),
        ("assertion_keys", format!("a1:ed25519:{SEED}")),
        ("allowed_email_domains", "example.com".to_owned()),
    ])
}

fn parse_settings(vars: &HashMap<&'static str, String>) -> Settings {
    Settings::from_variables(|n| vars.get(n).cloned()).expect("bench settings are valid")
}

fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut b = http::Request::get(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("valid request").into_parts().0
}

fn alice() -> Identity {
    Identity {
        sub: "alice".into(),
        email: Some("alice@example.com".into()),
        email_verified: true,
        name: Some("Alice Example".into()),
        groups: vec!["admins".into(), "devs".into()],
        ..Default::default()
    }
}

/// An ID token as the dev IdP issues it, signed with `sign`.
fn id_token(
    sign: impl Fn(JWTClaims<serde_json::Value>) -> String,
    nonce: &str,
    now: u64,
) -> String {
    let custom = json!({
        "email": "alice@example.com", "email_verified": true, "name": "Alice Example",
        "groups": ["admins", "devs"], "at_hash": "x4mOmVH0BXSIBMeXTPHGvQ", "azp": "edgeauth",
    });
    let mut claims =
        Claims::with_custom_claims(custom, jwt_simple::prelude::Duration::from_secs(3600))
            .with_issuer(ISSUER)
            .with_audience("edgeauth")
            .with_subject("alice")
            .with_nonce(nonce);
    claims.issued_at = Some(UnixTimeStamp::from_secs(now));
    claims.expires_at = Some(UnixTimeStamp::from_secs(now + 3600));
    sign(claims)
}

fn main() {
    let mut budget = Duration::from_millis(400);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--budget-ms" => {
                let ms = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--budget-ms N");
                budget = Duration::from_millis(ms);
            }
            other => panic!("unknown argument {other:?}"),
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let vars = variables("http://127.0.0.1:3000");
    let s = parse_settings(&vars);
    let mut rng = rng();
    let mut out = serde_json::Map::new();
    let mut put = |k: &str, v: f64| {
        out.insert(k.to_owned(), json!(v));
    };

    // ---- keys an IdP would use
    let rsa = RS256KeyPair::generate(2048)
        .expect("rsa keygen")
        .with_key_id("r1");
    let es = ES256KeyPair::generate().with_key_id("e1");
    let ed = Ed25519KeyPair::generate().with_key_id("d1");
    let rc = rsa.public_key().to_components();
    let ep = es.public_key().public_key().to_bytes_uncompressed();
    let jwks_doc = json!({"keys": [
        {"kty": "RSA", "kid": "r1", "alg": "RS256", "use": "sig", "n": b64url(&rc.n), "e": b64url(&rc.e)},
        {"kty": "EC", "crv": "P-256", "kid": "e1", "alg": "ES256", "use": "sig", "x": b64url(&ep[1..33]), "y": b64url(&ep[33..])},
        {"kty": "OKP", "crv": "Ed25519", "kid": "d1", "alg": "EdDSA", "use": "sig", "x": b64url(&ed.public_key().to_bytes())},
    ]})
    .to_string();
    let endpoint = |path: &str| {
        Endpoint::parse("bench endpoint", &format!("{ISSUER}{path}")).expect("a valid endpoint")
    };
    let meta = ProviderMetadata {
        issuer: ISSUER.into(),
        authorization_endpoint: endpoint("/auth"),
        token_endpoint: endpoint("/token"),
        jwks_uri: endpoint("/jwks"),
        authorization_response_iss_parameter_supported: false,
        end_session_endpoint: Some(endpoint("/session/end")),
    };
    let provider_cache = json!({
        "issuer": ISSUER, "metadata": meta, "metadata_fetched_at": now,
        "jwks": jwks_doc, "jwks_fetched_at": now,
    })
    .to_string();

    // ---- hot path: one protected GET with a session like a real login leaves
    let login = LoginState::new(&s.connections[0].id, "/".into(), now, &mut rng);
    let rs_token = id_token(|c| rsa.sign(c).expect("sign"), &login.nonce, now);
    let set_cookie = Session::new(alice(), Some(rs_token.clone()), &s, now)
        .to_cookie(&s, &mut rng)
        .expect("fits");
    let cookie = set_cookie.split(';').next().expect("pair").to_owned();
    let req = parts(
        "/app/page?x=1",
        &[
            ("host", "127.0.0.1:3000"),
            ("user-agent", "wrk"),
            ("accept", "*/*"),
            ("cookie", &cookie),
            ("spin-client-addr", "127.0.0.1:50000"),
        ],
    );
    let Route::Protected(path) = routes::route(&req) else {
        panic!("route")
    };
    let Access::Forward(_) = access::authorize(&s, &req, &path, now) else {
        panic!("the bench session must be accepted")
    };
    let sess = session::read(&s, &req.headers, now).expect("session");
    let assertion = s.assertion_keys.sign(
        &sess.identity,
        &s.public_origin(),
        &s.assertion_audience,
        now,
    );

    put("settings_parse", time(budget, || parse_settings(&vars)));
    put("route", time(budget, || routes::route(&req)));
    put(
        "session_read",
        time(budget, || session::read(&s, &req.headers, now)),
    );
    put("policy", time(budget, || policy::check(&s, &sess.identity)));
    put(
        "assertion_sign",
        time(budget, || {
            s.assertion_keys.sign(
                &sess.identity,
                &s.public_origin(),
                &s.assertion_audience,
                now,
            )
        }),
    );
    put(
        "origin_headers",
        time(budget, || {
            forward::origin_headers(
                &s,
                &req.headers,
                Some((&sess.identity, &assertion)),
                Some("127.0.0.1:50000"),
            )
        }),
    );
    put(
        "authorize",
        time(budget, || access::authorize(&s, &req, &path, now)),
    );
    put(
        "request_total",
        time(budget, || {
            let s = parse_settings(&vars);
            let Route::Protected(p) = routes::route(&req) else {
                unreachable!()
            };
            access::authorize(&s, &req, &p, now)
        }),
    );
    put("cookie_bytes", cookie.len() as f64);

    // ---- session lifecycle bookkeeping (gateway/core/src/lifecycle.rs)
    // With an idle timeout, every request decides whether the idle clock
    // must move (a comparison on the session already open); once per
    // `session_reissue_secs` a request re-seals the cookie.
    let mut idle_vars = vars.clone();
    idle_vars.insert("session_idle_timeout_secs", "1800".to_owned());
    let idle = parse_settings(&idle_vars);
    put(
        "idle_duty",
        time(budget, || {
            edgeauth_core::lifecycle::duty(&idle, &sess, false, now + 60)
        }),
    );
    put(
        "idle_reissue",
        time(budget, || {
            edgeauth_core::lifecycle::reissue(&idle, &sess, None, now + 600, &mut rng)
        }),
    );
    put(
        "revocation_keys",
        time(budget, || {
            edgeauth_core::revocation::checks(&s, &req.headers, now)
        }),
    );

    // ---- login callback, IdP round trips excluded
    let sealed = s.session_keys.seal(
        Purpose::Login,
        &serde_json::to_vec(&login).expect("json"),
        &mut rng,
    );
    let cb = parts(
        &format!(
            "/.edgeauth/callback?code=Zx8mN3kP0qR7sT2uV5wY9aB4cD6eF1gH&state={}&iss={}",
            login.state, "http%3A%2F%2F127.0.0.2%3A9400"
        ),
        &[
            ("host", "127.0.0.1:3000"),
            ("cookie", &format!("edgeauth_login={sealed}")),
        ],
    );
    let start: CallbackStart =
        callback::begin(&s, &s.connections[0], &cb, now).expect("callback state matches");
    let tokens_for = |tok: &str| {
        json!({"access_token": "a".repeat(43), "expires_in": 3600, "id_token": tok, "scope": "openid email profile", "token_type": "Bearer"})
            .to_string()
    };
    let es_token = id_token(|c| es.sign(c).expect("sign"), &login.nonce, now);
    let ed_token = id_token(|c| ed.sign(c).expect("sign"), &login.nonce, now);
    let jwks = Jwks::parse(jwks_doc.as_bytes()).expect("jwks");
    let rs_tokens = Tokens::id_token(rs_token.clone());
    callback::verify(&s.connections[0], &jwks, &start, &rs_tokens, now).expect("RS256 verifies");

    put(
        "cb_begin",
        time(budget, || callback::begin(&s, &s.connections[0], &cb, now)),
    );
    put(
        "cb_replay_key",
        time(budget, || callback::replay_key(&start)),
    );
    put(
        "cb_provider_cache_decode",
        time(budget, || {
            serde_json::from_str::<ProviderCache>(&provider_cache)
        }),
    );
    put(
        "cb_token_request",
        time(budget, || {
            callback::token_request(&s, &s.connections[0], &meta, &start)
        }),
    );
    let body = tokens_for(&rs_token);
    put(
        "cb_parse_token_response",
        time(budget, || {
            callback::parse_token_response(&s, 200, body.as_bytes())
        }),
    );
    put(
        "cb_jwks_parse",
        time(budget, || Jwks::parse(jwks_doc.as_bytes())),
    );
    for (name, tok) in [
        ("rs256", &rs_token),
        ("es256", &es_token),
        ("eddsa", &ed_token),
    ] {
        let t = Tokens::id_token(tok.clone());
        callback::verify(&s.connections[0], &jwks, &start, &t, now).expect("id token verifies");
        put(
            &format!("cb_verify_{name}"),
            time(budget, || {
                callback::verify(&s.connections[0], &jwks, &start, &t, now)
            }),
        );
    }
    put(
        "cb_complete",
        time(budget, || {
            callback::complete(&s, alice(), rs_tokens.clone(), &start, now, &mut rng)
        }),
    );
    put(
        "callback_total_rs256",
        time(budget, || {
            let s = parse_settings(&vars);
            let start = callback::begin(&s, &s.connections[0], &cb, now).expect("begin");
            black_box(callback::replay_key(&start));
            black_box(serde_json::from_str::<ProviderCache>(&provider_cache).expect("cache"));
            black_box(callback::token_request(
                &s,
                &s.connections[0],
                &meta,
                &start,
            ));
            let tokens = callback::parse_token_response(&s, 200, body.as_bytes()).expect("tokens");
            let jwks = Jwks::parse(jwks_doc.as_bytes()).expect("jwks");
            let id =
                callback::verify(&s.connections[0], &jwks, &start, &tokens, now).expect("verify");
            callback::complete(&s, id, tokens, &start, now, &mut rng)
        }),
    );

    // ---- what a callback does after the identity is known (issue 10):
    // the profile decision and its planned writes, then the login events,
    // their outbox entries and one signed delivery per entry. KV and
    // network I/O excluded (the end-to-end figure covers them).
    let verified =
        callback::verify(&s.connections[0], &jwks, &start, &rs_tokens, now).expect("verify");
    let hooks = r#"[{"url": "http://127.0.0.1:9/hooks", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "events": ["*"]}]"#;
    let endpoints = webhooks::parse(hooks).expect("a valid webhooks setting");
    let facts = SignInFacts {
        claims: None,
        ip: Some("127.0.0.1"),
        user_agent: Some(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
        ),
    };
    let policy_of = (Linking::VerifiedEmail, true);
    let first = |rng: &mut dyn FnMut(&mut [u8])| {
        profiles::sign_in(
            &s.tenant,
            policy_of,
            &verified,
            Found::default(),
            &facts,
            now,
            rng,
        )
    };
    let existing = first(&mut rng).profile;
    let stored = serde_json::to_vec(&existing).expect("json");
    // What a returning person's callback finds: the identity index and the
    // email index both name their profile (two reads, two decodes).
    let found = || Found {
        by_identity: profiles::decode(Some(&stored)),
        by_email: profiles::decode(Some(&stored)),
    };
    let mut signed_in = verified.clone();
    signed_in.profile_id = Some(existing.id.clone());
    let outcome = |first_login| LoginOutcome::SignedIn { first_login };
    let login_events = |first_login, rng: &mut dyn FnMut(&mut [u8])| {
        let ctx = events::context(&s.tenant, &signed_in, &cb, "corr-0123456789abcdef".into());
        events::for_login(&outcome(first_login), &ctx, now, rng)
    };
    // Outbox values and the signed POSTs of every delivery the events need.
    let outbox_and_sign = |list: &[events::Event]| {
        let ds = webhooks::deliveries(&endpoints, list, now);
        for d in &ds {
            black_box(webhooks::encode_entry(d));
            black_box(webhooks::request(&endpoints[0], d, now));
        }
        ds.len()
    };
    let signup = login_events(true, &mut rng);
    let deliveries = webhooks::deliveries(&endpoints, &signup, now);
    put("profile_bytes", stored.len() as f64);
    put(
        "profile_decode",
        time(budget, || profiles::decode(Some(&stored))),
    );
    put("profile_sign_in_first", time(budget, || first(&mut rng)));
    put(
        "profile_sign_in_returning",
        time(budget, || {
            profiles::sign_in(
                &s.tenant,
                policy_of,
                &verified,
                found(),
                &facts,
                now,
                &mut rng,
            )
        }),
    );
    put(
        "event_build_first_login",
        time(budget, || login_events(true, &mut rng)),
    );
    put(
        "outbox_deliveries",
        time(budget, || webhooks::deliveries(&endpoints, &signup, now)),
    );
    put(
        "outbox_encode_entry",
        time(budget, || webhooks::encode_entry(&deliveries[0])),
    );
    put(
        "webhook_sign_request",
        time(budget, || {
            webhooks::request(&endpoints[0], &deliveries[0], now)
        }),
    );
    put(
        "webhooks_setting_parse",
        time(budget, || webhooks::parse(hooks)),
    );
    put(
        "login_added_first",
        time(budget, || {
            let plan = first(&mut rng);
            black_box(&plan.writes);
            let list = login_events(true, &mut rng);
            outbox_and_sign(&list)
        }),
    );
    put(
        "login_added_returning",
        time(budget, || {
            let plan = profiles::sign_in(
                &s.tenant,
                policy_of,
                &verified,
                found(),
                &facts,
                now,
                &mut rng,
            );
            black_box(&plan.writes);
            let list = login_events(false, &mut rng);
            outbox_and_sign(&list)
        }),
    );
    println!("{}", serde_json::Value::Object(out));
}
