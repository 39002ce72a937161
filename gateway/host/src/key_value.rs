//! `fermyon:spin/key-value@2.0.0` and `wasi:keyvalue@0.2.0-draft2` (store
//! and atomics, on the same stores, as Spin serves them): the stores a
//! component lists in `key_value_stores`, persisted under the state directory.
//!
//! Each store is held in memory and persisted as an append-only journal
//! (`<state-dir>/kv/<label>.json`, see [`FileStore`] for the format): every
//! change appends one record and fsyncs it, so a write costs the size of its
//! entry, not of the store (Spin's SQLite and Redis stores also write one row).
//! When the journal has grown past twice the live data (plus a floor) it is
//! compacted: rewritten through a temporary file, fsync and a rename, so a
//! crash leaves either the old or the new journal; that full rewrite happens at
//! most once per as many appended bytes as the store holds, so it is amortized
//! O(1) per write. A mutex per store serializes writers, which keeps
//! concurrent requests consistent and makes `increment` and compare-and-swap
//! atomic (read, decide and write under the one lock), as Spin's SQLite store
//! does with its connection lock and a transaction. This suits the gateway's
//! state (revocations, caches, rule metadata); it is not a database. Two host
//! processes must not share one state directory.
//!
//! A runtime config file (the one `spin up --runtime-config-file` reads, see
//! [`crate::runtime_config`]) can put a store in Redis instead ([`redis`]):
//! that is how several instances share their state.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::runtime_config::{RuntimeConfig, StoreConfig};

mod redis;
use redis::RedisStore;
pub use redis::check_url as check_redis_url;

/// Spin defines only the `default` store unless a runtime config adds more.
pub const DEFAULT_STORE: &str = "default";

/// Per instance; Spin's host has the same kind of bound on open stores.
pub const MAX_OPEN_STORES: usize = 256;

/// First line of a journal. A file without it is the previous version's
/// format: one JSON object `{key: base64(value)}`, read as is and replaced by
/// a journal on the first write.
const MAGIC: &[u8] = b"edgeauth-kv-journal 1\n";

/// Compaction starts once the journal exceeds `2 × live + COMPACT_FLOOR` bytes.
const COMPACT_FLOOR: u64 = 1 << 20;

/// One journal line: a set (`v`: base64 value) or a delete (no `v`).
#[derive(Serialize, Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    k: std::borrow::Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<String>,
}

fn encode_record(key: &str, value: Option<&[u8]>) -> Vec<u8> {
    let mut line = serde_json::to_vec(&Record {
        k: key.into(),
        v: value.map(|v| B64.encode(v)),
    })
    .expect("a string record always serializes");
    line.push(b'\n');
    line
}

fn record_len(key: &str, value: &[u8]) -> u64 {
    encode_record(key, Some(value)).len() as u64
}

