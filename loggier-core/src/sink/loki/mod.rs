//! Grafana Loki: the push sink ([`LokiSink`]) and an async query client ([`LokiClient`]).
//!
//! # Wire format
//! [`LokiSink`] sends `POST {url}/loki/api/v1/push` as Loki's HTTP API documents it
//! ([Ingest logs](https://grafana.com/docs/loki/latest/reference/loki-http-api/#ingest-logs)):
//! by default a `logproto.PushRequest` protobuf ([`proto`]) compressed with the snappy
//! **block** format, `Content-Type: application/x-protobuf`; with
//! [`PushFormat::Json`], the JSON body
//! `{"streams":[{"stream":{…labels…},"values":[["<unix ns>","<line>",{…metadata…}]]}]}`
//! with `Content-Type: application/json` (the metadata object is left out when empty).
//!
//! # Labels and structured metadata
//! Labels stay low-cardinality, so every stream is one of a handful:
//! `service` and `environment` (from the client's [`ServiceInfo`]), `level`
//! (`trace` … `critical`) and the static labels set with
//! [`LokiSinkBuilder::label`] — at most [`MAX_LABELS`] (15, Loki's
//! `max_label_names_per_series` default) in all.
//!
//! Per-request values go to
//! [structured metadata](https://grafana.com/docs/loki/latest/get-started/labels/structured-metadata/),
//! never to labels (a label per request id or trace id creates one stream per value
//! and is the well-known Loki cardinality trap): `request_id`, `trace_id`, `span_id`,
//! `route`, and the context keys named by [`LokiSinkBuilder::metadata_fields`]
//! (default [`DEFAULT_METADATA_FIELDS`]: `msg_id`, `user_id`). Query them with
//! `{service="api"} | trace_id="4bf9…"`.
//!
//! Records are grouped into one stream per label set and sorted by timestamp
//! (nanoseconds) within each stream; records with equal timestamps keep their order.
//!
//! # Line body
//! [`LineFormat::Json`] (default) puts the record's Loggier JSON
//! ([`encode_json`](crate::record::encode_json)) in the line, so LogQL `| json`
//! extracts every field; [`LineFormat::Logfmt`] uses
//! [`encode_logfmt_line`](crate::sink::encode_logfmt_line) for `| logfmt`.
//!
//! # Limits
//! - A line longer than [`LokiSinkBuilder::max_line_bytes`] (default
//!   [`DEFAULT_MAX_LINE_BYTES`], Loki's `max_line_size` of 256 KB, where Loki drops the
//!   line) is cut at a character boundary and ends with `...[truncated: N bytes]`,
//!   N being the original length. A truncated JSON line is no longer valid JSON.
//! - A batch is split into several requests so that each body is at most
//!   [`LokiSinkBuilder::max_request_bytes`] (default [`DEFAULT_MAX_REQUEST_BYTES`],
//!   1 MiB, like Promtail's and Alloy's `batch_size`), counted both before and after
//!   snappy compression.
//!
//! # Delivery
//! Status handling is [`HttpTransport`]'s: 2xx delivered; 408, 429, 500, 502, 503,
//! 504 and network errors are retried by the pipeline (honouring `Retry-After`);
//! other statuses — Loki answers 400 for entries out of order or too old and for
//! bad labels — reject the payload, and the reason carries the body Loki returned.
//!
//! # Environment
//! [`LokiSinkBuilder::from_env`] and [`LokiClientBuilder::from_env`] read:
//!
//! | variable | meaning |
//! |---|---|
//! | `LOKI_URL` | base URL, e.g. `http://loki:3100` (required; a trailing `/loki/api/v1/push` is accepted and ignored) |
//! | `LOKI_TENANT_ID` | `X-Scope-OrgID` tenant |
//! | `LOKI_USERNAME`, `LOKI_PASSWORD` | HTTP basic auth (both or neither) |
//! | `LOKI_BEARER_TOKEN` | `Authorization: Bearer` token (not together with basic auth) |
//! | `LOKI_TIMEOUT_MS` | request timeout, milliseconds (default 5000) |
//! | `LOKI_LABELS` | sink only: static labels, `team=payments,region=eu` |
//! | `LOKI_METADATA_FIELDS` | sink only: context keys sent as structured metadata, `msg_id,user_id,tenant` |
//! | `LOKI_LINE_FORMAT` | sink only: `json` or `logfmt` |
//! | `LOKI_PUSH_FORMAT` | sink only: `protobuf` or `json` |
//! | `LOKI_MAX_REQUEST_BYTES` | sink only: request size limit, bytes |
//!
//! # Example
//! ```
//! # fn main() -> Result<(), loggier_core::ConfigError> {
//! use loggier_core::sink::loki::{LineFormat, LokiSink};
//!
//! let sink = LokiSink::builder("http://127.0.0.1:3100")
//!     .tenant_id("team-a")
//!     .basic_auth("loki-user", "s3cret")
//!     .label("region", "eu-west-1")
//!     .line_format(LineFormat::Json)
//!     .build()?;
//! assert_eq!(sink.push_url(), "http://127.0.0.1:3100/loki/api/v1/push");
//! # Ok(()) }
//! ```

