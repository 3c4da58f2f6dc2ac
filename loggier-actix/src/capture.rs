//! The state of one recorded request between the middleware call and the end of its
//! response body, and the conversions from actix types to the policy's inputs.

use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::HttpRequest;
use actix_web::dev::RequestHead;
use actix_web::http::Method;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::uri::PathAndQuery;
use loggier_core::Exception;
use loggier_core::context::ScopeFrame;
use loggier_core::http::{BodyCapture, Exchange, HeaderEntry, RequestView};

use crate::middleware::Config;

/// The request body copy, shared between the payload wrapper (which fills it as the
/// handler reads) and [`Pending`] (which takes it when the record is built).
pub(crate) type SharedCapture = Rc<RefCell<Option<BodyCapture>>>;

/// One request the policy may record: everything needed to build its record later.
///
/// Method, the URI's path and query, and peer address are kept from the start (cheap
/// clones: the path and query share the request's bytes). Once the response is there, a clone of its `HttpRequest` (an
/// `Rc`; it cannot be cloned earlier, actix's router needs it unshared) gives the
/// request headers, which are only turned into strings if the request is recorded.
#[derive(Debug)]
pub(crate) struct Pending {
    /// Its scope frame holds the request id.
    exchange: Exchange,
    /// The middleware's: the client, the request id header, the route memo.
    config: Rc<Config>,
    method: Method,
    /// The URI's path and query (all the record takes from it: no scheme or
    /// authority to clone and drop), `None` where [`Uri::path_and_query`](actix_web::http::Uri::path_and_query) has none
    /// (then the path is empty, as [`Uri::path`](actix_web::http::Uri::path) says).
    path_and_query: Option<PathAndQuery>,
    peer: Option<SocketAddr>,
    request: Option<HttpRequest>,
    request_body: Option<SharedCapture>,
    /// The request's own request id header, when the exchange took its value as the
    /// request id: the echo is a clone of it (a reference count) instead of a new
    /// header value built and validated per request.
    incoming_id: Option<HeaderValue>,
    /// Kept at response time, only when the policy wants them
    /// ([`Exchange::wants_response_headers_copy`]): actix hands the response head to the
    /// dispatcher before the body ends. A flat list of the map's name/value handles
    /// (reference-counted bytes, no copies, one allocation), not a clone of the map.
    response_headers: Vec<(HeaderName, HeaderValue)>,
    response_body: Option<BodyCapture>,
}

impl Pending {
    /// The state of a request whose exchange has just started; the request body copy,
    /// when there is one, is added with [`set_request_body`](Pending::set_request_body).
    ///
    /// `incoming_id`: the request's `request_id_header` value, if any.
    ///
    /// Inlined into the middleware's call, so the exchange started in its argument
    /// and the state itself are built in place instead of copied there.
    #[inline]
    pub(crate) fn new(
        exchange: Exchange,
        config: Rc<Config>,
        head: &RequestHead,
        incoming_id: Option<&HeaderValue>,
    ) -> Self {
        let incoming_id = incoming_id
            .filter(|v| v.as_bytes() == exchange.request_id().as_bytes())
            .map(|v| {
                let mut echo = v.clone();
                echo.set_sensitive(false);
                echo
            });
        Pending {
            incoming_id,
            exchange,
            config,
            method: head.method.clone(),
            path_and_query: head.uri.path_and_query().cloned(),
            peer: head.peer_addr,
            request: None,
            request_body: None,
            response_headers: Vec::new(),
            response_body: None,
        }
    }

    /// The request's exchange, while the middleware sets it up.
    pub(crate) fn exchange_mut(&mut self) -> &mut Exchange {
        &mut self.exchange
    }

    /// The request body copy the payload wrapper fills.
    pub(crate) fn set_request_body(&mut self, shared: SharedCapture) {
        self.request_body = Some(shared);
    }

    /// The request id header name and value for the response echo.
    pub(crate) fn echo_header(&self) -> Option<(HeaderName, HeaderValue)> {
        let value = self.request_id_value()?;
        Some((self.config.request_id_header.clone(), value))
    }

