//! [`Loggier`] (the `Transform`) and [`LoggierMiddleware`] (the `Service`).

use std::cell::{OnceCell, RefCell};
use std::collections::{HashMap, HashSet};
use std::future::{Ready, ready};
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ResourceMap};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage as _};
use loggier_core::context::{in_request_frame, instrument_request};
use loggier_core::http::{CaptureSettings, DEFAULT_REQUEST_ID_HEADER, Exchange};

use crate::body::{RequestBody, ResponseBody};
use crate::capture::Pending;
use crate::extract::ClientData;
use crate::future::ResponseFuture;

/// The `traceparent` header name, parsed once.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// `true` when an HTTP/1 request has neither `Content-Length` nor
/// `Transfer-Encoding`, or `Content-Length: 0`: its body is empty (RFC 9112 §6.3).
/// HTTP/2 and HTTP/3 requests may carry a body without either header. `framing`:
/// the headers' answer when [`start_headers`] found it already.
fn has_no_body(req: &ServiceRequest, framing: Option<bool>) -> bool {
    use actix_web::http::Version;
    if !matches!(req.version(), Version::HTTP_10 | Version::HTTP_11) {
        return false;
    }
    if let Some(no_body) = framing {
        return no_body;
    }
    let headers = req.headers();
    no_framed_body(
        headers.contains_key(header::TRANSFER_ENCODING),
        headers.get(header::CONTENT_LENGTH),
    )
}

/// The headers' part of [`has_no_body`]: no `Transfer-Encoding`, and no
/// `Content-Length` or `Content-Length: 0`.
fn no_framed_body(transfer_encoding: bool, content_length: Option<&HeaderValue>) -> bool {
    !transfer_encoding && content_length.is_none_or(|len| len.as_bytes() == b"0")
}

/// Header maps with at most this many names are scanned by [`start_headers`]
/// instead of looked up.
const SCAN_HEADERS: usize = 16;

/// What the middleware reads from a request's headers when it arrives.
#[derive(Debug)]
struct StartHeaders<'a> {
    /// The first value of the request id header.
    request_id: Option<&'a HeaderValue>,
    /// The first value of `traceparent`.
    traceparent: Option<&'a HeaderValue>,
    /// The headers' part of [`has_no_body`], when the map was scanned.
    no_body: Option<bool>,
}

/// The request id and `traceparent` values (the first of each, as
/// [`HeaderMap::get`] finds them) and whether the headers frame no body. A map of a
/// usual request's size is scanned once for all of them: comparing its few names
/// costs less than the four hashed lookups (custom names such as `x-request-id` are
/// hashed byte by byte). A larger map is looked up, the framing only when needed.
fn start_headers<'a>(headers: &'a HeaderMap, id_header: &HeaderName) -> StartHeaders<'a> {
    // The number of names: `len` counts the values, visiting every name.
    if headers.len_keys() > SCAN_HEADERS {
        return StartHeaders {
            request_id: headers.get(id_header),
            traceparent: headers.get(TRACEPARENT),
            no_body: None,
        };
    }
    let (mut request_id, mut traceparent) = (None, None);
    let (mut transfer_encoding, mut content_length) = (false, None);
    for (name, value) in headers.iter() {
        if request_id.is_none() && name == id_header {
            request_id = Some(value);
        }
        if traceparent.is_none() && *name == TRACEPARENT {
            traceparent = Some(value);
        }
        if *name == header::TRANSFER_ENCODING {
            transfer_encoding = true;
        }
        if content_length.is_none() && *name == header::CONTENT_LENGTH {
            content_length = Some(value);
        }
    }
    StartHeaders {
        request_id,
        traceparent,
        no_body: Some(no_framed_body(transfer_encoding, content_length)),
    }
}