mod encode;
pub mod proto;
mod query;

pub use query::{
    Direction, LokiClient, LokiClientBuilder, MatrixSeries, QueryData, QueryResponse, Sample,
    StreamEntry, StreamResult,
};

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

use self::encode::LokiEncoder;
use super::endpoint::{EndpointNames, EndpointOptions, redact_url};
use super::http_transport::HttpTransport;
use super::{BatchHint, BoxFuture, Payload, SendOutcome, Sink};
use crate::error::{ConfigError, Error};
use crate::record::{Level, Record, ServiceInfo};

/// Path of Loki's push endpoint, appended to the base URL.
pub const PUSH_PATH: &str = "/loki/api/v1/push";
/// Default longest line, bytes: 256 000, Loki's `max_line_size` default (`256KB`).
pub const DEFAULT_MAX_LINE_BYTES: usize = 256_000;
/// Default largest request body, bytes: 1 MiB.
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1024 * 1024;
/// Most labels per stream (built-in plus static): 15, Loki's
/// `max_label_names_per_series` default.
pub const MAX_LABELS: usize = 15;
/// Smallest accepted [`LokiSinkBuilder::max_line_bytes`], bytes.
pub const MIN_LINE_BYTES: usize = 256;
/// Room a request keeps beyond the longest line, bytes: `max_request_bytes` must be at
/// least `max_line_bytes` plus this, so one entry with its labels and metadata fits.
pub const REQUEST_HEADROOM_BYTES: usize = 4096;
/// Context keys sent as structured metadata by default.
pub const DEFAULT_METADATA_FIELDS: [&str; 2] = ["msg_id", "user_id"];
/// Labels every stream carries.
pub const BUILTIN_LABELS: [&str; 3] = ["environment", "level", "service"];
/// Structured-metadata keys filled from the record's typed fields.
pub const BUILTIN_METADATA: [&str; 4] = ["request_id", "trace_id", "span_id", "route"];

const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
const CONTENT_TYPE_JSON: &str = "application/json";
const TENANT_HEADER: &str = "x-scope-orgid";

/// What goes in a Loki line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LineFormat {
    /// The record as Loggier JSON (default); query with `| json`.
    #[default]
    Json,
    /// The record as logfmt/TSKV; query with `| logfmt`.
    Logfmt,
}

impl FromStr for LineFormat {
    type Err = ConfigError;

    /// `json` or `logfmt`, case-insensitively.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for setting `LOKI_LINE_FORMAT`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LineFormat::Json),
            "logfmt" => Ok(LineFormat::Logfmt),
            _ => Err(ConfigError::invalid(
                "LOKI_LINE_FORMAT",
                s,
                "expected json or logfmt",
            )),
        }
    }
}

