//! [`Exchange`]: the state of one request as an adapter drives it, the decision whether
//! to record it, and the [`Record`] built from it.

use std::backtrace::Backtrace;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::context::{EndpointOptions, EndpointSlot, RequestId, RouteResolver, ScopeFrame};
use std::borrow::Cow;

use crate::record::{Exception, Headers, HttpResponse, HttpTransaction, Level, Record};

use super::body::BodyCapture;
use super::redact::{self, FILTERED};
use super::request_id::request_id_or_generate_inline;
use super::settings::{CaptureSettings, ResponseBodyCapture};
use super::traceparent::TraceParent;

/// Longest response `Content-Type` an [`Exchange`] keeps without an allocation, bytes.
const CONTENT_TYPE_INLINE: usize = 32;

/// The trace id and span id a request frame takes from the caller's `traceparent`.
fn trace_ids(trace: Option<&TraceParent>) -> Option<(String, String)> {
    trace.map(|t| (t.trace_id.clone(), t.span_id.clone()))
}

/// Logger name of transaction records.
pub const HTTP_LOGGER: &str = "http";

/// One header as an adapter sees it: lower-case name, raw value, and whether the
/// value is marked sensitive (`HeaderValue::is_sensitive` in the `http` crate, both
/// 0.2 and 1.x).
#[derive(Debug, Clone, Copy)]
pub struct HeaderEntry<'a> {
    /// Header name, lower case.
    pub name: &'a str,
    /// Raw value bytes.
    pub value: &'a [u8],
    /// The value is marked sensitive by the application.
    pub sensitive: bool,
}

/// The entries of an `http` 1.x [`HeaderMap`](http::HeaderMap), for
/// [`Exchange::into_record`]. Repeated names yield one entry per value.
pub fn header_entries(map: &http::HeaderMap) -> impl Iterator<Item = HeaderEntry<'_>> {
    map.iter().map(|(n, v)| HeaderEntry {
        name: n.as_str(),
        value: v.as_bytes(),
        sensitive: v.is_sensitive(),
    })
}

/// The request facts an adapter hands to [`Exchange::into_record`]; borrowed, so the
/// adapter only needs to keep what it already has (actix keeps its `HttpRequest`,
/// tower keeps the `Uri`).
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// Method, e.g. `"GET"`.
    pub method: &'a str,
    /// Path without the query string.
    pub path: &'a str,
    /// Raw query string without `?`, when there is one.
    pub query: Option<&'a str>,
    /// Address of the connected peer, when the adapter knows it.
    pub client_ip: Option<IpAddr>,
}

/// One request in flight, from arrival to the end of its response body.
///
/// Driven by an adapter in this order:
/// 1. [`CaptureSettings::begin`] (or [`Exchange::start`]) when the request arrives —
///    `None` for excluded paths;
/// 2. [`request_body_capture`](Exchange::request_body_capture) to know whether to tee
///    the request body, then [`set_request_body`](Exchange::set_request_body) when it
///    ended or was dropped;
/// 3. [`on_response`](Exchange::on_response) with the status (returns a
///    [`BodyCapture`] when the response body should be teed), or
///    [`set_error`](Exchange::set_error) / [`set_panic`](Exchange::set_panic) when the
///    handler failed;
/// 4. [`set_response_body`](Exchange::set_response_body) and, when the body was
///    dropped before its end (client disconnect), [`set_aborted`](Exchange::set_aborted);
/// 5. [`finish`](Exchange::finish) — `Some(level)` when the request is recorded — and
///    then [`into_record`](Exchange::into_record), whose result goes to
///    `Loggier::log`.
///
/// The handler runs inside [`scope`](Exchange::scope), which carries the request's
/// [`EndpointSlot`]: a handler marked `#[track_endpoint(...)]` fills it with its
/// [`EndpointOptions`] when it starts, and from then on every decision above follows
/// them for this request — tracked statuses, response body capture, slow threshold,
/// whether the request body copy is kept — and the record gets the endpoint's tags.
/// Options the endpoint does not set keep the [`CaptureSettings`].
///
/// Plain owned data; no `Send` requirement is placed on the adapter. Kept small
/// (what only failed or recorded requests need is boxed) because adapters move it
/// with every future and body wrapper of the request.
#[derive(Debug)]
pub struct Exchange {
    settings: Arc<CaptureSettings>,
    started: Instant,
    /// The request's scope frame: it holds the request id (a generated one inline)
    /// and the request's [`EndpointSlot`] in one allocation.
    frame: FrameSlot,
    trace: Option<Box<TraceParent>>,
    /// Shared (not copied) with the frame and, in actix, the middleware's route memo.
    route: Option<Arc<str>>,
    status: Option<u16>,
    /// The response `Content-Type`, kept inline: the usual value fits, so noting it
    /// costs no allocation for a request that is then not recorded. Recorded only
    /// when it is UTF-8 (checked when the record is built).
    response_content_type: Option<smallvec::SmallVec<[u8; CONTENT_TYPE_INLINE]>>,
    /// The exception of the failure noted, boxed as the record holds it (taken as it
    /// is); [`panicked`](Exchange::panicked) tells which kind.
    failure: Option<Box<Exception>>,
    /// An error the response was built from that does not count as a failure (a 4xx).
    response_error: Option<Box<Exception>>,
    request_body: Option<Box<BodyCapture>>,
    response_body: Option<Box<BodyCapture>>,
    /// The record's transaction, started early to hold headers the adapter had
    /// turned into the record's form ([`keep_request_headers`](Exchange::keep_request_headers),
    /// [`keep_response_headers`](Exchange::keep_response_headers)): written in
    /// place, and [`into_record`](Exchange::into_record) fills in the rest.
    kept: Option<Box<HttpTransaction>>,
    /// `kept` holds the request headers (and the `User-Agent`).
    kept_request: bool,
    /// `kept` holds the response headers (in its response, whose other fields are
    /// set by `into_record`).
    kept_response: bool,
    /// The failure noted is a panic of the handler (else an error).
    panicked: bool,
    aborted: bool,
    duration: Option<Duration>,
}

/// Where an [`Exchange`] keeps its request's scope frame.
#[derive(Debug)]
enum FrameSlot {
    /// Built when the exchange started; the request id lives in it.
    Built(Arc<ScopeFrame>),
    /// Built on first use ([`Exchange::frame`]), for an exchange started with
    /// [`Exchange::start_deferred`] outside any scope.
    Deferred {
        request_id: RequestId,
        frame: OnceLock<Arc<ScopeFrame>>,
        /// The route resolver for the frame, when the route is
        /// [deferred](Exchange::defer_route) before the frame is built.
        route: Option<RouteResolver>,
    },
}

/// The `traceparent` header name, parsed once.
const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

impl CaptureSettings {
    /// Starts an [`Exchange`] for a request to `path` with these `headers`, or `None`
    /// when the path is excluded (then nothing else is done for it: no id, no copy).
    /// Reads the `request_id_header` and `traceparent` headers.
    pub fn begin(self: &Arc<Self>, path: &str, headers: &http::HeaderMap) -> Option<Exchange> {
        if self.is_excluded(path) {
            return None;
        }
        Some(Exchange::start(
            Arc::clone(self),
            headers
                .get(&self.request_id_header)
                .map(http::HeaderValue::as_bytes),
            headers.get(TRACEPARENT).map(http::HeaderValue::as_bytes),
        ))
    }
}

impl Exchange {
    /// Starts the clock for a request. `request_id` is the raw value of the
    /// `request_id_header` (accepted when valid, see
    /// [`request_id_or_generate`](super::request_id_or_generate)), `traceparent` the
    /// raw `traceparent` header (ignored when invalid). Exclusion is the caller's job
    /// ([`CaptureSettings::is_excluded`]).
    pub fn start(
        settings: Arc<CaptureSettings>,
        request_id: Option<&[u8]>,
        traceparent: Option<&[u8]>,
    ) -> Exchange {
        Exchange::begin(settings, request_id, traceparent, false)
    }

    /// [`start`](Exchange::start), for an adapter that runs the handler with
    /// [`context::in_request_frame`](crate::context::in_request_frame): a request that
    /// arrives outside any scope has its [`frame`](Exchange::frame) built only when
    /// first asked for, so a request whose handler looks at no context builds none.
    /// (One that arrives inside a scope inherits that scope's values as they are now:
    /// its frame is built at once.)
    pub fn start_deferred(
        settings: Arc<CaptureSettings>,
        request_id: Option<&[u8]>,
        traceparent: Option<&[u8]>,
    ) -> Exchange {
        Exchange::begin(settings, request_id, traceparent, true)
    }

