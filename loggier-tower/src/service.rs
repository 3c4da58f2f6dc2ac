//! [`LoggierService`]: the per-request half of the middleware.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, header::CONTENT_TYPE};
use http_body::Body;
use loggier_core::Loggier;
use loggier_core::context::{RequestContext, ScopeFrame, in_request_frame, instrument_request};
use loggier_core::http::{CaptureSettings, Exchange, header_entries};
use tower_service::Service;

use crate::body::{HeaderSnapshot, Pending, RequestBody, RequestSnapshot, keeps_headers};
use crate::future::ResponseFuture;

/// The peer address of a connection, put in request extensions by the server code
/// (see the hyper example in the [crate docs](crate)); read by the default
/// [`RequestMeta`] to fill the record's `client_ip`.
///
/// # Security
/// This is the TCP peer. Behind a proxy it is the proxy's address; the original
/// client is in the `x-forwarded-for` / `forwarded` headers, which are recorded with
/// the other headers but not trusted here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Request facts that only the framework knows: the route template and the peer
/// address. Both methods have defaults, so an implementation overrides only what it
/// needs; `()` is the default (no route; client IP from a [`ClientAddr`] extension).
/// `loggier-axum` implements it with `MatchedPath` and `ConnectInfo`.
///
/// Called once per captured request, before the inner service runs.
pub trait RequestMeta<B> {
    /// Route template, e.g. `/users/{id}`. Default: none. An `Arc<str>` so an
    /// implementation can share one template between the requests of a route.
    fn route(&self, request: &Request<B>) -> Option<Arc<str>> {
        let _ = request;
        None
    }

    /// Client IP address. Default: from a [`ClientAddr`] request extension.
    fn client_ip(&self, request: &Request<B>) -> Option<IpAddr> {
        request.extensions().get::<ClientAddr>().map(|a| a.0.ip())
    }
}

impl<B> RequestMeta<B> for () {}

/// Middleware that captures requests and responses per [`CaptureSettings`] and logs one
/// transaction record per recorded request through a [`Loggier`] client. Built by
/// [`LoggierLayer`](crate::LoggierLayer).
///
/// The inner service receives `Request<RequestBody<B>>` and returns any
/// `Response<ResBody>`; this service returns `Response<ResponseBody<ResBody>>`.
pub struct LoggierService<S, M = ()> {
    pub(crate) inner: S,
    pub(crate) loggier: Loggier,
    pub(crate) settings: Arc<CaptureSettings>,
    pub(crate) meta: M,
    /// Insert a [`RequestContext`] request extension (else: [`request_context`]).
    pub(crate) context_extension: bool,
}

impl<S: Clone, M: Clone> Clone for LoggierService<S, M> {
    fn clone(&self) -> Self {
        LoggierService {
            inner: self.inner.clone(),
            loggier: self.loggier.clone(),
            settings: Arc::clone(&self.settings),
            meta: self.meta.clone(),
            context_extension: self.context_extension,
        }
    }
}

