//! Sinks: where records go. Each sink turns a batch of (already masked) records into
//! one or more encoded [`Payload`]s and delivers them.
//!
//! The pipeline owns batching, retries and the disk queue; a sink only encodes and
//! sends. Splitting encode from send is what lets a failed batch be stored on disk as
//! the exact bytes that go on the wire, and replayed later without re-encoding.
//!
//! Every sink runs on a thread of its own (`loggier-sink-<name>`, with its own
//! current-thread tokio runtime), so a sink blocked in a write, an `fsync` or a
//! network call never delays another sink or a caller. A panic inside
//! [`Sink::encode`], [`Sink::send`] or [`Sink::close`] is caught: the batch is
//! counted as dropped with the panic message as `last_error`, and the sink goes on.

#[cfg(feature = "http-transport")]
pub mod endpoint;
#[cfg(feature = "file")]
mod file;
#[cfg(feature = "http-ingest")]
pub mod http;
#[cfg(feature = "http-transport")]
mod http_auth;
#[cfg(feature = "http-transport")]
pub mod http_transport;
#[cfg(feature = "loki")]
pub mod loki;
#[cfg(feature = "otlp")]
pub mod otlp;
#[cfg(feature = "stdout")]
mod stdout;
#[cfg(feature = "vector")]
pub mod vector;

#[cfg(feature = "file")]
pub use file::{
    DEFAULT_FILE_MODE, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_FILES, FileSink, FileSinkBuilder,
};
#[cfg(feature = "http-ingest")]
pub use http::{HttpSink, HttpSinkBuilder};
#[cfg(feature = "http-transport")]
pub use http_transport::HttpTransport;
#[cfg(feature = "loki")]
pub use loki::{LokiClient, LokiSink, LokiSinkBuilder};
#[cfg(feature = "otlp")]
pub use otlp::{OtlpCompression, OtlpPartialSuccess, OtlpProtocol, OtlpSink, OtlpSinkBuilder};
#[cfg(feature = "stdout")]
pub use stdout::{StdoutFormat, StdoutSink, encode_logfmt_line};
#[cfg(feature = "vector")]
pub use vector::{VectorSink, VectorSinkBuilder};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Error;
use crate::record::{Record, ServiceInfo};

/// A boxed, `Send` future borrowed for `'a` (the shape [`Sink::send`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An encoded batch, exactly as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// Batch id (UUIDv7, time-ordered). Sent as `X-Loggier-Batch-Id` by HTTP sinks so
    /// a receiver can de-duplicate replays.
    pub id: uuid::Uuid,
    /// Encoded bytes (already compressed when the wire format compresses).
    pub bytes: Bytes,
    /// Number of records in the batch.
    pub records: u32,
}

impl Payload {
    /// A payload with a fresh UUIDv7 id.
    pub fn new(bytes: impl Into<Bytes>, records: u32) -> Self {
        Payload {
            id: uuid::Uuid::now_v7(),
            bytes: bytes.into(),
            records,
        }
    }

    /// Encoded size, bytes.
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The receiver acknowledged the whole payload.
    Delivered,
    /// A transient failure (network error, timeout, 408, 429, 5xx …): keep the payload
    /// and try again later. `retry_after` is the server's `Retry-After`, when it sent one.
    Retry {
        /// Short description for stats and stderr, e.g. `"http 503: overloaded"`.
        reason: String,
        /// Delay the receiver asked for.
        retry_after: Option<Duration>,
    },
    /// The receiver refused the payload for good (other 4xx, malformed data): drop it
    /// and count it.
    Reject {
        /// Short description including the receiver's message, e.g. `"http 400: entry too far behind"`.
        reason: String,
    },
}

/// Batch bounds a sink asks for; the client's settings apply where a field is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchHint {
    /// Most records in one batch.
    pub max_records: Option<usize>,
    /// Most estimated bytes in one batch (before compression).
    pub max_bytes: Option<usize>,
    /// Longest time a record waits in a batch.
    pub max_delay: Option<Duration>,
}

