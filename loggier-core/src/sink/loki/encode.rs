//! Batch → Loki push requests: streams by label set, entries in time order, long
//! lines truncated, requests split to stay under the size limit.

use std::collections::BTreeMap;
use std::ops::Range;

use prost::Message as _;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use super::proto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter};
use super::{LineFormat, PushFormat};
use crate::error::{Error, ErrorKind};
use crate::record::{Level, Record, ServiceInfo, encode_json};
use crate::sink::{Payload, encode_logfmt_line};

/// Longest label value sent, bytes (Loki's `max_label_value_length` default, 2048);
/// a longer service or environment name is cut at a character boundary.
pub(crate) const MAX_LABEL_VALUE_BYTES: usize = 2048;
/// Longest structured-metadata value sent, bytes; longer values are cut at a
/// character boundary. Loki's default cap for all metadata of one entry is 64 000 bytes.
pub(crate) const MAX_METADATA_VALUE_BYTES: usize = 1024;
/// Empty JSON push body, `{"streams":[]}`: the fixed part of every JSON request.
const JSON_ENVELOPE: &[u8] = b"{\"streams\":[]}";

/// Label (or metadata) pairs, sorted by name where it matters.
type Pairs = Vec<(String, String)>;
/// Entries of one request, grouped by stream index.
type Parts = Vec<(usize, Vec<EntryAdapter>)>;

/// Encoding settings of one Loki sink (validated by the builder).
#[derive(Debug, Clone)]
pub(crate) struct LokiEncoder {
    /// Static labels, sorted by name, names validated.
    pub(crate) static_labels: Vec<(String, String)>,
    /// Context keys copied to structured metadata, after the built-in ones.
    pub(crate) metadata_fields: Vec<String>,
    /// Context keys whose scalar value becomes a label of the record's stream
    /// (overriding a built-in label of the same name); empty by default.
    pub(crate) label_fields: Vec<String>,
    pub(crate) line_format: LineFormat,
    pub(crate) push_format: PushFormat,
    pub(crate) max_line_bytes: usize,
    pub(crate) max_request_bytes: usize,
}

/// One log line before it is framed for the wire.
#[derive(Debug)]
struct Entry {
    ts_ns: u64,
    line: String,
    metadata: Vec<(String, String)>,
}

/// A label set and its entries, oldest first.
#[derive(Debug)]
struct Stream {
    /// Label pairs sorted by name.
    labels: Vec<(String, String)>,
    /// Prometheus text form of `labels`, the stream key.
    labels_text: String,
    entries: Vec<Entry>,
}

impl LokiEncoder {
    /// Encodes a batch into one or more push request bodies (snappy-compressed
    /// protobuf or JSON), each at most `max_request_bytes` long unless a single entry
    /// alone is larger.
    pub(crate) fn encode(
        &self,
        records: &[Record],
        service: &ServiceInfo,
    ) -> Result<Vec<Payload>, Error> {
        let streams = self.group(records, service)?;
        match self.push_format {
            PushFormat::Protobuf => self.encode_protobuf(streams),
            PushFormat::Json => self.encode_json(streams),
        }
    }

    /// The label pairs of a record of `level`, sorted by name: `environment`, `level`,
    /// `service` and the static labels. Empty service/environment names are left out.
    pub(crate) fn labels(&self, level: Level, service: &ServiceInfo) -> Vec<(String, String)> {
        let mut labels: Vec<(String, String)> = Vec::with_capacity(3 + self.static_labels.len());
        if !service.environment.is_empty() {
            labels.push((
                "environment".into(),
                cut_at_char_boundary(&service.environment, MAX_LABEL_VALUE_BYTES).to_string(),
            ));
        }
        labels.push(("level".into(), level.as_lower().into()));
        if !service.service.is_empty() {
            labels.push((
                "service".into(),
                cut_at_char_boundary(&service.service, MAX_LABEL_VALUE_BYTES).to_string(),
            ));
        }
        labels.extend(self.static_labels.iter().cloned());
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        labels
    }

