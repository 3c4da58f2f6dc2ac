//! `TraceHttp` around calls from an axum handler (behind the Loggier layer) to a second
//! local server: `traceparent` and `x-request-id` reach it, and slow or failing calls
//! become records with masked headers and query parameters.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use loggier_axum::LoggierRouterExt;
use loggier_core::http::{CaptureSettings, FILTERED};
use loggier_core::outgoing::TraceHttp;
use loggier_test_support::{Records, http_client, test_client};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::Value;

mod support;
use support::serve;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const REQUEST_ID: &str = "req-out-1";
const SECRET: &str = "s3cret-token-9931";
const API_KEY: &str = "key-5521907";
const URL_PASSWORD: &str = "pw-7731-url";

/// `(traceparent, x-request-id)` as the downstream server received them.
type Seen = (Option<String>, Option<String>);

/// The downstream server: checks the propagated headers itself and keeps them.
#[derive(Clone, Default)]
struct Downstream {
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn checked(State(d): State<Downstream>, headers: HeaderMap) -> (StatusCode, String) {
    let tp = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    d.seen.lock().expect("lock").push((tp.clone(), id.clone()));
    let parsed = tp
        .as_deref()
        .and_then(|t| loggier_core::http::TraceParent::parse(t.as_bytes()));
    match (parsed, id.as_deref()) {
        (Some(p), Some(REQUEST_ID)) if p.trace_id == TRACE && p.span_id != CALLER_SPAN => {
            (StatusCode::OK, "headers ok".into())
        }
        other => (
            StatusCode::BAD_REQUEST,
            format!("bad propagation: {other:?}"),
        ),
    }
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_millis(250)).await;
    "slow"
}

async fn unavailable() -> (StatusCode, &'static str) {
    (StatusCode::SERVICE_UNAVAILABLE, "down")
}

/// The service under test: each route makes one outgoing call and answers with the
/// downstream status (or 502 when the call failed).
#[derive(Clone)]
struct Upstream {
    client: ClientWithMiddleware,
    downstream: String,
}

