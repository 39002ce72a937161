//! `fermyon:spin/key-value@2.0.0` and `wasi:keyvalue@0.2.0-draft2` (store
//! and atomics, on the same stores, as Spin serves them): the stores a
//! component lists in `key_value_stores`, persisted under the state directory.
//!
//! Each store is one JSON file (`<state-dir>/kv/<label>.json`, values
//! base64-encoded) held in memory and rewritten on every change through a
//! temporary file and a rename, so a crash leaves either the old or the new
//! file, never a torn one. A mutex per store serializes writers, which keeps
//! concurrent requests consistent and makes `increment` and compare-and-swap
//! atomic (read, decide and write under the one lock), as Spin's SQLite store
//! does with its connection lock and a transaction. This suits the gateway's small state
//! (revocations, rule metadata); it is not a database. Two host processes must
//! not share one state directory.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// Spin defines only the `default` store unless a runtime config adds more.
pub const DEFAULT_STORE: &str = "default";

/// Per instance; Spin's host has the same kind of bound on open stores.
pub const MAX_OPEN_STORES: usize = 256;

#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    data: Mutex<BTreeMap<String, Vec<u8>>>,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FileStore {
    /// Opens (or starts) the store at `path`. A file that exists but cannot be
    /// read is an error rather than an empty store, so state is never
    /// silently dropped.
    pub fn open(path: &Path) -> Result<Self> {
        let data = match fs::read(path) {
            Ok(bytes) => {
                let encoded: BTreeMap<String, String> = serde_json::from_slice(&bytes)
                    .with_context(|| format!("corrupt key-value file {}", path.display()))?;
                encoded
                    .into_iter()
                    .map(|(k, v)| {
                        let v = B64.decode(v).with_context(|| {
                            format!("corrupt value for key {k:?} in {}", path.display())
                        })?;
                        Ok((k, v))
                    })
                    .collect::<Result<_>>()?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        Ok(Self {
            path: path.to_path_buf(),
            data: Mutex::new(data),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (each change is a single insert/remove), so poisoning is ignorable.
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().get(key).cloned()
    }

    pub fn exists(&self, key: &str) -> bool {
        self.lock().contains_key(key)
    }

    pub fn keys(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn set(&self, key: &str, value: Vec<u8>) -> Result<()> {
        let mut data = self.lock();
        let previous = data.insert(key.to_string(), value);
        if let Err(e) = self.persist(&data) {
            // Keep memory and disk in agreement: the write did not happen.
            match previous {
                Some(p) => data.insert(key.to_string(), p),
                None => data.remove(key),
            };
            return Err(e);
        }
        Ok(())
    }

    /// Adds `delta` to the counter at `key` (missing: 0) and returns the sum.
    /// Counters are 8 bytes, little-endian, as in Spin's SQLite store; any
    /// other value is an error, not a counter.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let mut data = self.lock();
        let current = match data.get(key) {
            None => 0,
            Some(v) => match <[u8; 8]>::try_from(v.as_slice()) {
                Ok(b) => i64::from_le_bytes(b),
                Err(_) => bail!("the value of {key:?} is not a counter"),
            },
        };
        let sum = current
            .checked_add(delta)
            .with_context(|| format!("counter {key:?} would overflow"))?;
        let previous = data.insert(key.to_string(), sum.to_le_bytes().to_vec());
        if let Err(e) = self.persist(&data) {
            match previous {
                Some(p) => data.insert(key.to_string(), p),
                None => data.remove(key),
            };
            return Err(e);
        }
        Ok(sum)
    }

    /// Stores `value` only if the key still holds `expected` (`None`: absent);
    /// `Ok(false)` when it changed meanwhile.
    pub fn swap_if(&self, key: &str, expected: Option<&[u8]>, value: Vec<u8>) -> Result<bool> {
        let mut data = self.lock();
        if data.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        let previous = data.insert(key.to_string(), value);
        if let Err(e) = self.persist(&data) {
            match previous {
                Some(p) => data.insert(key.to_string(), p),
                None => data.remove(key),
            };
            return Err(e);
        }
        Ok(true)
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        let mut data = self.lock();
        let Some(previous) = data.remove(key) else {
            return Ok(());
        };
        if let Err(e) = self.persist(&data) {
            data.insert(key.to_string(), previous);
            return Err(e);
        }
        Ok(())
    }

    fn persist(&self, data: &BTreeMap<String, Vec<u8>>) -> Result<()> {
        let encoded: BTreeMap<&str, String> = data
            .iter()
            .map(|(k, v)| (k.as_str(), B64.encode(v)))
            .collect();
        let bytes = serde_json::to_vec(&encoded)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(
            ".{file_name}.{}.{}.tmp",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            anyhow::Error::new(e).context(format!("cannot write {}", self.path.display()))
        })
    }
}

/// All stores the app may use, opened once at startup.
#[derive(Debug, Default)]
pub struct KvStores {
    stores: HashMap<String, Arc<FileStore>>,
}

impl KvStores {
    /// Opens every label used by the served components. Like Spin without a
    /// runtime config, only `default` exists; other labels stop the host.
    pub fn open(
        state_dir: &Path,
        labels: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        let mut stores = HashMap::new();
        for (component, label) in labels {
            if label != DEFAULT_STORE {
                bail!(
                    "unknown key_value_stores label {label:?} for component {component:?}: only \"default\" is defined (Spin needs a runtime config for other stores)"
                );
            }
            if stores.contains_key(&label) {
                continue;
            }
            let dir = state_dir.join("kv");
            fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create state directory {}", dir.display()))?;
            let store = FileStore::open(&dir.join(format!("{label}.json")))?;
            stores.insert(label, Arc::new(store));
        }
        Ok(Self { stores })
    }

    pub fn get(&self, label: &str) -> Option<Arc<FileStore>> {
        self.stores.get(label).cloned()
    }
}

/// The `store` resource (and wasi:keyvalue's `bucket`): a handle on one opened store.
pub struct StoreHandle {
    store: Arc<FileStore>,
}

/// wasi:keyvalue's `cas` resource: a key and the value it had when read.
pub struct CasHandle {
    store: Arc<FileStore>,
    key: String,
    seen: Option<Vec<u8>>,
}

mod host {
    use super::*;
    use crate::bindings::fermyon::spin::key_value::{Error, Host, HostStore};
    use crate::server::State;
    use wasmtime::component::Resource;

    type KvResult<T> = wasmtime::Result<Result<T, Error>>;

    impl Host for State {}

    impl State {
        fn store(&self, handle: &Resource<StoreHandle>) -> wasmtime::Result<Arc<FileStore>> {
            Ok(self.table.get(handle)?.store.clone())
        }
    }

    fn other(e: anyhow::Error) -> Error {
        Error::Other(format!("{e:#}"))
    }

    impl HostStore for State {
        async fn open(&mut self, label: String) -> KvResult<Resource<StoreHandle>> {
            // Spin checks the component's grant before whether the store exists.
            if !self.component.kv_allowed.contains(&label) {
                return Ok(Err(Error::AccessDenied));
            }
            let Some(store) = self.component.kv.get(&label) else {
                return Ok(Err(Error::NoSuchStore));
            };
            if self.open_stores >= MAX_OPEN_STORES {
                return Ok(Err(Error::StoreTableFull));
            }
            let handle = self.table.push(StoreHandle { store })?;
            self.open_stores += 1;
            Ok(Ok(handle))
        }

        async fn get(
            &mut self,
            this: Resource<StoreHandle>,
            key: String,
        ) -> KvResult<Option<Vec<u8>>> {
            Ok(Ok(self.store(&this)?.get(&key)))
        }

        async fn set(
            &mut self,
            this: Resource<StoreHandle>,
            key: String,
            value: Vec<u8>,
        ) -> KvResult<()> {
            let store = self.store(&this)?;
            // The write (fsync + rename) blocks; keep it off the async workers.
            let done = tokio::task::spawn_blocking(move || store.set(&key, value)).await?;
            Ok(done.map_err(other))
        }

        async fn delete(&mut self, this: Resource<StoreHandle>, key: String) -> KvResult<()> {
            let store = self.store(&this)?;
            let done = tokio::task::spawn_blocking(move || store.delete(&key)).await?;
            Ok(done.map_err(other))
        }

        async fn exists(&mut self, this: Resource<StoreHandle>, key: String) -> KvResult<bool> {
            Ok(Ok(self.store(&this)?.exists(&key)))
        }

        async fn get_keys(&mut self, this: Resource<StoreHandle>) -> KvResult<Vec<String>> {
            Ok(Ok(self.store(&this)?.keys()))
        }

        async fn drop(&mut self, this: Resource<StoreHandle>) -> wasmtime::Result<()> {
            self.table.delete(this)?;
            self.open_stores -= 1;
            Ok(())
        }
    }
}

mod wasi_host {
    use super::*;
    use crate::bindings::wasi::keyvalue::atomics::{self, CasError, HostCas};
    use crate::bindings::wasi::keyvalue::store::{self, Bucket, Error, HostBucket, KeyResponse};
    use crate::server::State;
    use wasmtime::component::Resource;

    type KvResult<T> = wasmtime::Result<Result<T, Error>>;

    fn other(e: anyhow::Error) -> Error {
        Error::Other(format!("{e:#}"))
    }

    impl State {
        fn bucket(&self, handle: &Resource<Bucket>) -> wasmtime::Result<Arc<FileStore>> {
            Ok(self.table.get(handle)?.store.clone())
        }
    }

    impl store::Host for State {
        async fn open(&mut self, identifier: String) -> KvResult<Resource<Bucket>> {
            // The same grant and stores as fermyon:spin/key-value.
            if !self.component.kv_allowed.contains(&identifier) {
                return Ok(Err(Error::AccessDenied));
            }
            let Some(store) = self.component.kv.get(&identifier) else {
                return Ok(Err(Error::NoSuchStore));
            };
            if self.open_stores >= MAX_OPEN_STORES {
                return Ok(Err(Error::Other("store table full".into())));
            }
            let handle = self.table.push(StoreHandle { store })?;
            self.open_stores += 1;
            Ok(Ok(handle))
        }
    }

    impl HostBucket for State {
        async fn get(&mut self, this: Resource<Bucket>, key: String) -> KvResult<Option<Vec<u8>>> {
            Ok(Ok(self.bucket(&this)?.get(&key)))
        }

        async fn set(
            &mut self,
            this: Resource<Bucket>,
            key: String,
            value: Vec<u8>,
        ) -> KvResult<()> {
            let store = self.bucket(&this)?;
            let done = tokio::task::spawn_blocking(move || store.set(&key, value)).await?;
            Ok(done.map_err(other))
        }

        async fn delete(&mut self, this: Resource<Bucket>, key: String) -> KvResult<()> {
            let store = self.bucket(&this)?;
            let done = tokio::task::spawn_blocking(move || store.delete(&key)).await?;
            Ok(done.map_err(other))
        }

        async fn exists(&mut self, this: Resource<Bucket>, key: String) -> KvResult<bool> {
            Ok(Ok(self.bucket(&this)?.exists(&key)))
        }

        async fn list_keys(
            &mut self,
            this: Resource<Bucket>,
            cursor: Option<String>,
        ) -> KvResult<KeyResponse> {
            // Like Spin: every key at once, no pagination.
            if cursor.is_some() {
                return Ok(Err(Error::Other("list_keys: cursor not supported".into())));
            }
            Ok(Ok(KeyResponse {
                keys: self.bucket(&this)?.keys(),
                cursor: None,
            }))
        }

        async fn drop(&mut self, this: Resource<Bucket>) -> wasmtime::Result<()> {
            self.table.delete(this)?;
            self.open_stores -= 1;
            Ok(())
        }
    }

    impl atomics::Host for State {
        async fn increment(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
            delta: i64,
        ) -> KvResult<i64> {
            let store = self.bucket(&bucket)?;
            let done = tokio::task::spawn_blocking(move || store.increment(&key, delta)).await?;
            Ok(done.map_err(other))
        }

        async fn swap(
            &mut self,
            cas: Resource<CasHandle>,
            value: Vec<u8>,
        ) -> wasmtime::Result<Result<(), CasError>> {
            let handle = self.table.delete(cas)?;
            let store = handle.store.clone();
            let key = handle.key.clone();
            let seen = handle.seen.clone();
            let done =
                tokio::task::spawn_blocking(move || store.swap_if(&key, seen.as_deref(), value))
                    .await?;
            match done {
                Ok(true) => Ok(Ok(())),
                Ok(false) => {
                    // A fresh handle on the value now stored, for a retry.
                    let seen = handle.store.get(&handle.key);
                    let again = self.table.push(CasHandle { seen, ..handle })?;
                    Ok(Err(CasError::CasFailed(again)))
                }
                Err(e) => Ok(Err(CasError::StoreError(other(e)))),
            }
        }
    }

    impl HostCas for State {
        async fn new(
            &mut self,
            bucket: Resource<Bucket>,
            key: String,
        ) -> KvResult<Resource<CasHandle>> {
            let store = self.bucket(&bucket)?;
            let seen = store.get(&key);
            Ok(Ok(self.table.push(CasHandle { store, key, seen })?))
        }

        async fn current(&mut self, this: Resource<CasHandle>) -> KvResult<Option<Vec<u8>>> {
            let handle = self.table.get_mut(&this)?;
            handle.seen = handle.store.get(&handle.key);
            Ok(Ok(handle.seen.clone()))
        }

        async fn drop(&mut self, this: Resource<CasHandle>) -> wasmtime::Result<()> {
            self.table.delete(this)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.json");
        {
            let s = FileStore::open(&path).unwrap();
            assert!(s.keys().is_empty());
            s.set("revoked:abc", b"1".to_vec()).unwrap();
            s.set("bin", vec![0, 255, 10, 13]).unwrap();
            s.set("gone", b"x".to_vec()).unwrap();
            s.delete("gone").unwrap();
            s.delete("never-existed").unwrap();
        }
        let s = FileStore::open(&path).unwrap();
        assert_eq!(s.get("revoked:abc").as_deref(), Some(&b"1"[..]));
        assert_eq!(s.get("bin"), Some(vec![0, 255, 10, 13]));
        assert!(!s.exists("gone"));
        assert_eq!(s.keys(), ["bin", "revoked:abc"]);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["default.json"]);
    }

    #[test]
    fn corrupt_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.json");
        fs::write(&path, b"{not json").unwrap();
        assert!(FileStore::open(&path).is_err());
    }

    #[test]
    fn failed_write_leaves_memory_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("default.json");
        // The parent directory does not exist, so persisting fails.
        let s = FileStore::open(&path).unwrap();
        assert!(s.set("k", b"v".to_vec()).is_err());
        assert!(!s.exists("k"));
    }

    #[test]
    fn concurrent_writers_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.json");
        let s = Arc::new(FileStore::open(&path).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..20 {
                        s.set(&format!("k{t}-{i}"), vec![t as u8, i as u8]).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let reopened = FileStore::open(&path).unwrap();
        assert_eq!(reopened.keys().len(), 160);
        assert_eq!(reopened.get("k7-19"), Some(vec![7, 19]));
    }

    #[test]
    fn concurrent_increments_hand_out_each_number_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(FileStore::open(&dir.path().join("default.json")).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..10)
                        .map(|_| s.increment("n", 1).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<i64> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=80).collect::<Vec<_>>());
        assert_eq!(s.increment("n", 0).unwrap(), 80);
        assert_eq!(s.get("n"), Some(80i64.to_le_bytes().to_vec()));
        s.set("text", b"abc".to_vec()).unwrap();
        assert!(s.increment("text", 1).is_err(), "not a counter");
    }

    #[test]
    fn swap_happens_only_on_the_value_seen() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(&dir.path().join("default.json")).unwrap();
        assert!(s.swap_if("k", None, b"a".to_vec()).unwrap());
        assert!(
            !s.swap_if("k", None, b"b".to_vec()).unwrap(),
            "no longer absent"
        );
        assert!(!s.swap_if("k", Some(b"x"), b"b".to_vec()).unwrap());
        assert!(s.swap_if("k", Some(b"a"), b"b".to_vec()).unwrap());
        assert_eq!(s.get("k"), Some(b"b".to_vec()));
    }

    #[test]
    fn only_default_label_exists() {
        let dir = tempfile::tempdir().unwrap();
        let kv = KvStores::open(dir.path(), [("gateway".into(), "default".into())]).unwrap();
        assert!(kv.get("default").is_some());
        let err = KvStores::open(dir.path(), [("gateway".into(), "sessions".into())]).unwrap_err();
        assert!(err.to_string().contains("sessions"), "{err}");
    }
}