/// What every request of one worker shares: the client, the policy settings and the
/// request id header in actix's header type. Behind an `Rc`: actix workers are
/// single-threaded, one `App` (and so one middleware) per worker.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) client: loggier_core::Loggier,
    pub(crate) settings: Arc<CaptureSettings>,
    /// [`CaptureSettings::request_id_header`], converted once to actix-web's
    /// (`http` 0.2) header name.
    pub(crate) request_id_header: HeaderName,
    /// Route templates by request path, see [`Config::route`].
    /// The templates are shared (`Arc<str>`), so a remembered route costs each request
    /// a reference count, not a copy.
    routes: RefCell<HashMap<String, Option<Arc<str>>, foldhash::fast::RandomState>>,
    /// The route templates handed out so far, see [`Config::template`]: one shared
    /// copy per template of the app.
    templates: RefCell<HashSet<Arc<str>, foldhash::fast::RandomState>>,
    /// The app's resource map, for [`Config::route`]: a copy of its root node (the
    /// nodes below are shared), taken on the first request.
    resources: OnceCell<ResourceMap>,
    /// The app data container added to every request: the client, for the
    /// [`RequestLogger`](crate::RequestLogger) extractor (which builds itself only when
    /// a handler asks for it).
    data: Rc<Extensions>,
}

/// Most paths [`Config::route`] remembers per worker; when full it starts over.
const ROUTE_MEMO_CAPACITY: usize = 1024;

/// Most route templates [`Config::template`] keeps per worker (an app has one per
/// resource; past this, templates are copied per record).
const TEMPLATE_CAPACITY: usize = 1024;

impl Config {
    /// The shared copy of route template `route` (from actix's `match_pattern`, a
    /// fresh `String` each time): a recorded request's route costs a reference count
    /// instead of a second allocation and copy. Templates come from the app's
    /// resource definitions, not from requests, so the set stays small.
    pub(crate) fn template(&self, route: String) -> Arc<str> {
        if let Ok(known) = self.templates.try_borrow() {
            if let Some(shared) = known.get(route.as_str()) {
                return Arc::clone(shared);
            }
        }
        let shared: Arc<str> = Arc::from(route);
        if let Ok(mut known) = self.templates.try_borrow_mut() {
            if known.len() < TEMPLATE_CAPACITY {
                known.insert(Arc::clone(&shared));
            }
        }
        shared
    }

    /// The route template of a request to `path` (`/orders/{id}`) when the router's
    /// answer is not at hand: asked only when a record needs it — one logged while
    /// the handler runs ([`Exchange::defer_route`]), or the transaction record of a
    /// request refused before its handler (a recorded request that reached its
    /// handler takes the router's answer, see `Pending::emit`).
    ///
    /// Without the router's answer, `match_pattern` has to match the path against
    /// every resource (a regex per dynamic resource — more work than the rest of a
    /// small request). The answer depends only on the path and the app's resources,
    /// so it is remembered per path, for at most [`ROUTE_MEMO_CAPACITY`] paths per
    /// worker (a full memo is cleared).
    pub(crate) fn route(&self, path: &str) -> Option<Arc<str>> {
        if let Ok(memo) = self.routes.try_borrow() {
            if let Some(route) = memo.get(path) {
                return route.clone();
            }
        }
        let route: Option<Arc<str>> = self
            .resources
            .get()?
            .match_pattern(path)
            .map(|r| self.template(r));
        if let Ok(mut memo) = self.routes.try_borrow_mut() {
            if memo.len() >= ROUTE_MEMO_CAPACITY {
                memo.clear();
            }
            memo.insert(path.to_string(), route.clone());
        }
        route
    }
}

