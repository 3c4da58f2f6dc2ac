//! The Loggier HTTP ingest sink: a gzip-compressed JSON array of records per request.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};

use super::endpoint::{EndpointNames, EndpointOptions};
use super::http_transport::HttpTransport;
use super::{BoxFuture, Payload, SendOutcome, Sink};
use crate::error::{ConfigError, Error, ErrorKind};
use crate::record::{Record, ServiceInfo, ServiceJson, encode_json_line_with};

/// Default largest uncompressed request body: 4 MiB. A batch whose JSON is larger is
/// split into several requests (each with its own batch id).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Setting names of the HTTP ingest sink in [`ConfigError`]s.
const NAMES: EndpointNames = EndpointNames {
    url: "api_url",
    auth: "api_key",
    tenant: "api_tenant",
    tenant_header: None,
    headers: "api_headers",
};

/// Builder for [`HttpSink`]. `Debug` output never shows the API key (see
/// [`EndpointOptions`]).
#[derive(Debug, Clone)]
#[must_use]
pub struct HttpSinkBuilder {
    endpoint: EndpointOptions,
    gzip: bool,
    max_request_bytes: usize,
    name: String,
}

impl HttpSinkBuilder {
    /// The API key sent as `Authorization: Bearer <api_key>`. Default: none (no
    /// `Authorization` header).
    ///
    /// # Security
    /// The header value is marked sensitive, and neither the builder's nor the sink's
    /// `Debug` output shows the key.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.bearer_token(key);
        self
    }

    /// Per-request timeout (`http_timeout`). Default 5 s
    /// ([`DEFAULT_HTTP_TIMEOUT`](super::http_transport::DEFAULT_HTTP_TIMEOUT)); a
    /// timeout is a retryable failure.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.endpoint = self.endpoint.timeout(timeout);
        self
    }

    /// Adds a header sent on every request (e.g. for a proxy in front of the
    /// endpoint); its value is treated as a secret. See [`EndpointOptions::header`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.header(name, value);
        self
    }

    /// Replaces URL, credentials, timeout and extra headers at once with `options`
    /// (the type every network sink builder shares). A tenant is refused by `build`:
    /// the ingest API has no tenant header.
    pub fn endpoint(mut self, options: EndpointOptions) -> Self {
        self.endpoint = options;
        self
    }

    /// Compress bodies with gzip and send `Content-Encoding: gzip`. Default `true`.
    pub fn gzip(mut self, on: bool) -> Self {
        self.gzip = on;
        self
    }

    /// Largest uncompressed JSON body of one request, bytes. Default
    /// [`DEFAULT_MAX_REQUEST_BYTES`] (4 MiB). A single record larger than this is
    /// still sent, alone.
    pub fn max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// Sink name in stats and the disk queue. Default `"http"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Validates the settings and creates the HTTP client.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for `api_url` when the URL does not parse, is not
    /// `http`/`https` or has no host; for `api_key` when it is empty, contains
    /// characters not allowed in a header (the key itself is not echoed) or the URL
    /// also carries `user:password@`; for `api_headers` for a bad
    /// extra header; for `api_tenant` when a tenant is set; for `http_timeout` when it
    /// is zero; for `max_request_bytes` when it is zero.
    pub fn build(self) -> Result<HttpSink, ConfigError> {
        if self.max_request_bytes == 0 {
            return Err(ConfigError::invalid(
                "max_request_bytes",
                0,
                "must be greater than zero",
            ));
        }
        let resolved = self.endpoint.resolve(&NAMES)?;
        let mut headers = resolved.headers;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let url = resolved.url;
        let timeout = resolved.timeout;
        let transport = HttpTransport::new(timeout, headers)?;
        Ok(HttpSink {
            url: url.to_string(),
            transport,
            gzip: self.gzip,
            max_request_bytes: self.max_request_bytes,
            name: self.name,
        })
    }
}

/// Sends records to a Loggier-compatible HTTP ingest endpoint.
///
/// Wire format, one `POST` to the configured URL per batch:
/// - body: a JSON array of records, each encoded by
///   [`encode_json`] (the Loggier record format of the
///   product notes, "Example Log Output"), gzip-compressed unless disabled;
/// - headers: `Content-Type: application/json`, `Content-Encoding: gzip`,
///   `Authorization: Bearer <api_key>` (when a key is set) and
///   `X-Loggier-Batch-Id: <uuid>` — the same id on every retry and replay, so the
///   endpoint can de-duplicate (delivery is at-least-once).
///
/// Responses are classified by [`HttpTransport`]: 2xx delivered; network errors,
/// timeouts, 408, 429, 500, 502, 503, 504 retried (honouring `Retry-After`); any
/// other status refused.
///
/// # Example
/// ```
/// # fn main() -> Result<(), loggier_core::ConfigError> {
/// let sink = loggier_core::HttpSink::builder("https://logs.example.com/api/ingest")
///     .api_key("my-api-key")
///     .timeout(std::time::Duration::from_secs(5))
///     .build()?;
/// assert_eq!(sink.url(), "https://logs.example.com/api/ingest");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HttpSink {
    url: String,
    transport: HttpTransport,
    gzip: bool,
    max_request_bytes: usize,
    name: String,
}

impl HttpSink {
    /// A builder posting to `url` (e.g. `https://api.loggier.com/api/ingest`).
    pub fn builder(url: impl Into<String>) -> HttpSinkBuilder {
        HttpSinkBuilder {
            endpoint: EndpointOptions::new(url),
            gzip: true,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            name: "http".to_owned(),
        }
    }

    /// The endpoint URL (normalised; credentials written into it were moved to the
    /// `Authorization` header).
    pub fn url(&self) -> &str {
        &self.url
    }