/// Body format of a push request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PushFormat {
    /// Snappy-compressed `logproto.PushRequest`, `application/x-protobuf` (default).
    #[default]
    Protobuf,
    /// Loki's JSON push body, `application/json`.
    Json,
}

impl FromStr for PushFormat {
    type Err = ConfigError;

    /// `protobuf` (or `proto`) or `json`, case-insensitively.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for setting `LOKI_PUSH_FORMAT`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "protobuf" | "proto" => Ok(PushFormat::Protobuf),
            "json" => Ok(PushFormat::Json),
            _ => Err(ConfigError::invalid(
                "LOKI_PUSH_FORMAT",
                s,
                "expected protobuf or json",
            )),
        }
    }
}

/// Setting names of the Loki sink and query client in [`ConfigError`]s.
const NAMES: EndpointNames = EndpointNames {
    url: "loki_url",
    auth: "loki_auth",
    tenant: "loki_tenant_id",
    tenant_header: Some(TENANT_HEADER),
    headers: "loki_headers",
};

/// Reads `LOKI_URL`, `LOKI_TENANT_ID`, `LOKI_USERNAME`/`LOKI_PASSWORD`,
/// `LOKI_BEARER_TOKEN` and `LOKI_TIMEOUT_MS` into endpoint options.
fn endpoint_from_env(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<EndpointOptions, ConfigError> {
    let var = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
    let url = var("LOKI_URL").ok_or_else(|| {
        ConfigError::missing(
            "LOKI_URL",
            "set it to Loki's base URL, e.g. http://loki:3100",
        )
    })?;
    let mut ep = EndpointOptions::new(url);
    if let Some(t) = var("LOKI_TENANT_ID") {
        ep = ep.tenant(t);
    }
    let user = var("LOKI_USERNAME");
    let password = var("LOKI_PASSWORD");
    let token = var("LOKI_BEARER_TOKEN");
    ep = match (user, password, token) {
        (None, None, None) => ep,
        (None, None, Some(t)) => ep.bearer_token(t),
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            return Err(ConfigError::invalid(
                "LOKI_BEARER_TOKEN",
                "[FILTERED]",
                "set either LOKI_BEARER_TOKEN or LOKI_USERNAME/LOKI_PASSWORD, not both",
            ));
        }
        (Some(user), Some(password), None) => ep.basic_auth(user, password),
        (Some(_), None, None) => {
            return Err(ConfigError::missing(
                "LOKI_PASSWORD",
                "LOKI_USERNAME is set; basic auth needs both",
            ));
        }
        (None, Some(_), None) => {
            return Err(ConfigError::missing(
                "LOKI_USERNAME",
                "LOKI_PASSWORD is set; basic auth needs both",
            ));
        }
    };
    if let Some(ms) = var("LOKI_TIMEOUT_MS") {
        let n: u64 = ms.trim().parse().map_err(|_| {
            ConfigError::invalid("LOKI_TIMEOUT_MS", &ms, "expected milliseconds, e.g. 5000")
        })?;
        ep = ep.timeout(Duration::from_millis(n));
    }
    Ok(ep)
}

/// Validates the URL, tenant and credentials of `ep`; returns the base URL (no
/// trailing `/`), the fixed headers and the timeout.
fn resolve(
    ep: &EndpointOptions,
    multi_tenant: bool,
) -> Result<(String, HeaderMap, Duration), ConfigError> {
    if let Some(t) = ep.tenant_id() {
        validate_tenant(t, multi_tenant)?;
    }
    let r = ep.resolve(&NAMES)?;
    let base = base_url(&r.url, ep.url())?;
    Ok((base, r.headers, r.timeout))
}

/// Builder for [`LokiSink`]; see the [module docs](self) for the wire format.
#[derive(Debug, Clone)]
#[must_use]
pub struct LokiSinkBuilder {
    endpoint: EndpointOptions,
    labels: Vec<(String, String)>,
    metadata_fields: Vec<String>,
    label_fields: Vec<String>,
    line_format: LineFormat,
    push_format: PushFormat,
    max_line_bytes: usize,
    max_request_bytes: usize,
    name: String,
}

