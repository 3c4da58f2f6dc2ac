//! OTLP logs sink: OTLP/HTTP protobuf (feature `otlp`) and OTLP/gRPC (feature
//! `otlp-grpc`), to any OpenTelemetry collector or OTLP-native backend.
//!
//! # Wire
//! One [`ExportLogsServiceRequest`] per payload (`opentelemetry-proto` types, so the
//! bytes are exactly what the [OTLP spec](https://opentelemetry.io/docs/specs/otlp/)
//! defines): one `ResourceLogs` with the service resource, one `ScopeLogs` with scope
//! `loggier` (version = this crate's), one `LogRecord` per record.
//!
//! - **OTLP/HTTP** ([spec](https://opentelemetry.io/docs/specs/otlp/#otlphttp)):
//!   `POST <endpoint>` (default `http://localhost:4318/v1/logs`),
//!   `Content-Type: application/x-protobuf`, with `Content-Encoding: gzip` when
//!   compression is on (the payload is compressed once, at encode time, and stored
//!   compressed in the disk queue).
//! - **OTLP/gRPC** ([spec](https://opentelemetry.io/docs/specs/otlp/#otlpgrpc)):
//!   `opentelemetry.proto.collector.logs.v1.LogsService/Export` over HTTP/2
//!   (default `http://localhost:4317`, plaintext), gzip through gRPC message
//!   compression. An `https://` endpoint uses TLS (rustls with aws-lc-rs, ALPN `h2`),
//!   trusting the system's CA store (`rustls-native-certs`: `SSL_CERT_FILE` /
//!   `SSL_CERT_DIR` when set, else the platform's store; Mozilla's roots from
//!   `webpki-roots` when there is none), as OTLP/HTTP does, or only the CA given to
//!   [`OtlpSinkBuilder::ca_certificate_pem`].
//!
//! # Mapping
//! Per the [logs data model](https://opentelemetry.io/docs/specs/otel/logs/data-model/)
//! and [semantic conventions](https://opentelemetry.io/docs/specs/semconv/):
//!
//! | Loggier | OTLP |
//! |---|---|
//! | service / version / environment | resource `service.name` / `service.version` / `deployment.environment.name` |
//! | project / host / revision | resource `service.namespace` / `host.name` / `loggier.revision` |
//! | — | resource `telemetry.sdk.name` = `loggier`, `telemetry.sdk.language` = `rust`, `telemetry.sdk.version` |
//! | `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SERVICE_NAME`, [`OtlpSinkBuilder::resource_attribute`] | resource attributes, overriding the above |
//! | timestamp (ns) | `time_unix_nano` and `observed_time_unix_nano` (the client stamps records when they are logged, i.e. observed) |
//! | level | `severity_number` ([`Level::otel_severity_number`](crate::Level::otel_severity_number): 1, 5, 9, 13, 17, 21) and `severity_text` (`"INFO"`, `"WARNING"`, …) |
//! | message | `body` (string) |
//! | trace_id / span_id (hex) | `trace_id` (16 bytes) / `span_id` (8 bytes); a malformed id goes to `loggier.trace_id` / `loggier.span_id` as text instead |
//! | context fields | attributes, same keys; nested objects → `kvlistValue`, arrays → `arrayValue`, integers beyond `i64` → decimal string |
//! | logger | `loggier.logger` |
//! | tags | `loggier.tags` (string array) |
//! | request_id | `loggier.request_id` (semconv has no request-id attribute; a namespaced key cannot collide with a future one) |
//! | exception | `exception.type`, `exception.message`, `exception.stacktrace` (when a backtrace was captured), `loggier.exception.chain` (array of `{type, message}`) |
//! | HTTP request | `http.request.method` (`_OTHER` + `http.request.method_original` for unknown methods), `url.path`, `url.query` (rebuilt from the masked parameters), `http.route`, `client.address`, `user_agent.original`, `http.request.header.<name>` (string arrays, masked) |
//! | HTTP response | `http.response.status_code`, `http.response.header.<name>` |
//! | HTTP bodies | `http.request.body.size` / `http.response.body.size` (bytes), `loggier.http.{request,response}.body` and `….truncated` |
//! | HTTP duration | `http.server.request.duration` (seconds, double — the unit of the semconv metric of that name) |
//! | timing | `loggier.timing.name`, `.kind`, `.duration_ms`, `.threshold_ms` |
//!
//! A typed part wins over a context field of the same key (attribute keys are unique
//! per record). Records are masked by the pipeline before they are encoded.
//!
//! # Retries and partial success
//! Per [OTLP failures](https://opentelemetry.io/docs/specs/otlp/#failures-1):
//! - HTTP: 429, 502, 503, 504 and network errors → [`SendOutcome::Retry`] with the
//!   server's `Retry-After`; every other status → [`SendOutcome::Reject`] carrying the
//!   message of the `google.rpc.Status` body. This is deliberately narrower than
//!   [`HttpTransport`](crate::sink::HttpTransport)'s shared classification (which
//!   also retries 408 and 500): the OTLP spec says other 4xx/5xx "MUST NOT be retried".
//! - gRPC: `UNAVAILABLE`, `CANCELLED`, `DEADLINE_EXCEEDED`, `ABORTED`, `OUT_OF_RANGE`,
//!   `DATA_LOSS`, and `RESOURCE_EXHAUSTED` only when the server attached a
//!   `google.rpc.RetryInfo` → retry (its `retry_delay` becomes `retry_after`); other
//!   codes → reject.
//! - A success response with `partial_success` is [`SendOutcome::Delivered`] (the spec
//!   forbids retrying it); its `rejected_log_records` are reported to the pipeline
//!   through [`Sink::take_partial_rejection`], so they show up in
//!   [`SinkStats::dropped_rejected`](crate::SinkStats::dropped_rejected) (not in
//!   `written`) and as the sink's `last_error`; the running totals and the collector's
//!   last message are also kept in [`OtlpPartialSuccess`]
//!   ([`OtlpSink::partial_success`]).
//!
//! The pipeline owns retries, back-off and the disk queue; this sink encodes and sends.
//!
//! # Why not the `opentelemetry-otlp` exporter
//! The SDK exporter is built for the SDK's own `BatchLogProcessor`, which keeps logs in
//! an in-memory queue on its own thread and drops them when the queue is full or the
//! collector is down — Loggier already batches on its worker, retries and parks
//! batches in a disk queue, so a second in-memory batcher would only add a place where
//! records vanish uncounted. Its HTTP client also needs a tokio reactor at the moment
//! it is built or first used from the SDK's thread (the well-known "there is no
//! reactor running" panic when the reqwest-based exporter is used outside a runtime);
//! Loggier's sinks run on the worker thread's own runtime, so we encode the
//! `opentelemetry-proto` messages ourselves, send OTLP/HTTP through the shared
//! [`HttpTransport`](crate::sink::HttpTransport), and create the tonic channel lazily
//! on the first send, inside that runtime.
//!
//! # Example
//! ```no_run
//! # fn main() -> Result<(), loggier_core::ConfigError> {
//! use loggier_core::sink::otlp::{OtlpCompression, OtlpSink};
//!
//! // From OTEL_EXPORTER_OTLP_* / OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES:
//! let from_env = OtlpSink::from_env()?;
//!
//! // Or explicitly:
//! let sink = OtlpSink::builder()
//!     .endpoint("http://collector:4318") // `/v1/logs` is appended
//!     .header("x-api-key", "secret")
//!     .compression(OtlpCompression::Gzip)
//!     .resource_attribute("team", "payments")
//!     .build()?;
//! # let _ = (from_env, sink); Ok(()) }
//! ```

