//! Host-side bindings for the Spin 2.0 interfaces in `wit/spin.wit`,
//! wasi:keyvalue's store and atomics (`wit/deps/keyvalue`) and
//! wasi:config's store (`wit/deps/config`).

wasmtime::component::bindgen!({
    path: "wit",
    world: "fermyon:spin/edgeauth-host",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/key-value.store": crate::key_value::StoreHandle,
        "wasi:keyvalue/store.bucket": crate::key_value::StoreHandle,
        "wasi:keyvalue/atomics.cas": crate::key_value::CasHandle,
    },
});
