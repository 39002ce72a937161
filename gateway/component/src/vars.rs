//! The component's Spin variables, all read in one host call.
//!
//! Every request reads ~27 settings. Under Spin each `variables::get` is a
//! separate host call through its providers; wasi:config's `get-all` (which
//! Spin and the edgeauth host serve from the same variables) answers them
//! all at once. The answer is kept for the rest of the instance, i.e. one
//! request (Spin and the host make one instance per request for WASI 0.2
//! components). A store that refuses `get-all` falls back to one `get` per
//! name, so a variable is never read as missing when it is only unlisted.

use std::sync::OnceLock;

use spin_sdk::wit::wasi::config::store as config;

/// A list, not a map: ~30 short names, looked up ~27 times per request,
/// cost less to scan than to hash (SipHash) into a map first.
static ALL: OnceLock<Option<Vec<(String, String)>>> = OnceLock::new();

/// The variable's value; `None` if the component has no such variable.
pub fn get(name: &str) -> Option<String> {
    let all = ALL.get_or_init(|| match config::get_all() {
        Ok(pairs) => Some(pairs),
        Err(e) => {
            eprintln!("edgeauth: wasi:config get-all failed ({e:?}); reading variables one by one");
            None
        }
    });
    match all {
        Some(all) => all.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()),
        None => spin_sdk::variables::get(name).ok(),
    }
}
