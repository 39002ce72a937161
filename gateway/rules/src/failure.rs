//! Why a rule call failed: shared by the runtime and the pure chain logic
//! (which needs it without the runtime feature).

/// Why a rule call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Ran out of fuel (CPU budget).
    Fuel,
    /// Tried to grow memory past its cap.
    Memory,
    /// Its memories' initial sizes alone pass the cap: it cannot even start
    /// (a JavaScript rule's engine starts with ~9 MiB). Bytes of the cap and
    /// the total asked for.
    MemoryAtStart { cap: usize, asked: usize },
    /// Trapped (panic, unreachable, stack overflow...).
    Trap(String),
    /// Returned `err(..)`.
    Error(String),
    /// Output too large or a command the gateway refuses.
    Output(String),
    /// Called a host outside its allow list.
    ForbiddenHost(String),
    /// Could not be loaded or instantiated.
    Load(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Fuel => write!(f, "it ran out of its CPU budget (fuel)"),
            Failure::Memory => write!(f, "it exceeded its memory cap"),
            Failure::MemoryAtStart { cap, asked } => write!(
                f,
                "it exceeded its memory cap before it ran: memory_bytes is {cap} and it needs more than {asked} bytes to start; raise the rule's memory_bytes (at most 64 MiB)"
            ),
            Failure::Trap(t) => write!(f, "it crashed ({t})"),
            Failure::Error(e) => write!(f, "it returned an error ({e})"),
            Failure::Output(e) => write!(f, "its output was refused: {e}"),
            Failure::ForbiddenHost(h) => write!(f, "it called {h}, which is not in its allow list"),
            Failure::Load(e) => write!(f, "it could not be loaded ({e})"),
        }
    }
}

/// A trap's failure: the rule's own panic report when it logged one just
/// before (the SDK's panic hook, [`edgeauth_contract::PANIC_PREFIX`]), the
/// bare trap (`wasm trap: unreachable`) otherwise. `messages` are the
/// call's log messages, oldest first.
pub fn trap<'a>(trap: &str, messages: impl DoubleEndedIterator<Item = &'a str>) -> Failure {
    let mut messages = messages;
    match messages.rfind(|m| m.starts_with(edgeauth_contract::PANIC_PREFIX)) {
        Some(panic) => Failure::Trap(panic.to_owned()),
        None => Failure::Trap(trap.to_owned()),
    }
}

impl Failure {
    /// Short machine-readable kind for audit logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Fuel => "out-of-fuel",
            Failure::Memory | Failure::MemoryAtStart { .. } => "out-of-memory",
            Failure::Trap(_) => "trap",
            Failure::Error(_) => "error",
            Failure::Output(_) => "bad-output",
            Failure::ForbiddenHost(_) => "forbidden-host",
            Failure::Load(_) => "load",
        }
    }

    /// The failure's class in words, without its detail (which can hold file
    /// paths or a rule's own error text): what a sign-in page may show.
    pub fn summary(&self) -> &'static str {
        match self {
            Failure::Fuel => "it ran out of its CPU budget",
            Failure::Memory | Failure::MemoryAtStart { .. } => "it exceeded its memory cap",
            Failure::Trap(_) => "it crashed",
            Failure::Error(_) => "it returned an error",
            Failure::Output(_) => "its output was refused",
            Failure::ForbiddenHost(_) => "it called a host that is not in its allow list",
            Failure::Load(_) => "it could not be loaded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trap_after_a_panic_report_carries_the_report() {
        let logs = [
            "checking the domain",
            "rule panicked at src/lib.rs:12:9: no domain in `x`",
        ];
        let f = trap(
            "wasm trap: wasm `unreachable` instruction executed",
            logs.into_iter(),
        );
        assert_eq!(
            f,
            Failure::Trap("rule panicked at src/lib.rs:12:9: no domain in `x`".into())
        );
        assert_eq!(
            f.to_string(),
            "it crashed (rule panicked at src/lib.rs:12:9: no domain in `x`)"
        );
        // Without a report (not built with the SDK), the trap itself.
        let f = trap("wasm trap: stack overflow", ["a line"].into_iter());
        assert_eq!(f, Failure::Trap("wasm trap: stack overflow".into()));
        // What the person sees never includes either.
        assert_eq!(f.summary(), "it crashed");
    }

    #[test]
    fn a_cap_under_the_start_size_names_memory_bytes_and_the_need() {
        let f = Failure::MemoryAtStart {
            cap: 8 << 20,
            asked: 9_502_720,
        };
        // Same kind and page as any out-of-memory failure; the detail says
        // which setting to change and to what.
        assert_eq!(f.kind(), "out-of-memory");
        assert_eq!(f.summary(), "it exceeded its memory cap");
        assert!(
            f.to_string()
                .contains("memory_bytes is 8388608 and it needs more than 9502720 bytes to start"),
            "{f}"
        );
    }
}
