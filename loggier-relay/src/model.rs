//! Request body types and their conversion into Loggier [`Record`]s.
//!
//! - [`LogEntry`]: one record in the seeds/000 shape (`POST /log`, `POST /logs`).
//! - [`IngestRecord`]: one record of the Loggier ingest wire format that
//!   `loggier_core::HttpSink` sends (`POST /api/ingest`), i.e. the JSON
//!   [`encode_json`](loggier_core::record::encode_json) writes.
//! - Loki push bodies (`POST /api/v1/loki/push`): JSON `{"streams":[…]}` or a
//!   snappy-compressed `logproto.PushRequest`.
//!
//! Every decoder reports the JSON path of the first field at fault
//! (`stack[0].line`, `[2].level`) via `serde_path_to_error`, and never panics.

use std::collections::BTreeMap;

use loggier_core::record::{ExceptionCause, Frame};
use loggier_core::{Exception, Fields, Level, Record, Timing, TimingKind};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

/// Logger name of records the relay creates from `POST /log` and `/logs`.
pub const LOGGER_LOG_API: &str = "relay.log";
/// Logger name of records taken from a Loki push body.
pub const LOGGER_LOKI_PUSH: &str = "relay.loki_push";

/// Prefix of the error for a level name that is not one of the six.
pub const UNKNOWN_LEVEL: &str = "unknown level";

/// Level fields: a name as clients write it, case-insensitively — `trace`, `debug`,
/// `info`, `warning` (`warn`), `error`, `critical` (`fatal`) — parsed by
/// [`Level`]'s `FromStr` (one list of names for the whole suite). The relay keeps
/// its own error text, which names the field's problem for the JSON error
/// (`unknown level "loud", expected one of …`), where `Level`'s error names the
/// `log_level` setting.
pub mod level {
    use super::{Deserialize, Deserializer, Level, UNKNOWN_LEVEL, de};

    fn parse<E: de::Error>(v: &str) -> Result<Level, E> {
        v.parse::<Level>().map_err(|_| {
            E::custom(format!(
                "{UNKNOWN_LEVEL} {v:?}, expected one of trace, debug, info, warning (warn), error, critical (fatal)"
            ))
        })
    }

    struct Name;

    impl de::Visitor<'_> for Name {
        type Value = Level;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a level name: trace, debug, info, warning, error or critical")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Level, E> {
            parse(v)
        }
    }

    /// A required level.
    ///
    /// # Errors
    /// Not a string, or [`UNKNOWN_LEVEL`] for a name that is not a level.
    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<Level, D::Error> {
        d.deserialize_str(Name)
    }

    /// An optional level (`null` or absent: `None`).
    ///
    /// # Errors
    /// As [`required`].
    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Level>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(deserialize_with = "required")] Level);
        Ok(Option::<Wrap>::deserialize(d)?.map(|Wrap(l)| l))
    }
}

/// A source line as clients send it: `"10"` or `10`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct LineNumber(pub String);

