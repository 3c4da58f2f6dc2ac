#[loggier_core::trace_function(name = "a", threshold_ms = 5, name = "b")]
fn f() {}

#[loggier_core::trace_http(level = "info", log_level = "debug")]
fn g() {}

fn main() {
    f();
    g();
}
