//! The Loggier actix-web middleware against a real server on 127.0.0.1:0 and a real
//! HTTP client: what reaches the client, and the records the pipeline writes.

mod support;

use std::time::Duration;

use loggier_actix::{CaptureSettings, ResponseBodyCapture};
use loggier_core::http::FILTERED;
use loggier_core::{BodyContent, Level};
use support::{DEADLINE, Harness, record_json};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn settings(
    f: impl FnOnce(loggier_actix::CaptureSettingsBuilder) -> loggier_actix::CaptureSettingsBuilder,
) -> CaptureSettings {
    f(CaptureSettings::builder())
        .build()
        .expect("valid settings")
}

fn echoed_id(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("x-request-id")
        .expect("x-request-id echoed")
        .to_str()
        .expect("ascii")
        .to_string()
}

#[actix_web::test]
async fn tracked_statuses_are_recorded_untracked_are_not() {
    let h = Harness::start(settings(|b| b)).await;

    for (code, id) in [(200, "s-200"), (404, "s-404")] {
        let resp = h
            .http
            .get(h.url(&format!("/status/{code}")))
            .header("x-request-id", id)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), code);
        assert_eq!(echoed_id(&resp), id);
        let _ = resp.bytes().await;
        h.assert_not_recorded(id).await;
    }

    for (code, level, message) in [
        (401, Level::Warning, "Client error: GET /status/401 - 401"),
        (503, Level::Error, "Server error: GET /status/503 - 503"),
    ] {
        let id = format!("s-{code}");
        let resp = h
            .http
            .get(h.url(&format!("/status/{code}")))
            .header("x-request-id", &id)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status().as_u16(), code);
        assert_eq!(resp.text().await.expect("body"), format!("status {code}"));
        let r = h.http_record(&id).await;
        assert_eq!(r.level, level);
        assert_eq!(r.message, message);
        let tx = r.http.as_ref().expect("transaction");
        assert_eq!(tx.request.method, "GET");
        assert_eq!(tx.request.path, format!("/status/{code}"));
        assert_eq!(tx.request.route.as_deref(), Some("/status/{code}"));
        assert_eq!(tx.request.client_ip.as_deref(), Some("127.0.0.1"));
        let resp = tx.response.as_ref().expect("response");
        assert_eq!(resp.status_code, code);
        // Error responses' bodies are captured by default.
        let body = resp.body.as_ref().expect("error body captured");
        assert_eq!(body.content, BodyContent::Text(format!("status {code}")));
        assert_eq!(resp.headers["x-request-id"], id.as_str());
        assert!(tx.duration_ms > 0.0);
    }
    h.stop().await;
}

#[actix_web::test]
async fn slow_requests_are_recorded_fast_ones_are_not() {
    let h = Harness::start(settings(|b| {
        b.slow_request_threshold(Duration::from_millis(250))
    }))
    .await;

    let resp = h
        .http
        .get(h.url("/slow/0"))
        .header("x-request-id", "fast")
        .send()
        .await
        .expect("fast");
    assert_eq!(resp.text().await.expect("body"), "done");
    h.assert_not_recorded("fast").await;

    let resp = h
        .http
        .get(h.url("/slow/400"))
        .header("x-request-id", "slow")
        .send()
        .await
        .expect("slow");
    assert_eq!(resp.status(), 200);
    let _ = resp.bytes().await;
    let r = h.http_record("slow").await;
    assert_eq!(r.level, Level::Warning);
    assert!(
        r.message.starts_with("Slow request: GET /slow/400 - 200 ("),
        "{}",
        r.message
    );
    assert_eq!(r.context["slow_request_threshold_ms"], 250);
    assert!(r.http.as_ref().expect("tx").duration_ms >= 400.0);
    h.stop().await;
}

#[actix_web::test]
async fn excluded_paths_get_no_record_and_no_request_id() {
    let h = Harness::start(settings(|b| {
        b.log_all_requests(true)
            .exclude_paths(["/health", "/static/*"])
    }))
    .await;

    for (path, id) in [("/health", "ex-health"), ("/static/app.js", "ex-static")] {
        let resp = h
            .http
            .get(h.url(path))
            .header("x-request-id", id)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        assert!(resp.headers().get("x-request-id").is_none(), "{path}");
        let _ = resp.bytes().await;
        h.assert_not_recorded(id).await;
    }

    // Access-log mode records everything else, at info level.
    let resp = h
        .http
        .get(h.url("/ok"))
        .header("x-request-id", "in")
        .send()
        .await
        .expect("ok");
    let _ = resp.bytes().await;
    let r = h.http_record("in").await;
    assert_eq!(r.level, Level::Info);
    assert_eq!(r.message, "Request: GET /ok - 200");
    h.stop().await;
}

