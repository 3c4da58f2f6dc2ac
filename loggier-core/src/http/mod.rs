//! The HTTP capture policy shared by every framework adapter (`loggier-tower`,
//! `loggier-axum`, `loggier-actix`): what to record about a request, at which level,
//! with which parts masked, and the record it becomes.
//!
//! Adapters only convert their framework's types and drive an [`Exchange`]:
//!
//! ```
//! use std::sync::Arc;
//! use loggier_core::http::{CaptureSettings, RequestView, header_entries};
//!
//! let settings = Arc::new(
//!     CaptureSettings::builder()
//!         .statuses_to_track(["4xx", "5xx"])
//!         .exclude_paths(["/health"])
//!         .build()?,
//! );
//! let mut req_headers = http::HeaderMap::new();
//! req_headers.insert("authorization", "Bearer secret".parse().unwrap());
//!
//! // Request arrives.
//! let mut exchange = settings.begin("/orders/7", &req_headers).expect("not excluded");
//! exchange.set_route("/orders/{id}");
//! // ... run the handler inside a scope carrying exchange.request_id() ...
//! let tee = exchange.on_response(503, Some(b"text/plain"));
//! if let Some(mut body) = tee {
//!     body.push(b"database unavailable"); // as each frame passes
//!     exchange.set_response_body(body);
//! }
//! // Response body ended (or was dropped):
//! if let Some(level) = exchange.finish() {
//!     let record = exchange.into_record(
//!         level,
//!         RequestView { method: "GET", path: "/orders/7", query: None, client_ip: None },
//!         header_entries(&req_headers),
//!         std::iter::empty(),
//!     );
//!     assert_eq!(record.message, "Server error: GET /orders/7 - 503");
//!     // loggier.log(record);
//! }
//! # Ok::<(), loggier_core::ConfigError>(())
//! ```
//!
//! Panics: [`install_request_panic_hook`] + [`PanicCapture`] regions around each poll
//! let an adapter recover the message and backtrace of a handler panic
//! ([`take_request_panic`]) and record it with [`Exchange::set_panic`].
//!
//! Formats: the record is the `context.transaction.request/response` shape of the
//! Loggier notes (seeds/004, "Example Log Output"); request ids and W3C
//! [`traceparent`](https://www.w3.org/TR/trace-context/#traceparent-header) are read
//! from request headers.

mod body;
mod env;
mod exchange;
pub(crate) mod panic;
mod redact;
mod request_id;
mod settings;
mod traceparent;

pub use body::BodyCapture;
pub use exchange::{Exchange, HTTP_LOGGER, HeaderEntry, RequestView, header_entries};
pub use panic::{
    PanicCapture, RequestPanic, install_request_panic_hook, panic_message, take_request_panic,
};
pub use redact::FILTERED;
pub use request_id::{
    MAX_REQUEST_ID_LEN, generate_request_id, is_valid_request_id, request_id_or_generate,
};
pub use settings::{
    CaptureSettings, CaptureSettingsBuilder, DEFAULT_MAX_BODY_SIZE, DEFAULT_REQUEST_ID_HEADER,
    DEFAULT_SENSITIVE_HEADERS, DEFAULT_SLOW_REQUEST_THRESHOLD, MAX_BODY_SIZE_LIMIT,
    ResponseBodyCapture, StatusSet, StatusSpec,
};
pub use traceparent::TraceParent;
