//! Record → OTLP `LogRecord` mapping, per the
//! [OTel logs data model](https://opentelemetry.io/docs/specs/otel/logs/data-model/) and
//! the semantic conventions for
//! [resources](https://opentelemetry.io/docs/specs/semconv/resource/),
//! [exceptions](https://opentelemetry.io/docs/specs/semconv/exceptions/exceptions-logs/)
//! and [HTTP](https://opentelemetry.io/docs/specs/semconv/http/http-spans/).

use std::collections::HashSet;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use serde_json::Value;

use crate::record::{BodyContent, CapturedBody, Fields, Headers, Record, ServiceInfo};

/// Instrumentation scope name of every record.
pub(super) const SCOPE_NAME: &str = "loggier";

/// Deepest JSON nesting mapped to nested `KvlistValue`/`ArrayValue`; deeper values are
/// sent as their JSON text. Protobuf decoders limit recursion (prost: 100 levels), and
/// one over-deep value must not make a collector refuse the whole batch.
const MAX_DEPTH: usize = 32;

/// Characters escaped when a query map is rebuilt into `url.query`: those that would
/// change how the string splits (`&`, `=`, `#`, `+`, `%`), space and controls.
const QUERY_ESCAPES: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'&')
    .add(b'=')
    .add(b'#')
    .add(b'+')
    .add(b'%');

/// HTTP methods semconv knows; others are sent as `_OTHER` with
/// `http.request.method_original`.
const KNOWN_METHODS: [&str; 10] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE", "QUERY",
];

pub(super) fn string(s: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(s.into())),
    }
}

fn int(i: i64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::IntValue(i)),
    }
}

fn double(f: f64) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::DoubleValue(f)),
    }
}

fn boolean(b: bool) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::BoolValue(b)),
    }
}

fn array(values: Vec<AnyValue>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::ArrayValue(ArrayValue { values })),
    }
}

pub(super) fn kv(key: impl Into<String>, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(value),
        ..KeyValue::default()
    }
}

/// A JSON value as an OTLP `AnyValue`: null → empty value, bool, integer (`i64`;
/// larger unsigned integers as their decimal string so no digit is lost), float →
/// double, string, array → `ArrayValue`, object → `KvlistValue` (key order kept).
pub(super) fn json_to_any(v: &Value) -> AnyValue {
    json_to_any_depth(v, 0)
}

fn json_to_any_depth(v: &Value, depth: usize) -> AnyValue {
    if depth >= MAX_DEPTH && matches!(v, Value::Array(_) | Value::Object(_)) {
        return string(v.to_string());
    }
    match v {
        Value::Null => AnyValue { value: None },
        Value::Bool(b) => boolean(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                int(i)
            } else if n.is_u64() {
                string(n.to_string())
            } else {
                double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => string(s.clone()),
        Value::Array(a) => array(a.iter().map(|x| json_to_any_depth(x, depth + 1)).collect()),
        Value::Object(o) => AnyValue {
            value: Some(any_value::Value::KvlistValue(KeyValueList {
                values: o
                    .iter()
                    .map(|(k, x)| kv(k.clone(), json_to_any_depth(x, depth + 1)))
                    .collect(),
            })),
        },
    }
}

/// Resource attributes derived from the client's identity, before configured
/// overrides: `service.name`, `service.version`, `service.namespace` (project),
/// `deployment.environment.name`, `host.name`, `loggier.revision`, and the
/// `telemetry.sdk.*` triple.
pub(super) fn identity_attributes(svc: &ServiceInfo) -> Vec<(String, AnyValue)> {
    let mut out = vec![
        ("service.name".to_string(), string(svc.service.clone())),
        (
            "deployment.environment.name".to_string(),
            string(svc.environment.clone()),
        ),
    ];
    if let Some(v) = &svc.version {
        out.push(("service.version".to_string(), string(v.clone())));
    }
    if let Some(v) = &svc.project {
        out.push(("service.namespace".to_string(), string(v.clone())));
    }
    if let Some(v) = &svc.host {
        out.push(("host.name".to_string(), string(v.clone())));
    }
    if let Some(v) = &svc.revision {
        out.push(("loggier.revision".to_string(), string(v.clone())));
    }
    out.push(("telemetry.sdk.name".to_string(), string("loggier")));
    out.push(("telemetry.sdk.language".to_string(), string("rust")));
    out.push((
        "telemetry.sdk.version".to_string(),
        string(env!("CARGO_PKG_VERSION")),
    ));
    out
}

/// Builds the resource: identity attributes, then `overrides` in order, a later key
/// replacing an earlier one in place.
pub(super) fn build_resource(svc: &ServiceInfo, overrides: &[(String, AnyValue)]) -> Resource {
    let mut attrs: Vec<KeyValue> = Vec::new();
    for (k, v) in identity_attributes(svc)
        .into_iter()
        .chain(overrides.iter().cloned())
    {
        match attrs.iter_mut().find(|a| a.key == k) {
            Some(existing) => existing.value = Some(v),
            None => attrs.push(kv(k, v)),
        }
    }
    Resource {
        attributes: attrs,
        ..Resource::default()
    }
}

/// One request holding `records` under `resource` and the `loggier` scope.
pub(super) fn build_request(
    records: &[Arc<Record>],
    resource: &Resource,
) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(resource.clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.to_string(),
                    version: env!("CARGO_PKG_VERSION").to_string(),
                    ..InstrumentationScope::default()
                }),
                log_records: records.iter().map(|r| log_record(r)).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Decodes `len` bytes of lower-case or upper-case hex; `None` unless `s` is exactly
