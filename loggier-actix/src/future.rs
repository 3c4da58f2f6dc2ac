//! [`ResponseFuture`]: the inner service's future, run inside the request scope, that
//! turns its response into one with a recording [`ResponseBody`].

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::error::InternalError;
use actix_web::{Error, HttpResponse};
use loggier_core::context::{Scoped, in_request_frame};
use loggier_core::http::{PanicCapture, panic_message, take_request_panic};

use crate::body::ResponseBody;
use crate::capture::Pending;

pin_project_lite::pin_project! {
    #[project = InnerProj]
    enum Inner<F: Future> {
        // Excluded path: nothing recorded, no scope.
        Plain { #[pin] fut: F },
        // Recorded path: the inner future runs inside the request scope.
        Recorded { #[pin] fut: Scoped<F> },
        // Recorded path, the request's frame built only if the handler asks for it
        // (`context::in_request_frame` around every poll).
        Lazy { #[pin] fut: F },
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`LoggierMiddleware`](crate::LoggierMiddleware).
    ///
    /// Polls the inner service inside the request's context scope. On its response it
    /// echoes the request id header, notes status, headers and any `actix_web::Error`
    /// for the policy, and wraps the body in a [`ResponseBody`] that emits the record.
    /// An `Err` from the inner service is recorded at once and passed on unchanged
    /// (see [`Loggier`](crate::Loggier)); a panic while polling the handler becomes a
    /// 500 and an error record. When this future is dropped before the inner service
    /// answered (server shutdown, an HTTP/2 stream reset), the request is still
    /// decided on and recorded as aborted, without a response. (actix-web lets an
    /// HTTP/1 handler run to its end after the client left; that request is recorded
    /// when the handler returns.)
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<F: Future> {
        #[pin]
        inner: Inner<F>,
        pending: Option<Pending>,
    }

    impl<F: Future> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(pending) = this.project().pending.take() {
                pending.emit(true);
            }
        }
    }
}

impl<F: Future> ResponseFuture<F> {
    pub(crate) fn passthrough(fut: F) -> Self {
        ResponseFuture {
            inner: Inner::Plain { fut },
            pending: None,
        }
    }

    pub(crate) fn recorded(fut: Scoped<F>, pending: Option<Pending>) -> Self {
        ResponseFuture {
            inner: Inner::Recorded { fut },
            pending,
        }
    }

    pub(crate) fn lazy(fut: F, pending: Option<Pending>) -> Self {
        ResponseFuture {
            inner: Inner::Lazy { fut },
            pending,
        }
    }
}

impl<F: Future> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("recording", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B> Future for ResponseFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<ResponseBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = match this.inner.project() {
            InnerProj::Plain { fut } => Ok(ready!(fut.poll(cx))),
            InnerProj::Recorded { fut } => {
                ready!(poll_handler(this.pending.as_ref(), || fut.poll(cx)))
            }
            InnerProj::Lazy { fut } => ready!(poll_handler(this.pending.as_ref(), || {
                in_request_frame(crate::capture::request_frame, || fut.poll(cx))
            })),
        };
        let result = match polled {
            Ok(result) => result,
            // The inner future is never polled again: this future is done.
            Err(payload) => return Poll::Ready(Err(panicked(this.pending, &*payload))),
        };
        // Worked on in place: moved out only when it is recorded or carried further.
        let slot = this.pending;
        let Some(pending) = slot.as_mut() else {
            // Excluded path: pass everything through untouched.
            return Poll::Ready(
                result.map(|res| res.map_body(|_, body| ResponseBody::new(body, None))),
            );
        };
        let mut res = match result {
            Ok(res) => res,
            Err(mut err) => {
                // actix builds the response from the error after this middleware; a
                // response mapper puts the request id on it.
                if let Some((name, value)) = pending.echo_header() {
                    err.add_response_mapper(move |mut res| {
                        res.headers_mut().insert(name.clone(), value.clone());
                        res
                    });
                }
                if let Some(pending) = slot.take() {
                    pending.on_service_error(&err);
                }
                return Poll::Ready(Err(err));
            }
        };
        if let Some((name, value)) = pending.echo_header() {
            res.headers_mut().insert(name, value);
        }
        let size = res.response().body().size();
        let status = res.status().as_u16();
        pending.note_response(status, res.response().error());
        let (request, response) = res.into_parts();
        let response = response.map_body(|head, body| {
            // A sized body complete in memory ends when its bytes are handed over:
            // decided now, with the response at hand, and not wrapped.
            let body = if matches!(size, BodySize::Sized(_)) {
                match body.try_into_bytes() {
                    Ok(bytes) => {
                        Pending::on_complete_body(slot, &request, &head.headers, &bytes);
                        return ResponseBody::complete(bytes);
                    }
                    Err(body) => body,
                }
            } else {
                body
            };
            let pending = slot.take().map(|mut pending| {
                pending.on_response(status, &head.headers);
                pending.keep_for_body(&request, &head.headers, matches!(size, BodySize::Stream));
                Box::new(pending)
            });
            ResponseBody::new(body, pending)
        });
        Poll::Ready(Ok(ServiceResponse::new(request, response)))
    }
}

/// One poll of the inner service's future (`poll`), with `pending` as the request
/// served on this thread (a record logged there finds its route:
/// `capture::resolve_route`) and panics caught: `Err` holds a panic's payload.
fn poll_handler<T>(
    pending: Option<&Pending>,
    poll: impl FnOnce() -> Poll<T>,
) -> Poll<Result<T, Box<dyn std::any::Any + Send>>> {
    let region = PanicCapture::enter();
    let poll = || panic::catch_unwind(AssertUnwindSafe(poll));
    let polled = match pending {
        Some(pending) => crate::capture::serving(pending, poll),
        None => poll(),
    };
    drop(region);
    match polled {
        Ok(Poll::Pending) => Poll::Pending,
        Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
        Err(payload) => Poll::Ready(Err(payload)),
    }
}

/// The handler panicked while polled: records the panic (message and backtrace from
/// the request panic hook when it ran, else the payload's text) and answers 500 with
/// the request id, like a handler error would.
fn panicked(pending: &mut Option<Pending>, payload: &(dyn std::any::Any + Send)) -> Error {
    let (message, backtrace) = match take_request_panic() {
        Some(p) => (p.message, Some(p.backtrace)),
        None => (panic_message(payload), None),
    };
    let mut response = HttpResponse::InternalServerError();
    response.content_type("text/plain; charset=utf-8");
    if let Some(pending) = pending.take() {
        if let Some(header) = pending.echo_header() {
            response.insert_header(header);
        }
        pending.on_panic(message, backtrace.as_ref());
    }
    InternalError::from_response("handler panicked", response.body("internal server error")).into()
}
