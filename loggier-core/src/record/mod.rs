//! The record model: what one log event, transaction or timing is.
//!
//! A [`Record`] is built on the caller's thread, carried through the pipeline and
//! encoded per sink on the worker. Its JSON encoding ([`encode_json`]) follows the
//! Loggier wire format of the product notes ("Example Log Output"):
//!
//! ```json
//! {"timestamp":"2025-03-09T11:41:29.000000Z","level":"ERROR",
//!  "message":"Server error: GET /api/v1/templates/ - 500",
//!  "service":"api","environment":"production","project":"shop","version":"1.4.2",
//!  "tags":["web"],"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",
//!  "context":{"request_id":"018f…","transaction":{"request":{…},"response":{…}}}}
//! ```

mod exception;
mod fields;
mod http;
mod json;
mod level;
pub(crate) mod value;

pub use exception::{Exception, ExceptionCause, Frame};
pub use fields::{
    ContextFields, IntoIter as ContextIntoIter, Iter as ContextIter, IterMut as ContextIterMut,
};
pub use http::{
    BodyContent, CapturedBody, Headers, HeadersIter, HttpRequest, HttpResponse, HttpTransaction,
};
pub use json::{JsonRecord, encode_json, encode_json_line, format_timestamp};
// Only the line-oriented sinks and the JSON-per-record network sinks (HTTP ingest,
// Loki's JSON lines) encode with a shared service prefix.
#[cfg(any(
    feature = "file",
    feature = "stdout",
    feature = "http-ingest",
    feature = "loki"
))]
pub(crate) use json::{ServiceJson, encode_json_line_with};
pub use level::Level;

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

/// An ordered map of JSON values: the shape of global and scope fields, HTTP headers
/// and query parameters. Insertion order is kept (later keys overwrite earlier ones
/// in place). A record's own context is a [`ContextFields`].
pub type Fields = serde_json::Map<String, serde_json::Value>;

/// One log record.
///
/// Built with [`Record::new`] and the `with_*` methods, or by the logging calls of
/// [`Loggier`](crate::Loggier). Service identity (name, environment, project, version)
/// is not stored per record; sinks add it from [`ServiceInfo`] at
/// encode time.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Record {
    /// Wall-clock time of the event, nanoseconds since the Unix epoch (UTC).
    pub timestamp_ns: u64,
    /// Severity.
    pub level: Level,
    /// Human-readable message (a literal message from the logging macros is borrowed,
    /// not copied).
    pub message: Cow<'static, str>,
    /// Logger or target name (module path, `"http"` for transactions, `"panic"`).
    pub logger: Cow<'static, str>,
    /// Context fields: global ⊕ scope ⊕ call, later ones winning. Masked before
    /// encoding.
    pub context: ContextFields,
    /// Tags (global tags first, then per-call tags).
    pub tags: Vec<String>,
    /// Error details, for `exception` calls, panics and failed requests.
    pub exception: Option<Box<Exception>>,
    /// Request/response transaction captured by the HTTP middleware.
    pub http: Option<Box<HttpTransaction>>,
    /// Duration measurement of a function, outgoing HTTP call or database call.
    pub timing: Option<Timing>,
    /// W3C trace id, 32 lower-case hex characters.
    pub trace_id: Option<String>,
    /// W3C span id, 16 lower-case hex characters.
    pub span_id: Option<String>,
    /// Request id of the HTTP request this record belongs to.
    pub request_id: Option<String>,
}

impl Record {
    /// A record stamped with the current time, logger `"app"` and nothing else.
    pub fn new(level: Level, message: impl Into<String>) -> Self {
        Record {
            timestamp_ns: now_ns(),
            level,
            message: Cow::Owned(message.into()),
            logger: Cow::Borrowed("app"),
            context: ContextFields::new(),
            tags: Vec::new(),
            exception: None,
            http: None,
            timing: None,
            trace_id: None,
            span_id: None,
            request_id: None,
        }
    }

