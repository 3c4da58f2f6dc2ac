//! Loggier core: structured records, scoped context, masking, a non-blocking
//! pipeline and sinks.
//!
//! ```
//! use std::time::Duration;
//! use loggier_core::{Loggier, fields, info};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join("loggier-doc-lib");
//! let log = Loggier::builder()
//!     .service_name("checkout")
//!     .environment("production")
//!     .data_dir(&dir) // embedded default sink: <data_dir>/loggier.ndjson
//!     .build()?;
//!
//! log.update_global(fields! { "region" => "eu-west-1" });
//! {
//!     let _scope = log.context(fields! { "order_id" => "ORD-1" }).enter();
//!     info!(log, amount_cents = 1999, password = "hunter2", "payment accepted");
//! }
//! let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "bank did not answer");
//! log.exception("refund failed", &err);
//!
//! assert!(log.flush(Duration::from_secs(5)));
//! let text = std::fs::read_to_string(dir.join("loggier.ndjson"))?;
//! assert!(text.contains(r#""order_id":"ORD-1""#));
//! assert!(!text.contains("hunter2")); // masked: "password":"[FILTERED]"
//! # Ok(()) }
//! ```
//!
//! # How it works
//! A logging call checks the level (one atomic load), stamps the time, captures the
//! current [`context::Scope`] (an `Arc` clone) and `try_send`s into a bounded channel;
//! it never does I/O. A dedicated worker thread with its own current-thread tokio
//! runtime merges context (global < scope < call), masks secrets ([`mask`]) and hands
//! each record to every [`Sink`]; each sink runs on a thread of its own (so a sink
//! blocked in a write delays no other), where it batches by count, bytes and
//! interval, encodes, sends and retries. [`Loggier::stats`] counts every record: written,
//! pending, or dropped with a reason.
//!
//! # Features
//! - `file` (default): [`FileSink`], NDJSON with size rotation.
//! - `stdout` (default): [`StdoutSink`], JSON or logfmt/TSKV lines.
//! - `tracing`: [`TracingLayer`], `tracing` events as Loggier records.
//! - `http-transport`: the shared [`sink::http_transport::HttpTransport`] for network sinks.
//! - `http-capture`: [`http`], the HTTP capture policy used by the framework middleware.
//! - `otlp`: [`sink::otlp::OtlpSink`], OTLP logs over HTTP/protobuf (`OTEL_EXPORTER_OTLP_*`).
//! - `otlp-grpc`: adds OTLP/gRPC (tonic; plaintext, or TLS with rustls for
//!   `https://` endpoints) to the OTLP sink.
//! - `http-ingest`: [`HttpSink`], the Loggier ingest wire format (gzip JSON array, bearer key).
//! - `macros` (default): the attributes [`trace_function`], [`trace_http`],
//!   [`trace_database`], [`capture_exceptions`] and [`track_endpoint`] (crate
//!   `loggier-macros`).
//! - `log`: [`log_bridge`], `log::info!` and friends from any crate as records.
//! - `opentelemetry`: [`otel`], records carry the active OpenTelemetry span's ids and
//!   the middleware's incoming `traceparent` becomes the handler's OTel parent context.
//! - `reqwest`: [`outgoing::TraceHttp`], a `reqwest-middleware` middleware that times
//!   outgoing calls, propagates `traceparent` and the request id, and records slow
//!   and failed calls.
//! - `disk-queue`: the SQLite [`queue`] where network sinks park batches while the
//!   network is down (offline cache) or commit every batch first
//!   ([`DeliveryMode::Durable`]); replayed oldest-first when the sink is back.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod client;
pub mod config;
pub mod context;
pub mod error;
mod global;
#[cfg(feature = "http-capture")]
pub mod http;
#[cfg(feature = "log")]
pub mod log_bridge;
mod macros;
pub mod mask;
#[cfg(feature = "opentelemetry")]
pub mod otel;
#[cfg(feature = "reqwest")]
pub mod outgoing;
mod pipeline;
#[cfg(feature = "disk-queue")]
pub mod queue;
pub mod record;
pub mod sink;
pub mod timing;
#[cfg(feature = "tracing")]
pub mod tracing_layer;

