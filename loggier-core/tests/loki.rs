//! Loki push sink against a real receiver on 127.0.0.1 that decodes the wire format:
//! snappy block + `logproto.PushRequest` (our prost types, cross-checked with the
//! `loki-api` crate), or Loki's JSON push body.
#![cfg(feature = "loki")]

mod receiver;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use loggier_core::sink::loki::proto::PushRequest;
use loggier_core::sink::loki::{LineFormat, LokiSink, LokiSinkBuilder, PushFormat};
use loggier_core::{
    HttpRequest, HttpTransaction, Level, Payload, Record, SendOutcome, ServiceInfo, Sink,
};
use prost::Message as _;
use receiver::{Captured, Receiver, Reply};

const T0: u64 = 1_741_520_489_000_000_000;

fn service() -> ServiceInfo {
    ServiceInfo {
        service: "checkout".into(),
        environment: "production".into(),
        version: Some("1.4.2".into()),
        ..ServiceInfo::default()
    }
}

fn decode_protobuf(c: &Captured) -> PushRequest {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&c.body)
        .expect("body is a snappy block");
    PushRequest::decode(raw.as_slice()).expect("body is a logproto.PushRequest")
}

/// Encodes `records` (shared in `Arc`s, as the pipeline holds them) and sends every
/// payload; returns each payload with its outcome.
async fn encode_and_send(sink: &mut LokiSink, records: &[Record]) -> Vec<(Payload, SendOutcome)> {
    let records: Vec<Arc<Record>> = records.iter().cloned().map(Arc::new).collect();
    let payloads = sink.encode(&records, &service()).expect("encodes");
    let mut out = Vec::new();
    for p in payloads {
        let outcome = sink.send(&p).await;
        out.push((p, outcome));
    }
    out
}

fn request_record(level: Level, msg: &str, ts: u64, req: &str) -> Record {
    let mut http = HttpRequest::default();
    http.method = "GET".into();
    http.path = "/api/orders/42".into();
    http.route = Some("/api/orders/{id}".into());
    let mut r = Record::new(level, msg)
        .with_timestamp_ns(ts)
        .with_field("msg_id", "m-1")
        .with_field("user_id", 42)
        .with_field("cart_items", 3)
        .with_http(HttpTransaction::new(http));
    r.request_id = Some(req.into());
    r.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    r.span_id = Some("00f067aa0ba902b7".into());
    r
}

