use loggier_core::track_endpoint;

#[track_endpoint(tags)]
fn handler() {}

fn main() {
    handler();
}
