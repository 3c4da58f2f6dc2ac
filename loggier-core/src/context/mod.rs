//! Scoped context: fields, request id, trace ids and tags that every record logged
//! inside the scope carries.
//!
//! A [`Scope`] is entered either synchronously with [`Scope::enter`] (a guard on the
//! current thread) or around a future with [`Scope::instrument`] (a tokio task-local,
//! so it follows the future across `.await` and never leaks into other tasks). Scopes
//! nest: a new scope starts from the current one and its own values win.
//!
//! ```
//! use loggier_core::context::{self, Scope};
//!
//! let _guard = Scope::new().field("job", "nightly").enter();
//! {
//!     let _inner = Scope::new().field("step", 2).enter();
//!     let frame = context::current().expect("inside a scope");
//!     assert_eq!(frame.fields()["job"], "nightly");
//!     assert_eq!(frame.fields()["step"], 2);
//! }
//! assert!(context::current().expect("outer scope").fields().get("step").is_none());
//! ```
//!
//! Merge order for a record: global fields < scope fields (outer < inner) < the call's
//! own fields. The merge happens on the worker thread; the caller only clones an `Arc`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use crate::record::Fields;

mod endpoint;
mod request;
mod request_id;
pub use endpoint::{EndpointOptions, EndpointSlot, set_endpoint_options};
pub use request::RequestContext;
pub(crate) use request_id::RequestId;

/// Finds the route template of a request frame whose route is resolved on first use
/// ([`Exchange::defer_route`](crate::http::Exchange::defer_route)): `Some(route)` when
/// it can answer on this thread now (`Some(None)`: the request matches no route),
/// `None` when it cannot (asked again later).
pub type RouteResolver = fn(&ScopeFrame) -> Option<Option<Arc<str>>>;

/// A frame's route template: none, known, or resolved on first use.
#[derive(Clone, Default)]
enum Route {
    #[default]
    None,
    Known(Arc<str>),
    /// Only HTTP capture defers a route.
    #[cfg_attr(not(feature = "http-capture"), allow(dead_code))]
    Later {
        resolved: OnceLock<Option<Arc<str>>>,
        resolve: RouteResolver,
    },
}

impl Route {
    fn get(&self) -> Option<&Arc<str>> {
        match self {
            Route::None => None,
            Route::Known(route) => Some(route),
            Route::Later { resolved, .. } => resolved.get().and_then(Option::as_ref),
        }
    }
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Route::Later { resolved, .. } if resolved.get().is_none() => f.write_str("Later"),
            route => route.get().fmt(f),
        }
    }
}

impl PartialEq for Route {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// The resolved values of the innermost scope, flattened with its parents' values
/// (computed once when the scope is entered, not per record).
///
/// Frames are shared as `Arc<ScopeFrame>`. Cloning the frame itself copies its
/// values; the endpoint slot of a request frame (see
/// [`endpoint_slot`](Self::endpoint_slot)) is copied as a snapshot: the clone holds the
/// options set so far, and options set later on either copy are not seen by the other.
/// Clone the `Arc` to share the request's slot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScopeFrame {
    fields: Fields,
    /// Inline for a generated (UUID) id: no allocation of its own.
    request_id: Option<RequestId>,
    trace_id: Option<String>,
    span_id: Option<String>,
    /// Shared with the middleware's route memo and the request's exchange; an HTTP
    /// adapter may have it resolved on first use.
    route: Route,
    tags: Vec<String>,
    /// The request's endpoint slot, when the scope belongs to a captured request.
    endpoint: Endpoint,
}

/// Where a frame's endpoint slot lives. The frame of an HTTP request holds its slot
/// inline (one allocation for the frame and the slot); scopes nested in it point at
/// that frame.
#[derive(Debug, Default, PartialEq)]
enum Endpoint {
    /// Not a request scope.
    #[default]
    None,
    /// The slot lives in this frame: the frame of a captured HTTP request.
    #[cfg_attr(not(feature = "http-capture"), allow(dead_code))]
    Own(EndpointSlot),
    /// A slot given with [`Scope::endpoint_slot`].
    Shared(Arc<EndpointSlot>),
    /// The slot of an enclosing frame (one holding it as [`Endpoint::Own`]).
    Frame(Arc<ScopeFrame>),
}