#[tokio::test]
async fn protobuf_push_has_streams_labels_metadata_order_tenant_and_auth() {
    let rx = Receiver::start().await;
    let mut sink = LokiSink::builder(format!("{}/loki/api/v1/push", rx.url()))
        .tenant_id("team-a")
        .basic_auth("loki-user", "s3cret")
        .label("region", "eu-west-1")
        .build()
        .expect("valid config");
    // Out of order on purpose; two levels → two streams.
    let records = vec![
        request_record(Level::Info, "third", T0 + 3_000, "req-3"),
        request_record(Level::Error, "boom", T0 + 2_500, "req-e"),
        request_record(Level::Info, "first", T0 + 1_000, "req-1"),
        request_record(Level::Info, "second", T0 + 2_000, "req-2"),
    ];
    let sent = encode_and_send(&mut sink, &records).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, SendOutcome::Delivered);
    assert_eq!(sent[0].0.records, 4);

    let reqs = rx.wait_for(1).await;
    assert_eq!(reqs.len(), 1);
    let c = &reqs[0];
    assert_eq!(c.method, "POST");
    assert_eq!(c.path(), "/loki/api/v1/push");
    assert_eq!(c.header("content-type"), Some("application/x-protobuf"));
    assert_eq!(c.header("x-scope-orgid"), Some("team-a"));
    let expected_auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("loki-user:s3cret")
    );
    assert_eq!(c.header("authorization"), Some(expected_auth.as_str()));
    assert_eq!(
        c.header("x-loggier-batch-id"),
        Some(sent[0].0.id.to_string().as_str())
    );

    let push = decode_protobuf(c);
    let labels: Vec<&str> = push.streams.iter().map(|s| s.labels.as_str()).collect();
    assert_eq!(
        labels,
        [
            r#"{environment="production", level="error", region="eu-west-1", service="checkout"}"#,
            r#"{environment="production", level="info", region="eu-west-1", service="checkout"}"#,
        ]
    );
    for s in &push.streams {
        for id in ["req-", "4bf92f35", "00f067aa", "/api/orders", "m-1", "42"] {
            assert!(
                !s.labels.contains(id),
                "{id} leaked into labels {}",
                s.labels
            );
        }
    }
    let info = &push.streams[1];
    let lines: Vec<serde_json::Value> = info
        .entries
        .iter()
        .map(|e| serde_json::from_str(&e.line).expect("line is the record JSON"))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().expect("msg"))
        .collect();
    assert_eq!(
        messages,
        ["first", "second", "third"],
        "sorted by timestamp"
    );
    let ts: Vec<(i64, i32)> = info
        .entries
        .iter()
        .map(|e| {
            let t = e.timestamp.expect("timestamp");
            (t.seconds, t.nanos)
        })
        .collect();
    assert_eq!(
        ts,
        [
            (1_741_520_489, 1_000),
            (1_741_520_489, 2_000),
            (1_741_520_489, 3_000)
        ]
    );
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(lines[0]["service"], "checkout");
    assert_eq!(lines[0]["context"]["cart_items"], 3);

    let meta: Vec<(&str, &str)> = info.entries[0]
        .structured_metadata
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(
        meta,
        [
            ("request_id", "req-1"),
            ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("span_id", "00f067aa0ba902b7"),
            ("route", "/api/orders/{id}"),
            ("msg_id", "m-1"),
            ("user_id", "42"),
        ]
    );
    // cart_items is neither built-in nor configured: stays in the line only.
    assert!(!meta.iter().any(|(k, _)| *k == "cart_items"));
    assert!(info.entries.iter().all(|e| e.parsed.is_empty()));

    // Independent decoder: the `loki-api` crate's types (no structured metadata
    // field) read the same streams, lines and timestamps.
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&c.body)
        .expect("snappy");
    let theirs =
        <loki_api::logproto::PushRequest as loki_api::prost::Message>::decode(raw.as_slice())
            .expect("loki-api decodes our bytes");
    assert_eq!(theirs.streams.len(), push.streams.len());
    for (a, b) in theirs.streams.iter().zip(&push.streams) {
        assert_eq!(a.labels, b.labels);
        let theirs_entries: Vec<(i64, i32, &str)> = a
            .entries
            .iter()
            .map(|e| {
                let t = e.timestamp.expect("ts");
                (t.seconds, t.nanos, e.line.as_str())
            })
            .collect();
        let ours: Vec<(i64, i32, &str)> = b
            .entries
            .iter()
            .map(|e| {
                let t = e.timestamp.expect("ts");
                (t.seconds, t.nanos, e.line.as_str())
            })
            .collect();
        assert_eq!(theirs_entries, ours);
    }
}

#[tokio::test]
async fn json_push_matches_lokis_documented_shape() {
    let rx = Receiver::start().await;
    let mut sink = LokiSink::builder(rx.url())
        .push_format(PushFormat::Json)
        .bearer_token("tok-123")
        .build()
        .expect("valid config");
    let plain = Record::new(Level::Warning, "disk at 91%").with_timestamp_ns(T0 + 5);
    let with_ids = request_record(Level::Warning, "slow", T0 + 1, "req-9");
    let sent = encode_and_send(&mut sink, &[plain, with_ids]).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].1, SendOutcome::Delivered);

    let reqs = rx.wait_for(1).await;
    let c = &reqs[0];
    assert_eq!(c.path(), "/loki/api/v1/push");
    assert_eq!(c.header("content-type"), Some("application/json"));
    assert_eq!(c.header("authorization"), Some("Bearer tok-123"));
    assert_eq!(c.header("x-scope-orgid"), None);
    let body: serde_json::Value = serde_json::from_slice(&c.body).expect("json body");
    let streams = body["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 1);
    assert_eq!(
        streams[0]["stream"],
        serde_json::json!({"environment": "production", "level": "warning", "service": "checkout"})
    );
    let values = streams[0]["values"].as_array().expect("values");
    assert_eq!(values.len(), 2);
    // Sorted: T0+1 (with metadata) before T0+5 (without).
    assert_eq!(values[0][0], (T0 + 1).to_string());
    let line: serde_json::Value =
        serde_json::from_str(values[0][1].as_str().expect("line")).expect("line json");
    assert_eq!(line["message"], "slow");
    assert_eq!(values[0][2]["request_id"], "req-9");
    assert_eq!(values[0][2]["route"], "/api/orders/{id}");
    assert_eq!(values[0][2]["user_id"], "42");
    assert_eq!(
        values[1].as_array().expect("entry").len(),
        2,
        "no empty metadata object"
    );
    assert_eq!(values[1][0], (T0 + 5).to_string());
}

