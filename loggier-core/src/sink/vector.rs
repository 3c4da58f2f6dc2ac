//! Vector: NDJSON `POST`s to Vector's
//! [`http_server` source](https://vector.dev/docs/reference/configuration/sources/http_server/).
//!
//! # Line shape
//! Each record is one JSON object on its own line (the LogSend format of seeds/002,
//! extended with the Loggier record parts). Keys, in this order:
//!
//! | key | value | when |
//! |---|---|---|
//! | `timestamp` | RFC 3339 UTC, microseconds: `"2024-01-15T10:30:00.123456Z"` | always |
//! | `level` | `"TRACE"` … `"CRITICAL"` (`"WARNING"`, not `"WARN"`) | always |
//! | `level_num` | Python `logging` number: 5, 10, 20, 30, 40, 50 | always |
//! | `message` | the message | always |
//! | `project` | the sink's [`VectorSinkBuilder::project`] | always |
//! | `table` | the sink's [`VectorSinkBuilder::table`] | always |
//! | `logger` | logger / target name | always |
//! | `service`, `environment` | the client's service identity | always |
//! | `version`, `revision`, `host` | the client's service identity | when set |
//! | `tags` | array of strings | when non-empty |
//! | `request_id`, `trace_id`, `span_id` | strings | when set |
//! | `extra` | the record's (masked) context fields, an object | always (`{}` when empty) |
//! | `exception` | `{type, message, chain, stacktrace, frames}` | error records |
//! | `transaction` | `{request, response, duration_ms}` as in the Loggier format | HTTP records |
//! | `timing` | `{name, kind, duration_ms, threshold_ms}` | timings |
//! | static fields | [`VectorSinkBuilder::field`] values, top level (LogSend's `extra_fields`) | always |
//!
//! Example line (one line on the wire, wrapped here):
//!
//! ```json
//! {"timestamp":"2024-01-15T10:30:00.123000Z","level":"INFO","level_num":20,
//!  "message":"User logged in","project":"my-project","table":"application_logs",
//!  "logger":"app","service":"api","environment":"production","version":"1.0.0",
//!  "extra":{"user_id":123,"ip":"192.168.1.1"}}
//! ```
//!
//! # Matching Vector configuration
//!
//! ```toml
//! [sources.loggier]
//! type = "http_server"
//! address = "0.0.0.0:8080"
//! path = "/"                            # the path of the URL given to the sink
//! method = "POST"
//! decoding.codec = "json"               # one event per JSON object
//! framing.method = "newline_delimited"  # one object per line
//! # Optional, matches VectorSinkBuilder::basic_auth:
//! # auth.username = "loggier"
//! # auth.password = "${LOGGIER_VECTOR_PASSWORD}"
//!
//! [sinks.by_table]
//! type = "console"
//! inputs = ["loggier"]
//! encoding.codec = "json"
//! ```
//!
//! Route by the `project` / `table` fields downstream (e.g. a `clickhouse` sink with
//! `table = "{{ table }}"`).
//!
//! # Delivery
//! A batch is one request, `Content-Type: application/x-ndjson`. Status handling is
//! [`HttpTransport`]'s: 2xx delivered (Vector answers 200 by default, see its
//! `response_code`); 408, 429, 5xx and network errors retried by the pipeline; other
//! statuses — Vector answers 400 when a line does not decode, 401 on bad credentials —
//! reject the payload with Vector's message.
//!
//! # Environment
//! [`VectorSinkBuilder::from_env`] reads `VECTOR_URL`, `VECTOR_PROJECT`,
//! `VECTOR_TABLE` (all required by `build`), `VECTOR_USERNAME`/`VECTOR_PASSWORD`
//! (basic auth) and `VECTOR_TIMEOUT_MS`.
//!
//! # Example
//! ```
//! # fn main() -> Result<(), loggier_core::ConfigError> {
//! use loggier_core::VectorSink;
//!
//! let sink = VectorSink::builder("http://127.0.0.1:8080/")
//!     .project("my-project")
//!     .table("application_logs")
//!     .field("region", "eu-west-1")
//!     .build()?;
//! assert_eq!(sink.url(), "http://127.0.0.1:8080/");
//! # Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use serde::ser::{SerializeMap, Serializer};

use super::endpoint::{EndpointNames, EndpointOptions};
use super::http_transport::HttpTransport;
use super::{BoxFuture, Payload, SendOutcome, Sink};
use crate::error::{ConfigError, Error, ErrorKind};
use crate::record::{Fields, Record, ServiceInfo, format_timestamp};