/// A store: the map in memory and its journal on disk.
///
/// Journal format: the line [`MAGIC`], then one JSON line per change,
/// `{"k":"<key>","v":"<base64 value>"}` for a set and `{"k":"<key>"}` for a
/// delete, applied in order. A final line without its newline is a record torn
/// by a crash (its write was never reported as done) and is dropped; any other
/// malformed line is an error.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    data: BTreeMap<String, Vec<u8>>,
    /// The journal open for appending; `None` when the file at `path` is not
    /// (yet) our journal (missing, the old format, or left unknown by a failed
    /// write): the next write rewrites it in full.
    journal: Option<fs::File>,
    /// Bytes of the journal that hold complete records.
    len: u64,
    /// What a compacted journal of `data` would take.
    live: u64,
    compact_floor: u64,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl FileStore {
    /// Opens (or starts) the store at `path`. A file that exists but cannot be
    /// read is an error rather than an empty store, so state is never
    /// silently dropped.
    pub fn open(path: &Path) -> Result<Self> {
        let mut journal = None;
        let mut len = 0;
        let data = match fs::read(path) {
            Ok(bytes) if bytes.starts_with(MAGIC) => {
                let (data, valid) = replay(&bytes)
                    .with_context(|| format!("corrupt key-value journal {}", path.display()))?;
                let file = fs::OpenOptions::new()
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                if valid < bytes.len() as u64 {
                    // Drop the torn record so the next append starts a line.
                    file.set_len(valid)
                        .and_then(|()| file.sync_all())
                        .with_context(|| format!("cannot truncate {}", path.display()))?;
                }
                journal = Some(file);
                len = valid;
                data
            }
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
        let live = MAGIC.len() as u64 + data.iter().map(|(k, v)| record_len(k, v)).sum::<u64>();
        Ok(Self {
            path: path.to_path_buf(),
            inner: Mutex::new(Inner {
                data,
                journal,
                len,
                live,
                compact_floor: COMPACT_FLOOR,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-updated
        // (each change is a single insert/remove), so poisoning is ignorable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.lock().data.get(key).cloned()
    }

    pub fn exists(&self, key: &str) -> bool {
        self.lock().data.contains_key(key)
    }

    pub fn keys(&self) -> Vec<String> {
        self.lock().data.keys().cloned().collect()
    }

    pub fn set(&self, key: &str, value: Vec<u8>) -> Result<()> {
        self.lock().write(&self.path, key, Some(value))
    }

    /// Adds `delta` to the counter at `key` (missing: 0) and returns the sum.
    /// Counters are 8 bytes, little-endian, as in Spin's SQLite store; any
    /// other value is an error, not a counter.
    pub fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        let mut inner = self.lock();
        let current = match inner.data.get(key) {
            None => 0,
            Some(v) => match <[u8; 8]>::try_from(v.as_slice()) {
                Ok(b) => i64::from_le_bytes(b),
                Err(_) => bail!("the value of {key:?} is not a counter"),
            },
        };
        let sum = current
            .checked_add(delta)
            .with_context(|| format!("counter {key:?} would overflow"))?;
        inner.write(&self.path, key, Some(sum.to_le_bytes().to_vec()))?;
        Ok(sum)
    }

    /// Stores `value` only if the key still holds `expected` (`None`: absent);
    /// `Ok(false)` when it changed meanwhile.
    pub fn swap_if(&self, key: &str, expected: Option<&[u8]>, value: Vec<u8>) -> Result<bool> {
        let mut inner = self.lock();
        if inner.data.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        inner.write(&self.path, key, Some(value))?;
        Ok(true)
    }

    pub fn delete(&self, key: &str) -> Result<()> {
        let mut inner = self.lock();
        if !inner.data.contains_key(key) {
            return Ok(());
        }
        inner.write(&self.path, key, None)
    }
}

/// Applies a journal's records; returns the map and how many bytes hold
/// complete records (less than the file when its last record is torn).
fn replay(bytes: &[u8]) -> Result<(BTreeMap<String, Vec<u8>>, u64)> {
    let mut data = BTreeMap::new();
    let mut pos = MAGIC.len();
    let mut line_no = 1;
    while pos < bytes.len() {
        let Some(end) = bytes[pos..].iter().position(|&b| b == b'\n') else {
            break; // torn final record
        };
        line_no += 1;
        let line = &bytes[pos..pos + end];
        let record: Record = serde_json::from_slice(line)
            .with_context(|| format!("bad record on line {line_no}"))?;
        match record.v {
            Some(v) => {
                let v = B64
                    .decode(v)
                    .with_context(|| format!("bad value on line {line_no}"))?;
                data.insert(record.k.into_owned(), v);
            }
            None => {
                data.remove(record.k.as_ref());
            }
        }
        pos += end + 1;
    }
    Ok((data, pos as u64))
}

impl Inner {
    /// Sets (`Some`) or deletes (`None`) `key`, in memory and on disk; on an
    /// error neither has changed (as far as anyone can observe: a record that
    /// reached the disk without being reported is cut off again).
    fn write(&mut self, path: &Path, key: &str, value: Option<Vec<u8>>) -> Result<()> {
        let old_len = self.data.get(key).map(|v| record_len(key, v)).unwrap_or(0);
        let new_len = value.as_ref().map(|v| record_len(key, v)).unwrap_or(0);
        if self.journal.is_none() {
            // Not our journal yet: write the whole store with the change.
            let previous = match &value {
                Some(v) => self.data.insert(key.to_string(), v.clone()),
                None => self.data.remove(key),
            };
            if let Err(e) = self.compact(path) {
                match previous {
                    Some(p) => self.data.insert(key.to_string(), p),
                    None => self.data.remove(key),
                };
                return Err(e);
            }
            return Ok(());
        }
        let record = encode_record(key, value.as_deref());
        let file = self.journal.as_mut().expect("checked above");
        let appended = file.write_all(&record).and_then(|()| file.sync_data());
        if let Err(e) = appended {
            // Cut off whatever part of the record got written; if even that
            // fails, the file's end is unknown and the next write rewrites it.
            if file
                .set_len(self.len)
                .and_then(|()| file.sync_data())
                .is_err()
            {
                self.journal = None;
            }
            return Err(anyhow::Error::new(e).context(format!("cannot write {}", path.display())));
        }
        self.len += record.len() as u64;
        self.live = self.live + new_len - old_len;
        match value {
            Some(v) => self.data.insert(key.to_string(), v),
            None => self.data.remove(key),
        };
        if self.len > 2 * self.live + self.compact_floor {
            // The change is durable already; a failed compaction only means
            // a longer journal until the next try.
            if let Err(e) = self.compact(path) {
                eprintln!("edgeauth: key-value compaction failed: {e:#}");
                self.compact_floor = self.compact_floor.saturating_add(self.len);
            }
        }
        Ok(())
    }

    /// Rewrites the journal as one set record per live key (temporary file,
    /// fsync, rename) and continues appending to the new file.
    fn compact(&mut self, path: &Path) -> Result<()> {
        let mut bytes = Vec::with_capacity(self.live as usize);
        bytes.extend_from_slice(MAGIC);
        for (k, v) in &self.data {
            bytes.extend_from_slice(&encode_record(k, Some(v)));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(
            ".{file_name}.{}.{}.tmp",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let write = || -> std::io::Result<fs::File> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            // Make the rename itself durable (best effort where directories
            // cannot be opened).
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
            fs::OpenOptions::new().append(true).open(path)
        };
        match write() {
            Ok(file) => {
                self.journal = Some(file);
                self.len = bytes.len() as u64;
                self.live = self.len;
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                // The rename may have happened: the file is ours no longer.
                self.journal = None;
                Err(anyhow::Error::new(e).context(format!("cannot write {}", path.display())))
            }
        }
    }
}
/// One opened store, wherever it lives. The file store answers reads from
/// memory and does its (fsync'ing) writes off the async workers; Redis is
/// asked over the network for everything.
#[derive(Debug, Clone)]
pub enum Store {
    File(Arc<FileStore>),
    Redis(Arc<RedisStore>),
}

impl Store {
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Store::File(f) => Ok(f.get(key)),
            Store::Redis(r) => r.get(key).await,
        }
    }

    pub async fn exists(&self, key: &str) -> Result<bool> {
        match self {
            Store::File(f) => Ok(f.exists(key)),
            Store::Redis(r) => r.exists(key).await,
        }
    }

    pub async fn keys(&self) -> Result<Vec<String>> {
        match self {
            Store::File(f) => Ok(f.keys()),
            Store::Redis(r) => r.keys().await,
        }
    }

    pub async fn set(&self, key: String, value: Vec<u8>) -> Result<()> {
        match self {
            // The write (fsync + rename) blocks; keep it off the async workers.
            Store::File(f) => blocking(f, move |f| f.set(&key, value)).await,
            Store::Redis(r) => r.set(&key, &value).await,
        }
    }

    pub async fn delete(&self, key: String) -> Result<()> {
        match self {
            Store::File(f) => blocking(f, move |f| f.delete(&key)).await,
            Store::Redis(r) => r.delete(&key).await,
        }
    }

    pub async fn increment(&self, key: String, delta: i64) -> Result<i64> {
        match self {
            Store::File(f) => blocking(f, move |f| f.increment(&key, delta)).await,
            Store::Redis(r) => r.increment(&key, delta).await,
        }
    }

    pub async fn swap_if(
        &self,
        key: String,
        expected: Option<Vec<u8>>,
        value: Vec<u8>,
    ) -> Result<bool> {
        match self {
            Store::File(f) => {
                blocking(f, move |f| f.swap_if(&key, expected.as_deref(), value)).await
            }
            Store::Redis(r) => r.swap_if(&key, expected.as_deref(), &value).await,
        }
    }

    fn describe(&self) -> String {
        match self {
            Store::File(f) => format!("file {}", f.path.display()),
            Store::Redis(r) => r.describe(),
        }
    }
}

async fn blocking<T: Send + 'static>(
    store: &Arc<FileStore>,
    op: impl FnOnce(&FileStore) -> Result<T> + Send + 'static,
) -> Result<T> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || op(&store))
        .await
        .context("key-value write task failed")?
}

