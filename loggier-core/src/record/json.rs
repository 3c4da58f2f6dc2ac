use std::cell::Cell;

use serde::ser::{SerializeMap, Serializer};

use super::{HttpTransaction, Record, ServiceInfo};

/// Serializes a [`Record`] with its service identity in the Loggier JSON format.
///
/// Key order: `timestamp`, `level`, `message`, `logger`, `service`, `environment`,
/// `project`, `version`, `revision`, `host`, `tags`, `trace_id`, `span_id`, `context`
/// (record context, then `request_id`, then `transaction`), `exception`, `timing`.
/// Empty optional parts are left out.
#[derive(Debug, Clone, Copy)]
pub struct JsonRecord<'a> {
    /// The record.
    pub record: &'a Record,
    /// The client's identity.
    pub service: &'a ServiceInfo,
}

impl serde::Serialize for JsonRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.record;
        let svc = self.service;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("timestamp", &format_timestamp(r.timestamp_ns))?;
        m.serialize_entry("level", &r.level)?;
        m.serialize_entry("message", &r.message)?;
        m.serialize_entry("logger", &r.logger)?;
        m.serialize_entry("service", &svc.service)?;
        m.serialize_entry("environment", &svc.environment)?;
        if let Some(v) = &svc.project {
            m.serialize_entry("project", v)?;
        }
        if let Some(v) = &svc.version {
            m.serialize_entry("version", v)?;
        }
        if let Some(v) = &svc.revision {
            m.serialize_entry("revision", v)?;
        }
        if let Some(v) = &svc.host {
            m.serialize_entry("host", v)?;
        }
        if !r.tags.is_empty() {
            m.serialize_entry("tags", &r.tags)?;
        }
        if let Some(v) = &r.trace_id {
            m.serialize_entry("trace_id", v)?;
        }
        if let Some(v) = &r.span_id {
            m.serialize_entry("span_id", v)?;
        }
        if !r.context.is_empty() || r.request_id.is_some() || r.http.is_some() {
            m.serialize_entry("context", &ContextView(r))?;
        }
        if let Some(e) = &r.exception {
            m.serialize_entry("exception", e)?;
        }
        if let Some(t) = &r.timing {
            m.serialize_entry("timing", t)?;
        }
        m.end()
    }
}

struct ContextView<'a>(&'a Record);

impl serde::Serialize for ContextView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut m = s.serialize_map(None)?;
        for (k, v) in &r.context {
            // Typed parts win over a context key of the same name.
            if (k == "request_id" && r.request_id.is_some())
                || (k == "transaction" && r.http.is_some())
            {
                continue;
            }
            m.serialize_entry(k, v)?;
        }
        if let Some(id) = &r.request_id {
            m.serialize_entry("request_id", id)?;
        }
        if let Some(h) = &r.http {
            m.serialize_entry("transaction", h)?;
        }
        m.end()
    }
}

/// Encodes one record as a JSON object (no trailing newline).
///
/// The bytes are exactly those of `serde_json::to_writer(out, &JsonRecord { .. })`;
/// the common parts (timestamp, plain strings, the context's scalar values, the HTTP
/// transaction but its bodies) are written straight into `out`, nested parts
/// (bodies, exception, timing, nested context values) through `serde_json`.
///
/// # Errors
/// Only if a context value cannot be serialized, which `serde_json::Value` never does;
/// the `Result` is kept so sinks can use `?`.
pub fn encode_json(
    record: &Record,
    service: &ServiceInfo,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    encode_with(record, &ServiceJson::new(service)?, out)
}

/// The service identity members of a JSON record (`,"service":…` up to `"host"`),
/// encoded once for a whole batch, and the date and time to the second of the last
/// record encoded with it (the records of a batch mostly share their second, so the
/// calendar arithmetic runs once per second, not once per record).
#[derive(Debug, Clone)]
pub(crate) struct ServiceJson {
    members: Vec<u8>,
    /// Unix seconds and their `YYYY-MM-DDTHH:MM:SS` text; `u64::MAX` before the first.
    second: Cell<(u64, [u8; 19])>,
}

