//! OTLP/HTTP sink against a loopback collector that decodes `ExportLogsServiceRequest`
//! with the official `opentelemetry-proto` types.
#![cfg(feature = "otlp")]

mod otlp_support;

use std::time::Duration;

use loggier_core::context::Scope;
use loggier_core::mask::FILTERED;
use loggier_core::{
    Exception, HttpRequest, HttpResponse, HttpTransaction, Level, Loggier, OtlpCompression,
    OtlpSink, OtlpSinkBuilder, Record, SendOutcome,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use otlp_support::*;
use prost::Message;
use serde_json::json;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID: &str = "00f067aa0ba902b7";

fn sink_for(c: &HttpCollector) -> OtlpSink {
    OtlpSink::builder()
        .endpoint(c.base_url())
        .timeout(Duration::from_secs(5))
        .build()
        .expect("valid sink")
}

#[test]
fn export_carries_resource_severity_body_ids_attributes_and_exception() {
    let c = HttpCollector::start();
    let mut sink = OtlpSink::builder()
        .endpoint(c.base_url())
        .header("x-api-key", "k-123")
        .resource_attribute("team", "payments")
        .build()
        .expect("valid sink");

    let mut rec = Record::new(Level::Error, "payment failed")
        .with_timestamp_ns(1_741_520_489_000_123_456)
        .with_logger("shop::billing")
        .with_field("order_id", 42)
        .with_field(
            "cart",
            json!({"items": [{"sku": "A1", "qty": 2}], "total": 19.99}),
        )
        .with_tag("billing")
        .with_tag("eu");
    let mut exc = Exception::new("std::io::Error", "connection reset by peer");
    exc.backtrace =
        Some("   0: shop::billing::charge\n             at ./src/billing.rs:42:9\n".into());
    rec = rec.with_exception(exc);
    rec.trace_id = Some(TRACE_ID.into());
    rec.span_id = Some(SPAN_ID.into());
    rec.request_id = Some("req-7".into());
    let warn = Record::new(Level::Warning, "slow").with_timestamp_ns(1_741_520_490_000_000_000);

    let out = encode_and_send(&mut sink, &[rec, warn], &service());
    assert_eq!(out, vec![SendOutcome::Delivered]);

    let got = c.received();
    assert_eq!(got.len(), 1);
    let req = &got[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/v1/logs");
    assert_eq!(req.headers["content-type"], "application/x-protobuf");
    assert_eq!(req.headers["x-api-key"], "k-123");
    assert!(req.headers.get("content-encoding").is_none());

    let rl = &req.request.resource_logs[0];
    let res = &rl.resource.as_ref().expect("resource").attributes;
    assert_eq!(str_attr(res, "service.name"), Some("orders"));
    assert_eq!(str_attr(res, "service.version"), Some("1.2.3"));
    assert_eq!(
        str_attr(res, "deployment.environment.name"),
        Some("staging")
    );
    assert_eq!(str_attr(res, "service.namespace"), Some("shop"));
    assert_eq!(str_attr(res, "team"), Some("payments"));
    assert_eq!(str_attr(res, "telemetry.sdk.name"), Some("loggier"));
    let scope = rl.scope_logs[0].scope.as_ref().expect("scope");
    assert_eq!(scope.name, "loggier");

    let records = req.log_records();
    assert_eq!(records.len(), 2);
    let r = &records[0];
    assert_eq!(r.time_unix_nano, 1_741_520_489_000_123_456);
    assert_eq!(r.observed_time_unix_nano, 1_741_520_489_000_123_456);
    assert_eq!(r.severity_number, 17, "ERROR");
    assert_eq!(r.severity_text, "ERROR");
    assert_eq!(body_text(r), Some("payment failed"));
    assert_eq!(
        r.trace_id,
        vec![
            0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e,
            0x47, 0x36
        ]
    );
    assert_eq!(
        r.span_id,
        vec![0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]
    );

    let a = &r.attributes;
    assert_eq!(attr(a, "order_id"), Some(&Value::IntValue(42)));
    let cart = kvlist(attr(a, "cart").expect("cart"));
    assert_eq!(attr(cart, "total"), Some(&Value::DoubleValue(19.99)));
    let items = array(attr(cart, "items").expect("items"));
    let first = kvlist(items[0].as_ref().expect("item"));
    assert_eq!(str_attr(first, "sku"), Some("A1"));
    assert_eq!(attr(first, "qty"), Some(&Value::IntValue(2)));
    assert_eq!(
        array(attr(a, "loggier.tags").expect("tags")),
        vec![Some(s("billing")), Some(s("eu"))]
    );
    assert_eq!(str_attr(a, "loggier.request_id"), Some("req-7"));
    assert_eq!(str_attr(a, "loggier.logger"), Some("shop::billing"));
    assert_eq!(str_attr(a, "exception.type"), Some("std::io::Error"));
    assert_eq!(
        str_attr(a, "exception.message"),
        Some("connection reset by peer")
    );
    assert!(
        str_attr(a, "exception.stacktrace").is_some_and(|st| st.contains("shop::billing::charge"))
    );

    let w = &records[1];
    assert_eq!(w.severity_number, 13, "WARN");
    assert_eq!(w.severity_text, "WARNING");
    assert!(w.trace_id.is_empty() && w.span_id.is_empty());
}

#[test]
fn http_transaction_uses_semantic_convention_names() {
    let c = HttpCollector::start();
    let mut sink = sink_for(&c);
    let mut req = HttpRequest::default();
    req.method = "POST".into();
    req.path = "/api/orders/17".into();
    req.route = Some("/api/orders/{id}".into());
    req.query.insert("expand".into(), "items".into());
    req.query.insert("token".into(), FILTERED.into());
    req.client_ip = Some("203.0.113.9".into());
    req.user_agent = Some("curl/8.5".into());
    req.headers.insert("authorization".into(), FILTERED.into());
    let mut tx = HttpTransaction::new(req);
    let mut resp = HttpResponse::default();
    resp.status_code = 503;
    tx.response = Some(resp);
    tx.duration_ms = 250.0;
    let rec = Record::new(Level::Error, "Server error: POST /api/orders/17 - 503").with_http(tx);

    assert_eq!(
        encode_and_send(&mut sink, &[rec], &service()),
        vec![SendOutcome::Delivered]
    );
    let records = c.records();
    let a = &records[0].attributes;
    assert_eq!(str_attr(a, "http.request.method"), Some("POST"));
    assert_eq!(str_attr(a, "url.path"), Some("/api/orders/17"));
    assert_eq!(str_attr(a, "http.route"), Some("/api/orders/{id}"));
    assert_eq!(
        str_attr(a, "url.query"),
        Some("expand=items&token=[FILTERED]")
    );
    assert_eq!(str_attr(a, "client.address"), Some("203.0.113.9"));
    assert_eq!(str_attr(a, "user_agent.original"), Some("curl/8.5"));
    assert_eq!(
        attr(a, "http.response.status_code"),
        Some(&Value::IntValue(503))
    );
    assert_eq!(
        attr(a, "http.server.request.duration"),
        Some(&Value::DoubleValue(0.25))
    );
    assert_eq!(
        array(attr(a, "http.request.header.authorization").expect("header")),
        vec![Some(s(FILTERED))]
    );
}

#[test]
fn env_configured_gzip_headers_and_resource_reach_the_collector() {
    let c = HttpCollector::start();
    let base = format!("{}/otlp/", c.base_url());
    let env = move |name: &str| -> Option<String> {
        match name {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(base.clone()),
            "OTEL_EXPORTER_OTLP_HEADERS" => Some("x-api-key=a%3Db%2Cc, x-tenant = acme".into()),
            "OTEL_EXPORTER_OTLP_COMPRESSION" => Some("none".into()),
            "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION" => Some("gzip".into()),
            "OTEL_EXPORTER_OTLP_TIMEOUT" => Some("5000".into()),
            "OTEL_RESOURCE_ATTRIBUTES" => Some("service.name=ignored,k8s.pod.name=api-0".into()),
            "OTEL_SERVICE_NAME" => Some("orders-env".into()),
            _ => None,
        }
    };
    let mut sink = OtlpSinkBuilder::from_env_lookup(env)
        .and_then(OtlpSinkBuilder::build)
        .expect("valid env");
    let records: Vec<Record> = (0..50)
        .map(|i| Record::new(Level::Info, format!("line {i} {}", "abc".repeat(20))))
        .collect();
    let out = encode_and_send(&mut sink, &records, &service());
    assert_eq!(out, vec![SendOutcome::Delivered]);

    let got = c.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/otlp/v1/logs");
    assert_eq!(got[0].headers["content-encoding"], "gzip");
    assert_eq!(got[0].headers["x-api-key"], "a=b,c");
    assert_eq!(got[0].headers["x-tenant"], "acme");
    let res = &got[0].request.resource_logs[0]
        .resource
        .as_ref()
        .expect("resource")
        .attributes;
    assert_eq!(str_attr(res, "service.name"), Some("orders-env"));
    assert_eq!(str_attr(res, "k8s.pod.name"), Some("api-0"));
    let bodies: Vec<_> = got[0]
        .log_records()
        .iter()
        .map(|r| body_text(r).map(str::to_string))
        .collect();
    assert_eq!(bodies.len(), 50);
    assert_eq!(bodies[49].as_deref(), Some(&*records[49].message));
}

#[test]
fn statuses_429_502_503_504_retry_with_retry_after_and_others_reject() {
    let c = HttpCollector::start();
    let mut sink = sink_for(&c);
    let rpc_status = tonic_types::Status {
        code: 3,
        message: "log record has an invalid trace id".into(),
        details: vec![],
    };
    c.script([
        Reply::status(429).header("retry-after", "7"),
        Reply::status(503).header("retry-after", "2"),
        Reply::status(502),
        Reply::status(504),
        Reply::status(400)
            .header("content-type", "application/x-protobuf")
            .body(rpc_status.encode_to_vec()),
        Reply::status(500),
        Reply::status(401),
    ]);
    let rec = Record::new(Level::Info, "x");
    let mut outcomes = Vec::new();
    for _ in 0..7 {
        outcomes.extend(encode_and_send(
            &mut sink,
            std::slice::from_ref(&rec),
            &service(),
        ));
    }
    assert_eq!(
        outcomes[0],
        SendOutcome::Retry {
            reason: "http 429".into(),
            retry_after: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(
        outcomes[1],
        SendOutcome::Retry {
            reason: "http 503".into(),
            retry_after: Some(Duration::from_secs(2))
        }
    );
    assert!(matches!(
        outcomes[2],
        SendOutcome::Retry {
            retry_after: None,
            ..
        }
    ));
    assert!(matches!(
        outcomes[3],
        SendOutcome::Retry {
            retry_after: None,
            ..
        }
    ));
    assert_eq!(
        outcomes[4],
        SendOutcome::Reject {
            reason: "http 400: log record has an invalid trace id".into()
        }
    );
    assert!(
        matches!(&outcomes[5], SendOutcome::Reject { reason } if reason.starts_with("http 500")),
        "OTLP says 500 must not be retried: {:?}",
        outcomes[5]
    );
    assert!(
        matches!(&outcomes[6], SendOutcome::Reject { reason } if reason.starts_with("http 401"))
    );
    assert_eq!(c.received().len(), 7, "every attempt reached the collector");
}

#[test]
fn partial_success_is_delivered_and_counted() {
    let c = HttpCollector::start();
    let mut sink = sink_for(&c);
    let counts = sink.partial_success();
    let body = ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 2,
            error_message: "2 records exceed the attribute limit".into(),
        }),
    }
    .encode_to_vec();
    c.script([Reply::status(200)
        .header("content-type", "application/x-protobuf")
        .body(body)]);
    let records = vec![Record::new(Level::Info, "a"); 5];
    assert_eq!(
        encode_and_send(&mut sink, &records, &service()),
        vec![SendOutcome::Delivered]
    );
    assert_eq!(counts.rejected_log_records(), 2);
    assert_eq!(counts.responses(), 1);
    assert_eq!(
        counts.last_error_message().as_deref(),
        Some("2 records exceed the attribute limit")
    );
}

#[test]
fn unreachable_collector_is_a_retry() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut sink = OtlpSink::builder()
        .endpoint(format!("http://127.0.0.1:{port}"))
        .timeout(Duration::from_secs(2))
        .build()
        .expect("valid");
    let out = encode_and_send(&mut sink, &[Record::new(Level::Info, "x")], &service());
    assert!(
        matches!(&out[0], SendOutcome::Retry { reason, .. } if reason.contains("connection")),
        "{out:?}"
    );
}

