//! The relay state, its router and the ingest handlers.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use loggier_core::{Config, DeliveryMode, Loggier, LokiClient, Record};
use serde_json::{Value, json};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{Caller, Scope};
use crate::body::{MediaType, check_text, media_type, read_body};
use crate::config::RelayConfig;
use crate::error::{ApiError, RejectReason};
use crate::metrics::Metrics;
use crate::model::{
    IngestRecord, LogEntry, LokiPushBody, check_lengths, loki_json_records, loki_protobuf_records,
    parse_json, parse_ndjson, too_many,
};

/// Header carrying the batch id that `loggier_core::HttpSink` sends.
pub const BATCH_ID_HEADER: &str = "x-loggier-batch-id";
/// Header a client may set to choose the request id of a `POST /log` record
/// (at most 128 visible ASCII characters; otherwise a UUIDv7 is generated).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The relay: a Loggier pipeline, an optional Loki query client and the HTTP
/// protection settings. Cheap to clone (an `Arc`).
///
/// Build with [`Relay::builder`]; serve [`Relay::router`].
#[derive(Clone)]
pub struct Relay {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.inner.config)
            .field("loki", &self.inner.loki.as_ref().map(LokiClient::base_url))
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) loggier: Loggier,
    pub(crate) loki: Option<LokiClient>,
    pub(crate) config: RelayConfig,
    limiter: DefaultKeyedRateLimiter<String>,
    /// Failed key checks per client address ([`ClientIp::bucket`]).
    auth_limiter: DefaultKeyedRateLimiter<Option<IpAddr>>,
    /// Addresses that used up their failure budget, until when they are refused.
    lockout: Mutex<HashMap<Option<IpAddr>, Instant>>,
    /// Failed key checks so far (triggers the periodic clean-up of both maps).
    auth_failures: AtomicU64,
    dedup: Mutex<Dedup>,
    pub(crate) metrics: Metrics,
    pub(crate) queue_file: Option<PathBuf>,
    pub(crate) caching: bool,
    /// Durable delivery: a 2xx waits for the disk commit.
    durable: bool,
    /// Records the channel — and each sink's backlog, which has the same bound —
    /// holds.
    capacity: usize,
    /// Serialises admission so two requests cannot both take the last room.
    admission: Mutex<()>,
}

/// Builder for [`Relay`].
#[derive(Debug)]
#[must_use]
pub struct RelayBuilder {
    loggier: Loggier,
    loki: Option<LokiClient>,
    config: RelayConfig,
    queue_file: Option<PathBuf>,
    caching: bool,
    durable: bool,
}

impl RelayBuilder {
    /// Protection and limit settings (default [`RelayConfig::default`]: open mode,
    /// 1 MiB bodies, 100 requests/s per caller).
    pub fn config(mut self, config: RelayConfig) -> Self {
        self.config = config;
        self
    }

    /// The Loki the `/api/v1/loki/*` query endpoints read from. Without it they
    /// answer 503 `loki_not_configured`.
    pub fn loki(mut self, client: LokiClient) -> Self {
        self.loki = Some(client);
        self
    }

    /// Tells the relay how the pipeline was built: where its disk queue lives (for
    /// `loggier_relay_disk_queue_bytes`), whether offline caching is on (for
    /// `/ready`: a sink that is down but caching to disk still counts as ready), and
    /// the delivery mode: with [`DeliveryMode::Durable`] every 2xx waits until the
    /// request's records are committed to disk (see [`Relay::router`]). Without this
    /// call the relay assumes offline-cache delivery.
    pub fn pipeline_config(mut self, config: &Config) -> Self {
        self.queue_file = Some(config.queue_file());
        self.caching = config.enable_caching;
        self.durable = config.delivery_mode == DeliveryMode::Durable;
        self
    }

