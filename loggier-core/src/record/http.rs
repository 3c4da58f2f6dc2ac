use std::borrow::Cow;
use std::sync::Arc;

use serde::ser::{SerializeMap, Serializer};
use smallvec::SmallVec;

use super::Fields;

/// An HTTP request/response pair captured by the middleware. Encoded as
/// `context.transaction` in the Loggier JSON format (seeds/004, "Example Log Output").
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct HttpTransaction {
    /// The request side.
    pub request: HttpRequest,
    /// The response side; `None` when the handler failed before producing one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<HttpResponse>,
    /// Time from request arrival to the end of the response body, milliseconds.
    pub duration_ms: f64,
}

impl HttpTransaction {
    /// A transaction with the given request and nothing else.
    pub fn new(request: HttpRequest) -> Self {
        HttpTransaction {
            request,
            response: None,
            duration_ms: 0.0,
        }
    }

    /// About the JSON bytes of this transaction, for batch accounting: computed
    /// from the lengths, without serializing (this runs once per record per sink).
    pub(crate) fn estimated_size_bytes(&self) -> usize {
        let body = |b: &Option<CapturedBody>| {
            b.as_ref().map_or(0, |b| match &b.content {
                BodyContent::Text(s) => s.len(),
                BodyContent::Json(v) => json_len(v),
                BodyContent::Binary { .. } => 48,
            })
        };
        let headers = |h: &Headers| {
            h.iter()
                .map(|(k, v)| k.len() + str_len(v) + 4)
                .sum::<usize>()
        };
        let mut n = 128
            + self.request.path.len()
            + headers(&self.request.headers)
            + body(&self.request.body);
        if let Some(r) = &self.response {
            n += 64 + headers(&r.headers) + body(&r.body);
        }
        n
    }
}

/// The request side of a transaction.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct HttpRequest {
    /// HTTP method, e.g. `"GET"` (the standard methods are borrowed, not copied).
    pub method: Cow<'static, str>,
    /// Path without the query string.
    pub path: String,
    /// Route template (`/users/{id}`), when the framework knows it; shared with the
    /// adapter's route memo (no copy per record).
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_shared_str"
    )]
    pub route: Option<Arc<str>>,
    /// Query parameters (sensitive keys masked).
    #[serde(rename = "query_params", skip_serializing_if = "Fields::is_empty")]
    pub query: Fields,
    /// Request headers, lower-case names (sensitive ones masked).
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// Client IP address, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<String>,
    /// `User-Agent` header value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Captured request body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<CapturedBody>,
}

/// The response side of a transaction.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct HttpResponse {
    /// Status code.
    pub status_code: u16,
    /// `Content-Type` header value (the usual ones are borrowed, not copied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<Cow<'static, str>>,
    /// Response headers, lower-case names (sensitive ones masked).
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// Captured response body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<CapturedBody>,
}

/// Headers kept inline in a [`Headers`] before its name list allocates.
const INLINE_HEADERS: usize = 4;

/// Bytes the value text of a [`Headers`] starts with, so the usual handful of values
/// is written into one allocation without growing it.
const TEXT_START_BYTES: usize = 96;

