//! The Redis backend of a key-value store (runtime config `type = "redis"`),
//! with the semantics Spin's Redis store gives the same calls, so instances
//! under Spin and under this host can share one Redis: keys as they are (no
//! prefix), values as bytes, `increment` is `INCRBY` (the counter is Redis's
//! decimal text; the gateway reads counters only through `increment(0)`), key
//! listing is every key of the database.
//!
//! One multiplexed connection carries every request's commands. When it
//! breaks (Redis stopped or restarted) it is dropped and the next command
//! connects afresh: while Redis is down each command fails at once (connection
//! refused) or after [`CONNECT_TIMEOUT`], and the gateway fails closed on the
//! error; once Redis is back, the next command succeeds without a restart of
//! the instance. The first command to fail and the first to succeed again are
//! logged, not every one in between.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, RedisError};

/// How long a connection attempt may take before the command fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a command may wait for its answer (a hung Redis) before it fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Keys fetched per `SCAN` step when listing keys.
const SCAN_COUNT: u32 = 1000;

/// Compare-and-swap in one step on the server: sets `KEYS[1]` to `ARGV[3]`
/// only if it still holds `ARGV[2]` (`ARGV[1]` = "1") or is still absent
/// (`ARGV[1]` = "0"). Lua scripts run atomically in Redis.
const SWAP_IF: &str = r#"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
"#;

/// Refuses what cannot work before anything connects: a URL that does not
/// parse, a scheme that is not Redis, TLS (not built into the host).
pub fn check_url(url: &str) -> Result<Client> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some("redis" | "valkey" | "redis+unix" | "valkey+unix" | "unix") => {}
        Some("rediss" | "valkeys") => bail!(
            "{url:?}: TLS (rediss://) is not supported by the edgeauth host's Redis client; use Spin, or a redis:// URL on a trusted network"
        ),
        _ => bail!("{url:?} is not a Redis URL (redis://HOST:PORT[/DB])"),
    }
    let client = Client::open(url).map_err(|e| anyhow::anyhow!("{url:?}: {e}"))?;
    if !client.get_connection_info().addr().is_supported() {
        bail!("{url:?}: this kind of Redis address is not supported here");
    }
    Ok(client)
}

