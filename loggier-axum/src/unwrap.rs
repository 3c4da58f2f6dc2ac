//! Hands axum's router its own body type back when the Loggier layer copies nothing.

use std::task::{Context, Poll};

use axum::body::Body;
use http::Request;
use loggier_tower::RequestBody;
use tower_layer::Layer;
use tower_service::Service;

/// Layer of [`PlainBody`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PlainBodyLayer;

impl<S> Layer<S> for PlainBodyLayer {
    type Service = PlainBody<S>;

    fn layer(&self, inner: S) -> PlainBody<S> {
        PlainBody(inner)
    }
}

/// Between the Loggier layer and an axum route: a request body the layer does not
/// copy is unwrapped back to the `Body` it was (axum would otherwise box the
/// wrapper into a new `Body`, one allocation and one indirection per request); a
/// body being copied is boxed as axum would.
#[derive(Debug, Clone)]
pub(crate) struct PlainBody<S>(S);

impl<S> Service<Request<RequestBody<Body>>> for PlainBody<S>
where
    S: Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RequestBody<Body>>) -> S::Future {
        self.0
            .call(req.map(|b| b.into_inner().unwrap_or_else(Body::new)))
    }
}
