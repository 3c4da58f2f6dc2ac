//! Loggier HTTP capture for [axum]: one line on a `Router` gives every request a request
//! id, a logging scope, panic capture and — when the capture settings say so — one
//! transaction record with request/response data, route template and duration.
//!
//! ```
//! use std::net::SocketAddr;
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use loggier_axum::{LoggierRouterExt, RequestLogger};
//! use loggier_core::Loggier;
//!
//! async fn show_user(log: RequestLogger) -> &'static str {
//!     log.info("loading user"); // carries the request id and route
//!     "ann"
//! }
//!
//! async fn boom() -> &'static str {
//!     panic!("boom")
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join("loggier-axum-doc");
//! # let _ = std::fs::remove_dir_all(&dir);
//! let loggier = Loggier::builder().service_name("users").data_dir(&dir).build()?;
//! let app = Router::new()
//!     .route("/users/{id}", get(show_user))
//!     .route("/boom", get(boom))
//!     .with_loggier(loggier.clone());
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(async move {
//!     axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await
//! });
//!
//! let client = reqwest::Client::builder().no_proxy().build()?;
//! let resp = client.get(format!("http://{addr}/boom")).send().await?;
//! assert_eq!(resp.status(), 500); // the panic became a 500; the server keeps running
//! let id = resp.headers()["x-request-id"].to_str()?.to_string();
//! let _ = resp.bytes().await?;
//! assert_eq!(client.get(format!("http://{addr}/users/7")).send().await?.status(), 200);
//!
//! assert!(loggier.flush_async(Duration::from_secs(5)).await);
//! let text = std::fs::read_to_string(dir.join("loggier.ndjson"))?;
//! assert!(text.contains("Handler panicked: GET /boom - 500"));
//! assert!(text.contains(&format!(r#""request_id":"{id}""#)));
//! assert!(text.contains(r#""message":"loading user""#));
//! # Ok(()) }
//! ```
//!
//! The capture policy is [`loggier_core::http`]; the middleware is
//! [`loggier_tower::LoggierLayer`] (re-exported here) with [`AxumMeta`] for route
//! templates and client addresses, plus [`CatchPanicLayer`].
#![deny(unreachable_pub, missing_docs)]

mod extract;
mod panic;
mod route;
mod unwrap;

use axum::Router;
use loggier_core::Loggier;

pub use extract::{MissingLoggierLayer, RequestLogger};
pub use loggier_core::http::CaptureSettings;
/// `#[track_endpoint(...)]` on an axum handler: per-route statuses, tags, body capture
/// and slow threshold; see [`loggier_core::track_endpoint`].
pub use loggier_core::track_endpoint;
pub use loggier_tower::{
    ClientAddr, HandlerPanic, LoggierLayer, LoggierService, RequestBody, RequestContext,
    RequestMeta, ResponseBody, ResponseFuture, request_context,
};
pub use panic::{CatchPanic, CatchPanicFuture, CatchPanicLayer};
pub use route::AxumMeta;

/// The timing attributes and guard, re-exported so handlers need one import path
/// (see `loggier_core::timing`). The expanded code names `::loggier_core`, so the
/// service depends on `loggier-core` too.
pub use loggier_core::{
    TimerGuard, capture_exceptions, timed, trace_database, trace_function, trace_http,
};

/// The Loggier layer configured for axum: [`AxumMeta`] for route templates and client
/// addresses, and no [`RequestContext`] request extension — handlers take the
/// [`RequestLogger`] extractor, which finds the request's context where the handler
/// runs (saving an allocation and a hash-map insert per request; see
/// [`LoggierLayer::context_extension`]). Apply it with [`Router::layer`] (after
/// [`CatchPanicLayer`]) or use [`LoggierRouterExt`].
pub fn layer(loggier: Loggier, settings: CaptureSettings) -> LoggierLayer<AxumMeta> {
    LoggierLayer::new(loggier)
        .settings(settings)
        .request_meta(AxumMeta)
        .context_extension(false)
}

/// One-line setup on a [`Router`].
pub trait LoggierRouterExt {
    /// Adds Loggier capture with the default [`CaptureSettings`]: panic capture, then
    /// the Loggier layer, both applied to every route and the fallback (after routing,
    /// so route templates are known). Add it after the routes.
    #[must_use]
    fn with_loggier(self, loggier: Loggier) -> Self;

    /// As [`with_loggier`](LoggierRouterExt::with_loggier) with `settings`.
    #[must_use]
    fn with_loggier_settings(self, loggier: Loggier, settings: CaptureSettings) -> Self;
}

impl<S: Clone + Send + Sync + 'static> LoggierRouterExt for Router<S> {
    fn with_loggier(self, loggier: Loggier) -> Self {
        self.with_loggier_settings(loggier, CaptureSettings::default())
    }

    fn with_loggier_settings(self, loggier: Loggier, settings: CaptureSettings) -> Self {
        // One `Router::layer` for both: axum boxes each layer it applies per route
        // (a clone of the boxed service, the future and the bodies every request), so
        // stacking them here saves that per-request cost of a second layer.
        self.layer(tower_layer::Stack::new(
            tower_layer::Stack::new(unwrap::PlainBodyLayer, CatchPanicLayer),
            layer(loggier, settings),
        ))
    }
}
