# Sourced by scripts/test and scripts/demo: one definition of what they build,
# so both share one build. Cargo unifies features over the packages and targets
# of one invocation (dev-dependencies included), so `cargo build -p
# edgeauth-host` alone would build wasmtime with other features than the test
# run does, and each would rebuild it (~20 min on 2 cores) after the other.

# Components (cdylibs exporting wasi:http or the rule world) only link for wasm
# targets: natively the linker rejects their export names. The rule plugins'
# unit tests still run natively (a test harness is not a cdylib), in their own
# cargo invocation so their dependencies do not change the features (and so the
# build) of wasmtime; the gateway component's do not link even as a harness.
rule_crates=(rule-email-domain rule-group-roles rule-progressive-profile rule-crm-lead rule-hostile)
native=(--workspace --exclude edgeauth-component --exclude edgeauth-bench-passthrough)
for c in "${rule_crates[@]}"; do native+=(--exclude "$c"); done

step() { printf '\n==> %s\n' "$*"; }

# The wasm components, the rule plugins and every native crate with all its
# targets: $CARGO_TARGET_DIR/debug/edgeauth (the host) is built here.
build_all() {
  step "cargo build --target wasm32-wasip2 --release (gateway + the benchmark's pass-through)"
  cargo build --target wasm32-wasip2 --release -p edgeauth-component -p edgeauth-bench-passthrough
  step "cargo build --target wasm32-unknown-unknown --release (tenant rules: plugins/)"
  cargo build --target wasm32-unknown-unknown --release "${rule_crates[@]/#/--package=}"
  # Same package set and --all-targets as `cargo test` below uses.
  step "cargo build (native crates, all targets)"
  cargo build "${native[@]}" --all-targets
}