impl LokiSinkBuilder {
    /// Reads the `LOKI_*` environment variables listed in the [module docs](self).
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when `LOKI_URL` is unset; [`ConfigError::Invalid`]
    /// naming the variable for an unparsable value, or for basic auth and a bearer
    /// token set together. The URL, labels and limits are checked by
    /// [`LokiSinkBuilder::build`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// Like [`LokiSinkBuilder::from_env`] with `lookup` in place of the process
    /// environment (for tests and layered configuration). Empty values count as unset.
    ///
    /// # Errors
    /// As [`LokiSinkBuilder::from_env`].
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let endpoint = endpoint_from_env(&lookup)?;
        let var = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let mut b = LokiSinkBuilder::new(endpoint);
        if let Some(spec) = var("LOKI_LABELS") {
            for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').ok_or_else(|| {
                    ConfigError::invalid(
                        "LOKI_LABELS",
                        pair,
                        "expected name=value pairs separated by ','",
                    )
                })?;
                b = b.label(k.trim(), v.trim());
            }
        }
        if let Some(spec) = var("LOKI_METADATA_FIELDS") {
            b = b.metadata_fields(
                spec.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(String::from),
            );
        }
        if let Some(v) = var("LOKI_LINE_FORMAT") {
            b = b.line_format(v.parse()?);
        }
        if let Some(v) = var("LOKI_PUSH_FORMAT") {
            b = b.push_format(v.parse()?);
        }
        if let Some(v) = var("LOKI_MAX_REQUEST_BYTES") {
            let n = v.trim().parse().map_err(|_| {
                ConfigError::invalid("LOKI_MAX_REQUEST_BYTES", &v, "expected a number of bytes")
            })?;
            b = b.max_request_bytes(n);
        }
        Ok(b)
    }

    /// The sink named `loki` in the client's `sinks` setting (`LOGGIER_SINKS=loki`):
    /// [`LokiSinkBuilder::from_env`] with `http_timeout` unless `LOKI_TIMEOUT_MS` is set.
    pub(crate) fn from_env_for_client(http_timeout: Duration) -> Result<LokiSink, ConfigError> {
        let mut b = Self::from_env()?;
        if std::env::var("LOKI_TIMEOUT_MS").map_or(true, |v| v.trim().is_empty()) {
            b = b.timeout(http_timeout);
        }
        b.build()
    }

    fn new(endpoint: EndpointOptions) -> Self {
        LokiSinkBuilder {
            endpoint,
            labels: Vec::new(),
            metadata_fields: DEFAULT_METADATA_FIELDS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            label_fields: Vec::new(),
            line_format: LineFormat::Json,
            push_format: PushFormat::Protobuf,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            name: "loki".to_string(),
        }
    }

    /// `X-Scope-OrgID` tenant for multi-tenant Loki. Up to 150 characters from
    /// `A-Z a-z 0-9 ! - _ . * ' ( )` (Loki's tenant id rules). Default: none.
    pub fn tenant_id(mut self, tenant: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.tenant(tenant);
        self
    }

    /// HTTP basic auth (`Authorization: Basic …`), as Grafana Cloud and most
    /// reverse proxies in front of Loki expect. Replaces a bearer token.
    ///
    /// # Security
    /// The password is kept in memory and sent on every request; it never appears in
    /// `Debug` output.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.basic_auth(user, password);
        self
    }

    /// `Authorization: Bearer <token>`. Replaces basic auth.
    ///
    /// # Security
    /// As for [`LokiSinkBuilder::basic_auth`].
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.bearer_token(token);
        self
    }

    /// Per-request timeout (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.endpoint = self.endpoint.timeout(timeout);
        self
    }

    /// Adds a header sent on every request (e.g. for a proxy in front of Loki); its
    /// value is treated as a secret. See [`EndpointOptions::header`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.header(name, value);
        self
    }

    /// Replaces URL, credentials, timeout, tenant and extra headers at once with
    /// `options` (the type every network sink builder shares).
    pub fn endpoint(mut self, options: EndpointOptions) -> Self {
        self.endpoint = options;
        self
    }

    /// Adds a static label on every stream, e.g. `region="eu-west-1"`. Names follow
    /// Loki's rule `[a-zA-Z_][a-zA-Z0-9_]*` (no leading `__`, which Loki reserves) and
    /// may not be a built-in label ([`BUILTIN_LABELS`]) or a structured-metadata key.
    /// Setting a name twice keeps the last value.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.labels.retain(|(n, _)| *n != name);
        self.labels.push((name, value.into()));
        self
    }

    /// Context keys whose scalar values are sent as structured metadata (after the
    /// built-in [`BUILTIN_METADATA`]). Replaces the default [`DEFAULT_METADATA_FIELDS`];
    /// names follow the label-name rule.
    pub fn metadata_fields<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.metadata_fields = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Context keys whose scalar value becomes a label of the record's stream, for
    /// relays that forward records of many services: a record whose context has
    /// `service` = `"app"` gets the label `service="app"` instead of the client's own
    /// service name; a key that is not a built-in label (e.g. `component`) is added
    /// when the record has it and left out otherwise. Values longer than 2048 bytes
    /// are cut. Default: none.
    ///
    /// # Cardinality
    /// Every distinct value is a new Loki stream: name only low-cardinality keys
    /// (service, component), never ids. Names follow the label-name rule and may not
    /// be structured-metadata keys; together with the built-in and static labels at
    /// most [`MAX_LABELS`].
    pub fn label_fields<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.label_fields = keys.into_iter().map(Into::into).collect();
        self
    }

    /// Line body format (default [`LineFormat::Json`]).
    pub fn line_format(mut self, format: LineFormat) -> Self {
        self.line_format = format;
        self
    }

    /// Request body format (default [`PushFormat::Protobuf`]).
    pub fn push_format(mut self, format: PushFormat) -> Self {
        self.push_format = format;
        self
    }

    /// Longest line, bytes (default [`DEFAULT_MAX_LINE_BYTES`]); longer lines are
    /// truncated with a marker. At least [`MIN_LINE_BYTES`].
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }

    /// Largest request body, bytes (default [`DEFAULT_MAX_REQUEST_BYTES`]); a batch is
    /// split into several requests to stay under it. At least `max_line_bytes` +
    /// [`REQUEST_HEADROOM_BYTES`].
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// Sink name in stats and the disk-queue namespace (default `"loki"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Validates the settings and creates the HTTP client.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for: a URL that is not `http(s)://host…`
    /// (`loki_url`); a bad tenant id (`loki_tenant_id`); unusable credentials
    /// (`loki_auth`); a bad label name, a label colliding with a built-in label or
    /// metadata key, an empty label value, or more than [`MAX_LABELS`] labels
    /// (`loki_label`); a bad metadata key (`loki_metadata_fields`); limits out of
    /// range (`loki_max_line_bytes`, `loki_max_request_bytes`); a bad extra header
    /// (`loki_headers`); a zero timeout (`http_timeout`).
    pub fn build(self) -> Result<LokiSink, ConfigError> {
        let (base, headers, timeout) = resolve(&self.endpoint, false)?;
        let mut metadata_fields: Vec<String> = Vec::new();
        for key in self.metadata_fields {
            validate_label_name(&key, "loki_metadata_fields")?;
            if !metadata_fields.contains(&key) && !BUILTIN_METADATA.contains(&key.as_str()) {
                metadata_fields.push(key);
            }
        }
        let mut labels = self.labels;
        for (name, value) in &labels {
            validate_label_name(name, "loki_label")?;
            if BUILTIN_LABELS.contains(&name.as_str()) {
                return Err(ConfigError::invalid(
                    "loki_label",
                    name,
                    "is a built-in label set from the client's service info and record level",
                ));
            }
            if BUILTIN_METADATA.contains(&name.as_str()) || metadata_fields.contains(name) {
                return Err(ConfigError::invalid(
                    "loki_label",
                    name,
                    "is sent as structured metadata; per-request values must not become labels",
                ));
            }
            if value.is_empty() {
                return Err(ConfigError::invalid(
                    "loki_label",
                    name,
                    "label value is empty",
                ));
            }
            if value.len() > encode::MAX_LABEL_VALUE_BYTES {
                return Err(ConfigError::invalid(
                    "loki_label",
                    name,
                    format!(
                        "label value is {} bytes, Loki accepts at most {}",
                        value.len(),
                        encode::MAX_LABEL_VALUE_BYTES
                    ),
                ));
            }
        }
        if labels.len() + BUILTIN_LABELS.len() > MAX_LABELS {
            return Err(ConfigError::invalid(
                "loki_label",
                labels.len(),
                format!(
                    "at most {} static labels (Loki allows {MAX_LABELS} per stream, {} are built in)",
                    MAX_LABELS - BUILTIN_LABELS.len(),
                    BUILTIN_LABELS.len()
                ),
            ));
        }
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let mut label_fields: Vec<String> = Vec::new();
        for key in self.label_fields {
            validate_label_name(&key, "loki_label_fields")?;
            if BUILTIN_METADATA.contains(&key.as_str())
                || metadata_fields.contains(&key)
                || labels.iter().any(|(n, _)| *n == key)
            {
                return Err(ConfigError::invalid(
                    "loki_label_fields",
                    &key,
                    "is already a static label or a structured-metadata key",
                ));
            }
            if !label_fields.contains(&key) {
                label_fields.push(key);
            }
        }
        let extra = label_fields
            .iter()
            .filter(|k| !BUILTIN_LABELS.contains(&k.as_str()))
            .count();
        if labels.len() + extra + BUILTIN_LABELS.len() > MAX_LABELS {
            return Err(ConfigError::invalid(
                "loki_label_fields",
                label_fields.join(","),
                format!("with the static and built-in labels more than {MAX_LABELS} labels"),
            ));
        }
        if self.max_line_bytes < MIN_LINE_BYTES {
            return Err(ConfigError::invalid(
                "loki_max_line_bytes",
                self.max_line_bytes,
                format!("must be at least {MIN_LINE_BYTES}"),
            ));
        }
        if self.max_request_bytes < self.max_line_bytes.saturating_add(REQUEST_HEADROOM_BYTES) {
            return Err(ConfigError::invalid(
                "loki_max_request_bytes",
                self.max_request_bytes,
                format!(
                    "must be at least max_line_bytes ({}) + {REQUEST_HEADROOM_BYTES}",
                    self.max_line_bytes
                ),
            ));
        }
        let transport = HttpTransport::new(timeout, headers)?;
        Ok(LokiSink {
            name: self.name,
            push_url: format!("{base}{PUSH_PATH}"),
            transport,
            encoder: LokiEncoder {
                static_labels: labels,
                metadata_fields,
                label_fields,
                line_format: self.line_format,
                push_format: self.push_format,
                max_line_bytes: self.max_line_bytes,
                max_request_bytes: self.max_request_bytes,
            },
        })
    }
}

