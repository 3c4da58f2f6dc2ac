//! seeds/003's Loki API under `/api/v1/loki/`: query, simple query, labels, label
//! values and health, forwarded with [`LokiClient`].
//!
//! Query answers keep Loki's data but in a flat, documented shape:
//!
//! ```json
//! {"result_type":"streams","streams":[{"labels":{"service":"app"},
//!   "entries":[{"timestamp_ns":"1741520489000000000","line":"…","structured_metadata":{"msg_id":"1"}}]}],
//!  "stats":{…}}
//! {"result_type":"matrix","series":[{"metric":{"level":"error"},"values":[[1741520489.0,"3"]]}],"stats":{…}}
//! ```
//!
//! A LogQL error (Loki answers 400 with `parse error at line 1, col 5: …`) comes back
//! as 400 `logql_error` carrying Loki's message; an unreachable Loki as 502
//! `loki_unavailable`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use loggier_core::sink::loki::{Direction, QueryData, QueryResponse};
use loggier_core::{ErrorKind, LokiClient};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::{Value, json};

use crate::auth::Scope;
use crate::body::{MediaType, media_type};
use crate::error::ApiError;
use crate::model::{parse_json, parse_rfc3339_ns};
use crate::relay::{ClientIp, Relay};

/// Default entries per query.
pub const DEFAULT_QUERY_LIMIT: u32 = 100;
/// Largest `limit` accepted (Loki's `max_entries_limit_per_query` default).
pub const MAX_QUERY_LIMIT: u32 = 5000;
/// Largest `hours` of `query/simple` (30 days).
pub const MAX_SIMPLE_HOURS: u64 = 720;
/// Longest LogQL query accepted, bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

/// A point in time: an RFC 3339 string, or a number of Unix seconds (values above
/// 10^12 are taken as nanoseconds, like Loki's own parameters).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeArg(pub SystemTime);

impl<'de> Deserialize<'de> for TimeArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = TimeArg;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an RFC 3339 time or a number of unix seconds / nanoseconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<TimeArg, E> {
                let d = if v > 1_000_000_000_000 {
                    Duration::from_nanos(v)
                } else {
                    Duration::from_secs(v)
                };
                Ok(TimeArg(UNIX_EPOCH + d))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<TimeArg, E> {
                u64::try_from(v)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<TimeArg, E> {
                if v.is_finite() && (0.0..1e12).contains(&v) {
                    Ok(TimeArg(UNIX_EPOCH + Duration::from_secs_f64(v)))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<TimeArg, E> {
                parse_rfc3339_ns(v)
                    .map(|ns| TimeArg(UNIX_EPOCH + Duration::from_nanos(ns)))
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
        d.deserialize_any(V)
    }
}

/// `POST /api/v1/loki/query` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// LogQL.
    pub query: String,
    /// Most entries (default 100, at most 5000).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Start (default: `end` − 1 hour).
    #[serde(default)]
    pub start: Option<TimeArg>,
    /// End (default: now).
    #[serde(default)]
    pub end: Option<TimeArg>,
    /// `forward` or `backward` (default).
    #[serde(default)]
    pub direction: Option<WireDirection>,
}

/// Sort order as clients write it.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireDirection {
    /// Oldest first.
    Forward,
    /// Newest first.
    Backward,
}

/// `GET /api/v1/loki/query/simple` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimpleQuery {
    /// LogQL.
    pub query: Option<String>,
    /// Hours back from now (default 1, 1..=720).
    pub hours: Option<u64>,
    /// Most entries (default 100).
    pub limit: Option<u32>,
}

fn client(relay: &Relay) -> Result<&LokiClient, ApiError> {
    relay.inner.loki.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "loki_not_configured",
            "no Loki is configured for queries; set LOKI_URL",
        )
    })
}

fn loki_error(e: &loggier_core::Error) -> ApiError {
    match e.kind() {
        ErrorKind::Rejected => ApiError::bad_request("logql_error", e.to_string()),
        _ => ApiError::new(StatusCode::BAD_GATEWAY, "loki_unavailable", e.to_string()),
    }
}

async fn run_query(
    relay: &Relay,
    logql: &str,
    start: SystemTime,
    end: SystemTime,
    limit: u32,
    direction: Direction,
) -> Result<Response, ApiError> {
    if logql.trim().is_empty() {
        return Err(ApiError::bad_request("missing_field", "query is empty").at("query"));
    }
    if logql.len() > MAX_QUERY_BYTES {
        return Err(ApiError::bad_request(
            "field_too_long",
            format!("query is over {MAX_QUERY_BYTES} bytes"),
        )
        .at("query"));
    }
    if limit == 0 || limit > MAX_QUERY_LIMIT {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("limit must be 1 to {MAX_QUERY_LIMIT}"),
        )
        .at("limit"));
    }
    if start >= end {
        return Err(ApiError::bad_request("invalid_field", "start must be before end").at("start"));
    }
    let loki = client(relay)?;
    let res = loki
        .query_range(logql, start, end, limit, direction)
        .await
        .map_err(|e| loki_error(&e))?;
    Ok(Json(render(&res)).into_response())
}

