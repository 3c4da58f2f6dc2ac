//! [`BodyCapture`]: a bounded copy of a body taken as its frames pass.

use std::sync::Arc;

use crate::context::ScopeFrame;
use crate::record::{BodyContent, CapturedBody};

use super::redact;
use crate::mask::Masker;

/// How a body is kept, from its `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyKind {
    /// `application/json`, `application/*+json`: parsed and masked by key.
    Json,
    /// `application/x-www-form-urlencoded`: kept as text, masked by key.
    Form,
    /// `text/*`, XML, JavaScript, GraphQL, NDJSON: kept as text.
    Text,
    /// No content type: UTF-8 text is kept (JSON when it parses), anything else is binary.
    Unknown,
    /// Anything else: recorded as `[binary N bytes, type]`.
    Binary,
}

fn classify(content_type: &str) -> BodyKind {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if media.is_empty() {
        return BodyKind::Unknown;
    }
    if media == "application/json" || media.ends_with("+json") {
        BodyKind::Json
    } else if media == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else if media.starts_with("text/")
        || media.ends_with("+xml")
        || matches!(
            media.as_str(),
            "application/xml"
                | "application/javascript"
                | "application/graphql"
                | "application/x-ndjson"
                | "application/ld+json"
        )
    {
        BodyKind::Text
    } else {
        BodyKind::Binary
    }
}

/// A bounded copy of one body, filled frame by frame with [`push`](BodyCapture::push).
///
/// Copies at most `limit` bytes (`max_body_size`) and counts every byte that passes, so
/// the record can say how long the body really was and whether the copy is
/// truncated. Plain owned data (no shared state, no `Send` requirement on the caller):
/// an adapter keeps it inside its body wrapper and hands it to
/// [`Exchange::set_request_body`](super::Exchange::set_request_body) /
/// [`Exchange::set_response_body`](super::Exchange::set_response_body) when the body
/// ends or is dropped.
#[derive(Debug, Clone)]
pub struct BodyCapture {
    buf: Vec<u8>,
    limit: usize,
    total_bytes: u64,
    content_type: Option<String>,
    /// A request body copy taken before the request's endpoint was known: the request
    /// frame whose endpoint slot the endpoint fills, and whether the copy is wanted
    /// when the endpoint does not say.
    gate: Option<(Arc<ScopeFrame>, bool)>,
}

