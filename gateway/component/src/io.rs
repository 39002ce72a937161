//! The component's I/O on behalf of the core: clock, randomness, Spin KV
//! (through [`crate::kv`]) and bounded outbound HTTP to the identity provider.

use edgeauth_core::Response;
use edgeauth_core::connections::Connection;
use edgeauth_core::id_token::Jwks;
use edgeauth_core::kv_schema;
use edgeauth_core::pages;
use edgeauth_core::provider::{self, ProviderCache};
use edgeauth_core::settings::Settings;
use edgeauth_core::{assertion_cache, revocation};
use futures::{SinkExt, StreamExt};
use http::request::Parts;
use spin_executor::CancelOnDropToken;
use spin_sdk::http::{
    Fields, IncomingRequest, IncomingResponse, Method, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::RequestOptions;

use crate::kv::Kv;

/// IdP documents and token responses are small; more is refused.
pub const MAX_IDP_BODY: usize = provider::MAX_DOCUMENT_BYTES;

pub struct Clock {
    pub secs: u64,
}

impl Clock {
    pub fn now() -> Clock {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Clock { secs }
    }
}

/// WASI's CSPRNG. Without it nothing safe can be done, so failing is fatal.
pub fn rng(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the host provides wasi:random");
}

pub fn request_parts(req: &IncomingRequest) -> http::request::Parts {
    let method = req.method().to_string();
    let path = req.path_with_query().unwrap_or_else(|| "/".to_owned());
    let mut builder = http::Request::builder()
        .method(method.as_str())
        .uri(path.as_str());
    let mut has_host = false;
    for (name, value) in req.headers().entries() {
        has_host |= name.eq_ignore_ascii_case("host");
        builder = builder.header(name, value);
    }
    // Tenants are selected by host; hosts that pass it only as the authority
    // (HTTP/2) get it as `Host` too.
    if let (false, Some(authority)) = (has_host, req.authority()) {
        builder = builder.header(http::header::HOST, authority);
    }
    match builder.body(()) {
        Ok(r) => r.into_parts().0,
        // An unparsable request line or header: handled as a bare GET of a
        // path no route matches, so it can only reach a login redirect.
        Err(_) => {
            http::Request::get("/.edgeauth/invalid")
                .body(())
                .expect("static request is valid")
                .into_parts()
                .0
        }
    }
}

/// Sends `resp`; a problem page first gets its reference, and its log line
/// (reference, class, detail) is written in one write so concurrent
/// requests' lines never interleave.
pub async fn respond(out: ResponseOutparam, resp: Response) {
    let (resp, log_line) = pages::finish(resp, &mut rng);
    if let Some(line) = log_line {
        use std::io::Write as _;
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    let (parts, body) = resp.into_parts();
    let mut entries: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    entries.push(("content-length".into(), body.len().to_string().into_bytes()));
    let headers = Fields::from_list(&entries).unwrap_or_else(|_| Fields::new());
    let outgoing = OutgoingResponse::new(headers);
    let _ = outgoing.set_status_code(parts.status.as_u16());
    if body.len() > WHOLE_RESPONSE_MAX {
        if let Err(e) = out.set_with_body(outgoing, body).await {
            eprintln!("edgeauth: client went away while responding: {e:?}");
        }
        return;
    }
    // The whole body is written (and the body finished, when the sink drops)
    // before the response is handed over, so the runtime's HTTP server has
    // head and body at once and sends them in one segment. Handed over
    // first, Spin writes the head alone and the body in a second small
    // segment, which Nagle holds until the client's delayed ACK (40 ms on
    // Linux) on a keep-alive connection: every page, redirect and health
    // check answered at ~25 req/s per connection.
    let mut sink = outgoing.take_body();
    let written = sink.send(body).await;
    drop(sink);
    out.set(outgoing);
    if let Err(e) = written {
        eprintln!("edgeauth: response body not written: {e:?}");
    }
}

/// The largest body [`respond`] writes before handing the response over:
/// wasi:http hosts buffer at least one chunk of this size without a reader
/// (wasmtime-wasi-http: two of 1 MiB), so writing it cannot wait on the
/// client. Larger bodies (none of the gateway's own pages) stream after.
const WHOLE_RESPONSE_MAX: usize = 256 * 1024;

/// Marks the single-use `key` used (atomically, see [`Kv::first_use`]);
/// `Ok(false)` if it was already used.
pub fn mark_once(key: &str, now: u64) -> Result<bool, Response> {
    Kv::open()?
        .first_use(key, now)
        .map_err(|_| pages::storage_unavailable())
}

/// The store as the request's session cookie needs it: a logged-out session
/// is dropped from the request (it goes on as one without a session), and the
/// session's cached assertion comes along (`assertion_cache`).
pub struct SessionKv {
    store: Option<Kv>,
    cache_key: Option<String>,
    pub cached_assertion: Option<Vec<u8>>,
}

impl SessionKv {
    pub fn load(
        settings: &Settings,
        parts: &mut Parts,
        want_assertion: bool,
        now: u64,
    ) -> Result<SessionKv, Response> {
        let checks = revocation::checks(settings, &parts.headers, now);
        let mut kv = SessionKv {
            store: None,
            cache_key: None,
            cached_assertion: None,
        };
        if checks.sessions.is_empty() {
            return Ok(kv);
        }
        let cache_key = want_assertion
            .then(|| assertion_cache::key(settings, &parts.headers))
            .flatten();
        let mut keys = checks.keys();
        keys.extend(cache_key.iter().cloned());
        // Without the store a revoked session cannot be told apart: fail closed.
        let store = Kv::open()?;
        let found = store
            .get_each(&keys)
            .map_err(|_| pages::storage_unavailable())?;
        if checks.revoked(|key| found.get(key).map(Vec::as_slice)) {
            revocation::drop_session_cookie(settings, &mut parts.headers);
            return Ok(kv);
        }
        kv.cached_assertion = cache_key.as_ref().and_then(|k| found.get(k).cloned());
        kv.cache_key = cache_key;
        kv.store = Some(store);
        Ok(kv)
    }

    /// Keeps a freshly signed assertion for the session's next requests.
    /// Best effort: a failed write only means the next request signs again.
    pub fn remember(&self, jwt: &str, now: u64) {
        let (Some(store), Some(key)) = (&self.store, &self.cache_key) else {
            return;
        };
        let value = assertion_cache::encode(jwt, now);
        let _ = store.put(key, &value, assertion_cache::expires_at(now), now);
    }
}

/// Puts the request's live sessions on the revocation list until they
/// would have expired anyway.
pub fn revoke_sessions(settings: &Settings, parts: &Parts, now: u64) -> Result<(), Response> {
    let entries = revocation::entries_for_logout(settings, &parts.headers, now);
    if entries.is_empty() {
        return Ok(());
    }
    let kv = Kv::open()?;
    for key in revocation::grant_keys(settings, &parts.headers) {
        // Best effort: the session is revoked below whatever happens here.
        let _ = kv.delete(&key);
    }
    for (key, expires_at) in entries {
        kv.put(&key, &kv_schema::encode(expires_at, b""), expires_at, now)
            .map_err(|_| pages::storage_unavailable())?;
    }
    Ok(())
}

#[derive(Debug)]
pub enum FetchError {
    Unreachable(String),
    TooLarge,
    /// Not a host this connection may call (`Connection::may_call`).
    NotAllowed(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::Unreachable(e) => write!(f, "could not be reached ({e})"),
            FetchError::TooLarge => write!(f, "sent a response that is too large"),
            FetchError::NotAllowed(uri) => write!(
                f,
                "is at {uri}, a host this connection may not call (see `allowed_hosts`)"
            ),
        }
    }
}

/// [`fetch`] for a connection's provider: only to hosts the connection
/// allows, whatever a provider's document says.
pub async fn fetch_for(
    connection: &Connection,
    request: http::Request<Vec<u8>>,
    limit: usize,
) -> Result<(u16, Vec<u8>), FetchError> {
    if !connection.may_call(request.uri()) {
        return Err(FetchError::NotAllowed(
            edgeauth_core::connections::uri_host_port(request.uri()).unwrap_or_default(),
        ));
    }
    fetch(request, limit).await
}

/// Time limits for calls to the identity provider. Set on each request so they
/// hold under any wasi:http host, not only one with sane defaults.
const IDP_CONNECT_TIMEOUT_NS: u64 = 5_000_000_000;
const IDP_RESPONSE_TIMEOUT_NS: u64 = 10_000_000_000;

pub(crate) fn outgoing(request: &http::Request<Vec<u8>>) -> Option<OutgoingRequest> {
    let entries: Vec<(String, Vec<u8>)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let out = OutgoingRequest::new(Fields::from_list(&entries).ok()?);
    let uri = request.uri();
    let method = match *request.method() {
        http::Method::POST => Method::Post,
        _ => Method::Get,
    };
    let scheme = if uri.scheme_str() == Some("https") {
        Scheme::Https
    } else {
        Scheme::Http
    };
    out.set_method(&method).ok()?;
    out.set_scheme(Some(&scheme)).ok()?;
    out.set_authority(Some(uri.authority()?.as_str())).ok()?;
    out.set_path_with_query(uri.path_and_query().map(|p| p.as_str()))
        .ok()?;
    Some(out)
}

/// Sends `out` with time limits; the caller writes the body concurrently.
pub async fn send_with_timeouts(
    out: OutgoingRequest,
    connect_ns: u64,
    response_ns: u64,
) -> Result<IncomingResponse, String> {
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(Some(connect_ns));
    let _ = options.set_first_byte_timeout(Some(response_ns));
    let _ = options.set_between_bytes_timeout(Some(response_ns));
    let pending = outgoing_handler::handle(out, Some(options)).map_err(|e| format!("{e:?}"))?;
    let mut waiting: Option<CancelOnDropToken> = None;
    futures::future::poll_fn(|cx| match pending.get() {
        Some(Ok(Ok(resp))) => std::task::Poll::Ready(Ok(resp)),
        Some(Ok(Err(e))) => std::task::Poll::Ready(Err(format!("{e:?}"))),
        Some(Err(())) => std::task::Poll::Ready(Err("no response".into())),
        None => {
            // Replacing the token drops the previous registration.
            waiting = Some(
                spin_executor::push_waker_and_get_token(pending.subscribe(), cx.waker().clone())
                    .into(),
            );
            std::task::Poll::Pending
        }
    })
    .await
}

async fn send_bounded(request: http::Request<Vec<u8>>) -> Result<IncomingResponse, FetchError> {
    let out =
        outgoing(&request).ok_or_else(|| FetchError::Unreachable("invalid request".into()))?;
    let mut body = out.take_body();
    let send = send_with_timeouts(out, IDP_CONNECT_TIMEOUT_NS, IDP_RESPONSE_TIMEOUT_NS);
    let upload = async move {
        if !request.body().is_empty() {
            body.send(request.into_body())
                .await
                .map_err(|e| format!("{e:?}"))?;
        }
        drop(body);
        Ok::<(), String>(())
    };
    let (resp, uploaded) = futures::join!(send, upload);
    uploaded.map_err(FetchError::Unreachable)?;
    resp.map_err(FetchError::Unreachable)
}

/// Sends `request` with time limits and reads at most `limit` bytes of the answer.
pub async fn fetch(
    request: http::Request<Vec<u8>>,
    limit: usize,
) -> Result<(u16, Vec<u8>), FetchError> {
    let resp = send_bounded(request).await?;
    let status = resp.status();
    let mut body = Vec::new();
    let mut stream = resp.take_body_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| FetchError::Unreachable(format!("{e:?}")))?;
        if body.len() + chunk.len() > limit {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// The provider's discovery document and JWKS, cached in KV per issuer.
pub struct ProviderState {
    pub cache: ProviderCache,
}

impl ProviderState {
    /// The OIDC `connection`'s provider metadata, from KV unless stale.
    pub async fn load(connection: &Connection, now: u64) -> Result<ProviderState, Response> {
        let key = ProviderCache::key(connection);
        let kv = Kv::open()?;
        let cached = kv
            .get_live(&key, now)
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<ProviderCache>(&bytes).ok());
        if let Some(cache) = &cached
            && cache.usable(connection, now)
        {
            return Ok(ProviderState {
                cache: cache.clone(),
            });
        }
        let url = provider::discovery_url(connection)
            .map_err(|e| pages::idp_unavailable(&e.to_string(), false))?;
        let (status, body) = fetch_for(connection, provider::get(&url), MAX_IDP_BODY)
            .await
            .map_err(|e| pages::idp_unavailable(&format!("its discovery document {e}"), false))?;
        let metadata = provider::parse_discovery(connection, status, &body)
            .map_err(|e| pages::idp_unavailable(&e.to_string(), false))?;
        // Keys stay valid across a discovery refresh unless the JWKS moved.
        let (jwks, jwks_fetched_at) = match cached {
            Some(c)
                if Some(c.issuer.as_str()) == connection.issuer()
                    && c.metadata.jwks_uri == metadata.jwks_uri =>
            {
                (c.jwks, c.jwks_fetched_at)
            }
            _ => (None, 0),
        };
        let cache = ProviderCache {
            issuer: metadata.issuer.clone(),
            metadata,
            metadata_fetched_at: now,
            jwks,
            jwks_fetched_at,
        };
        save(&kv, &key, &cache, now);
        Ok(ProviderState { cache })
    }

    /// The JWKS, from cache unless stale or `refetch` is asked for.
    pub async fn jwks(
        &mut self,
        connection: &Connection,
        now: u64,
        refetch: bool,
    ) -> Result<Jwks, Response> {
        if !refetch
            && self.cache.jwks_fresh(now)
            && let Some(doc) = &self.cache.jwks
            && let Ok(jwks) = Jwks::parse(doc.as_bytes())
        {
            return Ok(jwks);
        }
        let (status, body) = fetch_for(
            connection,
            provider::get(&self.cache.metadata.jwks_uri),
            MAX_IDP_BODY,
        )
        .await
        .map_err(|e| pages::idp_unavailable(&format!("its key set (JWKS) {e}"), false))?;
        if status != 200 {
            return Err(pages::idp_unavailable(
                &format!("its key set (JWKS) answered HTTP {status}"),
                false,
            ));
        }
        let jwks = Jwks::parse(&body).map_err(|e| {
            pages::idp_unavailable(&format!("its key set (JWKS) is unusable: {e}"), false)
        })?;
        self.cache.jwks = Some(String::from_utf8_lossy(&body).into_owned());
        self.cache.jwks_fetched_at = now;
        if let Ok(kv) = Kv::open() {
            save(&kv, &ProviderCache::key(connection), &self.cache, now);
        }
        Ok(jwks)
    }
}

fn save(kv: &Kv, key: &str, cache: &ProviderCache, now: u64) {
    let Ok(json) = serde_json::to_vec(cache) else {
        return;
    };
    let expires_at = now + kv_schema::PROVIDER_RETENTION_SECS;
    if let Err(e) = kv.put(key, &kv_schema::encode(expires_at, &json), expires_at, now) {
        // Only a cache: the login still works, it just refetches next time.
        eprintln!("edgeauth: could not cache provider metadata: {e:?}");
    }
}

/// Copies a body stream into a sink; stops quietly when either side ends.
pub async fn pipe<S, K, RE, WE>(from: S, to: K) -> Result<(), String>
where
    S: futures::Stream<Item = Result<Vec<u8>, RE>>,
    K: futures::Sink<Vec<u8>, Error = WE>,
    RE: std::fmt::Debug,
    WE: std::fmt::Debug,
{
    let mut from = std::pin::pin!(from);
    let mut to = std::pin::pin!(to);
    while let Some(chunk) = from.next().await {
        let chunk = chunk.map_err(|e| format!("read: {e:?}"))?;
        to.send(chunk).await.map_err(|e| format!("write: {e:?}"))?;
    }
    to.close().await.map_err(|e| format!("close: {e:?}"))
}

/// Why a request body was not read whole.
#[derive(Debug)]
pub enum BodyError {
    /// The client's stream failed.
    Broken,
    /// More than the limit: reading stopped there.
    TooLarge,
}

/// The request body, at most `max` bytes (nothing past the limit is read).
pub async fn read_body(req: IncomingRequest, max: usize) -> Result<Vec<u8>, BodyError> {
    let mut stream = req.into_body_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if out.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
