use loggier_core::track_endpoint;

#[track_endpoint(tags = "payment")]
fn tags_not_a_list() {}

#[track_endpoint(tags = ["ok", 7])]
fn tag_not_a_string() {}

#[track_endpoint(capture_request_body = "yes")]
fn flag_not_a_bool() {}

#[track_endpoint(slow_threshold_ms = 1.5)]
fn threshold_not_an_integer() {}

#[track_endpoint(statuses = 404)]
fn statuses_not_a_list() {}

fn main() {
    tags_not_a_list();
    tag_not_a_string();
    flag_not_a_bool();
    threshold_not_an_integer();
    statuses_not_a_list();
}