    fn group(&self, records: &[Record], service: &ServiceInfo) -> Result<Vec<Stream>, Error> {
        // Labels depend on the level only (service identity is fixed per batch), so
        // compute each level's label set once.
        let mut per_level: [Option<(Pairs, String)>; 6] = Default::default();
        let mut streams: BTreeMap<String, Stream> = BTreeMap::new();
        let mut buf = Vec::with_capacity(512);
        for r in records {
            let (labels, text) = per_level[r.level as usize].get_or_insert_with(|| {
                let labels = self.labels(r.level, service);
                let text = render_labels(&labels);
                (labels, text)
            });
            let own = self.record_labels(r, labels);
            let (labels, text) = match &own {
                Some((l, t)) => (l, t),
                None => (&*labels, &*text),
            };
            let entry = self.entry(r, service, &mut buf)?;
            streams
                .entry(text.clone())
                .or_insert_with(|| Stream {
                    labels: labels.clone(),
                    labels_text: text.clone(),
                    entries: Vec::new(),
                })
                .entries
                .push(entry);
        }
        let mut out: Vec<Stream> = streams.into_values().collect();
        for s in &mut out {
            // Stable: entries with equal timestamps keep the order they were logged in.
            s.entries.sort_by_key(|e| e.ts_ns);
        }
        Ok(out)
    }

    /// The record's own label set when one of the label fields is set in its context
    /// (a non-empty scalar), else `None` (the level's shared set applies).
    fn record_labels(&self, r: &Record, base: &[(String, String)]) -> Option<(Pairs, String)> {
        if self.label_fields.is_empty() {
            return None;
        }
        let mut labels: Option<Pairs> = None;
        for key in &self.label_fields {
            let Some(v) = r.context.get(key).and_then(scalar_text) else {
                continue;
            };
            if v.is_empty() {
                continue;
            }
            let v = cut_owned(v, MAX_LABEL_VALUE_BYTES);
            let l = labels.get_or_insert_with(|| base.to_vec());
            match l.iter_mut().find(|(k, _)| k == key) {
                Some(pair) => pair.1 = v,
                None => l.push((key.clone(), v)),
            }
        }
        let mut labels = labels?;
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let text = render_labels(&labels);
        Some((labels, text))
    }

    fn entry(&self, r: &Record, service: &ServiceInfo, buf: &mut Vec<u8>) -> Result<Entry, Error> {
        buf.clear();
        match self.line_format {
            LineFormat::Json => encode_json(r, service, buf)
                .map_err(|e| Error::with_source(ErrorKind::Encode, "json encoding failed", e))?,
            LineFormat::Logfmt => {
                encode_logfmt_line(r, service, buf);
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
            }
        }
        let line = std::str::from_utf8(buf)
            .map_err(|e| Error::with_source(ErrorKind::Encode, "log line is not utf-8", e))?;
        Ok(Entry {
            ts_ns: r.timestamp_ns,
            line: truncate_line(line, self.max_line_bytes),
            metadata: self.metadata(r),
        })
    }