    /// The request id as a header value for the response echo: the request's own
    /// header value when the id came from there, else the generated id's text in a
    /// per-thread buffer of ids ([`Exchange::request_id_bytes`]: no allocation per
    /// response).
    pub(crate) fn request_id_value(&self) -> Option<HeaderValue> {
        if let Some(incoming) = &self.incoming_id {
            return Some(incoming.clone());
        }
        HeaderValue::from_maybe_shared(self.exchange.request_id_bytes()).ok()
    }

    /// Notes the response status and the error it was built from (before anything
    /// is decided: an error with a 5xx status is a failure).
    pub(crate) fn note_response(&mut self, status: u16, error: Option<&actix_web::Error>) {
        self.exchange.set_status(status);
        if let Some(err) = error {
            self.exchange.set_response_error(exception_of(err));
        }
    }

    /// For a body sent chunk by chunk, after [`note_response`](Pending::note_response):
    /// notes the response's content type and starts the body copy when it applies.
    pub(crate) fn on_response(&mut self, status: u16, headers: &HeaderMap) {
        let content_type = headers
            .get(actix_web::http::header::CONTENT_TYPE)
            .map(|v| v.as_bytes());
        self.response_body = self.exchange.on_response(status, content_type);
    }

    /// Keeps what the record needs once the response head is gone, for a body that
    /// is sent chunk by chunk: its request (for the request headers) and, when the
    /// policy wants them ([`Exchange::wants_response_headers_copy`]; `body_streams`:
    /// the body's size is not known up front), the response headers.
    pub(crate) fn keep_for_body(
        &mut self,
        request: &HttpRequest,
        headers: &HeaderMap,
        body_streams: bool,
    ) {
        self.request = Some(request.clone());
        if self.exchange.wants_response_headers_copy(body_streams) {
            self.response_headers.reserve_exact(headers.len());
            self.response_headers
                .extend(headers.iter().map(|(n, v)| (n.clone(), v.clone())));
        }
    }

    /// The response body is complete in memory (`body`), after
    /// [`note_response`](Pending::note_response): decides right away, with the
    /// response's request and headers borrowed (no copies kept); only a request that
    /// is recorded has its content type noted and its body copied (when the body is
    /// captured). The duration ends here: what is left is sending bytes already
    /// produced. Empties `slot`; a request that is not recorded is dropped where it
    /// is, not moved.
    pub(crate) fn on_complete_body(
        slot: &mut Option<Pending>,
        request: &HttpRequest,
        headers: &HeaderMap,
        body: &[u8],
    ) {
        let Some(level) = slot.as_mut().and_then(Pending::decide) else {
            *slot = None;
            return;
        };
        let Some(mut pending) = slot.take() else {
            return;
        };
        let status = pending.exchange.status().unwrap_or(500);
        pending.on_response(status, headers);
        if let Some(capture) = &mut pending.response_body {
            capture.push(body);
        }
        pending.build(level, false, Some(request), Some(headers));
    }

    /// The inner service returned `Err`: actix-web turns it into a response after
    /// this middleware, from nothing but the error, so the record is built now with
    /// the status that response will have and the error, without headers or body.
    pub(crate) fn on_service_error(mut self, err: &actix_web::Error) {
        let status = err.error_response().status().as_u16();
        let _ = self.exchange.on_response(status, None);
        self.exchange.set_response_error(exception_of(err));
        self.emit(false);
    }

    /// The handler panicked with `message` (`backtrace` from the request panic hook,
    /// when it ran): recorded now as a failure with the 500 this middleware answers.
    pub(crate) fn on_panic(mut self, message: String, backtrace: Option<&Backtrace>) {
        self.exchange.set_panic(message, backtrace);
        let _ = self.exchange.on_response(500, None);
        self.emit(false);
    }

    /// Copies a response body chunk (when the body is being copied).
    pub(crate) fn on_chunk(&mut self, chunk: &[u8]) {
        if let Some(capture) = &mut self.response_body {
            capture.push(chunk);
        }
    }

    /// Decides and, when the request is recorded, builds the record and hands it to
    /// the client. `aborted`: the response (or its body) was dropped before its end.
    pub(crate) fn emit(self, aborted: bool) {
        self.record(aborted, None, None);
    }