/// All stores the app may use, opened once at startup.
#[derive(Debug, Default)]
pub struct KvStores {
    stores: HashMap<String, Store>,
}

impl KvStores {
    /// Opens every label used by the served components. Like Spin, only
    /// `default` exists (a local store) unless the runtime config defines
    /// more or moves it; other labels stop the host.
    pub fn open(
        state_dir: &Path,
        labels: impl IntoIterator<Item = (String, String)>,
        config: &RuntimeConfig,
    ) -> Result<Self> {
        let mut stores = HashMap::new();
        for (component, label) in labels {
            if stores.contains_key(&label) {
                continue;
            }
            let where_ = match config.key_value_stores.get(&label) {
                Some(c) => c.clone(),
                None if label == DEFAULT_STORE => StoreConfig::Local,
                None => bail!(
                    "unknown key_value_stores label {label:?} for component {component:?}: only \"default\" is defined (define [key_value_store.{label}] in a runtime config file for other stores)"
                ),
            };
            let store = match where_ {
                StoreConfig::Local => {
                    let dir = state_dir.join("kv");
                    fs::create_dir_all(&dir).with_context(|| {
                        format!("cannot create state directory {}", dir.display())
                    })?;
                    Store::File(Arc::new(FileStore::open(
                        &dir.join(format!("{label}.json")),
                    )?))
                }
                StoreConfig::Redis { url } => Store::Redis(Arc::new(
                    RedisStore::new(&label, &url)
                        .with_context(|| format!("key_value_store.{label}.url"))?,
                )),
            };
            stores.insert(label, store);
        }
        Ok(Self { stores })
    }