impl ServiceJson {
    pub(crate) fn new(svc: &ServiceInfo) -> serde_json::Result<Self> {
        let mut out = Vec::with_capacity(96);
        out.extend_from_slice(b",\"service\":");
        write_str(&mut out, &svc.service)?;
        out.extend_from_slice(b",\"environment\":");
        write_str(&mut out, &svc.environment)?;
        for (key, v) in [
            ("project", &svc.project),
            ("version", &svc.version),
            ("revision", &svc.revision),
            ("host", &svc.host),
        ] {
            if let Some(v) = v {
                write_key(&mut out, key);
                write_str(&mut out, v)?;
            }
        }
        Ok(ServiceJson {
            members: out,
            second: Cell::new((u64::MAX, [0; 19])),
        })
    }
}

/// [`encode_json_line`] with the service members encoded beforehand.
#[cfg_attr(
    not(any(
        feature = "file",
        feature = "stdout",
        feature = "http-ingest",
        feature = "loki"
    )),
    allow(
        dead_code,
        reason = "used by the file, stdout, HTTP ingest and Loki sinks only"
    )
)]
pub(crate) fn encode_json_line_with(
    record: &Record,
    service: &ServiceJson,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    encode_with(record, service, out)?;
    out.push(b'\n');
    Ok(())
}

fn encode_with(
    record: &Record,
    service: &ServiceJson,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    let r = record;
    out.reserve(256 + r.message.len());
    out.extend_from_slice(b"{\"timestamp\":\"");
    push_timestamp_cached(out, r.timestamp_ns, &service.second);
    out.extend_from_slice(b"\",\"level\":\"");
    out.extend_from_slice(r.level.as_upper().as_bytes());
    out.extend_from_slice(b"\",\"message\":");
    write_str(out, &r.message)?;
    out.extend_from_slice(b",\"logger\":");
    write_str(out, &r.logger)?;
    out.extend_from_slice(&service.members);
    if !r.tags.is_empty() {
        out.extend_from_slice(b",\"tags\":[");
        for (i, t) in r.tags.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(out, t)?;
        }
        out.push(b']');
    }
    for (key, v) in [("trace_id", &r.trace_id), ("span_id", &r.span_id)] {
        if let Some(v) = v {
            write_key(out, key);
            write_str(out, v)?;
        }
    }
    if !r.context.is_empty() || r.request_id.is_some() || r.http.is_some() {
        out.extend_from_slice(b",\"context\":{");
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        for (k, v) in &r.context {
            // Typed parts win over a context key of the same name.
            if (k == "request_id" && r.request_id.is_some())
                || (k == "transaction" && r.http.is_some())
            {
                continue;
            }
            sep(out);
            write_str(out, k)?;
            out.push(b':');
            write_value(out, v)?;
        }
        if let Some(id) = &r.request_id {
            sep(out);
            out.extend_from_slice(b"\"request_id\":");
            write_str(out, id)?;
        }
        if let Some(h) = &r.http {
            sep(out);
            out.extend_from_slice(b"\"transaction\":");
            write_transaction(out, h)?;
        }
        out.push(b'}');
    }
    if let Some(e) = &r.exception {
        out.extend_from_slice(b",\"exception\":");
        serde_json::to_writer(&mut *out, e)?;
    }
    if let Some(t) = &r.timing {
        out.extend_from_slice(b",\"timing\":");
        serde_json::to_writer(&mut *out, t)?;
    }
    out.push(b'}');
    Ok(())
}

/// `,"key":` for a key that needs no escaping: one of this encoder's own member
/// names (copied as it is, not checked).
fn write_key(out: &mut Vec<u8>, key: &str) {
    out.reserve(key.len() + 4);
    out.extend_from_slice(b",\"");
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// A JSON string, as `serde_json` writes it: bytes that need no escape (the common
/// case) are copied as they are, anything else goes through `serde_json`.
fn write_str(out: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
    if !needs_escape(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, s)
    }
}