    fn begin(
        settings: Arc<CaptureSettings>,
        request_id: Option<&[u8]>,
        traceparent: Option<&[u8]>,
        deferred: bool,
    ) -> Exchange {
        let trace = traceparent.and_then(TraceParent::parse).map(Box::new);
        let request_id = request_id_or_generate_inline(request_id);
        let frame = match crate::context::current() {
            None if deferred => FrameSlot::Deferred {
                request_id,
                frame: OnceLock::new(),
                route: None,
            },
            parent => FrameSlot::Built(Arc::new(ScopeFrame::request_in(
                parent.as_deref(),
                request_id,
                trace_ids(trace.as_deref()),
            ))),
        };
        Exchange {
            settings,
            started: Instant::now(),
            frame,
            trace,
            route: None,
            status: None,
            response_content_type: None,
            failure: None,
            response_error: None,
            request_body: None,
            response_body: None,
            kept: None,
            kept_request: false,
            kept_response: false,
            panicked: false,
            aborted: false,
            duration: None,
        }
    }

    /// The settings this exchange follows.
    pub fn settings(&self) -> &CaptureSettings {
        &self.settings
    }

    /// The request id: put it in the request scope and echo it on the response
    /// (header [`CaptureSettings::request_id_header`]).
    #[inline]
    pub fn request_id(&self) -> &str {
        match &self.frame {
            FrameSlot::Built(frame) => frame.request_id().unwrap_or_default(),
            FrameSlot::Deferred { request_id, .. } => request_id.as_str(),
        }
    }

    /// [`request_id`](Exchange::request_id) as bytes for the response header that
    /// echoes it: a slice of a per-thread buffer of ids (a reference count, no
    /// allocation of its own), so an adapter can build the header value without
    /// copying the id into a buffer of its own.
    #[inline]
    pub fn request_id_bytes(&self) -> bytes::Bytes {
        super::request_id::shared_text(self.request_id())
    }

    /// The caller's trace context, when a valid `traceparent` came in.
    pub fn trace_parent(&self) -> Option<&TraceParent> {
        self.trace.as_deref()
    }

    /// Sets the route template (`/users/{id}`), when the framework knows it: a
    /// `String`, a `&str`, or an `Arc<str>` shared by the requests of one route (no
    /// copy per request). Copied into text only when the request is recorded.
    ///
    /// The request's [`frame`](Exchange::frame) carries it too when it is set before
    /// the frame is handed out (the usual order: set the route, then run the handler
    /// in the frame); a frame already shared keeps what it had.
    /// A route [deferred](Exchange::defer_route) and still open in the shared frame
    /// gets this answer too.
    pub fn set_route(&mut self, route: impl Into<Arc<str>>) {
        let route = route.into();
        let frame = match &mut self.frame {
            FrameSlot::Built(frame) => Some(frame),
            FrameSlot::Deferred { frame, .. } => frame.get_mut(),
        };
        if let Some(frame) = frame {
            match Arc::get_mut(frame) {
                Some(frame) => frame.set_route(Arc::clone(&route)),
                None => frame.settle_route(&route),
            }
        }
        self.route = Some(route);
    }

    /// Has the request's route template found on first use instead of now, for
    /// frameworks where finding it before routing is costly (actix-web matches the
    /// path against every resource): the [`frame`](Exchange::frame) asks `resolve`
    /// when [`context::current`](crate::context::current) returns it (a record logged
    /// or a nested scope entered while the request is served), and the adapter
    /// calls [`set_route`](Exchange::set_route) before building the record. Call it
    /// before the frame is handed out; later it does nothing.
    pub fn defer_route(&mut self, resolve: RouteResolver) {
        let frame = match &mut self.frame {
            FrameSlot::Built(frame) => frame,
            FrameSlot::Deferred { frame, route, .. } => match frame.get_mut() {
                Some(frame) => frame,
                None => {
                    *route = Some(resolve);
                    return;
                }
            },
        };
        if let Some(frame) = Arc::get_mut(frame) {
            frame.defer_route(resolve);
        }
    }

    /// The route template, when set (a [deferred](Exchange::defer_route) one once
    /// [`set_route`](Exchange::set_route) gave it; the frame may know it earlier).
    pub fn route(&self) -> Option<&str> {
        self.route.as_deref()
    }

    /// The request's endpoint slot (inside the request's [`frame`](Exchange::frame),
    /// which an adapter holds to keep it); [`scope`](Exchange::scope) carries it to the
    /// handler. An adapter that knows the endpoint itself may fill it directly.
    /// Always `Some`: every exchange's frame has its own slot.
    pub fn endpoint_slot(&self) -> Option<&EndpointSlot> {
        self.frame().endpoint_slot()
    }

