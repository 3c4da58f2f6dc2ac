use serde::ser::{SerializeMap, Serializer};

use super::{Record, ServiceInfo};

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
/// # Errors
/// Only if a context value cannot be serialized, which `serde_json::Value` never does;
/// the `Result` is kept so sinks can use `?`.
pub fn encode_json(
    record: &Record,
    service: &ServiceInfo,
    out: &mut Vec<u8>,
) -> serde_json::Result<()> {
    serde_json::to_writer(out, &JsonRecord { record, service })
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
    let secs = (ns / 1_000_000_000) as i64;
    let micros = (ns % 1_000_000_000) / 1_000;
    let (y, mo, d, h, mi, s) = civil_from_unix(secs);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{micros:06}Z")
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
}