impl Endpoint {
    fn slot(&self) -> Option<&EndpointSlot> {
        match self {
            Endpoint::None => None,
            Endpoint::Own(slot) => Some(slot),
            Endpoint::Shared(slot) => Some(slot),
            Endpoint::Frame(frame) => frame.endpoint.slot(),
        }
    }

    /// The endpoint of a frame nested in `parent` (which holds this endpoint).
    fn inherited(&self, parent: &Arc<ScopeFrame>) -> Endpoint {
        match self {
            Endpoint::None => Endpoint::None,
            Endpoint::Own(_) => Endpoint::Frame(Arc::clone(parent)),
            Endpoint::Shared(slot) => Endpoint::Shared(Arc::clone(slot)),
            Endpoint::Frame(frame) => Endpoint::Frame(Arc::clone(frame)),
        }
    }
}

impl Clone for Endpoint {
    /// A clone of an inline slot is a snapshot: it holds the options set so far, and
    /// later ones set on either copy are not seen by the other. (Nested scopes do not
    /// clone it: they point at the request's frame.)
    fn clone(&self) -> Self {
        match self {
            Endpoint::None => Endpoint::None,
            Endpoint::Own(slot) => Endpoint::Own(slot.snapshot()),
            Endpoint::Shared(slot) => Endpoint::Shared(Arc::clone(slot)),
            Endpoint::Frame(frame) => Endpoint::Frame(Arc::clone(frame)),
        }
    }
}

impl ScopeFrame {
    /// Context fields, outer scopes first, inner values winning.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }
    /// Request id, when a scope set one.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_ref().map(RequestId::as_str)
    }
    /// W3C trace id (32 hex chars), when a scope set one.
    pub fn trace_id(&self) -> Option<&str> {
        self.trace_id.as_deref()
    }
    /// W3C span id (16 hex chars), when a scope set one.
    pub fn span_id(&self) -> Option<&str> {
        self.span_id.as_deref()
    }
    /// Route template of the current HTTP request, when a scope set one.
    ///
    /// A route resolved on first use ([`Exchange::defer_route`](crate::http::Exchange::defer_route))
    /// is `None` until [`current`] returned this frame on the thread serving the
    /// request (every record logged there does) or the adapter set it.
    pub fn route(&self) -> Option<&str> {
        self.route.get().map(|r| &**r)
    }

    /// Resolves a route deferred with [`Exchange::defer_route`](crate::http::Exchange::defer_route),
    /// when it is still open and its resolver can answer here.
    fn resolve_route(&self) {
        if let Route::Later { resolved, resolve } = &self.route {
            if resolved.get().is_none() {
                if let Some(route) = resolve(self) {
                    let _ = resolved.set(route);
                }
            }
        }
    }

    /// Gives a deferred route its answer (the first answer stays); nothing for a frame
    /// whose route is not deferred.
    #[cfg(feature = "http-capture")]
    pub(crate) fn settle_route(&self, route: &Arc<str>) {
        if let Route::Later { resolved, .. } = &self.route {
            let _ = resolved.set(Some(Arc::clone(route)));
        }
    }

    /// Makes the route of a frame nobody else holds yet resolved on first use.
    #[cfg(feature = "http-capture")]
    pub(crate) fn defer_route(&mut self, resolve: RouteResolver) {
        self.route = Route::Later {
            resolved: OnceLock::new(),
            resolve,
        };
    }
    /// Tags, outer scopes first.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    /// The endpoint slot of the HTTP request this scope belongs to (set by the
    /// middleware), when there is one. The slot of a request captured by a Loggier
    /// middleware lives inside the request's frame; keep an `Arc<ScopeFrame>` to hold
    /// on to it.
    pub fn endpoint_slot(&self) -> Option<&EndpointSlot> {
        self.endpoint.slot()
    }
    /// The [`EndpointOptions`] the request's handler set (`#[track_endpoint]`), once it
    /// started.
    pub fn endpoint(&self) -> Option<&'static EndpointOptions> {
        self.endpoint.slot().and_then(EndpointSlot::get)
    }

    /// The frame of an HTTP request (what [`Exchange`](crate::http::Exchange) builds):
    /// `request_id` and the caller's trace ids over `parent` (the scope current when
    /// the request arrived; none: a request outside any scope), a new endpoint slot
    /// inside the frame — one allocation for both once shared — and the route of
    /// `parent`. Not yet shared: the caller may still set its route.
    #[cfg(feature = "http-capture")]
    pub(crate) fn request_in(
        parent: Option<&ScopeFrame>,
        request_id: RequestId,
        trace: Option<(String, String)>,
    ) -> Self {
        let mut frame = match parent {
            None => ScopeFrame::default(),
            Some(parent) => ScopeFrame {
                fields: parent.fields.clone(),
                request_id: None,
                trace_id: parent.trace_id.clone(),
                span_id: parent.span_id.clone(),
                route: parent.route.clone(),
                tags: parent.tags.clone(),
                endpoint: Endpoint::None,
            },
        };
        frame.request_id = Some(request_id);
        if let Some((trace_id, span_id)) = trace {
            frame.trace_id = Some(trace_id);
            frame.span_id = Some(span_id);
        }
        frame.endpoint = Endpoint::Own(EndpointSlot::new());
        frame
    }

    /// Sets the route of a frame nobody else holds yet (see [`ScopeFrame::request`]).
    #[cfg(feature = "http-capture")]
    pub(crate) fn set_route(&mut self, route: Arc<str>) {
        self.route = Route::Known(route);
    }
}

