//! How long a session lives between sign-ins: the idle timeout (sliding, on
//! the cookie alone) and the re-validation of the person at their provider
//! (`crate::refresh`). Settings and the idle decisions; no I/O.
//!
//! The idle clock is the session's `seen` time, sealed in the cookie. A
//! request moves it only when it is at least `reissue_secs` old, by sending
//! a new cookie: most responses carry no `Set-Cookie` (caches keep them),
//! and no request pays a store write for it. The price is precision: a
//! session ends between `idle_timeout_secs - reissue_secs` and
//! `idle_timeout_secs` after its last request.

use crate::session::Session;
use crate::settings::ConfigError;

/// The tenant's session lifecycle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Lifecycle {
    /// A session unused this long ends; 0: no idle timeout.
    pub idle_timeout_secs: u64,
    /// The cookie carrying the idle clock is re-issued at most this often.
    pub reissue_secs: u64,
    /// The person is re-validated at their provider (a refresh-token grant)
    /// this often, when the connection granted a refresh token; 0: never
    /// (refresh tokens are then not kept).
    pub refresh_interval_secs: u64,
    /// When the provider cannot be reached at refresh time, the session goes
    /// on this long after the first failure, then fails closed.
    pub refresh_grace_secs: u64,
}

/// Re-issuing more often than this buys nothing users notice and costs a
/// `Set-Cookie` per response.
const MAX_REISSUE_SECS: u64 = 300;