/// The relay's JSON for a query result (see the module docs).
pub fn render(res: &QueryResponse) -> Value {
    match &res.data {
        QueryData::Streams(streams) => json!({
            "result_type": "streams",
            "streams": streams.iter().map(|s| json!({
                "labels": s.labels,
                "entries": s.entries.iter().map(|e| json!({
                    "timestamp_ns": e.timestamp_ns.to_string(),
                    "line": e.line,
                    "structured_metadata": e.structured_metadata,
                    "parsed": e.parsed,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "stats": res.stats,
        }),
        QueryData::Matrix(series) => json!({
            "result_type": "matrix",
            "series": series.iter().map(|m| json!({
                "metric": m.metric,
                "values": m.values.iter().map(|v| json!([v.timestamp_secs, v.value])).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "stats": res.stats,
        }),
    }
}

pub(crate) async fn post_query(
    State(relay): State<Relay>,
    from: ClientIp,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    relay.guard(&headers, from, Scope::Query)?;
    media_type(&headers, &[MediaType::Json])?;
    let bytes = relay.read_text(&headers, body).await?;
    let q: QueryRequest = parse_json(&bytes)?;
    let end = q.end.map_or_else(SystemTime::now, |t| t.0);
    let start = q.start.map_or_else(
        || {
            end.checked_sub(Duration::from_secs(3600))
                .unwrap_or(UNIX_EPOCH)
        },
        |t| t.0,
    );
    let direction = match q.direction {
        Some(WireDirection::Forward) => Direction::Forward,
        _ => Direction::Backward,
    };
    run_query(
        &relay,
        &q.query,
        start,
        end,
        q.limit.unwrap_or(DEFAULT_QUERY_LIMIT),
        direction,
    )
    .await
}

pub(crate) async fn get_simple(
    State(relay): State<Relay>,
    from: ClientIp,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    relay.guard(&headers, from, Scope::Query)?;
    let Query(q) = Query::<SimpleQuery>::try_from_uri(&uri)
        .map_err(|e| ApiError::bad_request("invalid_query_string", e.body_text()))?;
    let logql = q
        .query
        .ok_or_else(|| ApiError::bad_request("missing_field", "query is required").at("query"))?;
    let hours = q.hours.unwrap_or(1);
    if hours == 0 || hours > MAX_SIMPLE_HOURS {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("hours must be 1 to {MAX_SIMPLE_HOURS}"),
        )
        .at("hours"));
    }
    let end = SystemTime::now();
    let start = end
        .checked_sub(Duration::from_secs(hours * 3600))
        .unwrap_or(UNIX_EPOCH);
    run_query(
        &relay,
        &logql,
        start,
        end,
        q.limit.unwrap_or(DEFAULT_QUERY_LIMIT),
        Direction::Backward,
    )
    .await
}

pub(crate) async fn get_labels(
    State(relay): State<Relay>,
    from: ClientIp,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    relay.guard(&headers, from, Scope::Query)?;
    let labels = client(&relay)?.labels().await.map_err(|e| loki_error(&e))?;
    Ok(Json(json!({ "labels": labels })).into_response())
}

pub(crate) async fn get_label_values(
    State(relay): State<Relay>,
    from: ClientIp,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    relay.guard(&headers, from, Scope::Query)?;
    let valid = !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if !valid {
        return Err(ApiError::bad_request(
            "invalid_label_name",
            "a label name matches [a-zA-Z_][a-zA-Z0-9_]*",
        )
        .at("name"));
    }
    let values = client(&relay)?
        .label_values(&name)
        .await
        .map_err(|e| loki_error(&e))?;
    Ok(Json(json!({ "label": name, "values": values })).into_response())
}

/// Loki reachability (`GET /ready` on Loki) and the pipeline's state; 200 when both
/// are fine, 503 otherwise.
pub(crate) async fn get_health(State(relay): State<Relay>) -> Response {
    let (configured, reachable, error) = match &relay.inner.loki {
        None => (
            false,
            false,
            Some("no Loki is configured (LOKI_URL)".to_string()),
        ),
        Some(c) => match c.ready().await {
            Ok(()) => (true, true, None),
            Err(e) => (true, false, Some(e.to_string())),
        },
    };
    let log = &relay.inner.loggier;
    let stats = log.stats();
    let accepting = relay.room() > 0;
    let sinks: Vec<Value> = stats
        .sinks
        .iter()
        .map(|s| {
            json!({
                "name": s.name,
                "offline": s.offline,
                "pending": s.pending,
                "pending_disk": s.pending_disk,
                "written": s.written,
                "dropped": s.dropped(),
                "last_error": s.last_error,
            })
        })
        .collect();
    let ok = reachable && accepting;
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "loki": {"configured": configured, "reachable": reachable, "error": error},
        "pipeline": {
            "accepting": accepting,
            "pending": log.pending_count(),
            "dropped": stats.dropped(),
            "sinks": sinks,
        },
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