/// `true` when `s` has a byte JSON escapes: a control character, `"` or `\\`.
/// Eight bytes at a time, the last eight overlapping the ones before (a false `true`
/// only costs the slower path; this check never gives one).
fn needs_escape(s: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below 0x20, or equal to '"' or '\\' (both below 0x80, so flipping their
    // bits keeps each byte's high bit: one `!v & HIGH` serves all three tests).
    let word = |c: &[u8; 8]| {
        let v = u64::from_le_bytes(*c);
        let quote = v ^ (ONES * u64::from(b'"'));
        let backslash = v ^ (ONES * u64::from(b'\\'));
        (v.wrapping_sub(ONES * 0x20) | quote.wrapping_sub(ONES) | backslash.wrapping_sub(ONES))
            & !v
            & HIGH
            != 0
    };
    let Some(last) = s.last_chunk::<8>() else {
        // 4 to 7 bytes (short keys, levels, ids): the first four and the last four,
        // overlapping, side by side in one word.
        if let (Some(a), Some(b)) = (s.first_chunk::<4>(), s.last_chunk::<4>()) {
            let mut w = [0u8; 8];
            w[..4].copy_from_slice(a);
            w[4..].copy_from_slice(b);
            return word(&w);
        }
        return s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    };
    let mut chunks = s.chunks_exact(8);
    if chunks.any(|c| c.first_chunk::<8>().is_some_and(word)) {
        return true;
    }
    !chunks.remainder().is_empty() && word(last)
}

/// An HTTP transaction, the bytes `serde_json` writes for it; strings, headers,
/// query parameters and numbers written directly, bodies through `serde_json`.
fn write_transaction(out: &mut Vec<u8>, h: &HttpTransaction) -> serde_json::Result<()> {
    let q = &h.request;
    out.extend_from_slice(b"{\"request\":{\"method\":");
    write_str(out, &q.method)?;
    out.extend_from_slice(b",\"path\":");
    write_str(out, &q.path)?;
    if let Some(route) = &q.route {
        out.extend_from_slice(b",\"route\":");
        write_str(out, route)?;
    }
    write_object(out, "query_params", q.query.iter(), write_value)?;
    write_object(out, "headers", q.headers.iter(), write_str)?;
    for (key, v) in [("client_ip", &q.client_ip), ("user_agent", &q.user_agent)] {
        if let Some(v) = v {
            write_key(out, key);
            write_str(out, v)?;
        }
    }
    if let Some(b) = &q.body {
        out.extend_from_slice(b",\"body\":");
        serde_json::to_writer(&mut *out, b)?;
    }
    out.push(b'}');
    if let Some(r) = &h.response {
        out.extend_from_slice(b",\"response\":{\"status_code\":");
        out.extend_from_slice(itoa::Buffer::new().format(r.status_code).as_bytes());
        if let Some(ct) = &r.content_type {
            out.extend_from_slice(b",\"content_type\":");
            write_str(out, ct)?;
        }
        write_object(out, "headers", r.headers.iter(), write_str)?;
        if let Some(b) = &r.body {
            out.extend_from_slice(b",\"body\":");
            serde_json::to_writer(&mut *out, b)?;
        }
        out.push(b'}');
    }
    out.extend_from_slice(b",\"duration_ms\":");
    serde_json::to_writer(&mut *out, &h.duration_ms)?;
    out.push(b'}');
    Ok(())
}

/// `,"<key>":{…}` with `entries` as its members, each value written by `write`;
/// nothing when there are no entries.
fn write_object<K: AsRef<str>, V>(
    out: &mut Vec<u8>,
    key: &str,
    entries: impl ExactSizeIterator<Item = (K, V)>,
    mut write: impl FnMut(&mut Vec<u8>, V) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    if entries.len() == 0 {
        return Ok(());
    }
    write_key(out, key);
    out.push(b'{');
    for (i, (k, v)) in entries.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k.as_ref())?;
        out.push(b':');
        write(out, v)?;
    }
    out.push(b'}');
    Ok(())
}