pub struct RedisStore {
    label: String,
    /// `host:port` (or the socket path): what the logs name, never the URL
    /// (it may carry a password).
    addr: String,
    client: Client,
    config: AsyncConnectionConfig,
    /// The live connection and its number (so a failure on an old one does
    /// not drop a newer one).
    conn: Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    down: AtomicBool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("label", &self.label)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    pub fn new(label: &str, url: &str) -> Result<Self> {
        let client = check_url(url)?;
        Ok(Self {
            label: label.to_string(),
            addr: client.get_connection_info().addr().to_string(),
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT)),
            conn: Mutex::new(None),
            generation: AtomicU64::new(0),
            down: AtomicBool::new(false),
        })
    }

    /// What the startup log says about this store.
    pub fn describe(&self) -> String {
        format!("Redis at {}", self.addr)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<(u64, MultiplexedConnection)>> {
        // The slot only ever holds a whole value; a poisoned lock is harmless.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn connection(&self) -> Result<(u64, MultiplexedConnection), RedisError> {
        if let Some(live) = self.slot().clone() {
            return Ok(live);
        }
        // Concurrent callers may each connect; the first to finish is kept
        // (no lock held across the await, so a slow connect stalls no one else).
        let fresh = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        let mut slot = self.slot();
        Ok(slot
            .get_or_insert_with(|| (self.generation.fetch_add(1, Ordering::Relaxed) + 1, fresh))
            .clone())
    }

    /// Runs `cmd`; once more on a fresh connection if the first attempt
    /// failed on a broken one and `retry` (the command is idempotent: a
    /// command that may have run before its connection broke must not run twice).
    async fn run<T: FromRedisValue>(&self, cmd: &Cmd, retry: bool) -> Result<T> {
        let mut attempt = self.attempt(cmd).await;
        if retry && matches!(&attempt, Err((true, _))) {
            attempt = self.attempt(cmd).await;
        }
        match attempt {
            Ok(v) => {
                if self.down.swap(false, Ordering::Relaxed) {
                    eprintln!(
                        "edgeauth: key-value store {:?} ({}) is reachable again",
                        self.label,
                        self.describe()
                    );
                }
                Ok(v)
            }
            Err((_, e)) => {
                if !self.down.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "edgeauth: key-value store {:?} ({}) unavailable: {e}; requests that need it fail until it is back",
                        self.label,
                        self.describe()
                    );
                }
                Err(anyhow::Error::new(e).context(format!(
                    "key-value store {:?} ({})",
                    self.label,
                    self.describe()
                )))
            }
        }
    }

    /// One try; the error says whether it was a connection that broke (the
    /// connection is dropped then) rather than an answer from Redis.
    async fn attempt<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, (bool, RedisError)> {
        let (generation, mut conn) = self.connection().await.map_err(|e| (false, e))?;
        cmd.query_async(&mut conn).await.map_err(|e| {
            let broken = e.is_io_error()
                || e.is_connection_dropped()
                || e.is_timeout()
                || e.is_unrecoverable_error();
            if broken {
                let mut slot = self.slot();
                if slot.as_ref().is_some_and(|(g, _)| *g == generation) {
                    *slot = None;
                }
            }
            (broken, e)
        })
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.run(redis::cmd("GET").arg(key), true).await
    }

    pub async fn exists(&self, key: &str) -> Result<bool> {
        self.run(redis::cmd("EXISTS").arg(key), true).await
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        self.run(redis::cmd("SET").arg(key).arg(value), true).await
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        self.run::<i64>(redis::cmd("DEL").arg(key), true)
            .await
            .map(drop)
    }

    /// Every key, sorted (as the file store lists them). `SCAN` rather than
    /// `KEYS *`: Redis keeps serving others between steps.
    pub async fn keys(&self) -> Result<Vec<String>> {
        let mut keys = BTreeSet::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .run(
                    redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(SCAN_COUNT),
                    true,
                )
                .await?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys.into_iter().collect());
            }
            cursor = next;
        }
    }

    /// Adds `delta` to the counter at `key` (missing: 0) and returns the sum:
    /// Redis's `INCRBY`, atomic across every instance on this Redis. A value
    /// that is not a counter is an error from Redis.
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64> {
        self.run(redis::cmd("INCRBY").arg(key).arg(delta), false)
            .await
            .with_context(|| format!("increment {key:?}"))
    }

    /// Stores `value` only if `key` still holds `expected` (`None`: absent),
    /// atomically on the server; `Ok(false)` when it changed meanwhile.
    pub async fn swap_if(&self, key: &str, expected: Option<&[u8]>, value: &[u8]) -> Result<bool> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(SWAP_IF)
            .arg(1)
            .arg(key)
            .arg(if expected.is_some() { "1" } else { "0" })
            .arg(expected.unwrap_or_default())
            .arg(value);
        let swapped: i64 = self.run(&cmd, false).await?;
        Ok(swapped == 1)
    }

    /// Tries the connection now (startup), so a wrong address shows up in
    /// the log before the first request needs the store.
    pub async fn ping(&self) -> Result<()> {
        self.run::<String>(&redis::cmd("PING"), false)
            .await
            .map(drop)
    }
}