    /// Structured metadata of a record: `request_id`, `trace_id`, `span_id`, `route`
    /// (typed record fields first, else the context key of that name), then the
    /// configured context keys. Only scalar values are taken.
    fn metadata(&self, r: &Record) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        let route = r.http.as_ref().and_then(|h| h.request.route.as_deref());
        let typed: [(&str, Option<&str>); 4] = [
            ("request_id", r.request_id.as_deref()),
            ("trace_id", r.trace_id.as_deref()),
            ("span_id", r.span_id.as_deref()),
            ("route", route),
        ];
        for (key, value) in typed {
            let value = match value {
                Some(v) => Some(v.to_string()),
                None => r.context.get(key).and_then(scalar_text),
            };
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                out.push((key.to_string(), cut_owned(v, MAX_METADATA_VALUE_BYTES)));
            }
        }
        for key in &self.metadata_fields {
            if out.iter().any(|(k, _)| k == key) {
                continue;
            }
            if let Some(v) = r.context.get(key).and_then(scalar_text) {
                if !v.is_empty() {
                    out.push((key.clone(), cut_owned(v, MAX_METADATA_VALUE_BYTES)));
                }
            }
        }
        out
    }

    fn encode_protobuf(&self, streams: Vec<Stream>) -> Result<Vec<Payload>, Error> {
        let mut entries: Vec<Vec<EntryAdapter>> = Vec::with_capacity(streams.len());
        let mut costs: Vec<Vec<usize>> = Vec::with_capacity(streams.len());
        let mut overheads = Vec::with_capacity(streams.len());
        let mut labels = Vec::with_capacity(streams.len());
        for s in streams {
            let adapters: Vec<EntryAdapter> = s.entries.into_iter().map(to_adapter).collect();
            // Field 2 of StreamAdapter: key + length varint + message.
            costs.push(
                adapters
                    .iter()
                    .map(|e| {
                        let len = e.encoded_len();
                        prost::encoding::key_len(2)
                            + prost::encoding::encoded_len_varint(len as u64)
                            + len
                    })
                    .collect(),
            );
            // Field 1 of PushRequest (key + at most 10 length bytes) plus the labels field.
            let label_len = s.labels_text.len();
            overheads.push(
                prost::encoding::key_len(1)
                    + 10
                    + prost::encoding::key_len(1)
                    + prost::encoding::encoded_len_varint(label_len as u64)
                    + label_len,
            );
            entries.push(adapters);
            labels.push(s.labels_text);
        }
        let plan = plan_requests(&overheads, &costs, 0, self.max_request_bytes);
        let mut sources: Vec<std::vec::IntoIter<EntryAdapter>> =
            entries.into_iter().map(Vec::into_iter).collect();
        let mut out = Vec::with_capacity(plan.len());
        for request in plan {
            let mut parts: Parts = Vec::with_capacity(request.len());
            for (s, range) in request {
                let taken: Vec<EntryAdapter> = sources[s].by_ref().take(range.len()).collect();
                parts.push((s, taken));
            }
            self.emit_protobuf(&labels, parts, &mut out)?;
        }
        Ok(out)
    }

    /// Encodes and compresses one request; when snappy makes it larger than the limit
    /// (incompressible lines), splits it in two and tries again.
    fn emit_protobuf(
        &self,
        labels: &[String],
        parts: Parts,
        out: &mut Vec<Payload>,
    ) -> Result<(), Error> {
        let count: usize = parts.iter().map(|(_, e)| e.len()).sum();
        let ids: Vec<usize> = parts.iter().map(|(s, _)| *s).collect();
        let request = PushRequest {
            streams: parts
                .into_iter()
                .map(|(s, entries)| StreamAdapter {
                    labels: labels[s].clone(),
                    entries,
                    hash: 0,
                })
                .collect(),
            format: String::new(),
        };
        let raw = request.encode_to_vec();
        let body = snap::raw::Encoder::new()
            .compress_vec(&raw)
            .map_err(|e| Error::with_source(ErrorKind::Encode, "snappy compression failed", e))?;
        if body.len() > self.max_request_bytes && count > 1 {
            let parts: Parts = ids
                .into_iter()
                .zip(request.streams)
                .map(|(s, stream)| (s, stream.entries))
                .collect();
            let (first, second) = split_parts(parts, count / 2);
            self.emit_protobuf(labels, first, out)?;
            return self.emit_protobuf(labels, second, out);
        }
        out.push(Payload::new(body, count_u32(count)));
        Ok(())
    }

    fn encode_json(&self, streams: Vec<Stream>) -> Result<Vec<Payload>, Error> {
        let mut bodies: Vec<Vec<Vec<u8>>> = Vec::with_capacity(streams.len());
        let mut heads: Vec<Vec<u8>> = Vec::with_capacity(streams.len());
        for s in &streams {
            let mut encoded = Vec::with_capacity(s.entries.len());
            for e in &s.entries {
                encoded.push(serde_json::to_vec(&JsonEntry(e)).map_err(|err| {
                    Error::with_source(ErrorKind::Encode, "json encoding failed", err)
                })?);
            }
            bodies.push(encoded);
            heads.push(serde_json::to_vec(&JsonLabels(&s.labels)).map_err(|err| {
                Error::with_source(ErrorKind::Encode, "json encoding failed", err)
            })?);
        }
        // `{"stream":<labels>,"values":[]}` plus a separating comma.
        let overheads: Vec<usize> = heads.iter().map(|h| h.len() + 24 + 1).collect();
        let costs: Vec<Vec<usize>> = bodies
            .iter()
            .map(|b| b.iter().map(|e| e.len() + 1).collect())
            .collect();
        let plan = plan_requests(
            &overheads,
            &costs,
            JSON_ENVELOPE.len(),
            self.max_request_bytes,
        );
        let mut out = Vec::with_capacity(plan.len());
        for request in plan {
            let mut body = Vec::with_capacity(self.max_request_bytes.min(1 << 20));
            body.extend_from_slice(b"{\"streams\":[");
            let mut count = 0usize;
            for (i, (s, range)) in request.into_iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(b"{\"stream\":");
                body.extend_from_slice(&heads[s]);
                body.extend_from_slice(b",\"values\":[");
                for (j, e) in bodies[s][range.clone()].iter().enumerate() {
                    if j > 0 {
                        body.push(b',');
                    }
                    body.extend_from_slice(e);
                }
                body.extend_from_slice(b"]}");
                count += range.len();
            }
            body.extend_from_slice(b"]}");
            out.push(Payload::new(body, count_u32(count)));
        }
        Ok(out)
    }
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn to_adapter(e: Entry) -> EntryAdapter {
    EntryAdapter {
        timestamp: Some(prost_types::Timestamp {
            seconds: i64::try_from(e.ts_ns / 1_000_000_000).unwrap_or(i64::MAX),
            // Always < 1e9, fits.
            nanos: (e.ts_ns % 1_000_000_000) as i32,
        }),
        line: e.line,
        structured_metadata: e
            .metadata
            .into_iter()
            .map(|(name, value)| LabelPairAdapter { name, value })
            .collect(),
        parsed: Vec::new(),
    }
}