    /// The relay. The pipeline's capacity (for the 503 backpressure) is read from
    /// the client now, so build the relay before records flow.
    pub fn build(self) -> Relay {
        let c = &self.config;
        let quota = Quota::per_second(c.rate_per_sec).allow_burst(c.rate_burst);
        let auth_quota =
            Quota::per_minute(c.auth_failures_per_min).allow_burst(c.auth_failure_burst);
        let capacity = self
            .loggier
            .channel_free()
            .saturating_add(self.loggier.stats().in_channel as usize);
        Relay {
            inner: Arc::new(Inner {
                limiter: RateLimiter::keyed(quota),
                auth_limiter: RateLimiter::keyed(auth_quota),
                lockout: Mutex::new(HashMap::new()),
                auth_failures: AtomicU64::new(0),
                dedup: Mutex::new(Dedup::new(c.dedup_window)),
                metrics: Metrics::new(),
                loggier: self.loggier,
                loki: self.loki,
                config: self.config,
                queue_file: self.queue_file,
                caching: self.caching,
                durable: self.durable,
                capacity,
                admission: Mutex::new(()),
            }),
        }
    }
}

impl Relay {
    /// A builder around `loggier`, the pipeline records are handed to. Build that
    /// client with the Loki sink's
    /// [`label_fields`](loggier_core::sink::loki::LokiSinkBuilder::label_fields) set
    /// to [`LABEL_FIELDS`](crate::LABEL_FIELDS) so each record's `service` and
    /// `component` become its labels (the binary does; see [`crate::pipeline`]).
    pub fn builder(loggier: Loggier) -> RelayBuilder {
        RelayBuilder {
            loggier,
            loki: None,
            config: RelayConfig::default(),
            queue_file: None,
            caching: false,
            durable: false,
        }
    }

    /// The pipeline.
    pub fn loggier(&self) -> &Loggier {
        &self.inner.loggier
    }

