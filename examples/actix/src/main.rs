//! A small actix-web inventory service with Loggier HTTP capture.
//!
//! Routes: JSON CRUD on `/items` (`GET`, `POST`, `GET/PUT/DELETE /items/{id}`), a slow
//! report (`GET /reports/slow?ms=1500`), a failing route (`GET /inventory/sync`, 503
//! from an application error), a streaming export (`GET /items/export`, NDJSON line by
//! line), a report that panics (`GET /reports/broken`: 500 and an error record with
//! the backtrace), a login that refuses everyone (`POST /login`, shows masking), and
//! `/health` (excluded from capture).
//!
//! Run the service (records go to `./loggier-data/loggier.ndjson`, or
//! `$LOGGIER_DATA_DIR/loggier.ndjson`; every `LOGGIER_*` variable of
//! `loggier_core::config` applies):
//!
//! ```text
//! cargo run -p example-actix                 # listens on 127.0.0.1:8080 ($PORT to change)
//! curl -i localhost:8080/items/42            # 404, recorded as a client error
//! curl -i -X POST localhost:8080/login -H 'content-type: application/json' \
//!      -d '{"user":"bob","password":"hunter2"}'   # 401, password masked in the record
//! ```
//!
//! Or let it test itself and exit (what CI runs): it starts on 127.0.0.1 with a free
//! port, drives every route with a real HTTP client, stops, checks the records in a
//! fresh data directory and prints a summary; exit status 0 when all is as expected.
//!
//! ```text
//! cargo run -p example-actix -- --self-test
//! ```

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, ResponseError, web};
use bytes::Bytes;
use loggier_actix::{CaptureSettings, Loggier, RequestLogger};
use loggier_core::{Config, LoggierBuilder};
use serde::{Deserialize, Serialize};

/// One inventory item.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Item {
    #[serde(default)]
    id: u64,
    name: String,
    price_cents: u64,
}

/// The in-memory store shared by all workers.
#[derive(Default)]
struct Store {
    items: Mutex<BTreeMap<u64, Item>>,
}

/// Errors of this service, each with its HTTP status and a JSON body.
#[derive(Debug)]
enum ApiError {
    NotFound(u64),
    Invalid(&'static str),
    Upstream(&'static str),
    Poisoned,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::NotFound(id) => write!(f, "item {id} not found"),
            ApiError::Invalid(why) => write!(f, "invalid item: {why}"),
            ApiError::Upstream(what) => write!(f, "{what} unavailable"),
            ApiError::Poisoned => f.write_str("store lock poisoned"),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Upstream(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Poisoned => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code())
            .json(serde_json::json!({ "error": self.to_string() }))
    }
}

fn items(store: &Store) -> Result<std::sync::MutexGuard<'_, BTreeMap<u64, Item>>, ApiError> {
    store.items.lock().map_err(|_| ApiError::Poisoned)
}

async fn list_items(store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    let all: Vec<Item> = items(&store)?.values().cloned().collect();
    Ok(HttpResponse::Ok().json(all))
}

async fn create_item(
    store: web::Data<Store>,
    log: RequestLogger,
    item: web::Json<Item>,
) -> Result<HttpResponse, ApiError> {
    let mut item = item.into_inner();
    if item.name.trim().is_empty() {
        return Err(ApiError::Invalid("name is empty"));
    }
    let mut map = items(&store)?;
    item.id = map.keys().next_back().map_or(1, |k| k + 1);
    map.insert(item.id, item.clone());
    log.info(format!("item {} created", item.id));
    Ok(HttpResponse::Created().json(item))
}

async fn get_item(store: web::Data<Store>, id: web::Path<u64>) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let item = items(&store)?
        .get(&id)
        .cloned()
        .ok_or(ApiError::NotFound(id))?;
    Ok(HttpResponse::Ok().json(item))
}

async fn update_item(
    store: web::Data<Store>,
    id: web::Path<u64>,
    item: web::Json<Item>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let mut map = items(&store)?;
    let slot = map.get_mut(&id).ok_or(ApiError::NotFound(id))?;
    *slot = Item {
        id,
        ..item.into_inner()
    };
    Ok(HttpResponse::Ok().json(slot.clone()))
}

async fn delete_item(
    store: web::Data<Store>,
    id: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    items(&store)?.remove(&id).ok_or(ApiError::NotFound(id))?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: Option<u64>,
}

/// A report that takes a while (default 1.5 s, at most 10 s).
async fn slow_report(q: web::Query<SlowQuery>) -> HttpResponse {
    let ms = q.ms.unwrap_or(1_500).min(10_000);
    actix_web::rt::time::sleep(Duration::from_millis(ms)).await;
    HttpResponse::Ok().json(serde_json::json!({ "report": "weekly", "took_ms": ms }))
}

