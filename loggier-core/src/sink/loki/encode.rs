//! Batch → Loki push requests: streams by label set, entries in time order, long
//! lines truncated, requests split to stay under the size limit.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use super::{BUILTIN_METADATA, LineFormat, PushFormat};
use crate::error::{Error, ErrorKind};
use crate::record::{Level, Record, ServiceInfo, ServiceJson, encode_json_line_with};
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

/// Encoding settings of one Loki sink (validated by the builder).
#[derive(Debug, Clone)]
pub(crate) struct LokiEncoder {
    /// Static labels, sorted by name, names validated.
    pub(crate) static_labels: Vec<(String, String)>,
    /// Context keys copied to structured metadata, after the built-in ones (no
    /// built-in key, no duplicates: the builder removes them).
    pub(crate) metadata_fields: Vec<String>,
    /// Context keys whose scalar value becomes a label of the record's stream
    /// (overriding a built-in label of the same name); empty by default.
    pub(crate) label_fields: Vec<String>,
    pub(crate) line_format: LineFormat,
    pub(crate) push_format: PushFormat,
    pub(crate) max_line_bytes: usize,
    pub(crate) max_request_bytes: usize,
}

/// One log line before it is framed for the wire (JSON push format).
#[derive(Debug)]
struct Entry {
    ts_ns: u64,
    line: String,
    metadata: Vec<(String, String)>,
}

/// A label set and its entries, oldest first (JSON push format).
#[derive(Debug)]
struct Stream {
    /// Label pairs sorted by name.
    labels: Vec<(String, String)>,
    entries: Vec<Entry>,
}

/// One stream of a batch: its label set and the records that belong to it.
#[derive(Debug)]
struct Group {
    /// Label pairs sorted by name.
    labels: Pairs,
    /// Prometheus text form of `labels`, the stream key.
    labels_text: String,
    /// Indices of its records in the batch, oldest first (records with equal
    /// timestamps keep the order they were logged in).
    members: Vec<usize>,
}

