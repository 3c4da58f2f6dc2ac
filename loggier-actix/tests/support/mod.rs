//! A real actix-web server on 127.0.0.1:0 wrapped with the Loggier middleware, a real
//! reqwest client, and a sink that hands every record the pipeline writes to the test.

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
use loggier_core::{BoxFuture, Payload, Record, SendOutcome, ServiceInfo, Sink};

/// Longest any single wait in these tests may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// A sink that forwards the (already masked) records it is given.
struct ChannelSink(flume::Sender<Record>);

impl Sink for ChannelSink {
    fn name(&self) -> &str {
        "test-channel"
    }
    fn encode(
        &mut self,
        records: &[Record],
        _service: &ServiceInfo,
    ) -> Result<Vec<Payload>, loggier_core::Error> {
        for r in records {
            let _ = self.0.send(r.clone());
        }
        Ok(vec![Payload::new(Vec::new(), records.len() as u32)])
    }
    fn send<'a>(&'a mut self, _payload: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        Box::pin(async { SendOutcome::Delivered })
    }
    fn is_local(&self) -> bool {
        true
    }
}

/// Opens the gate the `/stream` handler waits on between its first chunk and the rest.
#[derive(Default)]
pub struct Gate(pub tokio::sync::Notify);

/// A running server and what the test needs to talk to it.
pub struct Harness {
    pub base: String,
    pub http: reqwest::Client,
    pub records: flume::Receiver<Record>,
    pub gate: Arc<Gate>,
    handle: ServerHandle,
    client: loggier_core::Loggier,
}

impl Harness {
    /// Starts a one-worker server with these settings and the test routes.
    pub async fn start(settings: CaptureSettings) -> Harness {
        let (tx, rx) = flume::unbounded();
        let client = loggier_core::Loggier::builder()
            .service_name("actix-test")
            .flush_interval(Duration::from_millis(5))
            .enable_caching(false)
            .sink(ChannelSink(tx))
            .build()
            .expect("client builds");
        let settings = Arc::new(settings);
        let gate = Arc::new(Gate::default());
        let (app_client, app_gate) = (client.clone(), Arc::clone(&gate));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(app_client.clone()))
                .app_data(web::Data::from(Arc::clone(&app_gate)))
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
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(DEADLINE)
            .build()
            .expect("reqwest client");
        Harness {
            base: format!("http://{addr}"),
            http,
            records: rx,
            gate,
            handle,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Waits (at most [`DEADLINE`]) for the first record matching `pred`; returns it
    /// with every record received before it.
    pub async fn wait_for(
        &self,
        what: &str,
        pred: impl Fn(&Record) -> bool,
    ) -> (Record, Vec<Record>) {
        let mut before = Vec::new();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            match tokio::time::timeout_at(deadline, self.records.recv_async()).await {
                Ok(Ok(r)) if pred(&r) => return (r, before),
                Ok(Ok(r)) => before.push(r),
                Ok(Err(_)) => panic!("record channel closed while waiting for {what}"),
                Err(_) => panic!("no record for {what} within {DEADLINE:?}; got {before:#?}"),
            }
        }
    }

    /// The transaction record (logger `http`) of the request with this id.
    pub async fn http_record(&self, request_id: &str) -> Record {
        self.wait_for(request_id, |r| {
            r.logger == "http" && r.request_id.as_deref() == Some(request_id)
        })
        .await
        .0
    }

    /// Asserts that the request with id `absent` produced no record: sends a tracked
    /// sentinel request on the same connection afterwards and checks nothing for
    /// `absent` arrived before the sentinel's record (records leave one worker in
    /// order, and the server emits a record before it serves the next request).
    pub async fn assert_not_recorded(&self, absent: &str) {
        let sentinel = format!("sentinel-after-{absent}");
        let resp = self
            .http
            .get(self.url("/status/500"))
            .header("x-request-id", &sentinel)
            .send()
            .await
            .expect("sentinel request");
        assert_eq!(resp.status(), 500);
        let _ = resp.bytes().await;
        let (_, before) = self
            .wait_for(&sentinel, |r| r.request_id.as_deref() == Some(&sentinel))
            .await;
        assert!(
            before
                .iter()
                .all(|r| r.request_id.as_deref() != Some(absent)),
            "{absent} was recorded: {before:#?}"
        );
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.client.shutdown(Duration::from_secs(2));
    }
}

/// The record as the JSON a sink would write (to look for leaked secrets).
pub fn record_json(r: &Record) -> String {
    let mut out = Vec::new();
    loggier_core::record::encode_json(r, &ServiceInfo::default(), &mut out).expect("encodes");
    String::from_utf8(out).expect("utf8")
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
        .route("/health", web::get().to(|| async { "healthy" }))
        .route("/static/{file}", web::get().to(|| async { "asset" }))
        .route(
            "/status/{code}",
            web::get().to(|code: web::Path<u16>| async move {
                let status =
                    StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                HttpResponse::build(status).body(format!("status {code}"))
            }),
        )
        .route(
            "/slow/{ms}",
            web::get().to(|ms: web::Path<u64>| async move {
                actix_web::rt::time::sleep(Duration::from_millis(*ms)).await;
                "done"
            }),
        )
        .route(
            "/echo",
            web::post().to(|body: Bytes| async move {
                HttpResponse::Ok().json(serde_json::json!({ "received_bytes": body.len() }))
            }),
        )
        .route(
            "/login",
            web::post().to(|body: web::Json<serde_json::Value>| async move {
                let user = body.get("user").cloned().unwrap_or_default();
                HttpResponse::Unauthorized().json(serde_json::json!({
                    "error": "bad credentials",
                    "user": user,
                    "reset_token": "resp-reset-secret",
                }))
            }),
        )
        .route("/stream", web::get().to(stream))
        .route("/endless", web::get().to(endless))
        .route("/logs/{id}", web::get().to(logs))
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

/// Three chunks; between the first and the rest the handler waits for the test to
/// open the gate.
async fn stream(gate: web::Data<Gate>) -> HttpResponse {
    let gate = gate.into_inner();
    let body = futures_util::stream::unfold(0u8, move |n| {
        let gate = Arc::clone(&gate);
        async move {
            match n {
                0 => Some((
                    Ok::<_, std::io::Error>(Bytes::from_static(b"first chunk\n")),
                    1,
                )),
                1 => {
                    gate.0.notified().await;
                    Some((Ok(Bytes::from_static(b"second chunk\n")), 2))
                }
                2 => Some((Ok(Bytes::from_static(b"last chunk\n")), 3)),
                _ => None,
            }
        }
    });
    HttpResponse::Ok()
        .content_type("text/plain")
        .streaming(body)
}

/// A chunk every 5 ms for up to 10 s: a client that goes away stops it early.
async fn endless() -> HttpResponse {
    let body = futures_util::stream::unfold(0u32, |n| async move {
        if n >= 2_000 {
            return None;
        }
        if n > 0 {
            actix_web::rt::time::sleep(Duration::from_millis(5)).await;
        }
        Some((
            Ok::<_, std::io::Error>(Bytes::from(format!("tick {n}\n"))),
            n + 1,
        ))
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
    let spawned = log.clone();
    let id2 = id.clone();
    actix_web::rt::spawn(log.scope().instrument(async move {
        spawned.client().info(format!("spawned task log {id2}"));
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