#[tokio::test]
async fn logfmt_lines_are_single_line_tskv() {
    let rx = Receiver::start().await;
    let mut sink = LokiSink::builder(rx.url())
        .line_format(LineFormat::Logfmt)
        .build()
        .expect("valid config");
    let r = Record::new(Level::Info, "Request completed\nlevel='critical'")
        .with_timestamp_ns(T0)
        .with_field("status_code", 200);
    encode_and_send(&mut sink, &[r]).await;
    let push = decode_protobuf(&rx.wait_for(1).await[0]);
    let line = &push.streams[0].entries[0].line;
    assert!(
        line.starts_with("timestamp='2025-03-09T11:41:29.000000Z' level='info'"),
        "{line}"
    );
    assert!(
        line.contains(r"event='Request completed\nlevel=\'critical\''"),
        "{line}"
    );
    assert!(line.contains(" status_code=200"), "{line}");
    assert!(!line.contains('\n'));
}

#[tokio::test]
async fn long_lines_are_truncated_with_a_marker() {
    let rx = Receiver::start().await;
    let mut sink = LokiSink::builder(rx.url()).build().expect("default limits");
    let huge = "x".repeat(300_000);
    let r = Record::new(Level::Info, huge).with_timestamp_ns(T0);
    let sent = encode_and_send(&mut sink, &[r]).await;
    assert_eq!(sent[0].1, SendOutcome::Delivered);
    let push = decode_protobuf(&rx.wait_for(1).await[0]);
    let line = &push.streams[0].entries[0].line;
    assert!(line.len() <= 256_000, "{}", line.len());
    assert!(line.len() > 255_000, "kept as much as fits: {}", line.len());
    let marker = line.rsplit("...[truncated: ").next().expect("marker");
    let original: usize = marker
        .trim_end_matches(" bytes]")
        .parse()
        .expect("length in marker");
    assert!(original > 300_000, "original length {original}");
    assert!(line.starts_with("{\"timestamp\":"));

    // A smaller configured limit, multi-byte text: cut on a char boundary.
    let mut small = LokiSink::builder(rx.url())
        .max_line_bytes(1000)
        .max_request_bytes(64 * 1024)
        .build()
        .expect("valid config");
    let r = Record::new(Level::Info, "é".repeat(2000)).with_timestamp_ns(T0);
    encode_and_send(&mut small, &[r]).await;
    let push = decode_protobuf(&rx.wait_for(2).await[1]);
    let line = &push.streams[0].entries[0].line;
    assert!(line.len() <= 1000, "{}", line.len());
    assert!(line.ends_with(" bytes]"), "{line}");
}

/// Deterministic text snappy cannot compress much (xorshift → base64 alphabet).
fn noisy_text(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ALPHABET[(x % 64) as usize] as char
        })
        .collect()
}