impl<'de> Deserialize<'de> for LineNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LineNumber;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a line number as a string or a non-negative integer")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<LineNumber, E> {
                Ok(LineNumber(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<LineNumber, E> {
                u64::try_from(v)
                    .map(|n| LineNumber(n.to_string()))
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<LineNumber, E> {
                Ok(LineNumber(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// One stack frame: `{"func": "main", "line": "10", "source": "main.py"}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StackFrame {
    /// Function name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub func: Option<String>,
    /// Line number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<LineNumber>,
    /// Source file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// One record in the seeds/000 shape (`POST /log`):
///
/// ```json
/// {"message":"EscrowCreateAccount error for 615","error":"validator error",
///  "msg_id":"123456","service":"app","version":"20250421:abc123",
///  "repository":"wallet-api/i-app","revision_id":"abc123","component":"pubsub",
///  "data":{"user_id":"42"},"stack":[{"func":"main","line":"10","source":"main.py"}],
///  "caller":"main.py:10","level":"error"}
/// ```
///
/// `message` is required; `level` defaults to `info`; every other field is optional.
/// Unknown fields, wrong types and unknown levels are rejected.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogEntry {
    /// Human-readable message.
    pub message: String,
    /// Error text.
    #[serde(default)]
    pub error: Option<String>,
    /// Message id (structured metadata `msg_id`).
    #[serde(default)]
    pub msg_id: Option<String>,
    /// Service that produced the record (Loki label `service`).
    #[serde(default)]
    pub service: Option<String>,
    /// Version of that service (structured metadata `version`).
    #[serde(default)]
    pub version: Option<String>,
    /// Repository of that service.
    #[serde(default)]
    pub repository: Option<String>,
    /// Source revision (structured metadata `revision_id`).
    #[serde(default)]
    pub revision_id: Option<String>,
    /// Component within the service (Loki label `component`).
    #[serde(default)]
    pub component: Option<String>,
    /// Free-form fields (an object; masked like any context).
    #[serde(default)]
    pub data: Option<Fields>,
    /// Stack frames, innermost last.
    #[serde(default)]
    pub stack: Option<Vec<StackFrame>>,
    /// `file:line` of the logging call.
    #[serde(default)]
    pub caller: Option<String>,
    /// Severity (default `info`).
    #[serde(default, deserialize_with = "level::optional")]
    pub level: Option<Level>,
}

impl LogEntry {
    /// The `service` the entry names, if any.
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// The Loggier record for this entry: level, message, logger `relay.log`, the
    /// request id, and context `service`, `component`, `msg_id`, `version`,
    /// `revision_id`, `repository`, `caller`, `error`, `data`, `stack` (set ones only).
    pub fn into_record(self, request_id: &str) -> Record {
        let level = self.level.unwrap_or(Level::Info);
        let mut r = Record::new(level, self.message).with_logger(LOGGER_LOG_API);
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                r.context.insert(k.to_string(), Value::String(v));
            }
        };
        put("service", self.service);
        put("component", self.component);
        put("msg_id", self.msg_id);
        put("version", self.version);
        put("revision_id", self.revision_id);
        put("repository", self.repository);
        put("caller", self.caller);
        put("error", self.error);
        if let Some(d) = self.data {
            r.context.insert("data", Value::Object(d));
        }
        if let Some(s) = self.stack {
            r.context
                .insert("stack", serde_json::to_value(s).unwrap_or(Value::Null));
        }
        r.request_id = Some(request_id.to_string());
        r
    }
}

/// One record of the Loggier ingest format (the JSON `encode_json` writes). Fields
/// this version does not know are kept in the record's context.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct IngestRecord {
    /// RFC 3339 time, e.g. `2025-03-09T11:41:29.000000000Z`.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Severity.
    #[serde(deserialize_with = "level::required")]
    pub level: Level,
    /// Message.
    pub message: String,
    /// Logger name.
    #[serde(default)]
    pub logger: Option<String>,
    /// Service of the sender (Loki label `service`).
    #[serde(default)]
    pub service: Option<String>,
    /// Environment of the sender (Loki label `environment`).
    #[serde(default)]
    pub environment: Option<String>,
    /// Project.
    #[serde(default)]
    pub project: Option<String>,
    /// Version (structured metadata).
    #[serde(default)]
    pub version: Option<String>,
    /// Revision.
    #[serde(default)]
    pub revision: Option<String>,
    /// Host.
    #[serde(default)]
    pub host: Option<String>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// W3C trace id.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// W3C span id.
    #[serde(default)]
    pub span_id: Option<String>,
    /// Context (with `request_id` and `transaction` inside, as encoded).
    #[serde(default)]
    pub context: Option<Fields>,
    /// Exception (typed again when it has the Loggier shape, else kept in the
    /// context).
    #[serde(default)]
    pub exception: Option<Value>,
    /// Timing (typed again when it has the Loggier shape, else kept in the context).
    #[serde(default)]
    pub timing: Option<Value>,
    /// Anything else.
    #[serde(flatten)]
    pub extra: Fields,
}

impl IngestRecord {
    /// The sender's service name, if given.
    pub fn service(&self) -> Option<&str> {
        self.service.as_deref()
    }

    /// The Loggier record: timestamp, level, message, logger, tags, ids; the sender's
    /// identity (`service`, `environment`, `project`, `version`, `host`, and
    /// `revision` as `revision_id`, the name `/log` records use) goes into the
    /// context next to the sender's context, so the Loki sink sends `service` and
    /// `environment` as labels and `version`, `revision_id` as structured metadata.
    /// The route of an HTTP transaction (`context.transaction.request.route`)
    /// becomes context `route` (structured metadata `route`) unless the context has
    /// one. An exception and a timing of the Loggier shape stay typed (top-level
    /// `exception` / `timing` in the relay's output); any other shape is kept in the
    /// context under its name.
    ///
    /// # Errors
    /// 400 `invalid_field` at `timestamp` for a time that is not RFC 3339.
    pub fn into_record(self) -> Result<Record, ApiError> {
        let mut r = Record::new(self.level, self.message);
        if let Some(ts) = &self.timestamp {
            r.timestamp_ns = parse_rfc3339_ns(ts).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_field",
                    format!("timestamp {ts:?} is not an RFC 3339 time"),
                )
                .at("timestamp")
            })?;
        }
        if let Some(l) = self.logger {
            r.logger = l.into();
        }
        r.tags = self.tags;
        r.trace_id = self.trace_id;
        r.span_id = self.span_id;
        let mut ctx = self.context.unwrap_or_default();
        if let Some(Value::String(id)) = ctx.remove("request_id") {
            r.request_id = Some(id);
        }
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                r.context.insert(k.to_string(), Value::String(v));
            }
        };
        put("service", self.service);
        put("environment", self.environment);
        put("project", self.project);
        put("version", self.version);
        put("revision_id", self.revision);
        put("host", self.host);
        let route = ctx
            .get("transaction")
            .and_then(|t| t.pointer("/request/route"))
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .map(str::to_string);
        for (k, v) in ctx {
            r.context.insert(k, v);
        }
        if let Some(route) = route {
            r.context
                .get_or_insert_with("route", || Value::String(route));
        }
        if let Some(e) = self.exception {
            match typed_exception(&e) {
                Some(exc) => r.exception = Some(Box::new(exc)),
                None => {
                    r.context.insert("exception", e);
                }
            }
        }
        if let Some(t) = self.timing {
            match typed_timing(&t) {
                Some(timing) => r.timing = Some(timing),
                None => {
                    r.context.insert("timing", t);
                }
            }
        }
        for (k, v) in self.extra {
            r.context.get_or_insert_with(k, || v);
        }
        Ok(r)
    }
}