fn secs(
    var: &mut dyn FnMut(&'static str) -> Result<String, ConfigError>,
    name: &'static str,
    range: std::ops::RangeInclusive<u64>,
    what: &str,
) -> Result<u64, ConfigError> {
    let raw = var(name)?;
    let raw = raw.trim();
    if raw.is_empty() {
        // Set but empty: the default, as for Spin's own variable defaults.
        return Ok(default_of(name));
    }
    raw.parse::<u64>()
        .ok()
        .filter(|n| *n == 0 || range.contains(n))
        .ok_or_else(|| ConfigError {
            variable: name,
            problem: format!(
                "must be 0 ({what}) or a whole number of seconds from {} to {}",
                range.start(),
                range.end()
            ),
        })
}

fn default_of(name: &str) -> u64 {
    crate::settings::VARIABLES
        .iter()
        .find(|(n, _)| *n == name)
        .and_then(|(_, d)| d.and_then(|d| d.parse().ok()))
        .unwrap_or(0)
}

impl Lifecycle {
    /// Reads `session_idle_timeout_secs`, `session_reissue_secs`,
    /// `refresh_interval_secs` and `refresh_grace_secs`.
    pub fn parse(
        mut var: impl FnMut(&'static str) -> Result<String, ConfigError>,
        session_lifetime_secs: u64,
    ) -> Result<Lifecycle, ConfigError> {
        let idle_timeout_secs = secs(
            &mut var,
            "session_idle_timeout_secs",
            5..=session_lifetime_secs,
            "no idle timeout",
        )?;
        let reissue = secs(
            &mut var,
            "session_reissue_secs",
            1..=MAX_REISSUE_SECS,
            "a quarter of the idle timeout, at most 300",
        )?;
        if idle_timeout_secs > 0 && reissue >= idle_timeout_secs {
            return Err(ConfigError {
                variable: "session_reissue_secs",
                problem: "must be shorter than session_idle_timeout_secs".into(),
            });
        }
        let reissue_secs = match reissue {
            0 => (idle_timeout_secs / 4).clamp(1, MAX_REISSUE_SECS),
            n => n,
        };
        let refresh_interval_secs = secs(
            &mut var,
            "refresh_interval_secs",
            2..=86_400,
            "never re-validate",
        )?;
        let refresh_grace_secs = secs(
            &mut var,
            "refresh_grace_secs",
            1..=86_400,
            "fail closed at the first failure",
        )?;
        Ok(Lifecycle {
            idle_timeout_secs,
            reissue_secs,
            refresh_interval_secs,
            refresh_grace_secs,
        })
    }

    /// Whether `session` has been idle too long at `now`.
    pub fn idle_expired(&self, session: &Session, now: u64) -> bool {
        self.idle_timeout_secs > 0
            && session.last_seen().saturating_add(self.idle_timeout_secs) <= now
    }

    /// Whether a request at `now` should re-issue the cookie to move the
    /// idle clock.
    pub fn wants_reissue(&self, session: &Session, now: u64) -> bool {
        self.idle_timeout_secs > 0 && session.last_seen().saturating_add(self.reissue_secs) <= now
    }
}

/// What a request with a live session must do around forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duty {
    Nothing,
    /// Re-issue the cookie to move the idle clock.
    Reissue,
    /// Look at the session's grant (`crate::refresh::next`) at this key.
    Grant {
        key: String,
    },
}

/// The duty of a request with `session` at `now`; `passes_token`: the route
/// passes the access token.
pub fn duty(
    settings: &crate::settings::Settings,
    session: &Session,
    passes_token: bool,
    now: u64,
) -> Duty {
    if crate::refresh::needs_grant(session, passes_token, now)
        && let Some(key) = crate::refresh::key(settings, session)
    {
        return Duty::Grant { key };
    }
    if settings.lifecycle.wants_reissue(session, now) {
        return Duty::Reissue;
    }
    Duty::Nothing
}

/// The `Set-Cookie` that carries `session` on, its idle clock moved to
/// `now` (when there is one) and its next re-validation at `refresh_due`
/// (when it moved). `None` if it no longer fits a cookie.
pub fn reissue(
    settings: &crate::settings::Settings,
    session: &Session,
    refresh_due: Option<u64>,
    now: u64,
    rng: crate::Rng<'_>,
) -> Option<String> {
    let mut next = if settings.lifecycle.idle_timeout_secs > 0 {
        session.seen_at(now)
    } else {
        session.clone()
    };
    if let Some(due) = refresh_due {
        next.refresh_due = due;
    }
    next.to_cookie(settings, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{alice, settings_with};

    fn problem(vars: &[(&str, &str)]) -> ConfigError {
        let mut all = crate::testutil::test_variables();
        for (k, v) in vars {
            all.insert((*k).into(), (*v).into());
        }
        crate::settings::Settings::from_variables(|n| all.get(n).cloned()).unwrap_err()
    }

    #[test]
    fn defaults_keep_sessions_as_before_and_refresh_every_five_minutes() {
        let s = settings_with(&[]);
        assert_eq!(s.lifecycle.idle_timeout_secs, 0);
        assert_eq!(s.lifecycle.refresh_interval_secs, 300);
        assert_eq!(s.lifecycle.refresh_grace_secs, 300);
        let session = Session::new(alice(), None, &s, 1000);
        assert!(!s.lifecycle.idle_expired(&session, 1000 + 7 * 3600));
        assert!(!s.lifecycle.wants_reissue(&session, 1000 + 7 * 3600));
    }

    #[test]
    fn idle_sessions_end_and_the_cookie_slides_at_most_once_per_interval() {
        let s = settings_with(&[("session_idle_timeout_secs", "600")]);
        assert_eq!(s.lifecycle.reissue_secs, 150);
        let session = Session::new(alice(), None, &s, 1000);
        assert!(!s.lifecycle.wants_reissue(&session, 1149));
        assert!(s.lifecycle.wants_reissue(&session, 1150));
        assert!(!s.lifecycle.idle_expired(&session, 1599));
        assert!(s.lifecycle.idle_expired(&session, 1600));
        let moved = session.seen_at(1300);
        assert!(!s.lifecycle.idle_expired(&moved, 1899));
        assert!(s.lifecycle.idle_expired(&moved, 1900));
    }

    #[test]
    fn bad_values_name_the_variable() {
        assert_eq!(
            problem(&[("session_idle_timeout_secs", "3")]).variable,
            "session_idle_timeout_secs"
        );
        // Longer than the absolute lifetime: it could never apply.
        assert_eq!(
            problem(&[("session_idle_timeout_secs", "99999")]).variable,
            "session_idle_timeout_secs"
        );
        assert_eq!(
            problem(&[
                ("session_idle_timeout_secs", "60"),
                ("session_reissue_secs", "60")
            ])
            .variable,
            "session_reissue_secs"
        );
        assert_eq!(
            problem(&[("refresh_interval_secs", "1")]).variable,
            "refresh_interval_secs"
        );
        assert_eq!(
            problem(&[("refresh_grace_secs", "-1")]).variable,
            "refresh_grace_secs"
        );
    }
}