async fn assert_split(format: PushFormat, text: impl Fn(usize) -> String) {
    const LIMIT: usize = 24 * 1024;
    let rx = Receiver::start().await;
    let mut sink = LokiSink::builder(rx.url())
        .push_format(format)
        .max_line_bytes(4096)
        .max_request_bytes(LIMIT)
        .build()
        .expect("valid config");
    let records: Vec<Record> = (0..300)
        .map(|i| {
            let level = if i % 3 == 0 {
                Level::Error
            } else {
                Level::Info
            };
            let mut r =
                Record::new(level, format!("{i:04} {}", text(i))).with_timestamp_ns(T0 + i as u64);
            r.request_id = Some(format!("req-{i}"));
            r
        })
        .collect();
    let sent = encode_and_send(&mut sink, &records).await;
    assert!(
        sent.len() > 5,
        "{format:?}: expected several requests, got {}",
        sent.len()
    );
    assert_eq!(sent.iter().map(|(p, _)| p.records).sum::<u32>(), 300);
    assert!(sent.iter().all(|(_, o)| *o == SendOutcome::Delivered));

    let reqs = rx.wait_for(sent.len()).await;
    assert_eq!(reqs.len(), sent.len());
    let mut seen: Vec<(String, u64, String)> = Vec::new();
    for c in &reqs {
        assert!(
            c.body.len() <= LIMIT,
            "{format:?}: body {} > {LIMIT}",
            c.body.len()
        );
        match format {
            PushFormat::Protobuf => {
                let raw = snap::raw::Decoder::new()
                    .decompress_vec(&c.body)
                    .expect("snappy");
                assert!(raw.len() <= LIMIT, "uncompressed {} > {LIMIT}", raw.len());
                let push = PushRequest::decode(raw.as_slice()).expect("proto");
                for s in push.streams {
                    for e in s.entries {
                        let t = e.timestamp.expect("ts");
                        let ns = t.seconds as u64 * 1_000_000_000 + t.nanos as u64;
                        let v: serde_json::Value = serde_json::from_str(&e.line).expect("json");
                        seen.push((
                            s.labels.clone(),
                            ns,
                            v["message"].as_str().expect("m")[..4].to_string(),
                        ));
                    }
                }
            }
            PushFormat::Json => {
                let body: serde_json::Value = serde_json::from_slice(&c.body).expect("json");
                for s in body["streams"].as_array().expect("streams") {
                    let labels = s["stream"].to_string();
                    for v in s["values"].as_array().expect("values") {
                        let ns: u64 = v[0].as_str().expect("ts").parse().expect("ns");
                        let line: serde_json::Value =
                            serde_json::from_str(v[1].as_str().expect("line")).expect("json");
                        seen.push((
                            labels.clone(),
                            ns,
                            line["message"].as_str().expect("m")[..4].to_string(),
                        ));
                    }
                }
            }
        }
    }
    assert_eq!(seen.len(), 300, "every record exactly once");
    // Within each stream, entries arrive in timestamp order across requests.
    for labels in seen
        .iter()
        .map(|s| s.0.clone())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let ts: Vec<u64> = seen.iter().filter(|s| s.0 == labels).map(|s| s.1).collect();
        assert!(ts.windows(2).all(|w| w[0] < w[1]), "{labels}: out of order");
    }
    let mut ids: Vec<String> = seen.into_iter().map(|s| s.2).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 300);
}

#[tokio::test]
async fn batches_split_under_the_request_limit_protobuf_compressible() {
    assert_split(PushFormat::Protobuf, |i| format!("order {i} ").repeat(300)).await;
}

#[tokio::test]
async fn batches_split_under_the_request_limit_protobuf_incompressible() {
    assert_split(PushFormat::Protobuf, |i| noisy_text(i as u64 + 7, 1500)).await;
}

#[tokio::test]
async fn batches_split_under_the_request_limit_json() {
    assert_split(PushFormat::Json, |i| noisy_text(i as u64 + 7, 1500)).await;
}

#[tokio::test]
async fn status_429_and_5xx_retry_400_rejects_with_lokis_message() {
    let rx = Receiver::start().await;
    let mut sink = LokiSink::builder(rx.url()).build().expect("valid config");
    let records = [Arc::new(
        Record::new(Level::Info, "hello").with_timestamp_ns(T0),
    )];
    let payload = sink
        .encode(&records, &service())
        .expect("encodes")
        .remove(0);

    rx.reply(
        Reply::status(429)
            .header("retry-after", "7")
            .body("Ingestion rate limit exceeded for user team-a (limit: 4194304 bytes/sec)"),
    );
    match sink.send(&payload).await {
        SendOutcome::Retry {
            reason,
            retry_after,
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert!(reason.contains("429"), "{reason}");
            assert!(reason.contains("Ingestion rate limit exceeded"), "{reason}");
        }
        other => panic!("429 must retry, got {other:?}"),
    }

    rx.reply(Reply::status(503).body("Ingester not ready"));
    assert!(matches!(
        sink.send(&payload).await,
        SendOutcome::Retry { .. }
    ));

    let loki_400 = "entry for stream '{service=\"checkout\"}' has timestamp too old: 2020-01-01T00:00:00Z, oldest acceptable timestamp is: 2025-03-02T11:41:29Z";
    rx.reply(Reply::status(400).body(loki_400));
    match sink.send(&payload).await {
        SendOutcome::Reject { reason } => {
            assert!(reason.starts_with("http 400"), "{reason}");
            assert!(reason.contains("has timestamp too old"), "{reason}");
        }
        other => panic!("400 must reject, got {other:?}"),
    }

    // The same payload (same id) was sent every time: replay-safe.
    let reqs = rx.wait_for(3).await;
    let ids: Vec<_> = reqs
        .iter()
        .map(|c| c.header("x-loggier-batch-id").map(String::from))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]));
    assert!(reqs.windows(2).all(|w| w[0].body == w[1].body));
}

