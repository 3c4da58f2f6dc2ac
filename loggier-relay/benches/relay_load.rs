//! Load harness (not a timed test): records/s accepted by `POST /logs` in batches
//! of 100, into the file sink and into a loopback Loki receiver that decodes every
//! push (snappy + protobuf).
//!
//! ```text
//! cargo bench -p loggier-relay --bench relay_load
//! RELAY_BENCH_SECS=10 RELAY_BENCH_CLIENTS=16 cargo bench -p loggier-relay --bench relay_load
//! ```
//!
//! Prints, per target: requests answered 202 and 503, accepted records/s while
//! the clients send, request latency p50/p99, and records/s end to end (until the
//! sink has written every accepted record). Targets: `file`, `loki`, and
//! `loki-durable` (`LOGGIER_DELIVERY_MODE=durable`: each 202 waits until the
//! request's records are committed to the SQLite disk queue).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use loggier_core::sink::loki::proto::PushRequest;
use loggier_relay::{Relay, RelayConfig, build_pipeline};
use prost::Message as _;
use serde_json::json;

const BATCH: usize = 100;

async fn loki_receiver(count: Arc<AtomicU64>) -> String {
    let app = Router::new().route(
        "/loki/api/v1/push",
        post(move |body: Bytes| {
            let count = Arc::clone(&count);
            async move {
                let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
                let req = PushRequest::decode(raw.as_slice()).unwrap();
                let n: usize = req.streams.iter().map(|s| s.entries.len()).sum();
                count.fetch_add(n as u64, Ordering::Relaxed);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}")
}

fn body() -> Vec<u8> {
    let records: Vec<_> = (0..BATCH)
        .map(|i| {
            json!({"message": format!("checkout step {i} done"), "service": "web", "component": "cart",
                   "level": if i % 10 == 0 { "error" } else { "info" }, "msg_id": format!("m-{i}"),
                   "version": "1.4.2", "data": {"user_id": i, "cart_items": 3, "password": "x"}})
        })
        .collect();
    serde_json::to_vec(&records).unwrap()
}

async fn run(target: &str, secs: u64, clients: usize) {
    let dir = tempfile::tempdir().unwrap();
    let loki_count = Arc::new(AtomicU64::new(0));
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("LOGGIER_DATA_DIR".into(), dir.path().display().to_string());
    match target {
        "file" => {
            vars.insert("LOGGIER_SINKS".into(), "file".into());
        }
        _ => {
            if target == "loki-durable" {
                vars.insert("LOGGIER_DELIVERY_MODE".into(), "durable".into());
            }
            vars.insert("LOGGIER_SINKS".into(), "loki".into());
            vars.insert(
                "LOKI_URL".into(),
                loki_receiver(Arc::clone(&loki_count)).await,
            );
        }
    }
    let p = build_pipeline(&vars).unwrap();
    let config = RelayConfig::from_lookup(|k| match k {
        "LOGGIER_RELAY_RATE_PER_SEC" | "LOGGIER_RELAY_RATE_BURST" => Some("1000000".into()),
        _ => None,
    })
    .unwrap();
    let relay = Relay::builder(p.loggier.clone())
        .config(config)
        .pipeline_config(&p.config)
        .build();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/logs", l.local_addr().unwrap());
    let app = relay.router();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let body = Bytes::from(body());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let start = Instant::now();
    let stop = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut full, mut lat) = (0u64, 0u64, Vec::new());
            while Instant::now() < stop {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                lat.push(t.elapsed());
                match r.status().as_u16() {
                    202 => ok += 1,
                    503 => {
                        full += 1;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    s => panic!("status {s}"),
                }
            }
            (ok, full, lat)
        }));
    }
    let (mut ok, mut full, mut lat) = (0, 0, Vec::new());
    for t in tasks {
        let (o, f, l) = t.await.unwrap();
        ok += o;
        full += f;
        lat.extend(l);
    }
    let send_time = start.elapsed();
    let log = p.loggier.clone();
    assert!(log.flush_async(Duration::from_secs(120)).await, "flushed");
    let accepted = ok * BATCH as u64;
    // Durable: a flush means committed to disk; wait for the replay to Loki too.
    let until = Instant::now() + Duration::from_secs(120);
    while log.stats().sinks[0].written < accepted && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let total_time = start.elapsed();
    let written = log.stats().sinks[0].written;
    assert_eq!(written, accepted, "every accepted record written");
    if target != "file" {
        assert_eq!(loki_count.load(Ordering::Relaxed), accepted);
    }
    lat.sort();
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "relay_load target={target} clients={clients} secs={secs}: 202={ok} 503={full} \
         accepted={accepted} records; accepted {:.0} records/s; end-to-end {:.0} records/s; \
         latency p50={:?} p99={:?}",
        accepted as f64 / send_time.as_secs_f64(),
        accepted as f64 / total_time.as_secs_f64(),
        pct(0.5),
        pct(0.99),
    );
    log.shutdown(Duration::from_secs(5));
}

fn main() {
    let secs: u64 = std::env::var("RELAY_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let clients: usize = std::env::var("RELAY_BENCH_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        run("file", secs, clients).await;
        run("loki", secs, clients).await;
        run("loki-durable", secs, clients).await;
    });
}
