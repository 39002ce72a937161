//! The host's own error answers (a request it cannot hand to the component, a
//! component that traps or fails): a short text naming the class of problem
//! and a reference, never the failure itself; the detail goes to stderr on one
//! line with the same reference, in the format the component uses
//! (`edgeauth: error <reference> <class>: <detail>`).

use std::fmt::Display;
use std::io::Read as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// A rendered problem: what the client gets and what the log gets.
#[derive(Debug, PartialEq, Eq)]
pub struct Problem {
    pub body: String,
    pub log_line: String,
}

/// `public` is what the client reads ("Internal Server Error"); `detail` may
/// hold anything (paths, wasm backtraces) and is only logged.
pub fn render(public: &str, class: &str, detail: &dyn Display, random: [u8; 8]) -> Problem {
    let reference: String = random.iter().map(|b| format!("{b:02x}")).collect();
    // One line whatever the detail holds (multi-line anyhow chains, backtraces).
    let detail: String = detail
        .to_string()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Problem {
        body: format!("{public} (reference {reference})\n"),
        log_line: format!("edgeauth: error {reference} {class}: {detail}\n"),
    }
}

/// Eight unpredictable bytes for a reference: the kernel's, or (should
/// /dev/urandom be unreadable) the clock and a counter, still unique.
pub fn random_reference() -> [u8; 8] {
    let mut buf = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok()
    {
        return buf;
    }
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    (nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(40)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_names_class_and_reference_the_log_has_the_detail() {
        let detail = "error while executing at wasm backtrace:\n  0: /src/gateway/component/src/lib.rs:12\nCaused by: unreachable";
        let p = render(
            "Internal Server Error",
            "component_failed",
            &detail,
            [0xab; 8],
        );
        assert_eq!(
            p.body,
            "Internal Server Error (reference abababababababab)\n"
        );
        assert!(!p.body.contains("wasm") && !p.body.contains("lib.rs"));
        assert_eq!(
            p.log_line,
            "edgeauth: error abababababababab component_failed: error while executing at wasm \
             backtrace:   0: /src/gateway/component/src/lib.rs:12 Caused by: unreachable\n"
        );
        assert_eq!(p.log_line.matches('\n').count(), 1);
    }

    #[test]
    fn references_differ() {
        assert_ne!(random_reference(), random_reference());
    }
}