#[test]
fn end_to_end_through_the_client_masks_merges_scope_and_counts() {
    let c = HttpCollector::start();
    let sink = OtlpSink::builder()
        .endpoint(c.base_url())
        .compression(OtlpCompression::Gzip)
        .build()
        .expect("valid sink");
    let partial = sink.partial_success();
    let queue_dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .service_name("checkout")
        .environment("production")
        .version("2.0.0")
        .log_level(Level::Trace)
        // Its own disk queue, not the shared ./loggier-data of the working directory.
        .data_dir(queue_dir.path())
        .tags(["web"])
        .sink(sink)
        .build()
        .expect("client");

    {
        let _g = Scope::new()
            .request_id("req-42")
            .trace(TRACE_ID, Some(SPAN_ID.to_string()))
            .field("tenant", "acme")
            .enter();
        log.event(Level::Info, "order placed")
            .field("order_id", 9)
            .field("password", "hunter2")
            .tag("orders")
            .emit();
        let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "db timed out");
        log.exception("charge failed", &err);
    }
    for level in [Level::Trace, Level::Debug, Level::Critical] {
        log.event(level, "level check").emit();
    }
    assert!(log.flush(DEADLINE), "flush");

    let records = c.records();
    assert_eq!(records.len(), 5);
    let placed = &records[0];
    assert_eq!(body_text(placed), Some("order placed"));
    assert_eq!(placed.severity_number, 9);
    let a = &placed.attributes;
    assert_eq!(
        str_attr(a, "password"),
        Some(FILTERED),
        "masked before encode"
    );
    assert_eq!(str_attr(a, "tenant"), Some("acme"), "scope field");
    assert_eq!(attr(a, "order_id"), Some(&Value::IntValue(9)));
    assert_eq!(str_attr(a, "loggier.request_id"), Some("req-42"));
    assert_eq!(placed.trace_id.len(), 16);
    assert_eq!(placed.span_id.len(), 8);
    assert_eq!(
        array(attr(a, "loggier.tags").expect("tags")),
        vec![Some(s("web")), Some(s("orders"))]
    );
    let failed = &records[1];
    assert_eq!(failed.severity_number, 17);
    assert_eq!(
        str_attr(&failed.attributes, "exception.message"),
        Some("db timed out")
    );
    assert!(str_attr(&failed.attributes, "exception.type").is_some());
    let sev: Vec<i32> = records[2..].iter().map(|r| r.severity_number).collect();
    assert_eq!(sev, [1, 5, 21]);

    let got = c.received();
    assert!(got.iter().all(|r| r.headers["content-encoding"] == "gzip"));
    let res = &got[0].request.resource_logs[0]
        .resource
        .as_ref()
        .expect("resource")
        .attributes;
    assert_eq!(str_attr(res, "service.name"), Some("checkout"));
    assert_eq!(
        str_attr(res, "deployment.environment.name"),
        Some("production")
    );
    assert_eq!(str_attr(res, "service.version"), Some("2.0.0"));

    // A partial success: the refused records are counted as dropped, not written.
    let body = ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 1,
            error_message: "one record too large".into(),
        }),
    }
    .encode_to_vec();
    c.script([Reply::status(200)
        .header("content-type", "application/x-protobuf")
        .body(body)]);
    log.info("a");
    log.info("b");
    assert!(log.flush(DEADLINE), "flush");
    let st = log.stats();
    let otlp = st.sink("otlp").expect("otlp stats");
    assert_eq!(otlp.written, 6);
    assert_eq!(otlp.dropped_rejected, 1);
    assert_eq!(otlp.pending, 0);
    assert!(
        otlp.last_error
            .as_deref()
            .is_some_and(|e| e.contains("one record too large")),
        "{:?}",
        otlp.last_error
    );
    assert_eq!(partial.rejected_log_records(), 1);
    log.shutdown(DEADLINE);
}