/// The protobuf entries of one stream: each `EntryAdapter` framed as field 2 of
/// `StreamAdapter` (key, length, message), back to back in `bytes`; entry `e` ends
/// at `ends[e]`.
#[derive(Debug)]
struct EncodedStream {
    labels_text: String,
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl EncodedStream {
    /// Byte range of the entries `r` in `bytes`.
    fn span(&self, r: &Range<usize>) -> Range<usize> {
        let start = if r.start == 0 {
            0
        } else {
            self.ends[r.start - 1]
        };
        start..self.ends[r.end - 1]
    }
}

/// Entry ranges of one request, per stream index.
type Parts = Vec<(usize, Range<usize>)>;

/// The service identity of a batch as JSON members, encoded once for all its lines.
fn service_json(service: &ServiceInfo) -> Result<ServiceJson, Error> {
    ServiceJson::new(service)
        .map_err(|e| Error::with_source(ErrorKind::Encode, "json encoding failed", e))
}

/// Reusable buffers of one batch's encoding.
#[derive(Default)]
struct Scratch {
    line: Vec<u8>,
    metadata: Vec<u8>,
    number: String,
}

impl LokiEncoder {
    /// Encodes a batch into one or more push request bodies (snappy-compressed
    /// protobuf or JSON), each at most `max_request_bytes` long unless a single entry
    /// alone is larger.
    pub(crate) fn encode(
        &self,
        records: &[Arc<Record>],
        service: &ServiceInfo,
    ) -> Result<Vec<Payload>, Error> {
        let groups = self.group(records, service);
        match self.push_format {
            PushFormat::Protobuf => self.encode_protobuf(records, service, groups),
            PushFormat::Json => {
                let mut buf = Vec::with_capacity(512);
                let json = service_json(service)?;
                let mut streams = Vec::with_capacity(groups.len());
                for g in groups {
                    let entries = g
                        .members
                        .iter()
                        .map(|&i| self.entry(&records[i], service, &json, &mut buf))
                        .collect::<Result<Vec<Entry>, Error>>()?;
                    streams.push(Stream {
                        labels: g.labels,
                        entries,
                    });
                }
                self.encode_json(streams)
            }
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

    /// Groups the batch into streams, sorted by their label text, each with its
    /// records in timestamp order (stable).
    fn group(&self, records: &[Arc<Record>], service: &ServiceInfo) -> Vec<Group> {
        // Labels depend on the level only (service identity is fixed per batch), so
        // each level's label set and stream are looked up once, then by index.
        let mut per_level: [Option<(Pairs, String)>; 6] = Default::default();
        let mut level_group: [Option<usize>; 6] = [None; 6];
        let mut groups: Vec<Group> = Vec::new();
        // Stream index by label text, so equal label sets share one stream however
        // they were reached (a record's own labels can equal a level's set).
        let mut by_text: HashMap<String, usize> = HashMap::new();
        let mut find_or_add = |groups: &mut Vec<Group>, labels: &Pairs, text: &String| {
            if let Some(&g) = by_text.get(text) {
                return g;
            }
            groups.push(Group {
                labels: labels.clone(),
                labels_text: text.clone(),
                members: Vec::new(),
            });
            by_text.insert(text.clone(), groups.len() - 1);
            groups.len() - 1
        };
        // The stream labels of a level (service labels plus `level`) and their text,
        // computed at most once per level and batch.
        let level_labels = |level| {
            let labels = self.labels(level, service);
            let text = render_labels(&labels);
            (labels, text)
        };
        for (i, r) in records.iter().enumerate() {
            let lvl = r.level as usize;
            let own = if self.label_fields.is_empty() {
                None
            } else {
                let (labels, _) = per_level[lvl].get_or_insert_with(|| level_labels(r.level));
                self.record_labels(r, labels)
            };
            let g = match own {
                Some((labels, text)) => find_or_add(&mut groups, &labels, &text),
                None => match level_group[lvl] {
                    Some(g) => g,
                    None => {
                        let (labels, text) =
                            per_level[lvl].get_or_insert_with(|| level_labels(r.level));
                        let g = find_or_add(&mut groups, labels, text);
                        level_group[lvl] = Some(g);
                        g
                    }
                },
            };
            groups[g].members.push(i);
        }
        groups.sort_by(|a, b| a.labels_text.cmp(&b.labels_text));
        for g in &mut groups {
            if !g.members.is_sorted_by_key(|&i| records[i].timestamp_ns) {
                // Stable: entries with equal timestamps keep the order they were logged in.
                g.members.sort_by_key(|&i| records[i].timestamp_ns);
            }
        }
        groups
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

    /// Renders the record's line into `buf` (JSON, or logfmt without the newline)
    /// and returns it, truncated to `max_line_bytes`.
    /// `json` is the batch's service identity, encoded once (JSON lines only).
    fn line<'b>(
        &self,
        r: &Record,
        service: &ServiceInfo,
        json: &ServiceJson,
        buf: &'b mut Vec<u8>,
    ) -> Result<std::borrow::Cow<'b, str>, Error> {
        buf.clear();
        match self.line_format {
            LineFormat::Json => {
                encode_json_line_with(r, json, buf).map_err(|e| {
                    Error::with_source(ErrorKind::Encode, "json encoding failed", e)
                })?;
                buf.pop();
            }
            LineFormat::Logfmt => {
                encode_logfmt_line(r, service, buf);
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
            }
        }
        let line = std::str::from_utf8(buf)
            .map_err(|e| Error::with_source(ErrorKind::Encode, "log line is not utf-8", e))?;
        Ok(if line.len() > self.max_line_bytes {
            std::borrow::Cow::Owned(truncate_line(line, self.max_line_bytes))
        } else {
            std::borrow::Cow::Borrowed(line)
        })
    }

    fn entry(
        &self,
        r: &Record,
        service: &ServiceInfo,
        json: &ServiceJson,
        buf: &mut Vec<u8>,
    ) -> Result<Entry, Error> {
        let line = self.line(r, service, json, buf)?.into_owned();
        let mut metadata = Vec::new();
        let mut number = String::new();
        self.each_metadata(r, &mut number, |k, v| {
            metadata.push((k.to_string(), v.to_string()));
        });
        Ok(Entry {
            ts_ns: r.timestamp_ns,
            line,
            metadata,
        })
    }

    /// Calls `f(key, value)` for each structured-metadata pair of a record, in order:
    /// `request_id`, `trace_id`, `span_id`, `route` (typed record fields first, else
    /// the context key of that name), then the configured context keys. Only
    /// non-empty scalar values are taken, cut to [`MAX_METADATA_VALUE_BYTES`].
    /// `number` is scratch space for numbers rendered as text.
    fn each_metadata(&self, r: &Record, number: &mut String, mut f: impl FnMut(&str, &str)) {
        /// Keys looked up in one pass over a small context.
        const SLOTS: usize = 12;
        let route = r.http.as_ref().and_then(|h| h.request.route.as_deref());
        let typed: [Option<&str>; 4] = [
            r.request_id.as_deref(),
            r.trace_id.as_deref(),
            r.span_id.as_deref(),
            route,
        ];
        let key = |j: usize| -> &str {
            match BUILTIN_METADATA.get(j) {
                Some(k) => k,
                None => &self.metadata_fields[j - BUILTIN_METADATA.len()],
            }
        };
        let wanted = BUILTIN_METADATA.len() + self.metadata_fields.len();
        // A context of a few fields is scanned once for every wanted key (a string
        // compare each) instead of hashing each key; a large one is looked up.
        let scan = r.context.len() <= 16;
        let mut found: [Option<&serde_json::Value>; SLOTS] = [None; SLOTS];
        if scan {
            for (k, v) in &r.context {
                if let Some(j) = (0..wanted.min(SLOTS)).find(|&j| key(j) == k) {
                    found[j] = Some(v);
                }
            }
        }
        let context = |j: usize| -> Option<&serde_json::Value> {
            if scan && j < SLOTS {
                found[j]
            } else {
                r.context.get(key(j))
            }
        };
        for j in 0..wanted {
            let text = match typed.get(j).copied().flatten() {
                Some(v) => v,
                None => match context(j).and_then(|v| scalar_str(v, number)) {
                    Some(v) => v,
                    None => continue,
                },
            };
            if !text.is_empty() {
                f(key(j), cut_at_char_boundary(text, MAX_METADATA_VALUE_BYTES));
            }
        }
    }

    /// Writes one record as a protobuf `EntryAdapter`, framed as field 2 of
    /// `StreamAdapter`, to `out` — the bytes prost would produce for it.
    fn write_entry(
        &self,
        r: &Record,
        service: &ServiceInfo,
        json: &ServiceJson,
        scratch: &mut Scratch,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let Scratch {
            line,
            metadata,
            number,
        } = scratch;
        let line = self.line(r, service, json, line)?;
        metadata.clear();
        self.each_metadata(r, number, |k, v| {
            // LabelPairAdapter: name = 1, value = 2 (both non-empty here).
            let len = str_field_len(1, k) + str_field_len(2, v);
            encode_key(3, WireType::LengthDelimited, metadata);
            encode_varint(len as u64, metadata);
            put_str_field(1, k, metadata);
            put_str_field(2, v, metadata);
        });
        // google.protobuf.Timestamp: seconds = 1, nanos = 2, zero values left out.
        let seconds = i64::try_from(r.timestamp_ns / 1_000_000_000).unwrap_or(i64::MAX);
        // Always < 1e9, fits.
        let nanos = (r.timestamp_ns % 1_000_000_000) as i32;
        let ts_len = varint_field_len(1, seconds as u64) + varint_field_len(2, nanos as u64);
        let body_len = key_len(1)
            + encoded_len_varint(ts_len as u64)
            + ts_len
            + str_field_len(2, &line)
            + metadata.len();
        out.reserve(key_len(2) + encoded_len_varint(body_len as u64) + body_len);
        encode_key(2, WireType::LengthDelimited, out);
        encode_varint(body_len as u64, out);
        encode_key(1, WireType::LengthDelimited, out);
        encode_varint(ts_len as u64, out);
        if seconds != 0 {
            encode_key(1, WireType::Varint, out);
            encode_varint(seconds as u64, out);
        }
        if nanos != 0 {
            encode_key(2, WireType::Varint, out);
            encode_varint(nanos as u64, out);
        }
        put_str_field(2, &line, out);
        out.extend_from_slice(metadata);
        Ok(())
    }

    fn encode_protobuf(
        &self,
        records: &[Arc<Record>],
        service: &ServiceInfo,
        groups: Vec<Group>,
    ) -> Result<Vec<Payload>, Error> {
        let mut scratch = Scratch {
            line: Vec::with_capacity(512),
            ..Scratch::default()
        };
        let json = service_json(service)?;
        let mut streams: Vec<EncodedStream> = Vec::with_capacity(groups.len());
        let mut costs: Vec<Vec<usize>> = Vec::with_capacity(groups.len());
        let mut overheads = Vec::with_capacity(groups.len());
        for g in groups {
            let mut bytes = Vec::with_capacity(g.members.len() * 320);
            let mut ends = Vec::with_capacity(g.members.len());
            let mut cost = Vec::with_capacity(g.members.len());
            for &i in &g.members {
                let before = bytes.len();
                self.write_entry(&records[i], service, &json, &mut scratch, &mut bytes)?;
                // Field 2 of StreamAdapter: key + length varint + message.
                cost.push(bytes.len() - before);
                ends.push(bytes.len());
            }
            // Field 1 of PushRequest (key + at most 10 length bytes) plus the labels field.
            let label_len = g.labels_text.len();
            overheads.push(
                key_len(1) + 10 + key_len(1) + encoded_len_varint(label_len as u64) + label_len,
            );
            costs.push(cost);
            streams.push(EncodedStream {
                labels_text: g.labels_text,
                bytes,
                ends,
            });
        }
        let plan = plan_requests(&overheads, &costs, 0, self.max_request_bytes);
        let mut out = Vec::with_capacity(plan.len());
        for request in plan {
            self.emit_protobuf(&streams, request, &mut out)?;
        }
        Ok(out)
    }

    /// Frames and compresses one request; when snappy makes it larger than the limit
    /// (incompressible lines), splits it in two and tries again.
    fn emit_protobuf(
        &self,
        streams: &[EncodedStream],
        parts: Parts,
        out: &mut Vec<Payload>,
    ) -> Result<(), Error> {
        let count: usize = parts.iter().map(|(_, r)| r.len()).sum();
        let size: usize = parts
            .iter()
            .map(|(s, r)| streams[*s].span(r).len() + streams[*s].labels_text.len() + 16)
            .sum();
        let mut raw = Vec::with_capacity(size);
        for (s, range) in &parts {
            // StreamAdapter: labels = 1, entries = 2, hash = 3 (0, left out).
            let st = &streams[*s];
            let span = st.span(range);
            let len = str_field_len(1, &st.labels_text) + span.len();
            encode_key(1, WireType::LengthDelimited, &mut raw);
            encode_varint(len as u64, &mut raw);
            put_str_field(1, &st.labels_text, &mut raw);
            raw.extend_from_slice(&st.bytes[span]);
        }
        let mut body = snap::raw::Encoder::new()
            .compress_vec(&raw)
            .map_err(|e| Error::with_source(ErrorKind::Encode, "snappy compression failed", e))?;
        // `compress_vec` allocates the worst case (about 7/6 of the input) and keeps
        // that capacity; the payload waits in the outbox, so give the rest back.
        body.shrink_to_fit();
        if body.len() > self.max_request_bytes && count > 1 {
            let (first, second) = split_parts(parts, count / 2);
            self.emit_protobuf(streams, first, out)?;
            return self.emit_protobuf(streams, second, out);
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

/// Splits a request's parts after `at` entries (counted across streams, in order).
fn split_parts(parts: Parts, at: usize) -> (Parts, Parts) {
    let mut first = Vec::new();
    let mut second = Vec::new();
    let mut seen = 0usize;
    for (s, range) in parts {
        if seen >= at {
            second.push((s, range));
        } else if seen + range.len() <= at {
            seen += range.len();
            first.push((s, range));
        } else {
            let mid = range.start + (at - seen);
            seen = at;
            first.push((s, range.start..mid));
            second.push((s, mid..range.end));
        }
    }
    (first, second)
}

/// Encoded length of a protobuf string field `tag` (0 when empty: proto3 leaves it out).
fn str_field_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        key_len(tag) + encoded_len_varint(s.len() as u64) + s.len()
    }
}

/// Writes a protobuf string field `tag` (nothing when empty, as prost does).
fn put_str_field(tag: u32, s: &str, out: &mut Vec<u8>) {
    if !s.is_empty() {
        encode_key(tag, WireType::LengthDelimited, out);
        encode_varint(s.len() as u64, out);
        out.extend_from_slice(s.as_bytes());
    }
}

/// Encoded length of a protobuf varint field `tag` (0 when the value is 0).
fn varint_field_len(tag: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_len(tag) + encoded_len_varint(v)
    }
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

/// A scalar value as text, borrowed when it is a string; numbers are rendered into
/// `number`.
fn scalar_str<'a>(v: &'a serde_json::Value, number: &'a mut String) -> Option<&'a str> {
    match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => {
            use std::fmt::Write as _;
            number.clear();
            let _ = write!(number, "{n}");
            Some(number)
        }
        serde_json::Value::Bool(b) => Some(if *b { "true" } else { "false" }),
        _ => None,
    }
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
    use super::super::proto::{EntryAdapter, LabelPairAdapter, PushRequest, StreamAdapter};
    use super::*;
    use crate::record::encode_json;
    use prost::Message as _;

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
        ]
        .map(Arc::new);
        let streams = enc.group(&records, &svc);
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
        let svc = ServiceInfo::default();
        let records: Vec<Record> = (0..10u64)
            .map(|i| Record::new(Level::Info, noise(900)).with_timestamp_ns(i))
            .collect();
        let mut scratch = Scratch::default();
        let json = service_json(&svc).expect("service json");
        let mut stream = EncodedStream {
            labels_text: "{level=\"info\"}".to_string(),
            bytes: Vec::new(),
            ends: Vec::new(),
        };
        for r in &records {
            enc.write_entry(r, &svc, &json, &mut scratch, &mut stream.bytes)
                .expect("encodes");
            stream.ends.push(stream.bytes.len());
        }
        let mut out = Vec::new();
        enc.emit_protobuf(&[stream], vec![(0, 0..10)], &mut out)
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

