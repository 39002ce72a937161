//! End-to-end: the real `edgeauth` binary serving a real Spin component
//! (tests/fixture, built here for wasm32-wasip2) with variables, key-value,
//! outbound HTTP and limits, compared against Spin's documented behaviour.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use wasmtime_wasi_http::io::TokioIo;

/// Builds the fixture once per test process, in its own directory under the
/// workspace target dir (a nested cargo must not wait on the outer one's lock).
fn fixture_wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .expect("target dir")
            .join("host-fixture");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(manifest_dir.join("tests/fixture/Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("run cargo to build the fixture component");
        assert!(
            status.success(),
            "building tests/fixture for wasm32-wasip2 failed"
        );
        target.join("wasm32-wasip2/release/edgeauth_host_fixture.wasm")
    })
}

const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "fixture"
[variables]
greeting = { default = "hello" }
origin_url = { default = "http://127.0.0.1:1" }
api_token = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "fixture"
[component.fixture]
source = "fixture.wasm"
allowed_outbound_hosts = ["{{ origin_url }}", "http://self"]
key_value_stores = ["default"]
[component.fixture.variables]
message = "{{ greeting }}, world"
token = "Bearer {{ api_token }}"
[component.fixture.build]
command = "cargo build --release --target wasm32-wasip2"
"#;

struct Host {
    child: Child,
    addr: String,
    stderr: std::thread::JoinHandle<String>,
}

impl Host {
    fn start(dir: &Path, extra_env: &[(&str, &str)], extra_args: &[&str]) -> Host {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgeauth"));
        cmd.arg("up")
            .arg("--manifest")
            .arg(dir.join("spin.toml"))
            .arg("--component")
            .arg(fixture_wasm())
            .args(["--listen", "127.0.0.1:0"])
            .args(extra_args)
            .env("EDGEAUTH_CACHE_DIR", dir.join("cache"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start edgeauth");
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(addr) = line
            .trim()
            .strip_prefix("edgeauth host listening on http://")
        else {
            let _ = child.kill();
            panic!("host did not start: {line:?}\n{}", stderr.join().unwrap());
        };
        Host {
            addr: addr.to_string(),
            child,
            stderr,
        }
    }

    /// Stops with SIGTERM (the graceful path) and returns the host's stderr.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "host exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "host ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.stderr.join().unwrap()
    }
}

async fn get(host: &Host, path_and_query: &str, headers: &[(&str, &str)]) -> (u16, String) {
    // A hung host must fail the test, not stall the run.
    tokio::time::timeout(
        Duration::from_secs(30),
        get_inner(host, path_and_query, headers),
    )
    .await
    .unwrap_or_else(|_| panic!("GET {path_and_query} timed out"))
}

async fn get_inner(host: &Host, path_and_query: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(&host.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::get(path_and_query).header("host", &host.addr);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A one-line origin on loopback: answers every request with "origin".
fn start_origin() -> u16 {
    let listener = StdListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\norigin",
            );
        }
    });
    port
}

