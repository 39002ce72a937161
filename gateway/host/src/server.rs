//! The HTTP trigger: hyper accepts connections on loopback and every request
//! runs in a fresh store and instance of the routed component (Spin's
//! per-request isolation), prepared once with `ProxyPre`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::rt::{Read as _, Write as _};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimits,
    StoreLimitsBuilder,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use crate::bindings::EdgeauthHost;
use crate::key_value::KvStores;
use crate::manifest::Route;
use crate::outbound::{OutboundHooks, OutboundPolicy};
use crate::variables::ComponentVariables;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// How often the epoch advances; a running guest yields to the scheduler at
/// each tick so the per-request deadline can cancel CPU-bound code.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Spin serves this itself, before routing.
const HEALTH_PATH: &str = "/.well-known/spin/health";

/// Client-supplied copies of the headers Spin sets are dropped so a client
/// cannot spoof, e.g., its address.
const SPIN_HEADERS: [&str; 7] = [
    "spin-full-url",
    "spin-path-info",
    "spin-matched-route",
    "spin-base-path",
    "spin-raw-component-route",
    "spin-component-route",
    "spin-client-addr",
];

#[derive(Clone, Debug)]
pub struct Limits {
    pub memory_bytes: usize,
    pub request_timeout: Duration,
    /// Instance slots for the pooling allocator; `None` allocates on demand.
    pub pooling: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            request_timeout: Duration::from_secs(60),
            pooling: None,
        }
    }
}