/// Against a real `redis-server` (Debian's, as the e2e tests use), when one
/// is on PATH; without it these tests say so and pass.
#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;

    struct Server {
        child: Child,
        port: u16,
        _dir: tempfile::TempDir,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    /// A Redis on `port` (in memory, loopback only), ready to answer; `None`
    /// without redis-server.
    fn start(port: u16) -> Option<Server> {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("no redis-server on PATH: Redis store tests skipped");
            return None;
        };
        let server = Server {
            child,
            port,
            _dir: dir,
        };
        // Ready once it answers PING.
        let client = Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
        for _ in 0..200 {
            if let Ok(mut c) = client.get_connection()
                && redis::cmd("PING").query::<String>(&mut c).is_ok()
            {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("redis-server on port {port} did not answer");
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn same_semantics_as_the_file_store() {
        let Some(server) = start(free_port()) else {
            return;
        };
        runtime().block_on(async {
            let s =
                RedisStore::new("default", &format!("redis://127.0.0.1:{}", server.port)).unwrap();
            s.ping().await.unwrap();
            assert!(s.keys().await.unwrap().is_empty());
            assert_eq!(s.get("missing").await.unwrap(), None);
            s.set("b", &[0, 255, 10, 13]).await.unwrap();
            s.set("a", b"1").await.unwrap();
            assert_eq!(s.get("b").await.unwrap(), Some(vec![0, 255, 10, 13]));
            assert!(s.exists("a").await.unwrap());
            s.delete("a").await.unwrap();
            s.delete("never-existed").await.unwrap();
            assert!(!s.exists("a").await.unwrap());
            for i in 0..2500 {
                s.set(&format!("k{i:04}"), b"x").await.unwrap();
            }
            let keys = s.keys().await.unwrap();
            assert_eq!(keys.len(), 2501, "every key, once, across SCAN steps");
            assert_eq!(keys[0], "b");
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted");

            assert_eq!(s.increment("n", 5).await.unwrap(), 5);
            assert_eq!(s.increment("n", 0).await.unwrap(), 5);
            assert_eq!(s.increment("n", -7).await.unwrap(), -2);
            assert!(s.increment("b", 1).await.is_err(), "not a counter");

            assert!(s.swap_if("c", None, b"v1").await.unwrap());
            assert!(
                !s.swap_if("c", None, b"v2").await.unwrap(),
                "no longer absent"
            );
            assert!(!s.swap_if("c", Some(b"other"), b"v2").await.unwrap());
            assert!(s.swap_if("c", Some(b"v1"), b"").await.unwrap());
            assert!(
                s.swap_if("c", Some(b""), b"v3").await.unwrap(),
                "empty value is present"
            );
            assert_eq!(s.get("c").await.unwrap(), Some(b"v3".to_vec()));
        });
    }

    #[test]
    fn concurrent_increments_from_two_stores_hand_out_each_number_once() {
        let Some(server) = start(free_port()) else {
            return;
        };
        let url = format!("redis://127.0.0.1:{}", server.port);
        // Two stores: two instances on one Redis.
        let stores = [
            Arc::new(RedisStore::new("default", &url).unwrap()),
            Arc::new(RedisStore::new("default", &url).unwrap()),
        ];
        let mut all: Vec<i64> = runtime().block_on(async {
            let tasks: Vec<_> = (0..200)
                .map(|i| {
                    let s = stores[i % 2].clone();
                    tokio::spawn(async move { s.increment("marker", 1).await.unwrap() })
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        all.sort_unstable();
        assert_eq!(all, (1..=200).collect::<Vec<_>>());
    }

    #[test]
    fn fails_while_redis_is_down_and_recovers_when_it_is_back() {
        let port = free_port();
        let Some(server) = start(port) else {
            return;
        };
        let rt = runtime();
        let s = RedisStore::new("default", &format!("redis://127.0.0.1:{port}")).unwrap();
        rt.block_on(async {
            s.set("kept", b"1").await.unwrap();
        });
        drop(server);
        rt.block_on(async {
            let e = s.exists("kept").await.unwrap_err();
            assert!(format!("{e:#}").contains("127.0.0.1"), "{e:#}");
            assert!(s.increment("n", 1).await.is_err());
        });
        let _server = start(port).unwrap();
        rt.block_on(async {
            // Same port, fresh (empty) Redis: the store reconnects by itself.
            assert!(!s.exists("kept").await.unwrap());
            s.set("again", b"2").await.unwrap();
            assert_eq!(s.get("again").await.unwrap(), Some(b"2".to_vec()));
        });
    }

    #[test]
    fn urls() {
        assert!(check_url("redis://127.0.0.1:6379").is_ok());
        assert!(check_url("redis://:secret@127.0.0.1:6379/2").is_ok());
        let s = RedisStore::new("default", "redis://user:secret@127.0.0.1:6379").unwrap();
        assert!(!format!("{s:?}{}", s.describe()).contains("secret"));
        assert!(check_url("rediss://127.0.0.1").is_err());
        assert!(check_url("127.0.0.1:6379").is_err());
        assert!(check_url("redis://127.0.0.1:99999").is_err());
    }
}
