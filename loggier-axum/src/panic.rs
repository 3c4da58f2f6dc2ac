//! [`CatchPanicLayer`]: a panicking handler answers 500 instead of dropping the
//! connection, and the Loggier layer records the panic.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use http::{HeaderValue, Request, StatusCode, header::CONTENT_TYPE};
use loggier_core::http::{PanicCapture, panic_message, take_request_panic};
use loggier_tower::HandlerPanic;
use tower_layer::Layer;
use tower_service::Service;

/// Catches panics of the inner service — in `call` or while its future is polled —
/// and answers `500 Internal Server Error` (`text/plain`) instead, with a
/// [`HandlerPanic`] response extension carrying the panic message and backtrace for
/// the outer Loggier layer. The service keeps running.
///
/// Put it *inside* the Loggier layer (`router.layer(CatchPanicLayer).layer(loggier)`;
/// [`LoggierRouterExt`](crate::LoggierRouterExt) does this). A panic in a streaming
/// response body is not caught here: it ends that response, and the Loggier layer
/// still records it when the body is dropped.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;

    fn layer(&self, inner: S) -> CatchPanic<S> {
        loggier_core::http::install_request_panic_hook();
        CatchPanic { inner }
    }
}

/// The service of [`CatchPanicLayer`].
#[derive(Debug, Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for CatchPanic<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = CatchPanicFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let called = {
            let _region = PanicCapture::enter();
            catch_unwind(AssertUnwindSafe(|| self.inner.call(req)))
        };
        match called {
            Ok(fut) => CatchPanicFuture {
                kind: Kind::Running { fut },
            },
            Err(payload) => CatchPanicFuture {
                kind: Kind::Panicked {
                    response: Some(panic_response(payload.as_ref())),
                },
            },
        }
    }
}

pin_project_lite::pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Running { #[pin] fut: F },
        Panicked { response: Option<Response> },
    }
}

pin_project_lite::pin_project! {
    /// Response future of [`CatchPanic`].
    #[must_use = "futures do nothing unless polled"]
    pub struct CatchPanicFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

impl<F> std::fmt::Debug for CatchPanicFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatchPanicFuture").finish_non_exhaustive()
    }
}

impl<F, E> Future for CatchPanicFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let response = match this.kind.as_mut().project() {
            KindProj::Running { fut } => {
                let polled = {
                    let _region = PanicCapture::enter();
                    catch_unwind(AssertUnwindSafe(|| fut.poll(cx)))
                };
                match polled {
                    Ok(poll) => return poll,
                    Err(payload) => panic_response(payload.as_ref()),
                }
            }
            KindProj::Panicked { response } => match response.take() {
                Some(r) => r,
                None => plain_500(),
            },
        };
        // The panicked future must not be polled again.
        this.kind.set(Kind::Panicked { response: None });
        Poll::Ready(Ok(response))
    }
}

fn plain_500() -> Response {
    let mut resp = Response::new(Body::from("Internal Server Error"));
    *resp.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The 500 for a caught panic, carrying what the hook captured (or, if it did not
/// run, the payload's message).
fn panic_response(payload: &(dyn std::any::Any + Send)) -> Response {
    let panic = match take_request_panic() {
        Some(p) => HandlerPanic::new(p.message, Some(p.backtrace)),
        None => HandlerPanic::new(panic_message(payload), None),
    };
    let mut resp = plain_500();
    resp.extensions_mut().insert(panic);
    resp
}