/// Always fails: the upstream inventory system is down.
async fn sync_inventory(log: RequestLogger) -> Result<HttpResponse, ApiError> {
    log.warning("inventory upstream did not answer");
    Err(ApiError::Upstream("inventory database"))
}

/// Streams every item as one NDJSON line, 50 ms apart.
async fn export_items(store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    let lines: Vec<Bytes> = items(&store)?
        .values()
        .map(|item| {
            let mut line = serde_json::to_vec(item).unwrap_or_default();
            line.push(b'\n');
            Bytes::from(line)
        })
        .collect();
    let body = futures_util::stream::unfold(lines.into_iter(), |mut rest| async move {
        let line = rest.next()?;
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        Some((Ok::<_, std::io::Error>(line), rest))
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body))
}

/// A report with a bug: it indexes past the end of the price list and panics. The
/// middleware answers 500 and records the panic with its backtrace; the worker keeps
/// serving.
async fn broken_report(store: web::Data<Store>) -> Result<HttpResponse, ApiError> {
    let prices: Vec<u64> = items(&store)?.values().map(|i| i.price_cents).collect();
    let top = prices[prices.len()]; // off by one
    Ok(HttpResponse::Ok().json(serde_json::json!({ "top_price_cents": top })))
}

/// Refuses every login (the record shows the password masked).
async fn login(_body: web::Json<serde_json::Value>) -> HttpResponse {
    HttpResponse::Unauthorized().json(serde_json::json!({ "error": "bad credentials" }))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(|| async { "ok" }))
        .route("/login", web::post().to(login))
        .route("/reports/slow", web::get().to(slow_report))
        .route("/reports/broken", web::get().to(broken_report))
        .route("/inventory/sync", web::get().to(sync_inventory))
        .route("/items/export", web::get().to(export_items))
        .route("/items", web::get().to(list_items))
        .route("/items", web::post().to(create_item))
        .route("/items/{id}", web::get().to(get_item))
        .route("/items/{id}", web::put().to(update_item))
        .route("/items/{id}", web::delete().to(delete_item));
}

fn capture_settings() -> Result<CaptureSettings, loggier_core::ConfigError> {
    CaptureSettings::builder()
        .statuses_to_track(["400", "401", "403", "404", "422", "5xx"])
        .slow_request_threshold(Duration::from_secs(1))
        .capture_request_body(true)
        .exclude_paths(["/health"])
        .build()
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let self_test = std::env::args().any(|a| a == "--self-test");
    let mut config = Config::from_env()?;
    if config.service_name == "app" {
        config.service_name = "inventory".into();
    }
    if self_test && std::env::var_os("LOGGIER_DATA_DIR").is_none() {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        config.data_dir = std::env::temp_dir().join(format!(
            "loggier-example-actix-{}-{nanos}",
            std::process::id()
        ));
    }
    let log_file = config.default_log_file();
    let client = LoggierBuilder::from_config(config)
        .version(env!("CARGO_PKG_VERSION"))
        .tags(["example-actix"])
        .build()?;
    let settings = Arc::new(capture_settings()?);
    let store = web::Data::new(Store::default());

    let (app_client, app_settings) = (client.clone(), Arc::clone(&settings));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(store.clone())
            .wrap(Loggier::with_settings(
                app_client.clone(),
                Arc::clone(&app_settings),
            ))
            .configure(routes)
    });

    if !self_test {
        let port: u16 = std::env::var("PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(8080);
        println!(
            "listening on http://127.0.0.1:{port}; records go to {}",
            log_file.display()
        );
        server.bind(("127.0.0.1", port))?.run().await?;
        client.shutdown(Duration::from_secs(5));
        return Ok(());
    }

    let server = server.workers(2).disable_signals().bind(("127.0.0.1", 0))?;
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let outcome = drive(&base).await;
    handle.stop(true).await;
    let flushed = client.flush_async(Duration::from_secs(10)).await;
    client.shutdown(Duration::from_secs(5));
    let run = outcome?;
    if !flushed {
        return Err("records were not all written within 10 s".into());
    }
    check_records(&log_file, &run)?;
    Ok(())
}

/// What the self-test sent: its request-id prefix.
struct Run {
    prefix: String,
}

