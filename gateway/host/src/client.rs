//! A small one-shot HTTP/1.1 client (http and https) for the command-line
//! tools: `edgeauth rule run` (a rule's outbound calls) and `rule upload`.

use std::time::Duration;

use bytes::Bytes;
use edgeauth_rules::event::{HttpError, HttpRequest, HttpResponse, MAX_HTTP_BODY};
use http_body_util::{BodyExt as _, Full};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use wasmtime_wasi_http::io::TokioIo;

/// Responses larger than this are refused (uploads answer with small JSON).
const MAX_BODY: usize = MAX_HTTP_BODY;

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub async fn send(req: &HttpRequest, timeout: Duration) -> Result<HttpResponse, HttpError> {
    match tokio::time::timeout(timeout, send_inner(req)).await {
        Ok(r) => r,
        Err(_) => Err(HttpError::Timeout),
    }
}

async fn send_inner(req: &HttpRequest) -> Result<HttpResponse, HttpError> {
    let invalid = |e: String| HttpError::InvalidRequest(e);
    let uri: http::Uri = req.url.parse().map_err(|e| invalid(format!("{e}")))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(invalid("only http and https URLs".into())),
    };
    let host = uri
        .host()
        .ok_or_else(|| invalid("no host".into()))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let unreachable = |e: String| HttpError::Unreachable(e);
    let tcp = TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| unreachable(format!("connect: {e}")))?;
    let stream: Box<dyn Stream> = if tls {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let name = rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| invalid(format!("{e}")))?;
        Box::new(
            connector
                .connect(name, tcp)
                .await
                .map_err(|e| unreachable(format!("tls: {e}")))?,
        )
    } else {
        Box::new(tcp)
    };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| unreachable(format!("handshake: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or(host);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut builder = http::Request::builder()
        .method(req.method.as_str())
        .uri(path)
        .header("host", authority);
    for (k, v) in &req.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let body = Full::new(Bytes::from(req.body.clone().unwrap_or_default()));
    let request = builder.body(body).map_err(|e| invalid(format!("{e}")))?;
    let resp = sender
        .send_request(request)
        .await
        .map_err(|e| unreachable(format!("{e}")))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| unreachable(format!("{e}")))?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > MAX_BODY {
                return Err(HttpError::TooLarge);
            }
            out.extend_from_slice(data);
        }
    }
    Ok(HttpResponse {
        status,
        headers,
        body: out,
    })
}
