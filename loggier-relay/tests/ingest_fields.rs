//! `POST /api/ingest` records carry what the issue lists where the sender has it —
//! labels `service`, `component`, `level`; structured metadata `msg_id`, `version`,
//! `revision_id`, `request_id`, and `route` of an HTTP transaction — and a
//! forwarded exception is a real top-level `exception`, not `context.exception`.
//! Checked at a loopback Loki that decodes the real protobuf push.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{FakeLoki, TestRelay};
use loggier_core::record::{HttpRequest, HttpResponse, HttpTransaction};
use loggier_core::{HttpSink, Level, Loggier, Record};
use loggier_relay::RelayConfig;
use serde_json::Value;

#[derive(Debug)]
struct PaymentError(std::num::ParseIntError);

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("payment declined")
    }
}

impl std::error::Error for PaymentError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_records_keep_route_revision_and_a_typed_exception() {
    let loki = FakeLoki::start().await;
    let relay = TestRelay::start(Some(&loki), RelayConfig::default(), &[]).await;
    let sender_dir = tempfile::tempdir().unwrap();
    let sender = Loggier::builder()
        .service_name("checkout")
        .environment("production")
        .version("1.4.2")
        .revision("abc123")
        .data_dir(sender_dir.path())
        .sink(HttpSink::builder(relay.url("/api/ingest")).build().unwrap())
        .build()
        .unwrap();

    // A transaction record, as the HTTP middleware logs it.
    let mut req = HttpRequest::default();
    req.method = "GET".into();
    req.path = "/users/42".into();
    req.route = Some("/users/{id}".into());
    let mut res = HttpResponse::default();
    res.status_code = 500;
    let mut tx = HttpTransaction::new(req);
    tx.response = Some(res);
    tx.duration_ms = 12.5;
    let mut rec = Record::new(Level::Error, "Server error: GET /users/42 - 500")
        .with_logger("http")
        .with_http(tx);
    rec.request_id = Some("req-7".into());
    sender.log(rec);

    // An exception with a cause.
    let err = PaymentError("x1".parse::<u32>().unwrap_err());
    sender
        .event(Level::Error, "charge failed")
        .field("msg_id", "m-1")
        .field("component", "payments")
        .exception(&err)
        .emit();

    let s2 = sender.clone();
    assert!(
        tokio::task::spawn_blocking(move || s2.flush(Duration::from_secs(10)))
            .await
            .unwrap()
    );
    relay.flush().await;
    let got = loki.wait_for(2).await;
    assert_eq!(got.len(), 2);

    let http = got.iter().find(|e| e.line.contains("/users/42")).unwrap();
    assert_eq!(http.labels["service"], "checkout");
    assert_eq!(http.labels["environment"], "production");
    assert_eq!(http.labels["level"], "error");
    assert_eq!(http.metadata["route"], "/users/{id}");
    assert_eq!(http.metadata["request_id"], "req-7");
    assert_eq!(http.metadata["version"], "1.4.2");
    assert_eq!(http.metadata["revision_id"], "abc123");
    let line = http.json();
    assert_eq!(
        line["context"]["transaction"]["response"]["status_code"],
        500
    );

    let exc = got
        .iter()
        .find(|e| e.line.contains("charge failed"))
        .unwrap();
    assert_eq!(exc.labels["component"], "payments");
    assert_eq!(exc.metadata["msg_id"], "m-1");
    assert_eq!(exc.metadata["revision_id"], "abc123");
    let line = exc.json();
    assert_eq!(line["exception"]["message"], "payment declined");
    assert!(
        line["exception"]["type"]
            .as_str()
            .unwrap()
            .ends_with("PaymentError"),
        "{line}"
    );
    assert_eq!(
        line["exception"]["chain"][0]["message"],
        "invalid digit found in string"
    );
    assert_eq!(line["context"].get("exception"), None, "{line}");
    assert_eq!(line["context"]["revision_id"], "abc123");
    assert!(matches!(
        line["context"].get("revision"),
        None | Some(Value::Null)
    ));
    sender.shutdown(Duration::from_secs(2));
}

/// An `exception` that is not of the Loggier shape is kept, in the context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_exception_shape_stays_in_the_context() {
    let loki = FakeLoki::start().await;
    let relay = TestRelay::start(Some(&loki), RelayConfig::default(), &[]).await;
    let body = serde_json::json!([
        {"level":"ERROR","message":"py-style","service":"legacy",
         "exception":{"type":"ValueError","message":"bad","traceback":"File x.py, line 3"}},
        {"level":"ERROR","message":"frames","service":"legacy",
         "exception":{"type":"E","message":"m","frames":[{"func":"main","file":"src/main.rs","line":10}],
                      "stacktrace":"   0: main\n             at src/main.rs:10:5"}}
    ]);
    let res = common::http()
        .post(relay.url("/api/ingest"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    relay.flush().await;
    let got = loki.wait_for(2).await;
    let py = got
        .iter()
        .find(|e| e.line.contains("py-style"))
        .unwrap()
        .json();
    assert_eq!(py.get("exception"), None, "{py}");
    assert_eq!(py["context"]["exception"]["traceback"], "File x.py, line 3");
    let typed = got
        .iter()
        .find(|e| e.line.contains("frames"))
        .unwrap()
        .json();
    assert_eq!(typed["exception"]["frames"][0]["line"], 10);
    assert_eq!(typed["exception"]["frames"][0]["file"], "src/main.rs");
    assert!(
        typed["exception"]["stacktrace"]
            .as_str()
            .unwrap()
            .contains("src/main.rs:10")
    );
}
