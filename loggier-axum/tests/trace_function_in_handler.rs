//! A `#[trace_function]` called from an axum handler behind the Loggier layer: its
//! timing record carries the request id and names the request (or the enclosing
//! timing) as its parent. Global state (`set_global`): its own test binary.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use loggier_axum::{LoggierRouterExt, trace_function};
use loggier_test_support::scenarios::new_id;
use loggier_test_support::test_client;

#[trace_function(name = "handler.price_cart", threshold_ms = 0, include_args = true)]
async fn price_cart(items: Vec<u32>) -> u32 {
    tokio::time::sleep(Duration::from_millis(2)).await;
    items.iter().sum::<u32>() + tax(items.len())
}

#[trace_function(name = "handler.tax", threshold_ms = 0)]
fn tax(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

async fn checkout() -> String {
    price_cart(vec![100, 250]).await.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timing_records_from_a_handler_carry_the_request_and_their_parents() {
    let (log, records) = test_client("trace-in-handler");
    loggier_core::set_global(log.clone());
    let app: Router = Router::new()
        .route("/checkout", get(checkout))
        .with_loggier(log.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let id = new_id("timed");
    let resp = loggier_test_support::http_client()
        .get(format!("{base}/checkout"))
        .header("x-request-id", &id)
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .expect("request");
    assert_eq!(resp.text().await.expect("body"), "352");

    let outer = records
        .wait_for("price_cart timing", |r| {
            r["timing"]["name"] == "handler.price_cart"
        })
        .await;
    assert_eq!(outer["context"]["request_id"], id.as_str());
    assert_eq!(outer["timing"]["parent"], id.as_str());
    assert_eq!(outer["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(outer["context"]["args"]["items"], "[100, 250]");
    assert!(outer["timing"]["duration_ms"].as_f64().unwrap_or(0.0) >= 2.0);

    let inner = records
        .wait_for("tax timing", |r| r["timing"]["name"] == "handler.tax")
        .await;
    assert_eq!(inner["timing"]["parent"], outer["timing"]["id"]);
    assert_eq!(inner["context"]["request_id"], id.as_str());
}
