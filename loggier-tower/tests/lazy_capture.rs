//! What the layer does — and does not do — for requests that will not be recorded:
//! no request body copy where none can be kept, bodies still streamed frame by
//! frame, no record; and for a recorded request, one request id everywhere (the
//! response header, the transaction record, the handler's own records) even though
//! the id now lives in the request's scope frame instead of being copied around.
//! A plain hyper 1 server on 127.0.0.1:0, driven by reqwest.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use loggier_core::Loggier;
use loggier_core::http::CaptureSettings;
use loggier_test_support::scenarios::new_id;
use loggier_test_support::{http_client, test_client};
use loggier_tower::{LoggierLayer, RequestBody};
use tower::{ServiceBuilder, service_fn};

/// `capturing=<the layer tees this request body>;frames=N;bytes=N`, after reading
/// the request body frame by frame.
async fn upload(status: u16, req: Request<RequestBody<Incoming>>) -> Response<Full<Bytes>> {
    let capturing = format!("{:?}", req.body()).contains("capturing: true");
    let mut body = req.into_body();
    let (mut frames, mut bytes) = (0usize, 0usize);
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            frames += 1;
            bytes += data.len();
        }
    }
    let mut resp = Response::new(Full::new(Bytes::from(format!(
        "capturing={capturing};frames={frames};bytes={bytes}"
    ))));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    resp
}

async fn route(
    loggier: Loggier,
    req: Request<RequestBody<Incoming>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(match req.uri().path() {
        "/upload" => upload(200, req).await,
        "/upload-fails" => upload(500, req).await,
        "/fail" => {
            loggier.warning("handler saw the failure");
            let mut resp = Response::new(Full::new(Bytes::from_static(b"down")));
            *resp.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            resp
        }
        _ => Response::new(Full::new(Bytes::from_static(b"ok"))),
    })
}

async fn start(loggier: Loggier, settings: CaptureSettings) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let layer = LoggierLayer::new(loggier.clone()).settings(settings);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let loggier = loggier.clone();
            let svc = ServiceBuilder::new()
                .layer(layer.clone())
                .service(service_fn(move |req| route(loggier.clone(), req)));
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    format!("http://{addr}")
}

async fn post(base: &str, path: &str, id: &str, body: Vec<u8>) -> (u16, String, String) {
    let resp = http_client()
        .post(format!("{base}{path}"))
        .header("x-request-id", id)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .expect("request succeeds");
    let status = resp.status().as_u16();
    let echoed = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, echoed, resp.text().await.expect("body"))
}

/// With request bodies off (`capture_request_body` and `endpoint_request_body`
/// false) no request body can be kept, so the layer puts no copy on the body: the
/// handler reads every byte through an untouched body, the request id is still
/// echoed, and a 200 leaves no record. The same settings still record a 500 (so
/// the client's records are flushed and read back), without a request body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_cannot_keep_its_body_is_streamed_without_a_copy() {
    let (loggier, records) = test_client("lazy-body");
    let settings = CaptureSettings::builder()
        .endpoint_request_body(false)
        .build()
        .expect("valid settings");
    let base = start(loggier, settings).await;
    let payload = vec![b'x'; 256 * 1024];

    let quiet = new_id("lazy-quiet");
    let (status, echoed, text) = post(&base, "/upload", &quiet, payload.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(
        echoed, quiet,
        "the id is echoed even when nothing is recorded"
    );
    assert!(text.starts_with("capturing=false;"), "{text}");
    assert!(
        text.ends_with(&format!(";bytes={}", payload.len())),
        "{text}"
    );

    let loud = new_id("lazy-loud");
    let (status, _, text) = post(&base, "/upload-fails", &loud, payload.clone()).await;
    assert_eq!(status, 500);
    assert!(text.starts_with("capturing=false;"), "{text}");
    let r = records.transaction(&loud).await;
    let req = &r["context"]["transaction"]["request"];
    assert!(req.get("body").is_none(), "no body can be kept: {r}");
    assert!(
        records.transactions_now(&quiet).await.is_empty(),
        "a 200 is not recorded"
    );
}