    pub fn get(&self, label: &str) -> Option<Store> {
        self.stores.get(label).cloned()
    }

    /// One line per store: its label and where it lives (startup log).
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .stores
            .iter()
            .map(|(label, s)| format!("{label:?}: {}", s.describe()))
            .collect();
        lines.sort();
        lines
    }

    /// Tries every remote store once (startup), so an unreachable one is in
    /// the log (the store logs the failure) before a request needs it; the
    /// instance still starts and fails closed on requests that need the store
    /// until it is reachable.
    pub async fn check_reachable(&self) {
        for store in self.stores.values() {
            if let Store::Redis(r) = store {
                let _ = r.ping().await;
            }
        }
    }
}

/// The `store` resource (and wasi:keyvalue's `bucket`): a handle on one opened store.
pub struct StoreHandle {
    store: Store,
}

/// wasi:keyvalue's `cas` resource: a key and the value it had when read.
pub struct CasHandle {
    store: Store,
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
        fn store(&self, handle: &Resource<StoreHandle>) -> wasmtime::Result<Store> {
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
            Ok(self.store(&this)?.get(&key).await.map_err(other))
        }

        async fn set(
            &mut self,
            this: Resource<StoreHandle>,
            key: String,
            value: Vec<u8>,
        ) -> KvResult<()> {
            Ok(self.store(&this)?.set(key, value).await.map_err(other))
        }

        async fn delete(&mut self, this: Resource<StoreHandle>, key: String) -> KvResult<()> {
            Ok(self.store(&this)?.delete(key).await.map_err(other))
        }

        async fn exists(&mut self, this: Resource<StoreHandle>, key: String) -> KvResult<bool> {
            Ok(self.store(&this)?.exists(&key).await.map_err(other))
        }