impl<S: fmt::Debug, M> fmt::Debug for LoggierService<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggierService")
            .field("inner", &self.inner)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S, M> LoggierService<S, M> {
    /// The capture settings.
    pub fn settings(&self) -> &CaptureSettings {
        &self.settings
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for LoggierService<S, M>
where
    S: Service<Request<RequestBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    ReqBody: Body,
    ResBody: Body,
    M: RequestMeta<ReqBody>,
{
    type Response = Response<crate::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Excluded paths: no id, no scope, no copies.
        if self.settings.is_excluded(request.uri().path()) {
            return ResponseFuture::passthrough(
                self.inner.call(request.map(RequestBody::passthrough)),
            );
        }
        let (incoming_id, traceparent) =
            start_headers(request.headers(), self.settings.request_id_header());
        let route = self.meta.route(&request);
        let client_ip = self.meta.client_ip(&request);
        // Boxed once: the response future and body carry it, and the server and
        // framework move both. Built as soon as the exchange starts (started in
        // place, not built elsewhere and moved in) and before the request moves on,
        // so what the record may need is kept in it: method, path and query
        // (reference-counted) now, the headers below.
        let mut pending = Box::new(Pending {
            loggier: self.loggier.clone(),
            // The request's scope frame (request id, trace ids, route, the endpoint
            // slot `#[track_endpoint]` fills) is built only if something asks for
            // it, when the request arrives outside any scope.
            exchange: Exchange::start_deferred(
                Arc::clone(&self.settings),
                incoming_id.map(HeaderValue::as_bytes),
                traceparent.map(HeaderValue::as_bytes),
            ),
            request: RequestSnapshot {
                method: request.method().clone(),
                path_and_query: request.uri().path_and_query().cloned(),
                headers: HeaderSnapshot::default(),
                client_ip,
                body: None,
            },
            tee: None,
            response_headers: None,
            echo: None,
            serving: !self.context_extension,
        });
        let exchange = &mut pending.exchange;
        // An incoming id the exchange took is echoed as the value it came in (its
        // bytes shared, not copied).
        let echo = incoming_id
            .filter(|v| v.as_bytes() == exchange.request_id().as_bytes())
            .map(|v| {
                let mut v = v.clone();
                v.set_sensitive(false);
                v
            });
        if let Some(r) = route {
            exchange.set_route(r);
        }

        // The request is worked on in place (taken apart and put together again
        // it would be moved twice more) and moves on once, its body wrapped.
        let mut request = request;
        if self.context_extension {
            // The extension holds the frame: built now.
            request.extensions_mut().insert(RequestContext::new(
                self.loggier.clone(),
                Some(Arc::clone(exchange.frame())),
            ));
        }
        // Nothing to copy from a body that is already over (GET, HEAD, `Content-Length: 0`).
        let capture = if request.body().is_end_stream() {
            None
        } else {
            exchange.request_body_capture(
                first_value(request.headers(), &CONTENT_TYPE).map(HeaderValue::as_bytes),
            )
        };
        let capture = capture.map(|c| (c, Arc::new(Mutex::new(None))));
        pending.echo = echo;
        pending.request.body = capture.as_ref().map(|(_, slot)| Arc::clone(slot));
        // The headers: as text right away when the request is sure to be recorded,
        // else as a list of reference-counted name/value handles (no byte copies;
        // inside the box for a usual number of headers), turned into text only if
        // the request is recorded.
        if keeps_headers(&self.settings, &self.loggier) {
            pending
                .exchange
                .keep_request_headers(header_entries(request.headers()));
        } else if self.settings.capture_request_data() {
            pending.request.headers.fill(request.headers());
        }
        // The closures around the inner service's call borrow the request and the
        // innermost one moves it out: captured by value, it would be copied into
        // each closure on the way.
        let mut request = Some(request.map(|body| match capture {
            Some((c, slot)) => RequestBody::capturing(body, c, slot),
            None => RequestBody::passthrough(body),
        }));
        let inner = &mut self.inner;
        let call = || inner.call(request.take().expect("the inner service is called once"));
        // Without the context extension the frame is not built yet (the extension
        // holds it): the handler is called in the request's frame built on first
        // use, unless something needs it now.
        if pending.exchange.frame_on_first_use() {
            let mut fut = serving(&pending, || {
                ResponseFuture::deferred(in_request_frame(handler_frame, call))
            });
            fut.set_pending(pending);
            return fut;
        }
        let frame = Arc::clone(pending.exchange.frame());
        let fut = if pending.serving {
            serving(&pending, || instrument_request(frame, call))
        } else {
            instrument_request(frame, call)
        };
        ResponseFuture::captured(fut, pending)
    }
}

/// The `traceparent` header name.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Header maps with at most this many values are scanned by [`start_headers`] and
/// [`first_value`] instead of looked up.
const SCAN_HEADERS: usize = 16;

/// The first value of `name` in `headers`, as [`HeaderMap::get`] finds it: a map of
/// a usual request's or response's size is scanned (comparing its few names costs
/// less than hashing the name and probing the index), a larger one looked up.
pub(crate) fn first_value<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Option<&'a HeaderValue> {
    if headers.len() > SCAN_HEADERS {
        return headers.get(name);
    }
    headers.iter().find_map(|(n, v)| (n == name).then_some(v))
}

/// The first values of the request id header `id_header` and of `traceparent`, as
/// [`HeaderMap::get`] finds them. A map of a usual request's size is scanned once
/// for both: comparing its few names costs less than the two lookups, which hash
/// the names (custom names such as `x-request-id` byte by byte). A larger map is
/// looked up.
fn start_headers<'a>(
    headers: &'a HeaderMap,
    id_header: &HeaderName,
) -> (Option<&'a HeaderValue>, Option<&'a HeaderValue>) {
    if headers.len() > SCAN_HEADERS {
        return (headers.get(id_header), headers.get(TRACEPARENT));
    }
    let (mut id, mut trace) = (None, None);
    for (name, value) in headers {
        if id.is_none() && name == id_header {
            id = Some(value);
        }
        if trace.is_none() && *name == TRACEPARENT {
            trace = Some(value);
        }
    }
    (id, trace)
}