/// The default settings keep no copy for a request without a body and a provisional
/// one (for `#[track_endpoint(capture_request_body = true)]`) for a request with a
/// body; `capture_request_body` keeps it in the record (an octet stream is
/// recorded as its length).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_body_copies_follow_the_settings() {
    let (loggier, _records) = test_client("lazy-body-defaults");
    let base = start(loggier, CaptureSettings::default()).await;
    let id = new_id("lazy-default");
    let (_, _, text) = post(&base, "/upload", &id, b"abc".to_vec()).await;
    assert!(
        text.starts_with("capturing=true;"),
        "provisional copy: {text}"
    );
    let (_, _, text) = post(&base, "/upload", &id, Vec::new()).await;
    assert!(
        text.starts_with("capturing=false;"),
        "no body, no copy: {text}"
    );

    let (loggier2, records2) = test_client("lazy-body-on");
    let settings = CaptureSettings::builder()
        .capture_request_body(true)
        .build()
        .expect("valid settings");
    let base2 = start(loggier2, settings).await;
    let kept = new_id("lazy-kept");
    let (status, _, _) = post(&base2, "/upload-fails", &kept, b"plain words".to_vec()).await;
    assert_eq!(status, 500);
    let r = records2.transaction(&kept).await;
    let body = &r["context"]["transaction"]["request"]["body"];
    assert_eq!(
        body["content"], "[binary 11 bytes, application/octet-stream]",
        "{r}"
    );
    assert_eq!(body["size_bytes"], 11);
}

/// A generated request id (no incoming header) is the same in the response header,
/// the transaction record and a record the handler logged inside the request, and
/// is a lower-case hyphenated UUIDv7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_request_has_one_generated_id_everywhere() {
    let (loggier, records) = test_client("lazy-id");
    let base = start(loggier, CaptureSettings::default()).await;
    let resp = http_client()
        .get(format!("{base}/fail"))
        .send()
        .await
        .expect("request succeeds");
    assert_eq!(resp.status().as_u16(), 503);
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("generated id echoed")
        .to_string();
    let _ = resp.bytes().await;
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(id.as_bytes()[14], b'7', "UUID version 7: {id}");
    assert_eq!(id, id.to_ascii_lowercase());

    let r = records.transaction(&id).await;
    assert_eq!(r["message"], "Server error: GET /fail - 503");
    assert_eq!(
        r["context"]["transaction"]["response"]["headers"]["x-request-id"],
        id.as_str(),
        "the recorded response headers carry the echoed id: {r}"
    );
    let log = records
        .wait_for("handler record", |r| {
            r["message"] == "handler saw the failure"
        })
        .await;
    assert_eq!(log["context"]["request_id"], id.as_str(), "{log}");
}

/// In access-log mode every request is recorded, so the layer turns the headers into
/// the record's text when it sees them instead of keeping a copy of the maps: the
/// record still has the request headers (secrets masked, the user agent picked out)
/// and the final response headers, the echoed request id among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_mode_records_the_headers_it_saw() {
    let (loggier, records) = test_client("lazy-access-log");
    let settings = CaptureSettings::builder()
        .log_all_requests(true)
        .build()
        .expect("valid settings");
    let base = start(loggier, settings).await;
    let id = new_id("lazy-access");
    let resp = http_client()
        .get(format!("{base}/ok"))
        .header("x-request-id", &id)
        .header("authorization", "Bearer sekrit-auth")
        .header("user-agent", "probe/1")
        .header("x-visible", "shown")
        .send()
        .await
        .expect("request succeeds");
    assert_eq!(resp.status().as_u16(), 200);
    let _ = resp.bytes().await;
    let r = records.transaction(&id).await;
    let tx = &r["context"]["transaction"];
    let req = &tx["request"];
    assert_eq!(req["headers"]["authorization"], "[FILTERED]", "{r}");
    assert_eq!(req["headers"]["x-visible"], "shown", "{r}");
    assert_eq!(req["headers"]["user-agent"], "probe/1", "{r}");
    assert_eq!(req["user_agent"], "probe/1", "{r}");
    assert_eq!(
        tx["response"]["headers"]["x-request-id"],
        id.as_str(),
        "{r}"
    );
    assert!(!records.raw_text().await.contains("sekrit"), "{r}");
}