    /// Sets the logger / target name.
    #[must_use]
    pub fn with_logger(mut self, logger: impl Into<Cow<'static, str>>) -> Self {
        self.logger = logger.into();
        self
    }

    /// Adds one context field (overwrites an existing key).
    #[must_use]
    pub fn with_field(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.context.insert(key, value.into());
        self
    }

    /// Appends a tag.
    #[must_use]
    pub fn with_tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Sets the timestamp, nanoseconds since the Unix epoch.
    #[must_use]
    pub fn with_timestamp_ns(mut self, ns: u64) -> Self {
        self.timestamp_ns = ns;
        self
    }

    /// Attaches an exception.
    #[must_use]
    pub fn with_exception(mut self, exception: Exception) -> Self {
        self.exception = Some(Box::new(exception));
        self
    }

    /// Attaches an HTTP transaction.
    #[must_use]
    pub fn with_http(mut self, http: HttpTransaction) -> Self {
        self.http = Some(Box::new(http));
        self
    }

    /// Attaches a timing.
    #[must_use]
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = Some(timing);
        self
    }

    /// Rough size of the record once encoded, in bytes; used by batchers to bound
    /// batch size without encoding twice. Never less than the message length.
    pub fn estimated_size_bytes(&self) -> usize {
        // Fixed envelope (timestamp, level, identity keys) + message + context.
        let mut n = 160 + self.message.len() + self.logger.len();
        for (k, v) in &self.context {
            n += k.len() + 4 + estimate_value(v);
        }
        for t in &self.tags {
            n += t.len() + 3;
        }
        if let Some(e) = &self.exception {
            n += e.estimated_size_bytes();
        }
        if let Some(h) = &self.http {
            n += h.estimated_size_bytes();
        }
        n
    }
}

fn estimate_value(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    match v {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 12,
        Value::String(s) => s.len() + 2,
        Value::Array(a) => 2 + a.iter().map(|x| estimate_value(x) + 1).sum::<usize>(),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, v)| k.len() + 4 + estimate_value(v))
                .sum::<usize>()
        }
    }
}

/// What a [`Timing`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimingKind {
    /// A plain function call.
    Function,
    /// An outgoing HTTP call.
    Http,
    /// A database call.
    Database,
}

/// A duration measurement (`#[trace_function]`, `#[trace_http]`, `#[trace_database]`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Timing {
    /// Name of what was timed (function path by default).
    pub name: String,
    /// Kind of operation.
    pub kind: TimingKind,
    /// Measured duration, milliseconds.
    pub duration_ms: f64,
    /// Threshold that made this slow, milliseconds, when one was set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_ms: Option<f64>,
    /// This timing's id (`timing.id`): 16 lower-case hex characters, fresh per timed
    /// call, so nested timings can name it as their parent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What this timing ran inside (`timing.parent`): the `timing.id` of the enclosing
    /// timed call, else the request id of the enclosing request scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

impl Timing {
    /// A timing of `kind` named `name` that took `duration_ms` milliseconds, with no
    /// threshold, id or parent.
    pub fn new(name: impl Into<String>, kind: TimingKind, duration_ms: f64) -> Self {
        Timing {
            name: name.into(),
            kind,
            duration_ms,
            threshold_ms: None,
            id: None,
            parent: None,
        }
    }
}

/// Service identity added to every record at encode time.
///
/// Set once on the client (`service_name`, `environment`, `project_name`, `version`);
/// `host` defaults to the machine's hostname from `HOSTNAME`/`/etc/hostname`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct ServiceInfo {
    /// Service name (`service_name`), e.g. `"payment-service"`. Default `"unknown-service"`.
    pub service: String,
    /// Deployment environment, e.g. `"production"`. Default `"development"`.
    pub environment: String,
    /// Project name, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Service version, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Source revision (commit), when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// Host name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Current wall-clock time in nanoseconds since the Unix epoch (0 if the clock is
/// before 1970).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