#[tokio::test]
async fn unreachable_loki_is_a_retry() {
    // Bind and drop to get a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let mut sink = LokiSink::builder(format!("http://127.0.0.1:{port}"))
        .timeout(Duration::from_secs(2))
        .build()
        .expect("valid config");
    let records = [Arc::new(Record::new(Level::Info, "hello"))];
    let payload = sink
        .encode(&records, &service())
        .expect("encodes")
        .remove(0);
    assert!(matches!(
        sink.send(&payload).await,
        SendOutcome::Retry { .. }
    ));
}

#[tokio::test]
async fn from_env_configures_url_tenant_auth_labels_and_format() {
    let rx = Receiver::start().await;
    let url = rx.url();
    let env = move |k: &str| -> Option<String> {
        match k {
            "LOKI_URL" => Some(url.clone()),
            "LOKI_TENANT_ID" => Some("tenant-7".into()),
            "LOKI_BEARER_TOKEN" => Some("env-token".into()),
            "LOKI_LABELS" => Some("team=payments, region=eu".into()),
            "LOKI_METADATA_FIELDS" => Some("order_id".into()),
            "LOKI_PUSH_FORMAT" => Some("json".into()),
            "LOKI_LINE_FORMAT" => Some("logfmt".into()),
            "LOKI_PASSWORD" => Some(String::new()),
            _ => None,
        }
    };
    let mut sink = LokiSinkBuilder::from_env_with(env)
        .expect("env parses")
        .build()
        .expect("valid config");
    let r = Record::new(Level::Info, "paid")
        .with_timestamp_ns(T0)
        .with_field("order_id", "o-77")
        .with_field("user_id", "u-1");
    let sent = encode_and_send(&mut sink, &[r]).await;
    assert_eq!(sent[0].1, SendOutcome::Delivered);
    let c = &rx.wait_for(1).await[0];
    assert_eq!(c.header("x-scope-orgid"), Some("tenant-7"));
    assert_eq!(c.header("authorization"), Some("Bearer env-token"));
    let body: serde_json::Value = serde_json::from_slice(&c.body).expect("json push");
    assert_eq!(body["streams"][0]["stream"]["team"], "payments");
    assert_eq!(body["streams"][0]["stream"]["region"], "eu");
    let entry = &body["streams"][0]["values"][0];
    assert!(entry[1].as_str().expect("line").starts_with("timestamp='"));
    assert_eq!(
        entry[2],
        serde_json::json!({"order_id": "o-77"}),
        "metadata fields replaced"
    );
}

#[test]
fn configuration_errors_name_the_setting() {
    let base = || LokiSink::builder("http://127.0.0.1:3100");
    let cases: Vec<(LokiSinkBuilder, &str, &str)> = vec![
        (base().label("bad-name", "x"), "loki_label", "bad-name"),
        (
            base().label("trace_id", "x"),
            "loki_label",
            "structured metadata",
        ),
        (base().label("level", "x"), "loki_label", "built-in"),
        (base().label("team", ""), "loki_label", "empty"),
        (base().label("__meta", "x"), "loki_label", "reserved"),
        (
            (0..13).fold(base(), |b, i| b.label(format!("l{i}"), "v")),
            "loki_label",
            "at most 12",
        ),
        (
            base().metadata_fields(["user.id"]),
            "loki_metadata_fields",
            "user.id",
        ),
        (base().tenant_id("a b"), "loki_tenant_id", "not allowed"),
        (base().tenant_id("a|b"), "loki_tenant_id", "'|'"),
        (base().max_line_bytes(10), "loki_max_line_bytes", "at least"),
        (
            base().max_request_bytes(1000),
            "loki_max_request_bytes",
            "at least",
        ),
        (base().bearer_token("a\nb"), "loki_auth", "header"),
        (
            base().timeout(Duration::ZERO),
            "http_timeout",
            "greater than zero",
        ),
        (LokiSink::builder("loki:3100"), "loki_url", "scheme"),
    ];
    for (builder, setting, needle) in cases {
        let err = builder.build().expect_err(setting);
        assert_eq!(err.setting(), setting, "{err}");
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
    }
    // 12 static labels + 3 built-in = 15 is fine.
    assert!(
        (0..12)
            .fold(base(), |b, i| b.label(format!("l{i}"), "v"))
            .build()
            .is_ok()
    );
    // A static label that is also a configured metadata field is refused.
    let err = base()
        .metadata_fields(["tenant"])
        .label("tenant", "x")
        .build()
        .expect_err("collision");
    assert_eq!(err.setting(), "loki_label");
}

