//! actix-specific behaviour of the Loggier middleware (the scenarios shared with the
//! other adapters are in `actix_scenarios.rs`), against a real server on 127.0.0.1:0
//! and a real HTTP client.

mod support;

use std::time::Duration;

use loggier_actix::CaptureSettings;
use support::Harness;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn echoed_id(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[actix_web::test]
async fn record_has_route_template_peer_and_response_headers() {
    let h = Harness::start(
        CaptureSettings::builder()
            .exclude_paths(["/static/*"])
            .build()
            .expect("valid"),
    )
    .await;

    let resp = h
        .http
        .get(h.url("/status/503?verbose=1"))
        .header("x-request-id", "s-503")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 503);
    assert_eq!(echoed_id(&resp).as_deref(), Some("s-503"));
    let _ = resp.bytes().await;
    let r = h.http_record("s-503").await;
    let tx = &r["context"]["transaction"];
    assert_eq!(r["level"], "ERROR");
    assert_eq!(tx["request"]["route"], "/status/{code}");
    assert_eq!(tx["request"]["path"], "/status/503");
    assert_eq!(tx["request"]["query_params"]["verbose"], "1");
    assert_eq!(tx["request"]["client_ip"], "127.0.0.1");
    assert_eq!(tx["request"]["headers"]["x-request-id"], "s-503");
    assert_eq!(tx["response"]["headers"]["x-request-id"], "s-503");
    assert_eq!(tx["response"]["content_type"], "text/plain; charset=utf-8");

    // A prefix exclusion: no id, no record.
    let resp = h
        .http
        .get(h.url("/static/app.js"))
        .header("x-request-id", "static")
        .send()
        .await
        .expect("static");
    assert_eq!(resp.status(), 200);
    assert!(echoed_id(&resp).is_none());
    let _ = resp.bytes().await;
    h.assert_not_recorded(&["static"]).await;
    h.stop().await;
}

#[actix_web::test]
async fn duration_covers_the_whole_streamed_body() {
    // The handler answers at once; its body takes 300 ms more. Only a measurement to
    // the end of the body makes this request slow.
    let h = Harness::start(
        CaptureSettings::builder()
            .slow_request_threshold(Duration::from_millis(200))
            .build()
            .expect("valid"),
    )
    .await;
    let resp = h
        .http
        .get(h.url("/slow-stream"))
        .header("x-request-id", "slow-body")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.text().await.expect("body"), "header\nfooter\n");
    let r = h.http_record("slow-body").await;
    assert_eq!(r["level"], "WARNING");
    let msg = r["message"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("Slow request: GET /slow-stream - 200 ("),
        "{msg}"
    );
    let d = r["context"]["transaction"]["duration_ms"]
        .as_f64()
        .unwrap_or_default();
    assert!(d >= 300.0, "duration {d} ms");
    h.stop().await;
}

