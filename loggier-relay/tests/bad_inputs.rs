//! A table of bad requests: each gets the documented status and a JSON error naming
//! the problem (and the field path where there is one); none is accepted.
#![allow(clippy::unwrap_used)]

mod common;

use std::num::NonZeroU32;

use common::{TestRelay, gzip, http};
use loggier_relay::{ApiKey, KeySet, Limits, RelayConfig};
use serde_json::Value;

struct Case {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
    message: Option<&'static str>,
}

const JSON: (&str, &str) = ("content-type", "application/json");
const NDJSON: (&str, &str) = ("content-type", "application/x-ndjson");
const ING: (&str, &str) = ("authorization", "Bearer ing");
const QRY: (&str, &str) = ("x-api-key", "qry");

fn post(name: &'static str, path: &'static str, body: impl Into<Vec<u8>>) -> Case {
    Case {
        name,
        method: "POST",
        path,
        headers: vec![JSON, ING],
        body: body.into(),
        status: 400,
        code: "",
        field: None,
        message: None,
    }
}

impl Case {
    fn expect(mut self, status: u16, code: &'static str) -> Self {
        self.status = status;
        self.code = code;
        self
    }
    fn at(mut self, field: &'static str) -> Self {
        self.field = Some(field);
        self
    }
    fn says(mut self, text: &'static str) -> Self {
        self.message = Some(text);
        self
    }
    fn headers(mut self, h: Vec<(&'static str, &'static str)>) -> Self {
        self.headers = h;
        self
    }
    fn get(mut self) -> Self {
        self.method = "GET";
        self
    }
}

fn config() -> RelayConfig {
    RelayConfig {
        keys: KeySet::new(vec![
            ApiKey::new("ing", true, false),
            ApiKey::new("ing-app", true, false).for_services(["app"]),
            ApiKey::new("qry", false, true),
        ]),
        limits: Limits {
            max_body_bytes: 4096,
            max_records: 5,
            max_field_bytes: 256,
            max_depth: 8,
        },
        ..RelayConfig::default()
    }
}