/// The Loggier HTTP capture middleware for actix-web 4: wrap an `App` (or a scope)
/// with it and every request is measured, decided on and — when the
/// [`CaptureSettings`] say so — recorded through the client as one transaction
/// record (logger `"http"`, the `context.transaction` shape of the Loggier format).
///
/// Per request it:
/// - skips everything for `exclude_paths` (no id, no copy, no record);
/// - accepts a valid request id from `request_id_header` (default `x-request-id`) or
///   generates a UUIDv7, and echoes it on the response;
/// - parses a W3C `traceparent` header into the record's trace and span ids;
/// - runs the rest of the service chain (the handler included) inside a
///   [context scope](loggier_core::context::Scope) carrying the request id, trace ids
///   and route template (from [`HttpRequest::match_pattern`]), so any `Loggier` call in
///   the handler carries them; the [`RequestLogger`](crate::RequestLogger) extractor does the same from
///   spawned tasks;
/// - when `capture_request_body` is on — or an endpoint may ask for it
///   (`#[track_endpoint(capture_request_body = true)]`, see
///   [`CaptureSettingsBuilder::endpoint_request_body`](loggier_core::http::CaptureSettingsBuilder::endpoint_request_body))
///   — wraps the request payload and copies at most `max_body_size` bytes as chunks
///   pass to the handler (chunked bodies included), never collecting it;
/// - runs the handler with the request's endpoint slot in its scope, so a handler
///   marked `#[track_endpoint(...)]` sets this request's tracked statuses, tags, body
///   capture and slow threshold;
/// - records the `actix_web::Error` a response was built from (type and message). An
///   `Err` returned by the inner service (a middleware refusing the request) is
///   recorded right away with the status of the response actix-web builds from it,
///   and passed on with a response mapper that adds the request id header; actix
///   builds that response after this middleware from the error alone, so that record
///   has no request headers (actix has consumed the request) and no response body;
/// - turns a panic in the handler into a 500 response (with the request id header)
///   and an error record with the panic message and, through the request panic hook
///   of [`loggier_core::http`], its backtrace — instead of a connection reset and
///   nothing logged; the worker keeps serving;
/// - decides on a response whose body is sized and already complete in memory (a
///   `Bytes`, `String` or `&'static str` body, also boxed: actix-web's
///   `MessageBody::try_into_bytes`) when the response is produced: copies its body
///   when `capture_response_body` applies, emits the record (if any) with the
///   response's own headers, and hands the bytes on unwrapped. Its duration ends
///   there: what is left is sending bytes already produced, so a request made slow
///   only by a slow client reading such a body is not recorded as slow;
/// - wraps any other response body: copies at most `max_body_size` bytes when
///   `capture_response_body` applies, and emits the record when the body ends — or
///   when it is dropped before its end (client disconnect), then with
///   `response_aborted: true`. Duration covers the whole body, so streaming responses
///   are measured to their last chunk and still reach the client chunk by chunk.
///   actix-web sends the response head before the body ends, so the response headers
///   are copied when the response is produced — only when the record may need them
///   ([`Exchange::wants_response_headers_copy`]): a request recorded only because
///   sending a sized body made it slow has no response headers.
///
/// Which requests are recorded, at which level, and what is masked is decided by the
/// one policy in [`loggier_core::http`]; this type only converts actix types. Records go
/// through [`loggier_core::Loggier::log`]: a `try_send` into the client's bounded
/// channel, no I/O on the worker thread.
///
/// Build it inside the `HttpServer::new` factory (it holds an `Rc`, like actix's own
/// `Logger`); cloning the [`loggier_core::Loggier`] client and an
/// `Arc<CaptureSettings>` into the factory is cheap.
///
/// # Example
/// ```no_run
/// use std::sync::Arc;
/// use actix_web::{App, HttpServer, web};
/// use loggier_core::http::CaptureSettings;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = loggier_core::Loggier::builder().service_name("orders").build()?;
/// let settings = Arc::new(
///     CaptureSettings::builder()
///         .statuses_to_track(["4xx", "5xx"])
///         .exclude_paths(["/health"])
///         .build()?,
/// );
/// HttpServer::new(move || {
///     App::new()
///         .wrap(loggier_actix::Loggier::with_settings(client.clone(), settings.clone()))
///         .route("/orders/{id}", web::get().to(|| async { "order" }))
/// })
/// .bind(("127.0.0.1", 8080))?
/// .run()
/// .await?;
/// # Ok(()) }
/// ```
///
/// # Security
/// Records may hold the client IP (the connected peer's address, not
/// `X-Forwarded-For`), headers, query parameters and bodies. Sensitive headers, query
/// parameters and JSON/form body fields are masked with `[FILTERED]` before the record
/// is built; see [`CaptureSettings`].
///
/// [`HttpRequest::match_pattern`]: actix_web::HttpRequest::match_pattern
#[derive(Debug, Clone)]
pub struct Loggier {
    config: Rc<Config>,
}

