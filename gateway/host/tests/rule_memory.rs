//! A rule's memory cap is its total over all linear memories. Components are
//! made of several core modules (wit-bindgen shims, componentize-js' engine
//! and adapters), each may have its own memory, and a module may have
//! several: a rule must not get the cap once per memory.
//!
//! The hostile rule here is built in the test (a Rust rule has one memory):
//! a core module with four memories that carries the `post-login` world's
//! type information like an SDK-built one, run through the real
//! `edgeauth rule run`, i.e. `edgeauth_rules::runtime` with the rule's budget
//! from a rules file, as the gateway runs it (there on pulley32).

use std::path::Path;
use std::process::{Command, Output};

use wasm_encoder::{
    CodeSection, ConstExpr, ExportKind, ExportSection, Function, FunctionSection, GlobalSection,
    GlobalType, MemorySection, MemoryType, Module, TypeSection, ValType,
};

const PAGE: u64 = 64 << 10;
const MIB: u64 = 1 << 20;

/// A rule with one 64 KiB memory for the canonical ABI and `extra` more,
/// each grown by `grow_bytes` in `on-login`, which then allows the sign-in.
fn many_memories_rule(extra: u32, grow_bytes: u64) -> Vec<u8> {
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32; 4], [ValType::I32]); // cabi_realloc
    types.ty().function([ValType::I32], [ValType::I32]); // on-login(event*) -> result*
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    funcs.function(1);
    let mut memories = MemorySection::new();
    for i in 0..=extra {
        memories.memory(MemoryType {
            minimum: u64::from(i == 0),
            maximum: None,
            memory64: false,
            shared: false,
            page_size_log2: None,
        });
    }
    // Bump allocator for the event the host writes into memory 0; the result
    // area (ok(empty list)) is the zeroed bytes at 16.
    let mut globals = GlobalSection::new();
    globals.global(
        GlobalType {
            val_type: ValType::I32,
            mutable: true,
            shared: false,
        },
        &ConstExpr::i32_const(1024),
    );
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, 0);
    exports.export("cabi_realloc", ExportKind::Func, 0);
    exports.export("edgeauth:plugin/rule@0.1.0#on-login", ExportKind::Func, 1);

    let mut code = CodeSection::new();
    let mut realloc = Function::new([]);
    realloc
        .instructions()
        .global_get(0)
        .global_get(0)
        .local_get(3)
        .i32_const(7)
        .i32_add()
        .i32_const(-8)
        .i32_and()
        .i32_add()
        .global_set(0)
        .global_get(0)
        .i32_const(PAGE as i32)
        .i32_gt_u()
        .if_(wasm_encoder::BlockType::Empty)
        .unreachable()
        .end()
        .end();
    code.function(&realloc);
    let mut on_login = Function::new([]);
    let mut body = on_login.instructions();
    for memory in 1..=extra {
        body.i32_const((grow_bytes / PAGE) as i32)
            .memory_grow(memory)
            .i32_const(-1)
            .i32_eq()
            .if_(wasm_encoder::BlockType::Empty)
            .unreachable()
            .end();
    }
    body.i32_const(16).end();
    code.function(&on_login);

    let mut module = Module::new();
    module
        .section(&types)
        .section(&funcs)
        .section(&memories)
        .section(&globals)
        .section(&exports)
        .section(&code);
    let mut wasm = module.finish();

    let mut resolve = wit_parser::Resolve::default();
    let package = resolve
        .push_source("plugin.wit", edgeauth_rules::WIT)
        .expect("wit/plugin.wit parses");
    let world = resolve
        .select_world(&[package], Some("post-login"))
        .expect("the post-login world");
    wit_component::embed_component_metadata(
        &mut wasm,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("embed the world's type information");
    wasm
}

/// `edgeauth rule run` with the rule's budget from a rules file.
fn run_rule(dir: &Path, wasm: &[u8], memory_bytes: u64) -> Output {
    let rule = dir.join("memories.wasm");
    std::fs::write(&rule, wasm).unwrap();
    let rules = dir.join("rules.json");
    std::fs::write(
        &rules,
        format!(
            r#"{{"tenants": {{"default": {{"chain": [{{"name": "memories", "memory_bytes": {memory_bytes}}}]}}}}}}"#
        ),
    )
    .unwrap();
    let event = dir.join("event.json");
    std::fs::write(&event, r#"{"user": {"sub": "mallory"}}"#).unwrap();
    Command::new(env!("CARGO_BIN_EXE_edgeauth"))
        .args(["rule", "run"])
        .arg(&rule)
        .arg("--event")
        .arg(&event)
        .arg("--rules")
        .arg(&rules)
        .args(["--name", "memories", "--no-http"])
        .output()
        .expect("run edgeauth rule run")
}

#[test]
fn memories_under_the_cap_each_but_over_it_together_fail_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    // Three extra memories of 3 MiB each (plus 64 KiB): each under the 8 MiB
    // cap, 9 MiB together.
    let wasm = many_memories_rule(3, 3 * MIB);

    let roomy = run_rule(dir.path(), &wasm, 16 * MIB);
    let stderr = String::from_utf8_lossy(&roomy.stderr);
    assert!(
        roomy.status.success(),
        "with 16 MiB the rule must run and allow the sign-in: {stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&roomy.stdout).trim(), "[]");

    let capped = run_rule(dir.path(), &wasm, 8 * MIB);
    let stderr = String::from_utf8_lossy(&capped.stderr);
    assert!(
        !capped.status.success(),
        "9 MiB over four memories passed an 8 MiB cap: {stderr}"
    );
    assert!(
        stderr.contains("rule `memories` failed [out-of-memory]: it exceeded its memory cap"),
        "{stderr}"
    );
}