mod encode;
mod env;
#[cfg(feature = "otlp-grpc")]
mod grpc;
mod http;

/// The setting name errors about [`OtlpSinkBuilder::ca_certificate_pem`] report.
const CA_SETTING: &str = "otlp_ca_certificate";

use std::fmt;
#[cfg(feature = "otlp-grpc")]
use std::io::Read;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::AnyValue;
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::endpoint::redact_url;
use super::{BoxFuture, Payload, SendOutcome, Sink};
use crate::error::{ConfigError, Error, ErrorKind};
use crate::record::{Record, ServiceInfo};

/// Default OTLP/HTTP logs URL: `http://localhost:4318/v1/logs` (exporter spec default).
pub const DEFAULT_HTTP_ENDPOINT: &str = "http://localhost:4318/v1/logs";
/// Default OTLP/gRPC target: `http://localhost:4317` (exporter spec default).
pub const DEFAULT_GRPC_ENDPOINT: &str = "http://localhost:4317";
/// Default export timeout: 10 s (`OTEL_EXPORTER_OTLP_TIMEOUT` default, 10000 ms).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default largest encoded request before a batch is split: 4 MiB (uncompressed),
/// the collector's default gRPC `max_recv_msg_size_mib`.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Shown instead of header values in errors and `Debug` output.
const REDACTED: &str = "[FILTERED]";
#[cfg(feature = "otlp-grpc")]
/// Largest payload inflated for a gRPC send (a gzip payload from an OTLP/HTTP
/// configuration replayed after a switch to gRPC): 64 MiB.
const MAX_INFLATED_BYTES: u64 = 64 * 1024 * 1024;

/// OTLP transport protocol (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OtlpProtocol {
    /// `http/protobuf` (the default): binary protobuf over HTTP/1.1 or HTTP/2.
    #[default]
    HttpProtobuf,
    /// `grpc`: needs the `otlp-grpc` feature; plaintext (`http://`) or TLS
    /// (`https://`).
    Grpc,
}