/// The headers of one side of a transaction: (name, value) pairs in the order they
/// were first seen, one pair per name (repeated headers are joined with `", "` by
/// [`Headers::append`]). Names are lower case as the capture writes them; the usual
/// names are `&'static` (no copy per record). The values are kept in one text buffer
/// (one allocation for all of them; up to four names are kept inline).
///
/// JSON shape: an object `{"name": "value", …}` in that order.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    /// Each name with the byte range of its value in `text`.
    entries: SmallVec<[(Cow<'static, str>, usize, usize); INLINE_HEADERS]>,
    /// The values, one after another.
    text: String,
    /// Set by [`Masker::mask_headers`](crate::mask::Masker::mask_headers): the
    /// [identity](crate::mask::Masker) of the masker whose masking these headers are
    /// the result of. Any change through the public methods clears it, so the worker
    /// can skip masking them again only while they are exactly what that masker left.
    masked_by: Option<u64>,
}

impl PartialEq for Headers {
    /// Same (name, value) pairs in the same order (how the values are laid out, and
    /// which masker masked them, do not matter).
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }

    /// Room for `n` headers without reallocating the name list.
    pub fn with_capacity(n: usize) -> Self {
        Headers {
            entries: SmallVec::with_capacity(n),
            text: String::new(),
            masked_by: None,
        }
    }

    /// Room for `n` more headers without reallocating the name list.
    #[cfg(feature = "http-capture")]
    pub(crate) fn reserve(&mut self, n: usize) {
        self.entries.reserve(n);
    }

    /// Number of distinct names.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `name` (compared exactly; names are lower case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Sets `name` to `value`, replacing and returning an earlier value of that name
    /// (its position is kept); a new name goes last.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        self.masked_by = None;
        match self.position(&name) {
            Some(i) => {
                let old = self.value_at(i).to_string();
                self.replace_value(i, &value);
                Some(old)
            }
            None => {
                self.push_new(Cow::Owned(name), &value);
                None
            }
        }
    }

    /// Adds one occurrence of `name`: a new name goes last; a repeated one is joined
    /// to the earlier value with `", "`, except that a masked earlier value
    /// ([`FILTERED`](crate::mask::FILTERED)) stays masked alone.
    pub fn append(&mut self, name: impl Into<Cow<'static, str>>, value: String) {
        self.append_str(name.into(), &value);
    }

    /// [`Headers::append`] from borrowed text (the value is copied into the buffer).
    pub(crate) fn append_str(&mut self, name: Cow<'static, str>, value: &str) {
        self.masked_by = None;
        match self.position(&name) {
            Some(i) => {
                let prev = self.value_at(i);
                if prev != crate::mask::FILTERED {
                    let joined = format!("{prev}, {value}");
                    self.replace_value(i, &joined);
                }
            }
            None => self.push_new(name, value),
        }
    }

    /// The (name, value) pairs in order.
    pub fn iter(&self) -> HeadersIter<'_> {
        HeadersIter {
            entries: self.entries.iter(),
            text: &self.text,
        }
    }

    /// Replaces every value for which `f(name, value)` answers `Some` (masking), in
    /// one pass; leaves the masker stamp alone (the caller sets it).
    pub(crate) fn replace_values(&mut self, mut f: impl FnMut(&str, &str) -> Option<String>) {
        // From the first change on, the values are laid out again in a new buffer.
        let mut out: Option<String> = None;
        for i in 0..self.entries.len() {
            let (start, end) = (self.entries[i].1, self.entries[i].2);
            let old = self.text.get(start..end).unwrap_or_default();
            let new = f(&self.entries[i].0, old);
            if new.is_none() && out.is_none() {
                continue;
            }
            let t = match out.as_mut() {
                Some(t) => t,
                None => {
                    let mut t = String::with_capacity(self.text.len() + 16);
                    for e in self.entries[..i].iter_mut() {
                        let from = t.len();
                        t.push_str(self.text.get(e.1..e.2).unwrap_or_default());
                        e.1 = from;
                        e.2 = t.len();
                    }
                    out.insert(t)
                }
            };
            let from = t.len();
            t.push_str(new.as_deref().unwrap_or(old));
            self.entries[i].1 = from;
            self.entries[i].2 = t.len();
        }
        if let Some(t) = out {
            self.text = t;
        }
    }

    /// The values, one after another: every value is a stretch of this text.
    #[cfg(feature = "http-capture")]
    pub(crate) fn values_text(&self) -> &str {
        &self.text
    }

    /// The masker stamp (see the field).
    pub(crate) fn masked_by(&self) -> Option<u64> {
        self.masked_by
    }

    /// Notes that these headers are what the masker `id` left.
    pub(crate) fn set_masked_by(&mut self, id: u64) {
        self.masked_by = Some(id);
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _, _)| k == name)
    }

    fn value_at(&self, i: usize) -> &str {
        let (_, start, end) = &self.entries[i];
        self.text.get(*start..*end).unwrap_or_default()
    }

    fn push_new(&mut self, name: Cow<'static, str>, value: &str) {
        if self.text.capacity() == 0 {
            self.text.reserve(value.len().max(TEXT_START_BYTES));
        }
        let start = self.text.len();
        self.text.push_str(value);
        self.entries.push((name, start, self.text.len()));
    }

    /// Sets the value of entry `i` to `value`: in place when it is the last value of
    /// the buffer, else by laying the buffer out again (rare: repeated names).
    fn replace_value(&mut self, i: usize, value: &str) {
        let (_, start, end) = self.entries[i];
        if end == self.text.len() {
            self.text.truncate(start);
            self.text.push_str(value);
            self.entries[i].2 = self.text.len();
            return;
        }
        let mut text = String::with_capacity(self.text.len() + value.len());
        for (j, e) in self.entries.iter_mut().enumerate() {
            let from = text.len();
            if j == i {
                text.push_str(value);
            } else {
                text.push_str(self.text.get(e.1..e.2).unwrap_or_default());
            }
            e.1 = from;
            e.2 = text.len();
        }
        self.text = text;
    }
}

/// The (name, value) pairs of a [`Headers`], in order.
#[derive(Debug, Clone)]
pub struct HeadersIter<'a> {
    entries: std::slice::Iter<'a, (Cow<'static, str>, usize, usize)>,
    text: &'a str,
}

impl<'a> Iterator for HeadersIter<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        let (k, start, end) = self.entries.next()?;
        Some((k.as_ref(), self.text.get(*start..*end).unwrap_or_default()))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for HeadersIter<'_> {}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a str);
    type IntoIter = HeadersIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Headers {
    /// Collects pairs as repeated [`Headers::insert`] does (a repeated name keeps
    /// its first position and its last value).
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        let mut h = Headers::new();
        for (k, v) in iter {
            h.insert(k.into(), v.into());
        }
        h
    }
}