thread_local! {
    static SYNC_STACK: RefCell<Vec<Arc<ScopeFrame>>> = const { RefCell::new(Vec::new()) };
    /// The request served on this thread whose frame is built on first use (see
    /// [`in_request_frame`]).
    static FRAME_SOURCE: Cell<Option<FrameSource>> = const { Cell::new(None) };
}

/// Gives the scope frame of the request being served on this thread, building it
/// the first time it is asked for (later calls hand out the same frame); `None` when
/// it cannot (no request served here). See [`in_request_frame`]. It must not call
/// [`current`] (which asks it).
pub type FrameSource = fn() -> Option<Arc<ScopeFrame>>;

/// Runs `call` — the call of a request's handler service or one poll of its future —
/// with the request's frame as the current scope, as [`instrument_request`] does,
/// except that the frame is only built, by `source`, when something asks for it
/// ([`current`]: a record logged, a nested scope, `#[track_endpoint]`, an
/// extractor). A request whose handler looks at no context builds no frame.
///
/// The request's frame ranks below scopes entered or instrumented inside `call`
/// (they are nested in the request) and above a task scope that was active before
/// (the request is nested in that one): when a task scope is active at the start,
/// the frame is built at once and set over it, as a task-local.
///
/// Meant for a request that arrived outside any scope (its frame has no values to
/// inherit); HTTP middleware falls back to [`instrument_request`] otherwise.
pub fn in_request_frame<R>(source: FrameSource, call: impl FnOnce() -> R) -> R {
    /// Puts the previous source back, also when `call` unwinds.
    struct Restore(Option<FrameSource>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = FRAME_SOURCE.try_with(|s| s.set(self.0));
        }
    }
    if TASK_SCOPE.try_with(|_| ()).is_ok() {
        return match source() {
            Some(frame) => TASK_SCOPE.sync_scope(frame, call),
            None => call(),
        };
    }
    let _restore = FRAME_SOURCE
        .try_with(|s| s.replace(Some(source)))
        .ok()
        .map(Restore);
    call()
}

tokio::task_local! {
    static TASK_SCOPE: Arc<ScopeFrame>;
}

/// The innermost scope active here: the innermost [`ScopeGuard`] on this thread, else
/// the task-local scope of the running future, else the frame of the request served
/// on this thread ([`in_request_frame`]; built now if it was not yet), else `None`.
///
/// A route the frame's HTTP adapter resolves on first use is resolved here (on the
/// thread serving the request), so records and nested scopes made from the returned
/// frame carry it.
pub fn current() -> Option<Arc<ScopeFrame>> {
    let sync = SYNC_STACK
        .try_with(|s| s.borrow().last().cloned())
        .ok()
        .flatten();
    let frame = sync
        .or_else(|| TASK_SCOPE.try_with(Arc::clone).ok())
        .or_else(|| {
            FRAME_SOURCE
                .try_with(Cell::get)
                .ok()
                .flatten()
                .and_then(|source| source())
        });
    if let Some(f) = &frame {
        f.resolve_route();
    }
    frame
}