impl BodyCapture {
    /// An empty capture keeping at most `limit` bytes, for a body with the given
    /// `Content-Type` header value (raw bytes; invalid UTF-8 is treated as unknown).
    pub fn new(limit: usize, content_type: Option<&[u8]>) -> Self {
        BodyCapture {
            buf: Vec::new(),
            limit,
            total_bytes: 0,
            content_type: content_type
                .and_then(|c| std::str::from_utf8(c).ok())
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty()),
            gate: None,
        }
    }

    /// Makes this a copy whose fate depends on the request's endpoint
    /// ([`EndpointOptions::request_body`](crate::context::EndpointOptions::request_body)):
    /// as soon as the endpoint slot of `frame` is filled with options that do not want
    /// the request body (`capture_request_body = false`, or not set and `default` is
    /// `false`), the bytes kept so far are freed and no more are copied (bytes are
    /// still counted).
    pub(crate) fn gated(mut self, frame: Arc<ScopeFrame>, default: bool) -> Self {
        self.gate = Some((frame, default));
        self
    }

    /// Counts `chunk` and copies as much of it as still fits under the limit.
    pub fn push(&mut self, chunk: &[u8]) {
        if let Some((frame, default)) = &self.gate {
            if let Some(endpoint) = frame.endpoint() {
                if !endpoint.request_body().unwrap_or(*default) {
                    self.buf = Vec::new();
                    self.limit = 0;
                }
                self.gate = None;
            }
        }
        self.total_bytes = self
            .total_bytes
            .saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
        let room = self.limit.saturating_sub(self.buf.len());
        if room > 0 {
            let take = room.min(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
        }
    }

    /// Counts `n` bytes that passed without being offered for copying (the copy is then
    /// truncated).
    pub fn skip(&mut self, n: usize) {
        self.total_bytes = self
            .total_bytes
            .saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Bytes seen so far (the full body length once it ended).
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    /// `true` when more bytes passed than were kept.
    pub fn is_truncated(&self) -> bool {
        self.total_bytes > self.buf.len() as u64
    }

    /// The bytes kept so far.
    pub fn captured(&self) -> &[u8] {
        &self.buf
    }

    /// Turns the copy into the record form: JSON parsed and masked by key (JSON that is
    /// truncated or invalid is kept as text with sensitive members masked, a value cut
    /// off by the limit dropped), form bodies masked by key, text that looks like JSON
    /// (`text/plain` from `fetch`) treated as JSON, other text kept with `key=value`,
    /// `key: value` and `<key>value</key>` secrets masked (invalid UTF-8 replaced, a
    /// character cut by the limit dropped), anything else `[binary N bytes, type]`.
    /// `masker` decides which keys are sensitive.
    pub(crate) fn into_captured(self, masker: &Masker) -> CapturedBody {
        let truncated = self.is_truncated();
        let size_bytes = self.total_bytes;
        let kind = self
            .content_type
            .as_deref()
            .map_or(BodyKind::Unknown, classify);
        let content = match kind {
            BodyKind::Binary => binary(self.content_type, size_bytes),
            BodyKind::Json => json_content(&self.buf, truncated, masker),
            BodyKind::Form => BodyContent::Text(redact::mask_text(
                &masker.mask_form_text(&text_of(&self.buf)),
                masker,
            )),
            BodyKind::Text => text_content(&text_of(&self.buf), truncated, masker),
            BodyKind::Unknown => match utf8_prefix(&self.buf) {
                Some(t) => text_content(t, truncated, masker),
                None => binary(None, size_bytes),
            },
        };
        CapturedBody {
            content,
            truncated,
            size_bytes,
        }
    }
}

fn binary(content_type: Option<String>, len: u64) -> BodyContent {
    BodyContent::Binary { content_type, len }
}

/// A text body: JSON-looking text (what browsers send as `text/plain;charset=UTF-8`
/// for `fetch` with a string body) is treated like a JSON body; any other text is
/// scanned for `key=value`, `key: value` and `<key>value</key>` secrets.
fn text_content(text: &str, truncated: bool, masker: &Masker) -> BodyContent {
    if matches!(text.trim_start().as_bytes().first(), Some(b'{' | b'[')) {
        return json_content(text.as_bytes(), truncated, masker);
    }
    BodyContent::Text(redact::mask_text(text, masker))
}

fn json_content(buf: &[u8], truncated: bool, masker: &Masker) -> BodyContent {
    if !truncated {
        if let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(buf) {
            redact::mask_json(&mut v, masker);
            return BodyContent::Json(v);
        }
    }
    BodyContent::Text(redact::mask_json_text(&text_of(buf), masker))
}

/// The longest valid UTF-8 prefix when the only problem is a character cut off at the
/// end; `None` when the bytes are not UTF-8 text.
fn utf8_prefix(buf: &[u8]) -> Option<&str> {
    match std::str::from_utf8(buf) {
        Ok(s) => Some(s),
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&buf[..e.valid_up_to()]).ok(),
        Err(_) => None,
    }
}

