//! The relay state, its router and the ingest handlers.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use loggier_core::{Config, Loggier, LokiClient, Record};
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
    dedup: Mutex<Dedup>,
    pub(crate) metrics: Metrics,
    pub(crate) queue_file: Option<PathBuf>,
    pub(crate) caching: bool,
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
    /// `loggier_relay_disk_queue_bytes`) and whether offline caching is on (for
    /// `/ready`: a sink that is down but caching to disk still counts as ready).
    pub fn pipeline_config(mut self, config: &Config) -> Self {
        self.queue_file = Some(config.queue_file());
        self.caching = config.enable_caching;
        self
    }

    /// The relay.
    pub fn build(self) -> Relay {
        let c = &self.config;
        let quota = Quota::per_second(c.rate_per_sec).allow_burst(c.rate_burst);
        let capacity = self
            .loggier
            .channel_free()
            .saturating_add(self.loggier.stats().in_channel as usize);
        Relay {
            inner: Arc::new(Inner {
                limiter: RateLimiter::keyed(quota),
                dedup: Mutex::new(Dedup::new(c.dedup_window)),
                metrics: Metrics::new(),
                loggier: self.loggier,
                loki: self.loki,
                config: self.config,
                queue_file: self.queue_file,
                caching: self.caching,
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

    /// Authenticates, checks `scope` and applies the caller's rate limit.
    pub(crate) fn guard(&self, headers: &HeaderMap, scope: Scope) -> Result<Caller, ApiError> {
        let caller = self.inner.config.keys.authorize(headers, scope)?;
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
            check_lengths(&Value::String(r.message.clone()), &at("message"), max)?;
            for (k, v) in &r.context {
                check_lengths(&Value::String(k.clone()), &at(k), max)?;
                check_lengths(v, &at(k), max)?;
            }
        }
        Ok(())
    }

    /// Reads a JSON/NDJSON body within the size limits and checks its nesting depth:
    /// the body step shared by the text endpoints.
    async fn read_text(&self, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
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

    /// The last steps of every ingest endpoint: field lengths checked
    /// ([`Relay::check_records`]), then the records handed to the pipeline
    /// ([`Relay::accept`]). Returns how many were accepted.
    fn check_and_accept(
        &self,
        records: Vec<Record>,
        batch: bool,
        endpoint: &'static str,
    ) -> Result<usize, ApiError> {
        self.check_records(&records, batch)?;
        self.accept(records, endpoint)
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

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_string)
}

async fn post_log(
    State(relay): State<Relay>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = relay.guard(&headers, Scope::Ingest)?;
    media_type(&headers, &[MediaType::Json])?;
    let bytes = relay.read_text(&headers, body).await?;
    let entry: LogEntry = parse_json(&bytes)?;
    relay
        .inner
        .config
        .keys
        .check_service(&caller, entry.service(), "service")?;
    let rid = request_id(&headers);
    let n = relay.check_and_accept(vec![entry.into_record(&rid)], false, "log")?;
    Ok(accepted_with_request_id(n, &rid))
}

async fn post_logs(
    State(relay): State<Relay>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = relay.guard(&headers, Scope::Ingest)?;
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
    let n = relay.check_and_accept(records, true, "logs")?;
    Ok(accepted_with_request_id(n, &rid))
}

async fn post_ingest(
    State(relay): State<Relay>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = relay.guard(&headers, Scope::Ingest)?;
    media_type(&headers, &[MediaType::Json])?;
    let batch_id = match headers.get(BATCH_ID_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .map(str::trim)
                .filter(|s| {
                    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
                })
                .ok_or_else(|| {
                    ApiError::bad_request(
                        "invalid_batch_id",
                        "X-Loggier-Batch-Id must be 1 to 128 visible ASCII characters",
                    )
                })?
                .to_string(),
        ),
    };
    let bytes = relay.read_text(&headers, body).await?;
    let incoming: Vec<IngestRecord> = parse_json(&bytes)?;
    relay.check_count(incoming.len())?;
    let mut records = Vec::with_capacity(incoming.len());
    for (i, r) in incoming.into_iter().enumerate() {
        relay
            .inner
            .config
            .keys
            .check_service(&caller, r.service(), &format!("[{i}].service"))?;
        records.push(r.into_record().map_err(|mut e| {
            e.path = e.path.map(|p| format!("[{i}].{p}"));
            e
        })?);
    }
    relay.check_records(&records, true)?;
    let Some(id) = batch_id else {
        let n = relay.accept(records, "ingest")?;
        return Ok(Json(json!({"accepted": n, "duplicate": false})).into_response());
    };
    // The lock is held across the (non-blocking) hand-off so two deliveries of one
    // batch cannot both store it.
    let mut dedup = relay.inner.dedup.lock().map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "dedup state poisoned",
        )
    })?;
    let done = dedup.accepted(&id);
    let total = records.len();
    if done >= total && total > 0 {
        relay.inner.metrics.duplicate();
        return Ok(Json(json!({"accepted": 0, "duplicate": true, "batch_id": id})).into_response());
    }
    let rest: Vec<Record> = records.into_iter().skip(done).collect();
    match relay.accept(rest, "ingest") {
        Ok(n) => {
            dedup.set(&id, done + n);
            Ok(Json(json!({"accepted": n, "duplicate": done > 0, "batch_id": id})).into_response())
        }
        Err(e) => {
            let now = done + e.accepted.unwrap_or(0);
            if now > 0 {
                dedup.set(&id, now);
            }
            Err(e)
        }
    }
}

async fn post_loki_push(
    State(relay): State<Relay>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = relay.guard(&headers, Scope::Ingest)?;
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
    relay.check_and_accept(records, true, "loki_push")?;
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
    use super::Dedup;

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
