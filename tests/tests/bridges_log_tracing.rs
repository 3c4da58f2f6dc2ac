//! `log::` and `tracing::` calls inside an axum handler behind the Loggier layer carry
//! the request id, and an instrumented span over the threshold becomes a timing record
//! of that request. Own binary: installs the process-wide `log` logger and `tracing`
//! subscriber.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use loggier_axum::LoggierRouterExt;
use loggier_core::TracingLayer;
use loggier_test_support::{http_client, test_client};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

mod support;
use support::serve;

async fn handler() -> &'static str {
    log::info!(target: "orders", order = 7; "via log before await");
    tracing::info!(order = 7, "via tracing before await");
    tokio::time::sleep(Duration::from_millis(1)).await;
    log::warn!("via log after await");
    tracing::warn!("via tracing after await");
    async {
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    .instrument(tracing::info_span!("load_order", order = 7))
    .await;
    "ok"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_and_tracing_calls_in_a_handler_carry_the_request_id() {
    let (loggier, records) = test_client("bridges");
    loggier_core::log_bridge::init(loggier.clone(), log::LevelFilter::Info).expect("log bridge");
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(TracingLayer::new(loggier.clone()).span_timings(Duration::from_millis(50))),
    )
    .expect("subscriber");

    let app = Router::new()
        .route("/orders/{id}", get(handler))
        .with_loggier(loggier.clone());
    let addr = serve(app).await;

    let resp = http_client()
        .get(format!("http://{addr}/orders/7"))
        .header("x-request-id", "req-bridges-1")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "req-bridges-1");

    for message in [
        "via log before await",
        "via tracing before await",
        "via log after await",
        "via tracing after await",
    ] {
        let r = records.wait_for(message, |r| r["message"] == message).await;
        assert_eq!(r["context"]["request_id"], "req-bridges-1", "{r}");
        assert_eq!(r["context"]["route"], "/orders/{id}", "{r}");
    }
    let first = records
        .wait_for("log record", |r| r["message"] == "via log before await")
        .await;
    assert_eq!(first["logger"], "orders");
    assert_eq!(first["context"]["order"], 7);

    let timing = records
        .wait_for("span timing", |r| r["timing"]["name"] == "load_order")
        .await;
    assert_eq!(timing["context"]["request_id"], "req-bridges-1");
    assert_eq!(timing["timing"]["kind"], "function");
    assert!(timing["timing"]["duration_ms"].as_f64().expect("ms") >= 80.0);
}
