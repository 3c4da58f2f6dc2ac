//! Failed keys are rate-limited per client address: real HTTP from 127.0.0.2 (a
//! guesser) and 127.0.0.1 (a legitimate client) to a relay served with
//! `ConnectInfo`, the way the binary serves it — and through the binary itself.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestRelay, http};
use loggier_relay::{ApiKey, KeySet, Relay, RelayConfig};
use serde_json::{Value, json};

/// A client whose connections leave from `ip` (any 127.0.0.0/8 address is local on
/// Linux).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::from(ip))
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn config() -> RelayConfig {
    RelayConfig {
        keys: KeySet::new(vec![ApiKey::new("right-key", true, false)]),
        auth_failure_burst: 3.try_into().unwrap(),
        auth_failures_per_min: 1.try_into().unwrap(),
        ..RelayConfig::default()
    }
}

/// The relay served with the peer address, as the binary does.
async fn serve_with_connect_info(relay: Relay) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = relay
        .router()
        .into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    format!("http://{addr}")
}

async fn post_log(client: &reqwest::Client, base: &str, key: &str) -> reqwest::Response {
    client
        .post(format!("{base}/log"))
        .header("x-api-key", key)
        .json(&json!({"message": "hello"}))
        .send()
        .await
        .unwrap()
}

async fn code(res: reqwest::Response) -> String {
    let v: Value = res.json().await.unwrap();
    v["error"]["code"].as_str().unwrap_or_default().to_string()
}

fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_keys_lock_out_only_the_guessing_address() {
    let dir = tempfile::tempdir().unwrap();
    let loggier = loggier_core::Loggier::builder()
        .service_name("relay")
        .data_dir(dir.path())
        .build()
        .unwrap();
    let base = serve_with_connect_info(Relay::builder(loggier).config(config()).build()).await;
    let guesser = client_from([127, 0, 0, 2]);
    let user = client_from([127, 0, 0, 1]);

    // The budget: three wrong keys are plain 401s.
    for i in 0..3 {
        let res = post_log(&guesser, &base, &format!("guess-{i}")).await;
        assert_eq!(res.status(), 401, "guess {i}");
        assert_eq!(code(res).await, "invalid_key");
    }
    // The fourth is refused before its key is looked at.
    let res = post_log(&guesser, &base, "guess-3").await;
    assert_eq!(res.status(), 429);
    let wait = retry_after(&res);
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    assert_eq!(code(res).await, "auth_rate_limited");
    // Locked out: even the right key from that address gets 429, so guessing does
    // not go on at full speed behind the 429s.
    let res = post_log(&guesser, &base, "right-key").await;
    assert_eq!(res.status(), 429);
    assert_eq!(code(res).await, "auth_rate_limited");

    // Another address is not affected: its right key works, its wrong key is a 401.
    let res = post_log(&user, &base, "right-key").await;
    assert_eq!(res.status(), 202);
    let res = post_log(&user, &base, "typo-key").await;
    assert_eq!(res.status(), 401);
    assert_eq!(code(res).await, "invalid_key");
    // Correct keys never use the budget.
    for _ in 0..10 {
        assert_eq!(post_log(&user, &base, "right-key").await.status(), 202);
    }
    let res = post_log(&user, &base, "typo-again").await;
    assert_eq!(res.status(), 401);

    let metrics = user
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("loggier_relay_rejected_total{reason=\"auth_rate_limited\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_connect_info_every_caller_shares_one_failure_budget() {
    let dir = tempfile::tempdir().unwrap();
    let loggier = loggier_core::Loggier::builder()
        .service_name("relay")
        .data_dir(dir.path())
        .build()
        .unwrap();
    // `TestRelay::serve` mounts the router without `ConnectInfo`: it still works.
    let relay = TestRelay::serve(Relay::builder(loggier).config(config()).build(), dir).await;
    assert_eq!(
        post_log(&http(), &relay.base, "right-key").await.status(),
        202
    );
    for i in 0..3 {
        let res = post_log(&http(), &relay.base, &format!("guess-{i}")).await;
        assert_eq!(res.status(), 401);
    }
    let res = post_log(&http(), &relay.base, "guess-3").await;
    assert_eq!(res.status(), 429);
    // The shared budget is spent for everyone (documented trade-off).
    let res = post_log(&client_from([127, 0, 0, 3]), &relay.base, "right-key").await;
    assert_eq!(res.status(), 429);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_limits_failed_keys_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_loggier-relay"))
        .env_clear()
        .env("LOGGIER_RELAY_ADDR", format!("127.0.0.1:{port}"))
        .env("LOGGIER_DATA_DIR", dir.path())
        .env("LOGGIER_RELAY_INGEST_KEYS", "right-key")
        .env("LOGGIER_RELAY_AUTH_FAILURE_BURST", "2")
        .env("LOGGIER_RELAY_AUTH_FAILURES_PER_MIN", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let guesser = client_from([127, 0, 0, 2]);
    let user = client_from([127, 0, 0, 1]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while user.get(format!("{base}/health")).send().await.is_err() {
        assert!(Instant::now() < deadline, "relay did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(post_log(&guesser, &base, "a").await.status(), 401);
    assert_eq!(post_log(&guesser, &base, "b").await.status(), 401);
    assert_eq!(post_log(&guesser, &base, "c").await.status(), 429);
    assert_eq!(post_log(&guesser, &base, "right-key").await.status(), 429);
    assert_eq!(post_log(&user, &base, "right-key").await.status(), 202);
    assert_eq!(post_log(&user, &base, "d").await.status(), 401);
    child.kill().unwrap();
    let _ = child.wait();
}
