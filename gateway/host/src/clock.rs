//! TEST ONLY: `EDGEAUTH_TEST_CLOCK_OFFSET_SECS` moves the wall clock that
//! components see (wasi:clocks/wall-clock) by that many seconds, so an
//! end-to-end test can restart the host on the same state directory
//! "later" and watch entries expire (tests/security/85-kv-expiry). The
//! host itself keeps the real time. Never set it in production: every
//! expiry the gateway checks (sessions, login states, assertions) follows it.
//!
//! `edgeauth rule test --now` on a signed artifact stops the components'
//! wall clock at that instant instead ([`Clock::Fixed`]): the gateway it
//! starts serves that one dry run, whose rule reads the time through it.

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

/// The wall clock the components see.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Clock {
    /// The host's.
    #[default]
    Real,
    /// The host's moved by this many seconds ([`ENV`], tests only).
    OffsetSecs(i64),
    /// Stopped at this time since the Unix epoch (`rule test --now`).
    Fixed(Duration),
}

impl Clock {
    /// Gives a component's WASI context this clock.
    pub fn apply(self, wasi: &mut wasmtime_wasi::WasiCtxBuilder) {
        match self {
            Clock::Real => {}
            Clock::OffsetSecs(offset_secs) => {
                wasi.wall_clock(OffsetClock { offset_secs });
            }
            Clock::Fixed(at) => {
                wasi.wall_clock(FixedClock { at });
            }
        }
    }
}

/// A wall clock that does not move.
pub struct FixedClock {
    pub at: Duration,
}

impl HostWallClock for FixedClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        self.at
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

    #[test]
    fn a_fixed_clock_stands_still() {
        let at = Duration::from_millis(1_796_635_800_250);
        let clock = FixedClock { at };
        assert_eq!(clock.now(), at);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(clock.now(), at);
    }
}
