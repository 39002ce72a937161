//! The benchmark's origin: answers every request with the same 1 KiB body,
//! echoes nothing. `GET /__bench/count` returns how many other requests it has
//! served, so the benchmark can check that requests really reached it.
//!
//! Usage: bench-origin [ADDR]   (default 127.0.0.1:0; prints the listening URL)

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

static SERVED: AtomicU64 = AtomicU64::new(0);
static BODY: [u8; 1024] = [b'x'; 1024];

async fn serve(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let count = req.uri().path() == "/__bench/count";
    // Read (and drop) any request body so the connection stays reusable.
    let _ = req.into_body().collect().await;
    let body = if count {
        Bytes::from(SERVED.load(Ordering::Relaxed).to_string())
    } else {
        SERVED.fetch_add(1, Ordering::Relaxed);
        Bytes::from_static(&BODY)
    };
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    Ok(resp)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "bench origin listening on http://{}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), hyper::service::service_fn(serve))
                .await;
        });
    }
}