/// Keys the line format sets itself; a static field cannot use them.
pub const RESERVED_KEYS: [&str; 20] = [
    "timestamp",
    "level",
    "level_num",
    "message",
    "project",
    "table",
    "logger",
    "service",
    "environment",
    "version",
    "revision",
    "host",
    "tags",
    "request_id",
    "trace_id",
    "span_id",
    "extra",
    "exception",
    "transaction",
    "timing",
];

const CONTENT_TYPE_NDJSON: &str = "application/x-ndjson";

/// Setting names of the Vector sink in [`ConfigError`]s.
const NAMES: EndpointNames = EndpointNames {
    url: "vector_url",
    auth: "vector_auth",
    tenant: "vector_tenant",
    tenant_header: None,
    headers: "vector_headers",
};

/// Builder for [`VectorSink`].
#[derive(Debug, Clone)]
#[must_use]
pub struct VectorSinkBuilder {
    endpoint: EndpointOptions,
    project: Option<String>,
    table: Option<String>,
    fields: Fields,
    name: String,
}

impl VectorSinkBuilder {
    /// Reads `VECTOR_URL` (required), `VECTOR_PROJECT`, `VECTOR_TABLE`,
    /// `VECTOR_USERNAME`/`VECTOR_PASSWORD` and `VECTOR_TIMEOUT_MS`.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] when `VECTOR_URL` is unset, or when only one of
    /// `VECTOR_USERNAME`/`VECTOR_PASSWORD` is; [`ConfigError::Invalid`] for a
    /// non-numeric `VECTOR_TIMEOUT_MS`. Project and table are checked by `build`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// Like [`VectorSinkBuilder::from_env`] with `lookup` in place of the process
    /// environment. Empty values count as unset.
    ///
    /// # Errors
    /// As [`VectorSinkBuilder::from_env`].
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let url = var("VECTOR_URL").ok_or_else(|| {
            ConfigError::missing(
                "VECTOR_URL",
                "set it to the URL of Vector's http_server source, e.g. http://vector:8080/",
            )
        })?;
        let mut b = VectorSink::builder(url);
        b.project = var("VECTOR_PROJECT");
        b.table = var("VECTOR_TABLE");
        match (var("VECTOR_USERNAME"), var("VECTOR_PASSWORD")) {
            (Some(user), Some(password)) => b = b.basic_auth(user, password),
            (None, None) => {}
            (Some(_), None) => {
                return Err(ConfigError::missing(
                    "VECTOR_PASSWORD",
                    "VECTOR_USERNAME is set; basic auth needs both",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::missing(
                    "VECTOR_USERNAME",
                    "VECTOR_PASSWORD is set; basic auth needs both",
                ));
            }
        }
        if let Some(ms) = var("VECTOR_TIMEOUT_MS") {
            let n: u64 = ms.trim().parse().map_err(|_| {
                ConfigError::invalid("VECTOR_TIMEOUT_MS", &ms, "expected milliseconds, e.g. 5000")
            })?;
            b = b.timeout(Duration::from_millis(n));
        }
        Ok(b)
    }

    /// The sink named `vector` in the client's `sinks` setting (`LOGGIER_SINKS=vector`):
    /// [`VectorSinkBuilder::from_env`] with `http_timeout` unless `VECTOR_TIMEOUT_MS` is
    /// set.
    pub(crate) fn from_env_for_client(http_timeout: Duration) -> Result<VectorSink, ConfigError> {
        let mut b = Self::from_env()?;
        if std::env::var("VECTOR_TIMEOUT_MS").map_or(true, |v| v.trim().is_empty()) {
            b = b.timeout(http_timeout);
        }
        b.build()
    }

    /// Project name written to every line (required, as in LogSend).
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Table name written to every line (required, as in LogSend).
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// Adds a static top-level field to every line (LogSend's `extra_fields`), e.g.
    /// `("region", "eu")`. The key cannot be one of [`RESERVED_KEYS`]. Setting a key
    /// twice keeps the last value.
    pub fn field(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.fields.insert(key.into(), value.into());
        self
    }