scoped_tls::scoped_thread_local! {
    /// The request of a [`LoggierService`] without the context extension whose
    /// handler is being called or polled on this thread (see [`serving`]):
    /// [`request_context`] answers with its client, [`handler_frame`] with its frame.
    static SERVING: Pending
}

scoped_tls::scoped_thread_local! {
    /// The request whose response body is being polled on this thread, for
    /// [`body_frame`] (see [`polling_body`]).
    static BODY: Pending
}

/// Runs `f` — the call of the inner service or a poll of its future — with
/// `pending` as the request served on this thread. A borrow for the duration of `f`
/// (the previous request, if any, is put back afterwards, also when `f` unwinds):
/// nothing is moved or counted. Only for a service without the context extension
/// ([`Pending::serving`]); layers nest.
pub(crate) fn serving<R>(pending: &Pending, f: impl FnOnce() -> R) -> R {
    SERVING.set(pending, f)
}

/// Runs `f` — a poll of the response body — with `pending` as the request whose
/// body is polled on this thread, for [`body_frame`].
pub(crate) fn polling_body<R>(pending: &Pending, f: impl FnOnce() -> R) -> R {
    BODY.set(pending, f)
}

/// The [`FrameSource`](loggier_core::context::FrameSource) of a handler called or
/// polled by [`serving`]: the scope frame of that request, built on first use.
pub(crate) fn handler_frame() -> Option<Arc<ScopeFrame>> {
    if !SERVING.is_set() {
        return None;
    }
    SERVING.with(|pending| Some(Arc::clone(pending.exchange.frame())))
}

/// The [`FrameSource`](loggier_core::context::FrameSource) of a response body
/// polled by [`polling_body`]: the scope frame of that request, built on first use.
pub(crate) fn body_frame() -> Option<Arc<ScopeFrame>> {
    if !BODY.is_set() {
        return None;
    }
    BODY.with(|pending| Some(Arc::clone(pending.exchange.frame())))
}

/// The [`RequestContext`] of the captured request whose handler is running on this
/// thread: the client of its [`LoggierService`] and the current scope frame (the
/// request's, or a scope nested in it). `Some` while a service built with
/// [`LoggierLayer::context_extension(false)`](crate::LoggierLayer::context_extension)
/// calls its inner service or polls its future — where handlers and their extractors
/// run (`loggier-axum`'s `RequestLogger` reads it there); `None` elsewhere: outside a
/// request, for an excluded path, or in a task spawned without the request scope (hand
/// the context over with [`RequestContext::instrument`] instead). A service that
/// inserts the extension (the default) is read with
/// `request.extensions().get::<RequestContext>()`.
pub fn request_context() -> Option<RequestContext> {
    if !SERVING.is_set() {
        return None;
    }
    let client = SERVING.with(|pending| pending.loggier.clone());
    let frame = loggier_core::context::current().filter(|f| f.endpoint_slot().is_some())?;
    Some(RequestContext::new(client, Some(frame)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan finds what the map's lookups find: the first value of each name,
    /// in small and large maps, also when both names are the same.
    #[test]
    fn start_headers_find_the_first_values_as_lookups_do() {
        let id = HeaderName::from_static("x-request-id");
        let mut small = HeaderMap::new();
        small.append("host", HeaderValue::from_static("h"));
        small.append(TRACEPARENT, HeaderValue::from_static("t-1"));
        small.append(id.clone(), HeaderValue::from_static("id-1"));
        small.append(id.clone(), HeaderValue::from_static("id-2"));
        small.append(TRACEPARENT, HeaderValue::from_static("t-2"));
        let mut large = small.clone();
        for i in 0..SCAN_HEADERS {
            let name = HeaderName::try_from(format!("x-extra-{i}")).expect("name");
            large.append(name, HeaderValue::from_static("v"));
        }
        let none = HeaderMap::new();
        for map in [&small, &large, &none] {
            for name in [&id, &TRACEPARENT] {
                let (got_id, got_trace) = start_headers(map, name);
                assert_eq!(got_id, map.get(name));
                assert_eq!(got_trace, map.get(TRACEPARENT));
            }
        }
        assert_eq!(start_headers(&small, &id).0.expect("id"), "id-1");
        for map in [&small, &large, &none] {
            for name in [&id, &TRACEPARENT, &CONTENT_TYPE] {
                assert_eq!(first_value(map, name), map.get(name));
            }
        }
    }
}
