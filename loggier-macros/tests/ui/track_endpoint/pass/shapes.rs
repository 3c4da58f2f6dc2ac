//! Every function shape a handler can have still compiles, and behaves as written.
use loggier_core::track_endpoint;
use std::fmt::Display;

#[track_endpoint]
fn bare() -> u8 {
    1
}

#[track_endpoint(
    tags = ["payment", "critical"],
    statuses = [200, 201, "4xx", 500..=504, "502-503"],
    capture_request_body = true,
    capture_response_body = false,
    slow_threshold_ms = 250,
)]
async fn all_options(x: u32) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = "7".parse()?;
    if x == 0 {
        return Ok(0);
    }
    Ok(n + x)
}

#[track_endpoint(tags = ["generic"])]
fn generic<T: Display + Clone>(value: &T) -> impl Display + use<T> {
    value.clone()
}

struct Shop {
    orders: Vec<u32>,
}

impl Shop {
    #[track_endpoint(statuses = [404])]
    fn count(&self) -> usize {
        self.orders.len()
    }

    #[track_endpoint(slow_threshold_ms = 0)]
    async fn add(&mut self, id: u32) -> &[u32] {
        self.orders.push(id);
        &self.orders
    }
}

// The user's own names cannot clash with the generated ones.
#[track_endpoint]
fn shadowing(__loggier_endpoint: u8) -> u8 {
    static __LOGGIER_ENDPOINT: u8 = 2;
    __loggier_endpoint + __LOGGIER_ENDPOINT
}

fn main() {
    assert_eq!(bare(), 1);
    assert_eq!(generic(&"x").to_string(), "x");
    let mut shop = Shop { orders: vec![] };
    assert_eq!(shop.count(), 0);
    assert_eq!(shadowing(1), 3);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(rt.block_on(all_options(1)), Ok(8));
    assert_eq!(rt.block_on(all_options(0)), Ok(0));
    assert_eq!(rt.block_on(shop.add(5)), &[5]);
}
