//! The shared adapter scenarios (`loggier-test-support`) against an actix-web server
//! wrapped with `loggier_actix::Loggier`, on 127.0.0.1:0, driven by reqwest.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use loggier_actix::{Loggier, RequestLogger};
use loggier_test_support::app::{ms_param, status_param};
use loggier_test_support::{
    StreamGate, endless_chunks, scenario_settings, scenarios, stream_chunks, test_client,
};

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

fn query(req: &HttpRequest) -> Option<&str> {
    Some(req.query_string())
}

fn routes(cfg: &mut web::ServiceConfig) {
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

#[actix_web::test]
async fn shared_scenarios() {
    let (client, records) = test_client("actix");
    let settings = std::sync::Arc::new(scenario_settings());
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

    scenarios::run_common(&base, &records).await;
    // This adapter turns a handler panic into a 500 and an error record.
    scenarios::panic_becomes_500(&base, &records).await;

    handle.stop(true).await;
    client.shutdown(Duration::from_secs(2));
}
