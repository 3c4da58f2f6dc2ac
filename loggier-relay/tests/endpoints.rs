//! Every endpoint end to end over real HTTP: request in → record decoded at a
//! loopback Loki with the expected labels and structured metadata; query endpoints
//! against a loopback server answering like Loki's HTTP API.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{FakeLoki, TestRelay, gzip, http, seed_body};
use loggier_core::sink::loki::proto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter};
use loggier_core::{HttpSink, Level, Loggier, StdoutFormat, StdoutSink};
use loggier_relay::{ApiKey, KeySet, Relay, RelayConfig};
use prost::Message as _;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_log_reaches_loki_with_labels_metadata_and_masking() {
    let loki = FakeLoki::start().await;
    let relay = TestRelay::start(Some(&loki), RelayConfig::default(), &[]).await;
    let mut body = seed_body();
    body["data"]["password"] = json!("hunter2");
    let res = http()
        .post(relay.url("/log"))
        .header("x-request-id", "req-abc")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let ack: Value = res.json().await.unwrap();
    assert_eq!(ack, json!({"accepted": 1, "request_id": "req-abc"}));
    relay.flush().await;
    let got = loki.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let e = &got[0];
    let labels: Vec<(&str, &str)> = e
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("component", "pubsub"),
            ("environment", "test"),
            ("level", "error"),
            ("service", "app"),
        ]
    );
    assert_eq!(e.metadata["request_id"], "req-abc");
    assert_eq!(e.metadata["msg_id"], "123456");
    assert_eq!(e.metadata["version"], "20250421:abc123");
    assert_eq!(e.metadata["revision_id"], "abc123");
    let line = e.json();
    assert_eq!(line["message"], "EscrowCreateAccount error for 615");
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["context"]["data"]["user_id"], "42");
    assert_eq!(line["context"]["stack"][0]["line"], "10");
    assert_eq!(line["context"]["error"], "validator error");
    assert_eq!(line["context"]["caller"], "main.py:10");
    assert!(!e.line.contains("hunter2"), "password masked: {}", e.line);

    // The file sink (default) has it too.
    let file = std::fs::read_to_string(relay.dir.path().join("loggier.ndjson")).unwrap();
    assert!(file.contains("EscrowCreateAccount error for 615"));
    assert!(!file.contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_logs_accepts_a_json_array_and_ndjson() {
    let loki = FakeLoki::start().await;
    let relay = TestRelay::start(Some(&loki), RelayConfig::default(), &[]).await;
    let batch = json!([
        {"message": "one", "service": "web", "component": "cart", "level": "info", "msg_id": "m1"},
        {"message": "two", "service": "web", "level": "warn", "stack": [{"func": "f", "line": 7}]},
    ]);
    let res = http()
        .post(relay.url("/logs"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap()["accepted"], 2);
    let nd = "{\"message\":\"three\",\"service\":\"web\",\"level\":\"debug\"}\n\n{\"message\":\"four\",\"service\":\"api\"}\r\n";
    let res = http()
        .post(relay.url("/logs"))
        .header("content-type", "application/x-ndjson")
        .body(nd)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(res.json::<Value>().await.unwrap()["accepted"], 2);
    relay.flush().await;
    let got = loki.wait_for(4).await;
    let mut seen: Vec<(String, String, String, Option<String>)> = got
        .iter()
        .map(|e| {
            (
                e.json()["message"].as_str().unwrap().to_string(),
                e.labels["service"].clone(),
                e.labels["level"].clone(),
                e.labels.get("component").cloned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("four".into(), "api".into(), "info".into(), None),
            (
                "one".into(),
                "web".into(),
                "info".into(),
                Some("cart".into())
            ),
            ("three".into(), "web".into(), "debug".into(), None),
            ("two".into(), "web".into(), "warning".into(), None),
        ]
    );
    let one = got.iter().find(|e| e.line.contains("\"one\"")).unwrap();
    assert_eq!(one.metadata["msg_id"], "m1");
    let two = got.iter().find(|e| e.line.contains("\"two\"")).unwrap();
    assert_eq!(two.json()["context"]["stack"][0]["line"], "7");
}

/// A real Loggier client with `HttpSink` ships to `/api/ingest` (gzip, batch id);
/// the records reach Loki under the sender's service and environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_sink_batches_reach_loki_through_api_ingest() {
    let loki = FakeLoki::start().await;
    let keys = KeySet::new(vec![ApiKey::new("ingest-key", true, false)]);
    let config = RelayConfig {
        keys,
        ..RelayConfig::default()
    };
    let relay = TestRelay::start(Some(&loki), config, &[]).await;
    let sender_dir = tempfile::tempdir().unwrap();
    let sink = HttpSink::builder(relay.url("/api/ingest"))
        .api_key("ingest-key")
        .build()
        .unwrap();
    let sender = Loggier::builder()
        .service_name("checkout")
        .environment("production")
        .version("1.4.2")
        .data_dir(sender_dir.path())
        .sink(sink)
        .build()
        .unwrap();
    sender
        .event(Level::Error, "payment failed")
        .field("msg_id", "pay-1")
        .field("component", "payments")
        .field("card_token", "tok_secret")
        .emit();
    sender.info("cart viewed");
    let s2 = sender.clone();
    assert!(
        tokio::task::spawn_blocking(move || s2.flush(Duration::from_secs(10)))
            .await
            .unwrap()
    );
    assert_eq!(sender.stats().sinks[0].written, 2);
    relay.flush().await;
    let got = loki.wait_for(2).await;
    assert_eq!(got.len(), 2);
    let err = got.iter().find(|e| e.labels["level"] == "error").unwrap();
    assert_eq!(err.labels["service"], "checkout");
    assert_eq!(err.labels["environment"], "production");
    assert_eq!(err.labels["component"], "payments");
    assert_eq!(err.metadata["msg_id"], "pay-1");
    assert_eq!(err.metadata["version"], "1.4.2");
    assert!(!err.line.contains("tok_secret"));
    assert_eq!(err.json()["message"], "payment failed");
    sender.shutdown(Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_batch_id_is_stored_once() {
    let loki = FakeLoki::start().await;
    let relay = TestRelay::start(Some(&loki), RelayConfig::default(), &[]).await;
    let batch = json!([
        {"timestamp":"2026-12-01T10:00:00.000000001Z","level":"INFO","message":"r1","service":"svc","environment":"prod","context":{"request_id":"q-1"}},
        {"timestamp":"2026-12-01T10:00:00.000000002Z","level":"ERROR","message":"r2","service":"svc","environment":"prod",
         "timing":{"name":"db.load","kind":"database","duration_ms":3.5}}
    ]);
    let body = gzip(batch.to_string().as_bytes());
    for attempt in 0..3 {
        let res = http()
            .post(relay.url("/api/ingest"))
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .header("x-loggier-batch-id", "0190d2c4-0000-7000-8000-000000000001")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let ack: Value = res.json().await.unwrap();
        assert_eq!(ack["duplicate"], attempt > 0, "attempt {attempt}: {ack}");
        assert_eq!(ack["accepted"], if attempt == 0 { 2 } else { 0 });
    }
    relay.flush().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = loki.wait_for(2).await;
    assert_eq!(got.len(), 2, "stored once");
    let r1 = got.iter().find(|e| e.line.contains("\"r1\"")).unwrap();
    assert_eq!(r1.ts_ns, 1_796_119_200_000_000_001);
    assert_eq!(r1.metadata["request_id"], "q-1");
    // A Loggier-shaped timing stays a top-level timing (the dashboard reads `timing.*`).
    let r2 = got.iter().find(|e| e.line.contains("\"r2\"")).unwrap();
    assert_eq!(r2.json()["timing"]["name"], "db.load");
    assert_eq!(r2.json()["timing"]["duration_ms"], 3.5);
    let metrics = http()
        .get(relay.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("loggier_relay_duplicate_batches_total 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loki_push_json_and_protobuf_are_forwarded() {
    let loki = FakeLoki::start().await;
    let relay = TestRelay::start(Some(&loki), RelayConfig::default(), &[]).await;
    let push = json!({"streams":[{"stream":{"service":"edge","level":"warn","component":"lb"},
        "values":[["1796119200000000000","json line",{"msg_id":"e-1"}],["1796119200000000001","second"]]}]});
    let res = http()
        .post(relay.url("/api/v1/loki/push"))
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let pb = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{service="edge", level="error"}"#.into(),
            entries: vec![EntryAdapter {
                timestamp: Some(prost_types_ts(1_796_119_201, 5)),
                line: "proto line".into(),
                structured_metadata: vec![LabelPairAdapter {
                    name: "msg_id".into(),
                    value: "p-1".into(),
                }],
                parsed: vec![],
            }],
            hash: 0,
        }],
        format: String::new(),
    };
    let raw = snap::raw::Encoder::new()
        .compress_vec(&pb.encode_to_vec())
        .unwrap();
    let res = http()
        .post(relay.url("/api/v1/loki/push"))
        .header("content-type", "application/x-protobuf")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    relay.flush().await;
    let got = loki.wait_for(3).await;
    assert_eq!(got.len(), 3);
    let j = got
        .iter()
        .find(|e| e.json()["message"] == "json line")
        .unwrap();
    assert_eq!(j.labels["service"], "edge");
    assert_eq!(j.labels["component"], "lb");
    assert_eq!(j.labels["level"], "warning");
    assert_eq!(j.metadata["msg_id"], "e-1");
    assert_eq!(j.ts_ns, 1_796_119_200_000_000_000);
    let p = got
        .iter()
        .find(|e| e.json()["message"] == "proto line")
        .unwrap();
    assert_eq!(p.labels["level"], "error");
    assert_eq!(p.metadata["msg_id"], "p-1");
    assert_eq!(p.ts_ns, 1_796_119_201_000_000_005);
}

fn prost_types_ts(seconds: i64, nanos: i32) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_labels_values_and_health_are_forwarded_to_loki() {
    let loki = FakeLoki::start().await;
    let keys = KeySet::new(vec![
        ApiKey::new("ing", true, false),
        ApiKey::new("qry", false, true),
    ]);
    let relay = TestRelay::start(
        Some(&loki),
        RelayConfig {
            keys,
            ..RelayConfig::default()
        },
        &[],
    )
    .await;
    let res = http()
        .post(relay.url("/log"))
        .bearer_auth("ing")
        .json(&seed_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    relay.flush().await;
    loki.wait_for(1).await;

    // POST query
    let res = http()
        .post(relay.url("/api/v1/loki/query"))
        .header("x-api-key", "qry")
        .json(
            &json!({"query": "{service=\"app\"}", "limit": 10, "start": "2020-01-01T00:00:00Z",
            "end": 4_102_444_800u64, "direction": "forward"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["result_type"], "streams");
    let entry = &v["streams"][0]["entries"][0];
    assert!(
        entry["line"]
            .as_str()
            .unwrap()
            .contains("EscrowCreateAccount")
    );
    assert_eq!(v["streams"][0]["labels"]["component"], "pubsub");
    assert_eq!(entry["structured_metadata"]["msg_id"], "123456");
    let q = loki.state.queries.lock().unwrap().last().cloned().unwrap();
    assert!(
        q.contains("limit=10") && q.contains("direction=forward"),
        "{q}"
    );
    assert!(
        q.contains("start=1577836800000000000") && q.contains("end=4102444800000000000"),
        "{q}"
    );

    // Metric query → matrix
    let res = http()
        .post(relay.url("/api/v1/loki/query"))
        .bearer_auth("qry")
        .json(&json!({"query": "count_over_time({service=\"app\"}[5m])"}))
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["result_type"], "matrix");
    assert_eq!(v["series"][0]["values"][0][1], "3");

    // LogQL error → 400 with Loki's message
    let res = http()
        .post(relay.url("/api/v1/loki/query"))
        .bearer_auth("qry")
        .json(&json!({"query": "service=app"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "logql_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("parse error at line 1, col 1"),
        "{v}"
    );

    // GET query/simple
    let res = http()
        .get(
            reqwest::Url::parse_with_params(
                &relay.url("/api/v1/loki/query/simple"),
                &[("query", "{service=\"app\"}"), ("hours", "2")],
            )
            .unwrap(),
        )
        .bearer_auth("qry")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["streams"][0]["entries"].as_array().unwrap().len(), 1);
    let q = loki.state.queries.lock().unwrap().last().cloned().unwrap();
    let start: u128 = param(&q, "start").parse().unwrap();
    let end: u128 = param(&q, "end").parse().unwrap();
    assert_eq!(end - start, 2 * 3600 * 1_000_000_000, "{q}");

    // labels and values
    let v: Value = http()
        .get(relay.url("/api/v1/loki/labels"))
        .bearer_auth("qry")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v,
        json!({"labels": ["component", "environment", "level", "service"]})
    );
    let v: Value = http()
        .get(relay.url("/api/v1/loki/labels/service/values"))
        .bearer_auth("qry")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"label": "service", "values": ["app"]}));

    // ingest key cannot query, query key cannot ingest
    let res = http()
        .get(relay.url("/api/v1/loki/labels"))
        .bearer_auth("ing")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    // health: Loki reachable, pipeline accepting
    let res = http()
        .get(relay.url("/api/v1/loki/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["loki"]["reachable"], true);
    assert_eq!(v["pipeline"]["accepting"], true);
    let names: Vec<&str> = v["pipeline"]["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["file", "loki"]);
}

fn param(q: &str, name: &str) -> String {
    q.split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_metrics_and_an_unreachable_loki() {
    // Loki URL pointing at a closed port: health says degraded, ready still OK
    // (the file sink is up, the Loki sink caches), metrics count by reason.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let dead = FakeLoki {
        url: format!("http://{closed}"),
        state: Default::default(),
    };
    let relay = TestRelay::start(Some(&dead), RelayConfig::default(), &[]).await;
    let res = http().get(relay.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let res = http().get(relay.url("/ready")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = http()
        .get(relay.url("/api/v1/loki/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["status"], "degraded");
    assert_eq!(v["loki"]["reachable"], false);

    http()
        .post(relay.url("/log"))
        .json(&json!({"message": "m"}))
        .send()
        .await
        .unwrap();
    http()
        .post(relay.url("/log"))
        .json(&json!({"message": "m", "level": "loud"}))
        .send()
        .await
        .unwrap();
    http()
        .post(relay.url("/log"))
        .header("content-type", "text/xml")
        .body("<x/>")
        .send()
        .await
        .unwrap();
    let res = http().get(relay.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = res.text().await.unwrap();
    for want in [
        "loggier_relay_accepted_total{endpoint=\"log\"} 1",
        "loggier_relay_rejected_total{reason=\"unknown_level\"} 1",
        "loggier_relay_rejected_total{reason=\"unsupported_media_type\"} 1",
        "# TYPE loggier_relay_pending gauge",
        "# TYPE loggier_relay_dropped gauge",
        "# TYPE loggier_relay_disk_queue_bytes gauge",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// CR, LF and other control characters in any field cannot start a second line in
/// logfmt output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_cannot_forge_logfmt_lines() {
    let out = Shared::default();
    let dir = tempfile::tempdir().unwrap();
    let loggier = Loggier::builder()
        .service_name("relay")
        .data_dir(dir.path())
        .log_level(Level::Trace)
        .sink(StdoutSink::with_writer(
            StdoutFormat::Logfmt,
            Box::new(out.clone()),
        ))
        .build()
        .unwrap();
    let relay = Relay::builder(loggier).build();
    let relay = TestRelay::serve(relay, dir).await;
    let evil = "ok\nlevel='critical' event='forged'\r\u{0b}\u{0c}\u{85}\u{1b}[31m";
    let body = json!({"message": evil, "component": evil, "caller": evil, "error": evil,
        "data": {evil: evil}, "stack": [{"func": evil, "line": evil, "source": evil}], "level": "info"});
    let res = http()
        .post(relay.url("/log"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let res = http()
        .post(relay.url("/logs"))
        .header("content-type", "application/x-ndjson")
        .body(format!("{body}\n{body}\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    relay.flush().await;
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 3, "{text}");
    for l in lines {
        assert!(l.starts_with("timestamp='"), "{l}");
        assert!(
            !l.chars().any(|c| c.is_control()),
            "raw control char in {l:?}"
        );
        // The only unescaped `level='` is the record's own, after a separator.
        assert_eq!(l.matches(" level='").count(), 1, "{l}");
        assert!(l.contains("event='ok\\nlevel=\\'critical\\'"), "{l}");
    }
}

/// CORS: an allowed origin gets the preflight answer, another gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_only_listed_origins() {
    let config = RelayConfig {
        cors_origins: vec!["https://app.example.com".into()],
        ..RelayConfig::default()
    };
    let relay = TestRelay::start(None, config, &[]).await;
    let pre = |origin: &'static str| {
        http()
            .request(reqwest::Method::OPTIONS, relay.url("/log"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type,x-api-key")
            .send()
    };
    let ok = pre("https://app.example.com").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let allowed = ok.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(allowed.contains("x-api-key"), "{allowed}");
    let bad = pre("https://evil.example.com").await.unwrap();
    assert!(bad.headers().get("access-control-allow-origin").is_none());
    let res = http()
        .post(relay.url("/log"))
        .header("origin", "https://app.example.com")
        .json(&json!({"message": "from the browser"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}
