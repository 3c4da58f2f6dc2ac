//! [`RequestLogger`]: the request-scoped logger extractor.

use std::error::Error as StdError;
use std::future::{Future, Ready, ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use loggier_core::context::{Scope, ScopeFrame, Scoped, enter_frame, instrument_frame};
use loggier_core::{Level, Record};

/// The Loggier client together with the current request's context: request id,
/// caller's trace ids and route template. Take it as a handler argument on an app (or
/// scope) wrapped with [`Loggier`](crate::Loggier).
///
/// Records logged through it carry the request's context even where the request
/// scope is not active — in a task spawned with `actix_web::rt::spawn`, or after the
/// response was sent. Inside the handler itself the plain
/// [`loggier_core::Loggier`] calls carry it too (the handler runs inside the scope).
/// For excluded paths it logs without request context.
///
/// ```no_run
/// use actix_web::{HttpResponse, web};
/// use loggier_actix::RequestLogger;
///
/// async fn create_order(log: RequestLogger, body: web::Json<serde_json::Value>) -> HttpResponse {
///     log.info("order received");
///     let client = log.client().clone();
///     actix_web::rt::spawn(log.instrument(async move {
///         client.info("confirmation mail queued"); // same request id
///     }));
///     HttpResponse::Created().json(body.into_inner())
/// }
/// # let _ = create_order;
/// ```
///
/// # Errors
/// As an extractor it fails with a 500 response (message
/// `"RequestLogger needs the loggier_actix::Loggier middleware"`) when the
/// middleware is not installed for the route — a setup mistake visible on the first
/// request.
#[derive(Clone, Debug)]
pub struct RequestLogger {
    client: loggier_core::Loggier,
    /// The request scope, resolved once per request; `None` on excluded paths.
    frame: Option<Arc<ScopeFrame>>,
}

impl RequestLogger {
    pub(crate) fn new(client: loggier_core::Loggier, frame: Option<Arc<ScopeFrame>>) -> Self {
        RequestLogger { client, frame }
    }

    /// The Loggier client (without request context outside the request scope).
    pub fn client(&self) -> &loggier_core::Loggier {
        &self.client
    }

    /// The request id (accepted from the request id header or generated); `None` on
    /// excluded paths.
    pub fn request_id(&self) -> Option<&str> {
        self.frame.as_deref().and_then(ScopeFrame::request_id)
    }

    /// The request's context (request id, trace ids, route); `None` on excluded
    /// paths.
    pub fn context(&self) -> Option<&ScopeFrame> {
        self.frame.as_deref()
    }

    /// Wraps `fut` so that it runs inside the request's context scope wherever it is
    /// polled: `actix_web::rt::spawn(log.instrument(fut))`. On excluded paths `fut`
    /// runs inside an empty scope.
    pub fn instrument<F: Future>(&self, fut: F) -> Scoped<F> {
        match &self.frame {
            Some(frame) => instrument_frame(Arc::clone(frame), fut),
            None => Scope::new().instrument(fut),
        }
    }

    /// Runs `f` with the client while the request scope is entered on this thread, so
    /// every record `f` logs carries the request context — e.g. to use the
    /// [`Event`](loggier_core::Event) builder:
    /// `log.in_scope(|c| c.event(Level::Info, "paid").field("cents", 1999).emit())`.
    pub fn in_scope<R>(&self, f: impl FnOnce(&loggier_core::Loggier) -> R) -> R {
        match &self.frame {
            Some(frame) => {
                let _guard = enter_frame(frame);
                f(&self.client)
            }
            None => f(&self.client),
        }
    }

    /// Logs a finished record with the request context.
    pub fn log(&self, record: Record) {
        if self.client.enabled(record.level) {
            self.in_scope(|c| c.log(record));
        }
    }

    /// Logs `message` at `level` with the request context.
    pub fn message(&self, level: Level, message: impl Into<String>) {
        if self.client.enabled(level) {
            self.log(Record::new(level, message));
        }
    }

    /// Logs `message` at debug level with the request context.
    pub fn debug(&self, message: impl Into<String>) {
        self.message(Level::Debug, message);
    }

    /// Logs `message` at info level with the request context.
    pub fn info(&self, message: impl Into<String>) {
        self.message(Level::Info, message);
    }

    /// Logs `message` at warning level with the request context.
    pub fn warning(&self, message: impl Into<String>) {
        self.message(Level::Warning, message);
    }

    /// Logs `message` at error level with the request context.
    pub fn error(&self, message: impl Into<String>) {
        self.message(Level::Error, message);
    }

    /// Logs `err` (type, message, `source()` chain, backtrace when enabled) at error
    /// level with the request context.
    pub fn exception<E: StdError + ?Sized + 'static>(&self, message: impl Into<String>, err: &E) {
        self.in_scope(|c| c.exception(message, err));
    }
}

impl FromRequest for RequestLogger {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<RequestLogger>()
                .cloned()
                .ok_or_else(|| {
                    actix_web::error::ErrorInternalServerError(
                        "RequestLogger needs the loggier_actix::Loggier middleware",
                    )
                }),
        )
    }
}
