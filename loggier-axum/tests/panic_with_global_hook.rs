//! A handler panic is recorded once — by the middleware — even when the process-wide
//! panic hook of `init` is installed after the layer (so it wraps the request hook).
//! Global state: its own test binary.

use axum::Router;
use axum::routing::get;
use loggier_axum::LoggierRouterExt;
use loggier_test_support::scenarios::new_id;
use loggier_test_support::test_client;

async fn boom() -> &'static str {
    panic!("boom from handler")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handler_panic_is_recorded_once_and_other_panics_still_by_the_global_hook() {
    let (log, records) = test_client("panic-once");
    let app: Router = Router::new()
        .route("/panic", get(boom))
        .route("/ok", get(|| async { "ok" }))
        .with_loggier(log.clone());
    // What `init` does, after the layer installed its request hook.
    loggier_core::set_global(log.clone());
    loggier_core::install_panic_hook();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let id = new_id("once");
    let resp = loggier_test_support::http_client()
        .get(format!("{base}/panic"))
        .header("x-request-id", &id)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 500);
    let tx = records.transaction(&id).await;
    assert_eq!(tx["exception"]["type"], "panic");

    // A panic outside any request is the global hook's: one critical record.
    let _ = std::thread::spawn(|| panic!("background job exploded")).join();
    let bg = records
        .wait_for("background panic record", |r| r["logger"] == "panic")
        .await;
    assert!(
        bg["message"]
            .as_str()
            .unwrap_or_default()
            .contains("background job exploded"),
        "{bg}"
    );

    let all = records.all().await;
    let panic_records: Vec<_> = all.iter().filter(|r| r["logger"] == "panic").collect();
    assert_eq!(
        panic_records.len(),
        1,
        "the handler panic must not be recorded twice: {panic_records:?}"
    );
}
