//! OpenTelemetry bridge end to end: behind the Loggier axum layer, a handler's OTel
//! span is a child of the incoming `traceparent`, and a record logged inside that
//! span carries its trace id and span id.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use loggier_axum::{LoggierRouterExt, RequestLogger};
use loggier_test_support::test_client;
use opentelemetry::Context;
use opentelemetry::trace::{FutureExt, Span, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

mod support;
use support::{get_text, serve};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN: &str = "b7ad6b7169203331";

/// Starts a span, logs inside it, answers `"<trace_id> <span_id> <parent_span_id>"`.
async fn handler(State(tracer): State<SdkTracer>, log: RequestLogger) -> String {
    let span = tracer.start("load_order");
    let sc = span.span_context().clone();
    let cx = Context::current_with_span(span);
    async move {
        tokio::task::yield_now().await;
        log.info("inside the handler span");
    }
    .with_context(cx)
    .await;
    format!("{} {}", sc.trace_id(), sc.span_id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_spans_join_the_incoming_trace_and_records_carry_their_ids() {
    let (loggier, records) = test_client("otel");
    let provider = SdkTracerProvider::builder().build();
    let app = Router::new()
        .route("/orders", get(handler))
        .with_state(provider.tracer("handler"))
        .with_loggier(loggier);
    let addr = serve(app).await;

    let body = get_text(
        &format!("http://{addr}/orders"),
        &[
            (
                "traceparent",
                format!("00-{TRACE}-{CALLER_SPAN}-01").as_str(),
            ),
            ("x-request-id", "req-otel-1"),
        ],
    )
    .await;
    let (trace_id, span_id) = body.split_once(' ').expect("two ids");
    assert_eq!(
        trace_id, TRACE,
        "the handler's span joined the caller's trace"
    );
    assert_ne!(span_id, CALLER_SPAN);

    let r = records
        .wait_for("record in span", |r| {
            r["message"] == "inside the handler span"
        })
        .await;
    assert_eq!(r["trace_id"], TRACE);
    assert_eq!(
        r["span_id"], span_id,
        "the handler span's id, not the caller's"
    );
    assert_eq!(r["context"]["request_id"], "req-otel-1");

    // Without a traceparent, the handler's span starts a new trace, and the record
    // logged inside takes that trace from OpenTelemetry.
    let body = get_text(
        &format!("http://{addr}/orders"),
        &[("x-request-id", "req-otel-2")],
    )
    .await;
    let (trace_id, span_id) = body.split_once(' ').expect("two ids");
    assert_ne!(trace_id, TRACE);
    let r = records
        .wait_for("record in new trace", |r| {
            r["message"] == "inside the handler span" && r["context"]["request_id"] == "req-otel-2"
        })
        .await;
    assert_eq!(r["trace_id"], trace_id);
    assert_eq!(r["span_id"], span_id);
}
