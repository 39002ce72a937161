//! The component's key-value I/O. Keys, value formats and the sweep plan
//! are `edgeauth_core::kv_schema`'s; this module only talks to the store:
//! Spin's `fermyon:spin/key-value` for reads and writes, and wasi:keyvalue
//! `atomics.increment` (on the same store) for single-use markers and the
//! sweep index, the one atomic operation Spin's SQLite and Redis stores
//! implement as such. Counters are read with a plain get where possible
//! ([`Kv::counter`]): an increment of 0 is a write. The rule deployment
//! record is updated with wasi:keyvalue `atomics` compare-and-swap
//! ([`Kv::cas`], [`Kv::swap`]); what Spin's stores do with it, and how
//! `rules::versions::update_record` copes, is told there.

use std::collections::HashMap;

use edgeauth_core::Response;
use edgeauth_core::kv_schema::{self, Cursor, SweepPass, Verdict};
use edgeauth_core::pages;
use spin_sdk::key_value::Store;
use spin_sdk::wit::wasi::keyvalue::{atomics, store as wasi_store};

const LABEL: &str = "default";

pub struct Kv {
    store: Store,
    /// The same store through wasi:keyvalue, opened on first need.
    bucket: std::cell::OnceCell<Option<wasi_store::Bucket>>,
}

/// A failed store operation (the store is down or refused).
#[derive(Debug)]
pub struct Unavailable;

/// One compare-and-swap under way: the value read, and the handle that
/// swaps it only if the store still holds that value.
#[cfg_attr(not(feature = "rules"), allow(dead_code))] // only rule deploys swap so far
pub struct Cas {
    handle: atomics::Cas,
    pub current: Option<Vec<u8>>,
}

/// Why a compare-and-swap could not start.
#[derive(Debug)]
#[cfg_attr(not(feature = "rules"), allow(dead_code))]
pub enum CasOpen {
    /// The store refuses `atomics::cas` while it serves plain reads: a
    /// backend without it (the caller falls back to read-then-write).
    Unsupported(String),
    Unavailable,
}

impl Kv {
    pub fn open() -> Result<Kv, Response> {
        match Store::open(LABEL) {
            Ok(store) => Ok(Kv {
                store,
                bucket: std::cell::OnceCell::new(),
            }),
            Err(e) => {
                eprintln!("edgeauth: key-value store unavailable: {e:?}");
                Err(pages::storage_unavailable())
            }
        }
    }

    fn bucket(&self) -> Result<&wasi_store::Bucket, Unavailable> {
        self.bucket
            .get_or_init(|| match wasi_store::open(LABEL) {
                Ok(b) => Some(b),
                Err(e) => {
                    eprintln!("edgeauth: key-value store unavailable (wasi:keyvalue): {e:?}");
                    None
                }
            })
            .as_ref()
            .ok_or(Unavailable)
    }

    /// The values stored under `keys` (absent keys are absent from the map).
    /// One read per key: wasi:keyvalue's `batch.get-many` would be one host
    /// call, but Spin 4.1's Redis store answers it with `KEYS`, an error
    /// every time, so it would cost a failed round trip before the reads.
    pub fn get_each(&self, keys: &[String]) -> Result<HashMap<String, Vec<u8>>, Unavailable> {
        let mut found = HashMap::new();
        for key in keys {
            if let Some(value) = self.get_raw(key)? {
                found.insert(key.clone(), value);
            }
        }
        Ok(found)
    }

    /// The stored value as it is (for values that are not envelopes: rule artifacts).
    pub fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>, Unavailable> {
        self.store.get(key).map_err(|_| Unavailable)
    }

    /// The stored value, `None` if missing or over (an envelope's expiry
    /// is checked on every read; sweeping only reclaims space).
    pub fn get_live(&self, key: &str, now: u64) -> Result<Option<Vec<u8>>, Unavailable> {
        Ok(self
            .get_raw(key)?
            .and_then(|v| kv_schema::open(&v, now).ok().map(<[u8]>::to_vec)))
    }

    /// Whether anything is stored under `key`.
    pub fn exists(&self, key: &str) -> Result<bool, Unavailable> {
        self.store.exists(key).map_err(|_| Unavailable)
    }

    /// Stores `value` (an envelope expiring at `expires_at`) and records
    /// the key in the sweep index if it is new. (Two first writes racing may
    /// both index it; the extra entry lives only as long as the key.)
    pub fn put(
        &self,
        key: &str,
        value: &[u8],
        expires_at: u64,
        now: u64,
    ) -> Result<(), Unavailable> {
        let previous = self.store.get(key).ok().flatten();
        self.store.set(key, value).map_err(|_| Unavailable)?;
        if kv_schema::needs_index(previous.as_deref()) {
            self.index(key, expires_at, now);
        }
        Ok(())
    }

    /// Stores a value that never expires (operator configuration).
    pub fn put_permanent(&self, key: &str, value: &[u8]) -> Result<(), Unavailable> {
        self.store.set(key, value).map_err(|_| Unavailable)
    }

    pub fn delete(&self, key: &str) -> Result<(), Unavailable> {
        self.store.delete(key).map_err(|_| Unavailable)
    }