/// The JSON `Exception` serializes to — `{"type","message","chain":[{"type",
/// "message"}],"stacktrace","frames":[{"func","file","line"}]}` — back into a typed
/// [`Exception`]. `None` for any other shape (a missing `type`/`message`, a field
/// of the wrong type, an unknown key).
fn typed_exception(v: &Value) -> Option<Exception> {
    let obj = v.as_object()?;
    let known = ["type", "message", "chain", "stacktrace", "frames"];
    if obj.keys().any(|k| !known.contains(&k.as_str())) {
        return None;
    }
    let text = |o: &serde_json::Map<String, Value>, k: &str| Some(o.get(k)?.as_str()?.to_string());
    let mut exc = Exception::new(text(obj, "type")?, text(obj, "message")?);
    if let Some(chain) = obj.get("chain") {
        for c in chain.as_array()? {
            let c = c.as_object()?;
            exc.chain.push(ExceptionCause {
                type_name: text(c, "type")?,
                message: text(c, "message")?,
            });
        }
    }
    match obj.get("stacktrace") {
        None | Some(Value::Null) => {}
        Some(t) => exc.backtrace = Some(t.as_str()?.to_string()),
    }
    if let Some(frames) = obj.get("frames") {
        for f in frames.as_array()? {
            let f = f.as_object()?;
            let file = match f.get("file") {
                None | Some(Value::Null) => None,
                Some(x) => Some(x.as_str()?.to_string()),
            };
            let line = match f.get("line") {
                None | Some(Value::Null) => None,
                Some(x) => Some(u32::try_from(x.as_u64()?).ok()?),
            };
            exc.frames.push(Frame {
                func: text(f, "func")?,
                file,
                line,
            });
        }
    }
    Some(exc)
}