/// A context value: strings, bools and null directly, anything else through
/// `serde_json` (numbers, nested objects and arrays).
fn write_value(out: &mut Vec<u8>, v: &serde_json::Value) -> serde_json::Result<()> {
    use serde_json::Value;
    match v {
        Value::String(s) => write_str(out, s),
        Value::Null => {
            out.extend_from_slice(b"null");
            Ok(())
        }
        Value::Bool(b) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" });
            Ok(())
        }
        // Integers as serde_json writes them (itoa); floats through serde_json.
        Value::Number(n) if n.is_u64() || n.is_i64() => {
            let mut buf = itoa::Buffer::new();
            let text = match n.as_u64() {
                Some(u) => buf.format(u),
                None => buf.format(n.as_i64().unwrap_or_default()),
            };
            out.extend_from_slice(text.as_bytes());
            Ok(())
        }
        other => serde_json::to_writer(&mut *out, other),
    }
}

/// Encodes one record as a JSON object followed by `\n` (one NDJSON line). JSON
/// string escaping guarantees the line contains no raw CR or LF.
///
/// # Errors
/// As [`encode_json`].
pub fn encode_json_line(
    record: &Record,
    service: &ServiceInfo,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    encode_json(record, service, out)?;
    out.push(b'\n');
    Ok(())
}

/// Formats nanoseconds since the Unix epoch as RFC 3339 UTC with microseconds:
/// `2025-03-09T11:41:29.000123Z`.
pub fn format_timestamp(ns: u64) -> String {
    let mut out = Vec::with_capacity(27);
    push_timestamp(&mut out, ns);
    // Only ASCII digits and separators are written.
    String::from_utf8(out).unwrap_or_default()
}

/// [`push_timestamp`], reusing the date and time text of `cache` when `ns` falls in
/// the same second as the last call, and remembering this second otherwise.
fn push_timestamp_cached(out: &mut Vec<u8>, ns: u64, cache: &Cell<(u64, [u8; 19])>) {
    let secs = ns / 1_000_000_000;
    let (cached_secs, text) = cache.get();
    if cached_secs != secs {
        let start = out.len();
        push_timestamp(out, ns);
        let mut text = [0u8; 19];
        text.copy_from_slice(&out[start..start + 19]);
        cache.set((secs, text));
        return;
    }
    let mut b = [0u8; 27];
    b[..19].copy_from_slice(&text);
    b[19] = b'.';
    let mut micros = ((ns % 1_000_000_000) / 1_000) as u32;
    for i in (20..26).rev() {
        b[i] = b'0' + (micros % 10) as u8;
        micros /= 10;
    }
    b[26] = b'Z';
    out.extend_from_slice(&b);
}