    fn finish(&self, json: Vec<u8>, records: u32) -> Result<Payload, Error> {
        if !self.gzip {
            return Ok(Payload::new(json, records));
        }
        let mut gz = GzEncoder::new(Vec::with_capacity(json.len() / 4 + 64), Compression::fast());
        gz.write_all(&json)
            .and_then(|()| gz.finish())
            .map(|bytes| Payload::new(bytes, records))
            .map_err(|e| Error::with_source(ErrorKind::Encode, "gzip compression failed", e))
    }
}

impl Sink for HttpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn encode(
        &mut self,
        records: &[Arc<Record>],
        service: &ServiceInfo,
    ) -> Result<Vec<Payload>, Error> {
        let mut out = Vec::new();
        let mut json = Vec::with_capacity(records.len() * 256 + 2);
        let mut in_body = 0u32;
        let mut one = Vec::with_capacity(512);
        let failed = |e| Error::with_source(ErrorKind::Encode, "cannot encode record as json", e);
        // The service identity is encoded once for the batch, not once per record.
        let service = ServiceJson::new(service).map_err(failed)?;
        json.push(b'[');
        for record in records {
            one.clear();
            encode_json_line_with(record, &service, &mut one).map_err(failed)?;
            one.pop();
            // Close the current body when this record would push it past the limit.
            if in_body > 0 && json.len() + 1 + one.len() + 1 > self.max_request_bytes {
                json.push(b']');
                out.push(self.finish(std::mem::take(&mut json), in_body)?);
                json.push(b'[');
                in_body = 0;
            }
            if in_body > 0 {
                json.push(b',');
            }
            json.extend_from_slice(&one);
            in_body += 1;
        }
        if in_body > 0 {
            json.push(b']');
            out.push(self.finish(json, in_body)?);
        }
        Ok(out)
    }

    fn send<'a>(&'a mut self, payload: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        Box::pin(self.transport.post(&self.url, payload, &[]))
    }

    fn send_detached(&self, payload: &Payload) -> Option<BoxFuture<'static, SendOutcome>> {
        let transport = self.transport.clone();
        let url = self.url.clone();
        let payload = payload.clone();
        Some(Box::pin(async move {
            transport.post(&url, &payload, &[]).await
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Level, encode_json};
    use std::io::Read;

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(b)
            .read_to_end(&mut out)
            .expect("gunzip");
        out
    }

    #[test]
    fn encodes_a_gzipped_json_array_of_records() {
        let mut sink = HttpSink::builder("http://127.0.0.1:9/ingest")
            .build()
            .expect("build");
        let svc = ServiceInfo::default();
        let recs = vec![
            Arc::new(Record::new(Level::Info, "one").with_field("n", 1)),
            Arc::new(Record::new(Level::Error, "two")),
        ];
        let p = sink.encode(&recs, &svc).expect("encode");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].records, 2);
        let v: serde_json::Value = serde_json::from_slice(&gunzip(&p[0].bytes)).expect("json");
        let arr = v.as_array().expect("array");
        assert_eq!(arr.len(), 2);
        assert_eq!(arr[0]["message"], "one");
        assert_eq!(arr[0]["context"]["n"], 1);
        assert_eq!(arr[1]["level"], "ERROR");
        let mut expect0 = Vec::new();
        encode_json(&recs[0], &svc, &mut expect0).expect("encode");
        assert_eq!(
            arr[0],
            serde_json::from_slice::<serde_json::Value>(&expect0).expect("json")
        );
    }

    #[test]
    fn splits_bodies_at_the_request_limit_and_keeps_every_record() {
        let mut sink = HttpSink::builder("http://127.0.0.1:9/ingest")
            .gzip(false)
            .max_request_bytes(700)
            .build()
            .expect("build");
        let recs: Vec<Arc<Record>> = (0..10)
            .map(|i| Record::new(Level::Info, format!("record {i} {}", "x".repeat(100))))
            .map(Arc::new)
            .collect();
        let p = sink.encode(&recs, &ServiceInfo::default()).expect("encode");
        assert!(p.len() > 1, "{}", p.len());
        let mut seen = Vec::new();
        for payload in &p {
            assert!(payload.bytes.len() <= 700);
            let v: Vec<serde_json::Value> = serde_json::from_slice(&payload.bytes).expect("json");
            assert_eq!(v.len(), payload.records as usize);
            seen.extend(
                v.into_iter()
                    .map(|r| r["message"].as_str().map(str::to_owned)),
            );
        }
        let expect: Vec<_> = recs.iter().map(|r| Some(r.message.to_string())).collect();
        assert_eq!(seen, expect);
        let ids: std::collections::HashSet<_> = p.iter().map(|p| p.id).collect();
        assert_eq!(ids.len(), p.len());
    }

    #[test]
    fn bad_settings_name_the_field_and_never_echo_the_key() {
        let e = HttpSink::builder("ftp://x/").build().expect_err("scheme");
        assert_eq!(e.setting(), "api_url");
        let e = HttpSink::builder("not a url").build().expect_err("parse");
        assert_eq!(e.setting(), "api_url");
        let e = HttpSink::builder("http://x/")
            .api_key("secret\nkey")
            .build()
            .expect_err("key");
        assert_eq!(e.setting(), "api_key");
        assert!(!e.to_string().contains("secret"));
        let e = HttpSink::builder("http://x/")
            .timeout(Duration::ZERO)
            .build()
            .expect_err("timeout");
        assert_eq!(e.setting(), "http_timeout");
    }

    #[test]
    fn debug_output_hides_the_api_key() {
        let sink = HttpSink::builder("http://x/")
            .api_key("topsecret")
            .build()
            .expect("build");
        assert!(!format!("{sink:?}").contains("topsecret"));
    }
}