    /// The protobuf body as the prost messages of [`super::super::proto`] encode it:
    /// streams by label text (sorted), entries by timestamp (stable), metadata in the
    /// documented order — the reference the hand-framed encoder must match byte for
    /// byte.
    fn reference_request(enc: &LokiEncoder, records: &[Arc<Record>], svc: &ServiceInfo) -> Vec<u8> {
        use std::collections::BTreeMap;
        let mut streams: BTreeMap<String, Vec<(u64, EntryAdapter)>> = BTreeMap::new();
        for r in records {
            let base = enc.labels(r.level, svc);
            let text = match enc.record_labels(r, &base) {
                Some((_, t)) => t,
                None => render_labels(&base),
            };
            let mut meta = Vec::new();
            let route = r
                .http
                .as_ref()
                .and_then(|h| h.request.route.as_deref().map(str::to_string));
            let typed = [
                ("request_id", r.request_id.clone()),
                ("trace_id", r.trace_id.clone()),
                ("span_id", r.span_id.clone()),
                ("route", route),
            ];
            for (k, v) in typed {
                let v = v.or_else(|| r.context.get(k).and_then(scalar_text));
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    meta.push((k.to_string(), cut_owned(v, MAX_METADATA_VALUE_BYTES)));
                }
            }
            for k in &enc.metadata_fields {
                if let Some(v) = r.context.get(k).and_then(scalar_text) {
                    if !v.is_empty() {
                        meta.push((k.clone(), cut_owned(v, MAX_METADATA_VALUE_BYTES)));
                    }
                }
            }
            let mut buf = Vec::new();
            encode_json(r, svc, &mut buf).expect("json");
            let line = truncate_line(
                std::str::from_utf8(&buf).expect("utf-8"),
                enc.max_line_bytes,
            );
            let entry = EntryAdapter {
                timestamp: Some(prost_types::Timestamp {
                    seconds: (r.timestamp_ns / 1_000_000_000) as i64,
                    nanos: (r.timestamp_ns % 1_000_000_000) as i32,
                }),
                line,
                structured_metadata: meta
                    .into_iter()
                    .map(|(name, value)| LabelPairAdapter { name, value })
                    .collect(),
                parsed: Vec::new(),
            };
            streams
                .entry(text)
                .or_default()
                .push((r.timestamp_ns, entry));
        }
        PushRequest {
            streams: streams
                .into_iter()
                .map(|(labels, mut entries)| {
                    entries.sort_by_key(|(ts, _)| *ts);
                    StreamAdapter {
                        labels,
                        entries: entries.into_iter().map(|(_, e)| e).collect(),
                        hash: 0,
                    }
                })
                .collect(),
            format: String::new(),
        }
        .encode_to_vec()
    }