    /// [`emit`](Pending::emit), with the request and response headers borrowed from
    /// the response when it is at hand (else the kept ones). Decides first: a request
    /// that is not recorded only frees its state.
    fn record(mut self, aborted: bool, request: Option<&HttpRequest>, headers: Option<&HeaderMap>) {
        if let Some(level) = self.decide() {
            self.build(level, aborted, request, headers);
        }
    }

    /// Stops the clock and decides: the level of the record when the request is
    /// recorded and the client takes records of that level.
    fn decide(&mut self) -> Option<loggier_core::Level> {
        self.exchange
            .finish()
            .filter(|level| self.config.client.enabled(*level))
    }

    /// Builds the record of a request [decided](Pending::decide) on at `level` and
    /// hands it to the client.
    fn build(
        self,
        level: loggier_core::Level,
        aborted: bool,
        request: Option<&HttpRequest>,
        headers: Option<&HeaderMap>,
    ) {
        let Pending {
            incoming_id: _,
            mut exchange,
            config,
            method,
            path_and_query,
            peer,
            request: kept_request,
            request_body,
            response_headers,
            response_body,
        } = self;
        let request = request.or(kept_request.as_ref());
        if let Some(shared) = request_body {
            // The payload wrapper only borrows while pushing a chunk, on this same
            // thread, so the borrow cannot be held here; stay panic-free regardless.
            // An empty copy adds nothing to a record: not handed over (no box).
            if let Some(capture) = shared
                .try_borrow_mut()
                .ok()
                .and_then(|mut c| c.take())
                .filter(|c| c.total_bytes() > 0)
            {
                exchange.set_request_body(capture);
            }
        }
        if let Some(capture) = response_body {
            exchange.set_response_body(capture);
        }
        if aborted {
            exchange.set_aborted();
        }
        if exchange.route().is_none() {
            // Found now that the request is recorded: the frame's answer when a record
            // logged by the handler asked already, else the router's (it has matched
            // this request: no path matching again), else the memo.
            let frame_route = exchange.built_frame().and_then(|f| f.route());
            let route = match (frame_route, request) {
                (Some(route), _) => Some(Arc::from(route)),
                (None, Some(request)) => request.match_pattern().map(|r| config.template(r)),
                (None, None) => config.route(path_of(path_and_query.as_ref())),
            };
            if let Some(route) = route {
                exchange.set_route(route);
            }
        }
        let view = RequestView {
            method: method.as_str(),
            path: path_of(path_and_query.as_ref()),
            query: path_and_query.as_ref().and_then(PathAndQuery::query),
            client_ip: peer.map(|a| a.ip()),
        };
        let record = exchange.into_record(
            level,
            view,
            request
                .into_iter()
                .flat_map(|r| header_entries(r.headers())),
            response_headers
                .iter()
                .map(|(name, value)| HeaderEntry {
                    name: name.as_str(),
                    value: value.as_bytes(),
                    sensitive: value.is_sensitive(),
                })
                .chain(headers.into_iter().flat_map(header_entries)),
        );
        config.client.log(record);
    }

    /// The route of `frame`, when it is this request's (or a scope nested in it).
    fn route_for(&self, frame: &ScopeFrame) -> Option<Option<Arc<str>>> {
        let own = self.exchange.built_frame();
        let ours = own.is_some_and(|own| std::ptr::eq(&**own, frame))
            || frame.request_id() == Some(self.exchange.request_id());
        ours.then(|| self.config.route(path_of(self.path_and_query.as_ref())))
    }
}

/// The path of a request whose URI has `path_and_query`, as [`Uri::path`](actix_web::http::Uri::path) gives it.
fn path_of(path_and_query: Option<&PathAndQuery>) -> &str {
    path_and_query.map_or("", PathAndQuery::path)
}

scoped_tls::scoped_thread_local! {
    /// The request whose handler is being called or polled on this thread (see
    /// [`serving`]), for [`resolve_route`].
    static SERVING: Pending
}

/// Runs `f` — a call or a poll of the inner service — with `pending` as the request
/// served on this thread, so a record logged meanwhile gets its route
/// ([`resolve_route`]). A borrow for the duration of `f` (the previous request, if
/// any, is put back afterwards, also when `f` unwinds): nothing is moved or counted.
pub(crate) fn serving<R>(pending: &Pending, f: impl FnOnce() -> R) -> R {
    SERVING.set(pending, f)
}

