//! The scenarios. Each takes the server's base URL (`http://127.0.0.1:PORT`) and the
//! [`Records`] of the client the server logs through, drives real HTTP requests, and
//! panics (test failure) with a description when the adapter misbehaves.

use std::time::Duration;

use serde_json::Value;

use crate::app::{
    BODY_LIMIT, ENDPOINT_SLOW_THRESHOLD_MS, SLOW_THRESHOLD, STREAM_FIRST, STREAM_TOTAL,
};
use crate::http_client;
use crate::sink::{Records, is_transaction, request_id};

/// A fresh request id for one request of a scenario.
pub fn new_id(label: &str) -> String {
    format!("{label}-{}", uuid::Uuid::new_v4().simple())
}

/// Runs every scenario shared by all adapters, one after another.
pub async fn run_common(base: &str, records: &Records) {
    tracked_and_untracked_statuses(base, records).await;
    slow_threshold(base, records).await;
    excluded_paths(base, records).await;
    request_body_within_limit(base, records).await;
    request_body_over_limit(base, records).await;
    chunked_request_body(base, records).await;
    streaming_response(base, records).await;
    client_disconnect(base, records).await;
    sensitive_data_masked(base, records).await;
    secret_spellings_in_text_and_form_bodies_masked(base, records).await;
    request_ids(base, records).await;
    traceparent(base, records).await;
    handler_logs_carry_request_id(base, records).await;
}

/// Runs every `#[track_endpoint]` scenario against a server using
/// [`endpoint_settings`](crate::endpoint_settings) and serving the
/// [endpoint routes](crate::app) next to the common ones.
pub async fn run_endpoint(base: &str, records: &Records) {
    endpoint_statuses(base, records).await;
    endpoint_tags(base, records).await;
    endpoint_request_body(base, records).await;
    endpoint_slow_threshold(base, records).await;
}

async fn get(base: &str, path: &str, id: Option<&str>) -> reqwest::Response {
    let mut req = http_client().get(format!("{base}{path}"));
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    req.send().await.expect("request succeeds")
}

/// Sends a tracked marker request and waits for its record; any record an earlier
/// request produced has arrived by then (records are delivered in the order they were
/// logged, and earlier responses were complete). Then asserts none of `ids` has a
/// transaction record.
pub async fn assert_not_recorded(base: &str, records: &Records, ids: &[&str]) {
    let marker = new_id("marker");
    let resp = get(base, "/status/401", Some(&marker)).await;
    let _ = resp.bytes().await;
    records.transaction(&marker).await;
    for id in ids {
        let got = records.transactions_now(id).await;
        assert!(
            got.is_empty(),
            "request {id} should not be recorded: {got:?}"
        );
    }
}

fn tx(r: &Value) -> &Value {
    &r["context"]["transaction"]
}

/// 401 and 500 are tracked (warning, error; seed message shape), 404 and 200 are not.
pub async fn tracked_and_untracked_statuses(base: &str, records: &Records) {
    let (a, b, c, d) = (
        new_id("s401"),
        new_id("s500"),
        new_id("s404"),
        new_id("s200"),
    );
    for (path, id, status) in [
        ("/status/401", &a, 401),
        ("/status/500", &b, 500),
        ("/status/404", &c, 404),
        ("/ok", &d, 200),
    ] {
        let resp = get(base, path, Some(id)).await;
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let _ = resp.bytes().await;
    }
    let r = records.transaction(&a).await;
    assert_eq!(r["level"], "WARNING");
    assert_eq!(r["message"], "Client error: GET /status/401 - 401");
    assert_eq!(tx(&r)["response"]["status_code"], 401);
    assert_eq!(tx(&r)["request"]["method"], "GET");
    assert_eq!(tx(&r)["request"]["path"], "/status/401");
    assert!(tx(&r)["duration_ms"].as_f64().is_some_and(|d| d >= 0.0));
    let r = records.transaction(&b).await;
    assert_eq!(r["level"], "ERROR");
    assert_eq!(r["message"], "Server error: GET /status/500 - 500");
    // Error response bodies are captured by default.
    assert_eq!(tx(&r)["response"]["body"]["content"], "status 500");
    assert_eq!(tx(&r)["response"]["body"]["size_bytes"], 10);
    assert_not_recorded(base, records, &[&c, &d]).await;
}

