//! Standard-output sink: JSON lines or logfmt/TSKV, for container log scrapers.

use std::io::Write;
use std::sync::Arc;

use super::{BoxFuture, Payload, SendOutcome, Sink};
use crate::error::{Error, ErrorKind};
use crate::record::{Record, ServiceInfo, ServiceJson, encode_json_line_with, format_timestamp};

/// Line format of the [`StdoutSink`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StdoutFormat {
    /// One JSON object per line, as the file sink writes (default).
    #[default]
    Json,
    /// `key='value'` pairs (TSKV as structlog's `KeyValueRenderer` writes it, seeds/001):
    /// `timestamp='2024-01-01T12:00:00.000000Z' level='info' logger='app' event='Request completed' method='GET' status_code=200`.
    /// Strings are single-quoted with `\\`, `'`, CR and LF escaped, so a message can
    /// never start a second line; numbers and booleans are bare; nested values are JSON.
    Logfmt,
}

/// Writes records to standard output (or any writer, see [`StdoutSink::with_writer`]).
pub struct StdoutSink {
    format: StdoutFormat,
    out: Box<dyn Write + Send>,
    name: String,
}

impl std::fmt::Debug for StdoutSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdoutSink")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl StdoutSink {
    /// A sink writing `format` lines to the process's standard output.
    pub fn new(format: StdoutFormat) -> Self {
        StdoutSink::with_writer(format, Box::new(std::io::stdout()))
    }

    /// A sink writing `format` lines to `out` (standard error, a pipe, a buffer).
    pub fn with_writer(format: StdoutFormat, out: Box<dyn Write + Send>) -> Self {
        StdoutSink {
            format,
            out,
            name: "stdout".to_string(),
        }
    }

    /// Sets the sink name in stats (default `"stdout"`).
    #[must_use]
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn encode(
        &mut self,
        records: &[Arc<Record>],
        service: &ServiceInfo,
    ) -> Result<Vec<Payload>, Error> {
        let mut out = Vec::new();
        let failed = |e| Error::with_source(ErrorKind::Encode, "json encoding failed", e);
        match self.format {
            StdoutFormat::Json => {
                let service = ServiceJson::new(service).map_err(failed)?;
                for r in records {
                    encode_json_line_with(r, &service, &mut out).map_err(failed)?;
                }
            }
            StdoutFormat::Logfmt => {
                for r in records {
                    encode_logfmt_line(r, service, &mut out);
                }
            }
        }
        Ok(vec![Payload::new(out, records.len() as u32)])
    }

    fn send<'a>(&'a mut self, payload: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        let res = self
            .out
            .write_all(&payload.bytes)
            .and_then(|()| self.out.flush());
        let outcome = match res {
            Ok(()) => SendOutcome::Delivered,
            Err(e) => SendOutcome::Retry {
                reason: format!("stdout write failed: {e}"),
                retry_after: None,
            },
        };
        Box::pin(std::future::ready(outcome))
    }

    fn is_local(&self) -> bool {
        true
    }
}

/// Appends one logfmt/TSKV line for `r` (see [`StdoutFormat::Logfmt`]) ending in `\n`.
///
/// Keys: `timestamp level logger event service environment [project] [version]`,
/// then `request_id trace_id span_id`, the context fields, HTTP summary
/// (`method path route status_code duration_ms`), `exception_type exception_message`,
/// timing (`timing_name duration_ms`) and `tags`.
pub fn encode_logfmt_line(r: &Record, service: &ServiceInfo, out: &mut Vec<u8>) {
    let mut w = Kv { out, first: true };
    w.str("timestamp", &format_timestamp(r.timestamp_ns));
    w.str("level", r.level.as_lower());
    w.str("logger", &r.logger);
    w.str("event", &r.message);
    w.str("service", &service.service);
    w.str("environment", &service.environment);
    if let Some(p) = &service.project {
        w.str("project", p);
    }
    if let Some(v) = &service.version {
        w.str("version", v);
    }
    if let Some(v) = &r.request_id {
        w.str("request_id", v);
    }
    if let Some(v) = &r.trace_id {
        w.str("trace_id", v);
    }
    if let Some(v) = &r.span_id {
        w.str("span_id", v);
    }
    for (k, v) in &r.context {
        w.value(k, v);
    }
    if let Some(h) = &r.http {
        w.str("method", &h.request.method);
        w.str("path", &h.request.path);
        if let Some(route) = &h.request.route {
            w.str("route", route);
        }
        if let Some(resp) = &h.response {
            w.raw("status_code", &resp.status_code.to_string());
        }
        w.raw("duration_ms", &format!("{:.3}", h.duration_ms));
    }
    if let Some(e) = &r.exception {
        w.str("exception_type", &e.type_name);
        w.str("exception_message", &e.message);
    }
    if let Some(t) = &r.timing {
        w.str("timing_name", &t.name);
        w.raw("duration_ms", &format!("{:.3}", t.duration_ms));
    }
    if !r.tags.is_empty() {
        w.str("tags", &r.tags.join(","));
    }
    w.out.push(b'\n');
}

struct Kv<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Kv<'_> {
    fn key(&mut self, k: &str) {
        if !self.first {
            self.out.push(b' ');
        }
        self.first = false;
        // Keys come from user context: keep them to one safe token.
        for c in k.chars() {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                self.out.push(c as u8);
            } else {
                self.out.push(b'_');
            }
        }
        self.out.push(b'=');
    }

    fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.out.extend_from_slice(v.as_bytes());
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.out.push(b'\'');
        for c in v.chars() {
            match c {
                '\\' => self.out.extend_from_slice(b"\\\\"),
                '\'' => self.out.extend_from_slice(b"\\'"),
                '\n' => self.out.extend_from_slice(b"\\n"),
                '\r' => self.out.extend_from_slice(b"\\r"),
                '\t' => self.out.extend_from_slice(b"\\t"),
                c if c.is_control() => {
                    self.out
                        .extend_from_slice(format!("\\u{{{:x}}}", c as u32).as_bytes());
                }
                c => {
                    let mut buf = [0u8; 4];
                    self.out
                        .extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        self.out.push(b'\'');
    }

    fn value(&mut self, k: &str, v: &serde_json::Value) {
        use serde_json::Value;
        match v {
            Value::Number(n) => self.raw(k, &n.to_string()),
            Value::Bool(b) => self.raw(k, if *b { "True" } else { "False" }),
            Value::Null => self.raw(k, "None"),
            Value::String(s) => self.str(k, s),
            other => self.str(k, &other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Level;

    #[test]
    fn logfmt_escapes_so_a_message_cannot_forge_a_line() {
        let r = Record::new(Level::Info, "ok\nlevel='critical' event='forged'\r")
            .with_field("status_code", 200)
            .with_field("user", "o'brien");
        let svc = ServiceInfo {
            service: "svc".into(),
            environment: "dev".into(),
            ..ServiceInfo::default()
        };
        let mut out = Vec::new();
        encode_logfmt_line(&r, &svc, &mut out);
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.matches('\n').count(), 1, "{text}");
        assert!(text.ends_with('\n'));
        assert!(
            text.contains(r"event='ok\nlevel=\'critical\' event=\'forged\'\r'"),
            "{text}"
        );
        assert!(text.contains(" status_code=200"), "{text}");
        assert!(text.contains(r" user='o\'brien'"), "{text}");
        assert!(text.starts_with("timestamp='"), "{text}");
        assert!(text.contains(" level='info' logger='app'"), "{text}");
    }
}