/// Payload compression (`OTEL_EXPORTER_OTLP_COMPRESSION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OtlpCompression {
    /// No compression (the default).
    #[default]
    None,
    /// gzip: `Content-Encoding: gzip` for HTTP, gRPC message compression for gRPC.
    Gzip,
}

/// Counters for OTLP partial-success responses, shared between a sink and the handles
/// returned by [`OtlpSink::partial_success`] (clone it before handing the sink to the
/// client).
///
/// A collector answers with `partial_success` when it accepted the request but
/// dropped some records (e.g. invalid ones); the spec forbids retrying them, so they
/// are counted here instead of vanishing.
#[derive(Debug, Clone, Default)]
pub struct OtlpPartialSuccess {
    inner: Arc<PartialInner>,
}

#[derive(Debug, Default)]
struct PartialInner {
    rejected: AtomicU64,
    responses: AtomicU64,
    last_message: Mutex<Option<String>>,
    /// Rejections not yet handed to the pipeline by `take_partial_rejection`.
    untaken: Mutex<Option<(u64, String)>>,
}

impl OtlpPartialSuccess {
    /// Sum of `rejected_log_records` over every partial-success response.
    pub fn rejected_log_records(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }

    /// Number of responses that carried a non-empty `partial_success` (rejections or
    /// a warning message).
    pub fn responses(&self) -> u64 {
        self.inner.responses.load(Ordering::Relaxed)
    }

    /// The last non-empty `error_message` a collector sent with a partial success.
    pub fn last_error_message(&self) -> Option<String> {
        self.inner
            .last_message
            .lock()
            .map(|m| m.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Records one `partial_success`; returns a description when it was not empty.
    pub(crate) fn record(&self, rejected: i64, message: &str) -> Option<String> {
        if rejected <= 0 && message.is_empty() {
            return None;
        }
        let rejected = u64::try_from(rejected).unwrap_or(0);
        self.inner.rejected.fetch_add(rejected, Ordering::Relaxed);
        self.inner.responses.fetch_add(1, Ordering::Relaxed);
        if !message.is_empty() {
            let mut slot = self
                .inner
                .last_message
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *slot = Some(message.to_string());
        }
        let description = format!(
            "partial success: {rejected} log records rejected{}{message}",
            if message.is_empty() { "" } else { ": " }
        );
        if rejected > 0 {
            let mut untaken = self.inner.untaken.lock().unwrap_or_else(|p| p.into_inner());
            let total = untaken.as_ref().map_or(0, |(n, _)| *n) + rejected;
            *untaken = Some((total, description.clone()));
        }
        Some(description)
    }

    /// Rejections recorded since the last call, for the pipeline's counters.
    fn take_untaken(&self) -> Option<(u64, String)> {
        self.inner
            .untaken
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

#[derive(Debug, Clone)]
enum EndpointCfg {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` semantics: `/v1/logs` appended for HTTP.
    Base(String),
    /// `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` semantics: used as is.
    Logs(String),
}

/// Builder for [`OtlpSink`]. Start from [`OtlpSink::builder`] (defaults) or
/// [`OtlpSinkBuilder::from_env`] (standard variables), then adjust.
///
/// Errors from [`OtlpSinkBuilder::build`] name the environment variable a bad value
/// came from, or the builder setting (`otlp_endpoint`, `otlp_headers`, `otlp_timeout`,
/// `otlp_protocol`) when it was set in code.
#[derive(Clone)]
#[must_use]
pub struct OtlpSinkBuilder {
    name: String,
    protocol: OtlpProtocol,
    protocol_setting: &'static str,
    endpoint: Option<EndpointCfg>,
    endpoint_setting: &'static str,
    headers: Vec<(String, String)>,
    headers_setting: &'static str,
    compression: OtlpCompression,
    timeout: Duration,
    timeout_setting: &'static str,
    resource: Vec<(String, serde_json::Value)>,
    max_request_bytes: usize,
    /// PEM of the CAs trusted for an `https://` gRPC endpoint (`None`: the system's
    /// store, or webpki roots without one).
    ca_pem: Option<Vec<u8>>,
}

impl fmt::Debug for OtlpSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoint = self.endpoint.as_ref().map(|e| match e {
            EndpointCfg::Base(u) => format!("Base({})", redact_url(u)),
            EndpointCfg::Logs(u) => format!("Logs({})", redact_url(u)),
        });
        f.debug_struct("OtlpSinkBuilder")
            .field("name", &self.name)
            .field("protocol", &self.protocol)
            .field("endpoint", &endpoint)
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(k, _)| (k.as_str(), REDACTED))
                    .collect::<Vec<_>>(),
            )
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .field("resource", &self.resource)
            .field("max_request_bytes", &self.max_request_bytes)
            .field(
                "ca_certificate_pem",
                &self.ca_pem.as_ref().map(|p| format!("{} bytes", p.len())),
            )
            .finish()
    }
}