/// Drives every route with a real HTTP client and checks the answers.
async fn drive(base: &str) -> Result<Run, Box<dyn Error>> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let prefix = format!("selftest-{}", std::process::id());
    let id = |name: &str| format!("{prefix}-{name}");
    let expect = |what: &str, got: u16, want: u16| -> Result<(), Box<dyn Error>> {
        if got == want {
            Ok(())
        } else {
            Err(format!("{what}: expected status {want}, got {got}").into())
        }
    };

    let resp = http.get(format!("{base}/health")).send().await?;
    expect("health", resp.status().as_u16(), 200)?;

    let resp = http
        .post(format!("{base}/items"))
        .header("x-request-id", id("create"))
        .json(&serde_json::json!({ "name": "espresso beans", "price_cents": 1299 }))
        .send()
        .await?;
    expect("create", resp.status().as_u16(), 201)?;
    let created: Item = resp.json().await?;

    let resp = http
        .put(format!("{base}/items/{}", created.id))
        .json(&serde_json::json!({ "name": "espresso beans 1kg", "price_cents": 2399 }))
        .send()
        .await?;
    expect("update", resp.status().as_u16(), 200)?;
    let resp = http.get(format!("{base}/items")).send().await?;
    expect("list", resp.status().as_u16(), 200)?;
    let all: Vec<Item> = resp.json().await?;
    if all.len() != 1 || all[0].price_cents != 2399 {
        return Err(format!("list returned {all:?}").into());
    }

    let resp = http
        .post(format!("{base}/items"))
        .header("x-request-id", id("invalid"))
        .json(&serde_json::json!({ "name": " ", "price_cents": 1 }))
        .send()
        .await?;
    expect("invalid create", resp.status().as_u16(), 422)?;

    let resp = http
        .get(format!("{base}/items/999"))
        .header("x-request-id", id("missing"))
        .send()
        .await?;
    expect("missing item", resp.status().as_u16(), 404)?;
    if resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        != Some(&id("missing"))
    {
        return Err("the request id was not echoed".into());
    }

    let resp = http
        .get(format!("{base}/inventory/sync"))
        .header("x-request-id", id("sync"))
        .send()
        .await?;
    expect("sync", resp.status().as_u16(), 503)?;

    let resp = http
        .get(format!("{base}/reports/slow?ms=1100"))
        .header("x-request-id", id("slow"))
        .send()
        .await?;
    expect("slow report", resp.status().as_u16(), 200)?;

    let resp = http
        .get(format!("{base}/reports/broken"))
        .header("x-request-id", id("broken"))
        .send()
        .await?;
    expect("broken report", resp.status().as_u16(), 500)?;

    let mut resp = http
        .get(format!("{base}/items/export"))
        .header("x-request-id", id("export"))
        .send()
        .await?;
    expect("export", resp.status().as_u16(), 200)?;
    let mut lines = 0;
    while let Some(chunk) = resp.chunk().await? {
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    if lines != 1 {
        return Err(format!("export streamed {lines} lines, expected 1").into());
    }

    let resp = http
        .post(format!("{base}/login"))
        .header("x-request-id", id("login"))
        .header("authorization", "Basic Ym9iOmh1bnRlcjI=")
        .json(&serde_json::json!({ "user": "bob", "password": "hunter2" }))
        .send()
        .await?;
    expect("login", resp.status().as_u16(), 401)?;

    let resp = http
        .delete(format!("{base}/items/{}", created.id))
        .send()
        .await?;
    expect("delete", resp.status().as_u16(), 204)?;

    Ok(Run { prefix })
}

/// Reads the records of this run back from the file sink and checks them.
fn check_records(path: &std::path::Path, run: &Run) -> Result<(), Box<dyn Error>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut found: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let rid = v["context"]["request_id"].as_str().unwrap_or_default();
        if let Some(name) = rid.strip_prefix(&format!("{}-", run.prefix)) {
            found.entry(name.to_string()).or_default().push(v);
        }
    }
    let level_of = |name: &str, logger: &str| -> Option<String> {
        found.get(name)?.iter().find_map(|v| {
            (v["logger"] == logger).then(|| v["level"].as_str().unwrap_or_default().to_string())
        })
    };
    let expected = [
        ("invalid", "http", "WARNING"),
        ("missing", "http", "WARNING"),
        ("sync", "http", "ERROR"),
        ("sync", "app", "WARNING"),
        ("broken", "http", "ERROR"),
        ("slow", "http", "WARNING"),
        ("login", "http", "WARNING"),
        ("create", "app", "INFO"),
    ];
    for (name, logger, level) in expected {
        match level_of(name, logger) {
            Some(l) if l == level => {}
            other => {
                return Err(format!(
                    "expected a {level} record from logger {logger:?} for {name}, found {other:?}"
                )
                .into());
            }
        }
    }
    for quiet in ["create", "export"] {
        if level_of(quiet, "http").is_some() {
            return Err(format!("{quiet} is a fast 2xx and must not be recorded").into());
        }
    }
    if text.contains("hunter2") || text.contains("Ym9iOmh1bnRlcjI=") {
        return Err("a secret reached the log file".into());
    }
    println!(
        "self-test passed: {} requests recorded as expected",
        expected.len()
    );
    for (name, records) in &found {
        for v in records {
            println!(
                "  {:<8} {:<7} {}",
                name,
                v["level"].as_str().unwrap_or_default(),
                v["message"].as_str().unwrap_or_default()
            );
        }
    }
    println!("records: {}", path.display());
    Ok(())
}