/// `2 * len` hex digits and not all zero (the W3C invalid id).
pub(super) fn hex_id(s: &str, len: usize) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if s.len() != 2 * len {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = Vec::with_capacity(len);
    for pair in s.chunks_exact(2) {
        out.push(nibble(pair[0])? << 4 | nibble(pair[1])?);
    }
    if out.iter().all(|b| *b == 0) {
        return None;
    }
    Some(out)
}

/// Maps one record. See the module docs of [`super`] for the attribute table.
pub(super) fn log_record(r: &Record) -> LogRecord {
    let mut attrs = Attrs::default();

    attrs.push("loggier.logger", string(r.logger.to_string()));
    if !r.tags.is_empty() {
        attrs.push(
            "loggier.tags",
            array(r.tags.iter().map(|t| string(t.clone())).collect()),
        );
    }
    if let Some(id) = &r.request_id {
        attrs.push("loggier.request_id", string(id.clone()));
    }

    let trace_id = r.trace_id.as_deref().and_then(|t| hex_id(t, 16));
    if let (Some(raw), None) = (&r.trace_id, &trace_id) {
        // Not a valid W3C id: keep the text rather than lose it.
        attrs.push("loggier.trace_id", string(raw.clone()));
    }
    let span_id = r.span_id.as_deref().and_then(|s| hex_id(s, 8));
    if let (Some(raw), None) = (&r.span_id, &span_id) {
        attrs.push("loggier.span_id", string(raw.clone()));
    }

    if let Some(e) = &r.exception {
        attrs.push("exception.type", string(e.type_name.clone()));
        attrs.push("exception.message", string(e.message.clone()));
        if let Some(bt) = &e.backtrace {
            attrs.push("exception.stacktrace", string(bt.clone()));
        }
        if !e.chain.is_empty() {
            attrs.push(
                "loggier.exception.chain",
                array(
                    e.chain
                        .iter()
                        .map(|c| AnyValue {
                            value: Some(any_value::Value::KvlistValue(KeyValueList {
                                values: vec![
                                    kv("type", string(c.type_name.clone())),
                                    kv("message", string(c.message.clone())),
                                ],
                            })),
                        })
                        .collect(),
                ),
            );
        }
    }

    if let Some(h) = &r.http {
        let req = &h.request;
        let method = req.method.to_ascii_uppercase();
        if KNOWN_METHODS.contains(&method.as_str()) {
            attrs.push("http.request.method", string(method));
        } else if !req.method.is_empty() {
            attrs.push("http.request.method", string("_OTHER"));
            attrs.push("http.request.method_original", string(req.method.clone()));
        }
        if !req.path.is_empty() {
            attrs.push("url.path", string(req.path.clone()));
        }
        if let Some(route) = &req.route {
            attrs.push("http.route", string(&**route));
        }
        if !req.query.is_empty() {
            attrs.push("url.query", string(query_string(&req.query)));
        }
        if let Some(ip) = &req.client_ip {
            attrs.push("client.address", string(ip.clone()));
        }
        if let Some(ua) = &req.user_agent {
            attrs.push("user_agent.original", string(ua.clone()));
        }
        push_headers(&mut attrs, "http.request.header.", &req.headers);
        if let Some(b) = &req.body {
            push_body(&mut attrs, "request", b);
        }
        if let Some(resp) = &h.response {
            attrs.push(
                "http.response.status_code",
                int(i64::from(resp.status_code)),
            );
            push_headers(&mut attrs, "http.response.header.", &resp.headers);
            if let Some(ct) = &resp.content_type {
                attrs.push(
                    "http.response.header.content-type",
                    array(vec![string(ct.clone())]),
                );
            }
            if let Some(b) = &resp.body {
                push_body(&mut attrs, "response", b);
            }
        }
        attrs.push(
            "http.server.request.duration",
            double(h.duration_ms / 1_000.0),
        );
    }

    if let Some(t) = &r.timing {
        attrs.push("loggier.timing.name", string(t.name.clone()));
        let kind = match t.kind {
            crate::record::TimingKind::Function => "function",
            crate::record::TimingKind::Http => "http",
            crate::record::TimingKind::Database => "database",
        };
        attrs.push("loggier.timing.kind", string(kind));
        attrs.push("loggier.timing.duration_ms", double(t.duration_ms));
        if let Some(th) = t.threshold_ms {
            attrs.push("loggier.timing.threshold_ms", double(th));
        }
    }

    // Context fields last: a typed part wins over a context key of the same name
    // (attribute keys must be unique within a record).
    for (k, v) in &r.context {
        if !attrs.keys.contains(k) {
            attrs.push(k.to_string(), json_to_any(v));
        }
    }

    LogRecord {
        time_unix_nano: r.timestamp_ns,
        observed_time_unix_nano: r.timestamp_ns,
        severity_number: r.level.otel_severity_number(),
        severity_text: r.level.as_upper().to_string(),
        body: Some(string(r.message.to_string())),
        attributes: attrs.list,
        trace_id: trace_id.unwrap_or_default(),
        span_id: span_id.unwrap_or_default(),
        ..LogRecord::default()
    }
}