    #[test]
    fn protobuf_bytes_match_the_prost_messages() {
        let enc = LokiEncoder {
            static_labels: vec![("region".into(), "eu \"west\"".into())],
            metadata_fields: vec!["msg_id".into(), "user_id".into(), "ok".into()],
            label_fields: vec!["component".into()],
            line_format: LineFormat::Json,
            push_format: PushFormat::Protobuf,
            max_line_bytes: 300,
            max_request_bytes: 1 << 20,
        };
        let svc = ServiceInfo {
            service: "api".into(),
            environment: "prod".into(),
            ..ServiceInfo::default()
        };
        let mut http = crate::record::HttpTransaction::default();
        http.request.route = Some("/orders/{id}".into());
        let mut traced = Record::new(Level::Error, "failed ✓")
            .with_timestamp_ns(1_700_000_000_000_000_001)
            .with_field("user_id", 42)
            .with_field("ok", true)
            .with_field("route", "/ignored-typed-wins")
            .with_http(http);
        traced.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        traced.span_id = Some("00f067aa0ba902b7".into());
        traced.request_id = Some(String::new());
        let records = vec![
            Record::new(Level::Info, "b")
                .with_timestamp_ns(2_000_000_000)
                .with_field("request_id", "req-1")
                .with_field("msg_id", "m".repeat(2000)),
            // Same timestamp as the next: logged order kept.
            Record::new(Level::Info, "a").with_timestamp_ns(1_000_000_000),
            Record::new(Level::Info, "a2").with_timestamp_ns(1_000_000_000),
            // Whole seconds only / nanoseconds only: zero fields left out.
            Record::new(Level::Debug, "zero").with_timestamp_ns(0),
            Record::new(Level::Debug, "ns").with_timestamp_ns(999),
            Record::new(Level::Info, "x".repeat(1000)).with_timestamp_ns(5),
            Record::new(Level::Info, "c")
                .with_timestamp_ns(3)
                .with_field("component", "pubsub")
                .with_field("user_id", serde_json::json!({"nested": 1}))
                .with_field("route", ""),
            Record::new(Level::Info, "d")
                .with_timestamp_ns(4)
                .with_field("user_id", -7.5),
            traced,
        ];
        let records: Vec<Arc<Record>> = records.into_iter().map(Arc::new).collect();
        let out = enc.encode(&records, &svc).expect("encodes");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].records, records.len() as u32);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&out[0].bytes)
            .expect("snappy");
        assert_eq!(raw, reference_request(&enc, &records, &svc));
        // A wide context takes the lookup path, with the same result.
        let mut wide = Record::new(Level::Info, "wide").with_timestamp_ns(9);
        for i in 0..40 {
            wide = wide.with_field(format!("k{i}"), i);
        }
        let wide = vec![Arc::new(
            wide.with_field("user_id", "u-1").with_field("route", "/r"),
        )];
        let out = enc.encode(&wide, &svc).expect("encodes");
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&out[0].bytes)
            .expect("snappy");
        assert_eq!(raw, reference_request(&enc, &wide, &svc));
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
