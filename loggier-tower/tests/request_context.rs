//! Where a handler finds its request's `RequestContext`: the request extension (the
//! default), or — with `context_extension(false)`, as `loggier-axum` sets it —
//! `loggier_tower::request_context()` on the thread polling the handler. Either way
//! it is the request's id and logs through the layer's client; excluded paths and
//! code outside a request get none. A plain hyper 1 server on 127.0.0.1:0.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use loggier_core::Loggier;
use loggier_core::http::CaptureSettings;
use loggier_test_support::scenarios::new_id;
use loggier_test_support::{http_client, test_client};
use loggier_tower::{LoggierLayer, RequestBody, RequestContext, request_context};
use tower::{ServiceBuilder, service_fn};

/// `ext=<id or ->;lazy=<id or ->`, after logging "context record" through whichever
/// context the handler found (after an await, so on a later poll).
async fn handler(req: Request<RequestBody<Incoming>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let ext = req.extensions().get::<RequestContext>().cloned();
    tokio::task::yield_now().await;
    let lazy = request_context();
    if let Some(ctx) = ext.as_ref().or(lazy.as_ref()) {
        ctx.info("context record");
    }
    let id = |c: &Option<RequestContext>| {
        c.as_ref()
            .and_then(|c| c.request_id().map(str::to_string))
            .unwrap_or_else(|| "-".into())
    };
    Ok(Response::new(Full::new(Bytes::from(format!(
        "ext={};lazy={}",
        id(&ext),
        id(&lazy)
    )))))
}

async fn start(loggier: Loggier, extension: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let settings = CaptureSettings::builder()
        .exclude_paths(["/health"])
        .build()
        .expect("valid settings");
    let layer = LoggierLayer::new(loggier)
        .settings(settings)
        .context_extension(extension);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = ServiceBuilder::new()
                .layer(layer.clone())
                .service(service_fn(handler));
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

async fn get(base: &str, path: &str, id: &str) -> String {
    http_client()
        .get(format!("{base}{path}"))
        .header("x-request-id", id)
        .send()
        .await
        .expect("request succeeds")
        .text()
        .await
        .expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extension_or_the_serving_thread_gives_the_request_context() {
    assert!(request_context().is_none(), "no request here");
    let (loggier, records) = test_client("request-context");
    let with_ext = start(loggier.clone(), true).await;
    let without = start(loggier, false).await;

    let a = new_id("ctx-ext");
    assert_eq!(get(&with_ext, "/a", &a).await, format!("ext={a};lazy=-"));
    let b = new_id("ctx-lazy");
    assert_eq!(get(&without, "/b", &b).await, format!("ext=-;lazy={b}"));
    let c = new_id("ctx-excluded");
    assert_eq!(get(&without, "/health", &c).await, "ext=-;lazy=-");
    assert_eq!(get(&with_ext, "/health", &c).await, "ext=-;lazy=-");

    for id in [&a, &b] {
        records
            .wait_for("the handler's record with its request id", |r| {
                r["message"] == "context record" && r["context"]["request_id"] == id.as_str()
            })
            .await;
    }
    assert!(
        request_context().is_none(),
        "nothing left behind on this thread"
    );
}