impl Loggier {
    /// The middleware with [default settings](CaptureSettings::default): statuses
    /// `400, 401, 403, 5xx` and requests slower than 1 s recorded, response bodies of
    /// recorded errors copied (up to 16 KiB), request bodies not copied.
    pub fn new(client: loggier_core::Loggier) -> Self {
        Loggier::with_settings(client, CaptureSettings::default())
    }

    /// The middleware with these settings (a [`CaptureSettings`] or an
    /// `Arc<CaptureSettings>` shared between workers).
    ///
    /// Installs, once per process, the request panic hook of `loggier_core::http`
    /// ([`install_request_panic_hook`](loggier_core::http::install_request_panic_hook)):
    /// panics raised while a handler is polled are recorded by this middleware (with
    /// their backtrace) instead of by the previously installed hook; other panics go to
    /// that hook as before. Build the middleware after `loggier_core::init` so the
    /// hooks chain in that order.
    pub fn with_settings(
        client: loggier_core::Loggier,
        settings: impl Into<Arc<CaptureSettings>>,
    ) -> Self {
        let settings = settings.into();
        loggier_core::http::install_request_panic_hook();
        // Both `http` versions accept the same header-name grammar, so a name that
        // `CaptureSettings` validated always converts; the fallback is the default.
        // The default name is the static one: echoing it on every response clones
        // and drops it, which for a static name touches no reference count.
        let configured = settings.request_id_header().as_str();
        let request_id_header = if configured == DEFAULT_REQUEST_ID_HEADER {
            HeaderName::from_static(DEFAULT_REQUEST_ID_HEADER)
        } else {
            HeaderName::from_bytes(configured.as_bytes())
                .unwrap_or_else(|_| HeaderName::from_static(DEFAULT_REQUEST_ID_HEADER))
        };
        let mut data = Extensions::new();
        data.insert(ClientData(client.clone()));
        Loggier {
            config: Rc::new(Config {
                client,
                settings,
                request_id_header,
                routes: RefCell::new(HashMap::default()),
                templates: RefCell::new(HashSet::default()),
                resources: OnceCell::new(),
                data: Rc::new(data),
            }),
        }
    }

    /// The settings this middleware follows.
    pub fn settings(&self) -> &CaptureSettings {
        &self.config.settings
    }
}

impl<S, B> Transform<S, ServiceRequest> for Loggier
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<ResponseBody<B>>;
    type Error = Error;
    type Transform = LoggierMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(LoggierMiddleware {
            service,
            config: Rc::clone(&self.config),
        }))
    }
}

/// The service [`Loggier`] wraps around the next service; see [`Loggier`] for what it
/// does per request.
#[derive(Debug)]
pub struct LoggierMiddleware<S> {
    service: S,
    config: Rc<Config>,
}

