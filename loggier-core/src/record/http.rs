use std::borrow::Cow;

use serde::ser::{SerializeMap, Serializer};

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
    /// Route template (`/users/{id}`), when the framework knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
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
    /// `Content-Type` header value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Response headers, lower-case names (sensitive ones masked).
    #[serde(skip_serializing_if = "Headers::is_empty")]
    pub headers: Headers,
    /// Captured response body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<CapturedBody>,
}

/// The headers of one side of a transaction: (name, value) pairs in the order they
/// were first seen, one pair per name (repeated headers are joined with `", "` by
/// [`Headers::append`]). Names are lower case as the capture writes them; the usual
/// names are `&'static` (no copy per record).
///
/// JSON shape: an object `{"name": "value", …}` in that order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    entries: Vec<(Cow<'static, str>, String)>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }

    /// Room for `n` headers without reallocating.
    pub fn with_capacity(n: usize) -> Self {
        Headers {
            entries: Vec::with_capacity(n),
        }
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
        self.entries
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets `name` to `value`, replacing and returning an earlier value of that name
    /// (its position is kept); a new name goes last.
    pub fn insert(&mut self, name: String, value: String) -> Option<String> {
        match self.entries.iter_mut().find(|(k, _)| *k == name) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.entries.push((Cow::Owned(name), value));
                None
            }
        }
    }

    /// Adds one occurrence of `name`: a new name goes last; a repeated one is joined
    /// to the earlier value with `", "`, except that a masked earlier value
    /// ([`FILTERED`](crate::mask::FILTERED)) stays masked alone.
    pub fn append(&mut self, name: impl Into<Cow<'static, str>>, value: String) {
        let name = name.into();
        match self.entries.iter_mut().find(|(k, _)| *k == name) {
            Some((_, prev)) => {
                if prev != crate::mask::FILTERED {
                    prev.push_str(", ");
                    prev.push_str(&value);
                }
            }
            None => self.entries.push((name, value)),
        }
    }

    /// The (name, value) pairs in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v.as_str()))
    }

    /// The (name, value) pairs in order, values mutable (masking).
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut String)> + '_ {
        self.entries.iter_mut().map(|(k, v)| (&**k, v))
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Cow<'static, str>, String)>,
        fn(&'a (Cow<'static, str>, String)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v.as_str()))
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
        for (k, v) in &self.entries {
            m.serialize_entry(k.as_ref(), v)?;
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
