//! [`LoggierLayer`]: builds [`LoggierService`]s.

use std::fmt;
use std::sync::Arc;

use loggier_core::Loggier;
use loggier_core::http::{CaptureSettings, install_request_panic_hook};
use tower_layer::Layer;

use crate::service::LoggierService;

/// A [`tower_layer::Layer`] that adds Loggier HTTP capture to a service.
///
/// Every request (except `exclude_paths`) gets a request id — the incoming
/// `x-request-id` when valid, else a UUIDv7 — echoed on the response, and runs inside
/// a scope carrying that id, the W3C trace ids and the route, so any `Loggier` call
/// in the handler carries them. One transaction record is logged per request the
/// [`CaptureSettings`] decide to record, when the response body ends or is dropped.
///
/// Building a layer installs the request panic hook
/// ([`install_request_panic_hook`]), once per process.
///
/// ```
/// use loggier_core::Loggier;
/// use loggier_core::http::CaptureSettings;
/// use loggier_tower::LoggierLayer;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join("loggier-tower-doc-layer");
/// let loggier = Loggier::builder().service_name("api").data_dir(&dir).build()?;
/// let layer = LoggierLayer::new(loggier).settings(
///     CaptureSettings::builder()
///         .statuses_to_track(["4xx", "5xx"])
///         .exclude_paths(["/health", "/metrics"])
///         .build()?,
/// );
/// # let _ = layer;
/// # Ok(()) }
/// ```
pub struct LoggierLayer<M = ()> {
    loggier: Loggier,
    settings: Arc<CaptureSettings>,
    meta: M,
    context_extension: bool,
}

impl<M: Clone> Clone for LoggierLayer<M> {
    fn clone(&self) -> Self {
        LoggierLayer {
            loggier: self.loggier.clone(),
            settings: Arc::clone(&self.settings),
            meta: self.meta.clone(),
            context_extension: self.context_extension,
        }
    }
}

impl<M> fmt::Debug for LoggierLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggierLayer")
            .field("settings", &self.settings)
            .field("context_extension", &self.context_extension)
            .finish_non_exhaustive()
    }
}

impl LoggierLayer<()> {
    /// A layer logging through `loggier` with the default [`CaptureSettings`].
    pub fn new(loggier: Loggier) -> Self {
        install_request_panic_hook();
        let settings = CaptureSettings::default().with_masker(loggier.masker().clone());
        LoggierLayer {
            loggier,
            settings: Arc::new(settings),
            meta: (),
            context_extension: true,
        }
    }
}

impl<M> LoggierLayer<M> {
    /// Uses `settings` (the client's `sensitive_fields` are added to its masking).
    #[must_use]
    pub fn settings(mut self, settings: CaptureSettings) -> Self {
        self.settings = Arc::new(settings.with_masker(self.loggier.masker().clone()));
        self
    }

    /// Uses `meta` to find route templates and client addresses.
    #[must_use]
    pub fn request_meta<M2>(self, meta: M2) -> LoggierLayer<M2> {
        LoggierLayer {
            loggier: self.loggier,
            settings: self.settings,
            meta,
            context_extension: self.context_extension,
        }
    }

    /// Whether every captured request gets a [`RequestContext`](crate::RequestContext)
    /// request extension (default `true`), for handlers and inner layers to read with
    /// `request.extensions().get::<RequestContext>()`.
    ///
    /// With `false` the extension is not inserted — one allocation and one hash-map
    /// insert less per request — and the context is found with
    /// [`request_context`](crate::request_context) instead, on the thread that calls
    /// the inner service or polls its future (where handlers and extractors run).
    /// `loggier-axum` turns it off: its `RequestLogger` extractor reads it there.
    #[must_use]
    pub fn context_extension(mut self, on: bool) -> Self {
        self.context_extension = on;
        self
    }

    /// The capture settings in use.
    pub fn capture_settings(&self) -> &CaptureSettings {
        &self.settings
    }

    /// The client records are logged through.
    pub fn loggier(&self) -> &Loggier {
        &self.loggier
    }
}

impl<S, M: Clone> Layer<S> for LoggierLayer<M> {
    type Service = LoggierService<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        LoggierService {
            inner,
            loggier: self.loggier.clone(),
            settings: Arc::clone(&self.settings),
            meta: self.meta.clone(),
            context_extension: self.context_extension,
        }
    }
}
