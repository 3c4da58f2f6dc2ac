//! The JSON error every rejected request gets.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Why a request was refused: an HTTP status, a stable machine-readable `code`, a
/// human message and, for body errors, the JSON path of the offending field.
///
/// Rendered as `{"error":{"code":"…","message":"…","path":"…"}}` (`path` left out
/// when unknown); 429 and 503 add a `Retry-After` header in whole seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable reason, e.g. `invalid_json`, `unknown_level`, `body_too_large`; also the
    /// `reason` label of the `loggier_relay_rejected_total` metric.
    pub code: &'static str,
    /// What went wrong, in words.
    pub message: String,
    /// JSON path of the field at fault (`stack[0].line`, `[3].level`), when known.
    pub path: Option<String>,
    /// `Retry-After` for 429 and 503.
    pub retry_after: Option<Duration>,
    /// Records of the request that were accepted before the pipeline filled up
    /// (503 on a batch only).
    pub accepted: Option<usize>,
}

/// Response extension naming the reason of a rejection, for the metrics layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RejectReason(pub(crate) &'static str);

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted: Option<usize>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            path: None,
            retry_after: None,
            accepted: None,
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// Sets the JSON path of the field at fault.
    #[must_use]
    pub fn at(mut self, path: impl Into<String>) -> Self {
        let p = path.into();
        self.path = (!p.is_empty() && p != ".").then_some(p);
        self
    }

    /// Sets `Retry-After` (rounded up to whole seconds, at least 1).
    #[must_use]
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// The `Retry-After` value in seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after.map(|d| {
            let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            s.max(1)
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )?;
        if let Some(p) = &self.path {
            write!(f, " (at {p})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                path: self.path.as_deref(),
                accepted: self.accepted,
            },
        };
        let mut res = (self.status, Json(body)).into_response();
        res.extensions_mut().insert(RejectReason(self.code));
        if let Some(secs) = self.retry_after_secs() {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
