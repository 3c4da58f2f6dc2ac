//! The shared adapter scenarios (`loggier-test-support`) against an actix-web server
//! wrapped with `loggier_actix::Loggier`, on 127.0.0.1:0, driven by reqwest.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, get, post, web};
use bytes::Bytes;
use loggier_actix::{CaptureSettings, Loggier, RequestLogger, track_endpoint};
use loggier_test_support::app::{ms_param, status_param};
use loggier_test_support::scenarios::new_id;
use loggier_test_support::{
    Records, StreamGate, endless_chunks, endpoint_settings, scenario_settings, scenarios,
    stream_chunks, test_client,
};

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

fn query(req: &HttpRequest) -> Option<&str> {
    Some(req.query_string())
}

// The endpoint routes of the contract: actix's route macro first, `#[track_endpoint]`
// below it, so it applies to the handler fn inside the service struct `#[get]` makes.

#[get("/endpoint/missing")]
#[track_endpoint(tags = ["lookup"], statuses = [404])]
async fn endpoint_missing(req: HttpRequest) -> HttpResponse {
    HttpResponse::build(status(status_param(query(&req), 404)))
        .content_type("text/plain")
        .body("missing")
}

#[get("/endpoint/tagged")]
#[track_endpoint(tags = ["checkout", "critical"])]
async fn endpoint_tagged(req: HttpRequest) -> HttpResponse {
    HttpResponse::build(status(status_param(query(&req), 200))).body("tagged")
}

// The `Bytes` extractor reads the whole payload before this function starts.
#[post("/endpoint/body")]
#[track_endpoint(capture_request_body = true, capture_response_body = true, statuses = ["2xx", "4xx"])]
async fn endpoint_body(req: HttpRequest, body: Bytes) -> HttpResponse {
    let mut resp = HttpResponse::build(status(status_param(query(&req), 200)));
    if let Some(ct) = req.headers().get(CONTENT_TYPE) {
        resp.insert_header((CONTENT_TYPE, ct.clone()));
    }
    resp.body(body)
}

#[get("/endpoint/slow")]
#[track_endpoint(slow_threshold_ms = 50)]
async fn endpoint_slow(req: HttpRequest) -> &'static str {
    actix_web::rt::time::sleep(Duration::from_millis(ms_param(query(&req)))).await;
    "slow"
}

// The other order: the attribute keeps `#[get]` on the function it emits, so this
// works too (the documented order is the one above).
#[track_endpoint(tags = ["above"], statuses = [409])]
#[get("/endpoint/above")]
async fn endpoint_above() -> HttpResponse {
    HttpResponse::Conflict().body("above")
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(endpoint_missing)
        .service(endpoint_tagged)
        .service(endpoint_body)
        .service(endpoint_slow)
        .service(endpoint_above);
    cfg.route(
        "/ok",
        web::get().to(|| async { HttpResponse::Ok().content_type("text/plain").body("ok") }),
    )
    .route(
        "/status/{code}",
        web::get().to(|code: web::Path<u16>| async move {
            HttpResponse::build(status(*code))
                .content_type("text/plain")
                .body(format!("status {code}"))
        }),
    )
    .route(
        "/slow",
        web::get().to(|req: HttpRequest| async move {
            actix_web::rt::time::sleep(Duration::from_millis(ms_param(query(&req)))).await;
            "slow"
        }),
    )
    .route(
        "/health",
        web::get().to(|req: HttpRequest| async move {
            HttpResponse::build(status(status_param(query(&req), 200))).body("healthy")
        }),
    )
    .route(
        "/echo",
        web::post().to(|req: HttpRequest, body: Bytes| async move {
            let mut resp = HttpResponse::build(status(status_param(query(&req), 200)));
            if let Some(ct) = req.headers().get(CONTENT_TYPE) {
                resp.insert_header((CONTENT_TYPE, ct.clone()));
            }
            resp.body(body)
        }),
    )
    .route(
        "/log",
        web::get().to(
            |log: RequestLogger, client: web::Data<loggier_core::Loggier>| async move {
                // The extractor for one, the plain client (inside the request scope,
                // after an await) for the other.
                log.info("inside handler");
                actix_web::rt::time::sleep(Duration::from_millis(1)).await;
                client.info("after await");
                "logged"
            },
        ),
    )
    .route(
        "/stream",
        web::get().to(|req: HttpRequest, gate: web::Data<StreamGate>| async move {
            HttpResponse::build(status(status_param(query(&req), 200)))
                .content_type("text/plain")
                .streaming(stream_chunks(gate.get_ref().clone()))
        }),
    )
    .route(
        "/stream/release",
        web::get().to(|gate: web::Data<StreamGate>| async move {
            gate.release();
            "released"
        }),
    )
    .route(
        "/endless",
        web::get().to(|req: HttpRequest| async move {
            HttpResponse::build(status(status_param(query(&req), 200)))
                .content_type("text/plain")
                .streaming(endless_chunks())
        }),
    )
    .route(
        "/panic",
        web::get().to(|| async {
            if std::hint::black_box(true) {
                panic!("boom from handler");
            }
            "unreachable"
        }),
    );
}

/// Starts a one-worker server with `settings` and the contract's routes; returns its
/// base URL and the handle to stop it.
fn serve(
    client: &loggier_core::Loggier,
    settings: CaptureSettings,
) -> (String, actix_web::dev::ServerHandle) {
    let settings = std::sync::Arc::new(settings);
    let gate = StreamGate::default();
    let app_client = client.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(app_client.clone()))
            .app_data(web::Data::new(gate.clone()))
            .wrap(Loggier::with_settings(app_client.clone(), settings.clone()))
            .configure(routes)
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
    (base, handle)
}

#[actix_web::test]
async fn shared_scenarios() {
    let (client, records) = test_client("actix");
    let (base, handle) = serve(&client, scenario_settings());

    scenarios::run_common(&base, &records).await;
    // This adapter turns a handler panic into a 500 and an error record.
    scenarios::panic_becomes_500(&base, &records).await;

    handle.stop(true).await;
    client.shutdown(Duration::from_secs(2));
}

#[actix_web::test]
async fn endpoint_scenarios() {
    let (client, records) = test_client("actix-endpoint");
    let (base, handle) = serve(&client, endpoint_settings());
    scenarios::run_endpoint(&base, &records).await;
    attribute_above_the_route_macro_applies_too(&base, &records).await;
    handle.stop(true).await;
    client.shutdown(Duration::from_secs(2));
}

/// `#[track_endpoint]` written above `#[get]`: its 409 is recorded with its tag.
async fn attribute_above_the_route_macro_applies_too(base: &str, records: &Records) {
    let id = new_id("above");
    let resp = loggier_test_support::http_client()
        .get(format!("{base}/endpoint/above"))
        .header("x-request-id", &id)
        .send()
        .await
        .expect("request succeeds");
    assert_eq!(resp.status().as_u16(), 409);
    let _ = resp.bytes().await;
    let r = records.transaction(&id).await;
    assert_eq!(r["tags"], serde_json::json!(["above"]), "{r}");
    assert_eq!(
        r["context"]["transaction"]["request"]["route"],
        "/endpoint/above"
    );
}
