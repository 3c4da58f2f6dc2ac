//! [`RequestLogger`]: the request-scoped logger extractor.

use std::future::{Ready, ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use loggier_core::context::{RequestContext, ScopeFrame};

/// The Loggier client together with the current request's context: request id,
/// caller's trace ids and route template. Derefs to the framework-agnostic
/// [`RequestContext`] (`info`, `warning`, `exception`, `instrument`, `in_scope`, …). Take it as a handler argument on an app (or
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
pub struct RequestLogger(pub RequestContext);

impl Deref for RequestLogger {
    type Target = RequestContext;

    fn deref(&self) -> &RequestContext {
        &self.0
    }
}

impl FromRequest for RequestLogger {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    /// Built when asked for, not per request: the client comes from the app data
    /// container the middleware adds to every request it sees (an `Rc`, no copy), the
    /// request's scope frame from the scope the middleware runs the rest of the
    /// service chain in (extractors run there). A scope without an endpoint slot is
    /// not a request scope of the middleware: excluded paths get no request context.
    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(
            req.app_data::<ClientData>()
                .map(|data| {
                    let frame = loggier_core::context::current()
                        .filter(|f| ScopeFrame::endpoint_slot(f).is_some());
                    RequestLogger(RequestContext::new(data.0.clone(), frame))
                })
                .ok_or_else(|| {
                    actix_web::error::ErrorInternalServerError(
                        "RequestLogger needs the loggier_actix::Loggier middleware",
                    )
                }),
        )
    }
}

/// The client of a [`Loggier`](crate::Loggier) middleware, in the app data container
/// it adds to each request, for [`RequestLogger`].
#[derive(Debug)]
pub(crate) struct ClientData(pub(crate) loggier_core::Loggier);
