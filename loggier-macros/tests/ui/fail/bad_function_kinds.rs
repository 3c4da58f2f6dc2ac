#[loggier_core::trace_function]
const fn answer() -> u32 {
    42
}

trait Repo {
    #[loggier_core::trace_function]
    fn load(&self) -> u32;
}

#[loggier_core::trace_function(threshold_ms)]
fn missing_value() {}

fn main() {
    let _ = answer();
    missing_value();
}
