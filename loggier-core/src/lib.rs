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
//! each record to one task per [`Sink`], which batches by count, bytes and interval,
//! encodes, sends and retries. [`Loggier::stats`] counts every record: written,
//! pending, or dropped with a reason.
//!
//! # Features
//! - `file` (default): [`FileSink`], NDJSON with size rotation.
//! - `stdout` (default): [`StdoutSink`], JSON or logfmt/TSKV lines.
//! - `tracing`: [`TracingLayer`], `tracing` events as Loggier records.
//! - `http-transport`: the shared [`sink::http_transport::HttpTransport`] for network sinks.
//! - `http-capture`: [`http`], the HTTP capture policy used by the framework middleware.
//! - `otlp`: [`sink::otlp::OtlpSink`], OTLP logs over HTTP/protobuf (`OTEL_EXPORTER_OTLP_*`).
//! - `otlp-grpc`: adds OTLP/gRPC (tonic, plaintext) to the OTLP sink.
//! - `http-ingest`: [`HttpSink`], the Loggier ingest wire format (gzip JSON array, bearer key).
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
mod macros;
pub mod mask;
mod pipeline;
#[cfg(feature = "disk-queue")]
pub mod queue;
pub mod record;
pub mod sink;
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
    BodyContent, CapturedBody, Exception, ExceptionCause, Fields, Frame, HttpRequest, HttpResponse,
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

/// Plumbing for the macros. Not public API.
#[doc(hidden)]
pub mod __private {
    pub mod endpoint;

    /// `serde_json::to_value`, `null` on failure.
    pub fn to_value<T: serde::Serialize + ?Sized>(v: &T) -> serde_json::Value {
        serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
    }
}
