//! Issue 9 item 13: the panic hook's flush waits only for writes that can complete.
//! A network sink without a disk queue that is backing off must not hold the
//! panicking thread (possibly an async runtime's) for the whole flush timeout.
//! Global state (panic hook): its own test binary.
#![cfg(feature = "http-ingest")]

use std::convert::Infallible;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

/// A receiver that answers every request 503, on 127.0.0.1.
fn always_503() -> (tokio::runtime::Runtime, String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    let mut r = hyper::Response::new(Full::new(Bytes::from_static(b"down")));
                    *r.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                    Ok::<_, Infallible>(r)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (rt, format!("http://{addr}/api/ingest"))
}

#[test]
fn item13_panic_hook_does_not_wait_out_a_backing_off_sink() {
    let (_rt, url) = always_503();
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = loggier_core::HttpSink::builder(url)
        .api_key("k")
        .timeout(Duration::from_millis(500))
        .build()
        .expect("sink");
    let guard = loggier_core::init_with(
        loggier_core::Loggier::builder()
            .data_dir(dir.path())
            .enable_caching(false)
            .max_retries(10)
            .retry_initial_backoff(Duration::from_millis(500))
            .retry_max_backoff(Duration::from_secs(1))
            .sink(sink),
    )
    .expect("init");
    guard.client().info("before");
    // Let the sink fail once, so it is backing off when the panic comes.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(guard.client().stats().sinks[0].errors >= 1);

    let took = std::thread::spawn(|| {
        let start = Instant::now();
        let r = std::panic::catch_unwind(|| panic!("worker exploded"));
        assert!(r.is_err());
        start.elapsed()
    })
    .join()
    .expect("thread");
    assert!(
        took < Duration::from_millis(1000),
        "the panic hook held the panicking thread for {took:?}"
    );
    // The panic record was accepted and is counted (pending or dropped), not lost.
    let s = guard.client().stats();
    assert_eq!(s.enqueued, 2, "{s:?}");
    guard.client().shutdown(Duration::from_millis(200));
    drop(guard);
}
