//! A small async client for Loki's query API: readiness, label names and values,
//! and range queries with typed results.
//!
//! Response shapes follow Loki's HTTP API reference
//! ([query_range](https://grafana.com/docs/loki/latest/reference/loki-http-api/#query-logs-within-a-range-of-time),
//! [labels](https://grafana.com/docs/loki/latest/reference/loki-http-api/#query-labels),
//! [label values](https://grafana.com/docs/loki/latest/reference/loki-http-api/#query-label-values),
//! [ready](https://grafana.com/docs/loki/latest/reference/loki-http-api/#readiness-probe)).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::error::{ConfigError, Error, ErrorKind};
use crate::sink::endpoint::EndpointOptions;
use crate::sink::http_transport::{DEFAULT_MAX_RESPONSE_BYTES, HttpTransport, body_excerpt};

/// Asks Loki 3+ to return structured metadata and parsed labels per entry instead of
/// folding them into the stream labels. Older Loki ignores it.
const ENCODING_FLAGS_HEADER: &str = "x-loki-response-encoding-flags";

/// Sort order of a log query (`direction` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Oldest entry first.
    Forward,
    /// Newest entry first (Loki's default).
    #[default]
    Backward,
}

impl Direction {
    /// The query-parameter value: `forward` or `backward`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Backward => "backward",
        }
    }
}

/// The `data` of a successful `query_range` answer.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResponse {
    /// The typed result.
    pub data: QueryData,
    /// Loki's execution statistics (`data.stats`), as returned; `Null` when absent.
    pub stats: serde_json::Value,
}

/// A query result: log streams for log queries, a matrix for metric queries.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryData {
    /// `resultType: "streams"`.
    Streams(Vec<StreamResult>),
    /// `resultType: "matrix"`.
    Matrix(Vec<MatrixSeries>),
}

impl QueryData {
    /// The streams, or an empty slice for a matrix.
    pub fn streams(&self) -> &[StreamResult] {
        match self {
            QueryData::Streams(s) => s,
            QueryData::Matrix(_) => &[],
        }
    }

    /// Every entry of every stream, in response order.
    pub fn entries(&self) -> impl Iterator<Item = &StreamEntry> {
        self.streams().iter().flat_map(|s| s.entries.iter())
    }
}

/// One stream of a log query: its labels and entries (`<stream value>`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamResult {
    /// The stream's labels (`stream`).
    pub labels: BTreeMap<String, String>,
    /// Entries in the order Loki returned them: newest first for
    /// [`Direction::Backward`], oldest first for [`Direction::Forward`].
    pub entries: Vec<StreamEntry>,
}

/// One log line of a stream.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StreamEntry {
    /// Entry time, nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// The log line.
    pub line: String,
    /// Structured metadata of the entry (Loki 3+, which this client asks for with
    /// `X-Loki-Response-Encoding-Flags: categorize-labels`; older Loki folds metadata
    /// into [`StreamResult::labels`] and this map stays empty).
    pub structured_metadata: BTreeMap<String, String>,
    /// Labels extracted by parsers in the query (`| json`, `| logfmt`), Loki 3+.
    pub parsed: BTreeMap<String, String>,
}

/// One series of a metric query (`<matrix value>`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MatrixSeries {
    /// The series labels (`metric`).
    pub metric: BTreeMap<String, String>,
    /// Samples, oldest first.
    pub values: Vec<Sample>,
}

/// One matrix sample.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    /// Sample time, seconds since the Unix epoch (fractional).
    pub timestamp_secs: f64,
    /// The value as Loki sent it (a decimal string; may be `NaN` or `+Inf`).
    pub value: String,
}

impl Sample {
    /// The value as a number, `None` when it does not parse.
    pub fn value_f64(&self) -> Option<f64> {
        self.value.parse().ok()
    }
}

/// Builder for [`LokiClient`].
#[derive(Debug, Clone)]
#[must_use]
pub struct LokiClientBuilder {
    endpoint: EndpointOptions,
    max_response_bytes: usize,
}

impl LokiClientBuilder {
    /// Reads `LOKI_URL`, `LOKI_TENANT_ID`, `LOKI_USERNAME`/`LOKI_PASSWORD`,
    /// `LOKI_BEARER_TOKEN` and `LOKI_TIMEOUT_MS` (see the [module docs](super)).
    ///
    /// # Errors
    /// As [`LokiSinkBuilder::from_env`](super::LokiSinkBuilder::from_env).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }

    /// Like [`LokiClientBuilder::from_env`] with `lookup` in place of the process
    /// environment.
    ///
    /// # Errors
    /// As [`LokiClientBuilder::from_env`].
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(LokiClientBuilder {
            endpoint: super::endpoint_from_env(&lookup)?,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        })
    }

    /// `X-Scope-OrgID` tenant; several tenants may be queried at once as
    /// `tenant1|tenant2`.
    pub fn tenant_id(mut self, tenant: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.tenant(tenant);
        self
    }

    /// HTTP basic auth. Replaces a bearer token.
    ///
    /// # Security
    /// The password never appears in `Debug` output.
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.basic_auth(user, password);
        self
    }

    /// `Authorization: Bearer <token>`. Replaces basic auth.
    ///
    /// # Security
    /// The token never appears in `Debug` output.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.bearer_token(token);
        self
    }

    /// Per-request timeout (default 5 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.endpoint = self.endpoint.timeout(timeout);
        self
    }

    /// Adds a header sent on every request (e.g. for a proxy in front of Loki); its
    /// value is treated as a secret. See [`EndpointOptions::header`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.endpoint = self.endpoint.header(name, value);
        self
    }

    /// Largest successful answer read, bytes (default
    /// [`DEFAULT_MAX_RESPONSE_BYTES`], 32 MiB). A larger answer fails with kind
    /// [`ErrorKind::Network`] once this many bytes arrived, instead of being buffered
    /// whole; narrow the query or lower its `limit`. Error answers are read up to
    /// 4 KiB whatever this is.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Replaces URL, credentials, timeout, tenant and extra headers at once with
    /// `options` (shared with [`LokiSinkBuilder`](super::LokiSinkBuilder)); the
    /// tenant may name several tenants as `tenant1|tenant2`.
    pub fn endpoint(mut self, options: EndpointOptions) -> Self {
        self.endpoint = options;
        self
    }

    /// Validates the settings and creates the HTTP client.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a bad URL (`loki_url`), tenant
    /// (`loki_tenant_id`), credentials (`loki_auth`), extra headers
    /// (`loki_headers`), a zero `loki_max_response_bytes` or a zero timeout
    /// (`http_timeout`).
    pub fn build(self) -> Result<LokiClient, ConfigError> {
        if self.max_response_bytes == 0 {
            return Err(ConfigError::invalid(
                "loki_max_response_bytes",
                0,
                "must be greater than zero",
            ));
        }
        let (base, mut headers, timeout) = super::resolve(&self.endpoint, true)?;
        headers.insert(
            HeaderName::from_static(ENCODING_FLAGS_HEADER),
            HeaderValue::from_static("categorize-labels"),
        );
        let transport = HttpTransport::new(timeout, headers)?;
        Ok(LokiClient {
            base,
            transport,
            max_response_bytes: self.max_response_bytes,
        })
    }
}

/// Async client for Loki's query API (the parts seeds/003 exposes: readiness, labels,
/// label values, range queries).
///
/// Its methods are `async` (reqwest) and must run inside a tokio runtime; from sync
/// code, use a runtime's `block_on`. It is independent of the Loggier pipeline: a
/// query never goes through the worker thread.
///
/// # Errors
/// Every method returns an [`Error`] whose message carries what Loki said: kind
/// [`ErrorKind::Network`] for connection failures, timeouts, 5xx answers and
/// malformed responses; kind [`ErrorKind::Rejected`] for 4xx answers (a LogQL parse
/// error, a missing tenant) and `"status": "error"` bodies.
///
/// # Example
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::{Duration, SystemTime};
/// use loggier_core::sink::loki::{Direction, LokiClient};
///
/// let loki = LokiClient::builder("http://localhost:3100").tenant_id("team-a").build()?;
/// loki.ready().await?;
/// let end = SystemTime::now();
/// let res = loki
///     .query_range(r#"{service="api"} | trace_id="4bf92f35""#, end - Duration::from_secs(3600), end, 100, Direction::Backward)
///     .await?;
/// for entry in res.data.entries() {
///     println!("{} {}", entry.timestamp_ns, entry.line);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct LokiClient {
    base: String,
    transport: HttpTransport,
    max_response_bytes: usize,
}

