//! [`ResponseFuture`]: the inner service's future, polled inside the request scope.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Response, header::CONTENT_TYPE};
use http_body::Body;
use loggier_core::Exception;
use loggier_core::context::{Scoped, in_request_frame};
use loggier_core::http::{PanicCapture, header_entries};

use crate::HandlerPanic;
use crate::body::{HeaderSnapshot, Pending, ResponseBody, keeps_headers};
use crate::service::{first_value, handler_frame, serving};

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F: Future> {
        Passthrough { #[pin] fut: F },
        // The inner future runs inside the request's frame.
        Captured { #[pin] fut: Scoped<F> },
        // The inner future runs inside the request's frame built on first use
        // (`context::in_request_frame` around every poll).
        Deferred { #[pin] fut: F },
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`LoggierService`](crate::LoggierService).
    ///
    /// Polls the inner future inside the request's [`Scope`](loggier_core::context::Scope)
    /// (request id, trace ids, route), so records logged by the handler carry them.
    /// When the response arrives it notes the status, echoes the request id header and
    /// wraps the body in a [`ResponseBody`]. When the inner service fails, the failure
    /// is recorded at error level. When the future is dropped before it finished —
    /// the client went away, or the handler panicked and the stack is unwinding — the
    /// request is finished then (a panic is recorded with its message and backtrace).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F: Future> {
        #[pin]
        kind: Kind<F>,
        pending: Option<Box<Pending>>,
    }

    impl<F: Future> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().pending.take() {
                pending.finish(true);
            }
        }
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn passthrough(fut: F) -> Self {
        ResponseFuture {
            kind: Kind::Passthrough { fut },
            pending: None,
        }
    }

    pub(crate) fn captured(fut: Scoped<F>, pending: Box<Pending>) -> Self {
        ResponseFuture {
            kind: Kind::Captured { fut },
            pending: Some(pending),
        }
    }

    /// A future whose inner future runs in the request's frame built on first use,
    /// its [`Pending`] given with [`set_pending`](Self::set_pending) (so the future
    /// can be built where the inner one is returned, not moved there later).
    pub(crate) fn deferred(fut: F) -> Self {
        ResponseFuture {
            kind: Kind::Deferred { fut },
            pending: None,
        }
    }

    /// Gives the future its request's state.
    pub(crate) fn set_pending(&mut self, pending: Box<Pending>) {
        self.pending = Some(pending);
    }
}

impl<F: Future> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("captured", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    E: fmt::Display,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let output = match this.kind.project() {
            KindProj::Passthrough { fut } => {
                let out = ready!(fut.poll(cx));
                return Poll::Ready(out.map(|r| r.map(ResponseBody::passthrough)));
            }
            KindProj::Captured { fut } => {
                let _panics = PanicCapture::enter();
                match this.pending.as_deref().filter(|p| p.serving) {
                    Some(p) => ready!(serving(p, || fut.poll(cx))),
                    None => ready!(fut.poll(cx)),
                }
            }
            KindProj::Deferred { fut } => {
                let _panics = PanicCapture::enter();
                match this.pending.as_deref() {
                    Some(p) => ready!(serving(p, || {
                        in_request_frame(handler_frame, || fut.poll(cx))
                    })),
                    None => ready!(fut.poll(cx)),
                }
            }
        };
        let Some(mut pending) = this.pending.take() else {
            // Only reachable when polled again after completion, which callers must
            // not do; pass the output through rather than panic.
            return Poll::Ready(output.map(|r| r.map(ResponseBody::passthrough)));
        };
        match output {
            Ok(mut response) => {
                if let Some(p) = response.extensions_mut().remove::<HandlerPanic>() {
                    pending
                        .exchange
                        .set_panic(p.message().to_string(), p.backtrace());
                }
                let status = response.status().as_u16();
                let tee = pending.exchange.on_response(
                    status,
                    first_value(response.headers(), &CONTENT_TYPE).map(HeaderValue::as_bytes),
                );
                // A request sure to be recorded has its headers turned into text
                // once the echo is in. Else a snapshot is kept before the request id
                // is echoed: the echoed value is the request id itself, so the
                // snapshot only notes where it goes instead of sharing (and so
                // re-allocating) its bytes.
                let keep = keeps_headers(pending.exchange.settings(), &pending.loggier);
                let body_streams = response.body().size_hint().exact().is_none();
                let mut response_headers = (!keep
                    && pending.exchange.wants_response_headers_copy(body_streams))
                .then(|| Box::new(HeaderSnapshot::of(response.headers())));
                let header = pending.exchange.settings().request_id_header().clone();
                let echo = match pending.echo.take() {
                    Some(v) => Some(v),
                    None => {
                        HeaderValue::from_maybe_shared(pending.exchange.request_id_bytes()).ok()
                    }
                };
                if let Some(v) = echo {
                    if let Some(snapshot) = response_headers.as_mut() {
                        snapshot.echo(header.clone());
                        // The snapshot's echoed value, for the record (a reference
                        // count: its bytes are shared).
                        pending.echo = Some(v.clone());
                    }
                    response.headers_mut().insert(header, v);
                }
                if keep {
                    pending
                        .exchange
                        .keep_response_headers(header_entries(response.headers()));
                }
                let empty = response.body().is_end_stream();
                pending.tee = tee;
                pending.response_headers = response_headers;
                Poll::Ready(Ok(
                    response.map(|b| ResponseBody::captured(b, pending, empty))
                ))
            }
            Err(e) => {
                pending
                    .exchange
                    .set_error(Exception::new(std::any::type_name::<E>(), e.to_string()));
                pending.finish(false);
                Poll::Ready(Err(e))
            }
        }
    }
}