pub use client::{Event, Loggier, LoggierBuilder};
pub use config::{Config, DeliveryMode, FullPolicy};
pub use error::{ConfigError, Error, ErrorKind};
pub use global::{
    GUARD_SHUTDOWN_TIMEOUT, InitGuard, PANIC_FLUSH_TIMEOUT, global, init, init_with,
    install_panic_hook, set_global,
};
pub use pipeline::retry::{
    DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF, DEFAULT_MAX_RETRIES, RetryPolicy,
};
pub use pipeline::{SinkStats, Stats};
pub use record::{
    BodyContent, CapturedBody, ContextFields, ContextIntoIter, ContextIter, ContextIterMut,
    Exception, ExceptionCause, Fields, Frame, Headers, HeadersIter, HttpRequest, HttpResponse,
    HttpTransaction, Level, Record, ServiceInfo, Timing, TimingKind,
};
pub use sink::{BatchHint, BoxFuture, Payload, SendOutcome, Sink};
#[cfg(feature = "file")]
pub use sink::{FileSink, FileSinkBuilder};
#[cfg(feature = "http-ingest")]
pub use sink::{HttpSink, HttpSinkBuilder};
#[cfg(feature = "loki")]
pub use sink::{LokiClient, LokiSink, LokiSinkBuilder};
#[cfg(feature = "otlp")]
pub use sink::{OtlpCompression, OtlpPartialSuccess, OtlpProtocol, OtlpSink, OtlpSinkBuilder};
#[cfg(feature = "stdout")]
pub use sink::{StdoutFormat, StdoutSink};
#[cfg(feature = "vector")]
pub use sink::{VectorSink, VectorSinkBuilder};
#[cfg(feature = "tracing")]
pub use tracing_layer::TracingLayer;

pub use timing::{DEFAULT_TIMER_THRESHOLD_MS, TimerGuard};

/// Times a function or method (`timing.kind` `function`); see the [`timing`] module
/// for the record, the client used and the cost.
///
/// `#[trace_function(name = "...", threshold_ms = 500, tags = ["..."],
/// include_args = false, include_return = false, level = "info")]` (defaults shown,
/// as in seeds/004; `log_level` is accepted for `level`). Works on sync and `async`
/// functions, methods (`&self`, `&mut self`, `self`), generic functions and
/// `impl Trait` returns; `return` and `?` behave as without the attribute. One
/// record when the call took at least `threshold_ms`, or returned `Err` (with its
/// error chain) or panicked (the panic keeps unwinding).
///
/// ```
/// use loggier_core::trace_function;
///
/// #[trace_function(threshold_ms = 100, tags = ["pricing"], include_args = true)]
/// fn quote(sku: &str, qty: u32) -> Result<u64, std::num::ParseIntError> {
///     Ok(sku.trim_start_matches("SKU-").parse::<u64>()? * u64::from(qty))
/// }
/// assert_eq!(quote("SKU-12", 2), Ok(24));
/// ```
///
/// Errors: the `Err` value is described with the best the type allows — an
/// `E: std::error::Error + 'static` (or `anyhow::Error`, `Box<dyn Error>`) with its
/// `source()` chain, another `E: Debug` with its `Debug` text, anything else by type
/// name. Bad options are compile errors pointing at the option.
#[cfg(feature = "macros")]
pub use loggier_macros::trace_function;