/// A request slower than the threshold is recorded at warning level with its
/// duration; a fast one is not.
pub async fn slow_threshold(base: &str, records: &Records) {
    let slow = new_id("slow");
    let fast = new_id("fast");
    let ms = SLOW_THRESHOLD.as_millis() + 200;
    let resp = get(base, &format!("/slow?ms={ms}"), Some(&slow)).await;
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.bytes().await;
    let resp = get(base, "/slow?ms=0", Some(&fast)).await;
    let _ = resp.bytes().await;
    let r = records.transaction(&slow).await;
    assert_eq!(r["level"], "WARNING");
    let msg = r["message"].as_str().unwrap_or_default();
    assert!(msg.starts_with("Slow request: GET /slow - 200 ("), "{msg}");
    let d = tx(&r)["duration_ms"].as_f64().unwrap_or_default();
    assert!(d >= ms as f64, "duration {d} ms < {ms} ms");
    assert_eq!(r["context"]["slow_request_threshold_ms"], 500);
    assert_not_recorded(base, records, &[&fast]).await;
}

/// Excluded paths are never recorded, even with a tracked status, and get no
/// request id header.
pub async fn excluded_paths(base: &str, records: &Records) {
    let id = new_id("health");
    let resp = get(base, "/health?status=500", Some(&id)).await;
    assert_eq!(resp.status().as_u16(), 500);
    assert!(resp.headers().get("x-request-id").is_none());
    let _ = resp.bytes().await;
    assert_not_recorded(base, records, &[&id]).await;
}

async fn post_echo(
    base: &str,
    status: u16,
    id: &str,
    content_type: &str,
    body: reqwest::Body,
) -> reqwest::Response {
    http_client()
        .post(format!("{base}/echo?status={status}"))
        .header("x-request-id", id)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request succeeds")
}

/// A JSON request body under the limit is kept whole, parsed, with `password` masked;
/// the echoed error response body too.
pub async fn request_body_within_limit(base: &str, records: &Records) {
    let id = new_id("body-small");
    let body = r#"{"user":"ann","password":"hunter2-small","items":[1,2]}"#;
    let resp = post_echo(base, 400, &id, "application/json", body.into()).await;
    assert_eq!(resp.status().as_u16(), 400);
    assert_eq!(resp.text().await.expect("body"), body);
    let r = records.transaction(&id).await;
    let req_body = &tx(&r)["request"]["body"];
    assert_eq!(req_body["truncated"], false);
    assert_eq!(req_body["size_bytes"], body.len());
    assert_eq!(req_body["content"]["user"], "ann");
    assert_eq!(req_body["content"]["password"], "[FILTERED]");
    assert_eq!(req_body["content"]["items"], serde_json::json!([1, 2]));
    let resp_body = &tx(&r)["response"]["body"];
    assert_eq!(resp_body["content"]["password"], "[FILTERED]");
    assert!(!records.raw_text().await.contains("hunter2-small"));
}