impl<S, B> Service<ServiceRequest> for LoggierMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<ResponseBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let config = &self.config;
        req.add_data_container(Rc::clone(&config.data));
        if config.settings.is_excluded(req.path()) {
            return ResponseFuture::passthrough(self.service.call(req));
        }

        let StartHeaders {
            request_id: incoming_id,
            traceparent,
            no_body,
        } = start_headers(req.headers(), &config.request_id_header);
        // Carried inline by the response future (which actix boxes); boxed only for a
        // body sent chunk by chunk, which carries it further.
        let mut pending = Pending::new(
            Exchange::start_deferred(
                Arc::clone(&config.settings),
                incoming_id.map(|v| v.as_bytes()),
                traceparent.map(|v| v.as_bytes()),
            ),
            Rc::clone(config),
            req.head(),
            incoming_id,
        );
        let exchange = pending.exchange_mut();
        // Found when a record needs it, not per request (see `Config::route`).
        config.resources.get_or_init(|| req.resource_map().clone());
        exchange.defer_route(crate::capture::resolve_route);

        // A request without a body has `Payload::None` (or, over HTTP/1, no framing
        // header: RFC 9112 §6.3, its body is empty): nothing to copy, no wrapper.
        match req.take_payload() {
            Payload::None => {}
            payload if has_no_body(&req, no_body) => req.set_payload(payload),
            payload => {
                let content_type = req.headers().get(header::CONTENT_TYPE);
                let capture = exchange.request_body_capture(content_type.map(|v| v.as_bytes()));
                match capture {
                    Some(capture) => {
                        let (payload, shared) = RequestBody::wrap(payload, capture);
                        req.set_payload(payload);
                        pending.set_request_body(shared);
                    }
                    None => req.set_payload(payload),
                }
            }
        }

        // A request outside any scope has its frame built only if the handler asks
        // for it. With OpenTelemetry (enabled on `loggier-core`, whether or not on
        // this crate), a caller's trace context is attached around the handler: that
        // needs the frame at once.
        let exchange = pending.exchange_mut();
        if exchange.frame_on_first_use() {
            let fut = crate::capture::serving(&pending, || {
                in_request_frame(crate::capture::request_frame, || self.service.call(req))
            });
            return ResponseFuture::lazy(fut, Some(pending));
        }
        let frame = Arc::clone(exchange.frame());
        let fut = crate::capture::serving(&pending, || {
            instrument_request(frame, || self.service.call(req))
        });
        ResponseFuture::recorded(fut, Some(pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scan finds what the map's lookups find: the first value of the request id
    /// header and of `traceparent`, and the body framing, in small and large maps,
    /// also when the request id header is `traceparent` itself.
    #[test]
    fn start_headers_find_what_lookups_find() {
        let id = HeaderName::from_static("x-request-id");
        let v = HeaderValue::from_static;
        let mut small = HeaderMap::new();
        small.append(header::HOST, v("h"));
        small.append(TRACEPARENT, v("t-1"));
        small.append(id.clone(), v("id-1"));
        small.append(id.clone(), v("id-2"));
        small.append(TRACEPARENT, v("t-2"));
        let mut sized = small.clone();
        sized.insert(header::CONTENT_LENGTH, v("12"));
        let mut empty = small.clone();
        empty.insert(header::CONTENT_LENGTH, v("0"));
        let mut chunked = empty.clone();
        chunked.insert(header::TRANSFER_ENCODING, v("chunked"));
        let mut large = sized.clone();
        for i in 0..=SCAN_HEADERS {
            let name = HeaderName::try_from(format!("x-extra-{i}")).expect("name");
            large.append(name, v("x"));
        }
        let none = HeaderMap::new();
        for map in [&small, &sized, &empty, &chunked, &large, &none] {
            for name in [&id, &TRACEPARENT] {
                let found = start_headers(map, name);
                assert_eq!(found.request_id, map.get(name));
                assert_eq!(found.traceparent, map.get(TRACEPARENT));
                let looked_up = no_framed_body(
                    map.contains_key(header::TRANSFER_ENCODING),
                    map.get(header::CONTENT_LENGTH),
                );
                assert!(found.no_body.is_none_or(|n| n == looked_up));
                assert_eq!(found.no_body.is_none(), map.len_keys() > SCAN_HEADERS);
            }
        }
        assert_eq!(start_headers(&small, &id).request_id, Some(&v("id-1")));
        assert_eq!(start_headers(&small, &id).no_body, Some(true));
        assert_eq!(start_headers(&sized, &id).no_body, Some(false));
        assert_eq!(start_headers(&empty, &id).no_body, Some(true));
        assert_eq!(start_headers(&chunked, &id).no_body, Some(false));
    }
}