/// A set of values to enter as a scope. Build it, then [`enter`](Scope::enter) it
/// (sync) or [`instrument`](Scope::instrument) a future with it (async).
#[derive(Debug, Clone, Default)]
#[must_use = "a scope does nothing until entered or used to instrument a future"]
pub struct Scope {
    frame: ScopeFrame,
}

impl Scope {
    /// An empty scope.
    pub fn new() -> Self {
        Scope::default()
    }

    /// A scope with these fields.
    pub fn with_fields(fields: Fields) -> Self {
        Scope {
            frame: ScopeFrame {
                fields,
                ..ScopeFrame::default()
            },
        }
    }

    /// Adds a field; any `serde::Serialize` value (stored as JSON; `null` if it cannot
    /// be serialized).
    pub fn field(mut self, key: impl Into<String>, value: impl serde::Serialize) -> Self {
        self.frame.fields.insert(
            key.into(),
            serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        );
        self
    }

    /// Adds all `fields`.
    pub fn fields(mut self, fields: Fields) -> Self {
        self.frame.fields.extend(fields);
        self
    }

    /// Sets the request id.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.frame.request_id = Some(RequestId::from(id.into()));
        self
    }

    /// Sets the W3C trace id (32 hex chars) and, optionally, span id (16 hex chars).
    pub fn trace(mut self, trace_id: impl Into<String>, span_id: Option<String>) -> Self {
        self.frame.trace_id = Some(trace_id.into());
        self.frame.span_id = span_id;
        self
    }

    /// Sets the route template of the current request (a `String`, a `&str` or an
    /// `Arc<str>` shared with other requests of the same route).
    pub fn route(mut self, route: impl Into<Arc<str>>) -> Self {
        self.frame.route = Route::Known(route.into());
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.frame.tags.push(tag.into());
        self
    }

    /// Sets the request's endpoint slot, which the request's handler fills with its
    /// [`EndpointOptions`] ([`set_endpoint_options`]). HTTP middleware sets it (see
    /// `loggier_core::http::Exchange::scope`); nested scopes share their parent's.
    pub fn endpoint_slot(mut self, slot: Arc<EndpointSlot>) -> Self {
        self.frame.endpoint = Endpoint::Shared(slot);
        self
    }

    /// Shares the endpoint slot of `frame` (a request frame holding its slot inline).
    #[cfg(feature = "http-capture")]
    pub(crate) fn endpoint_of(mut self, frame: &Arc<ScopeFrame>) -> Self {
        self.frame.endpoint = frame.endpoint.inherited(frame);
        self
    }

    /// Flattens this scope over the current one.
    fn resolve(self) -> Arc<ScopeFrame> {
        let own = self.frame;
        match current() {
            None => Arc::new(own),
            Some(parent) => {
                let mut f = (*parent).clone();
                f.fields.extend(own.fields);
                f.tags.extend(own.tags);
                f.request_id = own.request_id.or(f.request_id);
                if own.trace_id.is_some() {
                    f.trace_id = own.trace_id;
                    f.span_id = own.span_id;
                }
                if !matches!(own.route, Route::None) {
                    f.route = own.route;
                }
                f.endpoint = match own.endpoint {
                    Endpoint::None => parent.endpoint.inherited(&parent),
                    own => own,
                };
                Arc::new(f)
            }
        }
    }

    /// Resolves this scope against the current one now, into a frame that can be
    /// entered many times with [`enter_frame`] / [`instrument_frame`] (HTTP middleware
    /// enters the same request frame around every poll of a response body).
    pub fn into_frame(self) -> Arc<ScopeFrame> {
        self.resolve()
    }

    /// Enters the scope on this thread until the guard drops.
    ///
    /// Do not hold the guard across `.await`: use [`Scope::instrument`] for async code.
    /// (The guard is `!Send`, so a `Send` future cannot hold it anyway.)
    pub fn enter(self) -> ScopeGuard {
        enter_frame(&self.resolve())
    }

    /// Wraps `fut` so that the scope is active whenever it is polled (a tokio
    /// task-local). The scope is resolved against the current one now, when
    /// `instrument` is called.
    pub fn instrument<F: Future>(self, fut: F) -> Scoped<F> {
        instrument_frame(self.resolve(), fut)
    }
}