async fn call(State(u): State<Upstream>, RawQuery(q): RawQuery) -> (StatusCode, String) {
    let path = q.unwrap_or_default();
    let url = match path.as_str() {
        "refused" => "http://127.0.0.1:9/nothing-listens".to_string(),
        "refused-creds" => format!("http://svc:{URL_PASSWORD}@127.0.0.1:9/creds?token=t-1"),
        p => format!("{}/{p}?api_key={API_KEY}&page=2", u.downstream),
    };
    match u.client.get(url).bearer_auth(SECRET).send().await {
        Ok(resp) => {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            (
                StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::OK),
                body,
            )
        }
        Err(e) => (StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

async fn setup() -> (String, Downstream, Records) {
    let downstream = Downstream::default();
    let b = serve(
        Router::new()
            .route("/checked", get(checked))
            .route("/slow", get(slow))
            .route("/unavailable", get(unavailable))
            .with_state(downstream.clone()),
    )
    .await;
    let (loggier, records) = test_client("outgoing");
    let settings = CaptureSettings::builder()
        .slow_request_threshold(Duration::from_millis(200))
        .build()
        .expect("valid");
    let client = reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client"),
    )
    .with(TraceHttp::with_settings(loggier.clone(), settings).tag("payments"))
    .build();
    let a = serve(
        Router::new()
            .route("/call", get(call))
            .with_state(Upstream {
                client,
                downstream: format!("http://{b}"),
            })
            .with_loggier(loggier),
    )
    .await;
    (format!("http://{a}"), downstream, records)
}

async fn get_with_trace(base: &str, target: &str) -> reqwest::Response {
    http_client()
        .get(format!("{base}/call?{target}"))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .header("x-request-id", REQUEST_ID)
        .send()
        .await
        .expect("request")
}

fn outgoing(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["logger"] == "http.client")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_and_request_id_reach_the_second_server() {
    let (base, downstream, records) = setup().await;
    let resp = get_with_trace(&base, "checked").await;
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert_eq!(
        status, 200,
        "downstream refused the propagated headers: {body}"
    );
    assert_eq!(body, "headers ok");
    let seen = downstream.seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].1.as_deref(), Some(REQUEST_ID));

    // A fast 200 is not recorded (the call's decision is made before the handler
    // answers, so flushing now is enough).
    let all = records.all().await;
    assert!(outgoing(&all).is_empty(), "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_failing_and_refused_calls_are_recorded_with_secrets_masked() {
    let (base, _downstream, records) = setup().await;
    assert_eq!(get_with_trace(&base, "slow").await.status(), 200);
    assert_eq!(get_with_trace(&base, "unavailable").await.status(), 503);
    assert_eq!(get_with_trace(&base, "refused").await.status(), 502);
    assert_eq!(get_with_trace(&base, "refused-creds").await.status(), 502);

    let slow = records
        .wait_for("slow call", |r| {
            r["logger"] == "http.client" && r["timing"]["name"] == "GET 127.0.0.1/slow"
        })
        .await;
    assert_eq!(slow["level"], "WARNING");
    assert_eq!(slow["timing"]["kind"], "http");
    assert_eq!(slow["timing"]["threshold_ms"], 200.0);
    assert!(slow["timing"]["duration_ms"].as_f64().expect("ms") >= 250.0);
    assert!(
        slow["message"]
            .as_str()
            .expect("message")
            .starts_with("Slow outgoing request: GET http://127.0.0.1:"),
        "{slow}"
    );
    assert_eq!(slow["context"]["request_id"], REQUEST_ID);
    assert_eq!(slow["trace_id"], TRACE);
    assert_ne!(slow["span_id"], CALLER_SPAN);
    assert_eq!(slow["tags"], serde_json::json!(["payments"]));
    let request = &slow["context"]["transaction"]["request"];
    assert_eq!(request["headers"]["authorization"], FILTERED);
    assert_eq!(request["query_params"]["api_key"], FILTERED);
    assert_eq!(request["query_params"]["page"], "2");
    assert_eq!(request["headers"]["x-request-id"], REQUEST_ID);
    assert_eq!(
        slow["context"]["transaction"]["response"]["status_code"],
        200
    );

    let failed = records
        .wait_for("503 call", |r| {
            r["logger"] == "http.client"
                && r["context"]["transaction"]["response"]["status_code"] == 503
        })
        .await;
    assert_eq!(failed["level"], "ERROR");
    assert_eq!(failed["context"]["request_id"], REQUEST_ID);
    assert_eq!(
        failed["context"]["transaction"]["request"]["headers"]["authorization"],
        FILTERED
    );

    let refused = records
        .wait_for("refused call", |r| {
            r["logger"] == "http.client"
                && r["message"].as_str().is_some_and(|m| {
                    m.starts_with("Outgoing request failed: GET http://127.0.0.1:9/")
                })
        })
        .await;
    assert_eq!(refused["level"], "ERROR");
    assert!(refused["exception"]["message"].is_string(), "{refused}");

    // A URL with `user:password@`: neither the recorded path nor the error text
    // carries the password.
    let creds = records
        .wait_for("refused call with credentials", |r| {
            r["logger"] == "http.client"
                && r["message"].as_str().is_some_and(|m| {
                    m.starts_with("Outgoing request failed: GET http://127.0.0.1:9/creds")
                })
        })
        .await;
    assert_eq!(
        creds["context"]["transaction"]["request"]["path"], "http://127.0.0.1:9/creds",
        "{creds}"
    );

    let raw = records.raw_text().await;
    assert!(!raw.contains(URL_PASSWORD), "URL password leaked: {raw}");
    assert!(!raw.contains(SECRET), "bearer token leaked");
    assert!(!raw.contains(API_KEY), "api key leaked");
}