        async fn get_keys(&mut self, this: Resource<StoreHandle>) -> KvResult<Vec<String>> {
            Ok(self.store(&this)?.keys().await.map_err(other))
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
        fn bucket(&self, handle: &Resource<Bucket>) -> wasmtime::Result<Store> {
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
            Ok(self.bucket(&this)?.get(&key).await.map_err(other))
        }

        async fn set(
            &mut self,
            this: Resource<Bucket>,
            key: String,
            value: Vec<u8>,
        ) -> KvResult<()> {
            Ok(self.bucket(&this)?.set(key, value).await.map_err(other))
        }

        async fn delete(&mut self, this: Resource<Bucket>, key: String) -> KvResult<()> {
            Ok(self.bucket(&this)?.delete(key).await.map_err(other))
        }

        async fn exists(&mut self, this: Resource<Bucket>, key: String) -> KvResult<bool> {
            Ok(self.bucket(&this)?.exists(&key).await.map_err(other))
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
            Ok(self
                .bucket(&this)?
                .keys()
                .await
                .map(|keys| KeyResponse { keys, cursor: None })
                .map_err(other))
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
            Ok(self
                .bucket(&bucket)?
                .increment(key, delta)
                .await
                .map_err(other))
        }

        async fn swap(
            &mut self,
            cas: Resource<CasHandle>,
            value: Vec<u8>,
        ) -> wasmtime::Result<Result<(), CasError>> {
            let handle = self.table.delete(cas)?;
            let done = handle
                .store
                .swap_if(handle.key.clone(), handle.seen.clone(), value)
                .await;
            match done {
                Ok(true) => Ok(Ok(())),
                Ok(false) => {
                    // A fresh handle on the value now stored, for a retry.
                    let seen = match handle.store.get(&handle.key).await {
                        Ok(seen) => seen,
                        Err(e) => return Ok(Err(CasError::StoreError(other(e)))),
                    };
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
            let seen = match store.get(&key).await {
                Ok(seen) => seen,
                Err(e) => return Ok(Err(other(e))),
            };
            Ok(Ok(self.table.push(CasHandle { store, key, seen })?))
        }

        async fn current(&mut self, this: Resource<CasHandle>) -> KvResult<Option<Vec<u8>>> {
            let (store, key) = {
                let handle = self.table.get(&this)?;
                (handle.store.clone(), handle.key.clone())
            };
            let seen = match store.get(&key).await {
                Ok(seen) => seen,
                Err(e) => return Ok(Err(other(e))),
            };
            self.table.get_mut(&this)?.seen = seen.clone();
            Ok(Ok(seen))
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

    /// The store's file, replayed independently of the store that wrote it.
    fn on_disk(path: &Path) -> BTreeMap<String, Vec<u8>> {
        let bytes = fs::read(path).unwrap();
        assert!(bytes.starts_with(MAGIC));
        replay(&bytes).unwrap().0
    }

    fn contents(s: &FileStore) -> BTreeMap<String, Vec<u8>> {
        s.lock().data.clone()
    }

    #[test]
    fn journal_replay_equals_memory_after_many_sets_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.json");
        let s = FileStore::open(&path).unwrap();
        // Keys with characters JSON must escape, binary values, overwrites,
        // deletes of present and absent keys, counters and swaps.
        for i in 0..300u32 {
            let key = format!("k{}\"\n\u{e9}/{}", i % 37, i % 5);
            match i % 4 {
                0 | 1 => s.set(&key, (0..(i % 50) as u8).collect()).unwrap(),
                2 => s.delete(&key).unwrap(),
                _ => {
                    s.increment(&format!("n{}", i % 3), 1).unwrap();
                }
            }
            if i % 7 == 0 {
                let seen = s.get("cas");
                assert!(
                    s.swap_if("cas", seen.as_deref(), i.to_le_bytes().to_vec())
                        .unwrap()
                );
            }
        }
        s.delete("absent").unwrap();
        let memory = contents(&s);
        assert!(memory.len() > 10);
        assert_eq!(on_disk(&path), memory);
        let reopened = FileStore::open(&path).unwrap();
        assert_eq!(contents(&reopened), memory);
    }

    #[test]
    fn torn_final_record_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.json");
        {
            let s = FileStore::open(&path).unwrap();
            s.set("a", b"1".to_vec()).unwrap();
            s.set("b", b"2".to_vec()).unwrap();
        }
        let whole = fs::read(&path).unwrap();
        // A crash in the middle of appending a record (never reported done).
        let torn = encode_record("c", Some(b"3"));
        let mut bytes = whole.clone();
        bytes.extend_from_slice(&torn[..torn.len() - 3]);
        fs::write(&path, &bytes).unwrap();
        let s = FileStore::open(&path).unwrap();
        assert_eq!(s.keys(), ["a", "b"]);
        assert_eq!(fs::read(&path).unwrap(), whole, "torn tail cut off");
        // Appending continues on a clean line.
        s.set("d", b"4".to_vec()).unwrap();
        drop(s);
        assert_eq!(FileStore::open(&path).unwrap().keys(), ["a", "b", "d"]);
        // A malformed record that is not the torn tail is an error.
        let mut bytes = whole.clone();
        bytes.extend_from_slice(b"{\"k\":\n");
        bytes.extend_from_slice(&encode_record("e", Some(b"5")));
        fs::write(&path, &bytes).unwrap();
        assert!(FileStore::open(&path).is_err());
    }

    #[test]
    fn compaction_bounds_the_journal_and_keeps_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.json");
        let s = FileStore::open(&path).unwrap();
        s.lock().compact_floor = 4096;
        s.set("keep", b"kept".to_vec()).unwrap();
        let mut max_len = 0;
        let mut compactions = 0;
        for i in 0..500u32 {
            let before = fs::metadata(&path).unwrap().len();
            s.set("hot", vec![i as u8; 100]).unwrap();
            let after = fs::metadata(&path).unwrap().len();
            if after < before {
                compactions += 1;
            }
            max_len = max_len.max(after);
        }
        assert!(compactions >= 5, "{compactions} compactions");
        let live = s.lock().live;
        assert!(max_len <= 2 * live + 4096 + 200, "{max_len} vs live {live}");
        assert_eq!(on_disk(&path), contents(&s));
        drop(s);
        let s = FileStore::open(&path).unwrap();
        assert_eq!(s.get("keep"), Some(b"kept".to_vec()));
        assert_eq!(s.get("hot"), Some(vec![243; 100]));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["default.json"], "no temporary files left");
    }