    /// The routes, ready to serve or to [`Router::merge`]/[`Router::nest`] into a
    /// service:
    ///
    /// | route | scope | answer |
    /// |---|---|---|
    /// | `POST /log` | ingest | 202 `{"accepted":1,"request_id":"…"}` |
    /// | `POST /logs` | ingest | 202 `{"accepted":N}` (JSON array or NDJSON) |
    /// | `POST /api/ingest` | ingest | 200 `{"accepted":N,"duplicate":bool}` |
    /// | `POST /api/v1/loki/push` | ingest | 204 |
    /// | `POST /api/v1/loki/query` | query | 200 streams or matrix |
    /// | `GET /api/v1/loki/query/simple?query=&hours=` | query | as above |
    /// | `GET /api/v1/loki/labels` | query | `{"labels":[…]}` |
    /// | `GET /api/v1/loki/labels/{name}/values` | query | `{"label":"…","values":[…]}` |
    /// | `GET /api/v1/loki/health` | none | 200/503 Loki and pipeline state |
    /// | `GET /health`, `GET /ready`, `GET /metrics` | none | liveness, readiness, Prometheus text |
    ///
    /// Errors are JSON ([`ApiError`]). With CORS origins configured, a
    /// [`CorsLayer`] answers preflights for exactly those origins.
    ///
    /// # Durable mode
    /// With a durable pipeline ([`RelayBuilder::pipeline_config`]), the ingest routes
    /// answer 2xx only after [`Loggier::persist_async`] confirmed that the request's
    /// records are committed to the disk queue of each network sink (and written by
    /// each local one); when that fails or takes longer than
    /// [`RelayConfig::persist_timeout`], they answer 503 `not_persisted` with
    /// `Retry-After`. The records were handed to the pipeline and may still be
    /// stored, so a client that sends them again may store them twice (at least
    /// once, never silently lost). `/api/ingest` forgets the batch id then, so the
    /// retry is not taken for a duplicate.
    ///
    /// # Failed keys
    /// A presented key that matches no configured key (`invalid_key`) uses one unit
    /// of its client address's failure budget
    /// ([`RelayConfig::auth_failure_burst`], refilled at
    /// [`RelayConfig::auth_failures_per_min`]); correct keys never use it. An address
    /// whose budget is used up gets 429 `auth_rate_limited` with `Retry-After` for
    /// every request that needs a key — even one with a correct key, or a guesser
    /// would still learn the right key at full speed — until a unit refills. Other
    /// addresses are not affected. IPv6 addresses count per /64.
    ///
    /// The address comes from axum's [`ConnectInfo<SocketAddr>`]: serve with
    /// `into_make_service_with_connect_info::<SocketAddr>()` (the binary does).
    /// Mounted without it, every caller shares one failure budget (guessing stays
    /// slowed; a guesser can lock out everyone's key checks for the lockout time).
    /// Behind a reverse proxy every client has the proxy's address;
    /// `X-Forwarded-For` is not trusted.
    pub fn router(&self) -> Router {
        let r = Router::new()
            .route("/log", post(post_log))
            .route("/logs", post(post_logs))
            .route("/api/ingest", post(post_ingest))
            .route("/api/v1/loki/push", post(post_loki_push))
            .route("/api/v1/loki/query", post(crate::loki_api::post_query))
            .route(
                "/api/v1/loki/query/simple",
                get(crate::loki_api::get_simple),
            )
            .route("/api/v1/loki/labels", get(crate::loki_api::get_labels))
            .route(
                "/api/v1/loki/labels/{name}/values",
                get(crate::loki_api::get_label_values),
            )
            .route("/api/v1/loki/health", get(crate::loki_api::get_health))
            .route("/health", get(health))
            .route("/ready", get(ready))
            .route("/metrics", get(metrics))
            .layer(middleware::from_fn_with_state(
                self.clone(),
                count_rejections,
            ))
            .with_state(self.clone());
        let origins: Vec<HeaderValue> = self
            .inner
            .config
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        if origins.is_empty() {
            return r;
        }
        r.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([
                    header::CONTENT_TYPE,
                    header::CONTENT_ENCODING,
                    header::AUTHORIZATION,
                    header::HeaderName::from_static("x-api-key"),
                    header::HeaderName::from_static(REQUEST_ID_HEADER),
                ])
                .expose_headers([header::RETRY_AFTER])
                .max_age(Duration::from_secs(600)),
        )
    }

    /// Authenticates, checks `scope` and applies the caller's rate limit. A client
    /// address locked out for failed keys is refused before its key is looked at.
    pub(crate) fn guard(
        &self,
        headers: &HeaderMap,
        client: ClientIp,
        scope: Scope,
    ) -> Result<Caller, ApiError> {
        let keys = &self.inner.config.keys;
        if !keys.is_empty() {
            self.check_lockout(client)?;
        }
        let caller = match keys.authorize(headers, scope) {
            Ok(c) => c,
            Err(e) if e.code == INVALID_KEY => return Err(self.auth_failed(client, e)),
            Err(e) => return Err(e),
        };
        let bucket = match self.inner.config.keys.key(&caller) {
            Some(k) => k.id.clone(),
            None => "anonymous".to_string(),
        };
        if let Err(not_until) = self.inner.limiter.check_key(&bucket) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "rate limit of {} requests/s exceeded; retry later",
                    self.inner.config.rate_per_sec
                ),
            )
            .retry_after(wait));
        }
        Ok(caller)
    }

    /// 429 while `client` is locked out for failed keys.
    fn check_lockout(&self, client: ClientIp) -> Result<(), ApiError> {
        let mut lockout = self
            .inner
            .lockout
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(until) = lockout.get(&client.bucket()).copied() else {
            return Ok(());
        };
        let now = Instant::now();
        if until <= now {
            lockout.remove(&client.bucket());
            return Ok(());
        }
        Err(self.auth_rate_limited(until - now))
    }

    /// Counts a failed key check against `client`'s budget: the 401 `err`, or 429
    /// (and a lockout) once the budget is used up. Every 256 failures the limiter
    /// forgets addresses whose budget is full again and expired lockouts are removed,
    /// so memory stays bounded by the addresses that failed recently.
    fn auth_failed(&self, client: ClientIp, err: ApiError) -> ApiError {
        let inner = &self.inner;
        if inner.auth_failures.fetch_add(1, Ordering::Relaxed) % 256 == 255 {
            inner.auth_limiter.retain_recent();
            inner.auth_limiter.shrink_to_fit();
            let now = Instant::now();
            let mut lockout = inner
                .lockout
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            lockout.retain(|_, until| *until > now);
            lockout.shrink_to_fit();
        }
        let bucket = client.bucket();
        match inner.auth_limiter.check_key(&bucket) {
            Ok(()) => err,
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                let mut lockout = inner
                    .lockout
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                // Bounded: past the cap a guesser's wrong keys still get 429 from the
                // limiter, only the lockout of its correct-key requests is skipped.
                if lockout.len() < MAX_LOCKOUTS || lockout.contains_key(&bucket) {
                    lockout.insert(bucket, Instant::now() + wait);
                }
                self.auth_rate_limited(wait)
            }
        }
    }

    fn auth_rate_limited(&self, wait: Duration) -> ApiError {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "auth_rate_limited",
            format!(
                "too many invalid API keys from this address (budget {}, refilled at {}/min); retry later",
                self.inner.config.auth_failure_burst, self.inner.config.auth_failures_per_min
            ),
        )
        .retry_after(wait)
    }

    /// Durable mode: waits until every record handed to the pipeline so far is
    /// committed to disk ([`Loggier::persist_async`]). Offline-cache mode: at once.
    ///
    /// # Errors
    /// 503 `not_persisted` with `Retry-After` when the commit failed or took longer
    /// than [`RelayConfig::persist_timeout`].
    async fn persisted(&self, n: usize) -> Result<(), ApiError> {
        if !self.inner.durable {
            return Ok(());
        }
        let timeout = self.inner.config.persist_timeout;
        if self.inner.loggier.persist_async(timeout).await {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_persisted",
            format!(
                "{n} records were handed to the pipeline but their commit to disk could not be confirmed within {} ms; send them again later (they may then be stored twice)",
                timeout.as_millis()
            ),
        )
        .retry_after(self.inner.config.retry_after))
    }

    fn pipeline_full(&self, accepted: usize) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "pipeline_full",
            format!(
                "the pipeline cannot take more records now; {accepted} of this request's records were accepted, send the rest again later"
            ),
        )
        .retry_after(self.inner.config.retry_after);
        e.accepted = Some(accepted);
        e
    }

    /// Records the pipeline can take now without any of them being dropped: the
    /// channel's free room, less what the busiest sink still holds in memory (the
    /// worker drops a record when a sink's backlog, bounded like the channel, is
    /// full). Records a sink parked on disk do not count, so an offline sink with
    /// caching keeps accepting.
    pub(crate) fn room(&self) -> usize {
        let log = &self.inner.loggier;
        let stats = log.stats();
        let busiest = stats
            .sinks
            .iter()
            .map(|k| k.pending.saturating_sub(k.pending_disk))
            .max()
            .unwrap_or(0);
        let held = usize::try_from(stats.in_channel.saturating_add(busiest)).unwrap_or(usize::MAX);
        self.inner
            .capacity
            .saturating_sub(held)
            .min(log.channel_free())
    }

    /// Hands `records` to the pipeline in order. When there is no room for all of
    /// them ([`Relay::room`]) nothing is sent (503); if the channel still refuses one
    /// midway, the 503 says how many leading records were accepted.
    fn accept(&self, records: Vec<Record>, endpoint: &'static str) -> Result<usize, ApiError> {
        let n = records.len();
        let _admission = self.inner.admission.lock().map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "admission lock poisoned",
            )
        })?;
        if n > self.room() {
            return Err(self.pipeline_full(0));
        }
        for (i, r) in records.into_iter().enumerate() {
            if self.inner.loggier.try_log(r).is_err() {
                self.inner.metrics.accepted(endpoint, i);
                return Err(self.pipeline_full(i));
            }
        }
        self.inner.metrics.accepted(endpoint, n);
        Ok(n)
    }

    fn check_records(&self, records: &[Record], batch: bool) -> Result<(), ApiError> {
        let max = self.inner.config.limits.max_field_bytes;
        for (i, r) in records.iter().enumerate() {
            let at = |k: &str| {
                if batch {
                    format!("[{i}].{k}")
                } else {
                    k.to_string()
                }
            };
            check_lengths(&Value::String(r.message.to_string()), &at("message"), max)?;
            for (k, v) in &r.context {
                check_lengths(&Value::String(k.to_string()), &at(k), max)?;
                check_lengths(v, &at(k), max)?;
            }
        }
        Ok(())
    }

    /// Reads a JSON/NDJSON body within the size limits and checks its nesting depth:
    /// the body step shared by the text endpoints.
    pub(crate) async fn read_text(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Bytes, ApiError> {
        let limits = &self.inner.config.limits;
        let bytes = read_body(headers, body, limits).await?;
        check_text(&bytes, limits.max_depth)?;
        Ok(bytes)
    }

    /// Checks that `caller` may write each of the batch's `services` (the error
    /// path names the record: `[i].service`).
    fn check_services<'a>(
        &self,
        caller: &Caller,
        services: impl IntoIterator<Item = Option<&'a str>>,
    ) -> Result<(), ApiError> {
        for (i, svc) in services.into_iter().enumerate() {
            self.inner
                .config
                .keys
                .check_service(caller, svc, &format!("[{i}].service"))?;
        }
        Ok(())
    }

    /// The last steps of `/log`, `/logs`, `/api/ingest` (without a batch id) and the
    /// Loki push: field lengths checked
    /// ([`Relay::check_records`]), the records handed to the pipeline
    /// ([`Relay::accept`]) and, in durable mode, committed ([`Relay::persisted`]).
    /// Returns how many were accepted.
    async fn check_and_accept(
        &self,
        records: Vec<Record>,
        batch: bool,
        endpoint: &'static str,
    ) -> Result<usize, ApiError> {
        self.check_records(&records, batch)?;
        let n = self.accept(records, endpoint)?;
        self.persisted(n).await?;
        Ok(n)
    }

    fn check_count(&self, n: usize) -> Result<(), ApiError> {
        let max = self.inner.config.limits.max_records;
        if n > max { Err(too_many(max)) } else { Ok(()) }
    }
}

