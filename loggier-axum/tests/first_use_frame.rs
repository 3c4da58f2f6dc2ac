//! The Loggier layer builds a request's scope frame only when something asks for it
//! (a record logged by the handler, here). Records logged by the handler — before and
//! after an `.await` — still carry the request id (given or generated: the one
//! echoed on the response), the route template and, when a `traceparent` came in,
//! the caller's trace id; also when an outer middleware runs the request inside a
//! task scope of its own, around the whole call or only around the polls of the
//! response future. With the `opentelemetry` feature the handler runs with the
//! caller's span as its OpenTelemetry parent. Real server on 127.0.0.1:0.

use std::task::{Context, Poll};

use axum::Router;
use axum::extract::Request;
use axum::middleware::{Next, from_fn};
use axum::response::Response;
use axum::routing::get;
use loggier_axum::LoggierRouterExt;
use loggier_core::Loggier;
use loggier_core::context::{Scope, Scoped};
use loggier_test_support::scenarios::new_id;
use loggier_test_support::{Records, http_client, is_transaction, request_id, test_client};
use tower_layer::Layer;
use tower_service::Service;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const ROUTE: &str = "/orders/{id}";

/// The trace id of the OpenTelemetry span the handler runs under (the caller's,
/// attached by the layer), or `none`.
fn otel_parent() -> String {
    #[cfg(feature = "opentelemetry")]
    {
        use opentelemetry::trace::TraceContextExt as _;
        let cx = opentelemetry::Context::current();
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            return sc.trace_id().to_string();
        }
    }
    String::from("none")
}

fn routes(log: &Loggier) -> Router {
    let handler_log = log.clone();
    Router::new()
        .route(
            ROUTE,
            get(move || {
                let log = handler_log.clone();
                async move {
                    log.info("before the await");
                    tokio::task::yield_now().await;
                    log.info("after the await");
                    otel_parent()
                }
            }),
        )
        .with_loggier(log.clone())
}

/// An outer middleware running the rest of the request inside a task scope.
async fn outer_scope(req: Request, next: Next) -> Response {
    Scope::new()
        .field("outer", "from_fn")
        .instrument(next.run(req))
        .await
}

/// An outer service whose call runs outside any scope and whose response future
/// is polled inside a task scope.
#[derive(Clone)]
struct PollScope<S>(S);

impl<S, B> Service<http::Request<B>> for PollScope<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Scoped<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let fut = self.0.call(req);
        Scope::new().field("outer", "poll").instrument(fut)
    }
}

#[derive(Clone, Copy)]
struct PollScopeLayer;

impl<S> Layer<S> for PollScopeLayer {
    type Service = PollScope<S>;

    fn layer(&self, inner: S) -> PollScope<S> {
        PollScope(inner)
    }
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// Sends `GET /orders/7` (with `id` as its request id, if any, and the caller's
/// `traceparent` when `traced`); checks the handler's records and the body. Returns
/// the records of the handler.
async fn check(
    base: &str,
    records: &Records,
    id: Option<&str>,
    traced: bool,
) -> Vec<serde_json::Value> {
    let mut req = http_client().get(format!("{base}/orders/7"));
    if let Some(id) = id {
        req = req.header("x-request-id", id);
    }
    if traced {
        req = req.header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"));
    }
    let resp = req.send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let echoed = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    if let Some(id) = id {
        assert_eq!(echoed, id, "the given id is echoed");
    }
    let body = resp.text().await.expect("body");
    let otel = cfg!(feature = "opentelemetry") && traced;
    assert_eq!(body, if otel { TRACE } else { "none" }, "OTel parent");

    let mut seen = Vec::new();
    for msg in ["before the await", "after the await"] {
        let r = records
            .wait_for(msg, |r| {
                r["message"] == msg && request_id(r) == Some(echoed.as_str())
            })
            .await;
        assert!(!is_transaction(&r));
        assert_eq!(r["context"]["route"], ROUTE, "{r}");
        if traced {
            assert_eq!(r["trace_id"], TRACE, "{r}");
        } else {
            assert!(r.get("trace_id").is_none(), "{r}");
        }
        seen.push(r);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_records_carry_the_request_when_the_frame_is_built_on_first_use() {
    let (log, records) = test_client("axum-first-use-frame");
    let base = serve(routes(&log)).await;
    check(&base, &records, Some(&new_id("first-use")), false).await;
    check(&base, &records, None, false).await;
    check(&base, &records, Some(&new_id("first-use-traced")), true).await;
    check(&base, &records, None, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_an_outer_task_scope_the_request_frame_is_nested_in_it() {
    let (log, records) = test_client("axum-first-use-outer");
    let base = serve(routes(&log).layer(from_fn(outer_scope))).await;
    for traced in [false, true] {
        for r in check(&base, &records, Some(&new_id("outer")), traced).await {
            assert_eq!(r["context"]["outer"], "from_fn", "{r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_inside_an_outer_task_scope_the_request_frame_wins() {
    let (log, records) = test_client("axum-first-use-polled");
    let base = serve(routes(&log).layer(PollScopeLayer)).await;
    for traced in [false, true] {
        check(&base, &records, Some(&new_id("polled")), traced).await;
        check(&base, &records, None, traced).await;
    }
}