    #[test]
    fn old_single_json_format_is_read_and_converted_on_first_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.json");
        fs::write(&path, br#"{"a":"MQ==","bin":"AP8KDQ=="}"#).unwrap();
        let s = FileStore::open(&path).unwrap();
        assert_eq!(s.get("a"), Some(b"1".to_vec()));
        assert_eq!(s.get("bin"), Some(vec![0, 255, 10, 13]));
        s.set("c", b"3".to_vec()).unwrap();
        drop(s);
        assert_eq!(on_disk(&path).keys().collect::<Vec<_>>(), ["a", "bin", "c"]);
        let s = FileStore::open(&path).unwrap();
        assert_eq!(s.get("bin"), Some(vec![0, 255, 10, 13]));
    }

    #[test]
    fn a_write_costs_its_entry_not_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("default.json");
        // 100,000 keys (about 10 MB), written as the previous version did.
        let big: BTreeMap<String, String> = (0..100_000)
            .map(|i| (format!("assertion:default:{i:08}"), B64.encode([b'x'; 64])))
            .collect();
        fs::write(&path, serde_json::to_vec(&big).unwrap()).unwrap();
        let s = FileStore::open(&path).unwrap();
        s.set("first", b"converts the file".to_vec()).unwrap();
        let store_size = fs::metadata(&path).unwrap().len();
        assert!(store_size > 5_000_000, "{store_size}");
        for i in 0..20 {
            let key = format!("revoked-session:default:{i}");
            let value = b"1767225600".to_vec();
            let entry = key.len() + value.len();
            let before = fs::metadata(&path).unwrap().len();
            s.set(&key, value).unwrap();
            let grew = fs::metadata(&path).unwrap().len() - before;
            // The record: key, base64 value and a few bytes of framing.
            assert!(
                grew as usize <= entry * 4 / 3 + 20,
                "grew {grew} for {entry}"
            );
        }
        let before = fs::metadata(&path).unwrap().len();
        s.delete("assertion:default:00000042").unwrap();
        assert!(fs::metadata(&path).unwrap().len() - before < 60);
        drop(s);
        let s = FileStore::open(&path).unwrap();
        assert_eq!(s.keys().len(), 100_000 + 1 + 20 - 1);
    }

    #[test]
    fn only_default_label_exists() {
        let dir = tempfile::tempdir().unwrap();
        let none = RuntimeConfig::default();
        let kv = KvStores::open(dir.path(), [("gateway".into(), "default".into())], &none).unwrap();
        assert!(matches!(kv.get("default"), Some(Store::File(_))));
        let err =
            KvStores::open(dir.path(), [("gateway".into(), "sessions".into())], &none).unwrap_err();
        assert!(err.to_string().contains("sessions"), "{err}");
    }

    #[test]
    fn the_runtime_config_places_stores() {
        let dir = tempfile::tempdir().unwrap();
        let config = RuntimeConfig::parse(
            "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:1\"\n\
             [key_value_store.sessions]\ntype = \"spin\"\n",
        )
        .unwrap();
        let labels = [
            ("gateway".to_string(), "default".to_string()),
            ("gateway".to_string(), "sessions".to_string()),
        ];
        // Nothing connects at open: an unreachable Redis is a request-time error.
        let kv = KvStores::open(dir.path(), labels, &config).unwrap();
        assert!(matches!(kv.get("default"), Some(Store::Redis(_))));
        assert!(matches!(kv.get("sessions"), Some(Store::File(_))));
        assert_eq!(
            kv.describe(),
            [
                "\"default\": Redis at 127.0.0.1:1".to_string(),
                format!(
                    "\"sessions\": file {}",
                    dir.path().join("kv").join("sessions.json").display()
                )
            ]
        );
    }
}
