//! Loggier HTTP capture for [tower](https://docs.rs/tower) services: hyper 1 servers, tonic, axum, or anything
//! that is a `Service<http::Request<B>>`.
//!
//! [`LoggierLayer`] wraps a service so that every request
//! - gets a request id (a valid incoming `x-request-id`, else a UUIDv7) that is echoed
//!   on the response;
//! - runs inside a Loggier [`Scope`](loggier_core::context::Scope) holding the request
//!   id, the W3C `traceparent` trace ids and the route, so logging calls made by the
//!   handler (and by a streaming response body) carry them;
//! - is recorded as one transaction record (`context.transaction.request/response`,
//!   seeds/004) when the [`CaptureSettings`](loggier_core::http::CaptureSettings)
//!   say so: tracked status, slow, failed or panicked, or access-log mode — emitted when
//!   the response body ends or is dropped, so streaming keeps working and the duration
//!   covers the whole response.
//!
//! The capture policy itself lives in [`loggier_core::http`]; this crate only adapts
//! tower's types to it. Request and response bodies are teed (at most `max_body_size`
//! bytes copied as frames pass, never collected) only when body capture can apply.
//!
//! # Server example (hyper 1)
//! ```no_run
//! use std::convert::Infallible;
//! use http_body_util::Full;
//! use hyper::{Request, Response, body::{Bytes, Incoming}};
//! use hyper_util::rt::{TokioExecutor, TokioIo};
//! use hyper_util::service::TowerToHyperService;
//! use loggier_core::Loggier;
//! use loggier_tower::{ClientAddr, LoggierLayer, RequestBody};
//! use tower::{ServiceBuilder, service_fn};
//!
//! async fn hello(_req: Request<RequestBody<Incoming>>) -> Result<Response<Full<Bytes>>, Infallible> {
//!     Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let loggier = Loggier::builder().service_name("hello").build()?;
//!     let layer = LoggierLayer::new(loggier.clone());
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//!     loop {
//!         let (stream, peer) = listener.accept().await?;
//!         let svc = ServiceBuilder::new()
//!             // Lets the record say who the client was.
//!             .map_request(move |mut req: Request<Incoming>| {
//!                 req.extensions_mut().insert(ClientAddr(peer));
//!                 req
//!             })
//!             .layer(layer.clone())
//!             .service(service_fn(hello));
//!         tokio::spawn(async move {
//!             let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
//!                 .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
//!                 .await;
//!         });
//!     }
//! }
//! ```
//!
//! # Calling a wrapped service directly
//! ```
//! use std::convert::Infallible;
//! use std::time::Duration;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use bytes::Bytes;
//! use loggier_core::Loggier;
//! use loggier_tower::{LoggierLayer, RequestBody};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join("loggier-tower-doc-direct");
//! # let _ = std::fs::remove_dir_all(&dir);
//! let loggier = Loggier::builder().data_dir(&dir).build()?;
//! let svc = ServiceBuilder::new()
//!     .layer(LoggierLayer::new(loggier.clone()))
//!     .service(service_fn(|_req: Request<RequestBody<Full<Bytes>>>| async {
//!         let mut resp = Response::new(Full::new(Bytes::from_static(b"db down")));
//!         *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
//!         Ok::<_, Infallible>(resp)
//!     }));
//! let req = Request::get("/orders?limit=5").header("x-request-id", "req-1").body(Full::default())?;
//! let resp = svc.oneshot(req).await?;
//! assert_eq!(resp.headers()["x-request-id"], "req-1");
//! resp.into_body().collect().await?; // the record is emitted when the body ends
//! assert!(loggier.flush_async(Duration::from_secs(5)).await);
//! let text = std::fs::read_to_string(dir.join("loggier.ndjson"))?;
//! assert!(text.contains(r#""message":"Server error: GET /orders - 503""#));
//! assert!(text.contains(r#""request_id":"req-1""#));
//! # Ok(()) }
//! ```
#![deny(unreachable_pub, missing_docs)]

mod body;
mod future;
mod layer;
mod service;

use std::backtrace::Backtrace;
use std::sync::Arc;

pub use body::{RequestBody, ResponseBody};
pub use future::ResponseFuture;
pub use layer::LoggierLayer;
pub use loggier_core::context::RequestContext;
/// `#[track_endpoint(...)]`: per-handler statuses, tags, body capture and slow
/// threshold, applied by [`LoggierService`] to that handler's requests; see
/// [`loggier_core::track_endpoint`].
pub use loggier_core::track_endpoint;
pub use service::{ClientAddr, LoggierService, RequestMeta, request_context};

/// The timing attributes and guard, re-exported so handlers need one import path
/// (see `loggier_core::timing`). The expanded code names `::loggier_core`, so the
/// service depends on `loggier-core` too.
pub use loggier_core::{
    TimerGuard, capture_exceptions, timed, trace_database, trace_function, trace_http,
};

/// Response extension by which an inner layer that caught a handler panic (and turned
/// it into a 500 response) tells [`LoggierService`] about it; the service removes it
/// from the response and records the request as panicked, with this message and
/// backtrace. `loggier-axum`'s panic layer inserts it.
#[derive(Debug, Clone)]
pub struct HandlerPanic {
    message: String,
    backtrace: Option<Arc<Backtrace>>,
}

impl HandlerPanic {
    /// A panic with `message` and, when one was captured, its `backtrace`.
    pub fn new(message: impl Into<String>, backtrace: Option<Backtrace>) -> Self {
        HandlerPanic {
            message: message.into(),
            backtrace: backtrace.map(Arc::new),
        }
    }

    /// The panic message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The backtrace, when captured.
    pub fn backtrace(&self) -> Option<&Backtrace> {
        self.backtrace.as_deref()
    }
}
