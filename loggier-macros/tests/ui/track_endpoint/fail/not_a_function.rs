use loggier_core::track_endpoint;

#[track_endpoint(tags = ["a"])]
#[derive(Debug)]
struct Handler;

#[track_endpoint]
const fn constant() -> u8 {
    1
}

fn main() {
    // Both items are still emitted.
    let _ = Handler;
    let _ = constant();
}