/// Splits a request's parts after `at` entries (counted across streams, in order).
fn split_parts(parts: Parts, at: usize) -> (Parts, Parts) {
    let mut first = Vec::new();
    let mut second = Vec::new();
    let mut seen = 0usize;
    for (s, mut entries) in parts {
        if seen >= at {
            second.push((s, entries));
        } else if seen + entries.len() <= at {
            seen += entries.len();
            first.push((s, entries));
        } else {
            let tail = entries.split_off(at - seen);
            seen = at;
            first.push((s, entries));
            second.push((s, tail));
        }
    }
    (first, second)
}

/// Greedy split of streams' entries into requests: entries are taken stream by stream
/// in order; a request closes when the next entry would take it past `limit`. A stream
/// costs `overheads[s]` in each request it appears in, an entry `costs[s][e]`, a
/// request `base`. Returns, per request, the entry range taken from each stream.
/// An entry that alone exceeds the limit gets a request of its own.
fn plan_requests(
    overheads: &[usize],
    costs: &[Vec<usize>],
    base: usize,
    limit: usize,
) -> Vec<Vec<(usize, Range<usize>)>> {
    let mut out = Vec::new();
    let mut current: Vec<(usize, Range<usize>)> = Vec::new();
    let mut size = base;
    for (s, entry_costs) in costs.iter().enumerate() {
        for (e, &cost) in entry_costs.iter().enumerate() {
            let open = matches!(current.last(), Some((last, _)) if *last == s);
            let add = if open { cost } else { cost + overheads[s] };
            if size + add > limit && !current.is_empty() {
                out.push(std::mem::take(&mut current));
                size = base + cost + overheads[s];
                current.push((s, e..e + 1));
                continue;
            }
            size += add;
            match current.last_mut() {
                Some((last, range)) if *last == s => range.end = e + 1,
                _ => current.push((s, e..e + 1)),
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Cuts `line` to at most `max` bytes, ending it with
/// `...[truncated: <original length> bytes]` (see [`super::LokiSinkBuilder::max_line_bytes`]).
pub(crate) fn truncate_line(line: &str, max: usize) -> String {
    if line.len() <= max {
        return line.to_string();
    }
    let marker = format!("...[truncated: {} bytes]", line.len());
    let keep = max.saturating_sub(marker.len());
    let mut out = String::with_capacity(max);
    out.push_str(cut_at_char_boundary(line, keep));
    out.push_str(&marker);
    out
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub(crate) fn cut_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn cut_owned(mut s: String, max: usize) -> String {
    let end = cut_at_char_boundary(&s, max).len();
    s.truncate(end);
    s
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Renders a sorted label set in the Prometheus text form Loki parses:
/// `{environment="prod", level="info", service="api"}`. Values are escaped as Go
/// string literals (`\\`, `\"`, `\n`, `\r`, `\t`, other control characters `\uXXXX`).
pub(crate) fn render_labels(labels: &[(String, String)]) -> String {
    let mut out = String::with_capacity(16 + labels.len() * 24);
    out.push('{');
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// `["<ns>", "<line>"]` or `["<ns>", "<line>", {metadata}]` — one value of a JSON push.
struct JsonEntry<'a>(&'a Entry);

impl serde::Serialize for JsonEntry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.0;
        let with_meta = !e.metadata.is_empty();
        let mut seq = s.serialize_seq(Some(if with_meta { 3 } else { 2 }))?;
        seq.serialize_element(&e.ts_ns.to_string())?;
        seq.serialize_element(&e.line)?;
        if with_meta {
            seq.serialize_element(&JsonLabels(&e.metadata))?;
        }
        seq.end()
    }
}

/// A list of string pairs as a JSON object.
struct JsonLabels<'a>(&'a [(String, String)]);

impl serde::Serialize for JsonLabels<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_fields_give_each_record_its_own_stream() {
        let enc = LokiEncoder {
            static_labels: Vec::new(),
            metadata_fields: Vec::new(),
            label_fields: vec!["service".into(), "component".into()],
            line_format: LineFormat::Json,
            push_format: PushFormat::Protobuf,
            max_line_bytes: 1024,
            max_request_bytes: 1 << 20,
        };
        let svc = ServiceInfo {
            service: "relay".into(),
            environment: "prod".into(),
            ..ServiceInfo::default()
        };
        let records = [
            Record::new(Level::Info, "a")
                .with_field("service", "app")
                .with_field("component", "pubsub"),
            Record::new(Level::Info, "b").with_field("component", "web"),
            Record::new(Level::Info, "c").with_field("component", serde_json::json!({"x": 1})),
        ];
        let streams = enc.group(&records, &svc).expect("groups");
        let texts: Vec<&str> = streams.iter().map(|s| s.labels_text.as_str()).collect();
        assert_eq!(
            texts,
            [
                r#"{component="pubsub", environment="prod", level="info", service="app"}"#,
                r#"{component="web", environment="prod", level="info", service="relay"}"#,
                r#"{environment="prod", level="info", service="relay"}"#,
            ]
        );
    }

    #[test]
    fn plan_splits_greedily_and_keeps_order() {
        // Two streams, overhead 10 each, entries of 30; limit 100.
        let costs = vec![vec![30, 30, 30, 30], vec![30, 30]];
        let plan = plan_requests(&[10, 10], &costs, 0, 100);
        assert_eq!(
            plan,
            vec![vec![(0, 0..3)], vec![(0, 3..4), (1, 0..1)], vec![(1, 1..2)],]
        );
        // An entry bigger than the limit is alone.
        let plan = plan_requests(&[0], &[vec![5, 500, 5]], 0, 100);
        assert_eq!(
            plan,
            vec![vec![(0, 0..1)], vec![(0, 1..2)], vec![(0, 2..3)]]
        );
    }

    #[test]
    fn compressed_requests_over_the_limit_are_split_again() {
        // Random printable lines: snappy cannot shrink them, so a request whose raw size
        // was planned under the limit can still come out over it; the encoder must
        // halve it until every body fits.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut noise = |n: usize| -> String {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from(b'!' + (x % 90) as u8)
                })
                .collect()
        };
        let enc = LokiEncoder {
            static_labels: Vec::new(),
            metadata_fields: Vec::new(),
            label_fields: Vec::new(),
            line_format: LineFormat::Json,
            push_format: PushFormat::Protobuf,
            max_line_bytes: 1024,
            max_request_bytes: 4096,
        };
        let entries: Vec<EntryAdapter> = (0..10u64)
            .map(|i| {
                to_adapter(Entry {
                    ts_ns: i,
                    line: noise(1000),
                    metadata: Vec::new(),
                })
            })
            .collect();
        let labels = vec!["{level=\"info\"}".to_string()];
        let mut out = Vec::new();
        enc.emit_protobuf(&labels, vec![(0, entries)], &mut out)
            .expect("encodes");
        assert!(out.len() >= 3, "split into {} payloads", out.len());
        assert_eq!(out.iter().map(|p| p.records).sum::<u32>(), 10);
        let mut seen = Vec::new();
        for p in &out {
            assert!(p.len_bytes() <= 4096, "{}", p.len_bytes());
            let raw = snap::raw::Decoder::new()
                .decompress_vec(&p.bytes)
                .expect("snappy");
            let req = PushRequest::decode(raw.as_slice()).expect("proto");
            for s in req.streams {
                seen.extend(
                    s.entries
                        .iter()
                        .filter_map(|e| e.timestamp.map(|t| t.nanos)),
                );
            }
        }
        assert_eq!(
            seen,
            (0..10).collect::<Vec<i32>>(),
            "order kept across splits"
        );
    }

    #[test]
    fn truncation_respects_limit_and_char_boundaries() {
        let line = "é".repeat(1000); // 2000 bytes
        let cut = truncate_line(&line, 300);
        assert!(cut.len() <= 300, "{}", cut.len());
        assert!(cut.ends_with("...[truncated: 2000 bytes]"), "{cut}");
        assert!(cut.starts_with("éé"));
        assert_eq!(truncate_line("short", 300), "short");
    }

    #[test]
    fn labels_render_escaped_and_sorted() {
        let labels = vec![
            ("a".to_string(), "x\"y\\z\n".to_string()),
            ("b".to_string(), "\u{1}".to_string()),
        ];
        assert_eq!(render_labels(&labels), r#"{a="x\"y\\z\n", b="\u0001"}"#);
    }
}
