//! A small inventory service on axum with Loggier HTTP capture.
//!
//! Run it (serves until Ctrl-C; records go to `./loggier-data/loggier.ndjson`, or
//! `$LOGGIER_DATA_DIR`; listen address `$EXAMPLE_ADDR`, default `127.0.0.1:3000`):
//!
//! ```text
//! cargo run -p example-axum
//! curl -s localhost:3000/items -H 'content-type: application/json' \
//!      -d '{"name":"bolt","qty":5,"password":"not-logged"}'
//! curl -s localhost:3000/items/1
//! curl -s localhost:3000/reports/slow      # slow → warning record
//! curl -s localhost:3000/db-error          # 503 → error record with the body
//! curl -sN localhost:3000/events           # streaming response
//! curl -s localhost:3000/panic             # 500 → error record with backtrace
//! ```
//!
//! Self-test (used by CI; starts on 127.0.0.1:0, drives every route with a real HTTP
//! client, checks the records, prints a summary and exits):
//!
//! ```text
//! cargo run -p example-axum -- --self-test
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use loggier_axum::{CaptureSettings, LoggierRouterExt, RequestLogger};
use loggier_core::{Config, Loggier, LoggierBuilder};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    #[serde(default)]
    id: u64,
    name: String,
    qty: u32,
}

#[derive(Clone, Default)]
struct Store {
    items: Arc<Mutex<BTreeMap<u64, Item>>>,
}

impl Store {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<u64, Item>) -> R) -> R {
        let mut g = self.items.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }
}

fn not_found(id: u64) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": format!("item {id} not found")})),
    )
        .into_response()
}

async fn list_items(State(store): State<Store>) -> Json<Vec<Item>> {
    Json(store.with(|m| m.values().cloned().collect()))
}

async fn create_item(
    State(store): State<Store>,
    log: RequestLogger,
    Json(mut item): Json<Item>,
) -> Response {
    if item.name.trim().is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"error": "name must not be empty"})),
        )
            .into_response();
    }
    let id = store.with(|m| {
        let id = m.keys().next_back().copied().unwrap_or(0) + 1;
        item.id = id;
        m.insert(id, item.clone());
        id
    });
    log.info(format!("created item {id}"));
    (StatusCode::CREATED, Json(item)).into_response()
}

async fn get_item(State(store): State<Store>, Path(id): Path<u64>) -> Response {
    match store.with(|m| m.get(&id).cloned()) {
        Some(item) => Json(item).into_response(),
        None => not_found(id),
    }
}

async fn update_item(
    State(store): State<Store>,
    Path(id): Path<u64>,
    Json(mut item): Json<Item>,
) -> Response {
    item.id = id;
    let updated = store.with(|m| m.get_mut(&id).map(|slot| *slot = item.clone()).is_some());
    if updated {
        Json(item).into_response()
    } else {
        not_found(id)
    }
}

async fn delete_item(State(store): State<Store>, Path(id): Path<u64>) -> Response {
    match store.with(|m| m.remove(&id)) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => not_found(id),
    }
}

async fn slow_report(log: RequestLogger) -> Json<serde_json::Value> {
    log.info("building report");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    Json(serde_json::json!({"report": "weekly", "rows": 3}))
}

async fn db_error(log: RequestLogger) -> Response {
    let err = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
    log.exception("inventory database unavailable", &err);
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"error": "database unavailable", "retry_after_s": 5})),
    )
        .into_response()
}

async fn events() -> Response {
    let stream = futures_util::stream::unfold(0u32, |i| async move {
        if i >= 5 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let line = format!("data: {{\"tick\":{i}}}\n\n");
        Some((Ok::<_, std::io::Error>(Bytes::from(line)), i + 1))
    });
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn panics() -> &'static str {
    let stock: Vec<u32> = Vec::new();
    // A bug: indexing an empty list.
    let first = stock[0];
    if first > 0 { "in stock" } else { "empty" }
}