/// Times a function that makes an outgoing HTTP call (`timing.kind` `http`, default
/// threshold 1000 ms).
///
/// `#[trace_http(name, threshold_ms = 1000, tags, mask_headers = [...],
/// mask_params = [...], include_body = false, level = "info")]`. With
/// `include_body = true` the arguments are recorded as `context.request` and the
/// return value as `context.response` (`Debug` text); `mask_headers` and
/// `mask_params` name extra keys masked in them, on top of the client's sensitive
/// names. Otherwise as [`trace_function`].
///
/// ```
/// #[loggier_core::trace_http(threshold_ms = 2000, mask_params = ["sig"])]
/// async fn fetch_rates(url: &str) -> Result<String, std::io::Error> {
///     Ok(format!("GET {url}"))
/// }
/// ```
#[cfg(feature = "macros")]
pub use loggier_macros::trace_http;

/// Times a function that makes a database call (`timing.kind` `database`, default
/// threshold 100 ms).
///
/// `#[trace_database(name, threshold_ms = 100, tags, include_params = false,
/// level = "info")]`. With `include_params = true` the arguments are recorded as
/// `context.params` (`Debug` text, masked). Otherwise as [`trace_function`].
///
/// ```
/// #[loggier_core::trace_database(name = "users.by_email", include_params = true)]
/// fn find_user(email: &str) -> Option<u64> {
///     (email == "ann@example.com").then_some(1)
/// }
/// assert_eq!(find_user("ann@example.com"), Some(1));
/// ```
#[cfg(feature = "macros")]
pub use loggier_macros::trace_database;

/// Records an `Err` return or a panic escaping the function as one exception record
/// (level `error` by default, `context.function` = the name, `exception` = the error
/// and its chain or the panic message; the panic keeps unwinding). No timing.
///
/// `#[capture_exceptions(name = "...", tags = [...], level = "error")]`, all optional.
/// Note: with the panic hook of [`init`] installed, a panic also produces the hook's
/// own critical `panic` record.
///
/// ```
/// #[loggier_core::capture_exceptions]
/// fn parse_port(text: &str) -> Result<u16, std::num::ParseIntError> {
///     text.parse()
/// }
/// assert!(parse_port("eighty").is_err());
/// ```
#[cfg(feature = "macros")]
pub use loggier_macros::capture_exceptions;

