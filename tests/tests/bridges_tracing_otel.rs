//! OpenTelemetry through `tracing-opentelemetry`: with its layer and the Loggier
//! `TracingLayer` on one subscriber, a `tracing` span in an axum handler joins the
//! incoming `traceparent`, and `tracing::info!` inside it becomes a record carrying
//! that span's OTel trace id and span id. Own binary: installs the global subscriber.

use axum::Router;
use axum::routing::get;
use loggier_axum::LoggierRouterExt;
use loggier_core::TracingLayer;
use loggier_test_support::test_client;
use opentelemetry::trace::{TraceContextExt, TracerProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

mod support;
use support::{get_text, serve};

const TRACE: &str = "5bf92f3577b34da6a3ce929d0e0e4737";
const CALLER_SPAN: &str = "10f067aa0ba902b8";

async fn handler() -> String {
    let span = tracing::info_span!("load_order", order = 7);
    async {
        tokio::task::yield_now().await;
        tracing::info!("inside a tracing span");
        let cx = tracing::Span::current().context();
        let sc = cx.span().span_context().clone();
        format!("{} {}", sc.trace_id(), sc.span_id())
    }
    .instrument(span)
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_events_in_otel_bridged_spans_carry_the_span_ids() {
    let (loggier, records) = test_client("tracing-otel");
    let provider = SdkTracerProvider::builder().build();
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("svc")))
            .with(TracingLayer::new(loggier.clone())),
    )
    .expect("subscriber");

    let app = Router::new()
        .route("/orders", get(handler))
        .with_loggier(loggier);
    let addr = serve(app).await;

    let body = get_text(
        &format!("http://{addr}/orders"),
        &[
            (
                "traceparent",
                format!("00-{TRACE}-{CALLER_SPAN}-01").as_str(),
            ),
            ("x-request-id", "req-tracing-otel"),
        ],
    )
    .await;
    let (trace_id, span_id) = body.split_once(' ').expect("two ids");
    assert_eq!(
        trace_id, TRACE,
        "the tracing span's OTel parent is the caller"
    );
    assert_ne!(span_id, CALLER_SPAN);

    let r = records
        .wait_for("event in span", |r| r["message"] == "inside a tracing span")
        .await;
    assert_eq!(r["trace_id"], TRACE);
    assert_eq!(r["span_id"], span_id, "the tracing span's OTel span id");
    assert_eq!(r["context"]["request_id"], "req-tracing-otel");
    assert_eq!(r["context"]["order"], 7);
}
