//! The OpenTelemetry bridge: records logged inside an OTel span carry its ids, and a
//! request frame entered with `instrument_request` is the OTel parent of the
//! handler's spans.
#![cfg(feature = "opentelemetry")]

use std::time::Duration;

use loggier_core::Loggier;
use loggier_core::context::{Scope, instrument_request};
use opentelemetry::Context;
use opentelemetry::trace::{FutureExt, Span, TraceContextExt, Tracer, TracerProvider};
use serde_json::Value;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn records(log: &Loggier, dir: &std::path::Path) -> Vec<Value> {
    assert!(log.flush(Duration::from_secs(10)));
    std::fs::read_to_string(dir.join("loggier.ndjson"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn a_record_logged_inside_an_otel_span_carries_its_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .data_dir(dir.path())
        .build()
        .expect("valid");
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = provider.tracer("test");
    let (trace_id, span_id) = tracer.in_span("reconcile", |cx| {
        log.info("inside the span");
        let sc = cx.span().span_context().clone();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    });
    log.info("outside any span");
    let all = records(&log, dir.path());
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["trace_id"], trace_id.as_str());
    assert_eq!(all[0]["span_id"], span_id.as_str());
    assert!(all[1].get("trace_id").is_none(), "{}", all[1]);
}

#[tokio::test]
async fn the_request_frame_is_the_otel_parent_of_the_handler() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .data_dir(dir.path())
        .build()
        .expect("valid");
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = provider.tracer("handler");

    // What a middleware does with an incoming `traceparent`.
    let frame = Scope::new()
        .request_id("req-1")
        .trace(TRACE, Some(CALLER_SPAN.to_string()))
        .into_frame();
    let handler_log = log.clone();
    let handler = async move {
        tokio::task::yield_now().await; // polled again: still attached
        let span = tracer.start("load_order");
        let sc = span.span_context().clone();
        let cx = Context::current_with_span(span);
        async {
            tokio::task::yield_now().await;
            handler_log.info("loading order");
        }
        .with_context(cx)
        .await;
        sc
    };
    let sc = instrument_request(frame, || handler).await;
    assert_eq!(
        sc.trace_id().to_string(),
        TRACE,
        "parent trace from traceparent"
    );
    assert!(
        !Context::current().has_active_span(),
        "detached after the request"
    );

    let all = records(&log, dir.path());
    assert_eq!(all.len(), 1);
    let r = &all[0];
    assert_eq!(r["trace_id"], TRACE);
    assert_eq!(
        r["span_id"],
        sc.span_id().to_string().as_str(),
        "the handler's own span"
    );
    assert_eq!(r["context"]["request_id"], "req-1");
}