/// Per-endpoint capture options on a request handler — the `track_endpoint` decorator
/// of the Loggier notes (seeds/004) for axum, actix-web and tower/hyper handlers.
///
/// `#[track_endpoint(tags = ["..."], statuses = [...], capture_request_body = bool,
/// capture_response_body = bool, slow_threshold_ms = N)]`, every option optional:
///
/// | option | effect on this handler's requests | when not given |
/// |---|---|---|
/// | `tags = ["payment"]` | added to the transaction record's `tags` | no extra tags |
/// | `statuses = [404, "5xx", 200..=204]` | the statuses recorded; *replaces* `statuses_to_track` (codes, classes `"4xx"`, ranges `"500-599"` / `500..=599`) | `statuses_to_track` |
/// | `capture_request_body = true` | request body (≤ `max_body_size` bytes) kept in the record; `false`: never | `capture_request_body` |
/// | `capture_response_body = true` | response body of every recorded response kept; `false`: never | `capture_response_body` (errors) |
/// | `slow_threshold_ms = 250` | a request taking ≥ 250 ms is recorded as slow, even with `log_slow_requests` off | `slow_request_threshold` |
///
/// The middleware opens a per-request slot in the request's scope
/// ([`context::EndpointSlot`]); the attribute fills it with its static
/// [`context::EndpointOptions`] when the handler starts, and the middleware applies
/// them when it finalises the record (`loggier_core::http::Exchange`) — for that
/// request only. A request body is usually read by an extractor *before* the handler
/// starts, so the middleware copies request bodies provisionally (up to
/// `max_body_size`) and drops the copy as soon as the endpoint turns out not to want
/// it: see `CaptureSettingsBuilder::endpoint_request_body` for the cost and how to
/// turn it off.
///
/// - Works on `async` and sync functions and methods; the body is not rewritten
///   (`return`, `?`, generics, `impl Trait` returns behave as without it); the only
///   addition is a guard created first thing in the body.
/// - actix-web: put it *below* the route macro (`#[get("/x")]` then
///   `#[track_endpoint(..)]`), so it applies to the handler function that the route
///   macro wraps in its service struct. (Placed above, it also works: it keeps the
///   route attribute on the function it emits.)
/// - Outside any Loggier middleware (a task spawned without the request scope, a
///   function called from a CLI, a test — and a request on one of the middleware's
///   `exclude_paths`, which gets no scope at all) it times the call with a monotonic clock and,
///   when a global client is installed ([`init`]), records it: one record (logger
///   `"track_endpoint"`, `timing.kind` `"http"`, `timing.name` the handler's path,
///   `timing.threshold_ms` the `slow_threshold_ms`) with the endpoint's tags, at info
///   level — warning when slower than `slow_threshold_ms`, error when the handler
///   panicked (the panic keeps unwinding).
/// - Generated code refers to `::loggier_core`, so the crate using the attribute
///   depends on `loggier-core` (as every Loggier service does, for its client), also
///   when it imports the attribute from `loggier-axum`, `loggier-actix` or
///   `loggier-tower`.
/// - Bad options are compile errors pointing at the option (unknown name, wrong type,
///   duplicate, status outside 100–999, use on something that is not a function).
///
/// ```
/// use std::time::Duration;
/// use loggier_core::track_endpoint;
///
/// #[track_endpoint(tags = ["billing"], statuses = [402, "5xx"], slow_threshold_ms = 1)]
/// async fn charge(cents: u64) -> Result<u64, String> {
///     tokio::time::sleep(Duration::from_millis(5)).await;
///     if cents == 0 { return Err("nothing to charge".into()); }
///     Ok(cents)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join("loggier-doc-track-endpoint");
/// # let _ = std::fs::remove_dir_all(&dir);
/// let guard = loggier_core::init_with(loggier_core::Loggier::builder().data_dir(&dir))?;
/// // Called outside any middleware: the call itself is timed and recorded.
/// assert_eq!(charge(1999).await, Ok(1999));
/// assert!(guard.client().flush_async(Duration::from_secs(5)).await);
/// let text = std::fs::read_to_string(dir.join("loggier.ndjson"))?;
/// assert!(text.contains(r#""tags":["billing"]"#));
/// assert!(text.contains(r#""kind":"http""#));
/// assert!(text.contains("Slow endpoint:"));
/// # Ok(()) }
/// ```
///
/// With axum, on a handler behind `loggier_axum`'s layer:
///
/// ```
/// use axum::{Router, http::StatusCode, routing::get};
/// use loggier_core::track_endpoint;
///
/// // 404s of this route are recorded (with the tag), other routes keep the defaults.
/// #[track_endpoint(tags = ["users"], statuses = [404])]
/// async fn show_user() -> StatusCode {
///     StatusCode::NOT_FOUND
/// }
///
/// let app: Router = Router::new().route("/users/{id}", get(show_user));
/// // .with_loggier(client) from loggier_axum::LoggierRouterExt
/// # let _ = app;
/// ```
#[cfg(feature = "macros")]
pub use loggier_macros::track_endpoint;

/// Plumbing for the macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub mod endpoint;

    /// `serde_json::to_value`, `null` on failure.
    pub fn to_value<T: serde::Serialize + ?Sized>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
    }

    // The timing attributes (`loggier-macros`) and `timed!`.
    pub use crate::timing::call::{
        Call, CallGuard, CallKind, CallMeta, Timed, timed, typed_fn, typed_future,
    };
    pub use crate::timing::global_timer;
    /// Autoref-specialisation probes (error description, `Debug` text).
    pub mod probe {
        pub use crate::timing::probe::*;
    }
}