impl LokiClient {
    /// A builder for the Loki at `url` (`http://loki:3100`). Defaults: no tenant, no
    /// auth, 5 s timeout.
    pub fn builder(url: impl Into<String>) -> LokiClientBuilder {
        LokiClientBuilder {
            endpoint: EndpointOptions::new(url),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// `GET /ready`: `Ok(())` when Loki answers 200 (ready to accept traffic).
    ///
    /// # Errors
    /// See [`LokiClient`]; a starting Loki answers 503 with e.g.
    /// `Ingester not ready: waiting for 15s after being ready`, which the error carries.
    pub async fn ready(&self) -> Result<(), Error> {
        let url = self.url("/ready", &[])?;
        let (status, body) = self.get(&url).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(status_error("loki is not ready", status, &body))
        }
    }

    /// `GET /loki/api/v1/labels`: label names Loki knows for the last 6 hours (Loki's
    /// default window).
    ///
    /// # Errors
    /// See [`LokiClient`].
    pub async fn labels(&self) -> Result<Vec<String>, Error> {
        let url = self.url("/loki/api/v1/labels", &[])?;
        self.get_list(&url).await
    }

    /// `GET /loki/api/v1/label/<name>/values`: the values of label `name` in the last
    /// 6 hours. `name` is percent-encoded into the path.
    ///
    /// # Errors
    /// See [`LokiClient`].
    pub async fn label_values(&self, name: &str) -> Result<Vec<String>, Error> {
        let mut url = self.url("/loki/api/v1/label", &[])?;
        url.path_segments_mut()
            .map_err(|()| Error::new(ErrorKind::Network, "loki base url cannot have a path"))?
            .push(name)
            .push("values");
        self.get_list(&url).await
    }

    /// `GET /loki/api/v1/query_range`: runs `logql` over `[start, end)` returning at
    /// most `limit` entries (log queries) sorted by `direction`.
    ///
    /// Times are sent as nanoseconds since the Unix epoch (a time before 1970 is sent
    /// as 0). Metric queries use Loki's default step.
    ///
    /// # Errors
    /// See [`LokiClient`]; a LogQL syntax error comes back as kind
    /// [`ErrorKind::Rejected`] with Loki's `parse error at line …` message.
    pub async fn query_range(
        &self,
        logql: &str,
        start: SystemTime,
        end: SystemTime,
        limit: u32,
        direction: Direction,
    ) -> Result<QueryResponse, Error> {
        let url = self.url(
            "/loki/api/v1/query_range",
            &[
                ("query", logql.to_string()),
                ("start", unix_ns(start).to_string()),
                ("end", unix_ns(end).to_string()),
                ("limit", limit.to_string()),
                ("direction", direction.as_str().to_string()),
            ],
        )?;
        let (status, body) = self.get(&url).await?;
        let data: RawQueryData = parse_success(status, &body)?;
        data.into_typed()
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<reqwest::Url, Error> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.base))
            .map_err(|e| Error::with_source(ErrorKind::Network, "cannot build loki url", e))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    async fn get(&self, url: &reqwest::Url) -> Result<(u16, bytes::Bytes), Error> {
        self.transport
            .get_limited(url.as_str(), self.max_response_bytes)
            .await
            .map_err(|e| Error::new(ErrorKind::Network, format!("loki request failed: {e}")))
    }

    async fn get_list(&self, url: &reqwest::Url) -> Result<Vec<String>, Error> {
        let (status, body) = self.get(url).await?;
        parse_success(status, &body)
    }
}