#[actix_web::test]
async fn request_bodies_are_copied_up_to_the_limit() {
    let h = Harness::start(settings(|b| {
        b.log_all_requests(true)
            .capture_request_body(true)
            .max_body_size(64)
    }))
    .await;

    let small = "a".repeat(40);
    let resp = h
        .http
        .post(h.url("/echo"))
        .header("x-request-id", "small")
        .header("content-type", "text/plain")
        .body(small.clone())
        .send()
        .await
        .expect("small");
    let echoed: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(echoed["received_bytes"], 40);
    let r = h.http_record("small").await;
    let body = r
        .http
        .as_ref()
        .expect("tx")
        .request
        .body
        .clone()
        .expect("body");
    assert!(!body.truncated);
    assert_eq!(body.size_bytes, 40);
    assert_eq!(body.content, BodyContent::Text(small));

    let big: String = (0..1000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let resp = h
        .http
        .post(h.url("/echo"))
        .header("x-request-id", "big")
        .header("content-type", "text/plain")
        .body(big.clone())
        .send()
        .await
        .expect("big");
    let echoed: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(
        echoed["received_bytes"], 1000,
        "the handler got the whole body"
    );
    let r = h.http_record("big").await;
    let body = r
        .http
        .as_ref()
        .expect("tx")
        .request
        .body
        .clone()
        .expect("body");
    assert!(body.truncated);
    assert_eq!(body.size_bytes, 1000);
    assert_eq!(body.content, BodyContent::Text(big[..64].to_string()));
    h.stop().await;
}

#[actix_web::test]
async fn chunked_request_bodies_are_copied_as_they_stream() {
    let h = Harness::start(settings(|b| {
        b.log_all_requests(true)
            .capture_request_body(true)
            .max_body_size(64)
    }))
    .await;

    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from_static(b"{\"items\":[")),
        Ok(bytes::Bytes::from_static(b"1,2,3],")),
        Ok(bytes::Bytes::from_static(
            b"\"password\":\"chunked-secret\"}",
        )),
    ];
    let total: usize = 10 + 7 + 28;
    let resp = h
        .http
        .post(h.url("/echo"))
        .header("x-request-id", "chunked")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("chunked");
    let echoed: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(echoed["received_bytes"], total);
    let r = h.http_record("chunked").await;
    let req = &r.http.as_ref().expect("tx").request;
    assert_eq!(req.headers["transfer-encoding"], "chunked");
    let body = req.body.clone().expect("body");
    assert!(!body.truncated);
    assert_eq!(body.size_bytes, total as u64);
    assert_eq!(
        body.content,
        BodyContent::Json(serde_json::json!({"items": [1, 2, 3], "password": FILTERED}))
    );
    assert!(!record_json(&r).contains("chunked-secret"));
    h.stop().await;
}

#[actix_web::test]
async fn streaming_responses_flow_chunk_by_chunk_and_are_counted() {
    let h = Harness::start(settings(|b| {
        b.log_all_requests(true)
            .capture_response_body(ResponseBodyCapture::All)
            .max_body_size(16)
    }))
    .await;

    let mut resp = h
        .http
        .get(h.url("/stream"))
        .header("x-request-id", "stream")
        .send()
        .await
        .expect("stream");
    assert_eq!(echoed_id(&resp), "stream");
    // The handler cannot produce its second chunk before the gate opens: the first
    // one must already be here.
    let first = tokio::time::timeout(DEADLINE, resp.chunk())
        .await
        .expect("first chunk in time")
        .expect("read")
        .expect("a chunk");
    assert_eq!(&first[..], b"first chunk\n");
    h.gate.0.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = tokio::time::timeout(DEADLINE, resp.chunk())
        .await
        .expect("chunk in time")
        .expect("read")
    {
        rest.extend_from_slice(&c);
    }
    assert_eq!(rest, b"second chunk\nlast chunk\n");

    let r = h.http_record("stream").await;
    let response = r
        .http
        .as_ref()
        .expect("tx")
        .response
        .clone()
        .expect("response");
    let body = response.body.expect("body captured");
    assert_eq!(body.size_bytes, 12 + 13 + 11);
    assert!(body.truncated);
    assert_eq!(body.content, BodyContent::Text("first chunk\nseco".into()));
    assert!(r.context.get("response_aborted").is_none());
    h.stop().await;
}

