#[loggier_core::trace_function]
struct Order {
    id: u64,
}

#[loggier_core::capture_exceptions]
enum State {
    Open,
}

#[loggier_core::trace_database]
impl Order {}

#[loggier_core::trace_http]
const LIMIT: u32 = 5;

fn main() {
    let o = Order { id: LIMIT.into() };
    let _ = (o.id, State::Open);
}
