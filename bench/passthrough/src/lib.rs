//! The floor of the architecture for the benchmark: a wasi:http component that
//! forwards every request to `origin_url` and streams the answer back, with no
//! authentication. Same host, same instance-per-request model, same streaming
//! as the gateway's proxy, so the gap between the two is the cost of auth.

use futures::{FutureExt, SinkExt, StreamExt};
use spin_sdk::http::{
    Fields, IncomingRequest, IncomingResponse, OutgoingRequest, OutgoingResponse, ResponseOutparam,
    Scheme,
};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

/// A request with this header first reads that many keys (absent ones) from
/// the KV store `default`, one get each, as a gateway's revocation check must
/// on every request: the floor of any gateway that checks the store per
/// request (bench/README.md, `--floor-reads`). Only a manifest that grants the
/// store serves it (bench/passthrough/spin-kv.toml); the plain floor never
/// sees the header, so its cost is unchanged (no host call).
const KV_READS_HEADER: &str = "edgeauth-bench-kv-reads";
const KV_READS_MAX: usize = 8;

/// Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded in either direction.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "host"
    )
}

fn fail(out: ResponseOutparam, status: u16) {
    let resp = OutgoingResponse::new(Fields::new());
    let _ = resp.set_status_code(status);
    out.set(resp);
}

async fn pipe<S, K, RE, WE>(from: S, to: K)
where
    S: futures::Stream<Item = Result<Vec<u8>, RE>>,
    K: futures::Sink<Vec<u8>, Error = WE>,
{
    let mut from = std::pin::pin!(from);
    let mut to = std::pin::pin!(to);
    while let Some(Ok(chunk)) = from.next().await {
        if to.send(chunk).await.is_err() {
            return;
        }
    }
    let _ = to.close().await;
}

/// Opens the store and reads `n` keys nobody writes, each with its own get.
fn read_keys(n: usize) -> Result<(), spin_sdk::key_value::Error> {
    let store = Store::open("default")?;
    for i in 0..n {
        store.get(&format!("bench:absent:{i}"))?;
    }
    Ok(())
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let Some(origin) = spin_sdk::variables::get("origin_url").ok() else {
        return fail(out, 500);
    };
    let (scheme, authority) = match origin.trim_end_matches('/').split_once("://") {
        Some(("https", a)) => (Scheme::Https, a.to_owned()),
        Some((_, a)) => (Scheme::Http, a.to_owned()),
        None => return fail(out, 500),
    };
    let mut kv_reads = 0;
    let headers: Vec<(String, Vec<u8>)> = req
        .headers()
        .entries()
        .into_iter()
        .filter(|(k, v)| {
            if k.eq_ignore_ascii_case(KV_READS_HEADER) {
                kv_reads = std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0usize)
                    .min(KV_READS_MAX);
                return false;
            }
            !hop_by_hop(k) && !k.starts_with("spin-")
        })
        .collect();
    if kv_reads > 0 && read_keys(kv_reads).is_err() {
        return fail(out, 503);
    }
    let Ok(fields) = Fields::from_list(&headers) else {
        return fail(out, 400);
    };
    let outgoing = OutgoingRequest::new(fields);
    let ok = outgoing.set_method(&req.method()).is_ok()
        && outgoing.set_scheme(Some(&scheme)).is_ok()
        && outgoing.set_authority(Some(&authority)).is_ok()
        && outgoing
            .set_path_with_query(req.path_with_query().as_deref())
            .is_ok();
    if !ok {
        return fail(out, 400);
    }
    let upload = pipe(req.into_body_stream(), outgoing.take_body());
    let send = spin_sdk::http::send::<_, IncomingResponse>(outgoing);
    let (sent, ()) = futures::join!(send, upload);
    let Ok(response) = sent else {
        return fail(out, 502);
    };
    let kept: Vec<(String, Vec<u8>)> = response
        .headers()
        .entries()
        .into_iter()
        .filter(|(k, _)| !hop_by_hop(k))
        .collect();
    let resp = OutgoingResponse::new(Fields::from_list(&kept).unwrap_or_else(|_| Fields::new()));
    let _ = resp.set_status_code(response.status());
    let mut body = resp.take_body();
    let mut from = response.take_body_stream();
    // As the gateway's proxy does (gateway/component/src/proxy.rs): the body
    // goes out with the head, not after it (Spin sets no TCP_NODELAY: a head
    // sent alone waits for the client's delayed ACK).
    // A body announced as small is read whole first; of any other, what
    // has already arrived.
    let small = response
        .headers()
        .get("content-length")
        .first()
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
        .filter(|n| *n <= 64 * 1024);
    let mut first = Vec::new();
    let mut ended = false;
    while first.len() < small.unwrap_or(64 * 1024) {
        let next = match small {
            Some(_) => Some(from.next().await),
            None => from.next().now_or_never(),
        };
        match next {
            Some(Some(Ok(chunk))) => first.extend_from_slice(&chunk),
            Some(None) => {
                ended = true;
                break;
            }
            Some(Some(Err(_))) | None => break,
        }
    }
    if !first.is_empty() && body.send(first).await.is_err() {
        ended = true;
    }
    if ended {
        drop(body);
        out.set(resp);
        return;
    }
    out.set(resp);
    pipe(from, body).await;
}