#[actix_web::test]
async fn client_disconnect_mid_response_still_emits_a_record() {
    let h = Harness::start(settings(|b| b.log_all_requests(true))).await;

    let mut resp = h
        .http
        .get(h.url("/endless"))
        .header("x-request-id", "gone")
        .send()
        .await
        .expect("endless");
    let first = tokio::time::timeout(DEADLINE, resp.chunk())
        .await
        .expect("first chunk in time")
        .expect("read")
        .expect("a chunk");
    assert_eq!(&first[..], b"tick 0\n");
    drop(resp);

    let r = h.http_record("gone").await;
    assert_eq!(r.context["response_aborted"], true);
    assert_eq!(
        r.http
            .as_ref()
            .expect("tx")
            .response
            .as_ref()
            .expect("resp")
            .status_code,
        200
    );
    // The stream would run for 10 s; the record came from the disconnect.
    assert!(r.http.as_ref().expect("tx").duration_ms < 9_000.0);
    h.stop().await;
}

#[actix_web::test]
async fn secrets_in_headers_query_and_json_bodies_are_masked() {
    let h = Harness::start(settings(|b| b.capture_request_body(true))).await;

    let resp = h
        .http
        .post(h.url("/login?token=query-secret&page=2"))
        .header("x-request-id", "login")
        .header("authorization", "Bearer bearer-secret")
        .header("cookie", "session=cookie-secret")
        .header("x-api-key", "key-secret")
        .json(&serde_json::json!({"user": "bob", "password": "hunter2-secret"}))
        .send()
        .await
        .expect("login");
    assert_eq!(resp.status(), 401);
    let _ = resp.bytes().await;

    let r = h.http_record("login").await;
    let json = record_json(&r);
    for secret in [
        "query-secret",
        "bearer-secret",
        "cookie-secret",
        "key-secret",
        "hunter2-secret",
        "resp-reset-secret",
    ] {
        assert!(!json.contains(secret), "{secret} leaked: {json}");
    }
    let tx = r.http.as_ref().expect("tx");
    assert_eq!(tx.request.headers["authorization"], FILTERED);
    assert_eq!(tx.request.headers["cookie"], FILTERED);
    assert_eq!(tx.request.headers["x-api-key"], FILTERED);
    assert_eq!(tx.request.query["token"], FILTERED);
    assert_eq!(tx.request.query["page"], "2");
    assert_eq!(
        tx.request.body.as_ref().expect("request body").content,
        BodyContent::Json(serde_json::json!({"user": "bob", "password": FILTERED}))
    );
    let resp_body = tx
        .response
        .as_ref()
        .expect("resp")
        .body
        .as_ref()
        .expect("error body");
    assert_eq!(
        resp_body.content,
        BodyContent::Json(serde_json::json!({
            "error": "bad credentials", "user": "bob", "reset_token": FILTERED
        }))
    );
    h.stop().await;
}

#[actix_web::test]
async fn request_ids_are_generated_accepted_and_echoed() {
    let h = Harness::start(settings(|b| b.statuses_to_track(["2xx"]))).await;

    let resp = h.http.get(h.url("/ok")).send().await.expect("no id");
    let generated = echoed_id(&resp);
    let uuid = uuid::Uuid::parse_str(&generated).expect("a uuid");
    assert_eq!(uuid.get_version_num(), 7);
    let _ = resp.bytes().await;
    assert_eq!(
        h.http_record(&generated).await.request_id.as_deref(),
        Some(generated.as_str())
    );

    let resp = h
        .http
        .get(h.url("/ok"))
        .header("x-request-id", "checkout-42")
        .send()
        .await
        .expect("with id");
    assert_eq!(echoed_id(&resp), "checkout-42");
    let _ = resp.bytes().await;
    h.http_record("checkout-42").await;

    let resp = h
        .http
        .get(h.url("/ok"))
        .header("x-request-id", "not a valid id")
        .send()
        .await
        .expect("bad id");
    let replaced = echoed_id(&resp);
    assert_ne!(replaced, "not a valid id");
    uuid::Uuid::parse_str(&replaced).expect("replaced by a uuid");
    let _ = resp.bytes().await;
    h.http_record(&replaced).await;
    h.stop().await;
}

