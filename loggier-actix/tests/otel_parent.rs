//! Feature `opentelemetry`: behind the actix middleware, a handler's OpenTelemetry
//! span is a child of the incoming `traceparent`, and a record logged inside it
//! carries the span's ids. Real server on 127.0.0.1:0, real HTTP client.
#![cfg(feature = "opentelemetry")]

use actix_web::{App, HttpServer, web};
use loggier_actix::{Loggier, RequestLogger};
use loggier_test_support::{http_client, test_client};
use opentelemetry::Context;
use opentelemetry::trace::{FutureExt, Span, TraceContextExt, Tracer, TracerProvider};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

async fn handler(tracer: web::Data<SdkTracer>, log: RequestLogger) -> String {
    let span = tracer.start("load_order");
    let sc = span.span_context().clone();
    async move {
        actix_web::rt::task::yield_now().await;
        log.info("inside the handler span");
    }
    .with_context(Context::current_with_span(span))
    .await;
    format!("{} {}", sc.trace_id(), sc.span_id())
}

#[actix_web::test]
async fn handler_spans_join_the_incoming_traceparent() {
    let (client, records) = test_client("actix-otel");
    let tracer = SdkTracerProvider::builder().build().tracer("actix");
    let app_client = client.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(tracer.clone()))
            .wrap(Loggier::new(app_client.clone()))
            .route("/orders", web::get().to(handler))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(("127.0.0.1", 0))
    .expect("bind 127.0.0.1:0");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let body = http_client()
        .get(format!("http://{addr}/orders"))
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .header("x-request-id", "req-actix-otel")
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
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
    assert_eq!(r["span_id"], span_id);
    assert_eq!(r["context"]["request_id"], "req-actix-otel");
    handle.stop(true).await;
}
