//! The record mix the encode benches and the pipeline runs use.
//!
//! Four kinds, each shaped like what a web service logs:
//! - [`plain`]: a message and 3 fields (`user_id`, `order_id`, `amount_cents`);
//! - [`with_context`]: a message, request/trace/span ids, 7 context fields and 2 tags;
//! - [`http_transaction`]: a recorded request (`POST /api/orders/{id}`, 8 headers,
//!   2 query parameters, a 180-byte JSON body) and its 500 response with a JSON body;
//! - [`exception`]: an error with a 2-cause chain and 12 frames plus their backtrace
//!   text (about 1.5 KiB).
//!
//! [`mix`] repeats a 20-record cycle: 10 plain, 5 with context, 4 HTTP transactions,
//! 1 exception — most lines of a service are plain or context records.

use loggier_core::{
    BodyContent, CapturedBody, Exception, ExceptionCause, Frame, HttpRequest, HttpResponse,
    HttpTransaction, Level, Record,
};

/// One kind of record in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`plain`].
    Plain,
    /// [`with_context`].
    Context,
    /// [`http_transaction`].
    Http,
    /// [`exception`].
    Exception,
}

impl Kind {
    /// Every kind, in report order.
    pub const ALL: [Kind; 4] = [Kind::Plain, Kind::Context, Kind::Http, Kind::Exception];

    /// Short name for bench ids and tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Plain => "plain",
            Kind::Context => "context",
            Kind::Http => "http",
            Kind::Exception => "exception",
        }
    }

    /// The `i`-th record of this kind (ids vary with `i`).
    pub fn record(self, i: u64) -> Record {
        match self {
            Kind::Plain => plain(i),
            Kind::Context => with_context(i),
            Kind::Http => http_transaction(i),
            Kind::Exception => exception(i),
        }
    }
}

/// A message and 3 fields.
pub fn plain(i: u64) -> Record {
    Record::new(Level::Info, "order created")
        .with_logger("shop::orders")
        .with_field("user_id", 40_000 + i)
        .with_field("order_id", format!("ORD-{i:08}"))
        .with_field("amount_cents", 1999)
}

/// A record inside a request scope: ids, 7 context fields, 2 tags.
pub fn with_context(i: u64) -> Record {
    let mut r = Record::new(Level::Info, "payment authorised")
        .with_logger("shop::payments")
        .with_field("route", "/api/orders/{id}/pay")
        .with_field("tenant", "acme")
        .with_field("region", "eu-west-1")
        .with_field("user_id", 40_000 + i)
        .with_field("order_id", format!("ORD-{i:08}"))
        .with_field("provider", "stripe")
        .with_field("attempt", 1)
        .with_tag("payments")
        .with_tag("web");
    r.request_id = Some(format!("0190a1b2-c3d4-7e5f-8a9b-{i:012x}"));
    r.trace_id = Some(format!("4bf92f3577b34da6a3ce929d{i:08x}"));
    r.span_id = Some(format!("00f067aa{i:08x}"));
    r
}

/// A recorded failed request: request with headers, query and JSON body; 500 with a
/// JSON body.
pub fn http_transaction(i: u64) -> Record {
    let mut req = HttpRequest::default();
    req.method = "POST".into();
    req.path = format!("/api/orders/{i}");
    req.route = Some("/api/orders/{id}".into());
    req.query.insert("expand".into(), "items".into());
    req.query.insert("currency".into(), "EUR".into());
    for (k, v) in [
        ("host", "shop.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        ),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("content-length", "180"),
        ("x-forwarded-for", "203.0.113.7"),
        ("authorization", "[FILTERED]"),
        ("accept-encoding", "gzip, br"),
    ] {
        req.headers.insert(k.into(), v.into());
    }
    req.client_ip = Some("203.0.113.7".into());
    req.user_agent = Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0".into());
    req.body = Some(CapturedBody {
        content: BodyContent::Json(serde_json::json!({
            "items": [{"sku": "SKU-1", "qty": 2}, {"sku": "SKU-9", "qty": 1}],
            "shipping": {"country": "DE", "method": "express"},
            "coupon": null,
            "card": "[FILTERED]"
        })),
        truncated: false,
        size_bytes: 180,
    });
    let mut resp = HttpResponse::default();
    resp.status_code = 500;
    resp.content_type = Some("application/json".into());
    resp.headers
        .insert("content-type".into(), "application/json".into());
    resp.headers
        .insert("x-request-id".into(), format!("req-{i}"));
    resp.body = Some(CapturedBody {
        content: BodyContent::Json(serde_json::json!({"error": "inventory service unavailable"})),
        truncated: false,
        size_bytes: 41,
    });
    let mut tx = HttpTransaction::new(req);
    tx.response = Some(resp);
    tx.duration_ms = 12.5;
    let mut r = Record::new(
        Level::Error,
        format!("Server error: POST /api/orders/{i} - 500"),
    )
    .with_logger("http")
    .with_http(tx);
    r.request_id = Some(format!("0190a1b2-c3d4-7e5f-8a9b-{i:012x}"));
    r.trace_id = Some(format!("4bf92f3577b34da6a3ce929d{i:08x}"));
    r
}

/// An error record with a cause chain, frames and backtrace text.
pub fn exception(i: u64) -> Record {
    let mut e = Exception::new(
        "sqlx::Error",
        "pool timed out while waiting for a connection",
    );
    e.chain = vec![
        ExceptionCause {
            type_name: "std::io::Error".into(),
            message: "connection refused (os error 111)".into(),
        },
        ExceptionCause {
            type_name: "tokio::time::error::Elapsed".into(),
            message: "deadline has elapsed".into(),
        },
    ];
    let mut bt = String::new();
    for n in 0..12u32 {
        let func = format!("shop::orders::repository::OrderRepo::load_{n}");
        let file = format!("src/orders/repository_{n}.rs");
        bt.push_str(&format!(
            "  {n}: {func}\n             at {file}:{}:9\n",
            40 + n
        ));
        e.frames.push(Frame {
            func,
            file: Some(file),
            line: Some(40 + n),
        });
    }
    e.backtrace = Some(bt);
    let mut r = Record::new(Level::Error, format!("order {i} could not be loaded"))
        .with_logger("shop::orders")
        .with_field("order_id", format!("ORD-{i:08}"))
        .with_exception(e);
    r.request_id = Some(format!("0190a1b2-c3d4-7e5f-8a9b-{i:012x}"));
    r
}

/// The kind at position `i` of the 20-record cycle (10 plain, 5 context, 4 HTTP,
/// 1 exception, interleaved).
pub fn kind_at(i: u64) -> Kind {
    match i % 20 {
        19 => Kind::Exception,
        3 | 8 | 13 | 18 => Kind::Http,
        1 | 5 | 9 | 14 | 17 => Kind::Context,
        _ => Kind::Plain,
    }
}

/// `n` records of the realistic mix (see the module docs).
pub fn mix(n: usize) -> Vec<Record> {
    (0..n as u64).map(|i| kind_at(i).record(i)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_has_the_documented_shares() {
        let mut counts = [0usize; 4];
        for i in 0..20 {
            counts[Kind::ALL
                .iter()
                .position(|k| *k == kind_at(i))
                .expect("a kind")] += 1;
        }
        assert_eq!(counts, [10, 5, 4, 1]);
    }
}
