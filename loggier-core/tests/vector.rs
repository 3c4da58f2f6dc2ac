//! Vector sink against a real receiver on 127.0.0.1 standing in for Vector's
//! `http_server` source (`decoding.codec = "json"`, `framing.method =
//! "newline_delimited"`): the body must split on `\n` into JSON objects.
#![cfg(feature = "vector")]

mod receiver;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use loggier_core::{
    Exception, Level, Record, SendOutcome, ServiceInfo, Sink, VectorSink, VectorSinkBuilder,
};
use receiver::{Captured, Receiver, Reply};

const T0: u64 = 1_705_314_600_123_000_000; // 2024-01-15T10:30:00.123Z

fn service() -> ServiceInfo {
    ServiceInfo {
        service: "api".into(),
        environment: "production".into(),
        version: Some("1.0.0".into()),
        ..ServiceInfo::default()
    }
}

/// Splits a body the way Vector's `newline_delimited` framing does and decodes
/// each frame as one JSON object.
fn frames(c: &Captured) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let text = std::str::from_utf8(&c.body).expect("utf-8 body");
    assert!(text.ends_with('\n'), "last line is terminated");
    text.split('\n')
        .filter(|l| !l.is_empty())
        .map(
            |l| match serde_json::from_str(l).expect("each line is JSON") {
                serde_json::Value::Object(o) => o,
                other => panic!("line is not an object: {other}"),
            },
        )
        .collect()
}