    /// The options the request's endpoint set, once its handler started (never set
    /// while the request's frame is not built: nothing could ask for its slot).
    #[inline]
    pub fn endpoint(&self) -> Option<&'static EndpointOptions> {
        self.built_frame().and_then(|f| f.endpoint())
    }

    /// Status `status` is tracked for this request: the endpoint's `statuses` when it
    /// set them, else `statuses_to_track`.
    #[inline]
    fn tracked(&self, status: u16) -> bool {
        self.endpoint()
            .and_then(|e| e.tracks_status(status))
            .unwrap_or_else(|| self.settings.statuses_to_track.contains(status))
    }

    /// The slow threshold for this request: the endpoint's, else
    /// `slow_request_threshold` when `log_slow_requests` is on, else none.
    #[inline]
    fn slow_threshold(&self) -> Option<Duration> {
        let s = &self.settings;
        self.endpoint()
            .and_then(EndpointOptions::slow_threshold)
            .or_else(|| s.log_slow_requests.then_some(s.slow_request_threshold))
    }

    /// `true` when a response with `status` may be recorded for this request, its
    /// duration not yet known (as [`CaptureSettings::may_record`], endpoint applied).
    #[inline]
    fn may_record(&self, status: u16) -> bool {
        // The slow threshold first: on by default, it answers without the status
        // ranges being searched.
        self.settings.log_all_requests || self.slow_threshold().is_some() || self.tracked(status)
    }

    /// `capture_response_body` for this request: the endpoint's `true` means every
    /// recorded response, `false` none.
    #[inline]
    fn response_body_mode(&self) -> ResponseBodyCapture {
        match self.endpoint().and_then(EndpointOptions::response_body) {
            Some(true) => ResponseBodyCapture::All,
            Some(false) => ResponseBodyCapture::Off,
            None => self.settings.capture_response_body,
        }
    }

    /// `capture_request_body` for this request: the endpoint's when set.
    fn wants_request_body(&self) -> bool {
        self.endpoint()
            .and_then(EndpointOptions::request_body)
            .unwrap_or(self.settings.capture_request_body)
    }

    /// Time since [`start`](Exchange::start).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A [`BodyCapture`] for the request body, or `None` — then the body must not be
    /// wrapped. `content_type` is the request's `Content-Type` value. Adapters call it
    /// before the handler runs, and only for requests that have a body.
    ///
    /// `Some` when `max_body_size` > 0 and either `capture_request_body` is on, or
    /// [`endpoint_request_body`](CaptureSettings::endpoint_request_body) is on (the
    /// default) and the request's endpoint may still ask for the body. In the second
    /// case the copy is provisional: extractors usually read the body before the
    /// handler (and its `#[track_endpoint]`) starts, so the copy is taken as the body
    /// passes, stops and is freed as soon as the endpoint turns out not to want it, and
    /// is left out of the record unless the endpoint asked for it.
    pub fn request_body_capture(&self, content_type: Option<&[u8]>) -> Option<BodyCapture> {
        let s = &self.settings;
        if s.max_body_size == 0 {
            return None;
        }
        let wanted = match self.endpoint() {
            Some(_) => self.wants_request_body(),
            None => s.capture_request_body || s.endpoint_request_body,
        };
        wanted.then(|| {
            BodyCapture::new(s.max_body_size, content_type)
                .gated(Arc::clone(self.frame()), s.capture_request_body)
        })
    }

    /// Hands back the request body copy once the body ended or was dropped.
    pub fn set_request_body(&mut self, capture: BodyCapture) {
        self.request_body = Some(Box::new(capture));
    }

    /// Notes the response status (e.g. `500`) and `Content-Type`; returns a
    /// [`BodyCapture`] when the response body should be teed (see
    /// [`CaptureSettings::should_capture_response_body`]), else `None`. No allocation
    /// unless the response body is teed or its `Content-Type` is longer than 32 bytes.
    pub fn on_response(&mut self, status: u16, content_type: Option<&[u8]>) -> Option<BodyCapture> {
        self.status = Some(status);
        let may_record = self.may_record(status);
        if may_record || self.failure.is_some() {
            // Checked for UTF-8 only if the request is recorded (`into_record`).
            self.response_content_type = content_type.map(smallvec::SmallVec::from_slice);
        }
        (may_record && self.settings.max_body_size > 0 && self.response_body_mode().allows(status))
            .then(|| BodyCapture::new(self.settings.max_body_size, content_type))
    }

    /// Notes the response status only (e.g. `500`), for an adapter that decides
    /// right away ([`finish`](Exchange::finish)) because the response body is already
    /// complete: the `Content-Type` and the response body copy are then only
    /// worked out — with [`on_response`](Exchange::on_response) — for a request that
    /// is recorded. Nothing is allocated.
    pub fn set_status(&mut self, status: u16) {
        self.status = Some(status);
    }

    /// Turns the request headers into the record's form now — masked, as
    /// [`into_record`](Exchange::into_record) would — for an adapter that would
    /// otherwise keep a copy of them until then because the request moves on (into
    /// the handler); `into_record` then takes these and ignores its `request_headers`.
    /// Worth it for a request that is sure to be recorded (access-log mode), wasted
    /// work for one that is not. Nothing is done without `capture_request_data`.
    pub fn keep_request_headers<'a, I>(&mut self, entries: I)
    where
        I: IntoIterator<Item = HeaderEntry<'a>>,
    {
        if !self.settings.capture_request_data {
            return;
        }
        let http = self.kept.get_or_insert_with(Box::default);
        let req = &mut http.request;
        req.headers = Headers::new();
        req.user_agent = None;
        header_fields(
            &self.settings,
            entries,
            &mut req.headers,
            Some(&mut req.user_agent),
        );
        self.kept_request = true;
    }

    /// As [`keep_request_headers`](Exchange::keep_request_headers) for the response
    /// headers (call it once the response's headers are final, e.g. after the request
    /// id was echoed); `into_record` then ignores its `response_headers`.
    pub fn keep_response_headers<'a, I>(&mut self, entries: I)
    where
        I: IntoIterator<Item = HeaderEntry<'a>>,
    {
        if !self.settings.capture_request_data {
            return;
        }
        let http = self.kept.get_or_insert_with(Box::default);
        let resp = http.response.get_or_insert_with(HttpResponse::default);
        resp.headers = Headers::new();
        header_fields(&self.settings, entries, &mut resp.headers, None);
        self.kept_response = true;
    }

    /// The status given to [`on_response`](Exchange::on_response), if any.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Hands back the response body copy once the body ended or was dropped.
    pub fn set_response_body(&mut self, capture: BodyCapture) {
        self.response_body = Some(Box::new(capture));
    }

    /// The handler (or a later layer) failed with `exception`: the request is recorded
    /// at error level. Its backtrace is dropped when `include_stacktrace` is off.
    pub fn set_error(&mut self, mut exception: Exception) {
        if !self.settings.include_stacktrace {
            exception.backtrace = None;
            exception.frames.clear();
        }
        self.failure = Some(Box::new(exception));
        self.panicked = false;
    }

    /// The handler panicked with `message`: recorded at error level with an exception
    /// of type `"panic"` and, when `include_stacktrace` is on and one was captured,
    /// the backtrace.
    pub fn set_panic(&mut self, message: impl Into<String>, backtrace: Option<&Backtrace>) {
        let mut exception = Exception::new("panic", message);
        if self.settings.include_stacktrace {
            if let Some(bt) = backtrace {
                exception.set_backtrace(bt);
            }
        }
        self.failure = Some(Box::new(exception));
        self.panicked = true;
    }

    /// The response was produced from an error value (actix-web's `Error` on a
    /// response, an error a middleware returned, ...), described by `exception`. Call it
    /// after [`on_response`](Exchange::on_response). With a 5xx status, or no status
    /// at all, this is a failure like [`set_error`](Exchange::set_error): always
    /// recorded, at error level. With a lower status (a 404 or 422 built from an error
    /// value is an ordinary answer) the status decides as for any response, and the
    /// exception is only attached to the record when the request is recorded.
    pub fn set_response_error(&mut self, mut exception: Exception) {
        if self.status.is_none_or(|c| c >= 500) {
            self.set_error(exception);
            return;
        }
        if !self.settings.include_stacktrace {
            exception.backtrace = None;
            exception.frames.clear();
        }
        self.response_error = Some(Box::new(exception));
    }

    /// `true` when the response headers must be kept until the record is built:
    /// `capture_request_data` is on and, after [`on_response`](Exchange::on_response),
    /// the response may still be recorded (tracked status, access-log mode, slow
    /// logging on, or a failure). Adapters whose framework takes the headers away
    /// before the body ends (actix-web) copy them only when this is `true`.
    pub fn wants_response_headers(&self) -> bool {
        self.settings.capture_request_data
            && (self.failure.is_some() || self.status.is_none_or(|c| self.may_record(c)))
    }

    /// For adapters whose framework takes the response headers away before the body
    /// ends (actix-web, hyper): `true` when the response headers are worth a copy
    /// now, after [`on_response`](Exchange::on_response). Like
    /// [`wants_response_headers`](Exchange::wants_response_headers), but a response
    /// that can only be recorded for being slow is copied only when it may still
    /// become slow for a reason the server does not control: its body is a stream
    /// (`body_streams`: produced as it is sent, so it can take any time), or the
    /// request has already taken at least half its slow threshold. A complete body
    /// (a sized one) that a slow client makes the request slow while it is sent is
    /// then recorded without its response headers — so the usual request, whose
    /// status is not tracked, costs no copy.
    pub fn wants_response_headers_copy(&self, body_streams: bool) -> bool {
        // `wants_response_headers`, with the status looked at once: a response that
        // its status does not decide may be recorded only for being slow.
        if !self.settings.capture_request_data {
            return false;
        }
        if self.failure.is_some() || self.status.is_none_or(|c| self.status_decides(c)) {
            return true;
        }
        match self.slow_threshold() {
            None => false,
            Some(t) => body_streams || self.started.elapsed() >= t / 2,
        }
    }

    /// `true` when a response with `status` is recorded for its status alone: tracked
    /// (the endpoint's statuses when set) or access-log mode.
    fn status_decides(&self, status: u16) -> bool {
        self.settings.log_all_requests || self.tracked(status)
    }

    /// The context [`Scope`](crate::context::Scope) of this request: its request id,
    /// the caller's trace id and span id (when a valid `traceparent` came in), the
    /// route template (when set) and the request's [`EndpointSlot`]. Adapters run the
    /// handler inside it, so every record logged there carries them and
    /// `#[track_endpoint]` finds the slot.
    pub fn scope(&self) -> crate::context::Scope {
        let mut scope = crate::context::Scope::new()
            .request_id(self.request_id())
            .endpoint_of(self.frame());
        if let Some(t) = &self.trace {
            scope = scope.trace(t.trace_id.clone(), Some(t.span_id.clone()));
        }
        if let Some(route) = &self.route {
            scope = scope.route(Arc::clone(route));
        }
        scope
    }

    /// The request's resolved scope frame: [`scope`](Exchange::scope) resolved
    /// against the scope current at [`start`](Exchange::start), in one allocation with
    /// the request's endpoint slot. Built at the start, except for an exchange
    /// [started deferred](Exchange::start_deferred) outside any scope: built here on
    /// first use then (with the route set or deferred so far), the same frame
    /// afterwards. Cheaper than `scope().into_frame()`: the
    /// request id is not copied (a generated one is inline), the route is shared.
    /// Adapters run the handler in it
    /// ([`instrument_request`](crate::context::instrument_request)), or have it built
    /// only when the handler asks ([`in_request_frame`](crate::context::in_request_frame)).
    pub fn frame(&self) -> &Arc<ScopeFrame> {
        match &self.frame {
            FrameSlot::Built(frame) => frame,
            FrameSlot::Deferred {
                request_id,
                frame,
                route: deferred,
            } => frame.get_or_init(|| {
                let mut frame = ScopeFrame::request_in(
                    None,
                    request_id.clone(),
                    trace_ids(self.trace.as_deref()),
                );
                match (&self.route, deferred) {
                    (Some(route), _) => frame.set_route(Arc::clone(route)),
                    (None, Some(resolve)) => frame.defer_route(*resolve),
                    (None, None) => {}
                }
                Arc::new(frame)
            }),
        }
    }

    /// The request's scope frame when it is built already (see
    /// [`frame`](Exchange::frame)), without building it.
    #[inline]
    pub fn built_frame(&self) -> Option<&Arc<ScopeFrame>> {
        match &self.frame {
            FrameSlot::Built(frame) => Some(frame),
            FrameSlot::Deferred { frame, .. } => frame.get(),
        }
    }

    /// `true` when the adapter may run the handler with
    /// [`context::in_request_frame`](crate::context::in_request_frame), so that the
    /// request's [`frame`](Exchange::frame) is built only if something asks for it:
    /// the exchange was [started deferred](Exchange::start_deferred) outside any
    /// scope, its frame is not built yet, and nothing needs it up front. With this
    /// crate's `opentelemetry` feature, a request with a valid `traceparent` needs it
    /// up front: [`instrument_request`](crate::context::instrument_request) attaches
    /// the caller's span as the handler's OpenTelemetry parent. (Decided here, where
    /// the feature is known: an application may enable it on `loggier-core` without
    /// enabling it on the adapter.)
    #[inline]
    pub fn frame_on_first_use(&self) -> bool {
        self.built_frame().is_none() && !(cfg!(feature = "opentelemetry") && self.trace.is_some())
    }

    /// The response body was dropped before its end (client disconnect, server
    /// shutdown). Noted as `response_aborted: true` in the record context.
    pub fn set_aborted(&mut self) {
        self.aborted = true;
    }

    /// `true` when a failure (error or panic) has been noted.
    pub fn has_failed(&self) -> bool {
        self.failure.is_some()
    }

    /// Stops the clock and decides: `Some(level)` when the request is recorded — its
    /// status is tracked, it was slow (`log_slow_requests` and duration ≥
    /// `slow_request_threshold`), the handler failed or panicked, or access-log mode is
    /// on. Level: error for 5xx, failures and panics; warning for 4xx and slow
    /// requests; info otherwise. Calling it again keeps the first duration. The
    /// request's [endpoint options](Exchange::endpoint), when set, replace the
    /// tracked statuses and the slow threshold.
    pub fn finish(&mut self) -> Option<Level> {
        let duration = *self.duration.get_or_insert_with(|| self.started.elapsed());
        let slow = self.slow_threshold().is_some_and(|t| duration >= t);
        let tracked = self.status.is_some_and(|c| self.tracked(c));
        let failed = self.failure.is_some();
        if !(failed || tracked || slow || self.settings.log_all_requests) {
            return None;
        }
        let status = self.status.unwrap_or(0);
        Some(if failed || status >= 500 {
            Level::Error
        } else if status >= 400 || slow {
            Level::Warning
        } else {
            Level::Info
        })
    }

    /// Builds the transaction record (logger `"http"`) at `level`: message like
    /// `"Server error: GET /api/v1/templates/ - 500"`, `request_id`, trace ids and the
    /// `context.transaction` of seeds/004 with `duration_ms`. Request query, headers,
    /// client IP and user agent, and response headers, only with
    /// `capture_request_data`; sensitive headers, query parameters and JSON/form body
    /// fields masked with `[FILTERED]`. Headers are only turned into strings here, after
    /// the decision.
    ///
    /// `request_headers` / `response_headers` are the entries of each header map
    /// ([`header_entries`] for `http` 1.x maps); pass [`std::iter::empty`] when unknown.
    /// Headers kept earlier ([`keep_request_headers`](Exchange::keep_request_headers),
    /// [`keep_response_headers`](Exchange::keep_response_headers)) take their place.
    ///
    /// With [endpoint options](Exchange::endpoint): their tags are appended to the
    /// record's, the request body is kept only when the endpoint (or, when it does not
    /// say, `capture_request_body`) wants it, and the response body follows the
    /// endpoint's `capture_response_body`.
    pub fn into_record<'a, 'b, Q, R>(
        mut self,
        level: Level,
        request: RequestView<'_>,
        request_headers: Q,
        response_headers: R,
    ) -> Record
    where
        Q: IntoIterator<Item = HeaderEntry<'a>>,
        R: IntoIterator<Item = HeaderEntry<'b>>,
    {
        let duration = *self.duration.get_or_insert_with(|| self.started.elapsed());
        let endpoint = self.endpoint();
        let keep_request_body = self.wants_request_body();
        let response_body_mode = self.response_body_mode();
        let slow_threshold = self.slow_threshold();
        let settings = Arc::clone(&self.settings);
        let s = &*settings;
        let extra = &s.masker;

        // The transaction is written in its box, in place: the one started by
        // `keep_*_headers` (holding the headers kept), else a new one.
        let mut http = self.kept.take().unwrap_or_default();
        let req = &mut http.request;
        req.method = static_method(request.method);
        req.path = request.path.to_string();
        req.route = self.route.clone();
        if s.capture_request_data {
            if let Some(q) = request.query.filter(|q| !q.is_empty()) {
                req.query = redact::query_fields(q, extra);
            }
            if !self.kept_request {
                header_fields(
                    s,
                    request_headers,
                    &mut req.headers,
                    Some(&mut req.user_agent),
                );
            }
            req.client_ip = request.client_ip.map(ip_text);
        }
        req.body = self
            .request_body
            .take()
            .filter(|b| keep_request_body && b.total_bytes() > 0)
            .map(|b| b.into_captured(extra));

        match self.status {
            None => http.response = None,
            Some(status) => {
                let kept_response = self.kept_response;
                let resp = http.response.get_or_insert_with(HttpResponse::default);
                resp.status_code = status;
                resp.content_type = self
                    .response_content_type
                    .take()
                    .and_then(|c| record_content_type(&c));
                if s.capture_request_data && !kept_response {
                    header_fields(s, response_headers, &mut resp.headers, None);
                }
                if response_body_mode.allows(status) {
                    resp.body = self
                        .response_body
                        .take()
                        .filter(|b| b.total_bytes() > 0)
                        .map(|b| b.into_captured(extra));
                }
            }
        }
        http.duration_ms = crate::timing::millis(duration);

        let slow = slow_threshold.is_some_and(|t| duration >= t);
        // One allocation: "<kind>: <METHOD> <path>[ - <status>[ (<ms> ms)]]".
        let failed = self.failure.is_some();
        let (kind, with_status) = match (failed, self.status) {
            (true, c) if self.panicked => ("Handler panicked", c),
            (true, None) => ("Request failed", None),
            (_, Some(c)) if c >= 500 => ("Server error", Some(c)),
            (true, Some(c)) => ("Request failed", Some(c)),
            (_, Some(c)) if c >= 400 => ("Client error", Some(c)),
            (_, Some(c)) if slow => ("Slow request", Some(c)),
            (_, c) => ("Request", c),
        };
        let mut message =
            String::with_capacity(kind.len() + request.method.len() + request.path.len() + 24);
        message.push_str(kind);
        message.push_str(": ");
        message.push_str(request.method);
        message.push(' ');
        message.push_str(request.path);
        if let Some(c) = with_status {
            message.push_str(" - ");
            message.push_str(itoa::Buffer::new().format(c));
            if kind == "Slow request" {
                message.push_str(" (");
                message.push_str(itoa::Buffer::new().format(duration.as_millis()));
                message.push_str(" ms)");
            }
        }

        // Built in place (one struct literal, the transaction boxed as it is made)
        // rather than through the builder methods, which move the record each time.
        let (trace_id, span_id) = match self.trace.take().map(|t| *t) {
            Some(t) => (Some(t.trace_id), Some(t.span_id)),
            None => (None, None),
        };
        let mut record = Record {
            timestamp_ns: crate::record::now_ns(),
            level,
            message: Cow::Owned(message),
            logger: Cow::Borrowed(HTTP_LOGGER),
            context: crate::record::ContextFields::new(),
            tags: Vec::new(),
            exception: None,
            http: Some(http),
            timing: None,
            trace_id,
            span_id,
            request_id: Some(self.request_id().to_string()),
        };
        // Completed in place (the builder methods would move the record each time);
        // the exception keeps the box it was noted in.
        if let Some(t) = slow_threshold.filter(|_| slow) {
            let ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
            record
                .context
                .insert("slow_request_threshold_ms", serde_json::Value::from(ms));
        }
        if let Some(e) = endpoint {
            record
                .tags
                .extend(e.tag_list().iter().map(|t| (*t).to_string()));
        }
        if self.aborted {
            record
                .context
                .insert("response_aborted", serde_json::Value::Bool(true));
        }
        record.exception = self.failure.take().or_else(|| self.response_error.take());
        record
    }
}