    /// Atomic add (`delta` 0 reads the counter).
    pub(crate) fn increment(&self, key: &str, delta: i64) -> Result<i64, Unavailable> {
        atomics::increment(self.bucket()?, key, delta).map_err(|e| {
            eprintln!("edgeauth: key-value increment failed: {e:?}");
            Unavailable
        })
    }

    /// Starts a compare-and-swap of `key`: `Cas::new`, then `current` (Spin's
    /// SQLite store reads the value to compare only there).
    #[cfg_attr(not(feature = "rules"), allow(dead_code))]
    pub(crate) fn cas(&self, key: &str) -> Result<Cas, CasOpen> {
        let bucket = self.bucket().map_err(|_| CasOpen::Unavailable)?;
        let opened = atomics::Cas::new(bucket, key).and_then(|handle| {
            let current = handle.current()?;
            Ok(Cas { handle, current })
        });
        opened.map_err(|e| match self.store.get(key) {
            // Plain reads work: the store lacks (or refuses) atomics.
            Ok(_) => CasOpen::Unsupported(format!("{e:?}")),
            Err(_) => {
                eprintln!("edgeauth: key-value compare-and-swap failed: {e:?}");
                CasOpen::Unavailable
            }
        })
    }

    /// Stores `value` if the key still holds what `cas` read; `Ok(false)`:
    /// it changed meanwhile (the store says so; see `update_record` for a
    /// store that does not).
    #[cfg_attr(not(feature = "rules"), allow(dead_code))]
    pub(crate) fn swap(&self, cas: Cas, value: &[u8]) -> Result<bool, Unavailable> {
        match atomics::swap(cas.handle, value) {
            Ok(()) => Ok(true),
            Err(atomics::CasError::CasFailed(_)) => Ok(false),
            Err(atomics::CasError::StoreError(e)) => {
                eprintln!("edgeauth: key-value swap failed: {e:?}");
                Err(Unavailable)
            }
        }
    }

    /// A counter's current value: a plain read where the store's encoding
    /// is known (`kv_schema::counter_value`), else an increment of 0.
    pub(crate) fn counter(&self, key: &str) -> Result<i64, Unavailable> {
        match self.get_raw(key)? {
            None => Ok(0),
            Some(v) => match kv_schema::counter_value(&v) {
                Some(n) => Ok(n),
                None => self.increment(key, 0),
            },
        }
    }

    /// Marks the single-use `key` (a counter key carrying its expiry) used;
    /// `Ok(true)` only for the first of any number of concurrent callers.
    pub fn first_use(&self, key: &str, now: u64) -> Result<bool, Unavailable> {
        let n = self.increment(key, 1)?;
        if n == 1
            && let Some(expires_at) = kv_schema::key_expiry(key)
        {
            self.index(key, expires_at, now);
        }
        Ok(n == 1)
    }

    /// Best effort: a key missing from the index is still ignored once
    /// over, it only stays until overwritten.
    fn index(&self, key: &str, expires_at: u64, now: u64) {
        if let Some(n) = self.add_to_index(key, expires_at)
            && kv_schema::sweeps_after(n)
        {
            self.sweep(now);
        }
    }

    /// The key's entry number in its expiry's bucket.
    fn add_to_index(&self, key: &str, expires_at: u64) -> Option<i64> {
        let bucket = kv_schema::bucket_of(expires_at);
        let n = self.increment(&kv_schema::index_count(bucket), 1).ok()?;
        self.store
            .set(&kv_schema::index_entry(bucket, n), key.as_bytes())
            .ok()?;
        Some(n)
    }

    /// One bounded pass of the sweep (see `kv_schema::SweepPass`).
    pub fn sweep(&self, now: u64) {
        let stored = self.store.get(kv_schema::SWEEP_CURSOR).ok().flatten();
        let start = Cursor::load(stored.as_deref(), now);
        let mut pass = SweepPass::new(start, now);
        while let Some(bucket) = pass.bucket() {
            let count_key = kv_schema::index_count(bucket);
            let Ok(count) = self.counter(&count_key) else {
                break;
            };
            for n in pass.entries(count) {
                let entry = kv_schema::index_entry(bucket, n);
                let target = self
                    .store
                    .get(&entry)
                    .ok()
                    .flatten()
                    .and_then(|t| String::from_utf8(t).ok());
                if let Some(target) = target {
                    let value = self.store.get(&target).ok().flatten();
                    match kv_schema::verdict(&target, value.as_deref(), now) {
                        Verdict::Delete => {
                            let _ = self.store.delete(&target);
                        }
                        // Never sweeps from here: one pass at a time.
                        Verdict::Reindex(expires_at) => {
                            let _ = self.add_to_index(&target, expires_at);
                        }
                        Verdict::Forget => {}
                    }
                }
                let _ = self.store.delete(&entry);
            }
            if !pass.finish_bucket(count) {
                break;
            }
            let _ = self.store.delete(&count_key);
        }
        // Written even unchanged: that renews its expiry.
        let _ = self
            .store
            .set(kv_schema::SWEEP_CURSOR, &pass.cursor().encode(now));
    }
}