/// Appends [`format_timestamp`]'s text to `out` without an intermediate `String`.
fn push_timestamp(out: &mut Vec<u8>, ns: u64) {
    let secs = (ns / 1_000_000_000) as i64;
    let micros = ((ns % 1_000_000_000) / 1_000) as u32;
    let (y, mo, d, h, mi, s) = civil_from_unix(secs);
    // u64 nanoseconds end in the year 2554: always four digits.
    let y = y as u32;
    let mut b = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for i in (at..at + width).rev() {
            b[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, mo);
    put(8, 2, d);
    put(11, 2, h);
    put(14, 2, mi);
    put(17, 2, s);
    put(20, 6, micros);
    out.extend_from_slice(&b);
}

/// Unix seconds → (year, month, day, hour, minute, second), proleptic Gregorian UTC.
/// Howard Hinnant's `civil_from_days` algorithm.
fn civil_from_unix(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let mut y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    if m <= 2 {
        y += 1;
    }
    (
        y,
        m,
        d,
        (rem / 3_600) as u32,
        ((rem % 3_600) / 60) as u32,
        (rem % 60) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{HttpRequest, HttpResponse, HttpTransaction, Level};

    #[test]
    fn timestamp_matches_time_crate() {
        for ns in [
            0u64,
            1_741_520_489_000_123_456,
            951_782_400_000_000_000,
            4_102_444_799_999_999_999,
        ] {
            let ours = format_timestamp(ns);
            let dt =
                time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns)).expect("in range");
            let theirs = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.microsecond()
            );
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn transaction_lands_in_context_like_the_loggier_example() {
        let mut req = HttpRequest {
            method: "GET".into(),
            path: "/api/v1/templates/".into(),
            ..HttpRequest::default()
        };
        req.query.insert("limit".into(), "100".into());
        let mut tx = HttpTransaction::new(req);
        tx.response = Some(HttpResponse {
            status_code: 500,
            ..HttpResponse::default()
        });
        let mut r = Record::new(Level::Error, "Server error: GET /api/v1/templates/ - 500")
            .with_field("user", "u1")
            .with_http(tx);
        r.request_id = Some("req-1".into());
        let svc = ServiceInfo {
            service: "api".into(),
            environment: "production".into(),
            ..ServiceInfo::default()
        };
        let mut out = Vec::new();
        encode_json(&r, &svc, &mut out).expect("encodes");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid json");
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["service"], "api");
        assert_eq!(v["context"]["user"], "u1");
        assert_eq!(v["context"]["request_id"], "req-1");
        assert_eq!(v["context"]["transaction"]["request"]["method"], "GET");
        assert_eq!(
            v["context"]["transaction"]["request"]["query_params"]["limit"],
            "100"
        );
        assert_eq!(v["context"]["transaction"]["response"]["status_code"], 500);
        assert!(v.get("project").is_none());
    }

    fn via_serde(r: &Record, svc: &ServiceInfo) -> Vec<u8> {
        serde_json::to_vec(&JsonRecord {
            record: r,
            service: svc,
        })
        .expect("serde encodes")
    }

    #[test]
    fn direct_encoder_writes_the_bytes_serde_json_writes() {
        use crate::record::{BodyContent, CapturedBody, Exception, Timing, TimingKind};
        use serde_json::json;
        let full = ServiceInfo {
            service: "api \"quoted\"".into(),
            environment: "prod".into(),
            project: Some("shop".into()),
            version: Some("1.4.2".into()),
            revision: Some("abc".into()),
            host: Some("h\u{1}".into()),
        };
        let bare = ServiceInfo::default();
        let mut req = HttpRequest {
            method: "POST".into(),
            path: "/p".into(),
            ..HttpRequest::default()
        };
        req.headers.insert("x-a".into(), "b\nc".into());
        let mut full_req = HttpRequest {
            method: "PURGE".into(),
            path: "/orders/7 \"x\"".into(),
            route: Some("/orders/{id}".into()),
            client_ip: Some("203.0.113.7".into()),
            user_agent: Some("curl/8".into()),
            body: Some(CapturedBody {
                content: BodyContent::Json(json!({"a": [1, "x"], "b": null})),
                truncated: false,
                size_bytes: 20,
            }),
            ..HttpRequest::default()
        };
        full_req.query.insert("limit".into(), "100".into());
        full_req.query.insert("n".into(), json!(3));
        full_req.headers.insert("host".into(), "h".into());
        full_req
            .headers
            .insert("user-agent".into(), "curl/8".into());
        let mut full_tx = HttpTransaction::new(full_req);
        full_tx.duration_ms = 12.345;
        let mut resp = HttpResponse {
            status_code: 503,
            content_type: Some("text/plain".into()),
            body: Some(CapturedBody {
                content: BodyContent::Text("down\n".into()),
                truncated: true,
                size_bytes: 9000,
            }),
            ..HttpResponse::default()
        };
        resp.headers
            .insert("content-type".into(), "text/plain".into());
        resp.headers.insert("x-request-id".into(), "r\u{1}".into());
        full_tx.response = Some(resp);
        let mut binary_tx = HttpTransaction::new(HttpRequest::default());
        binary_tx.duration_ms = f64::NAN;
        binary_tx.response = Some(HttpResponse {
            status_code: 200,
            body: Some(CapturedBody {
                content: BodyContent::Binary {
                    content_type: Some("image/png".into()),
                    len: 4096,
                },
                truncated: false,
                size_bytes: 4096,
            }),
            ..HttpResponse::default()
        });
        let mut with_http = Record::new(
            Level::Warning,
            "tab\there, quote \" and \\ and é and \u{7f}",
        )
        .with_http(HttpTransaction::new(req))
        .with_field("transaction", "shadowed")
        .with_field("request_id", "shadowed too")
        .with_field("k", 1);
        with_http.request_id = Some("req-9".into());
        let mut traced = Record::new(Level::Critical, "")
            .with_tag("a")
            .with_tag("b\"c")
            .with_exception(Exception::new("io", "disk \u{0} full"))
            .with_timing(Timing::new("f", TimingKind::Database, 1.25));
        traced.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        traced.span_id = Some("00f067aa0ba902b7".into());
        let records = [
            Record::new(Level::Info, "plain").with_timestamp_ns(0),
            Record::new(Level::Debug, "fields")
                .with_timestamp_ns(4_102_444_799_999_999_999)
                .with_field("i", -5)
                .with_field("u", u64::MAX)
                .with_field("f", 1.5)
                .with_field("f32", serde_json::to_value(1.1f32).expect("f32"))
                .with_field("b", true)
                .with_field("n", serde_json::Value::Null)
                .with_field("s", "/orders/{id}")
                .with_field("esc\nkey", "ctl \u{1f}")
                .with_field("nested", json!({"a": [1, "x", {"b": null}], "c": 2.5})),
            with_http,
            traced,
            Record::new(Level::Error, "only request id").with_field("request_id", "kept"),
            Record::new(Level::Info, "full transaction").with_http(full_tx),
            Record::new(Level::Info, "binary body").with_http(binary_tx),
        ];
        for r in &records {
            for svc in [&full, &bare] {
                let mut out = Vec::new();
                encode_json(r, svc, &mut out).expect("encodes");
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&via_serde(r, svc))
                );
            }
        }
    }

    #[test]
    fn one_batch_writes_what_serde_json_writes_for_each_record() {
        // Records sharing a second (the cached date and time), moving back and
        // forward across seconds, and every integer shape written without serde_json.
        let svc = ServiceInfo {
            service: "api".into(),
            environment: "prod".into(),
            ..ServiceInfo::default()
        };
        let base = 1_741_520_489_000_000_000u64;
        let stamps = [
            base,
            base + 123_456,
            base + 999_999_999,
            base + 1_000_000_000,
            base + 5,
            0,
            base + 1_000_999_000,
        ];
        let values = [
            serde_json::json!(0),
            serde_json::json!(-1),
            serde_json::json!(i64::MIN),
            serde_json::json!(u64::MAX),
            serde_json::json!(i64::MAX),
            serde_json::json!(-0.0),
            serde_json::json!(1e300),
        ];
        let shared = ServiceJson::new(&svc).expect("service");
        let mut batch = Vec::new();
        let mut want = Vec::new();
        for (ns, v) in stamps.iter().zip(values) {
            let r = Record::new(Level::Info, "m")
                .with_timestamp_ns(*ns)
                .with_field("v", v);
            encode_json_line_with(&r, &shared, &mut batch).expect("encodes");
            want.extend_from_slice(&via_serde(&r, &svc));
            want.push(b'\n');
        }
        assert_eq!(
            String::from_utf8_lossy(&batch),
            String::from_utf8_lossy(&want)
        );
    }

    #[test]
    fn escape_check_finds_every_byte_that_needs_one() {
        for len in 1..=17 {
            for b in 0u8..=0xff {
                for at in 0..len {
                    let mut text = vec![b'a'; len];
                    text[at] = b;
                    let want = b < 0x20 || b == b'"' || b == b'\\';
                    assert_eq!(needs_escape(&text), want, "byte {b:#x} at {at} of {len}");
                }
            }
        }
        assert!(!needs_escape(b""));
        assert!(!needs_escape("é and ✓ and 😀 over eight bytes".as_bytes()));
        for short in ["é✓", "😀ab", "aé\u{7f}", "✓✓"] {
            assert!(!needs_escape(short.as_bytes()), "{short}");
        }
    }

    #[test]
    fn timestamp_writer_matches_the_formatter_at_the_edges() {
        for ns in [
            0,
            999,
            1_000,
            59_999_999_999,
            951_868_800_123_456_789,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            push_timestamp(&mut out, ns);
            let secs = (ns / 1_000_000_000) as i64;
            let (y, mo, d, h, mi, s) = civil_from_unix(secs);
            let micros = (ns % 1_000_000_000) / 1_000;
            assert_eq!(
                String::from_utf8(out).expect("ascii"),
                format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{micros:06}Z")
            );
        }
    }
}
