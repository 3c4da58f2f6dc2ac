//! The shared adapter scenarios against an axum server using `with_loggier_settings`,
//! on 127.0.0.1:0, driven by reqwest.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use loggier_axum::{CaptureSettings, LoggierRouterExt, RequestLogger, track_endpoint};
use loggier_test_support::app::{ms_param, status_param};
use loggier_test_support::scenarios::{self, new_id};
use loggier_test_support::{
    Records, StreamGate, endless_chunks, endpoint_settings, scenario_settings, stream_chunks,
    test_client,
};

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

fn text(code: u16, body: impl Into<Body>) -> Response {
    (status(code), [(CONTENT_TYPE, "text/plain")], body.into()).into_response()
}

async fn status_route(Path(code): Path<u16>) -> Response {
    text(code, format!("status {code}"))
}

async fn slow(RawQuery(q): RawQuery) -> &'static str {
    tokio::time::sleep(Duration::from_millis(ms_param(q.as_deref()))).await;
    "slow"
}

async fn health(log: Option<RequestLogger>, RawQuery(q): RawQuery) -> Response {
    // Excluded from capture: no request logger.
    let body = if log.is_some() { "captured" } else { "healthy" };
    text(status_param(q.as_deref(), 200), body)
}

async fn echo(RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    let mut resp = text(status_param(q.as_deref(), 200), body);
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        resp.headers_mut().insert(CONTENT_TYPE, ct.clone());
    }
    resp
}

async fn log_route(log: RequestLogger) -> &'static str {
    // Plain client calls carry the scope too; use the extractor for one, the client for
    // the other.
    log.info("inside handler");
    tokio::time::sleep(Duration::from_millis(1)).await;
    log.client().info("after await");
    "logged"
}

async fn stream(State(gate): State<StreamGate>, RawQuery(q): RawQuery) -> Response {
    text(
        status_param(q.as_deref(), 200),
        Body::from_stream(stream_chunks(gate)),
    )
}

async fn release(State(gate): State<StreamGate>) -> &'static str {
    gate.release();
    "released"
}

async fn endless(RawQuery(q): RawQuery) -> Response {
    text(
        status_param(q.as_deref(), 200),
        Body::from_stream(endless_chunks()),
    )
}

async fn boom() -> &'static str {
    panic!("boom from handler")
}

async fn route_template(log: RequestLogger, Path(id): Path<u32>) -> Response {
    log.info("route handler");
    text(500, format!("{id} {}", log.route().unwrap_or("none")))
}

// The endpoint routes of the contract: axum handlers with `#[track_endpoint]`.

#[track_endpoint(tags = ["lookup"], statuses = [404])]
async fn endpoint_missing(RawQuery(q): RawQuery) -> Response {
    text(status_param(q.as_deref(), 404), "missing")
}

#[track_endpoint(tags = ["checkout", "critical"])]
async fn endpoint_tagged(RawQuery(q): RawQuery) -> Response {
    text(status_param(q.as_deref(), 200), "tagged")
}

// The `Bytes` extractor reads the whole body before this function starts: the
// middleware's provisional copy is what ends up in the record.
#[track_endpoint(capture_request_body = true, capture_response_body = true, statuses = ["2xx", "4xx"])]
async fn endpoint_body(RawQuery(q): RawQuery, headers: HeaderMap, body: Bytes) -> Response {
    echo(RawQuery(q), headers, body).await
}

#[track_endpoint(slow_threshold_ms = 50)]
async fn endpoint_slow(RawQuery(q): RawQuery) -> &'static str {
    tokio::time::sleep(Duration::from_millis(ms_param(q.as_deref()))).await;
    "slow"
}

async fn setup() -> (String, Records) {
    let (loggier, records) = test_client("axum-test");
    (serve(loggier, scenario_settings()).await, records)
}

async fn serve(loggier: loggier_core::Loggier, settings: CaptureSettings) -> String {
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .route("/status/{code}", get(status_route))
        .route("/slow", get(slow))
        .route("/health", get(health))
        .route("/echo", post(echo))
        .route("/log", get(log_route))
        .route("/stream", get(stream))
        .route("/stream/release", get(release))
        .route("/endless", get(endless))
        .route("/panic", get(boom))
        .route("/users/{id}/orders", get(route_template))
        .route("/endpoint/missing", get(endpoint_missing))
        .route("/endpoint/tagged", get(endpoint_tagged))
        .route("/endpoint/body", post(endpoint_body))
        .route("/endpoint/slow", get(endpoint_slow))
        .with_state(StreamGate::default())
        .with_loggier_settings(loggier, settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_scenarios_pass_on_axum() {
    let (base, records) = setup().await;
    scenarios::run_common(&base, &records).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_scenarios_pass_on_axum() {
    let (loggier, records) = test_client("axum-endpoint-test");
    let base = serve(loggier, endpoint_settings()).await;
    scenarios::run_endpoint(&base, &records).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_panic_becomes_500_and_is_recorded() {
    let (base, records) = setup().await;
    scenarios::panic_becomes_500(&base, &records).await;
}

/// On an excluded path the handler gets no request logger (and no scope).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_paths_have_no_request_logger() {
    let (base, _records) = setup().await;
    let resp = loggier_test_support::http_client()
        .get(format!("{base}/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.text().await.expect("body"), "healthy");
}

/// The record carries axum's route template and the client address from
/// `ConnectInfo`; the handler sees the same route through the extractor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_template_and_client_ip_are_recorded() {
    let (base, records) = setup().await;
    let id = new_id("route");
    let resp = loggier_test_support::http_client()
        .get(format!("{base}/users/42/orders"))
        .header("x-request-id", &id)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 500);
    assert_eq!(resp.text().await.expect("body"), "42 /users/{id}/orders");
    let r = records.transaction(&id).await;
    let req = &r["context"]["transaction"]["request"];
    assert_eq!(req["route"], "/users/{id}/orders");
    assert_eq!(req["path"], "/users/42/orders");
    assert_eq!(req["client_ip"], "127.0.0.1");
    let log = records
        .wait_for("handler log with the route", |r| {
            r["message"] == "route handler" && r["context"]["request_id"] == id.as_str()
        })
        .await;
    assert_eq!(log["context"]["route"], "/users/{id}/orders");
}