/// The [`FrameSource`](loggier_core::context::FrameSource) of the middleware's
/// requests: the scope frame of the request being served on this thread, built on
/// first use.
pub(crate) fn request_frame() -> Option<Arc<ScopeFrame>> {
    if !SERVING.is_set() {
        return None;
    }
    SERVING.with(|pending| Some(Arc::clone(pending.exchange.frame())))
}

/// The [`RouteResolver`](loggier_core::context::RouteResolver) of the middleware's
/// request frames: the route of the request being served on this thread.
pub(crate) fn resolve_route(frame: &ScopeFrame) -> Option<Option<Arc<str>>> {
    if !SERVING.is_set() {
        return None;
    }
    SERVING.with(|pending| pending.route_for(frame))
}

/// The entries of an actix-web (`http` 0.2) header map, as the policy takes them.
pub(crate) fn header_entries(map: &HeaderMap) -> impl Iterator<Item = HeaderEntry<'_>> {
    map.iter().map(|(name, value)| HeaderEntry {
        name: name.as_str(),
        value: value.as_bytes(),
        sensitive: value.is_sensitive(),
    })
}

/// Describes the `ResponseError` inside an `actix_web::Error`: its `Display` as the
/// message and the leading name of its `Debug` output as the type (`NotFound(7)` →
/// `NotFound`; `"Error"` when the `Debug` output starts with no name, as for
/// `ErrorInternalServerError("text")`). No backtrace: one captured here would show
/// the middleware, not where the error was made.
pub(crate) fn exception_of(err: &actix_web::Error) -> Exception {
    let inner = err.as_response_error();
    let debug = format!("{inner:?}");
    let name: String = debug
        .chars()
        .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | ':'))
        .collect();
    let type_name = if name.is_empty() {
        "Error".to_string()
    } else {
        name
    };
    Exception::new(type_name, inner.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::StatusCode;
    use std::fmt;

    /// The kept path and query are the URI's, for every form of request target.
    #[test]
    fn path_and_query_give_the_path_and_query_of_the_uri() {
        for text in [
            "/api/orders/7?x=1&y=2",
            "/",
            "/a?",
            "http://example.com",
            "http://example.com/p?q=1",
            "example.com:443",
            "*",
        ] {
            let uri: actix_web::http::Uri = text.parse().expect("uri");
            let kept = uri.path_and_query().cloned();
            assert_eq!(path_of(kept.as_ref()), uri.path(), "{text}");
            assert_eq!(
                kept.as_ref().and_then(PathAndQuery::query),
                uri.query(),
                "{text}"
            );
        }
    }

    #[derive(Debug)]
    enum OrderError {
        NotFound(u32),
    }

    impl fmt::Display for OrderError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                OrderError::NotFound(id) => write!(f, "no order {id}"),
            }
        }
    }

    impl actix_web::ResponseError for OrderError {
        fn status_code(&self) -> StatusCode {
            StatusCode::NOT_FOUND
        }
    }

    #[test]
    fn actix_errors_become_exceptions_with_type_and_message() {
        let err = actix_web::Error::from(OrderError::NotFound(7));
        let e = exception_of(&err);
        assert_eq!(e.type_name, "NotFound");
        assert_eq!(e.message, "no order 7");
        assert!(e.backtrace.is_none());
    }

    #[test]
    fn header_entries_keep_repeats_and_sensitivity() {
        use actix_web::http::header::{HeaderName, HeaderValue};
        let mut map = HeaderMap::new();
        map.append(
            HeaderName::from_static("accept"),
            HeaderValue::from_static("a/b"),
        );
        map.append(
            HeaderName::from_static("accept"),
            HeaderValue::from_static("c/d"),
        );
        let mut secret = HeaderValue::from_static("opaque");
        secret.set_sensitive(true);
        map.insert(HeaderName::from_static("x-custom"), secret);
        let entries: Vec<_> = header_entries(&map)
            .map(|e| (e.name, e.value.to_vec(), e.sensitive))
            .collect();
        assert_eq!(entries.len(), 3);
        assert!(entries.contains(&("accept", b"a/b".to_vec(), false)));
        assert!(entries.contains(&("accept", b"c/d".to_vec(), false)));
        assert!(entries.contains(&("x-custom", b"opaque".to_vec(), true)));
    }
}