/// The client IP as text, as `Display` writes it. An IPv4 address is written octet
/// by octet into one allocation of its final size: `Display` goes through the
/// formatting machinery with padding support (about ten times the instructions, and
/// a growing `String`). IPv6 keeps `Display` (its zero-run compression rules).
fn ip_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                text.push_str(itoa::Buffer::new().format(octet));
            }
            text
        }
        std::net::IpAddr::V6(v6) => v6.to_string(),
    }
}

/// The method as a `&'static str` when it is a standard one (no copy per record).
fn static_method(m: &str) -> Cow<'static, str> {
    const METHODS: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
    ];
    match METHODS.iter().find(|s| **s == m) {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(m.to_owned()),
    }
}

/// The response `Content-Type` as the record holds it: a `&'static str` when it is
/// one of the usual ones (no copy per record), else a copy; `None` when it is not
/// UTF-8.
fn record_content_type(c: &[u8]) -> Option<Cow<'static, str>> {
    const USUAL: [&str; 8] = [
        "application/json",
        "text/plain; charset=utf-8",
        "text/html; charset=utf-8",
        "text/plain",
        "text/html",
        "application/octet-stream",
        "application/problem+json",
        "application/x-www-form-urlencoded",
    ];
    match USUAL.iter().find(|u| u.as_bytes() == c) {
        Some(u) => Some(Cow::Borrowed(u)),
        None => std::str::from_utf8(c)
            .ok()
            .map(|c| Cow::Owned(c.to_owned())),
    }
}