#[test]
fn env_errors() {
    let err = LokiSinkBuilder::from_env_with(|_| None).expect_err("no url");
    assert_eq!(err.setting(), "LOKI_URL");
    let both = |k: &str| match k {
        "LOKI_URL" => Some("http://l:3100".to_string()),
        "LOKI_USERNAME" => Some("u".to_string()),
        "LOKI_PASSWORD" => Some("p".to_string()),
        "LOKI_BEARER_TOKEN" => Some("t".to_string()),
        _ => None,
    };
    let err = LokiSinkBuilder::from_env_with(both).expect_err("ambiguous auth");
    assert_eq!(err.setting(), "LOKI_BEARER_TOKEN");
    assert!(!err.to_string().contains("\"t\""), "{err}");
    let bad_labels = |k: &str| match k {
        "LOKI_URL" => Some("http://l:3100".to_string()),
        "LOKI_LABELS" => Some("team".to_string()),
        _ => None,
    };
    assert_eq!(
        LokiSinkBuilder::from_env_with(bad_labels)
            .expect_err("no =")
            .setting(),
        "LOKI_LABELS"
    );
    let bad_format = |k: &str| match k {
        "LOKI_URL" => Some("http://l:3100".to_string()),
        "LOKI_PUSH_FORMAT" => Some("xml".to_string()),
        _ => None,
    };
    assert_eq!(
        LokiSinkBuilder::from_env_with(bad_format)
            .expect_err("xml")
            .setting(),
        "LOKI_PUSH_FORMAT"
    );
    let user_only = |k: &str| match k {
        "LOKI_URL" => Some("http://l:3100".to_string()),
        "LOKI_USERNAME" => Some("u".to_string()),
        _ => None,
    };
    assert_eq!(
        LokiSinkBuilder::from_env_with(user_only)
            .expect_err("no password")
            .setting(),
        "LOKI_PASSWORD"
    );
}

#[test]
fn debug_output_hides_credentials() {
    let sink = LokiSink::builder("http://127.0.0.1:3100")
        .basic_auth("user", "hunter2-password")
        .build()
        .expect("valid");
    let text = format!("{sink:?}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        !text.contains(&base64::engine::general_purpose::STANDARD.encode("user:hunter2-password")),
        "{text}"
    );
}

// ---- End to end: Loggier client → pipeline worker → LokiSink → receiver ----