/// Recently seen batch ids and how many leading records of each were accepted.
#[derive(Debug)]
struct Dedup {
    cap: usize,
    order: VecDeque<String>,
    seen: HashMap<String, usize>,
}

impl Dedup {
    fn new(cap: usize) -> Self {
        Dedup {
            cap: cap.max(1),
            order: VecDeque::new(),
            seen: HashMap::new(),
        }
    }

    fn accepted(&self, id: &str) -> usize {
        self.seen.get(id).copied().unwrap_or(0)
    }

    /// After a failed commit: back to `accepted` if it was raised meanwhile, so a
    /// retry of the batch is stored again.
    fn roll_back(&mut self, id: &str, accepted: usize) {
        if let Some(v) = self.seen.get_mut(id) {
            *v = (*v).min(accepted);
        }
    }

    fn set(&mut self, id: &str, accepted: usize) {
        if let Some(v) = self.seen.get_mut(id) {
            *v = accepted;
            return;
        }
        self.seen.insert(id.to_string(), accepted);
        self.order.push_back(id.to_string());
        while self.order.len() > self.cap {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
    }
}

async fn count_rejections(State(relay): State<Relay>, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    if let Some(RejectReason(code)) = res.extensions().get::<RejectReason>() {
        relay.inner.metrics.rejected(code);
    }
    res
}

/// Code of the 401 for a key that matches no configured key.
const INVALID_KEY: &str = "invalid_key";

/// Most client addresses locked out at once (bounds the lockout map).
const MAX_LOCKOUTS: usize = 65_536;

/// The client's address, from axum's [`ConnectInfo<SocketAddr>`] when the server
/// provides it (`into_make_service_with_connect_info`); `None` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientIp(Option<IpAddr>);

impl ClientIp {
    /// The failure-budget key: the address (IPv4-mapped IPv6 as IPv4), an IPv6
    /// address cut to its /64 (one host usually has the whole /64), `None` when
    /// unknown (one budget shared by every such caller).
    fn bucket(self) -> Option<IpAddr> {
        self.0.map(|ip| match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
            v4 => v4,
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

/// The rule for client-chosen ids (`X-Request-Id`, `X-Loggier-Batch-Id`): 1 to 128
/// visible ASCII characters, after trimming.
fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
}

/// The header's value when it is a [`valid_id`]: `None` when absent, `Some(Err(()))`
/// when present but not valid.
fn header_id(headers: &HeaderMap, name: &str) -> Option<Result<String, ()>> {
    let v = headers.get(name)?;
    Some(
        v.to_str()
            .ok()
            .map(str::trim)
            .filter(|s| valid_id(s))
            .map(str::to_string)
            .ok_or(()),
    )
}

/// `X-Request-Id` when valid, else a new UUIDv7.
fn request_id(headers: &HeaderMap) -> String {
    match header_id(headers, REQUEST_ID_HEADER) {
        Some(Ok(id)) => id,
        _ => uuid::Uuid::now_v7().to_string(),
    }
}

async fn post_log(
    State(relay): State<Relay>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = relay.guard(&headers, client, Scope::Ingest)?;
    media_type(&headers, &[MediaType::Json])?;
    let bytes = relay.read_text(&headers, body).await?;
    let entry: LogEntry = parse_json(&bytes)?;
    relay
        .inner
        .config
        .keys
        .check_service(&caller, entry.service(), "service")?;
    let rid = request_id(&headers);
    let n = relay
        .check_and_accept(vec![entry.into_record(&rid)], false, "log")
        .await?;
    Ok(accepted_with_request_id(n, &rid))
}

async fn post_logs(
    State(relay): State<Relay>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = relay.guard(&headers, client, Scope::Ingest)?;
    let media = media_type(&headers, &[MediaType::Json, MediaType::Ndjson])?;
    let bytes = relay.read_text(&headers, body).await?;
    let entries: Vec<LogEntry> = match media {
        MediaType::Ndjson => parse_ndjson(&bytes, relay.inner.config.limits.max_records)?,
        _ => parse_json(&bytes)?,
    };
    relay.check_count(entries.len())?;
    relay.check_services(&caller, entries.iter().map(LogEntry::service))?;
    let rid = request_id(&headers);
    let records: Vec<Record> = entries.into_iter().map(|e| e.into_record(&rid)).collect();
    let n = relay.check_and_accept(records, true, "logs").await?;
    Ok(accepted_with_request_id(n, &rid))
}

async fn post_ingest(
    State(relay): State<Relay>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = relay.guard(&headers, client, Scope::Ingest)?;
    media_type(&headers, &[MediaType::Json])?;
    let batch_id = header_id(&headers, BATCH_ID_HEADER)
        .transpose()
        .map_err(|()| {
            ApiError::bad_request(
                "invalid_batch_id",
                "X-Loggier-Batch-Id must be 1 to 128 visible ASCII characters",
            )
        })?;
    let bytes = relay.read_text(&headers, body).await?;
    let incoming: Vec<IngestRecord> = parse_json(&bytes)?;
    relay.check_count(incoming.len())?;
    relay.check_services(&caller, incoming.iter().map(IngestRecord::service))?;
    let records = incoming
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.into_record().map_err(|mut e| {
                e.path = e.path.map(|p| format!("[{i}].{p}"));
                e
            })
        })
        .collect::<Result<Vec<Record>, ApiError>>()?;
    let Some(id) = batch_id else {
        let n = relay.check_and_accept(records, true, "ingest").await?;
        return Ok(Json(json!({"accepted": n, "duplicate": false})).into_response());
    };
    relay.check_records(&records, true)?;
    let total = records.len();
    // The dedup lock is held across the (non-blocking) hand-off so two deliveries of
    // one batch cannot both store it; it is released before the commit is awaited.
    let (done, outcome) = {
        let mut dedup = relay.inner.dedup.lock().map_err(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "dedup state poisoned",
            )
        })?;
        let done = dedup.accepted(&id);
        if done >= total && total > 0 {
            (done, None)
        } else {
            let rest: Vec<Record> = records.into_iter().skip(done).collect();
            let outcome = relay.accept(rest, "ingest");
            // Records taken: all of them, or the leading ones before a 503.
            let taken = outcome
                .as_ref()
                .map_or_else(|e| e.accepted.unwrap_or(0), |n| *n);
            if taken > 0 {
                dedup.set(&id, done + taken);
            }
            (done, Some((taken, outcome)))
        }
    };
    let Some((taken, outcome)) = outcome else {
        // A duplicate: the barrier also covers the first delivery's records, which
        // may still be on their way to disk.
        relay.persisted(0).await?;
        relay.inner.metrics.duplicate();
        return Ok(Json(json!({"accepted": 0, "duplicate": true, "batch_id": id})).into_response());
    };
    if taken > 0 {
        if let Err(e) = relay.persisted(taken).await {
            // A poisoned lock cannot be rolled back here; the next request on it
            // answers 500 (above) instead of trusting the stale entry.
            if let Ok(mut dedup) = relay.inner.dedup.lock() {
                dedup.roll_back(&id, done);
            }
            return Err(e);
        }
    }
    let n = outcome?;
    Ok(Json(json!({"accepted": n, "duplicate": done > 0, "batch_id": id})).into_response())
}

