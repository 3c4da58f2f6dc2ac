//! The route contract every adapter's test server implements, and the pieces it can
//! share.
//!
//! | route | behaviour |
//! |---|---|
//! | `GET /ok` | 200, `text/plain` body `ok` |
//! | `GET /status/{code}` | status `code`, `text/plain` body `status {code}` |
//! | `GET /slow?ms=N` | sleeps N ms, then 200 `slow` |
//! | `GET /health?status=N` | status N (default 200), body `healthy` — excluded by [`scenario_settings`] |
//! | `POST /echo?status=N` | reads the whole request body, answers status N (default 200) with the same bytes and the request's `Content-Type` |
//! | `GET /log` | logs `info("inside handler")` through the request-scoped client, awaits a 1 ms sleep, logs `info("after await")`, answers 200 `logged` |
//! | `GET /stream?status=N` | status N (default 200), `text/plain`, body [`stream_chunks`] with the app's shared [`StreamGate`] |
//! | `GET /stream/release` | calls [`StreamGate::release`], answers 200 |
//! | `GET /endless?status=N` | status N (default 200), `text/plain`, body [`endless_chunks`] |
//! | `GET /panic` | panics with `boom from handler` (not for actix) |
//!
//! Statuses outside 100–999 are the app's problem; the scenarios only use valid ones.
//!
//! ## Endpoint routes (`#[track_endpoint]`)
//!
//! Served, with the routes above, by a second server using [`endpoint_settings`]
//! (request bodies not captured globally) for [`run_endpoint`](crate::scenarios::run_endpoint).
//! Each handler carries exactly this attribute (placed below the framework's route
//! macro where there is one):
//!
//! | route | attribute | behaviour |
//! |---|---|---|
//! | `GET /endpoint/missing?status=N` | `#[track_endpoint(tags = ["lookup"], statuses = [404])]` | status N (default 404), `text/plain` body `missing` |
//! | `GET /endpoint/tagged?status=N` | `#[track_endpoint(tags = ["checkout", "critical"])]` | status N (default 200), body `tagged` |
//! | `POST /endpoint/body?status=N` | `#[track_endpoint(capture_request_body = true, capture_response_body = true, statuses = ["2xx", "4xx"])]` | reads the whole body (an extractor, where the framework has one), answers status N (default 200) with the same bytes and `Content-Type` |
//! | `GET /endpoint/slow?ms=N` | `#[track_endpoint(slow_threshold_ms = 50)]` | sleeps N ms, then 200 `slow` |

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use loggier_core::http::CaptureSettings;
use tokio::sync::Notify;

/// The settings every adapter's scenario server uses: defaults (statuses 400, 401,
/// 403, 5xx; response bodies of errors), plus request body capture, a 1 KiB body
/// limit, a 500 ms slow threshold, and `/health` and `/static/*` excluded.
pub fn scenario_settings() -> CaptureSettings {
    CaptureSettings::builder()
        .capture_request_body(true)
        .max_body_size(BODY_LIMIT)
        .slow_request_threshold(SLOW_THRESHOLD)
        .exclude_paths(["/health", "/static/*"])
        .build()
        .expect("scenario settings are valid")
}

/// The settings of the endpoint scenario server: [`scenario_settings`] with request
/// body capture off, so only an endpoint asking for it (`capture_request_body = true`)
/// gets its request body recorded.
pub fn endpoint_settings() -> CaptureSettings {
    CaptureSettings::builder()
        .capture_request_body(false)
        .max_body_size(BODY_LIMIT)
        .slow_request_threshold(SLOW_THRESHOLD)
        .exclude_paths(["/health", "/static/*"])
        .build()
        .expect("endpoint scenario settings are valid")
}

/// `slow_threshold_ms` of the `/endpoint/slow` handler.
pub const ENDPOINT_SLOW_THRESHOLD_MS: u64 = 50;

/// `max_body_size` of [`scenario_settings`], bytes.
pub const BODY_LIMIT: usize = 1024;
/// `slow_request_threshold` of [`scenario_settings`].
pub const SLOW_THRESHOLD: Duration = Duration::from_millis(500);

/// First chunk of [`stream_chunks`].
pub const STREAM_FIRST: &[u8] = b"first chunk\n";
/// Number of 1000-byte chunks [`stream_chunks`] sends after the release.
pub const STREAM_REST_CHUNKS: usize = 4;
/// Total body length of [`stream_chunks`], bytes.
pub const STREAM_TOTAL: usize = STREAM_FIRST.len() + STREAM_REST_CHUNKS * 1000;

/// Lets a test hold a streaming response open after its first chunk.
#[derive(Debug, Clone, Default)]
pub struct StreamGate(Arc<Notify>);

impl StreamGate {
    /// Lets the waiting (or next) stream continue.
    pub fn release(&self) {
        self.0.notify_one();
    }

    async fn wait(&self) {
        // Bounded: a test that never releases still ends.
        let _ = tokio::time::timeout(Duration::from_secs(10), self.0.notified()).await;
    }
}

/// The `/stream` body: [`STREAM_FIRST`], then — once `gate` is released — four chunks
/// of 1000 bytes (`'a'`..`'d'`).
pub fn stream_chunks(gate: StreamGate) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(0usize, move |i| {
        let gate = gate.clone();
        async move {
            match i {
                0 => Some((Ok(Bytes::from_static(STREAM_FIRST)), 1)),
                n if n <= STREAM_REST_CHUNKS => {
                    if n == 1 {
                        gate.wait().await;
                    }
                    let byte = b'a' + u8::try_from(n - 1).unwrap_or(0);
                    Some((Ok(Bytes::from(vec![byte; 1000])), n + 1))
                }
                _ => None,
            }
        }
    })
}

/// The `/endless` body: 100-byte chunks every 5 ms, at most 2000 (10 s) — long enough
/// that a client always disconnects first.
pub fn endless_chunks() -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    futures_util::stream::unfold(0usize, |i| async move {
        if i >= 2000 {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Some((Ok(Bytes::from_static(&[b'x'; 100])), i + 1))
    })
}

/// Parses `status=N` from a query string; `default` when absent or invalid.
pub fn status_param(query: Option<&str>, default: u16) -> u16 {
    query
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("status="))
        .and_then(|v| v.parse().ok())
        .filter(|s| (100..=999).contains(s))
        .unwrap_or(default)
}

/// Parses `ms=N` from a query string (0 when absent), capped at 5000.
pub fn ms_param(query: Option<&str>) -> u64 {
    query
        .unwrap_or("")
        .split('&')
        .find_map(|p| p.strip_prefix("ms="))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0u64)
        .min(5000)
}