/// A destination for records.
///
/// Implementations must not panic on any record; an encoding failure is returned as
/// an [`Error`] and the batch is dropped and counted. `send` must finish in bounded
/// time (use a timeout for network I/O).
///
/// # Example
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// use loggier_core::{BoxFuture, Level, Payload, Record, SendOutcome, ServiceInfo, Sink};
///
/// /// Writes each record's message as a line; counts what was delivered.
/// struct Lines(Arc<AtomicU64>);
///
/// impl Sink for Lines {
///     fn name(&self) -> &str { "lines" }
///     fn encode(&mut self, records: &[Arc<Record>], _svc: &ServiceInfo) -> Result<Vec<Payload>, loggier_core::Error> {
///         let mut out = Vec::new();
///         for r in records {
///             out.extend_from_slice(r.message.as_bytes());
///             out.push(b'\n');
///         }
///         Ok(vec![Payload::new(out, records.len() as u32)])
///     }
///     fn send<'a>(&'a mut self, p: &'a Payload) -> BoxFuture<'a, SendOutcome> {
///         self.0.fetch_add(u64::from(p.records), Ordering::Relaxed);
///         Box::pin(async { SendOutcome::Delivered })
///     }
/// }
///
/// // A batch as the pipeline hands it over.
/// let batch: Vec<Arc<Record>> = ["started", "ready"]
///     .into_iter()
///     .map(|m| Arc::new(Record::new(Level::Info, m)))
///     .collect();
/// let mut sink = Lines(Arc::new(AtomicU64::new(0)));
/// let payloads = sink.encode(&batch, &ServiceInfo::default()).expect("encodes");
/// assert_eq!(&payloads[0].bytes[..], b"started\nready\n");
/// ```
pub trait Sink: Send + 'static {
    /// Stable name, used in stats, stderr reports and as the disk-queue namespace
    /// (e.g. `"file"`, `"loki"`). Two sinks of one client must have different names.
    fn name(&self) -> &str;

    /// Encodes a non-empty batch of records. May split it into several payloads (e.g.
    /// to respect a request-size limit); the `records` counts of the payloads must add
    /// up to `records.len()`.
    ///
    /// The records come as the pipeline holds them: each in an [`Arc`], because one
    /// record can be in the batches of several sinks at once. They are already masked
    /// (secrets redacted). Read them through the `Arc` (`records[0].message`, or pass
    /// `&records[0]` where a `&Record` is expected); there is nothing to copy out. A
    /// test builds a batch with `records.into_iter().map(Arc::new).collect::<Vec<_>>()`.
    ///
    /// # Errors
    /// An [`Error`] of kind `Encode` when the batch cannot be encoded; the batch is
    /// dropped and counted.
    fn encode(
        &mut self,
        records: &[Arc<Record>],
        service: &ServiceInfo,
    ) -> Result<Vec<Payload>, Error>;

    /// Delivers one payload. Called again with the same payload (same id) on retry and
    /// on replay from the disk queue.
    fn send<'a>(&'a mut self, payload: &'a Payload) -> BoxFuture<'a, SendOutcome>;

    /// Delivers one payload like [`Sink::send`], through a future that does not
    /// borrow the sink (it owns what it needs: a handle to the HTTP client, the URL,
    /// the payload), or `None` when the sink has no such send. Default: `None`.
    ///
    /// In [`DeliveryMode::Durable`](crate::DeliveryMode::Durable) the pipeline sends
    /// through it when it can, and meanwhile keeps encoding new batches and
    /// committing them to the disk queue, so a persist barrier
    /// ([`Loggier::persist`](crate::Loggier::persist)) is answered while a slow send
    /// is in flight; with `None` those wait until [`Sink::send`] returns (at most the
    /// sink's timeout). The pipeline asks [`Sink::take_partial_rejection`] after a
    /// [`Delivered`](SendOutcome::Delivered) either way.
    fn send_detached(&self, payload: &Payload) -> Option<BoxFuture<'static, SendOutcome>> {
        let _ = payload;
        None
    }

    /// Batch bounds this sink prefers. Default: the client's settings.
    fn batch_hint(&self) -> BatchHint {
        BatchHint::default()
    }

    /// `true` for sinks that write locally (file, stdout): their failures are not
    /// network outages, so the pipeline does not park their batches in the disk queue.
    /// Default `false`.
    fn is_local(&self) -> bool {
        false
    }

    /// Called once at shutdown after the last send, to flush buffers. Default: nothing.
    fn close(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    /// Records of the payload just [`Delivered`](SendOutcome::Delivered) that the
    /// receiver accepted the request for but refused one by one (an OTLP
    /// `partial_success`), with the receiver's message. The pipeline asks after every
    /// `Delivered` and counts them as `dropped_rejected` instead of `written`.
    /// Default: `None`.
    fn take_partial_rejection(&mut self) -> Option<(u64, String)> {
        None
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }
    fn encode(
        &mut self,
        records: &[Arc<Record>],
        service: &ServiceInfo,
    ) -> Result<Vec<Payload>, Error> {
        (**self).encode(records, service)
    }
    fn send<'a>(&'a mut self, payload: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        (**self).send(payload)
    }
    fn send_detached(&self, payload: &Payload) -> Option<BoxFuture<'static, SendOutcome>> {
        (**self).send_detached(payload)
    }
    fn batch_hint(&self) -> BatchHint {
        (**self).batch_hint()
    }
    fn is_local(&self) -> bool {
        (**self).is_local()
    }
    fn close(&mut self) -> BoxFuture<'_, ()> {
        (**self).close()
    }
    fn take_partial_rejection(&mut self) -> Option<(u64, String)> {
        (**self).take_partial_rejection()
    }
}