fn app(loggier: Loggier) -> Result<Router, loggier_core::ConfigError> {
    let settings = CaptureSettings::builder()
        .statuses_to_track(["400", "401", "403", "5xx"])
        .capture_request_body(true)
        .exclude_paths(["/health"])
        .build()?;
    Ok(Router::new()
        .route("/items", get(list_items).post(create_item))
        .route(
            "/items/{id}",
            get(get_item).put(update_item).delete(delete_item),
        )
        .route("/reports/slow", get(slow_report))
        .route("/db-error", get(db_error))
        .route("/events", get(events))
        .route("/panic", get(panics))
        .route("/health", get(|| async { "ok" }))
        .with_state(Store::default())
        .with_loggier_settings(loggier, settings))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let self_test = std::env::args().any(|a| a == "--self-test")
        || std::env::var_os("EXAMPLE_SELF_TEST").is_some();
    let mut config = Config::from_env()?;
    if self_test {
        config.data_dir =
            std::env::temp_dir().join(format!("loggier-example-axum-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&config.data_dir);
    }
    let data_dir = config.data_dir.clone();
    let loggier = LoggierBuilder::from_config(config)
        .service_name("inventory")
        .build()?;
    let addr = if self_test {
        "127.0.0.1:0".to_string()
    } else {
        std::env::var("EXAMPLE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_string())
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app(loggier.clone())?.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = stop_rx => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .into_future(),
    );
    println!("inventory service on http://{local}");

    let outcome = if self_test {
        let result = self_test_run(&format!("http://{local}")).await;
        let _ = stop_tx.send(());
        result
    } else {
        drop(stop_tx);
        Ok(())
    };
    server.await??;
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

/// Drives every route with a real client.
async fn self_test_run(base: &str) -> Result<(), Box<dyn std::error::Error>> {
    let c = reqwest::Client::builder().no_proxy().build()?;
    let created = c
        .post(format!("{base}/items"))
        .header("content-type", "application/json")
        .body(r#"{"name":"bolt","qty":5,"password":"hunter2"}"#)
        .send()
        .await?;
    expect(created.status().as_u16(), 201, "create")?;
    let item: Item = serde_json::from_slice(&created.bytes().await?)?;
    expect(
        c.get(format!("{base}/items/{}", item.id))
            .send()
            .await?
            .status()
            .as_u16(),
        200,
        "get",
    )?;
    expect(
        c.get(format!("{base}/items"))
            .send()
            .await?
            .status()
            .as_u16(),
        200,
        "list",
    )?;
    let bad = c
        .post(format!("{base}/items"))
        .header("content-type", "application/json")
        .header("x-request-id", "self-test-bad-item")
        .body(r#"{"name":"","qty":1,"password":"hunter2"}"#)
        .send()
        .await?;
    expect(bad.status().as_u16(), 400, "bad create")?;
    expect(
        c.get(format!("{base}/items/999"))
            .send()
            .await?
            .status()
            .as_u16(),
        404,
        "missing",
    )?;
    expect(
        c.delete(format!("{base}/items/{}", item.id))
            .send()
            .await?
            .status()
            .as_u16(),
        204,
        "delete",
    )?;
    expect(
        c.get(format!("{base}/reports/slow"))
            .send()
            .await?
            .status()
            .as_u16(),
        200,
        "slow",
    )?;
    expect(
        c.get(format!("{base}/db-error"))
            .send()
            .await?
            .status()
            .as_u16(),
        503,
        "db error",
    )?;
    let events = c.get(format!("{base}/events")).send().await?;
    let text = events.text().await?;
    if text.matches("data:").count() != 5 {
        return Err(format!("events stream incomplete: {text:?}").into());
    }
    expect(
        c.get(format!("{base}/panic"))
            .send()
            .await?
            .status()
            .as_u16(),
        500,
        "panic",
    )?;
    expect(
        c.get(format!("{base}/health"))
            .send()
            .await?
            .status()
            .as_u16(),
        200,
        "health",
    )?;
    Ok(())
}

fn expect(got: u16, want: u16, what: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: status {got}, expected {want}"))
    }
}

/// Checks the records file: the error, slow, client-error and panic records are
/// there; the 404 and successful requests are not; no secret leaked.
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
        "Client error: POST /items - 400",
        "Server error: GET /db-error - 503",
        "Handler panicked: GET /panic - 500",
        "inventory database unavailable",
    ] {
        if !messages.contains(&want) {
            return Err(format!("missing record {want:?}; got {messages:?}").into());
        }
    }
    if !messages
        .iter()
        .any(|m| m.starts_with("Slow request: GET /reports/slow - 200"))
    {
        return Err(format!("missing slow request record; got {messages:?}").into());
    }
    if messages
        .iter()
        .any(|m| m.contains("/items/999") || m.contains("/health"))
    {
        return Err(format!("untracked requests were recorded: {messages:?}").into());
    }
    if text.contains("hunter2") {
        return Err("a password leaked into the records".into());
    }
    println!("self-test ok: {} records", records.len());
    for m in messages {
        println!("  {m}");
    }
    Ok(())
}