fn app_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spin.toml"), MANIFEST).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_the_component_like_spin() {
    let dir = app_dir();
    let origin = start_origin();
    let origin_url = format!("http://127.0.0.1:{origin}");
    let env = [
        ("SPIN_VARIABLE_API_TOKEN", "s3cret"),
        ("SPIN_VARIABLE_ORIGIN_URL", origin_url.as_str()),
    ];
    let host = Host::start(dir.path(), &env, &[]);

    // Variables: templates, env for required secrets, only granted names.
    assert_eq!(
        get(&host, "/var?name=message", &[]).await,
        (200, "hello, world".into())
    );
    assert_eq!(
        get(&host, "/var?name=token", &[]).await,
        (200, "Bearer s3cret".into())
    );
    let (status, body) = get(&host, "/var?name=greeting", &[]).await;
    assert_eq!(status, 404);
    assert!(body.contains("Undefined"), "{body}");
    let (_, body) = get(&host, "/var?name=Not-Valid", &[]).await;
    assert!(body.contains("InvalidName"), "{body}");

    // Key-value: the granted store works, others are refused as in Spin.
    assert_eq!(get(&host, "/kv/set?k=revoked&v=yes", &[]).await.0, 200);
    assert_eq!(
        get(&host, "/kv/get?k=revoked", &[]).await,
        (200, "yes".into())
    );
    let (status, body) = get(&host, "/kv/open?label=other", &[]).await;
    assert_eq!(status, 403);
    assert!(body.contains("AccessDenied"), "{body}");

    // Outbound: the templated origin is allowed, anything else is denied with
    // wasi:http's HttpRequestDenied, and `self` reaches the app itself.
    let (status, body) = get(&host, &format!("/fetch?url={origin_url}/x"), &[]).await;
    assert_eq!((status, body.as_str()), (200, "200 origin"));
    let denied = format!("/fetch?url=http://127.0.0.1:{}/x", origin + 1);
    let (status, body) = get(&host, &denied, &[]).await;
    assert_eq!(status, 502);
    assert!(body.contains("HttpRequestDenied"), "{body}");
    let (_, body) = get(&host, "/fetch?url=https://example.com/", &[]).await;
    assert!(body.contains("HttpRequestDenied"), "{body}");
    let (_, body) = get(&host, "/fetch?url=http://self.alt/var?name=message", &[]).await;
    assert_eq!(body, "200 hello, world");

    // Request shape: authority from Host, scheme http, Spin's headers, and a
    // client cannot spoof them.
    let (_, body) = get(&host, "/echo?q=1", &[("spin-client-addr", "6.6.6.6:1")]).await;
    assert!(
        body.contains(&format!("uri=http://{}/echo?q=1", host.addr)),
        "{body}"
    );
    assert!(body.contains("spin-path-info=/echo\n"), "{body}");
    assert!(body.contains("spin-matched-route=/..."), "{body}");
    assert!(body.contains("spin-client-addr=127.0.0.1:"), "{body}");
    assert!(!body.contains("6.6.6.6"), "{body}");
    assert_eq!(
        get(&host, "/.well-known/spin/health", &[]).await,
        (200, "OK".into())
    );

    let log = host.stop();
    assert!(log.contains("GET /var 200 "), "{log}");
    assert!(
        log.contains("denied: not in allowed_outbound_hosts"),
        "{log}"
    );
    // Component stdout lands on the host's stderr.
    assert!(log.contains("fixture: echo /echo"), "{log}");
    assert!(
        !log.contains("q=1 "),
        "access log must not carry the query: {log}"
    );

    // State and the compiled component survive a restart.
    let host = Host::start(dir.path(), &env, &[]);
    assert_eq!(
        get(&host, "/kv/get?k=revoked", &[]).await,
        (200, "yes".into())
    );
    let log = host.stop();
    assert!(log.contains("from cache"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn stuck_component_is_cut_off() {
    let dir = app_dir();
    let host = Host::start(
        dir.path(),
        &[("SPIN_VARIABLE_API_TOKEN", "x")],
        &["--request-timeout", "1"],
    );
    let start = Instant::now();
    let (status, _) = get(&host, "/spin", &[]).await;
    assert_eq!(status, 500);
    assert!(start.elapsed() < Duration::from_secs(10));
    // The host keeps serving afterwards.
    assert_eq!(get(&host, "/var?name=message", &[]).await.0, 200);
    let log = host.stop();
    assert!(log.contains("request exceeded 1 s"), "{log}");
}

#[test]
fn refuses_to_start_with_a_clear_reason() {
    let dir = app_dir();
    let run = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgeauth"));
        cmd.arg("up")
            .arg("--manifest")
            .arg(dir.path().join("spin.toml"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("SPIN_VARIABLE_API_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(&[], &[]);
    assert!(
        err.contains("api_token (set SPIN_VARIABLE_API_TOKEN)"),
        "{err}"
    );
    let err = run(&[("SPIN_VARIABLE_API_TOKEN", "x")], &[]);
    assert!(err.contains("fixture.wasm not found"), "{err}");
    assert!(
        err.contains("cargo build --release --target wasm32-wasip2"),
        "{err}"
    );
    let err = run(
        &[("SPIN_VARIABLE_API_TOKEN", "x")],
        &["--listen", "0.0.0.0:0"],
    );
    assert!(err.contains("--allow-public"), "{err}");
    let err = run(
        &[
            ("SPIN_VARIABLE_API_TOKEN", "x"),
            ("SPIN_VARIABLE_ORIGIN_URL", "https://o.example/path"),
        ],
        &[],
    );
    assert!(err.contains("allowed_outbound_hosts"), "{err}");
}

#[test]
fn check_hides_secrets() {
    let dir = app_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_edgeauth"))
        .arg("check")
        .arg("--manifest")
        .arg(dir.path().join("spin.toml"))
        .env("SPIN_VARIABLE_API_TOKEN", "s3cret")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("greeting = \"hello\" (default)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("api_token = <secret> (env SPIN_VARIABLE_API_TOKEN)"),
        "{stdout}"
    );
    assert!(stdout.contains("token = <secret>"), "{stdout}");
    assert!(!stdout.contains("s3cret"), "{stdout}");
}