/// Ships records to Grafana Loki's push API. See the [module docs](self).
///
/// Build it with [`LokiSink::builder`] or [`LokiSinkBuilder::from_env`] and hand it to
/// the client with `Loggier::builder().sink(sink)`. `send` must run inside a tokio
/// runtime (the Loggier worker thread provides one).
#[derive(Debug)]
pub struct LokiSink {
    name: String,
    push_url: String,
    transport: HttpTransport,
    encoder: LokiEncoder,
}

impl LokiSink {
    /// A builder pushing to the Loki at `url` (`http://loki:3100`; a trailing
    /// `/loki/api/v1/push` is accepted). Defaults: no tenant, no auth, 5 s timeout,
    /// JSON lines, protobuf+snappy bodies, 256 000-byte lines, 1 MiB requests.
    pub fn builder(url: impl Into<String>) -> LokiSinkBuilder {
        LokiSinkBuilder::new(EndpointOptions::new(url))
    }

    /// The full push URL, `{base}/loki/api/v1/push`.
    pub fn push_url(&self) -> &str {
        &self.push_url
    }

    /// Every label name a stream of this sink can carry, sorted: the built-in labels
    /// ([`BUILTIN_LABELS`]), the static labels and the
    /// [label fields](LokiSinkBuilder::label_fields). A LogQL stream selector on any
    /// other name matches nothing this sink pushed.
    pub fn label_names(&self) -> Vec<String> {
        let e = &self.encoder;
        let mut names: Vec<String> = BUILTIN_LABELS.iter().map(|s| s.to_string()).collect();
        names.extend(e.static_labels.iter().map(|(n, _)| n.clone()));
        names.extend(e.label_fields.iter().cloned());
        names.sort();
        names.dedup();
        names
    }