impl Default for OtlpSinkBuilder {
    fn default() -> Self {
        OtlpSinkBuilder {
            name: "otlp".to_string(),
            protocol: OtlpProtocol::HttpProtobuf,
            protocol_setting: "otlp_protocol",
            endpoint: None,
            endpoint_setting: "otlp_endpoint",
            headers: Vec::new(),
            headers_setting: "otlp_headers",
            compression: OtlpCompression::None,
            timeout: DEFAULT_TIMEOUT,
            timeout_setting: "otlp_timeout",
            resource: Vec::new(),
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            ca_pem: None,
        }
    }
}

impl OtlpSinkBuilder {
    /// A builder configured from the process environment; see
    /// [`OtlpSinkBuilder::from_env_lookup`] for the variables.
    ///
    /// # Errors
    /// As [`OtlpSinkBuilder::from_env_lookup`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_lookup(|name| std::env::var(name).ok())
    }

    /// A builder configured from the standard OTel variables, read through `lookup`
    /// (so a config snapshot or a test can supply them). Each logs-specific variable
    /// overrides the generic one whole; unset or blank variables keep the defaults:
    ///
    /// | variable | meaning | default |
    /// |---|---|---|
    /// | `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` | logs URL / gRPC target, used as is | — |
    /// | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL; `/v1/logs` appended for HTTP | `http://localhost:4318` / `http://localhost:4317` |
    /// | `OTEL_EXPORTER_OTLP[_LOGS]_HEADERS` | `k=v,k2=v2`, percent-decoded | none |
    /// | `OTEL_EXPORTER_OTLP[_LOGS]_PROTOCOL` | `http/protobuf` or `grpc` | `http/protobuf` |
    /// | `OTEL_EXPORTER_OTLP[_LOGS]_COMPRESSION` | `gzip` or `none` | `none` |
    /// | `OTEL_EXPORTER_OTLP[_LOGS]_TIMEOUT` | export timeout, ms | 10000 |
    /// | `OTEL_RESOURCE_ATTRIBUTES` | `k=v,…` resource attributes (string values), percent-decoded | none |
    /// | `OTEL_SERVICE_NAME` | `service.name`, winning over `OTEL_RESOURCE_ATTRIBUTES` | the client's `service_name` |
    ///
    /// Resource attributes from the environment override the client's identity
    /// (`service_name`, `version`, `environment`), as in the OTel SDKs: the operator's
    /// environment has the last word.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] whose [`setting`](ConfigError::setting) is the name of
    /// the variable at fault: an unknown protocol or compression, `http/json` (not
    /// implemented), a timeout that is not a positive whole number of ms, a malformed
    /// `k=v` list. Header values never appear in the error.
    pub fn from_env_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let lookup: &dyn Fn(&str) -> Option<String> = &lookup;
        let mut b = OtlpSinkBuilder::default();
        if let Some((v, var)) = env::pick(lookup, env::LOGS_PROTOCOL, env::PROTOCOL) {
            b.protocol = env::parse_protocol(&v, var)?;
            b.protocol_setting = var;
        }
        if let Some((v, var)) = env::get(lookup, env::LOGS_ENDPOINT) {
            b.endpoint = Some(EndpointCfg::Logs(v.trim().to_string()));
            b.endpoint_setting = var;
        } else if let Some((v, var)) = env::get(lookup, env::ENDPOINT) {
            b.endpoint = Some(EndpointCfg::Base(v.trim().to_string()));
            b.endpoint_setting = var;
        }
        if let Some((v, var)) = env::pick(lookup, env::LOGS_HEADERS, env::HEADERS) {
            b.headers = env::parse_key_values(&v, var, true)?;
            b.headers_setting = var;
        }
        if let Some((v, var)) = env::pick(lookup, env::LOGS_COMPRESSION, env::COMPRESSION) {
            b.compression = env::parse_compression(&v, var)?;
        }
        if let Some((v, var)) = env::pick(lookup, env::LOGS_TIMEOUT, env::TIMEOUT) {
            b.timeout = env::parse_timeout_ms(&v, var)?;
            b.timeout_setting = var;
        }
        if let Some((v, var)) = env::get(lookup, env::RESOURCE_ATTRIBUTES) {
            for (k, val) in env::parse_key_values(&v, var, false)? {
                b.resource.push((k, serde_json::Value::String(val)));
            }
        }
        if let Some((v, _)) = env::get(lookup, env::SERVICE_NAME) {
            b.resource.push((
                "service.name".to_string(),
                serde_json::Value::String(v.trim().to_string()),
            ));
        }
        Ok(b)
    }

    /// Sink name in stats and the disk-queue namespace. Default `"otlp"`; give two
    /// OTLP sinks of one client different names.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Transport protocol. Default [`OtlpProtocol::HttpProtobuf`].
    pub fn protocol(mut self, protocol: OtlpProtocol) -> Self {
        self.protocol = protocol;
        self.protocol_setting = "otlp_protocol";
        self
    }

    /// Base endpoint, like `OTEL_EXPORTER_OTLP_ENDPOINT`: for OTLP/HTTP `/v1/logs` is
    /// appended (`http://collector:4318` → `http://collector:4318/v1/logs`); for gRPC
    /// it is the target (`http://collector:4317`).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(EndpointCfg::Base(url.into()));
        self.endpoint_setting = "otlp_endpoint";
        self
    }

    /// Full logs endpoint, used as is, like `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT`
    /// (`https://otlp.example.com/v1/logs`).
    pub fn logs_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(EndpointCfg::Logs(url.into()));
        self.endpoint_setting = "otlp_endpoint";
        self
    }

    /// Adds a header (HTTP) or metadata entry (gRPC) sent with every export, e.g. an
    /// API key. Replaces the headers read from the environment only if called after
    /// [`OtlpSinkBuilder::clear_headers`]; otherwise adds to them.
    ///
    /// # Security
    /// Values are marked sensitive and never shown in errors or `Debug` output.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self.headers_setting = "otlp_headers";
        self
    }

    /// Removes every header set so far (from the environment or [`Self::header`]).
    pub fn clear_headers(mut self) -> Self {
        self.headers.clear();
        self
    }

    /// Compression. Default [`OtlpCompression::None`].
    pub fn compression(mut self, compression: OtlpCompression) -> Self {
        self.compression = compression;
        self
    }

    /// Export timeout per request (connect + send + response). Default 10 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.timeout_setting = "otlp_timeout";
        self
    }

    /// Sets a resource attribute (string, number, bool, or nested JSON), overriding the
    /// client identity and the environment for that key. Calls apply in order.
    pub fn resource_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.resource.push((key.into(), value.into()));
        self
    }

    /// Shorthand for `resource_attribute("service.name", name)`, like `OTEL_SERVICE_NAME`.
    pub fn service_name(self, name: impl Into<String>) -> Self {
        self.resource_attribute("service.name", name.into())
    }

    /// Largest encoded (uncompressed) request, bytes; a larger batch is split in
    /// halves until each part fits (a single record larger than this is still sent
    /// alone). Default 4 MiB.
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// Trusts only the CA certificates in `pem` (one or more PEM `CERTIFICATE`
    /// blocks) for an `https://` OTLP/gRPC endpoint, instead of the system's CA store
    /// (the default; Mozilla's roots from `webpki-roots` when the system has none):
    /// for a collector whose certificate comes from a private CA that is not in the
    /// system store. The collector's certificate must still name the endpoint's host.
    /// Only OTLP/gRPC uses it; OTLP/HTTP trusts the system's store (see
    /// [`HttpTransport`](crate::sink::HttpTransport)), so [`OtlpSinkBuilder::build`]
    /// refuses it there rather than ignore it.
    pub fn ca_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Validates the settings and builds the sink. No connection is made here: the
    /// gRPC channel is created on the first send, inside the worker's runtime, so
    /// building outside any tokio runtime is fine.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] (naming the variable or builder setting) for: an
    /// endpoint that is not an `http`/`https` URL with a host;
    /// [`OtlpProtocol::Grpc`] without the `otlp-grpc` feature; a header name or value
    /// HTTP/gRPC cannot carry; a zero timeout; a zero `max_request_bytes`; an empty
    /// name; a [`ca_certificate_pem`](OtlpSinkBuilder::ca_certificate_pem)
    /// (`otlp_ca_certificate`) that holds no PEM certificate or cannot be parsed, or
    /// is set for OTLP/HTTP or for a plaintext `http://` gRPC endpoint.
    pub fn build(self) -> Result<OtlpSink, ConfigError> {
        if self.name.trim().is_empty() {
            return Err(ConfigError::invalid(
                "otlp_name",
                &self.name,
                "must not be empty",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::invalid(
                self.timeout_setting,
                "0ms",
                "must be greater than zero",
            ));
        }
        if self.max_request_bytes == 0 {
            return Err(ConfigError::invalid(
                "otlp_max_request_bytes",
                0,
                "must be greater than zero",
            ));
        }
        if let Some(pem) = &self.ca_pem {
            if self.protocol != OtlpProtocol::Grpc {
                return Err(ConfigError::invalid(
                    CA_SETTING,
                    format!("{} bytes of PEM", pem.len()),
                    "only OTLP/gRPC uses a custom CA; OTLP/HTTP trusts the system's store",
                ));
            }
            if memchr::memmem::find(pem, b"-----BEGIN CERTIFICATE-----").is_none() {
                return Err(ConfigError::invalid(
                    CA_SETTING,
                    format!("{} bytes", pem.len()),
                    "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                ));
            }
        }
        let resource = self
            .resource
            .iter()
            .map(|(k, v)| (k.clone(), encode::json_to_any(v)))
            .collect();
        let target = match self.protocol {
            OtlpProtocol::HttpProtobuf => {
                let url = match &self.endpoint {
                    None => DEFAULT_HTTP_ENDPOINT.to_string(),
                    Some(EndpointCfg::Base(b)) => env::append_logs_path(b),
                    Some(EndpointCfg::Logs(u)) => u.trim().to_string(),
                };
                Target::Http(http::HttpTarget::new(
                    url,
                    self.endpoint_setting,
                    &self.headers,
                    self.headers_setting,
                    self.timeout,
                )?)
            }
            OtlpProtocol::Grpc => self.grpc_target()?,
        };
        Ok(OtlpSink {
            name: self.name,
            target,
            compression: self.compression,
            resource_overrides: resource,
            resource_cache: None,
            max_request_bytes: self.max_request_bytes,
            partial: OtlpPartialSuccess::default(),
        })
    }

    #[cfg(feature = "otlp-grpc")]
    fn grpc_target(&self) -> Result<Target, ConfigError> {
        let target = match &self.endpoint {
            None => DEFAULT_GRPC_ENDPOINT.to_string(),
            Some(EndpointCfg::Base(u) | EndpointCfg::Logs(u)) => u.trim().to_string(),
        };
        Ok(Target::Grpc(Box::new(grpc::GrpcTarget::new(
            &target,
            self.endpoint_setting,
            &self.headers,
            self.headers_setting,
            self.timeout,
            self.compression,
            self.ca_pem.as_deref(),
        )?)))
    }

    #[cfg(not(feature = "otlp-grpc"))]
    fn grpc_target(&self) -> Result<Target, ConfigError> {
        Err(ConfigError::invalid(
            self.protocol_setting,
            "grpc",
            "OTLP/gRPC needs loggier-core's `otlp-grpc` feature; enable it or use http/protobuf",
        ))
    }
}

enum Target {
    Http(http::HttpTarget),
    #[cfg(feature = "otlp-grpc")]
    Grpc(Box<grpc::GrpcTarget>),
}

/// Ships records to an OTLP collector. Build it with [`OtlpSink::builder`] or
/// [`OtlpSink::from_env`]; see the [module docs](self) for the wire format, the
/// attribute mapping and the retry rules.
pub struct OtlpSink {
    name: String,
    target: Target,
    compression: OtlpCompression,
    resource_overrides: Vec<(String, AnyValue)>,
    resource_cache: Option<(ServiceInfo, Resource)>,
    max_request_bytes: usize,
    partial: OtlpPartialSuccess,
}

impl fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpSink")
            .field("name", &self.name)
            .field("protocol", &self.protocol())
            .field("endpoint", &redact_url(self.endpoint()))
            .field("compression", &self.compression)
            .field("max_request_bytes", &self.max_request_bytes)
            .finish_non_exhaustive()
    }
}

