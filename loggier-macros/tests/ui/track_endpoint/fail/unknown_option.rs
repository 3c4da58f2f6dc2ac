use loggier_core::track_endpoint;

#[track_endpoint(tags = ["a"], threshold_ms = 5)]
async fn handler() -> u8 {
    1
}

fn main() {
    // The function is still emitted: no "cannot find function" error below.
    let _ = handler();
}