    /// HTTP basic auth, matching the source's `auth.username` / `auth.password`.
    ///
    /// # Security
    /// The password never appears in `Debug` output.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.basic_auth(user, password);
        self
    }

    /// `Authorization: Bearer <token>` (for a proxy in front of Vector, or a custom
    /// auth strategy). Replaces basic auth.
    ///
    /// # Security
    /// The token never appears in `Debug` output.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.bearer_token(token);
        self
    }

    /// Per-request timeout (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.endpoint = self.endpoint.timeout(timeout);
        self
    }

    /// Adds a header sent on every request (e.g. for a proxy in front of Vector); its
    /// value is treated as a secret. See [`EndpointOptions::header`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.header(name, value);
        self
    }

    /// Replaces URL, credentials, timeout and extra headers at once with `options`
    /// (the type every network sink builder shares). A tenant is refused by `build`:
    /// Vector's `http_server` source has no tenant header.
    pub fn endpoint(mut self, options: EndpointOptions) -> Self {
        self.endpoint = options;
        self
    }

    /// Sink name in stats and the disk-queue namespace (default `"vector"`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Validates the settings and creates the HTTP client.
    ///
    /// # Errors
    /// [`ConfigError::Missing`] for `vector_project` or `vector_table` when unset or
    /// blank; [`ConfigError::Invalid`] for a URL that is not `http(s)://host…`
    /// (`vector_url`), a static field using a reserved key (`vector_field`),
    /// unusable credentials (`vector_auth`), a bad extra header (`vector_headers`), a
    /// tenant (`vector_tenant`: Vector has no tenant header) or a zero timeout
    /// (`http_timeout`).
    pub fn build(self) -> Result<VectorSink, ConfigError> {
        let resolved = self.endpoint.resolve(&NAMES)?;
        let project = self
            .project
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| {
                ConfigError::missing("vector_project", "every line carries a project name")
            })?;
        let table = self.table.filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            ConfigError::missing("vector_table", "every line carries a table name")
        })?;
        if let Some(key) = self
            .fields
            .keys()
            .find(|k| RESERVED_KEYS.contains(&k.as_str()))
        {
            return Err(ConfigError::invalid(
                "vector_field",
                key,
                "this key is part of the line format",
            ));
        }
        let mut headers = resolved.headers;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE_NDJSON));
        let transport = HttpTransport::new(resolved.timeout, headers)?;
        Ok(VectorSink {
            url: resolved.url.to_string(),
            project,
            table,
            fields: self.fields,
            transport,
            name: self.name,
        })
    }
}

/// Sends records as NDJSON to a Vector `http_server` source. See the
/// [module docs](self) for the line shape and the Vector configuration.
///
/// `send` must run inside a tokio runtime (the Loggier worker thread provides one).
#[derive(Debug)]
pub struct VectorSink {
    url: String,
    project: String,
    table: String,
    fields: Fields,
    transport: HttpTransport,
    name: String,
}

impl VectorSink {
    /// A builder posting to `url`, the full URL of the `http_server` source
    /// (`http://vector:8080/`; its path must match the source's `path`, default `/`).
    /// Defaults: no auth, 5 s timeout, no static fields; project and table must be set.
    pub fn builder(url: impl Into<String>) -> VectorSinkBuilder {
        VectorSinkBuilder {
            endpoint: EndpointOptions::new(url),
            project: None,
            table: None,
            fields: Fields::new(),
            name: "vector".to_string(),
        }
    }

    /// The URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Appends one line for `record` (see the [module docs](self)), ending in `\n`.
    ///
    /// # Errors
    /// Only if serialization fails, which JSON values never do.
    pub fn encode_line(
        &self,
        record: &Record,
        service: &ServiceInfo,
        out: &mut Vec<u8>,
    ) -> serde_json::Result<()> {
        serde_json::to_writer(
            &mut *out,
            &VectorLine {
                r: record,
                svc: service,
                project: &self.project,
                table: &self.table,
                fields: &self.fields,
            },
        )?;
        out.push(b'\n');
        Ok(())
    }
}

impl Sink for VectorSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn encode(
        &mut self,
        records: &[Arc<Record>],
        service: &ServiceInfo,
    ) -> Result<Vec<Payload>, Error> {
        let mut out = Vec::with_capacity(records.len() * 256);
        for r in records {
            self.encode_line(r, service, &mut out)
                .map_err(|e| Error::with_source(ErrorKind::Encode, "json encoding failed", e))?;
        }
        Ok(vec![Payload::new(
            out,
            u32::try_from(records.len()).unwrap_or(u32::MAX),
        )])
    }

    fn send<'a>(&'a mut self, payload: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        Box::pin(async move { self.transport.post(&self.url, payload, &[]).await })
    }

    fn send_detached(&self, payload: &Payload) -> Option<BoxFuture<'static, SendOutcome>> {
        let transport = self.transport.clone();
        let url = self.url.clone();
        let payload = payload.clone();
        Some(Box::pin(async move {
            transport.post(&url, &payload, &[]).await
        }))
    }
}

