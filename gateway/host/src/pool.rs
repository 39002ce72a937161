//! Keep-alive connections for outbound plain-http requests (the origin next
//! to the gateway): each guest request would otherwise pay a TCP connect and
//! accept, and on a fresh connection Nagle's algorithm can hold a chunked
//! request's last bytes until the peer's delayed ACK (~40 ms).
//!
//! An idle connection is reused only once hyper reports it ready for another
//! request, which for HTTP/1.1 means the previous response was read to its
//! end; a request that could not be written to a reused connection (closed by
//! the peer meanwhile) is retried once on a new one.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// Idle connections kept per `host:port`.
const MAX_IDLE_PER_HOST: usize = 64;
/// Idle connections older than this are closed instead of reused (origins
/// commonly time out idle keep-alive connections after 5 s or more).
const IDLE_TIMEOUT: Duration = Duration::from_secs(4);

struct Idle {
    sender: SendRequest<WasiBody>,
    since: Instant,
}

/// The process's pool, shared by every component instance.
pub fn global() -> Arc<Pool> {
    static POOL: std::sync::LazyLock<Arc<Pool>> = std::sync::LazyLock::new(Arc::default);
    POOL.clone()
}

#[derive(Default)]
pub struct Pool {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

impl Pool {
    fn take(&self, authority: &str) -> Option<SendRequest<WasiBody>> {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.get_mut(authority)?;
        while let Some(c) = list.pop() {
            if c.since.elapsed() < IDLE_TIMEOUT && c.sender.is_ready() {
                return Some(c.sender);
            }
        }
        None
    }

    fn put(&self, authority: String, sender: SendRequest<WasiBody>) {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.entry(authority).or_default();
        list.retain(|c| c.since.elapsed() < IDLE_TIMEOUT && !c.sender.is_closed());
        if list.len() < MAX_IDLE_PER_HOST {
            list.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    async fn connect(authority: &str, timeout: Duration) -> Result<SendRequest<WasiBody>, Error> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(authority)).await {
            Ok(s) => s.map_err(Error::Connect)?,
            Err(_) => return Err(Error::ConnectionTimeout),
        };
        stream.set_nodelay(true).map_err(Error::Connect)?;
        let (sender, conn) = tokio::time::timeout(
            timeout,
            hyper::client::conn::http1::Builder::new().handshake(TokioIo::new(stream)),
        )
        .await
        .map_err(|_| Error::ConnectionTimeout)??;
        // The connection lives as long as the peer keeps it open and someone
        // (a request in flight or the pool) holds its sender.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends a plain-http request with an absolute URI, reusing an idle
    /// connection to the same `host:port` when there is one.
    pub async fn send(
        self: Arc<Self>,
        mut req: Request<WasiBody>,
        options: RequestOptions,
    ) -> Result<Response<WasiBody>, Error> {
        let uri = req.uri();
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
        let authority = match authority.port() {
            Some(_) => authority.to_string(),
            None => format!("{authority}:80"),
        };
        let connect_timeout = options.connect_timeout.unwrap_or(Duration::from_secs(600));
        let first_byte = options
            .first_byte_timeout
            .unwrap_or(Duration::from_secs(600));
        let between_bytes = options
            .between_bytes_timeout
            .unwrap_or(Duration::from_secs(600))
            .max(Duration::from_nanos(1));
        // Origin-form on the wire: the authority goes in the Host header.
        *req.uri_mut() = http::Uri::builder()
            .path_and_query(
                req.uri()
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/"),
            )
            .build()
            .map_err(|_| Error::HttpRequestUriInvalid)?;

        let mut reused = self.take(&authority);
        let (mut sender, result) = loop {
            let mut sender = match reused.take() {
                Some(s) => s,
                None => Self::connect(&authority, connect_timeout).await?,
            };
            let fresh = reused.is_none();
            match tokio::time::timeout(first_byte, sender.try_send_request(req)).await {
                Err(_) => return Err(Error::ConnectionReadTimeout),
                Ok(Ok(resp)) => break (sender, resp),
                Ok(Err(mut e)) => match e.take_message() {
                    // Not written: the idle connection was closed meanwhile.
                    Some(r) if !fresh => req = r,
                    _ => return Err(Error::from(e.into_error())),
                },
            }
        };
        let pool = self.clone();
        tokio::spawn(async move {
            // Ready again once this response has been read to its end.
            if sender.ready().await.is_ok() {
                pool.put(authority, sender);
            }
        });
        Ok(result.map(|incoming| {
            TimedBody {
                incoming,
                between_bytes,
                deadline: Box::pin(tokio::time::sleep(between_bytes)),
            }
            .boxed_unsync()
        }))
    }
}

/// The response body, failing when the origin pauses longer than the
/// between-bytes timeout.
struct TimedBody {
    incoming: Incoming,
    between_bytes: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.between_bytes;
                self.deadline.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(self.deadline.as_mut().poll(cx));
                Poll::Ready(Some(Err(Error::ConnectionReadTimeout)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Empty, Full};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// An origin that counts accepted connections and answers "ok".
    async fn origin() -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                        let n = req.into_body().collect().await?.to_bytes().len();
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(format!(
                            "ok {n}"
                        )))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (format!("http://{addr}"), accepted)
    }

    fn get(url: &str) -> Request<WasiBody> {
        Request::get(url)
            .body(Empty::new().map_err(|never| match never {}).boxed_unsync())
            .unwrap()
    }

    #[tokio::test]
    async fn reuses_connections_after_the_body_is_read() {
        let (url, accepted) = origin().await;
        let pool = Arc::new(Pool::default());
        for i in 0..5 {
            let resp = pool
                .clone()
                .send(get(&format!("{url}/x{i}")), RequestOptions::default())
                .await
                .unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok 0");
            // Let the readiness task hand the connection back.
            for _ in 0..100 {
                if pool
                    .idle
                    .lock()
                    .unwrap()
                    .values()
                    .map(Vec::len)
                    .sum::<usize>()
                    > 0
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unread_response_does_not_share_its_connection() {
        let (url, accepted) = origin().await;
        let pool = Arc::new(Pool::default());
        let first = pool
            .clone()
            .send(get(&format!("{url}/a")), RequestOptions::default())
            .await
            .unwrap();
        let second = pool
            .clone()
            .send(get(&format!("{url}/b")), RequestOptions::default())
            .await
            .unwrap();
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        drop((first, second));
    }

    #[tokio::test]
    async fn unreachable_origin_fails_cleanly() {
        let pool = Arc::new(Pool::default());
        let err = pool
            .clone()
            .send(get("http://127.0.0.1:9/"), RequestOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Connect(_)), "{err:?}");
    }
}