/// `{"name":…,"kind":"function"|"http"|"database","duration_ms":…}` back into a
/// typed [`Timing`], so it is encoded at the top level again like the sender's.
fn typed_timing(v: &Value) -> Option<Timing> {
    let kind = match v.get("kind")?.as_str()? {
        "function" => TimingKind::Function,
        "http" => TimingKind::Http,
        "database" => TimingKind::Database,
        _ => return None,
    };
    let duration_ms = v.get("duration_ms")?.as_f64()?;
    let threshold_ms = match v.get("threshold_ms") {
        None | Some(Value::Null) => None,
        Some(t) => Some(t.as_f64()?),
    };
    let optional_str = |key: &str| match v.get(key) {
        None | Some(Value::Null) => Some(None),
        Some(s) => s.as_str().map(|s| Some(s.to_string())),
    };
    let id = optional_str("id")?;
    let parent = optional_str("parent")?;
    let known = [
        "name",
        "kind",
        "duration_ms",
        "threshold_ms",
        "id",
        "parent",
    ];
    if v.as_object()?.keys().any(|k| !known.contains(&k.as_str())) {
        return None;
    }
    let mut timing = Timing::new(v.get("name")?.as_str()?, kind, duration_ms);
    timing.threshold_ms = threshold_ms;
    timing.id = id;
    timing.parent = parent;
    Some(timing)
}

/// RFC 3339 → nanoseconds since the Unix epoch (`None` if unparsable or before 1970).
pub fn parse_rfc3339_ns(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos()).ok()
}

/// Parses `body` as one `T`, reporting the JSON path on error.
///
/// # Errors
/// 400 with code `invalid_json` (syntax), `unknown_field`, `unknown_level`,
/// `missing_field` or `invalid_field`, naming the path.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let v: T = serde_path_to_error::deserialize(&mut de).map_err(|e| json_error(&e, ""))?;
    de.end().map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("trailing data after the JSON value: {e}"),
        )
    })?;
    Ok(v)
}

/// Parses NDJSON: one `T` per non-empty line. Paths are `[i].field` with `i` the
/// 0-based index of the record (blank lines are skipped and not counted).
///
/// # Errors
/// As [`parse_json`]; the message names the 1-based line; 400 `too_many_records`
/// past `max_records`.
pub fn parse_ndjson<T: serde::de::DeserializeOwned>(
    body: &[u8],
    max_records: usize,
) -> Result<Vec<T>, ApiError> {
    let mut out = Vec::new();
    for (line_no, line) in body.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if out.len() == max_records {
            return Err(too_many(max_records));
        }
        let idx = out.len();
        let v: T = parse_json(line).map_err(|mut e| {
            e.path = Some(match &e.path {
                Some(p) => format!("[{idx}].{p}"),
                None => format!("[{idx}]"),
            });
            e.message = format!("line {}: {}", line_no + 1, e.message);
            e
        })?;
        out.push(v);
    }
    Ok(out)
}

/// 400 `too_many_records`.
pub fn too_many(max: usize) -> ApiError {
    ApiError::bad_request(
        "too_many_records",
        format!("more than {max} records in one request"),
    )
}

fn json_error(e: &serde_path_to_error::Error<serde_json::Error>, prefix: &str) -> ApiError {
    let inner = e.inner();
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let path = format!("{prefix}{path}");
    use serde_json::error::Category;
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::bad_request("invalid_json", format!("malformed JSON: {inner}"))
        }
        Category::Data => {
            let msg = inner.to_string();
            // serde_json appends " at line L column C"; the path says where.
            let msg = msg
                .rsplit_once(" at line ")
                .map_or(msg.as_str(), |(m, _)| m)
                .to_string();
            let code = if msg.starts_with("unknown field") {
                "unknown_field"
            } else if msg.starts_with("missing field") {
                "missing_field"
            } else if msg.starts_with(UNKNOWN_LEVEL) {
                "unknown_level"
            } else {
                "invalid_field"
            };
            ApiError::bad_request(code, msg).at(path)
        }
    }
}

/// Checks every string in `v` (object keys included) against `max_bytes`.
///
/// # Errors
/// 400 `field_too_long` naming the path.
pub fn check_lengths(v: &Value, path: &str, max_bytes: usize) -> Result<(), ApiError> {
    match first_too_long(v, max_bytes) {
        None => Ok(()),
        Some((rest, n)) => {
            let rest = if path.is_empty() {
                rest.strip_prefix('.').unwrap_or(&rest)
            } else {
                &rest
            };
            Err(field_too_long(&format!("{path}{rest}"), n, max_bytes))
        }
    }
}

/// 400 `field_too_long` at `path` for a string of `n` bytes.
pub(crate) fn field_too_long(path: &str, n: usize, max_bytes: usize) -> ApiError {
    ApiError::bad_request(
        "field_too_long",
        format!("string of {n} bytes is over the limit of {max_bytes} bytes"),
    )
    .at(path)
}

