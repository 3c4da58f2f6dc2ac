//! A small notes service on plain hyper 1 + `loggier-tower`.
//!
//! Run it (serves until Ctrl-C; records go to `./loggier-data/loggier.ndjson`, or
//! `$LOGGIER_DATA_DIR`; listen address `$EXAMPLE_ADDR`, default `127.0.0.1:3001`):
//!
//! ```text
//! cargo run -p example-hyper
//! curl -s localhost:3001/notes -d '{"text":"buy milk","token":"not-logged"}'
//! curl -s localhost:3001/notes/1
//! curl -s localhost:3001/slow          # slow → warning record
//! curl -s localhost:3001/fail          # 500 → error record with the body
//! curl -sN localhost:3001/stream       # chunked streaming response
//! curl -s localhost:3001/panic         # connection dropped → error record with backtrace
//! ```
//!
//! Self-test (used by CI; starts on 127.0.0.1:0, drives every route with a real HTTP
//! client, checks the records, prints a summary and exits):
//!
//! ```text
//! cargo run -p example-hyper -- --self-test
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use loggier_core::http::CaptureSettings;
use loggier_core::{Config, Loggier, LoggierBuilder};
use loggier_tower::{ClientAddr, LoggierLayer, RequestBody, RequestContext};
use tower::{ServiceBuilder, service_fn};

type AppBody = BoxBody<Bytes, std::io::Error>;

#[derive(Clone, Default)]
struct Notes(Arc<Mutex<BTreeMap<u64, String>>>);

fn json(status: StatusCode, value: &serde_json::Value) -> Response<AppBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from(value.to_string()))
            .map_err(|e| match e {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn handle(
    notes: Notes,
    req: Request<RequestBody<Incoming>>,
) -> Result<Response<AppBody>, Infallible> {
    let log = req.extensions().get::<RequestContext>().cloned();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let resp = match (&method, segments.as_slice()) {
        (&Method::GET, ["notes"]) => {
            let all = notes.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
            json(StatusCode::OK, &serde_json::json!(all))
        }
        (&Method::POST, ["notes"]) => {
            let body = req.into_body().collect().await.map(|c| c.to_bytes());
            let parsed = body
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            match parsed.as_ref().and_then(|v| v["text"].as_str()) {
                Some(text) if !text.is_empty() => {
                    let mut map = notes.0.lock().unwrap_or_else(|p| p.into_inner());
                    let id = map.keys().next_back().copied().unwrap_or(0) + 1;
                    map.insert(id, text.to_string());
                    if let Some(log) = &log {
                        log.info(format!("note {id} created"));
                    }
                    json(
                        StatusCode::CREATED,
                        &serde_json::json!({"id": id, "text": text}),
                    )
                }
                _ => json(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({"error": "body must be JSON with a non-empty \"text\""}),
                ),
            }
        }
        (&Method::GET, ["notes", id]) => {
            let found = id.parse::<u64>().ok().and_then(|id| {
                notes
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&id)
                    .cloned()
            });
            match found {
                Some(text) => json(StatusCode::OK, &serde_json::json!({"text": text})),
                None => json(
                    StatusCode::NOT_FOUND,
                    &serde_json::json!({"error": "no such note"}),
                ),
            }
        }
        (&Method::DELETE, ["notes", id]) => {
            let removed = id.parse::<u64>().ok().and_then(|id| {
                notes
                    .0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id)
            });
            match removed {
                Some(_) => json(StatusCode::OK, &serde_json::json!({"deleted": true})),
                None => json(
                    StatusCode::NOT_FOUND,
                    &serde_json::json!({"error": "no such note"}),
                ),
            }
        }
        (&Method::GET, ["slow"]) => {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            json(StatusCode::OK, &serde_json::json!({"done": true}))
        }
        (&Method::GET, ["fail"]) => {
            if let Some(log) = &log {
                log.error("upstream search index timed out");
            }
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                &serde_json::json!({"error": "search index timed out"}),
            )
        }
        (&Method::GET, ["stream"]) => {
            let chunks = futures_util::stream::unfold(0u32, |i| async move {
                if i >= 5 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
                Some((
                    Ok::<_, std::io::Error>(Bytes::from(format!("line {i}\n"))),
                    i + 1,
                ))
            });
            let mut resp =
                Response::new(BodyExt::boxed(StreamBody::new(chunks.map_ok(Frame::data))));
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain"),
            );
            resp
        }
        (&Method::GET, ["panic"]) => {
            let parts: Vec<&str> = Vec::new();
            // A bug: the handler assumes a non-empty list.
            json(StatusCode::OK, &serde_json::json!({"first": parts[0]}))
        }
        _ => json(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "not found"}),
        ),
    };
    Ok(resp)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let self_test = std::env::args().any(|a| a == "--self-test")
        || std::env::var_os("EXAMPLE_SELF_TEST").is_some();
    let mut config = Config::from_env()?;
    if self_test {
        config.data_dir =
            std::env::temp_dir().join(format!("loggier-example-hyper-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&config.data_dir);
    }
    let data_dir = config.data_dir.clone();
    let loggier = LoggierBuilder::from_config(config)
        .service_name("notes")
        .build()?;
    let settings = CaptureSettings::builder()
        .capture_request_body(true)
        .build()?;
    let layer = LoggierLayer::new(loggier.clone()).settings(settings);

    let addr = if self_test {
        "127.0.0.1:0".to_string()
    } else {
        std::env::var("EXAMPLE_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".to_string())
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    println!("notes service on http://{local}");
    let notes = Notes::default();
    let accept = async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let notes = notes.clone();
            let svc = ServiceBuilder::new()
                .map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    req
                })
                .layer(layer.clone())
                .service(service_fn(move |req| handle(notes.clone(), req)));
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .await;
            });
        }
    };

    let outcome = if self_test {
        let server = tokio::spawn(accept);
        let result = self_test_run(&format!("http://{local}")).await;
        server.abort();
        result
    } else {
        tokio::select! {
            () = accept => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        Ok(())
    };
    let file = data_dir.join("loggier.ndjson");
    let checked = match outcome {
        Ok(()) if self_test => wait_for_records(&loggier, &file).await,
        other => other,
    };
    let shutdown = loggier.clone();
    tokio::task::spawn_blocking(move || shutdown.shutdown(Duration::from_secs(5))).await?;
    checked?;
    println!("records: {}", file.display());
    Ok(())
}