fn client_with(sink: LokiSink, dir: &std::path::Path) -> loggier_core::Loggier {
    loggier_core::Loggier::builder()
        .service_name("checkout")
        .environment("staging")
        .data_dir(dir)
        .flush_interval(Duration::from_millis(50))
        .sink(sink)
        .build()
        .expect("client builds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_scope_ids_become_metadata_and_secrets_are_masked() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = LokiSink::builder(rx.url())
        .tenant_id("team-a")
        .build()
        .expect("valid config");
    let log = client_with(sink, dir.path());
    {
        let _scope = loggier_core::context::Scope::new()
            .request_id("req-42")
            .trace(
                "4bf92f3577b34da6a3ce929d0e0e4736",
                Some("00f067aa0ba902b7".into()),
            )
            .field("user_id", "u-7")
            .enter();
        log.event(Level::Warning, "payment declined")
            .field("password", "hunter2")
            .field("card_last4", "4242")
            .emit();
        let mut req = HttpRequest::default();
        req.method = "POST".into();
        req.path = "/api/pay".into();
        req.route = Some("/api/pay".into());
        req.headers
            .insert("authorization".into(), "Bearer hunter2-token".into());
        req.query.insert("api_key".into(), "hunter2-key".into());
        log.log(
            Record::new(Level::Info, "POST /api/pay - 402").with_http(HttpTransaction::new(req)),
        );
    }
    assert!(log.flush_async(Duration::from_secs(10)).await, "flushed");

    let reqs = rx.wait_for(1).await;
    assert!(!reqs.is_empty(), "receiver got the batch");
    let mut entries = Vec::new();
    for c in &reqs {
        assert_eq!(c.header("x-scope-orgid"), Some("team-a"));
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&c.body)
            .expect("snappy");
        let text = String::from_utf8_lossy(&raw);
        assert!(
            !text.contains("hunter2"),
            "a secret left the process: {text}"
        );
        let push = PushRequest::decode(raw.as_slice()).expect("proto");
        for s in push.streams {
            for e in s.entries {
                entries.push((s.labels.clone(), e));
            }
        }
    }
    assert_eq!(entries.len(), 2);
    let (labels, warn) = entries
        .iter()
        .find(|(l, _)| l.contains("level=\"warning\""))
        .expect("warning entry");
    assert_eq!(
        labels,
        r#"{environment="staging", level="warning", service="checkout"}"#
    );
    let meta: Vec<(&str, &str)> = warn
        .structured_metadata
        .iter()
        .map(|p| (p.name.as_str(), p.value.as_str()))
        .collect();
    assert_eq!(
        meta,
        [
            ("request_id", "req-42"),
            ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
            ("span_id", "00f067aa0ba902b7"),
            ("user_id", "u-7"),
        ]
    );
    let line: serde_json::Value = serde_json::from_str(&warn.line).expect("json line");
    assert_eq!(line["context"]["password"], "[FILTERED]");
    assert_eq!(line["context"]["card_last4"], "4242");
    let (_, http) = entries
        .iter()
        .find(|(l, _)| l.contains("level=\"info\""))
        .expect("info entry");
    assert!(
        http.structured_metadata
            .iter()
            .any(|p| p.name == "route" && p.value == "/api/pay")
    );
    let line: serde_json::Value = serde_json::from_str(&http.line).expect("json line");
    let request = &line["context"]["transaction"]["request"];
    assert_eq!(request["headers"]["authorization"], "[FILTERED]");
    assert_eq!(request["query_params"]["api_key"], "[FILTERED]");

    let stats = log.stats();
    let s = stats.sink("loki").expect("loki stats");
    assert_eq!(s.written, 2);
    assert_eq!(s.dropped(), 0);
    log.shutdown(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_429_is_retried_and_400_is_dropped_and_counted() {
    let rx = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = client_with(
        LokiSink::builder(rx.url()).build().expect("valid config"),
        dir.path(),
    );

    // 429 with Retry-After: 0, then the default 204: delivered on the second try.
    rx.reply(
        Reply::status(429)
            .header("retry-after", "0")
            .body("too many outstanding requests"),
    );
    log.info("first");
    assert!(
        log.flush_async(Duration::from_secs(10)).await,
        "delivered after a retry"
    );
    let reqs = rx.wait_for(2).await;
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[0].header("x-loggier-batch-id"),
        reqs[1].header("x-loggier-batch-id"),
        "the retry resends the same batch"
    );
    let s = log.stats().sink("loki").cloned().expect("stats");
    assert_eq!((s.written, s.retried), (1, 1));

    // 400: Loki refused the entries for good; dropped, counted, reason kept.
    rx.reply(Reply::status(400).body(
        "entry with timestamp 2020-01-01 00:00:00 +0000 UTC ignored, reason: 'entry too far behind'",
    ));
    log.info("second");
    assert!(
        !log.flush_async(Duration::from_secs(10)).await,
        "not written"
    );
    let s = log.stats().sink("loki").cloned().expect("stats");
    assert_eq!(s.written, 1);
    assert_eq!(s.dropped_rejected, 1);
    let last = s.last_error.unwrap_or_default();
    assert!(
        last.contains("http 400") && last.contains("entry too far behind"),
        "{last}"
    );
    assert_eq!(rx.requests().len(), 3, "a rejected batch is not retried");
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn sinks_setting_loki_reads_the_loki_env() {
    // Without LOKI_URL in the environment, naming the sink is a clear config error.
    // (Skipped when the developer's shell exports LOKI_URL.)
    if std::env::var_os("LOKI_URL").is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = loggier_core::Config::default();
    config.sinks = vec!["loki".into()];
    config.data_dir = dir.path().to_path_buf();
    let err = loggier_core::LoggierBuilder::from_config(config)
        .build()
        .expect_err("LOKI_URL missing");
    assert_eq!(err.setting(), "LOKI_URL");
}