    /// Structured-metadata keys this sink can attach to an entry: the built-in ones
    /// ([`BUILTIN_METADATA`]) then the configured metadata fields.
    pub fn metadata_names(&self) -> Vec<String> {
        let mut names: Vec<String> = BUILTIN_METADATA.iter().map(|s| s.to_string()).collect();
        names.extend(self.encoder.metadata_fields.iter().cloned());
        names
    }

    /// The label set a record of `level` gets with `service`'s identity, sorted by
    /// name — what a stream selector must match.
    pub fn labels_for(&self, level: Level, service: &ServiceInfo) -> Vec<(String, String)> {
        self.encoder.labels(level, service)
    }
}

impl Sink for LokiSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn encode(
        &mut self,
        records: &[Arc<Record>],
        service: &ServiceInfo,
    ) -> Result<Vec<Payload>, Error> {
        self.encoder.encode(records, service)
    }

    fn send<'a>(&'a mut self, payload: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        let content_type = content_type_of(payload);
        Box::pin(async move {
            self.transport
                .post(
                    &self.push_url,
                    payload,
                    &[(CONTENT_TYPE, HeaderValue::from_static(content_type))],
                )
                .await
        })
    }

    fn send_detached(&self, payload: &Payload) -> Option<BoxFuture<'static, SendOutcome>> {
        let content_type = content_type_of(payload);
        let transport = self.transport.clone();
        let url = self.push_url.clone();
        let payload = payload.clone();
        Some(Box::pin(async move {
            transport
                .post(
                    &url,
                    &payload,
                    &[(CONTENT_TYPE, HeaderValue::from_static(content_type))],
                )
                .await
        }))
    }

    fn batch_hint(&self) -> BatchHint {
        BatchHint {
            max_bytes: Some(self.encoder.max_request_bytes),
            ..BatchHint::default()
        }
    }
}

