use loggier_core::track_endpoint;

#[track_endpoint(statuses = [404], tags = ["a"], statuses = [500])]
fn handler() {}

fn main() {
    handler();
}
