//! A real actix-web server on 127.0.0.1:0 wrapped with the Loggier middleware, with
//! routes for the actix-specific tests, and a real reqwest client. Records are read
//! back from the collecting sink of `loggier-test-support` (the JSON a sink is sent).

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpResponse, HttpServer, ResponseError, web};
use bytes::Bytes;
use loggier_actix::{CaptureSettings, Loggier, RequestLogger};
use loggier_test_support::{Records, test_client};
use serde_json::Value;

/// Longest any single wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A running server and what the test needs to talk to it.
pub struct Harness {
    pub base: String,
    pub http: reqwest::Client,
    pub records: Records,
    handle: ServerHandle,
    client: loggier_core::Loggier,
}

impl Harness {
    /// Starts a one-worker server with these settings and the test routes, logging
    /// into the shared collecting sink of `loggier-test-support`.
    pub async fn start(settings: CaptureSettings) -> Harness {
        let (client, records) = test_client("actix-specific");
        let settings = Arc::new(settings);
        let app_client = client.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(app_client.clone()))
                .wrap(Loggier::with_settings(
                    app_client.clone(),
                    Arc::clone(&settings),
                ))
                .configure(routes)
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .bind(("127.0.0.1", 0))
        .expect("bind 127.0.0.1:0");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Harness {
            base: format!("http://{addr}"),
            http: loggier_test_support::http_client(),
            records,
            handle,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The transaction record (logger `http`) of the request with this id.
    pub async fn http_record(&self, request_id: &str) -> Value {
        self.records.transaction(request_id).await
    }

    /// Asserts that the requests with these ids produced no transaction record (a
    /// tracked 401 marker request is recorded after them first).
    pub async fn assert_not_recorded(&self, ids: &[&str]) {
        loggier_test_support::scenarios::assert_not_recorded(&self.base, &self.records, ids).await;
    }

    /// Stops the server without waiting for in-flight requests (their futures are
    /// dropped); the client keeps running.
    pub async fn stop_now(&self) {
        self.handle.stop(false).await;
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.client.shutdown(Duration::from_secs(2));
    }
}

/// An application error with its own status.
#[derive(Debug)]
pub enum PaymentError {
    GatewayTimeout { gateway: &'static str },
}

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PaymentError::GatewayTimeout { gateway } => {
                write!(f, "payment gateway {gateway} timed out")
            }
        }
    }
}

impl ResponseError for PaymentError {
    fn status_code(&self) -> StatusCode {
        StatusCode::BAD_GATEWAY
    }
    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .json(serde_json::json!({ "error": self.to_string() }))
    }
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ok", web::get().to(|| async { "ok" }))
        .route("/static/{file}", web::get().to(|| async { "asset" }))
        .route(
            "/status/{code}",
            web::get().to(|code: web::Path<u16>| async move {
                let status =
                    StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                HttpResponse::build(status)
                    .content_type("text/plain; charset=utf-8")
                    .body(format!("status {code}"))
            }),
        )
        .route(
            "/slow/{ms}",
            web::get().to(|ms: web::Path<u64>| async move {
                actix_web::rt::time::sleep(Duration::from_millis(*ms)).await;
                "done"
            }),
        )
        .route("/slow-stream", web::get().to(slow_stream))
        .route("/logs/{id}", web::get().to(logs))
        .route(
            "/hang",
            web::get().to(|client: web::Data<loggier_core::Loggier>| async move {
                client.info("hang started");
                actix_web::rt::time::sleep(DEADLINE).await;
                "too late"
            }),
        )
        .route(
            "/fail",
            web::get().to(|| async {
                Err::<HttpResponse, _>(PaymentError::GatewayTimeout { gateway: "acme" })
            }),
        )
        .route(
            "/orders/{id}",
            web::get().to(|id: web::Path<u32>| async move {
                Err::<HttpResponse, _>(actix_web::error::ErrorNotFound(format!("no order {id}")))
            }),
        )
        .service(
            web::scope("/guarded")
                .wrap(from_fn(require_api_key))
                .route("/thing", web::get().to(|| async { "thing" })),
        );
}

/// Two chunks 300 ms apart: the response takes longer than its handler.
async fn slow_stream() -> HttpResponse {
    let body = futures_util::stream::unfold(0u8, |n| async move {
        match n {
            0 => Some((Ok::<_, std::io::Error>(Bytes::from_static(b"header\n")), 1)),
            1 => {
                actix_web::rt::time::sleep(Duration::from_millis(300)).await;
                Some((Ok(Bytes::from_static(b"footer\n")), 2))
            }
            _ => None,
        }
    });
    HttpResponse::Ok()
        .content_type("text/plain")
        .streaming(body)
}

/// Logs through the plain client (inside the request scope), through the extractor,
/// and from a spawned task instrumented with the request scope; answers once all
/// three are logged.
async fn logs(
    client: web::Data<loggier_core::Loggier>,
    log: RequestLogger,
    id: web::Path<String>,
) -> HttpResponse {
    client.info(format!("plain client log {id}"));
    log.warning(format!("extractor log {id}"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = log.client().clone();
    let id2 = id.clone();
    actix_web::rt::spawn(log.instrument(async move {
        spawned.info(format!("spawned task log {id2}"));
        let _ = tx.send(());
    }));
    let _ = rx.await;
    HttpResponse::Ok().body(log.request_id().unwrap_or_default().to_string())
}

async fn require_api_key(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.headers().contains_key("x-api-key") {
        next.call(req).await
    } else {
        Err(actix_web::error::ErrorUnauthorized("missing api key"))
    }
}
