//! With no global client installed the attributes only run the function (its own
//! test binary: nothing is installed here).

use loggier_core::{capture_exceptions, trace_function};

#[trace_function(threshold_ms = 0, include_args = true, include_return = true)]
fn add(a: u32, b: u32) -> u32 {
    a + b
}

#[trace_function(threshold_ms = 0)]
async fn twice(x: u32) -> u32 {
    tokio::task::yield_now().await;
    x * 2
}

#[capture_exceptions]
fn fails() -> Result<(), std::fmt::Error> {
    Err(std::fmt::Error)
}

#[trace_function(threshold_ms = 0)]
fn panics() {
    panic!("still a panic without a client");
}

#[tokio::test]
async fn functions_behave_exactly_as_without_the_attribute() {
    assert!(loggier_core::global().is_none());
    assert_eq!(add(2, 3), 5);
    assert_eq!(twice(21).await, 42);
    assert_eq!(fails(), Err(std::fmt::Error));
    let p = std::panic::catch_unwind(panics).expect_err("panics");
    assert_eq!(
        p.downcast_ref::<&str>().copied(),
        Some("still a panic without a client")
    );
    assert_eq!(loggier_core::timed!("x", { 1 }), 1);
    assert!(loggier_core::__private::global_timer("y").id().is_none());
}