/// The content type of a push body. It follows the bytes, not the current setting,
/// so a payload replayed from the disk queue after a configuration change is still
/// labelled right. A JSON body starts with `{"`; a snappy block never does: its first
/// byte would declare a 123-byte input and its second (0x22) is a back-reference
/// tag, which cannot open a block.
fn content_type_of(payload: &Payload) -> &'static str {
    if payload.bytes.starts_with(b"{\"") {
        CONTENT_TYPE_JSON
    } else {
        CONTENT_TYPE_PROTOBUF
    }
}

/// `http(s)://host[:port][/prefix]` without a trailing `/` or `/loki/api/v1/push`,
/// from an already checked URL (`raw` is the URL as given, for errors).
fn base_url(url: &reqwest::Url, raw: &str) -> Result<String, ConfigError> {
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::invalid(
            "loki_url",
            redact_url(raw),
            "must not have a query string or fragment",
        ));
    }
    let mut base = url.as_str().trim_end_matches('/').to_string();
    if let Some(stripped) = base.strip_suffix(PUSH_PATH) {
        base = stripped.trim_end_matches('/').to_string();
    }
    Ok(base)
}

/// [`base_url`] of a URL given as text, checked like the sink's `build` does.
#[cfg(test)]
fn parse_base_url(raw: &str) -> Result<String, ConfigError> {
    resolve(&EndpointOptions::new(raw), false).map(|(base, _, _)| base)
}

