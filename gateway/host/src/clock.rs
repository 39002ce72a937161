//! TEST ONLY: `EDGEAUTH_TEST_CLOCK_OFFSET_SECS` moves the wall clock that
//! components see (wasi:clocks/wall-clock) by that many seconds, so an
//! end-to-end test can restart the host on the same state directory
//! "later" and watch entries expire (tests/security/85-kv-expiry). The
//! host itself keeps the real time. Never set it in production: every
//! expiry the gateway checks (sessions, login states, assertions) follows it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};
use wasmtime_wasi::HostWallClock;

pub const ENV: &str = "EDGEAUTH_TEST_CLOCK_OFFSET_SECS";

/// The offset from the environment; `None` when unset.
pub fn offset_from_env() -> Result<Option<i64>> {
    match std::env::var(ENV) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<i64>()
            .map(Some)
            .with_context(|| format!("{ENV} must be a whole number of seconds, not {v:?}")),
        _ => Ok(None),
    }
}

/// The real wall clock shifted by a fixed number of seconds.
pub struct OffsetClock {
    pub offset_secs: i64,
}

impl HostWallClock for OffsetClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let shift = Duration::from_secs(self.offset_secs.unsigned_abs());
        if self.offset_secs >= 0 {
            real + shift
        } else {
            real.saturating_sub(shift)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_moves_by_the_offset() {
        let real = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let later = OffsetClock { offset_secs: 3600 }.now();
        let earlier = OffsetClock { offset_secs: -3600 }.now();
        assert!(later >= real + Duration::from_secs(3600));
        assert!(earlier < real);
    }
}