/// Durable mode sends through the sink's detached send; a partial success still
/// reaches the pipeline's counters (the refused record is `dropped_rejected`).
#[cfg(feature = "disk-queue")]
#[test]
fn durable_partial_success_is_counted_through_the_detached_send() {
    let c = HttpCollector::start();
    let sink = sink_for(&c);
    let partial = sink.partial_success();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .service_name("checkout")
        .data_dir(dir.path())
        .delivery_mode(loggier_core::DeliveryMode::Durable)
        .sink(sink)
        .build()
        .expect("client");
    let body = ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: 1,
            error_message: "one record too large".into(),
        }),
    }
    .encode_to_vec();
    c.script([Reply::status(200)
        .header("content-type", "application/x-protobuf")
        .body(body)]);
    log.info("a");
    log.info("b");
    assert!(log.persist(DEADLINE), "persist");
    let start = std::time::Instant::now();
    let otlp = loop {
        let st = log.stats();
        let otlp = st.sink("otlp").expect("otlp stats").clone();
        if otlp.pending == 0 || start.elapsed() > DEADLINE {
            break otlp;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!(
        (otlp.written, otlp.dropped_rejected, otlp.pending),
        (1, 1, 0),
        "{otlp:?}"
    );
    assert_eq!(partial.rejected_log_records(), 1);
    assert_eq!(c.records().len(), 2);
    log.shutdown(DEADLINE);
}