struct VectorLine<'a> {
    r: &'a Record,
    svc: &'a ServiceInfo,
    project: &'a str,
    table: &'a str,
    fields: &'a Fields,
}

impl serde::Serialize for VectorLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.r;
        let svc = self.svc;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("timestamp", &format_timestamp(r.timestamp_ns))?;
        m.serialize_entry("level", &r.level)?;
        m.serialize_entry("level_num", &r.level.python_level_num())?;
        m.serialize_entry("message", &r.message)?;
        m.serialize_entry("project", self.project)?;
        m.serialize_entry("table", self.table)?;
        m.serialize_entry("logger", &r.logger)?;
        m.serialize_entry("service", &svc.service)?;
        m.serialize_entry("environment", &svc.environment)?;
        for (k, v) in [
            ("version", &svc.version),
            ("revision", &svc.revision),
            ("host", &svc.host),
        ] {
            if let Some(v) = v {
                m.serialize_entry(k, v)?;
            }
        }
        if !r.tags.is_empty() {
            m.serialize_entry("tags", &r.tags)?;
        }
        for (k, v) in [
            ("request_id", &r.request_id),
            ("trace_id", &r.trace_id),
            ("span_id", &r.span_id),
        ] {
            if let Some(v) = v {
                m.serialize_entry(k, v)?;
            }
        }
        m.serialize_entry("extra", &r.context)?;
        if let Some(e) = &r.exception {
            m.serialize_entry("exception", e)?;
        }
        if let Some(h) = &r.http {
            m.serialize_entry("transaction", h)?;
        }
        if let Some(t) = &r.timing {
            m.serialize_entry("timing", t)?;
        }
        for (k, v) in self.fields {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Level;

    fn builder() -> VectorSinkBuilder {
        VectorSink::builder("http://127.0.0.1:9/")
            .project("p")
            .table("t")
    }

    #[test]
    fn project_and_table_are_required() {
        let err = VectorSink::builder("http://127.0.0.1:9/")
            .table("t")
            .build()
            .expect_err("no project");
        assert_eq!(err.setting(), "vector_project");
        let err = VectorSink::builder("http://127.0.0.1:9/")
            .project("p")
            .table("  ")
            .build()
            .expect_err("blank table");
        assert_eq!(err.setting(), "vector_table");
        let err = builder().field("level", 1).build().expect_err("reserved");
        assert_eq!(err.setting(), "vector_field");
        let err = VectorSink::builder("vector:8080")
            .project("p")
            .table("t")
            .build()
            .expect_err("bad url");
        assert_eq!(err.setting(), "vector_url");
    }

    #[test]
    fn line_has_seed_keys_in_order() {
        let sink = builder().field("region", "eu").build().expect("valid");
        let r = Record::new(Level::Warning, "High memory usage").with_field("memory_percent", 85);
        let svc = ServiceInfo {
            service: "api".into(),
            environment: "production".into(),
            version: Some("1.0.0".into()),
            ..ServiceInfo::default()
        };
        let mut out = Vec::new();
        sink.encode_line(&r, &svc, &mut out).expect("encodes");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.ends_with("}\n"));
        assert!(text.starts_with(r#"{"timestamp":""#), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "timestamp",
                "level",
                "level_num",
                "message",
                "project",
                "table",
                "logger",
                "service",
                "environment",
                "version",
                "extra",
                "region"
            ]
        );
        assert_eq!(v["level"], "WARNING");
        assert_eq!(v["level_num"], 30);
        assert_eq!(v["extra"]["memory_percent"], 85);
    }

    #[test]
    fn env_lookup() {
        let env = |k: &str| match k {
            "VECTOR_URL" => Some("http://127.0.0.1:9/ingest".to_string()),
            "VECTOR_PROJECT" => Some("p".to_string()),
            "VECTOR_TABLE" => Some("t".to_string()),
            "VECTOR_USERNAME" => Some("u".to_string()),
            _ => None,
        };
        let err = VectorSinkBuilder::from_env_with(env).expect_err("password missing");
        assert_eq!(err.setting(), "VECTOR_PASSWORD");
        let sink =
            VectorSinkBuilder::from_env_with(
                |k| {
                    if k == "VECTOR_USERNAME" { None } else { env(k) }
                },
            )
            .expect("env")
            .build()
            .expect("valid");
        assert_eq!(sink.url(), "http://127.0.0.1:9/ingest");
        let err = VectorSinkBuilder::from_env_with(|_| None).expect_err("no url");
        assert_eq!(err.setting(), "VECTOR_URL");
    }
}
