//! Loggier quickstart: a small shop API on axum with the Loggier layer, driven by real
//! HTTP requests, logging to the embedded file sink (`./loggier-data/loggier.ndjson`,
//! or `$LOGGIER_DATA_DIR`). No server to install.
//!
//! Run it from the repository root:
//!
//! ```text
//! cargo run -p quickstart
//! ```
//!
//! What happens:
//! 1. `loggier_core::init` installs the client (from `LOGGIER_*` variables) and the
//!    panic hook; startup records carry global context.
//! 2. A background job fails with a real `std::io::Error` chain → an error record with
//!    the whole `source()` chain.
//! 3. The service starts on 127.0.0.1 (a free port) with `.with_loggier_settings(..)`.
//! 4. A reqwest client sends: a healthy order (200, not recorded), a 404, a JSON
//!    checkout over the body limit carrying a password and card number (400: recorded
//!    with the body truncated and the secrets `[FILTERED]`, and the tags its handler's
//!    `#[track_endpoint(tags = [..])]` sets), a slow payment (warning, plus a timing
//!    record from its `#[trace_function]` helper whose parent is the request id),
//!    an inventory sync that fails (500 with the error), a panicking handler (500 +
//!    backtrace; the service keeps running) and a health check (excluded).
//! 5. Graceful shutdown, flush, and a summary of what landed in the file.
//!
//! Every `LOGGIER_*` variable of `loggier_core::config` applies (e.g.
//! `LOGGIER_SINKS=file,stdout LOGGIER_STDOUT_FORMAT=logfmt` to also see the lines).

use std::error::Error;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use loggier_axum::{
    CaptureSettings, LoggierRouterExt, RequestLogger, trace_function, track_endpoint,
};
use loggier_core::{Config, Loggier, LoggierBuilder, fields, info, warning};
use serde_json::{Value, json};

/// A domain error with a real `std::io::Error` as its source.
#[derive(Debug)]
struct SyncError {
    what: String,
    source: std::io::Error,
}

impl std::fmt::Display for SyncError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot sync {}", self.what)
    }
}

impl Error for SyncError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

fn read_price_list() -> Result<usize, SyncError> {
    let path = std::env::temp_dir().join("loggier-quickstart-prices-does-not-exist.csv");
    std::fs::read_to_string(&path)
        .map(|t| t.lines().count())
        .map_err(|source| SyncError {
            what: format!("price list {}", path.display()),
            source,
        })
}

async fn get_order(Path(id): Path<u32>, State(log): State<Loggier>) -> Response {
    if id == 0 || id > 100 {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("order {id} not found")})),
        )
            .into_response();
    }
    // Plain client calls inside a handler carry the request's scope (request id, route).
    info!(log, order_id = id, "order loaded");
    Json(json!({"id": id, "status": "paid", "total_cents": 1999})).into_response()
}

// Per-route options: this route's records get these tags (and could change statuses,
// body capture or the slow threshold for this route only).
#[track_endpoint(tags = ["checkout", "payment"])]
async fn checkout(log: RequestLogger, Json(body): Json<Value>) -> Response {
    let items = body["items"].as_array().map_or(0, Vec::len);
    if items > 20 {
        log.warning(format!("cart too large: {items} items"));
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "at most 20 items per order"})),
        )
            .into_response();
    }
    (StatusCode::CREATED, Json(json!({"order": 101}))).into_response()
}

async fn slow_payment() -> &'static str {
    if authorise_card("4111111111111111").await {
        "authorised"
    } else {
        "declined"
    }
}

// A slow helper: a call that takes 200 ms or more becomes one timing record, carrying
// the request id as its parent. The card number argument is never recorded (no
// `include_args`).
#[trace_function(name = "payments.authorise_card", threshold_ms = 200, tags = ["payments"])]
async fn authorise_card(card: &str) -> bool {
    tokio::time::sleep(Duration::from_millis(400)).await;
    card.len() == 16
}

async fn sync_inventory(log: RequestLogger) -> Response {
    match read_price_list() {
        Ok(n) => format!("{n} prices").into_response(),
        Err(e) => {
            log.exception("inventory sync failed", &e);
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "inventory backend unavailable",
            )
                .into_response()
        }
    }
}

async fn broken_report() -> &'static str {
    let shards: Vec<u32> = Vec::new();
    let pick = shards.len() + 2;
    if shards[pick] > 0 { "report" } else { "empty" }
}

fn app(log: Loggier) -> Result<Router, loggier_core::ConfigError> {
    let settings = CaptureSettings::builder()
        .statuses_to_track(["4xx", "5xx"])
        .capture_request_body(true)
        .max_body_size(1024)
        .slow_request_threshold(Duration::from_millis(250))
        .exclude_paths(["/health"])
        .build()?;
    Ok(Router::new()
        .route("/orders/{id}", get(get_order))
        .route("/checkout", post(checkout))
        .route("/payments/slow", get(slow_payment))
        .route("/inventory/sync", post(sync_inventory))
        .route("/reports/broken", get(broken_report))
        .route("/health", get(|| async { "ok" }))
        .with_state(log.clone())
        .with_loggier_settings(log, settings))
}