/// Loki's label-name rule `[a-zA-Z_][a-zA-Z0-9_]*`, at most 1024 bytes
/// (`max_label_name_length`), no leading `__` (reserved for internal labels).
fn validate_label_name(name: &str, setting: &'static str) -> Result<(), ConfigError> {
    let mut chars = name.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        _ => false,
    };
    if !ok {
        return Err(ConfigError::invalid(
            setting,
            name,
            "names must match [a-zA-Z_][a-zA-Z0-9_]*",
        ));
    }
    if name.starts_with("__") {
        return Err(ConfigError::invalid(
            setting,
            name,
            "names starting with __ are reserved by Loki",
        ));
    }
    if name.len() > 1024 {
        return Err(ConfigError::invalid(
            setting,
            name,
            "longer than 1024 bytes",
        ));
    }
    Ok(())
}

/// Loki tenant ids: 1–150 characters of `A-Z a-z 0-9 ! - _ . * ' ( )`, not `.` or
/// `..`. Queries may name several tenants separated by `|`.
fn validate_tenant(tenant: &str, multi: bool) -> Result<(), ConfigError> {
    let parts: Vec<&str> = if multi {
        tenant.split('|').collect()
    } else {
        vec![tenant]
    };
    for t in parts {
        let bad_char = t
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "!-_.*'()".contains(*c)));
        let reason = if t.is_empty() {
            Some("tenant id is empty".to_string())
        } else if t.len() > 150 {
            Some("tenant id is longer than 150 characters".to_string())
        } else if t == "." || t == ".." {
            Some("tenant id cannot be '.' or '..'".to_string())
        } else {
            bad_char.map(|c| format!("character {c:?} is not allowed in a tenant id"))
        };
        if let Some(reason) = reason {
            return Err(ConfigError::invalid("loki_tenant_id", tenant, reason));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_accepts_push_suffix_and_rejects_junk() {
        assert_eq!(
            parse_base_url("http://loki:3100").ok().as_deref(),
            Some("http://loki:3100")
        );
        assert_eq!(
            parse_base_url("http://loki:3100/loki/api/v1/push")
                .ok()
                .as_deref(),
            Some("http://loki:3100")
        );
        assert_eq!(
            parse_base_url("https://gw.example/loki-proxy/")
                .ok()
                .as_deref(),
            Some("https://gw.example/loki-proxy")
        );
        for bad in ["loki:3100", "ftp://loki", "http://loki/?x=1", ""] {
            let err = parse_base_url(bad).expect_err(bad);
            assert_eq!(err.setting(), "loki_url");
        }
    }

    #[test]
    fn label_names_follow_loki_rules() {
        for good in ["team", "_x", "Region_2"] {
            assert!(validate_label_name(good, "l").is_ok(), "{good}");
        }
        for bad in ["", "2x", "a-b", "a.b", "__name__", "é"] {
            assert!(validate_label_name(bad, "l").is_err(), "{bad}");
        }
    }

    #[test]
    fn tenant_rules() {
        assert!(validate_tenant("team-a_1.(x)", false).is_ok());
        assert!(validate_tenant("a|b", false).is_err());
        assert!(validate_tenant("a|b", true).is_ok());
        assert!(validate_tenant("..", false).is_err());
        assert!(validate_tenant(&"x".repeat(151), false).is_err());
        assert!(validate_tenant("a b", false).is_err());
    }
}