/// The usual header names: kept `&'static` in records (no copy per record), and their
/// sensitivity is remembered by position ([`CaptureSettings::is_sensitive_header_at`]).
pub(crate) const STATIC_HEADER_NAMES: [&str; 24] = [
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "content-type",
    "content-length",
    "content-encoding",
    "connection",
    "cache-control",
    "x-request-id",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-real-ip",
    "referer",
    "origin",
    "traceparent",
    "authorization",
    "cookie",
    "set-cookie",
    "date",
    "etag",
    "vary",
    "location",
];

/// The header name as a `&'static str` with its position in [`STATIC_HEADER_NAMES`]
/// when it is one of the usual ones, else an owned lower-case copy.
fn static_header_name(name: &str) -> (Cow<'static, str>, Option<usize>) {
    // A `match` on text compiles to a length switch and a few compares.
    let known = match name {
        "host" => 0,
        "user-agent" => 1,
        "accept" => 2,
        "accept-encoding" => 3,
        "accept-language" => 4,
        "content-type" => 5,
        "content-length" => 6,
        "content-encoding" => 7,
        "connection" => 8,
        "cache-control" => 9,
        "x-request-id" => 10,
        "x-forwarded-for" => 11,
        "x-forwarded-proto" => 12,
        "x-real-ip" => 13,
        "referer" => 14,
        "origin" => 15,
        "traceparent" => 16,
        "authorization" => 17,
        "cookie" => 18,
        "set-cookie" => 19,
        "date" => 20,
        "etag" => 21,
        "vary" => 22,
        "location" => 23,
        _ if name.bytes().any(|b| b.is_ascii_uppercase()) => {
            return (Cow::Owned(name.to_ascii_lowercase()), None);
        }
        _ => return (Cow::Owned(name.to_owned()), None),
    };
    (Cow::Borrowed(STATIC_HEADER_NAMES[known]), Some(known))
}