fn unix_ns(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// `{"status":"success","data":…}` envelope; errors may come as
/// `{"status":"error","errorType":"…","error":"…"}` (Prometheus-compatible API).
#[derive(Deserialize)]
struct Envelope<T> {
    status: Option<String>,
    data: Option<T>,
    error: Option<String>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
}

/// Checks the HTTP status and the envelope and returns `data` (`T::default()` when
/// Loki left it out or sent `null`).
fn parse_success<T>(status: u16, body: &[u8]) -> Result<T, Error>
where
    T: serde::de::DeserializeOwned + Default,
{
    if !(200..300).contains(&status) {
        return Err(status_error("loki query failed", status, body));
    }
    let env: Envelope<T> = serde_json::from_slice(body).map_err(|e| {
        Error::with_source(
            ErrorKind::Network,
            format!("unexpected response from loki: {}", body_excerpt(body, 200)),
            e,
        )
    })?;
    match env.status.as_deref() {
        Some("success") | None => Ok(env.data.unwrap_or_default()),
        Some(other) => Err(Error::new(
            ErrorKind::Rejected,
            format!(
                "loki query failed: status {other}{}: {}",
                env.error_type
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default(),
                env.error.unwrap_or_default()
            ),
        )),
    }
}

/// An error for a non-2xx answer, carrying Loki's message: the `error` field of a
/// JSON error body, else the body text (Loki writes query errors as plain text).
fn status_error(what: &str, status: u16, body: &[u8]) -> Error {
    let message = serde_json::from_slice::<Envelope<serde_json::Value>>(body)
        .ok()
        .and_then(|e| e.error)
        .unwrap_or_else(|| body_excerpt(body, 1024));
    let kind = if (400..500).contains(&status) {
        ErrorKind::Rejected
    } else {
        ErrorKind::Network
    };
    if message.is_empty() {
        Error::new(kind, format!("{what}: http {status}"))
    } else {
        Error::new(kind, format!("{what}: http {status}: {message}"))
    }
}

#[derive(Deserialize, Default)]
struct RawQueryData {
    #[serde(rename = "resultType", default)]
    result_type: String,
    #[serde(default)]
    result: serde_json::Value,
    #[serde(default)]
    stats: serde_json::Value,
}

#[derive(Deserialize)]
struct RawStream {
    #[serde(default)]
    stream: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct RawMatrix {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(serde_json::Value, String)>,
}

impl RawQueryData {
    fn into_typed(self) -> Result<QueryResponse, Error> {
        let bad = |what: String| {
            Error::new(
                ErrorKind::Network,
                format!("unexpected response from loki: {what}"),
            )
        };
        let result = if self.result.is_null() {
            serde_json::Value::Array(Vec::new())
        } else {
            self.result
        };
        let data = match self.result_type.as_str() {
            "streams" => {
                let raw: Vec<RawStream> = serde_json::from_value(result)
                    .map_err(|e| bad(format!("streams result: {e}")))?;
                let mut streams = Vec::with_capacity(raw.len());
                for s in raw {
                    let mut entries = Vec::with_capacity(s.values.len());
                    for v in s.values {
                        entries.push(parse_entry(v).map_err(&bad)?);
                    }
                    streams.push(StreamResult {
                        labels: s.stream,
                        entries,
                    });
                }
                QueryData::Streams(streams)
            }
            "matrix" => {
                let raw: Vec<RawMatrix> = serde_json::from_value(result)
                    .map_err(|e| bad(format!("matrix result: {e}")))?;
                let mut series = Vec::with_capacity(raw.len());
                for m in raw {
                    let mut values = Vec::with_capacity(m.values.len());
                    for (ts, value) in m.values {
                        let timestamp_secs = ts
                            .as_f64()
                            .or_else(|| ts.as_str().and_then(|s| s.parse().ok()))
                            .ok_or_else(|| bad(format!("sample timestamp {ts}")))?;
                        values.push(Sample {
                            timestamp_secs,
                            value,
                        });
                    }
                    series.push(MatrixSeries {
                        metric: m.metric,
                        values,
                    });
                }
                QueryData::Matrix(series)
            }
            other => return Err(bad(format!("unsupported resultType {other:?}"))),
        };
        Ok(QueryResponse {
            data,
            stats: self.stats,
        })
    }
}

/// `["<ns>", "<line>"]`, optionally with a third element: either
/// `{"structuredMetadata":{…},"parsed":{…}}` (categorized labels) or a flat object of
/// metadata.
fn parse_entry(v: Vec<serde_json::Value>) -> Result<StreamEntry, String> {
    let mut it = v.into_iter();
    let ts = it.next().ok_or("empty stream value")?;
    let timestamp_ns = ts
        .as_str()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| format!("entry timestamp {ts} is not a nanosecond string"))?;
    let line = match it.next() {
        Some(serde_json::Value::String(s)) => s,
        other => return Err(format!("entry line {other:?} is not a string")),
    };
    let mut entry = StreamEntry {
        timestamp_ns,
        line,
        ..StreamEntry::default()
    };
    if let Some(serde_json::Value::Object(extra)) = it.next() {
        let categorized = extra.contains_key("structuredMetadata") || extra.contains_key("parsed");
        if categorized {
            entry.structured_metadata = string_map(extra.get("structuredMetadata"));
            entry.parsed = string_map(extra.get("parsed"));
        } else {
            entry.structured_metadata = string_map(Some(&serde_json::Value::Object(extra)));
        }
    }
    Ok(entry)
}

fn string_map(v: Option<&serde_json::Value>) -> BTreeMap<String, String> {
    v.and_then(|v| v.as_object())
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}
