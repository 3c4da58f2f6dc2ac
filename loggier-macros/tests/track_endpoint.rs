//! `#[track_endpoint]` at run time, outside and inside a request scope, against the
//! real file sink (global client: its own test binary). The HTTP middleware side is
//! covered by the adapters' shared scenarios and the workspace `tests/` crate.

mod support;

use std::sync::Arc;
use std::time::Duration;

use loggier_core::context::{EndpointSlot, Scope};
use loggier_core::track_endpoint;
use support::{install, records_named};

#[track_endpoint(tags = ["reports", "nightly"], slow_threshold_ms = 10_000)]
fn sync_handler(n: u32) -> u32 {
    n * 2
}

#[test]
fn outside_a_request_a_sync_call_is_timed_and_recorded_with_its_tags() {
    install();
    assert_eq!(sync_handler(21), 42);
    let r = records_named("track_endpoint::sync_handler");
    assert_eq!(r.len(), 1, "{r:#?}");
    let r = &r[0];
    assert_eq!(r["level"], "INFO");
    assert_eq!(r["logger"], "track_endpoint");
    assert_eq!(r["timing"]["kind"], "http");
    assert_eq!(r["timing"]["threshold_ms"], 10_000.0);
    assert!(
        r["timing"]["duration_ms"]
            .as_f64()
            .is_some_and(|d| d >= 0.0)
    );
    assert_eq!(r["tags"], serde_json::json!(["reports", "nightly"]));
    assert!(
        r["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Endpoint: track_endpoint::sync_handler (")),
        "{r}"
    );
}

#[track_endpoint(slow_threshold_ms = 20)]
async fn async_handler(fail: bool) -> Result<&'static str, std::num::ParseIntError> {
    tokio::time::sleep(Duration::from_millis(30)).await;
    if fail {
        let _n: u32 = "not a number".parse()?;
    }
    Ok("done")
}

#[tokio::test]
async fn outside_a_request_a_slow_async_call_is_a_warning_and_errors_pass_through() {
    install();
    assert_eq!(async_handler(false).await, Ok("done"));
    assert!(
        async_handler(true).await.is_err(),
        "`?` still returns the Err"
    );
    let r = records_named("track_endpoint::async_handler");
    assert_eq!(r.len(), 2, "one record per call: {r:#?}");
    for r in &r {
        assert_eq!(r["level"], "WARNING");
        assert!(
            r["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Slow endpoint: ")),
            "{r}"
        );
        assert!(
            r["timing"]["duration_ms"]
                .as_f64()
                .is_some_and(|d| d >= 30.0),
            "{r}"
        );
    }
}

#[track_endpoint(tags = ["fragile"])]
fn panicking_handler() -> u8 {
    panic!("handler blew up")
}

#[test]
fn outside_a_request_a_panic_is_recorded_and_keeps_unwinding() {
    install();
    let caught = std::panic::catch_unwind(panicking_handler);
    assert!(caught.is_err(), "the panic reached the caller");
    let r = records_named("track_endpoint::panicking_handler");
    assert_eq!(r.len(), 1, "{r:#?}");
    assert_eq!(r[0]["level"], "ERROR");
    assert!(
        r[0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Endpoint panicked: ")),
        "{}",
        r[0]
    );
}

#[track_endpoint(tags = ["in-request"], statuses = [404], capture_request_body = true)]
async fn scoped_handler() -> u8 {
    tokio::task::yield_now().await;
    7
}

#[tokio::test]
async fn inside_a_request_scope_the_handler_fills_the_slot_and_records_nothing_itself() {
    install();
    // What a Loggier middleware does: one slot per request, in the request scope.
    let slot = Arc::new(EndpointSlot::new());
    let out = Scope::new()
        .request_id("req-endpoint-1")
        .endpoint_slot(Arc::clone(&slot))
        .instrument(scoped_handler())
        .await;
    assert_eq!(out, 7);
    let options = slot.get().expect("the handler filled the slot");
    assert_eq!(options.name(), "track_endpoint::scoped_handler");
    assert_eq!(options.tag_list(), ["in-request"]);
    assert_eq!(options.tracks_status(404), Some(true));
    assert_eq!(options.tracks_status(500), Some(false));
    assert_eq!(options.request_body(), Some(true));
    assert_eq!(options.response_body(), None);
    assert!(
        records_named("track_endpoint::scoped_handler").is_empty(),
        "the middleware records the request, not the attribute"
    );
}
