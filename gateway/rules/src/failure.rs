//! Why a rule call failed: shared by the runtime and the pure chain logic
//! (which needs it without the runtime feature).

/// Why a rule call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Ran out of fuel (CPU budget).
    Fuel,
    /// Tried to grow memory past its cap.
    Memory,
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
            Failure::Trap(t) => write!(f, "it crashed ({t})"),
            Failure::Error(e) => write!(f, "it returned an error ({e})"),
            Failure::Output(e) => write!(f, "its output was refused: {e}"),
            Failure::ForbiddenHost(h) => write!(f, "it called {h}, which is not in its allow list"),
            Failure::Load(e) => write!(f, "it could not be loaded ({e})"),
        }
    }
}

impl Failure {
    /// Short machine-readable kind for audit logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Fuel => "out-of-fuel",
            Failure::Memory => "out-of-memory",
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
            Failure::Memory => "it exceeded its memory cap",
            Failure::Trap(_) => "it crashed",
            Failure::Error(_) => "it returned an error",
            Failure::Output(_) => "its output was refused",
            Failure::ForbiddenHost(_) => "it called a host that is not in its allow list",
            Failure::Load(_) => "it could not be loaded",
        }
    }
}