fn expect(got: u16, want: u16, what: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: status {got}, expected {want}"))
    }
}

async fn self_test_run(base: &str) -> Result<(), Box<dyn std::error::Error>> {
    let c = reqwest::Client::builder().no_proxy().build()?;
    let created = c
        .post(format!("{base}/notes"))
        .body(r#"{"text":"buy milk","token":"tok-secret"}"#)
        .send()
        .await?;
    expect(created.status().as_u16(), 201, "create")?;
    let _ = created.bytes().await?;
    expect(
        c.get(format!("{base}/notes/1"))
            .send()
            .await?
            .status()
            .as_u16(),
        200,
        "get",
    )?;
    expect(
        c.get(format!("{base}/notes"))
            .send()
            .await?
            .status()
            .as_u16(),
        200,
        "list",
    )?;
    let bad = c
        .post(format!("{base}/notes?api_key=key-secret"))
        .body(r#"{"text":"","password":"pw-secret"}"#)
        .send()
        .await?;
    expect(bad.status().as_u16(), 400, "bad create")?;
    expect(
        c.delete(format!("{base}/notes/1"))
            .send()
            .await?
            .status()
            .as_u16(),
        200,
        "delete",
    )?;
    expect(
        c.get(format!("{base}/notes/1"))
            .send()
            .await?
            .status()
            .as_u16(),
        404,
        "gone",
    )?;
    expect(
        c.get(format!("{base}/slow"))
            .send()
            .await?
            .status()
            .as_u16(),
        200,
        "slow",
    )?;
    expect(
        c.get(format!("{base}/fail"))
            .send()
            .await?
            .status()
            .as_u16(),
        500,
        "fail",
    )?;
    let text = c.get(format!("{base}/stream")).send().await?.text().await?;
    if text.lines().count() != 5 {
        return Err(format!("stream incomplete: {text:?}").into());
    }
    // Plain hyper has no 500 to send for a panic: the connection is dropped.
    if c.get(format!("{base}/panic")).send().await.is_ok() {
        return Err("the panicking route answered".into());
    }
    expect(
        c.get(format!("{base}/notes"))
            .send()
            .await?
            .status()
            .as_u16(),
        200,
        "still serving",
    )?;
    Ok(())
}

/// Records are emitted when a response ends or is dropped (a panicking request's only
/// after its connection closed), so poll the file for up to 10 s.
async fn wait_for_records(
    loggier: &Loggier,
    file: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let flushed = loggier.flush_async(Duration::from_secs(5)).await;
        match check_records(file) {
            Ok(()) if flushed => return Ok(()),
            Ok(()) => return Err("records were not flushed in time".into()),
            Err(e) if std::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn check_records(file: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(file)?;
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let messages: Vec<&str> = records
        .iter()
        .filter_map(|r| r["message"].as_str())
        .collect();
    for want in [
        "Client error: POST /notes - 400",
        "Server error: GET /fail - 500",
        "Handler panicked: GET /panic",
        "upstream search index timed out",
        "note 1 created",
    ] {
        if !messages.contains(&want) {
            return Err(format!("missing record {want:?}; got {messages:?}").into());
        }
    }
    if !messages
        .iter()
        .any(|m| m.starts_with("Slow request: GET /slow - 200"))
    {
        return Err(format!("missing slow request record; got {messages:?}").into());
    }
    if messages.iter().any(|m| m.contains("404")) {
        return Err(format!("an untracked 404 was recorded: {messages:?}").into());
    }
    for secret in ["pw-secret", "key-secret"] {
        if text.contains(secret) {
            return Err(format!("{secret} leaked into the records").into());
        }
    }
    println!("self-test ok: {} records", records.len());
    for m in messages {
        println!("  {m}");
    }
    Ok(())
}