/// The first string in `v` (object keys included) longer than `max_bytes`: its path
/// below `v` (`""`, `".key"`, `"[2].key"`, …) and its length. Walks without
/// allocating; the path is only built for the string found.
pub(crate) fn first_too_long(v: &Value, max_bytes: usize) -> Option<(String, usize)> {
    match v {
        Value::String(s) if s.len() > max_bytes => Some((String::new(), s.len())),
        Value::Array(a) => a.iter().enumerate().find_map(|(i, x)| {
            first_too_long(x, max_bytes).map(|(rest, n)| (format!("[{i}]{rest}"), n))
        }),
        Value::Object(m) => m.iter().find_map(|(k, x)| {
            if k.len() > max_bytes {
                return Some((format!(".{k}"), k.len()));
            }
            first_too_long(x, max_bytes).map(|(rest, n)| (format!(".{k}{rest}"), n))
        }),
        _ => None,
    }
}

/// Loki's JSON push body: `{"streams":[{"stream":{…},"values":[["<ns>","<line>",{…}]]}]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LokiPushBody {
    /// Streams.
    pub streams: Vec<LokiPushStream>,
}

/// One stream of a Loki JSON push body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LokiPushStream {
    /// Labels.
    pub stream: BTreeMap<String, String>,
    /// `[ts_ns_string, line]` or `[ts_ns_string, line, {structured metadata}]`.
    pub values: Vec<Vec<Value>>,
}

/// The records of a Loki push: one per entry, level from the `level` (or
/// `detected_level`) label (default info), message = line, labels and structured
/// metadata in the context.
///
/// # Errors
/// 400 `invalid_field` naming `streams[i].values[j]` for a malformed entry.
pub fn loki_json_records(body: LokiPushBody) -> Result<Vec<Record>, ApiError> {
    let mut out = Vec::new();
    for (i, s) in body.streams.into_iter().enumerate() {
        let level = stream_level(&s.stream);
        for (j, v) in s.values.into_iter().enumerate() {
            let path = format!("streams[{i}].values[{j}]");
            let bad = |m: &str| ApiError::bad_request("invalid_field", m.to_string()).at(&path);
            let mut it = v.into_iter();
            let ts = match it.next() {
                Some(Value::String(t)) => t
                    .parse::<u64>()
                    .map_err(|_| bad("timestamp must be a string of unix nanoseconds"))?,
                _ => return Err(bad("expected [\"<unix ns>\", \"<line>\", {metadata}?]")),
            };
            let line = match it.next() {
                Some(Value::String(l)) => l,
                _ => return Err(bad("the second element (the line) must be a string")),
            };
            let meta = match it.next() {
                None => Fields::new(),
                Some(Value::Object(m)) if m.values().all(Value::is_string) => m,
                Some(_) => return Err(bad("structured metadata must be an object of strings")),
            };
            if it.next().is_some() {
                return Err(bad("an entry has at most 3 elements"));
            }
            let mut r = Record::new(level, line)
                .with_logger(LOGGER_LOKI_PUSH)
                .with_timestamp_ns(ts);
            for (k, v) in &s.stream {
                r.context.insert(k.clone(), Value::String(v.clone()));
            }
            for (k, v) in meta {
                r.context.insert(k, v);
            }
            out.push(r);
        }
    }
    Ok(out)
}

fn stream_level(labels: &BTreeMap<String, String>) -> Level {
    labels
        .get("level")
        .or_else(|| labels.get("detected_level"))
        .and_then(|l| l.parse().ok())
        .unwrap_or(Level::Info)
}