/// Sends the demo traffic; returns `(method path, status)` per request.
async fn drive(base: &str) -> Result<Vec<(String, u16)>, Box<dyn Error>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let big_cart: Vec<Value> = (0..60)
        .map(|i| json!({"sku": format!("SKU-{i:04}"), "qty": 1}))
        .collect();
    let checkout_body = json!({
        "customer": {"email": "ann@example.com", "password": "hunter2"},
        "card": {"card_number": "4111111111111111", "cvv": "123"},
        "items": big_cart,
    });
    let mut seen = Vec::new();
    let requests: Vec<(&str, &str, Option<&Value>)> = vec![
        ("GET", "/orders/7", None),
        ("GET", "/orders/404", None),
        ("POST", "/checkout", Some(&checkout_body)),
        ("GET", "/payments/slow", None),
        ("POST", "/inventory/sync", None),
        ("GET", "/reports/broken", None),
        ("GET", "/health", None),
        ("GET", "/orders/8", None),
    ];
    for (method, path, body) in requests {
        let url = format!("{base}{path}");
        let mut req = if method == "POST" {
            client.post(&url)
        } else {
            client.get(&url)
        };
        req = req.header("authorization", "Bearer demo-token-do-not-log");
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(serde_json::to_vec(b)?);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let _ = resp.bytes().await?;
        seen.push((format!("{method} {path}"), status));
    }
    Ok(seen)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut config = Config::from_env()?;
    if config.service_name == "app" {
        config.service_name = "quickstart-shop".into();
    }
    let data_dir = config.data_dir.clone();
    let file = config.default_log_file();
    let start_len = std::fs::metadata(&file).map_or(0, |m| m.len());
    let guard = loggier_core::init_with(
        LoggierBuilder::from_config(config)
            .project_name("loggier-demo")
            .version(env!("CARGO_PKG_VERSION"))
            .tags(["quickstart"]),
    )?;
    let log = guard.client().clone();
    log.update_global(fields! { "region" => "eu-west-1", "pid" => std::process::id() });

    // Startup and a background job, outside any request.
    info!(log, workers = 4, "service starting");
    if let Err(e) = read_price_list() {
        log.exception("nightly price import failed", &e);
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        axum::serve(
            listener,
            app(log.clone())?.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stop_rx.await;
        })
        .into_future(),
    );
    info!(log, address = base.clone(), "listening");

    let seen = drive(&base).await?;
    let _ = stop_tx.send(());
    server.await??;
    warning!(
        log,
        requests = seen.len(),
        "demo traffic done, shutting down"
    );

    let flushed = log.flush_async(Duration::from_secs(10)).await;
    let stats = log.stats();
    drop(guard);

    // What landed in the file during this run.
    let text = std::fs::read_to_string(&file)?;
    let new = text.get(start_len as usize..).unwrap_or(&text);
    let records: Vec<Value> = new
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    println!("requests sent:");
    for (req, status) in &seen {
        println!("  {req:<22} -> {status}");
    }
    println!(
        "records written this run: {} (to {})",
        records.len(),
        file.display()
    );
    for r in &records {
        let tx = &r["context"]["transaction"];
        let timing = &r["timing"];
        let what = if timing.is_object() {
            format!(
                "timing {} ({}) took {:.0} ms, threshold {} ms, parent {}",
                timing["name"].as_str().unwrap_or("?"),
                timing["kind"].as_str().unwrap_or("?"),
                timing["duration_ms"].as_f64().unwrap_or(0.0),
                timing["threshold_ms"],
                timing["parent"].as_str().unwrap_or("-")
            )
        } else if tx.is_object() {
            format!(
                "{} {} -> {} in {:.0} ms",
                tx["request"]["method"].as_str().unwrap_or("?"),
                tx["request"]["path"].as_str().unwrap_or("?"),
                tx["response"]["status_code"],
                tx["duration_ms"].as_f64().unwrap_or(0.0)
            )
        } else {
            r["message"].as_str().unwrap_or("").to_string()
        };
        // Tags beyond the client's own ("quickstart"): the endpoint's.
        let tags: Vec<&str> = r["tags"]
            .as_array()
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let endpoint_tags: Vec<&str> = tags.into_iter().filter(|t| *t != "quickstart").collect();
        let tags = if endpoint_tags.is_empty() {
            String::new()
        } else {
            format!("  tags: {}", endpoint_tags.join(", "))
        };
        println!("  {:<8} {what}{tags}", r["level"].as_str().unwrap_or("?"));
    }
    for s in &stats.sinks {
        println!(
            "sink {}: written {} dropped {} pending {}",
            s.name,
            s.written,
            s.dropped(),
            s.pending
        );
    }
    let leaked = ["hunter2", "4111111111111111", "demo-token-do-not-log"]
        .iter()
        .any(|secret| new.contains(secret));
    println!(
        "secrets in the file: {}",
        if leaked { "LEAKED" } else { "none (masked)" }
    );
    println!("data dir: {}", data_dir.display());
    let timed = records
        .iter()
        .any(|r| r["timing"]["name"] == "payments.authorise_card");
    if !flushed || leaked || !timed {
        return Err(
            "quickstart check failed: not flushed, a secret leaked or the timing is missing".into(),
        );
    }
    Ok(())
}
