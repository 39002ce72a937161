//! A 256 KiB shadow stack for the component instead of rustc's 1 MiB.
//!
//! Spin (and wasmtime's pooling allocator under the edgeauth host) resets
//! an instance's resident memory after every request, and Rust puts the
//! stack first in memory: with the default, every request paid for
//! zeroing 1 MiB it barely touched (measured under Spin 4.1: ~25 µs of
//! CPU per request, see bench/results/2026-12-07-spin-where-the-time-goes.md).
//! The deepest paths (JSON with serde_json's 128-level limit, SAML XML,
//! the rule runtime, whose rules run on their own stacks) use a fraction
//! of it; an overflow traps, so the request fails closed.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_FAMILY").as_deref() == Ok("wasm") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=262144");
    }
}