/// Text of a body: a character cut off by the limit is dropped, other invalid
/// sequences replaced with U+FFFD.
fn text_of(buf: &[u8]) -> String {
    match utf8_prefix(buf) {
        Some(s) => s.to_string(),
        None => String::from_utf8_lossy(buf).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn capture(limit: usize, ct: Option<&str>, chunks: &[&[u8]]) -> CapturedBody {
        let mut c = BodyCapture::new(limit, ct.map(str::as_bytes));
        for ch in chunks {
            c.push(ch);
        }
        c.into_captured(&Masker::default())
    }

    #[test]
    fn copies_up_to_the_limit_and_counts_everything() {
        let mut c = BodyCapture::new(5, Some(b"text/plain"));
        c.push(b"abc");
        assert!(!c.is_truncated());
        c.push(b"defgh");
        c.push(b"ij");
        assert_eq!(c.captured(), b"abcde");
        assert_eq!(c.total_bytes(), 10);
        c.skip(0);
        assert_eq!(c.total_bytes(), 10);
        assert!(c.is_truncated());
        let b = c.into_captured(&Masker::default());
        assert_eq!(b.content, BodyContent::Text("abcde".into()));
        assert!(b.truncated);
        assert_eq!(b.size_bytes, 10);
    }

    #[test]
    fn json_is_parsed_and_masked() {
        let b = capture(
            100,
            Some("application/json; charset=utf-8"),
            &[br#"{"user":"bob","#, br#""password":"hunter2"}"#],
        );
        assert!(!b.truncated);
        assert_eq!(
            b.content,
            BodyContent::Json(serde_json::json!({"user":"bob","password":"[FILTERED]"}))
        );
    }

    #[test]
    fn truncated_json_is_masked_text() {
        let b = capture(
            30,
            Some("application/vnd.api+json"),
            &[br#"{"user":"bob","password":"hunter2-long-secret"}"#],
        );
        assert!(b.truncated);
        let BodyContent::Text(t) = &b.content else {
            panic!("{:?}", b.content)
        };
        assert!(!t.contains("hunter2"), "{t}");
        assert!(
            t.starts_with(r#"{"user":"bob","password":"[FILTERED]""#),
            "{t}"
        );
    }

    #[test]
    fn binary_bodies_are_markers() {
        let b = capture(4, Some("image/png"), &[&[0x89, b'P', b'N', b'G', 1, 2, 3]]);
        assert_eq!(
            serde_json::to_value(&b.content).expect("json"),
            "[binary 7 bytes, image/png]"
        );
        let b = capture(16, None, &[&[0xff, 0xfe, 0, 1]]);
        assert_eq!(
            serde_json::to_value(&b.content).expect("json"),
            "[binary 4 bytes, unknown type]"
        );
    }

    #[test]
    fn untyped_text_and_json_are_recognized() {
        let b = capture(64, None, &[b"plain words"]);
        assert_eq!(b.content, BodyContent::Text("plain words".into()));
        let b = capture(64, None, &[br#" {"token":"t"}"#]);
        assert_eq!(
            b.content,
            BodyContent::Json(serde_json::json!({"token":"[FILTERED]"}))
        );
    }

    #[test]
    fn a_character_cut_by_the_limit_is_dropped() {
        // "hé!" = 68 c3 a9 21; the limit cuts inside é.
        let b = capture(2, Some("text/plain"), &["hé!".as_bytes()]);
        assert_eq!(b.content, BodyContent::Text("h".into()));
        assert_eq!(b.size_bytes, 4);
    }

    #[test]
    fn form_bodies_are_masked() {
        let b = capture(
            64,
            Some("application/x-www-form-urlencoded"),
            &[b"user=bob&password=hunter2"],
        );
        assert_eq!(
            b.content,
            BodyContent::Text("user=bob&password=[FILTERED]".into())
        );
    }

    #[test]
    fn a_gated_copy_stops_when_the_endpoint_does_not_want_it() {
        use crate::context::EndpointOptions;
        static NO: EndpointOptions = EndpointOptions::new("no").capture_request_body(false);
        static SILENT: EndpointOptions = EndpointOptions::new("silent");

        use crate::context::{EndpointSlot, Scope};
        let slot = Arc::new(EndpointSlot::new());
        let frame = Scope::new().endpoint_slot(Arc::clone(&slot)).into_frame();
        let mut c = BodyCapture::new(64, None).gated(frame, false);
        c.push(b"abc"); // endpoint not known yet: provisional copy
        assert_eq!(c.captured(), b"abc");
        assert!(slot.set(&NO));
        c.push(b"def");
        assert!(c.captured().is_empty());
        assert_eq!(c.total_bytes(), 6);

        // Not set by the endpoint: the default decides.
        let slot = Arc::new(EndpointSlot::new());
        let frame = Scope::new().endpoint_slot(Arc::clone(&slot)).into_frame();
        let mut c = BodyCapture::new(64, None).gated(frame, true);
        assert!(slot.set(&SILENT));
        c.push(b"abc");
        assert_eq!(c.captured(), b"abc");
    }

    #[test]
    fn zero_limit_keeps_only_the_length() {
        let b = capture(0, Some("text/plain"), &[b"abc"]);
        assert!(b.truncated);
        assert_eq!(b.size_bytes, 3);
        assert_eq!(b.content, BodyContent::Text(String::new()));
    }
}