#[actix_web::test]
async fn traceparent_is_parsed_and_invalid_ones_ignored() {
    let h = Harness::start(settings(|b| b)).await;

    let resp = h
        .http
        .get(h.url("/status/500"))
        .header("x-request-id", "traced")
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .expect("traced");
    let _ = resp.bytes().await;
    let r = h.http_record("traced").await;
    assert_eq!(
        r.trace_id.as_deref(),
        Some("4bf92f3577b34da6a3ce929d0e0e4736")
    );
    assert_eq!(r.span_id.as_deref(), Some("00f067aa0ba902b7"));

    let resp = h
        .http
        .get(h.url("/status/500"))
        .header("x-request-id", "badtrace")
        .header("traceparent", "00-XYZ-00f067aa0ba902b7-01")
        .send()
        .await
        .expect("bad trace");
    let _ = resp.bytes().await;
    let r = h.http_record("badtrace").await;
    assert!(r.trace_id.is_none());
    assert!(r.span_id.is_none());
    h.stop().await;
}

#[actix_web::test]
async fn handler_logs_carry_the_request_id_and_trace() {
    let h = Harness::start(settings(|b| b)).await;

    let resp = h
        .http
        .get(h.url("/logs/7"))
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .expect("logs");
    let id = echoed_id(&resp);
    assert_eq!(
        resp.text().await.expect("body"),
        id,
        "extractor saw the same id"
    );

    for message in [
        "plain client log 7",
        "extractor log 7",
        "spawned task log 7",
    ] {
        let (r, _) = h.wait_for(message, |r| r.message == message).await;
        assert_eq!(r.request_id.as_deref(), Some(id.as_str()), "{message}");
        assert_eq!(
            r.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736"),
            "{message}"
        );
    }
    h.stop().await;
}

#[actix_web::test]
async fn actix_error_responses_are_recorded_with_the_error() {
    let h = Harness::start(settings(|b| b.statuses_to_track(["401", "404", "5xx"]))).await;

    // A handler returning a custom `ResponseError` (502).
    let resp = h
        .http
        .get(h.url("/fail"))
        .header("x-request-id", "fail")
        .send()
        .await
        .expect("fail");
    assert_eq!(resp.status(), 502);
    assert_eq!(echoed_id(&resp), "fail");
    let _ = resp.bytes().await;
    let r = h.http_record("fail").await;
    assert_eq!(r.level, Level::Error);
    assert_eq!(r.message, "Server error: GET /fail - 502");
    let exc = r.exception.as_ref().expect("exception");
    assert_eq!(exc.type_name, "GatewayTimeout");
    assert_eq!(exc.message, "payment gateway acme timed out");
    let body = r
        .http
        .as_ref()
        .expect("tx")
        .response
        .as_ref()
        .expect("resp")
        .body
        .clone();
    assert_eq!(
        body.expect("error body").content,
        BodyContent::Json(serde_json::json!({"error": "payment gateway acme timed out"}))
    );

    // A 404 built from an actix error: a client error, with the error attached.
    let resp = h
        .http
        .get(h.url("/orders/42"))
        .header("x-request-id", "nf")
        .send()
        .await
        .expect("404");
    assert_eq!(resp.status(), 404);
    let _ = resp.bytes().await;
    let r = h.http_record("nf").await;
    assert_eq!(r.level, Level::Warning);
    assert_eq!(r.message, "Client error: GET /orders/42 - 404");
    assert_eq!(
        r.http.as_ref().expect("tx").request.route.as_deref(),
        Some("/orders/{id}")
    );
    assert_eq!(
        r.exception.as_ref().expect("exception").message,
        "no order 42"
    );

    // An inner middleware returning `Err`: actix answers from the error after the
    // middleware; the record is there with the status that answer has.
    let resp = h
        .http
        .get(h.url("/guarded/thing"))
        .header("x-request-id", "guard")
        .send()
        .await
        .expect("guarded");
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.text().await.expect("body"), "missing api key");
    let r = h.http_record("guard").await;
    assert_eq!(r.level, Level::Warning);
    assert_eq!(r.message, "Client error: GET /guarded/thing - 401");
    assert_eq!(
        r.exception.as_ref().expect("exception").message,
        "missing api key"
    );
    assert_eq!(
        r.http
            .as_ref()
            .expect("tx")
            .response
            .as_ref()
            .expect("resp")
            .status_code,
        401
    );

    let resp = h
        .http
        .get(h.url("/guarded/thing"))
        .header("x-request-id", "guard-ok")
        .header("x-api-key", "k")
        .send()
        .await
        .expect("guarded ok");
    assert_eq!(resp.text().await.expect("body"), "thing");
    h.assert_not_recorded("guard-ok").await;
    h.stop().await;
}
