//! Host-side bindings for the Spin 2.0 interfaces in `wit/spin.wit`.

wasmtime::component::bindgen!({
    path: "wit/spin.wit",
    world: "fermyon:spin/edgeauth-host",
    imports: { default: async | trappable },
    with: {
        "fermyon:spin/key-value.store": crate::key_value::StoreHandle,
    },
});