/// The records of a snappy-compressed protobuf `logproto.PushRequest`.
///
/// # Errors
/// 413 `body_too_large` when the block declares more than `max_bytes`
/// uncompressed; 400 `invalid_protobuf` for a bad snappy block, protobuf or label
/// string.
pub fn loki_protobuf_records(body: &[u8], max_bytes: usize) -> Result<Vec<Record>, ApiError> {
    use loggier_core::sink::loki::proto::PushRequest;
    use prost::Message as _;
    let bad = |m: String| ApiError::bad_request("invalid_protobuf", m);
    let len = snap::raw::decompress_len(body).map_err(|e| bad(format!("bad snappy block: {e}")))?;
    if len > max_bytes {
        return Err(ApiError::new(
            axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("decompressed body is over the limit of {max_bytes} bytes"),
        ));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| bad(format!("bad snappy block: {e}")))?;
    let req = PushRequest::decode(raw.as_slice())
        .map_err(|e| bad(format!("not a logproto.PushRequest: {e}")))?;
    let mut out = Vec::new();
    for (i, s) in req.streams.into_iter().enumerate() {
        let labels = parse_label_text(&s.labels).ok_or_else(|| {
            bad(format!(
                "streams[{i}].labels {:?} is not a label set",
                s.labels
            ))
        })?;
        let level = stream_level(&labels);
        for e in s.entries {
            let ts = e
                .timestamp
                .map(|t| {
                    let secs = u64::try_from(t.seconds).unwrap_or(0);
                    let nanos = u64::try_from(t.nanos).unwrap_or(0);
                    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
                })
                .unwrap_or_else(loggier_core::record::now_ns);
            let mut r = Record::new(level, e.line)
                .with_logger(LOGGER_LOKI_PUSH)
                .with_timestamp_ns(ts);
            for (k, v) in &labels {
                r.context.insert(k.clone(), Value::String(v.clone()));
            }
            for p in e.structured_metadata {
                r.context.insert(p.name, Value::String(p.value));
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// Parses Prometheus label text `{a="x", b="y\"z"}` (Go string escapes).
pub fn parse_label_text(s: &str) -> Option<BTreeMap<String, String>> {
    let inner = s.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = BTreeMap::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if name.is_empty() || chars.next()? != '=' || chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    'r' => value.push('\r'),
                    't' => value.push('\t'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        out.insert(name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_example_parses_and_maps() {
        let body = br#"{"message":"EscrowCreateAccount error for 615","error":"validator error",
            "msg_id":"123456","service":"app","version":"20250421:abc123",
            "repository":"wallet-api/i-app","revision_id":"abc123","component":"pubsub",
            "data":{"user_id":"42"},"stack":[{"func":"main","line":"10","source":"main.py"},
            {"func":"f","line":11}],"caller":"main.py:10","level":"error"}"#;
        let e: LogEntry = parse_json(body).expect("parses");
        let r = e.into_record("req-1");
        assert_eq!(r.level, Level::Error);
        assert_eq!(r.context["component"], "pubsub");
        assert_eq!(r.context["stack"][1]["line"], "11");
        assert_eq!(r.request_id.as_deref(), Some("req-1"));
    }

    #[test]
    fn errors_name_the_path() {
        let e = parse_json::<LogEntry>(br#"{"message":"m","stack":[{"line":true}]}"#)
            .expect_err("bool line");
        assert_eq!(e.path.as_deref(), Some("stack[0].line"));
        assert_eq!(e.code, "invalid_field");
        let e = parse_json::<LogEntry>(br#"{"message":"m","level":"loud"}"#).expect_err("level");
        assert_eq!(e.code, "unknown_level");
        assert_eq!(e.path.as_deref(), Some("level"));
        let e = parse_json::<LogEntry>(br#"{"message":"m","level":3}"#).expect_err("number");
        assert_eq!(e.code, "invalid_field");
        let ok: LogEntry = parse_json(br#"{"message":"m","level":"Warn"}"#).expect("any case");
        assert_eq!(ok.level, Some(Level::Warning));
        let ok: LogEntry = parse_json(br#"{"message":"m","level":null}"#).expect("null");
        assert_eq!(ok.level, None);
        let e = parse_json::<IngestRecord>(br#"{"message":"m","level":"FATALE"}"#)
            .expect_err("ingest level");
        assert_eq!(
            (e.code, e.path.as_deref()),
            ("unknown_level", Some("level"))
        );
        let e = parse_ndjson::<LogEntry>(b"{\"message\":\"a\"}\n\n{\"message\":1}", 10)
            .expect_err("type");
        assert_eq!(e.path.as_deref(), Some("[1].message"));
        assert!(e.message.starts_with("line 3:"), "{}", e.message);
    }

    #[test]
    fn label_text_round_trip() {
        let m = parse_label_text(r#"{level="info", service="a\"b"}"#).expect("labels");
        assert_eq!(m["service"], "a\"b");
        assert!(parse_label_text("level=info").is_none());
        assert!(parse_label_text("{}").expect("empty").is_empty());
    }
}