async fn post_loki_push(
    State(relay): State<Relay>,
    client: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = relay.guard(&headers, client, Scope::Ingest)?;
    let media = media_type(&headers, &[MediaType::Json, MediaType::Protobuf])?;
    let limits = &relay.inner.config.limits;
    let bytes = read_body(&headers, body, limits).await?;
    let records = if media == MediaType::Protobuf {
        loki_protobuf_records(&bytes, limits.max_body_bytes)?
    } else {
        check_text(&bytes, limits.max_depth)?;
        let push: LokiPushBody = parse_json(&bytes)?;
        loki_json_records(push)?
    };
    relay.check_count(records.len())?;
    relay.check_services(
        &caller,
        records
            .iter()
            .map(|r| r.context.get("service").and_then(Value::as_str)),
    )?;
    relay.check_and_accept(records, true, "loki_push").await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `202 Accepted` with `{"accepted": n, "request_id": rid}` (`/log`, `/logs`).
fn accepted_with_request_id(n: usize, rid: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({"accepted": n, "request_id": rid})),
    )
        .into_response()
}

async fn health() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// Ready when the channel has room and every sink is up or (with caching on)
/// parking its batches on disk.
async fn ready(State(relay): State<Relay>) -> Response {
    let stats = relay.inner.loggier.stats();
    let free = relay.room();
    let down: Vec<&str> = stats
        .sinks
        .iter()
        .filter(|s| s.offline && !relay.inner.caching)
        .map(|s| s.name.as_str())
        .collect();
    let ok = free > 0 && down.is_empty();
    let body = json!({
        "ready": ok,
        "channel_free": free,
        "sinks_down": down,
        "caching": relay.inner.caching,
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(relay): State<Relay>) -> Response {
    let text = relay
        .inner
        .metrics
        .render(&relay.inner.loggier, relay.inner.queue_file.as_deref());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::{ClientIp, Dedup, valid_id};
    use std::net::IpAddr;

    #[test]
    fn failure_buckets_fold_ipv6_to_its_64_and_mapped_ipv4_to_ipv4() {
        let ip = |s: &str| ClientIp(Some(s.parse::<IpAddr>().expect("ip")));
        assert_eq!(
            ip("2001:db8:1:2:aaaa::1").bucket(),
            ip("2001:db8:1:2:bbbb::9").bucket()
        );
        assert_ne!(
            ip("2001:db8:1:2::1").bucket(),
            ip("2001:db8:1:3::1").bucket()
        );
        assert_eq!(ip("::ffff:10.0.0.7").bucket(), ip("10.0.0.7").bucket());
        assert_ne!(ip("10.0.0.7").bucket(), ip("10.0.0.8").bucket());
        assert_eq!(ClientIp(None).bucket(), None);
    }

    #[test]
    fn ids_are_1_to_128_visible_ascii_characters() {
        assert!(valid_id("0190d2c4-0000-7000-8000-000000000001"));
        assert!(valid_id(&"a".repeat(128)));
        assert!(!valid_id(&"a".repeat(129)));
        assert!(!valid_id(""));
        assert!(!valid_id("a b"));
        assert!(!valid_id("a\r\nb"));
        assert!(!valid_id("é"));
    }

    #[test]
    fn dedup_window_is_bounded_and_forgets_the_oldest() {
        let mut d = Dedup::new(2);
        d.set("a", 3);
        d.set("b", 1);
        d.set("b", 2); // update in place, no new slot
        assert_eq!((d.accepted("a"), d.accepted("b")), (3, 2));
        d.set("c", 5);
        assert_eq!(d.accepted("a"), 0, "oldest forgotten");
        assert_eq!((d.accepted("b"), d.accepted("c")), (2, 5));
        assert_eq!(d.order.len(), 2);
        assert_eq!(d.seen.len(), 2);
    }
}