/// A body over the limit: the first `max_body_size` bytes kept, `truncated`, and the
/// full length recorded; the client still gets every byte.
pub async fn request_body_over_limit(base: &str, records: &Records) {
    let id = new_id("body-big");
    let body: String = (0..5000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let resp = post_echo(base, 400, &id, "text/plain", body.clone().into()).await;
    assert_eq!(resp.text().await.expect("body").len(), 5000);
    let r = records.transaction(&id).await;
    let req_body = &tx(&r)["request"]["body"];
    assert_eq!(req_body["truncated"], true);
    assert_eq!(req_body["size_bytes"], 5000);
    assert_eq!(
        req_body["content"].as_str().map(str::len),
        Some(BODY_LIMIT),
        "{req_body}"
    );
    assert_eq!(req_body["content"].as_str(), Some(&body[..BODY_LIMIT]));
    let resp_body = &tx(&r)["response"]["body"];
    assert_eq!(resp_body["truncated"], true);
    assert_eq!(resp_body["size_bytes"], 5000);
}

/// A chunked request body (no `Content-Length`, sent in pieces) is captured in full.
pub async fn chunked_request_body(base: &str, records: &Records) {
    let id = new_id("chunked");
    const PIECES: [&str; 3] = ["part-one;", "part-two;", "part-three"];
    // Separate frames with a pause between them, no Content-Length: chunked encoding.
    let stream = futures_util::stream::unfold(0usize, |i| async move {
        let piece = PIECES.get(i)?;
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Some((
            Ok::<_, std::io::Error>(bytes::Bytes::from_static(piece.as_bytes())),
            i + 1,
        ))
    });
    let resp = post_echo(
        base,
        400,
        &id,
        "text/plain",
        reqwest::Body::wrap_stream(stream),
    )
    .await;
    let whole = PIECES.concat();
    assert_eq!(resp.text().await.expect("body"), whole);
    let r = records.transaction(&id).await;
    let req_body = &tx(&r)["request"]["body"];
    assert_eq!(req_body["content"], whole.as_str());
    assert_eq!(req_body["size_bytes"], whole.len());
    assert_eq!(req_body["truncated"], false);
}

/// The first chunk of a streaming response reaches the client while the handler is
/// still producing the stream (no record yet: it is emitted at the end); after the
/// stream is released the record arrives with the full byte count.
pub async fn streaming_response(base: &str, records: &Records) {
    let id = new_id("stream");
    let mut resp = get(base, "/stream?status=500", Some(&id)).await;
    assert_eq!(resp.status().as_u16(), 500);
    let mut got = Vec::new();
    while got.len() < STREAM_FIRST.len() {
        let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
            .await
            .expect("first chunk arrives while the stream is held open")
            .expect("chunk")
            .expect("not the end yet");
        got.extend_from_slice(&chunk);
    }
    assert_eq!(&got[..], STREAM_FIRST);
    assert!(
        records.transactions_now(&id).await.is_empty(),
        "record must wait for the end of the body"
    );
    let release = get(base, "/stream/release", None).await;
    assert_eq!(release.status().as_u16(), 200);
    while let Some(chunk) = resp.chunk().await.expect("rest of the stream") {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got.len(), STREAM_TOTAL);
    let r = records.transaction(&id).await;
    let body = &tx(&r)["response"]["body"];
    assert_eq!(body["size_bytes"], STREAM_TOTAL);
    assert_eq!(body["truncated"], true);
    assert!(r["context"].get("response_aborted").is_none(), "{r}");
}

/// A client that disconnects mid-response still produces the record, marked aborted.
pub async fn client_disconnect(base: &str, records: &Records) {
    let id = new_id("disconnect");
    let mut resp = get(base, "/endless?status=503", Some(&id)).await;
    assert_eq!(resp.status().as_u16(), 503);
    let first = resp.chunk().await.expect("chunk").expect("some bytes");
    assert!(!first.is_empty());
    drop(resp);
    let r = records.transaction(&id).await;
    assert_eq!(r["context"]["response_aborted"], true, "{r}");
    assert_eq!(r["level"], "ERROR");
    let size = tx(&r)["response"]["body"]["size_bytes"]
        .as_u64()
        .unwrap_or_default();
    assert!((100..200_000).contains(&size), "{size}");
}

/// Sensitive headers, query parameters and JSON body fields are masked; the secrets
/// never appear in anything the sink received.
pub async fn sensitive_data_masked(base: &str, records: &Records) {
    let id = new_id("secrets");
    let resp = http_client()
        .post(format!("{base}/echo?status=500&token=sekrit-query&page=2"))
        .header("x-request-id", &id)
        .header("authorization", "Bearer sekrit-auth")
        .header("cookie", "session=sekrit-cookie")
        .header("x-api-key", "sekrit-key")
        .header("x-visible", "shown")
        .header("content-type", "application/json")
        .body(
            r#"{"login":"ann","credentials":{"password":"sekrit-body","api_key":"sekrit-nested"}}"#,
        )
        .send()
        .await
        .expect("request succeeds");
    assert_eq!(resp.status().as_u16(), 500);
    let _ = resp.bytes().await;
    let r = records.transaction(&id).await;
    let req = &tx(&r)["request"];
    for h in ["authorization", "cookie", "x-api-key"] {
        assert_eq!(req["headers"][h], "[FILTERED]", "{h}: {req}");
    }
    assert_eq!(req["headers"]["x-visible"], "shown");
    assert_eq!(req["query_params"]["token"], "[FILTERED]");
    assert_eq!(req["query_params"]["page"], "2");
    assert_eq!(req["body"]["content"]["login"], "ann");
    assert_eq!(
        req["body"]["content"]["credentials"]["password"],
        "[FILTERED]"
    );
    let raw = records.raw_text().await;
    assert!(!raw.contains("sekrit"), "a secret leaked into the output");
}

/// Issue 9, item 9, through the adapter: camelCase / kebab / snake spellings of
/// secret keys in headers, the query string, a JSON body sent as
/// `text/plain;charset=UTF-8` (browser `fetch` with a string body) and a form body are
/// masked; the echoed error responses too. No `sekrit` reaches the sink.
pub async fn secret_spellings_in_text_and_form_bodies_masked(base: &str, records: &Records) {
    let id = new_id("spellings-text");
    let body = r#"{"user":"ann","cardNumber":"sekrit-b1","nested":{"private-key":"sekrit-b2","cvv2":"sekrit-b3"}}"#;
    let resp = http_client()
        .post(format!(
            "{base}/echo?status=400&session_id=sekrit-q1&sessionId=sekrit-q2&page=2"
        ))
        .header("x-request-id", &id)
        .header("x-session-id", "sekrit-h1")
        .header("cookies", "sekrit-h2")
        .header("content-type", "text/plain;charset=UTF-8")
        .body(body)
        .send()
        .await
        .expect("request succeeds");
    assert_eq!(resp.status().as_u16(), 400);
    let _ = resp.bytes().await;
    let r = records.transaction(&id).await;
    let req = &tx(&r)["request"];
    assert_eq!(req["headers"]["x-session-id"], "[FILTERED]", "{req}");
    assert_eq!(req["query_params"]["session_id"], "[FILTERED]", "{req}");
    assert_eq!(req["query_params"]["page"], "2");
    assert_eq!(req["body"]["content"]["user"], "ann", "{req}");
    assert_eq!(req["body"]["content"]["cardNumber"], "[FILTERED]", "{req}");

    let id = new_id("spellings-form");
    let resp = post_echo(
        base,
        400,
        &id,
        "application/x-www-form-urlencoded",
        "user=ann&pwd=sekrit-f1&passphrase=sekrit-f2&jsessionid=sekrit-f3".into(),
    )
    .await;
    let _ = resp.bytes().await;
    let r = records.transaction(&id).await;
    let content = &tx(&r)["request"]["body"]["content"];
    assert_eq!(
        content,
        "user=ann&pwd=[FILTERED]&passphrase=[FILTERED]&jsessionid=[FILTERED]"
    );
    let raw = records.raw_text().await;
    assert!(!raw.contains("sekrit"), "a secret leaked into the output");
}

/// Request ids: generated (UUIDv7) when absent or invalid, accepted when valid, always
/// echoed, and the record carries the same id.
pub async fn request_ids(base: &str, records: &Records) {
    let resp = get(base, "/status/500", None).await;
    let generated = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    let _ = resp.bytes().await;
    let u = uuid::Uuid::parse_str(&generated).expect("generated id is a UUID");
    assert_eq!(u.get_version_num(), 7);
    records.transaction(&generated).await;

    let id = new_id("given");
    let resp = get(base, "/status/500", Some(&id)).await;
    assert_eq!(resp.headers()["x-request-id"], id.as_str());
    let _ = resp.bytes().await;
    records.transaction(&id).await;

    let resp = get(base, "/status/500", Some("has spaces in it")).await;
    let replaced = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert_ne!(replaced, "has spaces in it");
    assert!(uuid::Uuid::parse_str(&replaced).is_ok());
    let _ = resp.bytes().await;
    records.transaction(&replaced).await;
}

/// A valid `traceparent` lands in the record's trace ids; an invalid one is ignored.
pub async fn traceparent(base: &str, records: &Records) {
    let id = new_id("trace");
    let resp = http_client()
        .get(format!("{base}/status/500"))
        .header("x-request-id", &id)
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .expect("request succeeds");
    let _ = resp.bytes().await;
    let r = records.transaction(&id).await;
    assert_eq!(r["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(r["span_id"], "00f067aa0ba902b7");

    let id = new_id("trace-bad");
    let resp = http_client()
        .get(format!("{base}/status/500"))
        .header("x-request-id", &id)
        .header("traceparent", "00-NOT-A-TRACE-01")
        .send()
        .await
        .expect("request succeeds");
    let _ = resp.bytes().await;
    let r = records.transaction(&id).await;
    assert!(r.get("trace_id").is_none(), "{r}");
}

/// Records logged by the handler — before and after an `.await` — carry the request
/// id (given or generated) and the trace id.
pub async fn handler_logs_carry_request_id(base: &str, records: &Records) {
    let id = new_id("handler-log");
    let resp = http_client()
        .get(format!("{base}/log"))
        .header("x-request-id", &id)
        .header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .send()
        .await
        .expect("request succeeds");
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.bytes().await;
    for msg in ["inside handler", "after await"] {
        let r = records
            .wait_for(msg, |r| r["message"] == msg && request_id(r) == Some(&id))
            .await;
        assert!(!is_transaction(&r));
        assert_eq!(r["trace_id"], "0af7651916cd43dd8448eb211c80319c");
    }

    let resp = get(base, "/log", None).await;
    let generated = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    let _ = resp.bytes().await;
    records
        .wait_for("handler log with a generated id", |r| {
            r["message"] == "inside handler" && request_id(r) == Some(&generated)
        })
        .await;
}

/// A panicking handler answers 500 (the service keeps running) and is recorded at
/// error level with the panic message and a backtrace. For adapters that turn panics
/// into responses (axum).
pub async fn panic_becomes_500(base: &str, records: &Records) {
    let id = new_id("panic");
    let resp = get(base, "/panic", Some(&id)).await;
    assert_eq!(resp.status().as_u16(), 500);
    assert_eq!(resp.headers()["x-request-id"], id.as_str());
    let _ = resp.bytes().await;
    let r = records.transaction(&id).await;
    assert_eq!(r["level"], "ERROR");
    assert_eq!(r["message"], "Handler panicked: GET /panic - 500");
    assert_eq!(r["exception"]["type"], "panic");
    let msg = r["exception"]["message"].as_str().unwrap_or_default();
    assert!(msg.starts_with("boom from handler"), "{msg}");
    assert!(
        r["exception"]["stacktrace"]
            .as_str()
            .is_some_and(|s| !s.is_empty()),
        "{r}"
    );
    // Still serving.
    let resp = get(base, "/ok", None).await;
    assert_eq!(resp.status().as_u16(), 200);
}

/// `statuses = [404]` on `/endpoint/missing`: its 404 is recorded (with the endpoint's
/// tag) while a 404 from another route is not; and its list replaces the default set,
/// so its 401 is not recorded while another route's 401 is.
pub async fn endpoint_statuses(base: &str, records: &Records) {
    let (tracked, other_404, endpoint_401, other_401) = (
        new_id("ep-404"),
        new_id("other-404"),
        new_id("ep-401"),
        new_id("other-401"),
    );
    for (path, id, status) in [
        ("/endpoint/missing", &tracked, 404),
        ("/status/404", &other_404, 404),
        ("/endpoint/missing?status=401", &endpoint_401, 401),
        ("/status/401", &other_401, 401),
    ] {
        let resp = get(base, path, Some(id)).await;
        assert_eq!(resp.status().as_u16(), status, "{path}");
        let _ = resp.bytes().await;
    }
    let r = records.transaction(&tracked).await;
    assert_eq!(r["level"], "WARNING");
    assert_eq!(r["message"], "Client error: GET /endpoint/missing - 404");
    assert_eq!(tx(&r)["response"]["status_code"], 404);
    assert_eq!(r["tags"], serde_json::json!(["lookup"]), "{r}");
    let r = records.transaction(&other_401).await;
    assert!(
        r.get("tags").is_none(),
        "other routes get no endpoint tags: {r}"
    );
    assert_not_recorded(base, records, &[&other_404, &endpoint_401]).await;
}

/// `tags` on `/endpoint/tagged` land on that route's transaction record only.
pub async fn endpoint_tags(base: &str, records: &Records) {
    let tagged = new_id("ep-tagged");
    let plain = new_id("plain-500");
    let resp = get(base, "/endpoint/tagged?status=500", Some(&tagged)).await;
    assert_eq!(resp.status().as_u16(), 500);
    let _ = resp.bytes().await;
    let resp = get(base, "/status/500", Some(&plain)).await;
    let _ = resp.bytes().await;
    let r = records.transaction(&tagged).await;
    assert_eq!(r["level"], "ERROR");
    assert_eq!(
        r["tags"],
        serde_json::json!(["checkout", "critical"]),
        "{r}"
    );
    let r = records.transaction(&plain).await;
    assert!(r.get("tags").is_none(), "{r}");
    // A tagged request that is not recorded stays unrecorded: tags change no decision.
    let quiet = new_id("ep-tagged-200");
    let resp = get(base, "/endpoint/tagged", Some(&quiet)).await;
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.bytes().await;
    assert_not_recorded(base, records, &[&quiet]).await;
}

/// With request bodies off globally, `capture_request_body = true` on `/endpoint/body`
/// records that route's request body (read by an extractor before the handler ran;
/// secrets masked) and `capture_response_body = true` its 2xx response body, while
/// `/echo` with the same request keeps neither request body nor 2xx body.
pub async fn endpoint_request_body(base: &str, records: &Records) {
    let body = r#"{"order":"ORD-7","password":"hunter2-endpoint","items":[1,2,3]}"#;
    let with = new_id("ep-body");
    let resp = http_client()
        .post(format!("{base}/endpoint/body?status=201"))
        .header("x-request-id", &with)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("request succeeds");
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(resp.text().await.expect("body"), body);
    let r = records.transaction(&with).await;
    assert_eq!(r["message"], "Request: POST /endpoint/body - 201");
    let req_body = &tx(&r)["request"]["body"];
    assert_eq!(req_body["content"]["order"], "ORD-7", "{r}");
    assert_eq!(req_body["content"]["password"], "[FILTERED]");
    assert_eq!(req_body["size_bytes"], body.len());
    assert_eq!(req_body["truncated"], false);
    let resp_body = &tx(&r)["response"]["body"];
    assert_eq!(resp_body["content"]["order"], "ORD-7", "2xx body kept: {r}");

    // Same request to a route without the attribute: recorded for its 400, but the
    // request body is not kept (global capture is off).
    let without = new_id("echo-body");
    let resp = post_echo(base, 400, &without, "application/json", body.into()).await;
    assert_eq!(resp.text().await.expect("body"), body);
    let r = records.transaction(&without).await;
    assert!(tx(&r)["request"].get("body").is_none(), "{r}");
    assert!(
        tx(&r)["response"]["body"].is_object(),
        "error bodies still kept: {r}"
    );
    assert!(!records.raw_text().await.contains("hunter2-endpoint"));
}

/// `slow_threshold_ms = 50` on `/endpoint/slow`: a 150 ms request there is recorded
/// as slow (with that threshold) while the same delay on `/slow` (threshold 500 ms) is
/// not.
pub async fn endpoint_slow_threshold(base: &str, records: &Records) {
    let ms = ENDPOINT_SLOW_THRESHOLD_MS + 100;
    let slow = new_id("ep-slow");
    let other = new_id("other-slow");
    let resp = get(base, &format!("/endpoint/slow?ms={ms}"), Some(&slow)).await;
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.bytes().await;
    let resp = get(base, &format!("/slow?ms={ms}"), Some(&other)).await;
    let _ = resp.bytes().await;
    let r = records.transaction(&slow).await;
    assert_eq!(r["level"], "WARNING");
    let msg = r["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("Slow request: GET /endpoint/slow - 200 ("),
        "{msg}"
    );
    assert_eq!(
        r["context"]["slow_request_threshold_ms"],
        ENDPOINT_SLOW_THRESHOLD_MS
    );
    let d = tx(&r)["duration_ms"].as_f64().unwrap_or_default();
    assert!(d >= ms as f64, "duration {d} ms < {ms} ms");
    assert_not_recorded(base, records, &[&other]).await;
}
