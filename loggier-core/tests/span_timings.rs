//! `TracingLayer::span_timings`: spans that close over the threshold become timing
//! records, sync and async (idle time counts).
#![cfg(feature = "tracing")]

use std::time::Duration;

use loggier_core::context::Scope;
use loggier_core::{Level, Loggier, TracingLayer};
use serde_json::Value;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

fn records(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("loggier.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn slow_spans_become_timing_records_and_fast_ones_do_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .data_dir(dir.path())
        .log_level(Level::Debug)
        .build()
        .expect("valid");
    let layer = TracingLayer::new(log.clone()).span_timings(Duration::from_millis(40));
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let _scope = Scope::new().request_id("req-9").enter();
        let outer = tracing::info_span!("checkout", order_id = "ORD-1");
        let _o = outer.enter();
        {
            let _fast = tracing::info_span!("fast_step").entered();
        }
        {
            let _slow =
                tracing::debug_span!(target: "billing", "charge_card", provider = "acme").entered();
            std::thread::sleep(Duration::from_millis(60));
        }
        // Async: the span is open across an idle `.await`; wall time counts.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        rt.block_on(
            async {
                tokio::time::sleep(Duration::from_millis(60)).await;
            }
            .instrument(tracing::info_span!("fetch_rates")),
        );
    });
    assert!(log.flush(Duration::from_secs(10)));
    let all = records(dir.path());
    let timings: Vec<&Value> = all.iter().filter(|r| r.get("timing").is_some()).collect();
    let names: Vec<&str> = timings
        .iter()
        .map(|r| r["timing"]["name"].as_str().expect("name"))
        .collect();
    // "checkout" stays open until the closure ends, after both slow children: it is
    // over the threshold too.
    assert_eq!(names, ["charge_card", "fetch_rates", "checkout"], "{all:?}");

    let charge = timings[0];
    assert_eq!(charge["level"], "DEBUG");
    assert_eq!(charge["logger"], "billing");
    assert_eq!(charge["timing"]["kind"], "function");
    assert_eq!(charge["timing"]["threshold_ms"], 40.0);
    let ms = charge["timing"]["duration_ms"].as_f64().expect("duration");
    assert!(ms >= 60.0, "{ms}");
    assert!(
        charge["message"]
            .as_str()
            .expect("message")
            .starts_with("Slow function: charge_card took "),
        "{charge}"
    );
    // Span fields, the parents' first, and the Loggier scope.
    assert_eq!(charge["context"]["order_id"], "ORD-1");
    assert_eq!(charge["context"]["provider"], "acme");
    assert_eq!(charge["context"]["request_id"], "req-9");

    let fetch = timings[1];
    assert!(fetch["timing"]["duration_ms"].as_f64().expect("duration") >= 60.0);
    assert_eq!(fetch["level"], "INFO");
}

#[test]
fn span_timings_are_off_by_default_and_respect_the_client_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .data_dir(dir.path())
        .build()
        .expect("valid");
    let off = tracing_subscriber::registry().with(TracingLayer::new(log.clone()));
    tracing::subscriber::with_default(off, || {
        let _s = tracing::info_span!("untimed").entered();
        std::thread::sleep(Duration::from_millis(5));
    });
    // Client at info: a debug span over the threshold is not recorded.
    let on = tracing_subscriber::registry()
        .with(TracingLayer::new(log.clone()).span_timings(Duration::ZERO));
    tracing::subscriber::with_default(on, || {
        let _d = tracing::debug_span!("debug_span").entered();
        let _i = tracing::info_span!("info_span").entered();
    });
    assert!(log.flush(Duration::from_secs(10)));
    let names: Vec<String> = records(dir.path())
        .iter()
        .map(|r| r["timing"]["name"].as_str().unwrap_or("-").to_string())
        .collect();
    assert_eq!(names, ["info_span"]);
}