fn cases() -> Vec<Case> {
    let bomb = gzip(&vec![b' '; 2 * 1024 * 1024]);
    let ok_gz = gzip(br#"{"message":"fine"}"#);
    let truncated = ok_gz[..ok_gz.len() - 5].to_vec();
    let deep = format!(
        "{{\"message\":\"m\",\"data\":{{\"a\":{}1{}}}}}",
        "[".repeat(10),
        "]".repeat(10)
    );
    let long_msg = format!("{{\"message\":\"{}\"}}", "x".repeat(300));
    let long_key = format!(
        "{{\"message\":\"m\",\"data\":{{\"{}\":1}}}}",
        "k".repeat(300)
    );
    let too_big = format!("{{\"message\":\"{}\"}}", "y".repeat(5000));
    let six = format!("[{}]", [r#"{"message":"m"}"#; 6].join(","));
    vec![
        post("malformed json", "/log", r#"{"message":"#)
            .expect(400, "invalid_json")
            .says("malformed JSON"),
        post("empty body", "/log", "").expect(400, "invalid_json"),
        post("trailing garbage", "/log", r#"{"message":"a"} x"#).expect(400, "invalid_json"),
        post("message wrong type", "/log", r#"{"message":5}"#)
            .expect(400, "invalid_field")
            .at("message")
            .says("invalid type: integer `5`, expected a string"),
        post("unknown level", "/log", r#"{"message":"m","level":"loud"}"#)
            .expect(400, "unknown_level")
            .at("level")
            .says("unknown level \"loud\", expected one of trace, debug, info, warning (warn), error, critical (fatal)"),
        post("unknown field", "/log", r#"{"message":"m","colour":"red"}"#)
            .expect(400, "unknown_field")
            .says("unknown field `colour`"),
        post("missing message", "/log", r#"{"level":"info"}"#)
            .expect(400, "missing_field")
            .says("missing field `message`"),
        post(
            "data not an object",
            "/log",
            r#"{"message":"m","data":[1]}"#,
        )
        .expect(400, "invalid_field")
        .at("data"),
        post(
            "stack line bool",
            "/log",
            r#"{"message":"m","stack":[{"line":true}]}"#,
        )
        .expect(400, "invalid_field")
        .at("stack[0].line")
        .says("line number"),
        post(
            "stack line negative",
            "/log",
            r#"{"message":"m","stack":[{"line":-3}]}"#,
        )
        .expect(400, "invalid_field")
        .at("stack[0].line"),
        post(
            "stack frame unknown field",
            "/log",
            r#"{"message":"m","stack":[{"fn":"x"}]}"#,
        )
        .expect(400, "unknown_field")
        .says("unknown field `fn`"),
        post("huge string", "/log", long_msg)
            .expect(400, "field_too_long")
            .at("message")
            .says("over the limit of 256 bytes"),
        post("huge key", "/log", long_key)
            .expect(400, "field_too_long")
            .at(Box::leak(
                format!("data.{}", "k".repeat(300)).into_boxed_str(),
            )),
        post("deep nesting", "/log", deep)
            .expect(400, "too_deep")
            .says("deeper than 8"),
        post(
            "invalid utf-8",
            "/log",
            b"{\"message\":\"\xff\xfe\"}".to_vec(),
        )
        .expect(400, "invalid_utf8"),
        post("wrong content type", "/log", "<log/>")
            .headers(vec![("content-type", "text/xml"), ING])
            .expect(415, "unsupported_media_type")
            .says("application/json"),
        post("no content type", "/log", r#"{"message":"m"}"#)
            .headers(vec![ING])
            .expect(415, "unsupported_media_type"),
        post("unsupported encoding", "/log", r#"{"message":"m"}"#)
            .headers(vec![JSON, ING, ("content-encoding", "br")])
            .expect(415, "unsupported_encoding"),
        post("gzip bomb", "/log", bomb)
            .headers(vec![JSON, ING, ("content-encoding", "gzip")])
            .expect(413, "body_too_large")
            .says("decompressed body"),
        post("truncated gzip", "/log", truncated)
            .headers(vec![JSON, ING, ("content-encoding", "gzip")])
            .expect(400, "invalid_gzip"),
        post("over-limit body", "/log", too_big).expect(413, "body_too_large"),
        post("missing key", "/log", r#"{"message":"m"}"#)
            .headers(vec![JSON])
            .expect(401, "missing_key"),
        post("wrong key", "/log", r#"{"message":"m"}"#)
            .headers(vec![JSON, ("authorization", "Bearer nope")])
            .expect(401, "invalid_key"),
        post("query key on ingest", "/log", r#"{"message":"m"}"#)
            .headers(vec![JSON, QRY])
            .expect(403, "out_of_scope")
            .says("no ingest scope"),
        post(
            "service outside the key",
            "/log",
            r#"{"message":"m","service":"web"}"#,
        )
        .headers(vec![JSON, ("x-api-key", "ing-app")])
        .expect(403, "service_not_allowed")
        .at("service")
        .says("\"web\""),
        post(
            "service-limited key, no service",
            "/logs",
            r#"[{"message":"m","service":"app"},{"message":"n"}]"#,
        )
        .headers(vec![JSON, ("x-api-key", "ing-app")])
        .expect(403, "service_not_allowed")
        .at("[1].service"),
        post("too many records", "/logs", six)
            .expect(400, "too_many_records")
            .says("more than 5"),
        post(
            "ndjson bad line",
            "/logs",
            "{\"message\":\"a\"}\n{\"message\":\"b\",\"level\":\"x\"}\n",
        )
        .headers(vec![NDJSON, ING])
        .expect(400, "unknown_level")
        .at("[1].level")
        .says("line 2"),
        post("batch is an object", "/logs", r#"{"message":"m"}"#)
            .expect(400, "invalid_field")
            .says("expected a sequence"),
        post(
            "ingest bad timestamp",
            "/api/ingest",
            r#"[{"level":"INFO","message":"m","timestamp":"yesterday"}]"#,
        )
        .expect(400, "invalid_field")
        .at("[0].timestamp"),
        post("ingest bad batch id", "/api/ingest", "[]")
            .headers(vec![
                JSON,
                ING,
                ("x-loggier-batch-id", "bad id with spaces"),
            ])
            .expect(400, "invalid_batch_id"),
        post(
            "loki push bad timestamp",
            "/api/v1/loki/push",
            r#"{"streams":[{"stream":{"a":"b"},"values":[[1,"x"]]}]}"#,
        )
        .expect(400, "invalid_field")
        .at("streams[0].values[0]"),
        post(
            "loki push protobuf garbage",
            "/api/v1/loki/push",
            b"\x05garbage".to_vec(),
        )
        .headers(vec![("content-type", "application/x-protobuf"), ING])
        .expect(400, "invalid_protobuf"),
        post(
            "query limit 0",
            "/api/v1/loki/query",
            r#"{"query":"{a=\"b\"}","limit":0}"#,
        )
        .headers(vec![JSON, QRY])
        .expect(400, "invalid_field")
        .at("limit"),
        post(
            "query unknown direction",
            "/api/v1/loki/query",
            r#"{"query":"{a=\"b\"}","direction":"up"}"#,
        )
        .headers(vec![JSON, QRY])
        .expect(400, "invalid_field")
        .at("direction"),
        post(
            "query bad time",
            "/api/v1/loki/query",
            r#"{"query":"{a=\"b\"}","start":"noon"}"#,
        )
        .headers(vec![JSON, QRY])
        .expect(400, "invalid_field")
        .at("start"),
        post(
            "query with ingest key",
            "/api/v1/loki/query",
            r#"{"query":"{a=\"b\"}"}"#,
        )
        .expect(403, "out_of_scope"),
        post(
            "simple query without query",
            "/api/v1/loki/query/simple?hours=1",
            "",
        )
        .get()
        .headers(vec![QRY])
        .expect(400, "missing_field")
        .at("query"),
        post(
            "simple query hours out of range",
            "/api/v1/loki/query/simple?query=%7Ba%3D%22b%22%7D&hours=100000",
            "",
        )
        .get()
        .headers(vec![QRY])
        .expect(400, "invalid_field")
        .at("hours"),
        post("bad label name", "/api/v1/loki/labels/9lives/values", "")
            .get()
            .headers(vec![QRY])
            .expect(400, "invalid_label_name"),
        post(
            "query without loki",
            "/api/v1/loki/query",
            r#"{"query":"{a=\"b\"}"}"#,
        )
        .headers(vec![JSON, QRY])
        .expect(503, "loki_not_configured"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_a_clear_status_and_json_error() {
    let relay = TestRelay::start(None, config(), &[]).await;
    let cases = cases();
    let bomb = &cases.iter().find(|c| c.name == "gzip bomb").unwrap().body;
    assert!(
        bomb.len() < 4096,
        "the bomb itself is under the limit: {}",
        bomb.len()
    );
    assert!(cases.len() >= 25);
    let mut failures = Vec::new();
    for c in &cases {
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        let mut req = http().request(method, relay.url(c.path));
        for (k, v) in &c.headers {
            req = req.header(*k, *v);
        }
        if c.method == "POST" {
            req = req.body(c.body.clone());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let ctype = res
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string());
        let text = res.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let err = &body["error"];
        let mut problems = Vec::new();
        if status != c.status {
            problems.push(format!("status {status}, want {}", c.status));
        }
        if ctype.as_deref() != Some("application/json") {
            problems.push(format!("content-type {ctype:?}"));
        }
        if err["code"] != c.code {
            problems.push(format!("code {}, want {}", err["code"], c.code));
        }
        if let Some(f) = c.field {
            if err["path"] != f {
                problems.push(format!("path {}, want {f}", err["path"]));
            }
        }
        if let Some(m) = c.message {
            if !err["message"].as_str().unwrap_or("").contains(m) {
                problems.push(format!("message {} lacks {m:?}", err["message"]));
            }
        }
        if err["message"].as_str().is_none_or(str::is_empty) {
            problems.push("no message".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {} — body {text}", c.name, problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Nothing was accepted.
    let m = http()
        .get(relay.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!m.contains("loggier_relay_accepted_total{"), "{m}");
    assert!(
        m.contains("loggier_relay_rejected_total{reason=\"invalid_json\"} 3"),
        "{m}"
    );
    relay.flush().await;
    let file = relay.dir.path().join("loggier.ndjson");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    assert_eq!(text, "", "nothing reached the sink");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_429_with_retry_after_per_key() {
    let mut c = config();
    c.rate_per_sec = NonZeroU32::new(1).unwrap();
    c.rate_burst = NonZeroU32::new(2).unwrap();
    let relay = TestRelay::start(None, c, &[]).await;
    let send = |key: &'static str| {
        http()
            .post(relay.url("/log"))
            .header("x-api-key", key)
            .json(&serde_json::json!({"message": "m", "service": "app"}))
            .send()
    };
    assert_eq!(send("ing").await.unwrap().status(), 202);
    assert_eq!(send("ing").await.unwrap().status(), 202);
    let res = send("ing").await.unwrap();
    assert_eq!(res.status(), 429);
    let after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&after), "{after}");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limited");
    // Another key has its own bucket.
    assert_eq!(send("ing-app").await.unwrap().status(), 202);
}