/// Header entries → `out` (empty when called): lower-case names, values as text (invalid UTF-8
/// replaced), repeated names joined with `", "`, sensitive ones masked, and every
/// other value scanned with [`Masker::mask_text`](crate::mask::Masker::mask_text)
/// — what the worker's masking would do, so the headers carry the masker's stamp
/// and the worker leaves them alone when its masker has the same keys. Also picks
/// out the `User-Agent` (unmasked, as before) when `user_agent` is given.
fn header_fields<'a, I>(
    s: &CaptureSettings,
    entries: I,
    out: &mut Headers,
    mut user_agent: Option<&mut Option<String>>,
) where
    I: IntoIterator<Item = HeaderEntry<'a>>,
{
    let entries = entries.into_iter();
    out.reserve(entries.size_hint().0);
    for e in entries {
        let (name, known) = static_header_name(e.name);
        let sensitive = match known {
            Some(at) => s.is_sensitive_header_at(at, e.sensitive),
            None => s.is_sensitive_header(&name, e.sensitive),
        };
        // Valid UTF-8 (the rule) is checked by the fast validator and borrowed.
        let value = match std::str::from_utf8(e.value) {
            Ok(v) => Cow::Borrowed(v),
            Err(_) => String::from_utf8_lossy(e.value),
        };
        let value = if sensitive {
            Cow::Borrowed(FILTERED)
        } else {
            value
        };
        if name == "user-agent" {
            if let Some(ua) = user_agent.as_deref_mut() {
                *ua = Some(value.clone().into_owned());
            }
        }
        out.append_str(name, &value);
    }
    s.masker.mask_header_values(out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::BodyContent;

    /// The `match` in `static_header_name` and the table it indexes list the same
    /// names in the same order: a header found at position `i` is named
    /// `STATIC_HEADER_NAMES[i]` and gets that position's remembered sensitivity.
    #[test]
    fn static_header_positions_match_the_table() {
        for (i, name) in STATIC_HEADER_NAMES.iter().enumerate() {
            let (found, at) = static_header_name(name);
            assert_eq!((found.as_ref(), at), (*name, Some(i)), "{name}");
        }
    }

    fn settings(
        f: impl FnOnce(super::super::CaptureSettingsBuilder) -> super::super::CaptureSettingsBuilder,
    ) -> Arc<CaptureSettings> {
        Arc::new(
            f(CaptureSettings::builder())
                .build()
                .expect("valid settings"),
        )
    }

    fn view<'a>(method: &'a str, path: &'a str, query: Option<&'a str>) -> RequestView<'a> {
        RequestView {
            method,
            path,
            query,
            client_ip: Some("127.0.0.1".parse().expect("ip")),
        }
    }

    #[test]
    fn client_ips_are_written_as_display_writes_them() {
        for text in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.3.255",
            "203.0.113.7",
            "255.255.255.255",
            "::1",
            "::ffff:192.0.2.1",
            "2001:db8::8a2e:370:7334",
        ] {
            let ip: std::net::IpAddr = text.parse().expect("ip");
            assert_eq!(ip_text(ip), ip.to_string());
            assert_eq!(ip_text(ip), text);
        }
    }

    #[test]
    fn tracked_statuses_are_recorded_with_their_level() {
        let s = settings(|b| b.statuses_to_track(["4xx", "5xx"]).log_slow_requests(false));
        for (status, level) in [
            (200, None),
            (302, None),
            (404, Some(Level::Warning)),
            (503, Some(Level::Error)),
        ] {
            let mut x = Exchange::start(Arc::clone(&s), None, None);
            let _ = x.on_response(status, None);
            assert_eq!(x.finish(), level, "{status}");
        }
    }

    #[test]
    fn slow_failed_and_access_log_requests_are_recorded() {
        let s = settings(|b| b.slow_request_threshold(Duration::ZERO));
        let mut x = Exchange::start(Arc::clone(&s), None, None);
        let _ = x.on_response(200, None);
        assert_eq!(x.finish(), Some(Level::Warning));
        let r = x.into_record(Level::Warning, view("GET", "/slow", None), [], []);
        assert!(
            r.message.starts_with("Slow request: GET /slow - 200 ("),
            "{}",
            r.message
        );
        assert_eq!(r.context["slow_request_threshold_ms"], 0);

        let s = settings(|b| b.log_slow_requests(false));
        let mut x = Exchange::start(Arc::clone(&s), None, None);
        x.set_error(Exception::new("io", "boom"));
        assert_eq!(x.finish(), Some(Level::Error));
        let r = x.into_record(Level::Error, view("POST", "/x", None), [], []);
        assert_eq!(r.message, "Request failed: POST /x");
        assert!(r.http.as_ref().expect("http").response.is_none());
        assert_eq!(r.exception.as_ref().expect("exc").message, "boom");

        let mut x = Exchange::start(Arc::clone(&s), None, None);
        x.set_panic("index out of bounds", None);
        let _ = x.on_response(500, None);
        assert_eq!(x.finish(), Some(Level::Error));
        let r = x.into_record(Level::Error, view("GET", "/p", None), [], []);
        assert_eq!(r.message, "Handler panicked: GET /p - 500");
        assert_eq!(r.exception.as_ref().expect("exc").type_name, "panic");

        let s = settings(|b| b.log_all_requests(true).log_slow_requests(false));
        let mut x = Exchange::start(s, None, None);
        let _ = x.on_response(204, None);
        assert_eq!(x.finish(), Some(Level::Info));
        let r = x.into_record(Level::Info, view("DELETE", "/a/1", None), [], []);
        assert_eq!(r.message, "Request: DELETE /a/1 - 204");
    }

    /// The response `Content-Type` is recorded when it is UTF-8 (a usual one
    /// borrowed, others copied, longer ones than the inline buffer too), and left
    /// out when it is not.
    #[test]
    fn the_response_content_type_is_recorded_only_when_it_is_utf8() {
        let long = format!("application/vnd.example.{}+json", "x".repeat(40));
        let cases: [(&[u8], Option<&str>); 5] = [
            (b"application/json", Some("application/json")),
            (b"text/csv; charset=utf-8", Some("text/csv; charset=utf-8")),
            (long.as_bytes(), Some(long.as_str())),
            (
                "text/plain; name=caf\u{e9}".as_bytes(),
                Some("text/plain; name=caf\u{e9}"),
            ),
            (b"text/plain; name=caf\xe9", None),
        ];
        for (value, want) in cases {
            let mut x = Exchange::start(settings(|b| b), None, None);
            let _ = x.on_response(500, Some(value));
            let level = x.finish().expect("5xx recorded");
            let r = x.into_record(level, view("GET", "/a", None), [], []);
            let resp = r.http.as_ref().and_then(|t| t.response.as_ref());
            let got = resp.expect("response").content_type.as_deref();
            assert_eq!(got, want, "{value:?}");
            let borrowed = matches!(
                resp.and_then(|r| r.content_type.as_ref()),
                Some(Cow::Borrowed(_))
            );
            assert_eq!(borrowed, value == b"application/json", "{value:?}");
        }
    }

    #[test]
    fn record_has_the_seed_transaction_shape_and_masks_secrets() {
        let s = settings(|b| b.capture_request_body(true).max_body_size(1024));
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", "Bearer s3cret".parse().expect("hv"));
        headers.insert("user-agent", "curl/8".parse().expect("hv"));
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .expect("hv"),
        );
        headers.insert("x-request-id", "req-42".parse().expect("hv"));
        let mut marked: http::HeaderValue = "opaque".parse().expect("hv");
        marked.set_sensitive(true);
        headers.insert("x-custom", marked);
        headers.append("accept", "a/b".parse().expect("hv"));
        headers.append("accept", "c/d".parse().expect("hv"));

        let mut x = s
            .begin("/api/v1/templates/", &headers)
            .expect("not excluded");
        assert_eq!(x.request_id(), "req-42");
        x.set_route("/api/v1/templates/");
        let mut body = x
            .request_body_capture(Some(b"application/json"))
            .expect("capture on");
        body.push(br#"{"name":"t","password":"hunter2"}"#);
        x.set_request_body(body);
        let mut resp_body = x
            .on_response(500, Some(b"application/json"))
            .expect("error body captured");
        resp_body.push(br#"{"error":"db down"}"#);
        x.set_response_body(resp_body);
        let level = x.finish().expect("500 is tracked");
        let mut resp_headers = http::HeaderMap::new();
        resp_headers.insert("set-cookie", "sid=abc".parse().expect("hv"));
        let r = x.into_record(
            level,
            view(
                "GET",
                "/api/v1/templates/",
                Some("limit=100&offset=0&api_key=k1"),
            ),
            header_entries(&headers),
            header_entries(&resp_headers),
        );

        assert_eq!(r.level, Level::Error);
        assert_eq!(r.message, "Server error: GET /api/v1/templates/ - 500");
        assert_eq!(r.logger, "http");
        assert_eq!(r.request_id.as_deref(), Some("req-42"));
        assert_eq!(
            r.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(r.span_id.as_deref(), Some("00f067aa0ba902b7"));
        let tx = r.http.as_ref().expect("transaction");
        assert_eq!(tx.request.query["limit"], "100");
        assert_eq!(tx.request.query["api_key"], FILTERED);
        assert_eq!(tx.request.headers.get("authorization"), Some(FILTERED));
        assert_eq!(tx.request.headers.get("x-custom"), Some(FILTERED));
        assert_eq!(tx.request.headers.get("accept"), Some("a/b, c/d"));
        assert_eq!(tx.request.user_agent.as_deref(), Some("curl/8"));
        assert_eq!(tx.request.client_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(tx.request.route.as_deref(), Some("/api/v1/templates/"));
        let rb = tx.request.body.as_ref().expect("request body");
        assert_eq!(
            rb.content,
            BodyContent::Json(serde_json::json!({"name":"t","password":FILTERED}))
        );
        let resp = tx.response.as_ref().expect("response");
        assert_eq!(resp.status_code, 500);
        assert_eq!(resp.content_type.as_deref(), Some("application/json"));
        assert_eq!(resp.headers.get("set-cookie"), Some(FILTERED));
        assert!(resp.body.is_some());
        assert!(tx.duration_ms >= 0.0);

        let svc = crate::record::ServiceInfo::default();
        let mut out = Vec::new();
        crate::record::encode_json(&r, &svc, &mut out).expect("encodes");
        let text = String::from_utf8(out).expect("utf8");
        for secret in ["hunter2", "s3cret", "k1", "sid=abc", "opaque"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
    }

    /// Headers kept early make the same record as the entries given to
    /// `into_record` (masked, user agent picked out), and take their place.
    #[test]
    fn headers_kept_early_record_as_the_entries_would() {
        let s = settings(|b| b.log_all_requests(true));
        let mut req = http::HeaderMap::new();
        req.insert("user-agent", "curl/8".parse().expect("hv"));
        req.insert("authorization", "Bearer s3cret".parse().expect("hv"));
        req.append("accept", "a/b".parse().expect("hv"));
        req.append("accept", "c/d".parse().expect("hv"));
        let mut resp = http::HeaderMap::new();
        resp.insert("set-cookie", "sid=abc".parse().expect("hv"));
        resp.insert("etag", "e1".parse().expect("hv"));
        let record = |keep: bool| {
            let mut x = s.begin("/a", &req).expect("not excluded");
            if keep {
                x.keep_request_headers(header_entries(&req));
            }
            let _ = x.on_response(200, None);
            if keep {
                x.keep_response_headers(header_entries(&resp));
            }
            let level = x.finish().expect("access-log mode");
            let (q, r) = if keep {
                (http::HeaderMap::new(), http::HeaderMap::new())
            } else {
                (req.clone(), resp.clone())
            };
            let r = x.into_record(
                level,
                view("GET", "/a", None),
                header_entries(&q),
                header_entries(&r),
            );
            r.http.expect("tx")
        };
        let (kept, given) = (record(true), record(false));
        assert_eq!(kept.request.headers, given.request.headers);
        assert_eq!(kept.request.user_agent, given.request.user_agent);
        let (kr, gr) = (kept.response.expect("resp"), given.response.expect("resp"));
        assert_eq!(kr.headers, gr.headers);
        assert_eq!(kept.request.headers.get("authorization"), Some(FILTERED));
        assert_eq!(kept.request.headers.get("accept"), Some("a/b, c/d"));
        assert_eq!(kept.request.user_agent.as_deref(), Some("curl/8"));
        assert_eq!(kr.headers.get("set-cookie"), Some(FILTERED));
        assert_eq!(kr.headers.get("etag"), Some("e1"));

        let off = settings(|b| b.log_all_requests(true).capture_request_data(false));
        let mut x = off.begin("/a", &req).expect("not excluded");
        x.keep_request_headers(header_entries(&req));
        let _ = x.on_response(200, None);
        x.keep_response_headers(header_entries(&resp));
        let level = x.finish().expect("access-log mode");
        let tx = x
            .into_record(level, view("GET", "/a", None), [], [])
            .http
            .expect("tx");
        assert!(tx.request.headers.is_empty() && tx.request.user_agent.is_none());
        assert!(tx.response.expect("resp").headers.is_empty());
    }

    /// The transaction that kept headers start is completed as a new one would be:
    /// headers kept again replace the ones kept before, the entries given to
    /// `into_record` count only for a side not kept, and response headers kept
    /// for a request that ends without a status leave no response.
    #[test]
    fn a_transaction_started_by_kept_headers_is_completed_like_a_new_one() {
        let s = settings(|b| b.log_all_requests(true));
        let mut req = http::HeaderMap::new();
        req.insert("user-agent", "curl/8".parse().expect("hv"));
        let mut other = http::HeaderMap::new();
        other.insert("user-agent", "other/1".parse().expect("hv"));
        other.insert("x-other", "o".parse().expect("hv"));
        let mut resp = http::HeaderMap::new();
        resp.insert("etag", "e1".parse().expect("hv"));

        let mut x = s.begin("/a", &req).expect("not excluded");
        x.keep_request_headers(header_entries(&other));
        x.keep_request_headers(header_entries(&req));
        let _ = x.on_response(201, None);
        let level = x.finish().expect("access-log mode");
        let r = x.into_record(
            level,
            view("POST", "/a", Some("q=1")),
            header_entries(&other),
            header_entries(&resp),
        );
        assert_eq!(r.message, "Request: POST /a - 201");
        let tx = r.http.expect("tx");
        assert_eq!(
            (tx.request.method.as_ref(), tx.request.path.as_str()),
            ("POST", "/a")
        );
        assert_eq!(tx.request.query["q"], "1");
        assert_eq!(
            tx.request.headers.iter().collect::<Vec<_>>(),
            [("user-agent", "curl/8")]
        );
        assert_eq!(tx.request.user_agent.as_deref(), Some("curl/8"));
        assert_eq!(tx.request.client_ip.as_deref(), Some("127.0.0.1"));
        let resp_side = tx.response.expect("resp");
        assert_eq!(resp_side.status_code, 201);
        assert_eq!(
            resp_side.headers.iter().collect::<Vec<_>>(),
            [("etag", "e1")]
        );

        let mut x = s.begin("/b", &req).expect("not excluded");
        x.keep_response_headers(header_entries(&resp));
        x.set_error(Exception::new("io", "boom"));
        let level = x.finish().expect("failed");
        let r = x.into_record(level, view("GET", "/b", None), header_entries(&req), []);
        assert_eq!(r.message, "Request failed: GET /b");
        assert_eq!(r.exception.as_ref().expect("exc").message, "boom");
        let tx = r.http.expect("tx");
        assert!(tx.response.is_none());
        assert_eq!(tx.request.user_agent.as_deref(), Some("curl/8"));
    }

    #[test]
    fn without_request_data_only_method_path_and_route_are_kept() {
        let s = settings(|b| b.capture_request_data(false));
        let mut headers = http::HeaderMap::new();
        headers.insert("user-agent", "curl/8".parse().expect("hv"));
        let mut x = s.begin("/a", &headers).expect("not excluded");
        let _ = x.on_response(401, None);
        let level = x.finish().expect("401 tracked");
        let r = x.into_record(
            level,
            view("GET", "/a", Some("q=1")),
            header_entries(&headers),
            [],
        );
        let tx = r.http.expect("tx");
        assert!(tx.request.query.is_empty());
        assert!(tx.request.headers.is_empty());
        assert!(tx.request.user_agent.is_none());
        assert!(tx.request.client_ip.is_none());
    }

    #[test]
    fn excluded_paths_start_nothing_and_invalid_ids_are_replaced() {
        let s = settings(|b| b.exclude_paths(["/health"]));
        let mut headers = http::HeaderMap::new();
        assert!(s.begin("/health", &headers).is_none());
        headers.insert("x-request-id", "bad id".parse().expect("hv"));
        headers.insert("traceparent", "nonsense".parse().expect("hv"));
        let x = s.begin("/a", &headers).expect("not excluded");
        assert_ne!(x.request_id(), "bad id");
        assert!(x.trace_parent().is_none());
    }

    #[test]
    fn ok_response_body_is_not_teed_by_default_and_aborts_are_noted() {
        let s = settings(|b| b.log_all_requests(true).endpoint_request_body(false));
        let mut x = Exchange::start(s, None, None);
        assert!(x.request_body_capture(None).is_none());
        assert!(x.on_response(200, Some(b"text/plain")).is_none());
        x.set_aborted();
        let level = x.finish().expect("access log");
        let r = x.into_record(level, view("GET", "/", None), [], []);
        assert_eq!(r.context["response_aborted"], true);
        assert!(r.http.expect("tx").response.expect("resp").body.is_none());
    }

    #[test]
    fn response_errors_fail_only_with_server_statuses() {
        let s = settings(|b| b.log_slow_requests(false));
        let mut x = Exchange::start(Arc::clone(&s), None, None);
        let _ = x.on_response(404, None);
        x.set_response_error(Exception::new("NotFound", "no order 7"));
        assert_eq!(x.finish(), None, "404 is not tracked by default");

        let mut x = Exchange::start(Arc::clone(&s), None, None);
        let _ = x.on_response(401, None);
        x.set_response_error(Exception::new("Unauthorized", "bad token"));
        let level = x.finish().expect("401 is tracked");
        assert_eq!(level, Level::Warning);
        let r = x.into_record(level, view("GET", "/a", None), [], []);
        assert_eq!(r.message, "Client error: GET /a - 401");
        assert_eq!(r.exception.expect("attached").message, "bad token");

        let s = settings(|b| b.statuses_to_track(["4xx"]).log_slow_requests(false));
        let mut x = Exchange::start(s, None, None);
        let _ = x.on_response(502, None);
        x.set_response_error(Exception::new("Gateway", "upstream down"));
        assert_eq!(x.finish(), Some(Level::Error), "a 5xx error is a failure");
        let r = x.into_record(Level::Error, view("GET", "/b", None), [], []);
        assert_eq!(r.message, "Server error: GET /b - 502");
        assert_eq!(r.exception.expect("failure").message, "upstream down");
    }

    #[test]
    fn scope_carries_request_id_trace_and_route() {
        let s = settings(|b| b);
        let mut x = Exchange::start(
            s,
            Some(b"req-1"),
            Some(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        x.set_route("/orders/{id}");
        let _guard = x.scope().enter();
        let frame = crate::context::current().expect("scope entered");
        assert_eq!(frame.request_id(), Some("req-1"));
        assert_eq!(frame.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(frame.span_id(), Some("00f067aa0ba902b7"));
        assert_eq!(frame.route(), Some("/orders/{id}"));
    }

    /// A deferred exchange outside any scope leaves its frame to first use, unless
    /// the frame is built already or (with `opentelemetry`) a trace parent must be
    /// attached around the handler; an eager one never does.
    #[test]
    fn the_frame_is_left_to_first_use_only_when_nothing_needs_it_up_front() {
        const TP: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let plain = Exchange::start_deferred(settings(|b| b), Some(b"req-1"), None);
        assert!(plain.frame_on_first_use());
        let _ = plain.frame();
        assert!(!plain.frame_on_first_use(), "built now");
        let traced = Exchange::start_deferred(settings(|b| b), None, Some(TP));
        assert_eq!(
            traced.frame_on_first_use(),
            !cfg!(feature = "opentelemetry"),
            "a trace parent needs the frame up front only with OpenTelemetry"
        );
        assert!(!Exchange::start(settings(|b| b), None, None).frame_on_first_use());
        let _guard = crate::context::Scope::new().request_id("outer").enter();
        let nested = Exchange::start_deferred(settings(|b| b), None, None);
        assert!(
            !nested.frame_on_first_use(),
            "inside a scope: built at once"
        );
    }

    #[test]
    fn the_frame_takes_the_id_and_route_without_changing_what_the_exchange_reports() {
        let s = settings(|b| b.log_all_requests(true));
        let mut x = Exchange::start(s, None, None);
        x.set_route("/orders/{id}");
        let id = x.request_id().to_string();
        let frame = Arc::clone(x.frame());
        assert_eq!(frame.request_id(), Some(id.as_str()));
        assert_eq!(frame.route(), Some("/orders/{id}"));
        assert_eq!(x.request_id(), id, "read back from the frame");
        assert_eq!(x.route(), Some("/orders/{id}"));
        assert!(Arc::ptr_eq(&frame, x.frame()), "built once");
        assert_eq!(x.scope().into_frame().request_id(), Some(id.as_str()));
        let _ = x.on_response(200, None);
        let level = x.finish().expect("access log");
        let r = x.into_record(level, view("GET", "/orders/7", None), [], []);
        assert_eq!(r.request_id.as_deref(), Some(id.as_str()));
        let tx = r.http.expect("tx");
        assert_eq!(tx.request.route.as_deref(), Some("/orders/{id}"));

        // A route set after the frame was built is the record's (the frame keeps
        // the one it was built with).
        let mut x = Exchange::start(settings(|b| b.log_all_requests(true)), Some(b"r-9"), None);
        let frame = Arc::clone(x.frame());
        x.set_route("/late");
        assert_eq!(frame.route(), None);
        assert_eq!(x.route(), Some("/late"));
        let _ = x.on_response(204, None);
        let r = x.into_record(Level::Info, view("GET", "/late", None), [], []);
        assert_eq!(r.request_id.as_deref(), Some("r-9"));
        assert_eq!(r.http.expect("tx").request.route.as_deref(), Some("/late"));
    }

    #[test]
    fn response_headers_are_kept_only_when_the_response_may_be_recorded() {
        let s = settings(|b| b.log_slow_requests(false));
        let mut x = Exchange::start(Arc::clone(&s), None, None);
        let _ = x.on_response(200, None);
        assert!(!x.wants_response_headers());
        let _ = x.on_response(500, None);
        assert!(x.wants_response_headers());
        let mut x = Exchange::start(Arc::clone(&s), None, None);
        let _ = x.on_response(200, None);
        x.set_error(Exception::new("io", "late failure"));
        assert!(x.wants_response_headers());
        let s = settings(|b| b.capture_request_data(false));
        let mut x = Exchange::start(s, None, None);
        let _ = x.on_response(500, None);
        assert!(!x.wants_response_headers());
    }

    #[test]
    fn response_headers_are_copied_only_when_the_record_may_need_them() {
        // Default settings: 200 is not tracked, slow requests are (1 s).
        let s = settings(|b| b);
        let mut x = Exchange::start(Arc::clone(&s), None, None);
        let _ = x.on_response(200, None);
        assert!(x.wants_response_headers(), "a 200 may still turn out slow");
        assert!(
            !x.wants_response_headers_copy(false),
            "complete body: no copy"
        );
        assert!(
            x.wants_response_headers_copy(true),
            "a stream may take any time"
        );
        let _ = x.on_response(500, None);
        assert!(x.wants_response_headers_copy(false), "tracked status");
        let mut x = Exchange::start(Arc::clone(&s), None, None);
        let _ = x.on_response(200, None);
        x.set_error(Exception::new("io", "late failure"));
        assert!(x.wants_response_headers_copy(false), "failure");

        // Half the slow threshold already spent: copied.
        let s = settings(|b| b.slow_request_threshold(Duration::from_millis(20)));
        let mut x = Exchange::start(s, None, None);
        std::thread::sleep(Duration::from_millis(15));
        let _ = x.on_response(200, None);
        assert!(x.wants_response_headers_copy(false));

        let s = settings(|b| b.log_all_requests(true));
        let mut x = Exchange::start(s, None, None);
        let _ = x.on_response(200, None);
        assert!(x.wants_response_headers_copy(false), "access-log mode");
        let s = settings(|b| b.log_slow_requests(false));
        let mut x = Exchange::start(s, None, None);
        let _ = x.on_response(200, None);
        assert!(!x.wants_response_headers_copy(true), "never recorded");
    }

    #[test]
    fn stacktraces_can_be_left_out() {
        let s = settings(|b| b.include_stacktrace(false));
        let mut x = Exchange::start(s, None, None);
        let bt = Backtrace::force_capture();
        x.set_panic("boom", Some(&bt));
        let level = x.finish().expect("panic recorded");
        let r = x.into_record(level, view("GET", "/", None), [], []);
        assert!(r.exception.expect("exc").backtrace.is_none());
    }

    mod endpoint {
        use super::*;
        use crate::context::{EndpointOptions, current, set_endpoint_options};

        static NOT_FOUND_TRACKED: EndpointOptions = EndpointOptions::new("t::lookup")
            .tags(&["lookup", "critical"])
            .statuses(&[(404, 404)]);
        static BODIES: EndpointOptions = EndpointOptions::new("t::pay")
            .capture_request_body(true)
            .capture_response_body(true);
        static SLOW: EndpointOptions = EndpointOptions::new("t::report").slow_threshold_ms(0);
        static PLAIN: EndpointOptions = EndpointOptions::new("t::plain");

        /// Runs the "handler" inside the exchange's scope, as an adapter does.
        fn handler_sets(x: &Exchange, options: &'static EndpointOptions) {
            let _g = x.scope().enter();
            assert!(set_endpoint_options(options));
            assert_eq!(current().and_then(|f| f.endpoint()), Some(options));
        }

        #[test]
        fn endpoint_statuses_replace_the_tracked_set_and_tags_are_added() {
            let s = settings(|b| b.log_slow_requests(false));
            let mut x = Exchange::start(Arc::clone(&s), None, None);
            handler_sets(&x, &NOT_FOUND_TRACKED);
            let _ = x.on_response(404, None);
            let level = x.finish().expect("404 tracked for this endpoint");
            assert_eq!(level, Level::Warning);
            let r = x.into_record(level, view("GET", "/users/9", None), [], []);
            assert_eq!(r.tags, ["lookup", "critical"]);

            // 401 is in the default set, not in the endpoint's.
            let mut x = Exchange::start(Arc::clone(&s), None, None);
            handler_sets(&x, &NOT_FOUND_TRACKED);
            let _ = x.on_response(401, None);
            assert_eq!(x.finish(), None);

            // Another request, no endpoint: the settings decide again.
            let mut x = Exchange::start(s, None, None);
            let _ = x.on_response(404, None);
            assert_eq!(x.finish(), None);
        }

        #[test]
        fn endpoint_body_flags_apply_to_their_request_only() {
            let s = settings(|b| b.statuses_to_track(["200"]).log_slow_requests(false));
            let mut x = Exchange::start(Arc::clone(&s), None, None);
            // The adapter wraps the body before the handler runs: provisional copy.
            let mut body = x
                .request_body_capture(Some(b"text/plain"))
                .expect("endpoint may ask");
            body.push(b"read by an extractor");
            handler_sets(&x, &BODIES);
            body.push(b", then more");
            x.set_request_body(body);
            let tee = x.on_response(200, Some(b"text/plain"));
            let mut tee = tee.expect("endpoint wants 200 bodies");
            tee.push(b"paid");
            x.set_response_body(tee);
            let level = x.finish().expect("200 tracked");
            let r = x.into_record(level, view("POST", "/pay", None), [], []);
            let tx = r.http.expect("tx");
            let req_body = tx.request.body.expect("request body kept");
            assert_eq!(
                req_body.content,
                BodyContent::Text("read by an extractor, then more".into())
            );
            assert!(tx.response.expect("resp").body.is_some());

            // Same settings, an endpoint that does not ask: nothing kept.
            let mut x = Exchange::start(Arc::clone(&s), None, None);
            let mut body = x.request_body_capture(None).expect("provisional");
            body.push(b"secret-ish");
            handler_sets(&x, &PLAIN);
            body.push(b" more");
            assert!(body.captured().is_empty(), "copy freed once known");
            x.set_request_body(body);
            assert!(x.on_response(200, None).is_none(), "200 body not an error");
            let level = x.finish().expect("200 tracked");
            let r = x.into_record(level, view("POST", "/other", None), [], []);
            assert!(r.http.expect("tx").request.body.is_none());

            // Once the endpoint is known, no copy is offered at all.
            let x = Exchange::start(Arc::clone(&s), None, None);
            handler_sets(&x, &PLAIN);
            assert!(x.request_body_capture(None).is_none());
        }

        #[test]
        fn an_endpoint_can_turn_request_body_capture_off() {
            static NO_BODY: EndpointOptions =
                EndpointOptions::new("t::login").capture_request_body(false);
            let s = settings(|b| b.capture_request_body(true).statuses_to_track(["4xx"]));
            let mut x = Exchange::start(s, None, None);
            let mut body = x
                .request_body_capture(Some(b"application/json"))
                .expect("global capture on");
            body.push(br#"{"user":"ann"}"#);
            handler_sets(&x, &NO_BODY);
            x.set_request_body(body);
            let _ = x.on_response(401, None);
            let level = x.finish().expect("401 tracked");
            let r = x.into_record(level, view("POST", "/login", None), [], []);
            assert!(r.http.expect("tx").request.body.is_none());
        }

        #[test]
        fn endpoint_slow_threshold_applies_even_with_slow_logging_off() {
            let s = settings(|b| b.log_slow_requests(false));
            let mut x = Exchange::start(Arc::clone(&s), None, None);
            handler_sets(&x, &SLOW);
            let _ = x.on_response(200, None);
            assert_eq!(x.finish(), Some(Level::Warning));
            let r = x.into_record(Level::Warning, view("GET", "/report", None), [], []);
            assert!(r.message.starts_with("Slow request: GET /report - 200"));
            assert_eq!(r.context["slow_request_threshold_ms"], 0);

            let mut x = Exchange::start(s, None, None);
            let _ = x.on_response(200, None);
            assert_eq!(x.finish(), None);
        }
    }
}