/// Enters an already resolved `frame` (from [`Scope::into_frame`]) on this thread until
/// the guard drops. One `Arc` clone and a push; meant for short synchronous regions
/// such as one `poll` of a body.
pub fn enter_frame(frame: &Arc<ScopeFrame>) -> ScopeGuard {
    let depth = SYNC_STACK
        .try_with(|s| {
            let mut s = s.borrow_mut();
            s.push(Arc::clone(frame));
            s.len()
        })
        .unwrap_or(0);
    ScopeGuard {
        depth,
        _not_send: PhantomData,
    }
}

/// Wraps `fut` so that the already resolved `frame` is active whenever it is polled
/// (a tokio task-local), like [`Scope::instrument`].
pub fn instrument_frame<F: Future>(frame: Arc<ScopeFrame>, fut: F) -> Scoped<F> {
    Scoped {
        inner: TASK_SCOPE.scope(frame, fut),
        otel: OtelSlot::default(),
    }
}

/// The OpenTelemetry context a [`Scoped`] attaches around each poll
/// ([`instrument_request`]); nothing without the `opentelemetry` feature.
#[cfg(feature = "opentelemetry")]
type OtelSlot = Option<opentelemetry::Context>;
#[cfg(not(feature = "opentelemetry"))]
type OtelSlot = ();

/// Runs `call` — which creates a request handler's future — inside the already
/// resolved request `frame`, and wraps the future it returns so that `frame` is
/// active whenever it is polled, like [`instrument_frame`]. The framework middleware
/// enters every request scope with it.
///
/// With the `opentelemetry` feature, the OpenTelemetry parent context of the frame
/// (`loggier_core::otel::parent_context`: the caller's span from the
/// incoming `traceparent`) is attached too, during `call` and during every poll, so
/// spans the handler starts are children of the caller's span. Without that feature,
/// or when the frame has no trace ids, nothing OpenTelemetry-related happens.
pub fn instrument_request<F: Future>(
    frame: Arc<ScopeFrame>,
    call: impl FnOnce() -> F,
) -> Scoped<F> {
    // The remote span context is parsed once per request, and only when the frame
    // has trace ids.
    #[cfg(feature = "opentelemetry")]
    let otel = crate::otel::remote_span_context(&frame).map(|sc| {
        use opentelemetry::trace::TraceContextExt as _;
        opentelemetry::Context::current().with_remote_span_context(sc)
    });
    let fut = {
        let _scope = enter_frame(&frame);
        #[cfg(feature = "opentelemetry")]
        let _otel = otel.clone().map(opentelemetry::Context::attach);
        call()
    };
    let scoped = instrument_frame(frame, fut);
    #[cfg(feature = "opentelemetry")]
    let scoped = Scoped { otel, ..scoped };
    scoped
}

/// Keeps a [`Scope`] entered on the current thread; leaving happens on drop.
#[derive(Debug)]
#[must_use = "the scope is left as soon as the guard is dropped"]
pub struct ScopeGuard {
    depth: usize,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        let depth = self.depth;
        let _ = SYNC_STACK.try_with(|s| {
            // Guards normally drop in reverse order; truncating also repairs the stack
            // when an outer guard is dropped first.
            s.borrow_mut().truncate(depth.saturating_sub(1));
        });
    }
}

pin_project_lite::pin_project! {
    /// A future with a [`Scope`] attached; see [`Scope::instrument`].
    #[must_use = "futures do nothing unless polled"]
    pub struct Scoped<F: Future> {
        #[pin]
        inner: tokio::task::futures::TaskLocalFuture<Arc<ScopeFrame>, F>,
        otel: OtelSlot,
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        #[cfg(feature = "opentelemetry")]
        let _otel = this.otel.clone().map(opentelemetry::Context::attach);
        #[cfg(not(feature = "opentelemetry"))]
        let () = *this.otel;
        this.inner.poll(cx)
    }
}