impl serde::Serialize for Headers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in self {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A body copied as it streamed past, bounded by `max_body_size`.
///
/// JSON shape: `{"content": <JSON value | text | "[binary N bytes, type]">,
/// "truncated": bool, "size_bytes": N}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CapturedBody {
    /// What was kept.
    pub content: BodyContent,
    /// `true` when the body was longer than the capture limit.
    pub truncated: bool,
    /// Full length of the body as it streamed, bytes.
    pub size_bytes: u64,
}

/// The kept part of a body.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum BodyContent {
    /// A complete JSON document (masked by key like context).
    Json(serde_json::Value),
    /// Text (or truncated JSON), UTF-8 with invalid sequences replaced.
    Text(String),
    /// Non-text content, kept as a marker only.
    #[serde(serialize_with = "serialize_binary")]
    Binary {
        /// Content type, when known.
        content_type: Option<String>,
        /// Body length, bytes.
        len: u64,
    },
}

/// An `Option<Arc<str>>` as the text it holds (serde's own impl needs its `rc`
/// feature).
fn serialize_shared_str<S: serde::Serializer>(
    v: &Option<Arc<str>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(t) => s.serialize_str(t),
        None => s.serialize_none(),
    }
}

fn serialize_binary<S: serde::Serializer>(
    content_type: &Option<String>,
    len: &u64,
    s: S,
) -> Result<S::Ok, S::Error> {
    let ct = content_type.as_deref().unwrap_or("unknown type");
    s.serialize_str(&format!("[binary {len} bytes, {ct}]"))
}

/// About the length of `v` as compact JSON: exact for strings without escapes,
/// and arrays and objects of them; numbers count 8 bytes.
fn json_len(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    match v {
        Value::Null => 4,
        Value::Bool(b) => 4 + usize::from(!*b),
        Value::Number(_) => 8,
        Value::String(s) => str_len(s),
        // Brackets, then each item and its separator (one fewer comma than items).
        Value::Array(a) => (2 + a.iter().map(|x| json_len(x) + 1).sum::<usize>())
            .saturating_sub(usize::from(!a.is_empty())),
        Value::Object(o) => (2 + o
            .iter()
            .map(|(k, x)| str_len(k) + json_len(x) + 2)
            .sum::<usize>())
        .saturating_sub(usize::from(!o.is_empty())),
    }
}

fn str_len(s: &str) -> usize {
    // Quotes; escapes are rare in headers and bodies and not worth a scan here.
    2 + s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_keep_first_seen_order_join_repeats_and_keep_masked_alone() {
        let mut h = Headers::new();
        h.append("host", "a".to_string());
        h.append("accept", "x/y".to_string());
        h.append("accept", "z/w".to_string());
        h.append(String::from("cookie"), crate::mask::FILTERED.to_string());
        h.append("cookie", "sid=1".to_string());
        assert_eq!(h.insert("host".into(), "b".into()), Some("a".to_string()));
        assert_eq!(h.insert("x-new".into(), "n".into()), None);
        assert_eq!(h.get("accept"), Some("x/y, z/w"));
        assert_eq!(h.get("cookie"), Some(crate::mask::FILTERED));
        assert_eq!(
            serde_json::to_string(&h).expect("serializes"),
            r#"{"host":"b","accept":"x/y, z/w","cookie":"[FILTERED]","x-new":"n"}"#
        );
        let collected: Headers = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        assert_eq!(
            collected.iter().collect::<Vec<_>>(),
            [("a", "3"), ("b", "2")]
        );
    }

    #[test]
    fn headers_values_replaced_anywhere_keep_names_order_and_other_values() {
        let mut h = Headers::new();
        h.append("a", "1".to_string());
        h.append("b", "two".to_string());
        h.append("c", "3".to_string());
        // A repeated name that is not the last value lays the buffer out again.
        h.append("a", "x".to_string());
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [("a", "1, x"), ("b", "two"), ("c", "3")]
        );
        h.replace_values(|k, _| (k == "b").then(|| "[FILTERED]".to_string()));
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            [("a", "1, x"), ("b", "[FILTERED]"), ("c", "3")]
        );
        h.replace_values(|_, v| (v == "3").then(|| "three".to_string()));
        assert_eq!(h.get("c"), Some("three"));
        assert_eq!(h.insert("a".into(), "y".into()), Some("1, x".to_string()));
        assert_eq!(
            serde_json::to_string(&h).expect("serializes"),
            r#"{"a":"y","b":"[FILTERED]","c":"three"}"#
        );
        // A stamp set by masking is cleared by any change.
        h.set_masked_by(7);
        assert_eq!(h.clone().masked_by(), Some(7));
        h.append("d", "4".to_string());
        assert_eq!(h.masked_by(), None);
        h.set_masked_by(7);
        h.insert("d".into(), "5".into());
        assert_eq!(h.masked_by(), None);
    }

    #[test]
    fn json_len_matches_serialized_strings_and_maps() {
        let v = serde_json::json!({
            "user-agent": "curl/8",
            "quote": "say hi",
            "list": ["a", true, null, {"k": "v"}],
        });
        assert_eq!(json_len(&v), v.to_string().len());
        let s = serde_json::json!("plain");
        assert_eq!(json_len(&s), s.to_string().len());
    }
}