#[tokio::test]
async fn ndjson_lines_carry_project_table_and_record_fields() {
    let rx = Receiver::start().await;
    let mut sink = VectorSink::builder(format!("{}/ingest", rx.url()))
        .project("my-project")
        .table("application_logs")
        .field("region", "eu")
        .basic_auth("vector", "pa55")
        .build()
        .expect("valid config");

    let mut failing = Record::new(Level::Error, "Database connection failed")
        .with_timestamp_ns(T0 + 1_000_000)
        .with_field("host", "db.example.com")
        .with_tag("db");
    failing = failing.with_exception(Exception::from_error(&std::io::Error::other("refused")));
    failing.request_id = Some("req-1".into());
    failing.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    let records = vec![
        Record::new(Level::Info, "User logged in\nsecond line")
            .with_timestamp_ns(T0)
            .with_field("user_id", 123)
            .with_field("ip", "192.168.1.1"),
        failing,
        Record::new(Level::Debug, "Debug message").with_timestamp_ns(T0 + 2_000_000),
    ]
    .into_iter()
    .map(Arc::new)
    .collect::<Vec<_>>();
    let payloads = sink.encode(&records, &service()).expect("encodes");
    assert_eq!(payloads.len(), 1);
    assert_eq!(payloads[0].records, 3);
    assert_eq!(sink.send(&payloads[0]).await, SendOutcome::Delivered);

    let reqs = rx.wait_for(1).await;
    assert_eq!(reqs.len(), 1);
    let c = &reqs[0];
    assert_eq!(c.method, "POST");
    assert_eq!(c.path(), "/ingest");
    assert_eq!(c.header("content-type"), Some("application/x-ndjson"));
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("vector:pa55")
    );
    assert_eq!(c.header("authorization"), Some(auth.as_str()));

    let lines = frames(c);
    assert_eq!(
        lines.len(),
        3,
        "one object per record, a message's newline stays escaped"
    );
    for l in &lines {
        assert_eq!(l["project"], "my-project");
        assert_eq!(l["table"], "application_logs");
        assert_eq!(l["service"], "api");
        assert_eq!(l["environment"], "production");
        assert_eq!(l["version"], "1.0.0");
        assert_eq!(l["region"], "eu");
        assert!(l["extra"].is_object());
    }
    // The seeds/002 example, key by key.
    let first = &lines[0];
    assert_eq!(first["timestamp"], "2024-01-15T10:30:00.123000Z");
    assert_eq!(first["level"], "INFO");
    assert_eq!(first["level_num"], 20);
    assert_eq!(first["message"], "User logged in\nsecond line");
    assert_eq!(
        first["extra"],
        serde_json::json!({"user_id": 123, "ip": "192.168.1.1"})
    );
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(
        &keys[..6],
        [
            "timestamp",
            "level",
            "level_num",
            "message",
            "project",
            "table"
        ]
    );

    let err = &lines[1];
    assert_eq!(err["level"], "ERROR");
    assert_eq!(err["level_num"], 40);
    assert_eq!(err["request_id"], "req-1");
    assert_eq!(err["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(err["tags"], serde_json::json!(["db"]));
    assert_eq!(
        err["extra"]["host"], "db.example.com",
        "context host is not the service host"
    );
    assert_eq!(err["exception"]["message"], "refused");
    assert_eq!(lines[2]["level_num"], 10);
    assert_eq!(lines[2]["extra"], serde_json::json!({}));
}

#[tokio::test]
async fn vector_errors_map_to_retry_and_reject() {
    let rx = Receiver::start().await;
    let mut sink = VectorSink::builder(rx.url())
        .project("p")
        .table("t")
        .build()
        .expect("valid config");
    let payload = sink
        .encode(&[Arc::new(Record::new(Level::Info, "x"))], &service())
        .expect("encodes")
        .remove(0);

    rx.reply(Reply::status(400).body("Failed decoding body: invalid JSON"));
    match sink.send(&payload).await {
        SendOutcome::Reject { reason } => {
            assert!(
                reason.contains("http 400: Failed decoding body"),
                "{reason}"
            )
        }
        other => panic!("400 must reject: {other:?}"),
    }
    rx.reply(Reply::status(503).header("retry-after", "2"));
    assert_eq!(
        sink.send(&payload).await,
        SendOutcome::Retry {
            reason: "http 503".into(),
            retry_after: Some(Duration::from_secs(2))
        }
    );
    rx.reply(Reply::status(200));
    assert_eq!(sink.send(&payload).await, SendOutcome::Delivered);
}

#[test]
fn project_and_table_are_required_settings() {
    let err = VectorSink::builder("http://127.0.0.1:8080/")
        .build()
        .expect_err("missing project");
    assert_eq!(err.setting(), "vector_project");
    assert!(err.to_string().contains("required"), "{err}");
    let err = VectorSinkBuilder::from_env_with(|k| {
        (k == "VECTOR_URL").then(|| "http://127.0.0.1:8080/".to_string())
    })
    .expect("url is enough to start")
    .project("p")
    .build()
    .expect_err("missing table");
    assert_eq!(err.setting(), "vector_table");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_through_the_pipeline_with_masking() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = VectorSink::builder(rx.url())
        .project("shop")
        .table("app_logs")
        .build()
        .expect("valid config");
    let log = loggier_core::Loggier::builder()
        .service_name("api")
        .environment("production")
        .version("1.0.0")
        .data_dir(dir.path())
        .flush_interval(Duration::from_millis(50))
        .sink(sink)
        .build()
        .expect("client builds");
    log.event(Level::Info, "User logged in")
        .field("user_id", 123)
        .field("password", "hunter2")
        .field(
            "login",
            serde_json::json!({"token": "hunter2-token", "ttl_s": 600}),
        )
        .emit();
    log.exception("charge failed", &std::io::Error::other("card declined"));
    assert!(log.flush_async(Duration::from_secs(10)).await, "flushed");

    let reqs = rx.wait_for(1).await;
    let mut lines = Vec::new();
    for c in &reqs {
        assert!(
            !String::from_utf8_lossy(&c.body).contains("hunter2"),
            "secret left the process"
        );
        lines.extend(frames(c));
    }
    assert_eq!(lines.len(), 2);
    let info = lines
        .iter()
        .find(|l| l["level"] == "INFO")
        .expect("info line");
    assert_eq!(info["project"], "shop");
    assert_eq!(info["table"], "app_logs");
    assert_eq!(info["message"], "User logged in");
    assert_eq!(info["extra"]["user_id"], 123);
    assert_eq!(info["extra"]["password"], "[FILTERED]");
    assert_eq!(info["extra"]["login"]["token"], "[FILTERED]");
    assert_eq!(info["extra"]["login"]["ttl_s"], 600);
    let err = lines
        .iter()
        .find(|l| l["level"] == "ERROR")
        .expect("error line");
    assert_eq!(err["level_num"], 40);
    assert_eq!(err["exception"]["message"], "card declined");
    assert_eq!(log.stats().sink("vector").expect("stats").written, 2);
    log.shutdown(Duration::from_secs(5));
}