impl<F: Future + std::fmt::Debug> std::fmt::Debug for Scoped<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_sync_scopes_flatten_and_unwind() {
        assert!(current().is_none());
        let g1 = Scope::new().field("a", 1).request_id("r1").enter();
        let g2 = Scope::new().field("a", 2).field("b", true).tag("t").enter();
        let f = current().expect("scope");
        assert_eq!(f.fields()["a"], 2);
        assert_eq!(f.fields()["b"], true);
        assert_eq!(f.request_id(), Some("r1"));
        assert_eq!(f.tags(), ["t".to_string()]);
        drop(g2);
        assert_eq!(current().expect("scope").fields()["a"], 1);
        drop(g1);
        assert!(current().is_none());
    }

    #[test]
    fn a_frame_can_be_entered_repeatedly() {
        let frame = Scope::new().request_id("r7").route("/a/{id}").into_frame();
        for _ in 0..3 {
            let g = enter_frame(&frame);
            assert_eq!(current().expect("scope").request_id(), Some("r7"));
            drop(g);
            assert!(current().is_none());
        }
    }

    #[tokio::test]
    async fn a_request_frame_is_active_while_the_handler_is_created_and_polled() {
        let frame = Scope::new().request_id("req-3").into_frame();
        let fut = instrument_request(frame, || {
            let at_call = current().and_then(|f| f.request_id().map(str::to_string));
            async move {
                tokio::task::yield_now().await;
                let at_poll = current().and_then(|f| f.request_id().map(str::to_string));
                (at_call, at_poll)
            }
        });
        assert!(current().is_none(), "left after the call");
        let (at_call, at_poll) = fut.await;
        assert_eq!(at_call.as_deref(), Some("req-3"));
        assert_eq!(at_poll.as_deref(), Some("req-3"));
        assert!(current().is_none());
    }

    thread_local! {
        static BUILT: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
        static REQUEST: Arc<ScopeFrame> = Scope::new().request_id("lazy-1").into_frame();
    }

    /// A [`FrameSource`] that counts how often it is asked.
    fn lazy_source() -> Option<Arc<ScopeFrame>> {
        BUILT.with(|b| b.set(b.get() + 1));
        Some(REQUEST.with(Arc::clone))
    }

    fn current_id() -> Option<String> {
        current().and_then(|f| f.request_id().map(str::to_string))
    }

    #[tokio::test]
    async fn a_lazy_request_frame_is_built_only_when_asked_and_ranks_below_nested_scopes() {
        BUILT.with(|b| b.set(0));
        // Built outside: a source must not build its frame through `current`.
        REQUEST.with(|_| ());
        in_request_frame(lazy_source, || ());
        assert_eq!(BUILT.with(std::cell::Cell::get), 0, "nobody asked");
        let seen = in_request_frame(lazy_source, || {
            let own = current_id();
            let nested = {
                let _g = Scope::new().request_id("inner").enter();
                current_id()
            };
            (own, nested)
        });
        assert_eq!(seen, (Some("lazy-1".into()), Some("inner".into())));
        assert!(current().is_none(), "left after the call");

        // A nested task scope (instrumented inside the handler) wins while polled.
        let nested = in_request_frame(lazy_source, || {
            Scope::new().field("k", 1).instrument(async { current() })
        })
        .await
        .expect("nested scope");
        assert_eq!(nested.request_id(), Some("lazy-1"), "inherits the request");
        assert_eq!(nested.fields()["k"], 1);

        // A task scope active before (outside the request) ranks below it.
        let outer = Scope::new()
            .request_id("outer")
            .instrument(async { in_request_frame(lazy_source, current_id) });
        assert_eq!(outer.await.as_deref(), Some("lazy-1"));
        assert!(current().is_none());
    }

    #[tokio::test]
    async fn task_scope_survives_await() {
        let out = Scope::new()
            .request_id("req-9")
            .instrument(async {
                tokio::task::yield_now().await;
                current().and_then(|f| f.request_id().map(str::to_string))
            })
            .await;
        assert_eq!(out.as_deref(), Some("req-9"));
        assert!(current().is_none());
    }
}
