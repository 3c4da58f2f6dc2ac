//! [`RequestLogger`]: the request-scoped logger as an axum extractor.

use std::ops::Deref;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;
use loggier_tower::RequestContext;

/// Extractor giving a handler the request-scoped logger: the client plus the
/// request's scope (request id, trace ids, route). Derefs to
/// [`RequestContext`] (`info`, `warning`, `error`, `exception`, `request_id`, …).
///
/// ```
/// use loggier_axum::RequestLogger;
///
/// async fn create_order(log: RequestLogger) -> String {
///     log.info("order created");
///     format!("request {}", log.request_id().unwrap_or_default())
/// }
/// # let _ = axum::Router::<()>::new().route("/orders", axum::routing::post(create_order));
/// ```
///
/// Rejected with [`MissingLoggierLayer`] (500) when the Loggier layer is not installed
/// or the path is excluded from capture; take `Option<RequestLogger>` in handlers that
/// also serve excluded paths.
///
/// The context is the request's [`RequestContext`] extension when the layer inserts one
/// ([`LoggierLayer::context_extension`](crate::LoggierLayer::context_extension)), else
/// — with [`layer`](crate::layer) and [`LoggierRouterExt`](crate::LoggierRouterExt),
/// which insert none — built when extracted, from the layer's client and the current
/// request scope ([`request_context`](crate::request_context)).
#[derive(Debug, Clone)]
pub struct RequestLogger(pub RequestContext);

impl Deref for RequestLogger {
    type Target = RequestContext;

    fn deref(&self) -> &RequestContext {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestLogger {
    type Rejection = MissingLoggierLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        context(parts).map(RequestLogger).ok_or(MissingLoggierLayer)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for RequestLogger {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(context(parts).map(RequestLogger))
    }
}

/// The request's context: its extension, else the one of the request being served here.
fn context(parts: &Parts) -> Option<RequestContext> {
    parts
        .extensions
        .get::<RequestContext>()
        .cloned()
        .or_else(loggier_tower::request_context)
}

/// Rejection of [`RequestLogger`]: the request did not pass through the Loggier layer
/// (not installed, or its path is in `exclude_paths`). Answers 500.
#[derive(Debug, Clone, Copy)]
pub struct MissingLoggierLayer;

impl std::fmt::Display for MissingLoggierLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request logger unavailable: the loggier layer is not installed or the path is excluded")
    }
}

impl std::error::Error for MissingLoggierLayer {}

impl IntoResponse for MissingLoggierLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}