pub fn engine(limits: &Limits) -> Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    if let Some(slots) = limits.pooling {
        let mut pool = PoolingAllocationConfig::new();
        // A spin-sdk component with the WASI adapter holds a handful of core
        // instances, memories and tables per component instance.
        pool.total_component_instances(slots)
            .total_core_instances(slots * 8)
            .total_memories(slots * 4)
            .total_tables(slots * 4)
            .total_stacks(slots)
            .max_memory_size(limits.memory_bytes);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    if std::env::var_os("EDGEAUTH_PERFMAP").is_some_and(|v| v == "1") {
        // Profiling: `perf` names guest functions from /tmp/perf-<pid>.map.
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    Ok(Engine::new(&config)?)
}

/// Per-request store data.
pub struct State {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    pub(crate) table: ResourceTable,
    limits: StoreLimits,
    pub(crate) component: Arc<ComponentRuntime>,
    pub(crate) open_stores: usize,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for State {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

pub fn linker(engine: &Engine) -> Result<Linker<State>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
    EdgeauthHost::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// Everything one component's requests share.
pub struct ComponentRuntime {
    pub id: String,
    pub pre: ProxyPre<State>,
    pub variables: ComponentVariables,
    pub kv_allowed: HashSet<String>,
    pub kv: Arc<KvStores>,
    pub outbound: Arc<OutboundPolicy>,
    pub environment: Vec<(String, String)>,
    /// `files` mounts: (host directory, guest path), read-only.
    pub files: Vec<(std::path::PathBuf, String)>,
}

pub struct RouteEntry {
    pub route: Route,
    pub component: Arc<ComponentRuntime>,
}

pub struct Server {
    pub engine: Engine,
    pub routes: Vec<RouteEntry>,
    pub limits: Limits,
    /// The components' wall clock (see `clock`).
    pub clock: crate::clock::Clock,
    /// `None`: the components' output and one line per request go to the
    /// host's stderr. `Some`: the components' output is kept here and
    /// requests are not logged (`rule test` in the gateway shows it only when
    /// something went wrong).
    pub capture: Option<MemoryOutputPipe>,
}

impl Server {
    fn route(&self, path: &str) -> Option<&RouteEntry> {
        self.routes
            .iter()
            .filter_map(|r| r.route.match_rank(path).map(|rank| (rank, r)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, r)| r)
    }

    /// Serves until SIGINT/SIGTERM, then lets open requests finish (bounded).
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> Result<()> {
        self.serve_until(listener, shutdown_signal()).await
    }

    /// Serves until `stop` completes (its value names why, for the log line),
    /// then lets open requests finish (bounded).
    pub async fn serve_until(
        self: Arc<Self>,
        listener: TcpListener,
        stop: impl std::future::Future<Output = &'static str>,
    ) -> Result<()> {
        // A plain thread, not a tokio task: a guest spinning on a runtime
        // worker must not be able to starve the clock that interrupts it.
        let engine = self.engine.weak();
        std::thread::Builder::new()
            .name("epoch-ticker".into())
            .spawn(move || {
                while let Some(e) = engine.upgrade() {
                    e.increment_epoch();
                    drop(e);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;

        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        let shutdown = stop;
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Transient (EMFILE, aborted handshakes): keep serving.
                        eprintln!("edgeauth: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                signal = &mut shutdown => {
                    if self.capture.is_none() {
                        eprintln!("edgeauth: {signal}, shutting down");
                    }
                    break;
                }
            };
            // Responses are streamed in several writes; without this, Nagle's
            // algorithm holds the last one until the client's delayed ACK.
            let _ = stream.set_nodelay(true);
            while connections.try_join_next().is_some() {}
            let server = self.clone();
            let mut stop_rx = stop_rx.clone();
            connections.spawn(async move {
                let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    let server = server.clone();
                    close_after_refused_upgrade(&mut req);
                    async move { Ok::<_, Infallible>(server.handle(req, peer).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                tokio::pin!(conn);
                let result = tokio::select! {
                    r = conn.as_mut() => r,
                    _ = stop_rx.changed() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(e) = result
                    && !e.is_incomplete_message()
                {
                    eprintln!("edgeauth: connection from {peer}: {e}");
                }
            });
        }
        drop(listener);
        let _ = stop_tx.send(true);
        let drain = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            eprintln!("edgeauth: closing connections still open after 10 s");
            connections.abort_all();
        }
        Ok(())
    }

    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ResponseBody> {
        let start = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let response = self.dispatch(req, peer).await;
        if self.capture.is_some() {
            return response;
        }
        eprintln!(
            "{method} {path} {} {}ms",
            response.status().as_u16(),
            start.elapsed().as_millis()
        );
        response
    }

    async fn dispatch(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ResponseBody> {
        let path = req.uri().path().to_string();
        if path == HEALTH_PATH {
            return text(StatusCode::OK, "OK");
        }
        let Some(entry) = self.route(&path) else {
            return text(StatusCode::NOT_FOUND, "Not Found");
        };
        let req = match prepare_request(req, &entry.route, peer) {
            Ok(r) => r,
            Err(e) => {
                return problem(StatusCode::BAD_REQUEST, "Bad Request", "bad_request", &e);
            }
        };
        match self.run(entry.component.clone(), req).await {
            Ok(resp) => resp,
            Err(e) => problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                "component_failed",
                &format_args!("component {:?}: {e:#}", entry.component.id),
            ),
        }
    }

    async fn run(
        &self,
        component: Arc<ComponentRuntime>,
        req: Request<Incoming>,
    ) -> Result<Response<ResponseBody>> {
        let mut wasi = WasiCtxBuilder::new();
        // Component output goes to the host's stderr, which keeps stdout free
        // for tools that parse the host's own output.
        match &self.capture {
            Some(pipe) => wasi.stdout(pipe.clone()).stderr(pipe.clone()),
            None => wasi.stdout(tokio::io::stderr()).stderr(tokio::io::stderr()),
        };
        wasi.envs(&component.environment);
        self.clock.apply(&mut wasi);
        for (dir, guest) in &component.files {
            wasi.preopened_dir(dir, guest, wasmtime_wasi::FsPerms::ReadOnly)?;
        }
        let state = State {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                policy: component.outbound.clone(),
            },
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.memory_bytes)
                .build(),
            component: component.clone(),
            open_stores: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Each tick the guest yields to the scheduler (so other requests on
        // this worker progress); past the deadline it is interrupted, which
        // stops CPU-bound code even if the async timeout below cannot fire.
        let deadline = Instant::now() + self.limits.request_timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(wasmtime::UpdateDeadline::Interrupt)
            } else {
                Ok(wasmtime::UpdateDeadline::Yield(1))
            }
        });

        let (tx, rx) = oneshot::channel();
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)?;
        let outparam = store.data_mut().http().new_response_outparam(tx)?;
        let pre = component.pre.clone();
        let timeout = self.limits.request_timeout;
        // The task outlives this function while the guest streams the body.
        let task = tokio::spawn(async move {
            let work = async {
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, incoming, outparam)
                    .await?;
                anyhow::Ok(())
            };
            match tokio::time::timeout(timeout, work).await {
                Ok(Err(e)) if is_interrupt(&e) => bail!("request exceeded {} s", timeout.as_secs()),
                Ok(r) => r,
                Err(_) => bail!("request exceeded {} s", timeout.as_secs()),
            }
        });

        match rx.await {
            Ok(Ok(resp)) => {
                let id = component.id.clone();
                tokio::spawn(async move {
                    match task.await {
                        Ok(Err(e)) => {
                            eprintln!("edgeauth: component {id:?} failed after responding: {e:#}")
                        }
                        Err(e) if e.is_panic() => {
                            eprintln!("edgeauth: component {id:?} task panicked")
                        }
                        _ => {}
                    }
                });
                Ok(resp.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync()))
            }
            Ok(Err(code)) => bail!("component returned error {code:?}"),
            Err(_) => match task.await {
                Ok(Ok(())) => bail!("component returned without setting a response"),
                Ok(Err(e)) => Err(e),
                Err(e) => bail!("component task failed: {e}"),
            },
        }
    }
}

