//! Loggier HTTP capture for [actix-web] 4: one `wrap` and every tracked, slow or
//! failed request becomes a structured transaction record — request and response
//! data, masked secrets, request id, W3C trace ids, duration — shipped by the
//! [`loggier_core::Loggier`] client's non-blocking pipeline.
//!
//! # Server
//! ```no_run
//! use actix_web::{App, HttpResponse, HttpServer, web};
//! use loggier_actix::{Loggier, RequestLogger};
//! use loggier_core::http::CaptureSettings;
//!
//! async fn get_order(log: RequestLogger, id: web::Path<u32>) -> actix_web::Result<HttpResponse> {
//!     log.info(format!("looking up order {id}")); // carries the request id
//!     if *id == 0 {
//!         // A 404 built from an error: recorded with the error if 404 is tracked.
//!         return Err(actix_web::error::ErrorNotFound("no such order"));
//!     }
//!     Ok(HttpResponse::Ok().json(serde_json::json!({ "id": *id })))
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let client = loggier_core::Loggier::builder()
//!         .service_name("orders")
//!         .environment("production")
//!         .build()?; // default sink: ./loggier.ndjson under the data dir
//!     let settings = std::sync::Arc::new(
//!         CaptureSettings::builder()
//!             .statuses_to_track(["404", "5xx"])
//!             .capture_request_body(true)
//!             .exclude_paths(["/health"])
//!             .build()?,
//!     );
//!     let app_client = client.clone();
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(Loggier::with_settings(app_client.clone(), settings.clone()))
//!             .route("/orders/{id}", web::get().to(get_order))
//!             .route("/health", web::get().to(HttpResponse::Ok))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await?;
//!     client.shutdown(std::time::Duration::from_secs(5)); // flush what is left
//!     Ok(())
//! }
//! ```
//!
//! # Client
//! Any HTTP client works; a request id sent in `x-request-id` (visible ASCII, at
//! most 128 bytes) is kept, otherwise one is generated, and it comes back in the
//! response's `x-request-id`:
//! ```text
//! $ curl -i -H 'x-request-id: checkout-42' \
//!        -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' \
//!        http://127.0.0.1:8080/orders/0
//! HTTP/1.1 404 Not Found
//! x-request-id: checkout-42
//! ```
//! producing a warning record with `"request_id":"checkout-42"`, the trace id, and
//! `context.transaction.request` / `.response` (route `/orders/{id}`, status 404,
//! the error's type and message in `exception`).
//!
//! # What is decided where
//! The capture policy — which statuses are tracked, slow threshold, levels, masking,
//! request id rules, `traceparent` parsing, body copy limits — lives once in
//! [`loggier_core::http`] and is shared with the tower and axum adapters. This crate
//! converts actix types into the policy's inputs: [`Loggier`] (the `Transform`),
//! [`LoggierMiddleware`] (the `Service`), [`ResponseFuture`], [`ResponseBody`] and the
//! [`RequestLogger`] extractor.
//!
//! actix-web runs each worker on a single-threaded runtime: nothing on the request or
//! body path needs `Send`; settings are shared behind an `Rc` per worker.
//!
//! [actix-web]: https://docs.rs/actix-web/4
#![cfg_attr(docsrs, feature(doc_cfg))]

mod body;
mod capture;
mod extract;
mod future;
mod middleware;

pub use body::ResponseBody;
pub use extract::RequestLogger;
pub use future::ResponseFuture;
pub use middleware::{Loggier, LoggierMiddleware};

/// `#[track_endpoint(...)]` on an actix-web handler: per-route statuses, tags, body
/// capture and slow threshold, applied by the [`Loggier`] middleware to that handler's
/// requests; see [`loggier_core::track_endpoint`] for the options.
///
/// Stack it *below* actix's route macro, so it applies to the handler function the
/// route macro turns into a service:
///
/// ```no_run
/// use actix_web::{App, HttpResponse, HttpServer, get};
/// use loggier_actix::{Loggier, track_endpoint};
///
/// #[get("/orders/{id}")]
/// #[track_endpoint(tags = ["orders"], statuses = [404, "5xx"], capture_response_body = true)]
/// async fn order() -> HttpResponse {
///     HttpResponse::NotFound().body("no such order")
/// }
///
/// # async fn run(client: loggier_core::Loggier) -> std::io::Result<()> {
/// HttpServer::new(move || App::new().wrap(Loggier::new(client.clone())).service(order))
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await
/// # }
/// ```
pub use loggier_core::track_endpoint;

/// The policy types, re-exported so an actix service needs one import path.
pub use loggier_core::http::{CaptureSettings, CaptureSettingsBuilder, ResponseBodyCapture};

/// The timing attributes and guard, re-exported so handlers need one import path
/// (see `loggier_core::timing`). The expanded code names `::loggier_core`, so the
/// service depends on `loggier-core` too.
pub use loggier_core::{
    TimerGuard, capture_exceptions, timed, trace_database, trace_function, trace_http,
};