impl OtlpSink {
    /// A builder with the defaults (OTLP/HTTP to `http://localhost:4318/v1/logs`, no
    /// compression, 10 s timeout).
    pub fn builder() -> OtlpSinkBuilder {
        OtlpSinkBuilder::default()
    }

    /// `OtlpSinkBuilder::from_env()?.build()`.
    ///
    /// # Errors
    /// As [`OtlpSinkBuilder::from_env_lookup`] and [`OtlpSinkBuilder::build`].
    pub fn from_env() -> Result<Self, ConfigError> {
        OtlpSinkBuilder::from_env()?.build()
    }

    /// The protocol in use.
    pub fn protocol(&self) -> OtlpProtocol {
        match &self.target {
            Target::Http(_) => OtlpProtocol::HttpProtobuf,
            #[cfg(feature = "otlp-grpc")]
            Target::Grpc(_) => OtlpProtocol::Grpc,
        }
    }

    /// The resolved endpoint: the full logs URL for HTTP, the target for gRPC.
    pub fn endpoint(&self) -> &str {
        match &self.target {
            Target::Http(h) => h.url(),
            #[cfg(feature = "otlp-grpc")]
            Target::Grpc(g) => g.target(),
        }
    }

    /// A handle on the partial-success counters (shares state with the sink; keep
    /// it to read the counts after the sink moved into the client).
    pub fn partial_success(&self) -> OtlpPartialSuccess {
        self.partial.clone()
    }

