use loggier_core::track_endpoint;

#[track_endpoint(statuses = [404, 1000])]
fn too_big() {}

#[track_endpoint(statuses = ["5xy"])]
fn bad_class() {}

#[track_endpoint(statuses = [599..=500])]
fn reversed() {}

#[track_endpoint(statuses = [500..600])]
fn half_open() {}

fn main() {
    too_big();
    bad_class();
    reversed();
    half_open();
}