fn is_interrupt(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt))
        || format!("{e:#}").contains("interrupt")
}

/// Shapes a request the way Spin's HTTP trigger hands it to a component:
/// authority from the Host header, scheme http, `spin-*` headers set.
fn prepare_request(
    mut req: Request<Incoming>,
    route: &Route,
    peer: SocketAddr,
) -> Result<Request<Incoming>> {
    // RFC 9112 3.2: more than one Host is a 400, never "the first one".
    if req.headers().get_all(http::header::HOST).iter().count() > 1 {
        bail!("more than one Host header");
    }
    let host = match req.headers().get(http::header::HOST) {
        Some(h) => h
            .to_str()
            .context("Host header is not valid UTF-8")?
            .to_string(),
        None => bail!("no Host header"),
    };
    let authority: http::uri::Authority = host
        .parse()
        .context("Host header is not a valid authority")?;
    if let Some(uri_authority) = req.uri().authority()
        && *uri_authority != authority
    {
        bail!("authority in the request line does not match the Host header");
    }
    let path_and_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    // Origin-form, so wasi:http takes the authority from the Host header.
    *req.uri_mut() = path_and_query.parse()?;

    let path = req.uri().path().to_string();
    let headers = req.headers_mut();
    headers.remove(http::header::CONNECTION);
    for name in SPIN_HEADERS {
        headers.remove(name);
    }
    let values = [
        (
            "spin-full-url",
            format!("http://{authority}{path_and_query}"),
        ),
        ("spin-path-info", route.path_info(&path).to_string()),
        ("spin-matched-route", route.raw()),
        ("spin-base-path", "/".to_string()),
        ("spin-raw-component-route", route.raw()),
        ("spin-component-route", route.prefix().to_string()),
        ("spin-client-addr", peer.to_string()),
    ];
    for (name, value) in values {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value)?,
        );
    }
    Ok(req)
}

/// A host error answer: class and reference for the client, the detail in
/// the log line (one write) with the same reference.
fn problem(
    status: StatusCode,
    public: &str,
    class: &str,
    detail: &dyn std::fmt::Display,
) -> Response<ResponseBody> {
    let p = crate::problem::render(
        public,
        class,
        &format_args!("{detail:#}"),
        crate::problem::random_reference(),
    );
    {
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(p.log_line.as_bytes());
    }
    text(status, p.body)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<ResponseBody> {
    let mut resp = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

/// The gateway never switches protocols (wasi:http has no upgrade), but hyper
/// marks every request carrying `Upgrade` as a possible upgrade and, when such
/// a connection ends, hands its socket to the upgrade instead of closing it:
/// without a taker it is dropped at once, with the request body possibly
/// unread, and the kernel answers the unread bytes with a reset that can
/// destroy the response the client has not read yet (seen as ECONNRESET on a
/// refused `PATCH` with `Upgrade: websocket` and a body). Taking the upgrade
/// here gets the socket back so it can be closed the way hyper closes the
/// others: our side first, then what the client still sends is read and
/// discarded for a bounded time (a lingering close, as nginx does).
fn close_after_refused_upgrade(req: &mut Request<Incoming>) {
    if !req.headers().contains_key(hyper::header::UPGRADE) {
        return;
    }
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        // Err: the connection went on or ended without handing the socket over.
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = upgraded;
        let _ = std::future::poll_fn(|cx| Pin::new(&mut io).poll_shutdown(cx)).await;
        let linger = async {
            let mut sink = [0u8; 4096];
            let mut left: usize = 1 << 20;
            while left > 0 {
                let mut buf = hyper::rt::ReadBuf::new(&mut sink);
                let read =
                    std::future::poll_fn(|cx| Pin::new(&mut io).poll_read(cx, buf.unfilled()))
                        .await;
                match (read, buf.filled().len()) {
                    (Err(_), _) | (Ok(()), 0) => break,
                    (Ok(()), n) => left = left.saturating_sub(n),
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), linger).await;
    });
}
