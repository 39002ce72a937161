//! Per-rule execution logs the tenant can read back (`edgeauth rule logs`):
//! the last [`RING`] runs of each rule, made from the same fields as the
//! rule's audit line (`chain::run_chain`), so a run's entry and its audit
//! line share the correlation id.
//!
//! Stored in KV as a ring: a counter numbers the rule's runs (atomic
//! `increment`, so concurrent sign-ins on any instance get distinct numbers)
//! and run `n` goes to slot `n % RING` (keys in `edgeauth_core::kv_schema`;
//! the ring bounds them, so no expiry). Each entry carries its number, so a
//! slot still holding an older lap is recognised.
//! Entries are capped at [`MAX_ENTRY`] bytes: log lines are cut and the
//! oldest dropped first.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Runs kept per rule.
pub const RING: u64 = 20;
/// Largest stored entry (JSON bytes).
pub const MAX_ENTRY: usize = 4096;
/// Log lines kept per run, and their length.
pub const MAX_LINES: usize = 20;
pub const MAX_LINE_CHARS: usize = 300;
const MAX_DETAIL_CHARS: usize = 500;

/// One run of one rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The run's number (1-based) among the rule's runs.
    pub n: u64,
    /// Unix seconds.
    pub at: u64,
    pub correlation_id: String,
    /// The version that ran (`None`: its artifact from before versions, or a file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// As in the audit line: `ok`, `deny`, `redirect`, `reauth`, `failed`, `failed-open`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Load + instantiate + call.
    pub duration_us: u64,
    pub fuel: u64,
    /// The rule's own log lines of this run (`level: message`).
    #[serde(default)]
    pub logs: Vec<String>,
    /// Lines dropped to keep the entry under [`MAX_ENTRY`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub logs_dropped: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn cut(text: &str, chars: usize) -> String {
    if text.chars().count() <= chars {
        text.to_owned()
    } else {
        let mut t: String = text.chars().take(chars).collect();
        t.push('…');
        t
    }
}

impl Entry {
    /// The entry of a rule's run from its audit line (`event: rule`) and its
    /// log lines; `None` for any other line.
    pub fn from_audit(
        audit: &Value,
        logs: Vec<String>,
        version: Option<&str>,
        at: u64,
    ) -> Option<Entry> {
        if audit.get("event")?.as_str()? != "rule" {
            return None;
        }
        let text = |k: &str| audit.get(k).and_then(Value::as_str).map(str::to_owned);
        let num = |k: &str| audit.get(k).and_then(Value::as_u64).unwrap_or(0);
        let mut entry = Entry {
            n: 0,
            at,
            correlation_id: text("correlation_id").unwrap_or_default(),
            version: version.map(str::to_owned),
            outcome: text("outcome").unwrap_or_default(),
            kind: text("kind"),
            detail: text("detail").map(|d| cut(&d, MAX_DETAIL_CHARS)),
            duration_us: num("load_us") + num("instantiate_us") + num("call_us"),
            fuel: num("fuel"),
            logs: Vec::new(),
            logs_dropped: 0,
        };
        let skip = logs.len().saturating_sub(MAX_LINES);
        entry.logs_dropped = skip;
        entry.logs = logs
            .iter()
            .skip(skip)
            .map(|l| cut(l, MAX_LINE_CHARS))
            .collect();
        Some(entry)
    }

    /// The stored JSON of run `n`, at most [`MAX_ENTRY`] bytes: the oldest
    /// lines go first.
    pub fn encode(&self, n: u64) -> Vec<u8> {
        let mut e = self.clone();
        e.n = n;
        loop {
            let json = serde_json::to_vec(&e).unwrap_or_default();
            if json.len() <= MAX_ENTRY || e.logs.is_empty() {
                return json;
            }
            e.logs.remove(0);
            e.logs_dropped += 1;
        }
    }

    /// The entry stored in slot of run `n`, if it is that run's (not an
    /// older lap's, not unreadable).
    pub fn decode(bytes: &[u8], n: u64) -> Option<Entry> {
        serde_json::from_slice::<Entry>(bytes)
            .ok()
            .filter(|e| e.n == n)
    }
}

/// The slot of run `n`.
pub fn slot(n: u64) -> u64 {
    n % RING
}

/// The runs to read, newest first, for a counter at `seq`: at most `limit`
/// (and [`RING`]).
pub fn latest(seq: i64, limit: u64) -> Vec<u64> {
    let seq = seq.max(0) as u64;
    let count = limit.clamp(1, RING).min(seq);
    (0..count).map(|i| seq - i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn audit() -> Value {
        json!({"event": "rule", "tenant": "acme", "rule": "roles", "correlation_id": "cid-1",
               "load_us": 300, "instantiate_us": 200, "call_us": 500, "fuel": 4242, "outcome": "failed",
               "kind": "trap", "detail": "it crashed (boom)"})
    }

    #[test]
    fn an_entry_has_what_the_audit_line_has() {
        let e = Entry::from_audit(
            &audit(),
            vec!["info: hi".into()],
            Some("1111111111111111"),
            77,
        )
        .unwrap();
        assert_eq!(e.correlation_id, "cid-1");
        assert_eq!((e.duration_us, e.fuel, e.at), (1000, 4242, 77));
        assert_eq!(e.outcome, "failed");
        assert_eq!(e.kind.as_deref(), Some("trap"));
        assert_eq!(e.detail.as_deref(), Some("it crashed (boom)"));
        assert_eq!(e.version.as_deref(), Some("1111111111111111"));
        assert_eq!(e.logs, ["info: hi"]);
        let stored = e.encode(5);
        assert_eq!(Entry::decode(&stored, 5).unwrap().n, 5);
        assert!(
            Entry::decode(&stored, 25).is_none(),
            "an older lap's entry is not run 25"
        );
        assert!(Entry::decode(b"junk", 5).is_none());
        assert!(Entry::from_audit(&json!({"event": "login-failed"}), vec![], None, 1).is_none());
    }

    #[test]
    fn entries_are_capped_dropping_the_oldest_lines() {
        let lines: Vec<String> = (0..50)
            .map(|i| format!("info: line {i} {}", "x".repeat(1000)))
            .collect();
        let e = Entry::from_audit(&audit(), lines, None, 1).unwrap();
        assert_eq!(e.logs.len(), MAX_LINES);
        assert_eq!(e.logs_dropped, 30);
        assert!(
            e.logs
                .iter()
                .all(|l| l.chars().count() <= MAX_LINE_CHARS + 1)
        );
        let stored = e.encode(1);
        assert!(stored.len() <= MAX_ENTRY, "{}", stored.len());
        let back = Entry::decode(&stored, 1).unwrap();
        assert!(
            back.logs.last().unwrap().starts_with("info: line 49 "),
            "the newest lines are kept"
        );
        assert!(back.logs_dropped > 30);
        let mut long = audit();
        long["detail"] = json!("d".repeat(5000));
        let e = Entry::from_audit(&long, vec![], None, 1).unwrap();
        assert!(e.encode(1).len() <= MAX_ENTRY);
    }

    #[test]
    fn the_ring_keeps_the_last_runs() {
        assert_eq!(slot(1), 1);
        assert_eq!(slot(RING), 0);
        assert_eq!(slot(RING + 3), 3);
        assert_eq!(latest(0, 10), Vec::<u64>::new());
        assert_eq!(latest(3, 10), [3, 2, 1]);
        assert_eq!(latest(100, 2), [100, 99]);
        assert_eq!(latest(100, 1000).len() as u64, RING);
        assert_eq!(*latest(100, 1000).last().unwrap(), 100 - RING + 1);
    }
}