    fn resource_for(&mut self, service: &ServiceInfo) -> Resource {
        if let Some((svc, res)) = &self.resource_cache {
            if svc == service {
                return res.clone();
            }
        }
        let res = encode::build_resource(service, &self.resource_overrides);
        self.resource_cache = Some((service.clone(), res.clone()));
        res
    }

    fn encode_into(
        &self,
        records: &[Arc<Record>],
        resource: &Resource,
        out: &mut Vec<Payload>,
    ) -> Result<(), Error> {
        let request = encode::build_request(records, resource);
        if request.encoded_len() > self.max_request_bytes && records.len() > 1 {
            let (a, b) = records.split_at(records.len() / 2);
            self.encode_into(a, resource, out)?;
            return self.encode_into(b, resource, out);
        }
        let raw = request.encode_to_vec();
        let bytes = match (&self.target, self.compression) {
            (Target::Http(_), OtlpCompression::Gzip) => gzip(&raw)?,
            // gRPC compresses per message itself; payloads stay raw protobuf.
            _ => raw,
        };
        out.push(Payload::new(
            bytes,
            u32::try_from(records.len()).unwrap_or(u32::MAX),
        ));
        Ok(())
    }
}

impl Sink for OtlpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn encode(
        &mut self,
        records: &[Arc<Record>],
        service: &ServiceInfo,
    ) -> Result<Vec<Payload>, Error> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let resource = self.resource_for(service);
        let mut out = Vec::new();
        self.encode_into(records, &resource, &mut out)?;
        Ok(out)
    }

    fn take_partial_rejection(&mut self) -> Option<(u64, String)> {
        self.partial.take_untaken()
    }

    fn send_detached(&self, payload: &Payload) -> Option<BoxFuture<'static, SendOutcome>> {
        match &self.target {
            Target::Http(h) => Some(h.send_detached(payload, &self.partial)),
            // A gRPC call needs the channel mutably: sent the ordinary way.
            #[cfg(feature = "otlp-grpc")]
            Target::Grpc(_) => None,
        }
    }

    fn send<'a>(&'a mut self, payload: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        let partial = &self.partial;
        match &mut self.target {
            Target::Http(h) => Box::pin(h.send(payload, partial)),
            #[cfg(feature = "otlp-grpc")]
            Target::Grpc(g) => Box::pin(g.send(payload, partial)),
        }
    }
}

