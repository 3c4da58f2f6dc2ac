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
        let headers = |h: &Fields| {
            h.iter()
                .map(|(k, v)| k.len() + json_len(v) + 6)
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
    /// HTTP method, e.g. `"GET"`.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Route template (`/users/{id}`), when the framework knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Query parameters (sensitive keys masked).
    #[serde(rename = "query_params", skip_serializing_if = "Fields::is_empty")]
    pub query: Fields,
    /// Request headers, lower-case names (sensitive ones masked).
    #[serde(skip_serializing_if = "Fields::is_empty")]
    pub headers: Fields,
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
    #[serde(skip_serializing_if = "Fields::is_empty")]
    pub headers: Fields,
    /// Captured response body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<CapturedBody>,
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
