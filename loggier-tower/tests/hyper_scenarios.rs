//! The shared adapter scenarios against a plain hyper 1 server wrapped with
//! `LoggierLayer`, on 127.0.0.1:0, driven by reqwest.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use loggier_core::Loggier;
use loggier_core::http::CaptureSettings;
use loggier_test_support::app::{ms_param, status_param};
use loggier_test_support::scenarios::{self, new_id};
use loggier_test_support::{
    Records, StreamGate, endless_chunks, endpoint_settings, scenario_settings, stream_chunks,
    test_client,
};
use loggier_tower::{ClientAddr, LoggierLayer, RequestBody, track_endpoint};
use tower::{ServiceBuilder, service_fn};

type AppBody = BoxBody<Bytes, std::io::Error>;

#[derive(Clone)]
struct App {
    loggier: Loggier,
    gate: StreamGate,
}

fn text(status: u16, body: impl Into<Bytes>) -> Response<AppBody> {
    let mut resp = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    resp.headers_mut()
        .insert("content-type", "text/plain".parse().expect("header"));
    resp
}

fn streaming<S>(status: u16, stream: S) -> Response<AppBody>
where
    S: futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
{
    let body = StreamBody::new(stream.map_ok(Frame::data));
    let mut resp = Response::new(BodyExt::boxed(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    resp.headers_mut()
        .insert("content-type", "text/plain".parse().expect("header"));
    resp
}

// The endpoint routes of the contract: plain async fns called by the service, each
// with its `#[track_endpoint]`.

#[track_endpoint(tags = ["lookup"], statuses = [404])]
async fn endpoint_missing(q: Option<&str>) -> Response<AppBody> {
    text(status_param(q, 404), "missing")
}

#[track_endpoint(tags = ["checkout", "critical"])]
async fn endpoint_tagged(q: Option<&str>) -> Response<AppBody> {
    text(status_param(q, 200), "tagged")
}

#[track_endpoint(capture_request_body = true, capture_response_body = true, statuses = ["2xx", "4xx"])]
async fn endpoint_body(req: Request<RequestBody<Incoming>>) -> Response<AppBody> {
    let status = status_param(req.uri().query(), 200);
    echo(status, req).await
}

#[track_endpoint(slow_threshold_ms = 50)]
async fn endpoint_slow(q: Option<&str>) -> Response<AppBody> {
    tokio::time::sleep(Duration::from_millis(ms_param(q))).await;
    text(200, "slow")
}

/// Answers `status` with the request's body and `Content-Type`.
async fn echo(status: u16, req: Request<RequestBody<Incoming>>) -> Response<AppBody> {
    let ct = req.headers().get("content-type").cloned();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let mut resp = text(status, body);
    if let Some(ct) = ct {
        resp.headers_mut().insert("content-type", ct);
    }
    resp
}

async fn route(
    app: App,
    req: Request<RequestBody<Incoming>>,
) -> Result<Response<AppBody>, Infallible> {
    let query = req.uri().query().map(str::to_string);
    let q = query.as_deref();
    let path = req.uri().path().to_string();
    let resp = match (req.method().as_str(), path.as_str()) {
        ("GET", "/ok") => text(200, "ok"),
        ("GET", p) if p.starts_with("/status/") => {
            let code = p["/status/".len()..].parse().unwrap_or(400);
            text(code, format!("status {code}"))
        }
        ("GET", "/slow") => {
            tokio::time::sleep(Duration::from_millis(ms_param(q))).await;
            text(200, "slow")
        }
        ("GET", "/health") => text(status_param(q, 200), "healthy"),
        ("POST", "/echo") => echo(status_param(q, 200), req).await,
        ("GET", "/endpoint/missing") => endpoint_missing(q).await,
        ("GET", "/endpoint/tagged") => endpoint_tagged(q).await,
        ("POST", "/endpoint/body") => endpoint_body(req).await,
        ("GET", "/endpoint/slow") => endpoint_slow(q).await,
        ("GET", "/log") => {
            app.loggier.info("inside handler");
            tokio::time::sleep(Duration::from_millis(1)).await;
            app.loggier.info("after await");
            text(200, "logged")
        }
        ("GET", "/stream") => streaming(status_param(q, 200), stream_chunks(app.gate.clone())),
        ("GET", "/stream/release") => {
            app.gate.release();
            text(200, "released")
        }
        ("GET", "/endless") => streaming(status_param(q, 200), endless_chunks()),
        ("GET", "/panic") => panic!("boom from handler"),
        _ => text(404, "not found"),
    };
    Ok(resp)
}

async fn start_server(loggier: Loggier, settings: CaptureSettings) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let layer = LoggierLayer::new(loggier.clone()).settings(settings);
    let app = App {
        loggier,
        gate: StreamGate::default(),
    };
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let app = app.clone();
            let svc = ServiceBuilder::new()
                .map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    req
                })
                .layer(layer.clone())
                .service(service_fn(move |req| route(app.clone(), req)));
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

async fn setup() -> (String, Records) {
    let (loggier, records) = test_client("hyper-test");
    (start_server(loggier, scenario_settings()).await, records)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_scenarios_pass_on_plain_hyper() {
    let (base, records) = setup().await;
    scenarios::run_common(&base, &records).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_scenarios_pass_on_plain_hyper() {
    let (loggier, records) = test_client("hyper-endpoint-test");
    let base = start_server(loggier, endpoint_settings()).await;
    scenarios::run_endpoint(&base, &records).await;
}

/// With plain hyper a panicking handler takes its connection down (hyper has no 500
/// to send); the request is still recorded with the panic message and backtrace, and
/// the server keeps serving other connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_panic_is_recorded_and_server_survives() {
    let (base, records) = setup().await;
    let id = new_id("hyper-panic");
    let result = loggier_test_support::http_client()
        .get(format!("{base}/panic"))
        .header("x-request-id", &id)
        .send()
        .await;
    assert!(result.is_err(), "the connection is dropped: {result:?}");
    let r = records.transaction(&id).await;
    assert_eq!(r["level"], "ERROR");
    assert_eq!(r["message"], "Handler panicked: GET /panic");
    assert_eq!(r["exception"]["type"], "panic");
    let msg = r["exception"]["message"].as_str().unwrap_or_default();
    assert!(msg.starts_with("boom from handler"), "{msg}");
    assert!(r["exception"]["stacktrace"].is_string(), "{r}");
    let ok = loggier_test_support::http_client()
        .get(format!("{base}/ok"))
        .send()
        .await
        .expect("still serving");
    assert_eq!(ok.status().as_u16(), 200);
}

/// The peer address from the `ClientAddr` extension becomes the record's client ip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ip_comes_from_the_connection() {
    let (base, records) = setup().await;
    let id = new_id("peer");
    let resp = loggier_test_support::http_client()
        .get(format!("{base}/status/500"))
        .header("x-request-id", &id)
        .header("user-agent", "scenario-agent/1")
        .send()
        .await
        .expect("request");
    let _ = resp.bytes().await;
    let r = records.transaction(&id).await;
    let req = &r["context"]["transaction"]["request"];
    assert_eq!(req["client_ip"], "127.0.0.1");
    assert_eq!(req["user_agent"], "scenario-agent/1");
}