/// Attribute list with unique keys (first writer wins).
#[derive(Default)]
struct Attrs {
    list: Vec<KeyValue>,
    keys: HashSet<String>,
}

impl Attrs {
    fn push(&mut self, key: impl Into<String>, value: AnyValue) {
        let key = key.into();
        if self.keys.insert(key.clone()) {
            self.list.push(kv(key, value));
        }
    }
}

/// `http.request.header.<name>` as `string[]`, per semconv (values are already masked).
fn push_headers(attrs: &mut Attrs, prefix: &str, headers: &Headers) {
    for (name, v) in headers {
        attrs.push(
            format!("{prefix}{}", name.to_ascii_lowercase()),
            array(vec![string(v.to_owned())]),
        );
    }
}

fn push_body(attrs: &mut Attrs, side: &str, b: &CapturedBody) {
    attrs.push(
        format!("http.{side}.body.size"),
        int(i64::try_from(b.size_bytes).unwrap_or(i64::MAX)),
    );
    let content = match &b.content {
        BodyContent::Json(v) => json_to_any(v),
        BodyContent::Text(s) => string(s.clone()),
        BodyContent::Binary { content_type, len } => string(format!(
            "[binary {len} bytes, {}]",
            content_type.as_deref().unwrap_or("unknown type")
        )),
    };
    attrs.push(format!("loggier.http.{side}.body"), content);
    attrs.push(
        format!("loggier.http.{side}.body.truncated"),
        boolean(b.truncated),
    );
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Rebuilds a query string (`a=1&b=x%26y`) from the captured (masked) parameters; an
/// array value repeats the key.
fn query_string(query: &Fields) -> String {
    let mut out = String::new();
    let mut pair = |k: &str, v: &Value| {
        if !out.is_empty() {
            out.push('&');
        }
        out.extend(utf8_percent_encode(k, QUERY_ESCAPES));
        out.push('=');
        out.extend(utf8_percent_encode(&text_of(v), QUERY_ESCAPES));
    };
    for (k, v) in query {
        match v {
            Value::Array(a) => a.iter().for_each(|x| pair(k, x)),
            other => pair(k, other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_ids_decode_and_reject_bad_input() {
        assert_eq!(
            hex_id("4bf92f3577b34da6a3ce929d0e0e4736", 16).map(|v| v.len()),
            Some(16)
        );
        assert_eq!(
            hex_id("00f067aa0ba902b7", 8),
            Some(vec![0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7])
        );
        assert_eq!(hex_id("00F067AA0BA902B7", 8), hex_id("00f067aa0ba902b7", 8));
        assert_eq!(hex_id("0000000000000000", 8), None);
        assert_eq!(hex_id("00f067aa0ba902b", 8), None);
        assert_eq!(hex_id("00f067aa0ba902bz", 8), None);
        assert_eq!(hex_id("é0f067aa0ba902b", 8), None);
    }

    #[test]
    fn json_maps_to_any_value_without_losing_digits_or_depth_limits() {
        let v = serde_json::json!({"n": 1, "big": u64::MAX, "f": 1.5, "a": [true, null]});
        let AnyValue {
            value: Some(any_value::Value::KvlistValue(kvl)),
        } = json_to_any(&v)
        else {
            panic!("object must map to a kvlist");
        };
        let get = |k: &str| {
            kvl.values
                .iter()
                .find(|x| x.key == k)
                .and_then(|x| x.value.clone())
                .and_then(|x| x.value)
        };
        assert_eq!(get("n"), Some(any_value::Value::IntValue(1)));
        assert_eq!(
            get("big"),
            Some(any_value::Value::StringValue(u64::MAX.to_string()))
        );
        assert_eq!(get("f"), Some(any_value::Value::DoubleValue(1.5)));
        let Some(any_value::Value::ArrayValue(a)) = get("a") else {
            panic!("array");
        };
        assert_eq!(a.values[1], AnyValue { value: None });

        let mut deep = serde_json::json!("leaf");
        for _ in 0..200 {
            deep = serde_json::json!([deep]);
        }
        // Walk down: at MAX_DEPTH the rest is JSON text.
        let mut cur = json_to_any(&deep);
        let mut levels = 0;
        while let Some(any_value::Value::ArrayValue(a)) = cur.value {
            cur = a.values[0].clone();
            levels += 1;
        }
        assert_eq!(levels, MAX_DEPTH);
        assert!(matches!(cur.value, Some(any_value::Value::StringValue(s)) if s.starts_with("[[")));
    }

    #[test]
    fn query_is_rebuilt_with_separators_escaped() {
        let mut q = Fields::new();
        q.insert("q".into(), "a&b=c d".into());
        q.insert("tag".into(), serde_json::json!(["x", "y"]));
        q.insert("token".into(), "[FILTERED]".into());
        assert_eq!(
            query_string(&q),
            "q=a%26b%3Dc%20d&tag=x&tag=y&token=[FILTERED]"
        );
    }

    #[test]
    fn resource_overrides_replace_in_place() {
        let svc = ServiceInfo {
            service: "api".into(),
            environment: "production".into(),
            version: Some("1.2.3".into()),
            ..ServiceInfo::default()
        };
        let r = build_resource(
            &svc,
            &[
                ("service.name".into(), string("from-env")),
                ("team".into(), string("payments")),
            ],
        );
        let keys: Vec<&str> = r.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(keys[0], "service.name");
        assert_eq!(keys.iter().filter(|k| **k == "service.name").count(), 1);
        assert_eq!(r.attributes[0].value, Some(string("from-env")));
        assert!(keys.contains(&"team"));
        assert!(keys.contains(&"service.version"));
    }
}
