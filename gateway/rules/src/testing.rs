//! Fixed inputs for the unit tests of the chain logic.

use edgeauth_core::identity::Identity;
use edgeauth_core::login::LoginState;
use edgeauth_core::settings::Settings;
use serde_json::json;

use crate::chain::Progress;
use crate::config::{self, RulesConfig, TenantRules};
use crate::event::Event;
use crate::record::Pending;

/// 32 bytes of 0x01 and of 0x07, base64url.
const SESSION_KEY: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE";
const SEED: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";

pub fn settings() -> Settings {
    let vars = [
        ("public_url", "http://127.0.0.1:3000".to_owned()),
        ("origin_url", "http://127.0.0.1:3001".to_owned()),
        ("oidc_issuer", "http://127.0.0.2:9400".to_owned()),
        ("oidc_client_id", "edgeauth".to_owned()),
        ("oidc_client_secret", "edgeauth-dev-secret".to_owned()),
        ("session_keys", format!("s1:{SESSION_KEY}")),
        ("assertion_keys", format!("a1:ed25519:{SEED}")),
    ];
    Settings::from_variables(|n| vars.iter().find(|(k, _)| *k == n).map(|(_, v)| v.clone()))
        .expect("test settings are valid")
}

/// Deterministic, never-repeating bytes.
pub fn counter_rng() -> impl FnMut(&mut [u8]) {
    let mut n: u64 = 0;
    move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (n >> 56) as u8;
        }
    }
}

pub fn alice() -> Identity {
    Identity {
        sub: "alice".into(),
        email: Some("alice@example.com".into()),
        email_verified: true,
        name: Some("Alice".into()),
        groups: vec!["admins".into()],
        ..Default::default()
    }
}

/// A login state as the sealed login cookie carries it.
pub fn login_state() -> LoginState {
    serde_json::from_value(
        json!({"s": "state", "n": "nonce", "v": "verifier", "r": "/", "t": 1000}),
    )
    .expect("a login state")
}

pub fn rules_config(tenant: &str, names: &[&str]) -> RulesConfig {
    let chain: Vec<_> = names.iter().map(|n| json!({"name": n})).collect();
    config::parse(
        &json!({"tenants": {tenant: {"chain": chain}}}).to_string(),
        |_| false,
    )
    .expect("test rules are valid")
}

/// A tenant's chain of `names`; those in `fail_open` are fail-open.
pub fn tenant_rules(names: &[&str], fail_open: &[&str]) -> TenantRules {
    let mut t = rules_config("acme", names)
        .tenant("acme")
        .cloned()
        .expect("the tenant has rules");
    for r in &mut t.chain {
        r.fail_open = fail_open.contains(&r.name.as_str());
    }
    t
}

pub fn pending(tenant: &str, index: usize, rule: &str) -> Pending {
    Pending {
        tenant: tenant.into(),
        index,
        rule: rule.into(),
        identity: alice(),
        login: login_state(),
        id_token: "h.p.s".into(),
        session: None,
        progress: Progress::default(),
        base: Event::default(),
        expires: 2000,
        pinned: None,
    }
}