/// gzip magic bytes; an `ExportLogsServiceRequest` starts with `0x0a` (field 1).
fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

fn gzip(raw: &[u8]) -> Result<Vec<u8>, Error> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(raw.len() / 4 + 64),
        flate2::Compression::default(),
    );
    enc.write_all(raw)
        .and_then(|()| enc.finish())
        .map_err(|e| Error::with_source(ErrorKind::Encode, "gzip compression failed", e))
}

/// The raw protobuf of a payload: inflated when it was stored gzip-compressed.
#[cfg(feature = "otlp-grpc")]
fn raw_protobuf(bytes: &[u8]) -> Result<Vec<u8>, String> {
    if !is_gzip(bytes) {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_INFLATED_BYTES)
        .read_to_end(&mut out)
        .map_err(|e| format!("stored payload is not valid gzip: {e}"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            owned
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn endpoint_errors_never_echo_the_password() {
        let bad = [
            "ftp://user:s3cr3t@collector:4318",
            "http://user:s3cr3t@:4318/v1/logs",
        ];
        for url in bad {
            let e = OtlpSink::builder()
                .logs_endpoint(url)
                .build()
                .expect_err(url);
            let text = e.to_string();
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(text.contains("[FILTERED]"), "{text}");
        }
        let env = lookup(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "gopher://u:s3cr3t@c:4318")]);
        let e = OtlpSinkBuilder::from_env_lookup(env)
            .expect("parses")
            .build()
            .expect_err("bad scheme");
        assert_eq!(e.setting(), "OTEL_EXPORTER_OTLP_ENDPOINT");
        assert!(!e.to_string().contains("s3cr3t"), "{e}");
        #[cfg(feature = "otlp-grpc")]
        {
            let e = OtlpSink::builder()
                .protocol(OtlpProtocol::Grpc)
                .endpoint("ftp://u:s3cr3t@collector:4317")
                .build()
                .expect_err("bad scheme for gRPC");
            assert!(!e.to_string().contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn sink_is_send_and_builder_is_send_sync() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<OtlpSink>();
        send::<OtlpSinkBuilder>();
        sync::<OtlpSinkBuilder>();
        sync::<OtlpPartialSuccess>();
    }

    #[test]
    fn env_endpoint_rules() {
        let s =
            OtlpSinkBuilder::from_env_lookup(lookup(&[(env::ENDPOINT, "http://collector:4318/")]))
                .and_then(OtlpSinkBuilder::build)
                .expect("valid");
        assert_eq!(s.endpoint(), "http://collector:4318/v1/logs");

        let s = OtlpSinkBuilder::from_env_lookup(lookup(&[
            (env::ENDPOINT, "http://collector:4318"),
            (env::LOGS_ENDPOINT, "https://logs.example.com/custom/path"),
        ]))
        .and_then(OtlpSinkBuilder::build)
        .expect("valid");
        assert_eq!(s.endpoint(), "https://logs.example.com/custom/path");

        let s = OtlpSink::builder().build().expect("defaults");
        assert_eq!(s.endpoint(), DEFAULT_HTTP_ENDPOINT);
        assert_eq!(s.protocol(), OtlpProtocol::HttpProtobuf);
    }

    #[test]
    fn env_errors_name_the_variable() {
        let cases = [
            (env::ENDPOINT, "collector:4318", env::ENDPOINT),
            (env::LOGS_ENDPOINT, "ftp://x/v1/logs", env::LOGS_ENDPOINT),
            (env::LOGS_PROTOCOL, "http/json", env::LOGS_PROTOCOL),
            (env::COMPRESSION, "brotli", env::COMPRESSION),
            (env::TIMEOUT, "ten", env::TIMEOUT),
            (env::HEADERS, "Authorization: Bearer x", env::HEADERS),
            (env::HEADERS, "bad header=1", env::HEADERS),
            (env::RESOURCE_ATTRIBUTES, "team", env::RESOURCE_ATTRIBUTES),
        ];
        for (var, value, expect) in cases {
            let err = OtlpSinkBuilder::from_env_lookup(lookup(&[(var, value)]))
                .and_then(OtlpSinkBuilder::build)
                .expect_err(value);
            assert_eq!(err.setting(), expect, "{var}={value}: {err}");
        }
    }

    #[test]
    fn header_values_stay_out_of_errors_and_debug() {
        let err = OtlpSinkBuilder::from_env_lookup(lookup(&[(env::HEADERS, "x-key=s3cr3t\u{1}")]))
            .and_then(OtlpSinkBuilder::build)
            .expect_err("newline in a header value");
        assert_eq!(err.setting(), env::HEADERS);
        assert!(!err.to_string().contains("s3cr3t"), "{err}");
        let b = OtlpSink::builder().header("x-key", "s3cr3t");
        assert!(!format!("{b:?}").contains("s3cr3t"));
        let s = b.build().expect("valid");
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }

    #[cfg(not(feature = "otlp-grpc"))]
    #[test]
    fn grpc_without_feature_is_a_config_error() {
        let err = OtlpSinkBuilder::from_env_lookup(lookup(&[(env::PROTOCOL, "grpc")]))
            .and_then(OtlpSinkBuilder::build)
            .expect_err("feature off");
        assert_eq!(err.setting(), env::PROTOCOL);
        assert!(err.to_string().contains("otlp-grpc"), "{err}");
    }

    #[test]
    fn service_name_env_wins_over_resource_attributes_and_identity() {
        let mut s = OtlpSinkBuilder::from_env_lookup(lookup(&[
            (
                env::RESOURCE_ATTRIBUTES,
                "service.name=attr,team=pay%2Cments",
            ),
            (env::SERVICE_NAME, "from-env"),
        ]))
        .and_then(OtlpSinkBuilder::build)
        .expect("valid");
        let svc = ServiceInfo {
            service: "api".into(),
            environment: "production".into(),
            ..ServiceInfo::default()
        };
        let res = s.resource_for(&svc);
        let get = |k: &str| {
            res.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
        };
        assert_eq!(get("service.name"), Some(encode::string("from-env")));
        assert_eq!(get("team"), Some(encode::string("pay,ments")));
        assert_eq!(
            get("deployment.environment.name"),
            Some(encode::string("production"))
        );
    }

    #[test]
    fn oversized_batches_split_and_counts_add_up() {
        let mut s = OtlpSink::builder()
            .max_request_bytes(2_000)
            .build()
            .expect("valid");
        let records: Vec<Arc<Record>> = (0..40)
            .map(|i| {
                Record::new(
                    crate::Level::Info,
                    format!("record {i} {}", "x".repeat(100)),
                )
            })
            .map(Arc::new)
            .collect();
        let payloads = s
            .encode(&records, &ServiceInfo::default())
            .expect("encodes");
        assert!(payloads.len() > 1, "{}", payloads.len());
        assert_eq!(payloads.iter().map(|p| p.records).sum::<u32>(), 40);
        let mut messages = Vec::new();
        for p in &payloads {
            assert!(p.len_bytes() <= 2_000, "{}", p.len_bytes());
            let req = ExportLogsServiceRequest::decode(p.bytes.as_ref()).expect("protobuf");
            for lr in &req.resource_logs[0].scope_logs[0].log_records {
                messages.push(lr.body.clone());
            }
        }
        let expected: Vec<_> = records
            .iter()
            .map(|r| Some(encode::string(r.message.to_string())))
            .collect();
        assert_eq!(messages, expected, "order kept across the split");
    }

    #[test]
    fn gzip_round_trip() {
        use std::io::Read as _;
        let raw = b"\x0a\x03abc".repeat(100);
        let z = gzip(&raw).expect("compresses");
        assert!(is_gzip(&z));
        assert!(!is_gzip(&raw));
        let mut inflated = Vec::new();
        flate2::read::GzDecoder::new(z.as_slice())
            .read_to_end(&mut inflated)
            .expect("inflates");
        assert_eq!(inflated, raw);
        #[cfg(feature = "otlp-grpc")]
        {
            assert_eq!(raw_protobuf(&z).expect("inflates"), raw);
            assert_eq!(raw_protobuf(&raw).expect("as is"), raw);
        }
    }
}
