//! [`RequestContext`]: a client bound to one request's scope, shared by every
//! framework adapter (the tower/axum and actix-web request loggers are this type).

use std::error::Error as StdError;
use std::future::Future;
use std::sync::Arc;

use super::{Scope, ScopeFrame, Scoped, enter_frame, instrument_frame};
use crate::client::Loggier;
use crate::record::{Level, Record};

/// The client together with one request's resolved scope (request id, trace ids,
/// route). HTTP middleware puts one in the request extensions; handlers take it
/// through their framework's extractor (`loggier_axum::RequestLogger`,
/// `loggier_actix::RequestLogger`) or `req.extensions().get::<RequestContext>()`.
///
/// Inside the handler's own task plain [`Loggier`] calls already carry the request
/// scope; logging through a `RequestContext` carries it anywhere — in a spawned task,
/// on another thread, after the response was sent — because it enters the scope
/// around each call. For requests on excluded paths the scope is `None` and records
/// carry no request context. Cheap to clone (two `Arc`s).
#[derive(Debug, Clone)]
pub struct RequestContext {
    client: Loggier,
    frame: Option<Arc<ScopeFrame>>,
}

impl RequestContext {
    /// Binds `client` to a request's `frame` (from [`Scope::into_frame`]); `None` for
    /// a request the middleware does not capture.
    pub fn new(client: Loggier, frame: Option<Arc<ScopeFrame>>) -> Self {
        RequestContext { client, frame }
    }

    /// The client (without request context outside the request scope).
    pub fn client(&self) -> &Loggier {
        &self.client
    }

    /// The request id (accepted from the request-id header or generated; echoed on
    /// the response); `None` for an uncaptured request.
    pub fn request_id(&self) -> Option<&str> {
        self.frame.as_deref().and_then(ScopeFrame::request_id)
    }

    /// The route template, when the framework knows it.
    pub fn route(&self) -> Option<&str> {
        self.frame.as_deref().and_then(ScopeFrame::route)
    }

    /// The W3C trace id from the request's `traceparent`, when valid.
    pub fn trace_id(&self) -> Option<&str> {
        self.frame.as_deref().and_then(ScopeFrame::trace_id)
    }

    /// The options the request's handler set with `#[track_endpoint]`, once it
    /// started; `None` before, without the attribute, or for an uncaptured request.
    pub fn endpoint(&self) -> Option<&'static super::EndpointOptions> {
        self.frame.as_deref().and_then(ScopeFrame::endpoint)
    }

    /// The request's resolved scope; `None` for an uncaptured request.
    pub fn scope(&self) -> Option<&Arc<ScopeFrame>> {
        self.frame.as_ref()
    }

    /// Runs `f` with the client while the request scope is entered on this thread, so
    /// every record `f` logs carries the request context — e.g. with the
    /// [`Event`](crate::Event) builder:
    /// `ctx.in_scope(|c| c.event(Level::Info, "paid").field("cents", 1999).emit())`.
    pub fn in_scope<R>(&self, f: impl FnOnce(&Loggier) -> R) -> R {
        let _guard = self.frame.as_ref().map(enter_frame);
        f(&self.client)
    }

    /// Wraps `fut` so that it runs inside the request scope wherever it is polled,
    /// e.g. `tokio::spawn(ctx.instrument(fut))`. For an uncaptured request `fut` runs
    /// inside an empty scope.
    pub fn instrument<F: Future>(&self, fut: F) -> Scoped<F> {
        match &self.frame {
            Some(frame) => instrument_frame(Arc::clone(frame), fut),
            None => Scope::new().instrument(fut),
        }
    }

    /// Logs a finished record inside the request scope.
    pub fn log(&self, record: Record) {
        if self.client.enabled(record.level) {
            self.in_scope(|c| c.log(record));
        }
    }

    /// Logs `message` at `level` inside the request scope.
    pub fn message(&self, level: Level, message: impl Into<String>) {
        if self.client.enabled(level) {
            self.log(Record::new(level, message));
        }
    }

    /// Logs `message` at debug level inside the request scope.
    pub fn debug(&self, message: impl Into<String>) {
        self.message(Level::Debug, message);
    }

    /// Logs `message` at info level inside the request scope.
    pub fn info(&self, message: impl Into<String>) {
        self.message(Level::Info, message);
    }

    /// Logs `message` at warning level inside the request scope.
    pub fn warning(&self, message: impl Into<String>) {
        self.message(Level::Warning, message);
    }

    /// Logs `message` at error level inside the request scope.
    pub fn error(&self, message: impl Into<String>) {
        self.message(Level::Error, message);
    }

    /// Logs `message` at error level with `err` (type, message, `source()` chain,
    /// backtrace when enabled) inside the request scope.
    pub fn exception<E: StdError + ?Sized + 'static>(&self, message: impl Into<String>, err: &E) {
        self.in_scope(|c| c.exception(message, err));
    }
}