#[actix_web::test]
async fn actix_error_responses_are_recorded_with_the_error() {
    let h = Harness::start(
        CaptureSettings::builder()
            .statuses_to_track(["401", "404", "5xx"])
            .build()
            .expect("valid"),
    )
    .await;

    // A handler returning its own `ResponseError` (502, JSON body).
    let resp = h
        .http
        .get(h.url("/fail"))
        .header("x-request-id", "fail")
        .send()
        .await
        .expect("fail");
    assert_eq!(resp.status(), 502);
    assert_eq!(echoed_id(&resp).as_deref(), Some("fail"));
    let _ = resp.bytes().await;
    let r = h.http_record("fail").await;
    assert_eq!(r["level"], "ERROR");
    assert_eq!(r["message"], "Server error: GET /fail - 502");
    assert_eq!(r["exception"]["type"], "GatewayTimeout");
    assert_eq!(r["exception"]["message"], "payment gateway acme timed out");
    assert_eq!(
        r["context"]["transaction"]["response"]["body"]["content"],
        serde_json::json!({"error": "payment gateway acme timed out"})
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
    assert_eq!(r["level"], "WARNING");
    assert_eq!(r["message"], "Client error: GET /orders/42 - 404");
    assert_eq!(
        r["context"]["transaction"]["request"]["route"],
        "/orders/{id}"
    );
    assert_eq!(r["exception"]["message"], "no order 42");

    // An inner middleware returning `Err`: actix answers from the error after this
    // middleware; the answer still carries the request id and the record is there.
    let resp = h
        .http
        .get(h.url("/guarded/thing"))
        .header("x-request-id", "guard")
        .send()
        .await
        .expect("guarded");
    assert_eq!(resp.status(), 401);
    assert_eq!(echoed_id(&resp).as_deref(), Some("guard"));
    assert_eq!(resp.text().await.expect("body"), "missing api key");
    let r = h.http_record("guard").await;
    assert_eq!(r["level"], "WARNING");
    assert_eq!(r["message"], "Client error: GET /guarded/thing - 401");
    assert_eq!(r["exception"]["message"], "missing api key");
    assert_eq!(r["context"]["transaction"]["response"]["status_code"], 401);
    assert_eq!(
        r["context"]["transaction"]["request"]["route"], "/guarded/thing",
        "refused before the router matched it: still the route"
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
    h.assert_not_recorded(&["guard-ok"]).await;
    h.stop().await;
}

#[actix_web::test]
async fn an_incoming_request_id_is_echoed_only_when_it_is_taken() {
    let h = Harness::start(CaptureSettings::default()).await;
    let resp = h
        .http
        .get(h.url("/ok"))
        .header("x-request-id", "lb-7f3a")
        .send()
        .await
        .expect("ok");
    assert_eq!(echoed_id(&resp).as_deref(), Some("lb-7f3a"));
    let too_long = "a".repeat(loggier_core::http::MAX_REQUEST_ID_LEN + 1);
    for bad in ["has space", too_long.as_str()] {
        let resp = h
            .http
            .get(h.url("/ok"))
            .header("x-request-id", bad)
            .send()
            .await
            .expect("ok");
        let echoed = echoed_id(&resp).expect("a generated id is echoed");
        assert_ne!(echoed, bad);
        assert_eq!(echoed.len(), 36, "{echoed}");
    }
}

#[actix_web::test]
async fn extractor_and_spawned_tasks_carry_the_request_context() {
    let h = Harness::start(CaptureSettings::default()).await;

    let resp = h
        .http
        .get(h.url("/logs/7"))
        .header("traceparent", TRACEPARENT)
        .send()
        .await
        .expect("logs");
    let id = echoed_id(&resp).expect("generated id echoed");
    assert_eq!(
        resp.text().await.expect("body"),
        id,
        "the extractor saw the same id"
    );

    for (message, level) in [
        ("plain client log 7", "INFO"),
        ("extractor log 7", "WARNING"),
        ("spawned task log 7", "INFO"),
    ] {
        let r = h
            .records
            .wait_for(message, |r| r["message"] == message)
            .await;
        assert_eq!(r["level"], level, "{message}");
        assert_eq!(r["context"]["request_id"], id.as_str(), "{message}");
        assert_eq!(
            r["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736",
            "{message}"
        );
        assert_eq!(r["context"]["route"], "/logs/{id}", "{message}");
    }
    h.stop().await;
}

#[actix_web::test]
async fn a_request_cut_off_by_server_shutdown_is_still_recorded() {
    let h = Harness::start(
        CaptureSettings::builder()
            .log_all_requests(true)
            .build()
            .expect("valid"),
    )
    .await;
    let url = h.url("/hang");
    let http = h.http.clone();
    let request =
        actix_web::rt::spawn(
            async move { http.get(url).header("x-request-id", "cut").send().await },
        );
    // The handler is running once its own log line arrives; logged through the
    // plain client alone (no extractor), it still carries the route.
    let started = h
        .records
        .wait_for("handler started", |r| r["message"] == "hang started")
        .await;
    assert_eq!(started["context"]["route"], "/hang", "{started}");
    h.stop_now().await;
    let r = h.records.transaction("cut").await;
    assert_eq!(r["context"]["response_aborted"], true, "{r}");
    assert_eq!(r["message"], "Request: GET /hang");
    assert_eq!(
        r["context"]["transaction"]["request"]["route"], "/hang",
        "{r}"
    );
    assert!(r["context"]["transaction"].get("response").is_none(), "{r}");
    let answer = request.await.expect("client task");
    assert!(answer.is_err(), "the client got no answer");
}

/// The route template is remembered per path (actix matches it with a regex per
/// resource before routing): a repeated path, a second path of the same route, a
/// path of another route and a path no route matches each get their own answer.
#[actix_web::test]
async fn route_templates_stay_right_for_repeated_and_new_paths() {
    let h = Harness::start(
        CaptureSettings::builder()
            .log_all_requests(true)
            .build()
            .expect("valid"),
    )
    .await;
    let cases = [
        ("/status/500", "memo-a", Some("/status/{code}")),
        ("/status/500", "memo-b", Some("/status/{code}")),
        ("/status/502", "memo-c", Some("/status/{code}")),
        ("/orders/7", "memo-d", Some("/orders/{id}")),
        ("/nowhere/401", "memo-none", None),
        ("/status/500", "memo-e", Some("/status/{code}")),
        ("/nowhere/401", "memo-none-again", None),
    ];
    for (path, id, _) in cases {
        let resp = h
            .http
            .get(h.url(path))
            .header("x-request-id", id)
            .send()
            .await
            .expect("request");
        let _ = resp.bytes().await;
    }
    for (path, id, route) in cases {
        let r = h.http_record(id).await;
        let req = &r["context"]["transaction"]["request"];
        assert_eq!(req["path"], path, "{r}");
        match route {
            Some(route) => assert_eq!(req["route"], route, "{r}"),
            None => assert!(req.get("route").is_none(), "{r}"),
        }
    }
    h.stop().await;
}

/// A sized body complete in memory is decided on when the response is produced (not
/// wrapped) and a streamed one when its last chunk went out: both reach the client
/// unchanged, with the request id, and both records carry the body and headers.
#[actix_web::test]
async fn complete_and_streamed_bodies_are_both_captured() {
    let h = Harness::start(
        CaptureSettings::builder()
            .log_all_requests(true)
            .capture_response_body(loggier_actix::ResponseBodyCapture::All)
            .build()
            .expect("valid"),
    )
    .await;

    let resp = h
        .http
        .get(h.url("/status/201"))
        .header("x-request-id", "sized-body")
        .send()
        .await
        .expect("sized");
    assert_eq!(resp.status(), 201);
    assert_eq!(echoed_id(&resp).as_deref(), Some("sized-body"));
    assert_eq!(resp.bytes().await.expect("body").as_ref(), b"status 201");
    let r = h.http_record("sized-body").await;
    let tx = &r["context"]["transaction"];
    assert_eq!(tx["response"]["status_code"], 201, "{r}");
    assert_eq!(tx["response"]["body"]["content"], "status 201", "{r}");
    assert_eq!(
        tx["response"]["headers"]["x-request-id"], "sized-body",
        "{r}"
    );
    assert_eq!(tx["request"]["route"], "/status/{code}", "{r}");
    assert!(r["context"].get("response_aborted").is_none(), "{r}");

    let resp = h
        .http
        .get(h.url("/slow-stream"))
        .header("x-request-id", "streamed-body")
        .send()
        .await
        .expect("streamed");
    assert_eq!(echoed_id(&resp).as_deref(), Some("streamed-body"));
    assert_eq!(
        resp.bytes().await.expect("body").as_ref(),
        b"header\nfooter\n"
    );
    let r = h.http_record("streamed-body").await;
    let tx = &r["context"]["transaction"];
    assert_eq!(tx["response"]["body"]["content"], "header\nfooter\n", "{r}");
    assert_eq!(
        tx["response"]["headers"]["x-request-id"], "streamed-body",
        "{r}"
    );
    h.stop().await;
}

/// Logs through the plain client and through the extractor; answers the request id
/// the extractor sees.
async fn log_twice(
    client: actix_web::web::Data<loggier_core::Loggier>,
    log: loggier_actix::RequestLogger,
    path: actix_web::web::Path<(String, String)>,
) -> actix_web::HttpResponse {
    let (kind, id) = path.into_inner();
    client.info(format!("client log {kind} {id}"));
    log.warning(format!("extractor log {kind} {id}"));
    actix_web::HttpResponse::Ok().body(log.request_id().unwrap_or_default().to_string())
}

/// Without a `traceparent` the request's scope frame is only built when the handler
/// asks for it: records logged there still carry the request id and route — also
/// when an outer middleware polls the request inside a task scope of its own, which
/// the request's frame must outrank.
#[actix_web::test]
async fn handler_records_carry_the_request_context_built_on_first_use() {
    use actix_web::dev::Service as _;
    use actix_web::{App, HttpServer, web};

    let (client, records) = loggier_test_support::test_client("actix-first-use");
    let app_client = client.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(app_client.clone()))
            .wrap(loggier_actix::Loggier::new(app_client.clone()))
            // Wraps the Loggier middleware: `/scoped/...` requests are polled inside
            // an outer task scope with a request id of its own.
            .wrap_fn(|req, srv| {
                let scoped = req.path().starts_with("/scoped/");
                let fut = srv.call(req);
                async move {
                    if scoped {
                        loggier_core::context::Scope::new()
                            .request_id("outer-id")
                            .field("outer", true)
                            .instrument(fut)
                            .await
                    } else {
                        fut.await
                    }
                }
            })
            .route("/{kind}/{id}", web::get().to(log_twice))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(("127.0.0.1", 0))
    .expect("bind 127.0.0.1:0");
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    let http = loggier_test_support::http_client();

    for kind in ["plain", "scoped"] {
        let resp = http
            .get(format!("{base}/{kind}/9"))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        let id = echoed_id(&resp).expect("generated id echoed");
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(resp.text().await.expect("body"), id, "the extractor's id");
        for message in [
            format!("client log {kind} 9"),
            format!("extractor log {kind} 9"),
        ] {
            let r = records
                .wait_for(&message, |r| r["message"] == message.as_str())
                .await;
            assert_eq!(r["context"]["request_id"], id.as_str(), "{message}: {r}");
            assert_eq!(r["context"]["route"], "/{kind}/{id}", "{message}: {r}");
        }
    }
    handle.stop(true).await;
    client.shutdown(Duration::from_secs(2));
}
