//! [`RequestContext`]: the request-scoped logger handlers can take from request
//! extensions.

use std::error::Error as StdError;
use std::sync::Arc;

use loggier_core::context::{ScopeFrame, enter_frame};
use loggier_core::{Level, Loggier, Record};

/// The client and the request's scope, put in the request extensions of every captured
/// request (`req.extensions().get::<RequestContext>()`; axum handlers take it with
/// `loggier_axum::RequestLogger`).
///
/// Inside the handler's own task plain `Loggier` calls already carry the request
/// scope; logging through a `RequestContext` carries it anywhere — in a spawned task,
/// on another thread — because it enters the scope around each call. Cheap to clone
/// (two `Arc`s).
#[derive(Debug, Clone)]
pub struct RequestContext {
    loggier: Loggier,
    frame: Arc<ScopeFrame>,
}

impl RequestContext {
    pub(crate) fn new(loggier: Loggier, frame: Arc<ScopeFrame>) -> Self {
        RequestContext { loggier, frame }
    }

    /// The request id (also echoed on the response).
    pub fn request_id(&self) -> &str {
        self.frame.request_id().unwrap_or_default()
    }

    /// The route template, when the framework knows it.
    pub fn route(&self) -> Option<&str> {
        self.frame.route()
    }

    /// The W3C trace id from the request's `traceparent`, when valid.
    pub fn trace_id(&self) -> Option<&str> {
        self.frame.trace_id()
    }

    /// The client.
    pub fn loggier(&self) -> &Loggier {
        &self.loggier
    }

    /// The request's resolved scope.
    pub fn scope(&self) -> &Arc<ScopeFrame> {
        &self.frame
    }

    /// Runs `f` with the request scope entered on this thread.
    pub fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _guard = enter_frame(&self.frame);
        f()
    }

    /// Logs `record` inside the request scope (request id, trace ids, route fields).
    pub fn log(&self, record: Record) {
        self.in_scope(|| self.loggier.log(record));
    }

    /// Logs `message` at `level` inside the request scope.
    pub fn message(&self, level: Level, message: impl Into<String>) {
        if self.loggier.enabled(level) {
            self.log(Record::new(level, message));
        }
    }

    /// Logs at debug level.
    pub fn debug(&self, message: impl Into<String>) {
        self.message(Level::Debug, message);
    }

    /// Logs at info level.
    pub fn info(&self, message: impl Into<String>) {
        self.message(Level::Info, message);
    }

    /// Logs at warning level.
    pub fn warning(&self, message: impl Into<String>) {
        self.message(Level::Warning, message);
    }

    /// Logs at error level.
    pub fn error(&self, message: impl Into<String>) {
        self.message(Level::Error, message);
    }

    /// Logs `message` at error level with `err` (type, message, cause chain).
    pub fn exception<E: StdError + ?Sized + 'static>(&self, message: impl Into<String>, err: &E) {
        self.in_scope(|| self.loggier.exception(message, err));
    }
}
