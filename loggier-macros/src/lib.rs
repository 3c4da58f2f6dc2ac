//! Attribute macros for Loggier: time functions and record their errors and panics.
//!
//! Use them through `loggier_core` (or a framework crate), which re-exports them:
//!
//! ```
//! use loggier_core::{capture_exceptions, trace_database, trace_function};
//!
//! #[trace_function(threshold_ms = 200, tags = ["billing"])]
//! fn price_cart(items: &[u32]) -> u32 {
//!     items.iter().sum()
//! }
//!
//! #[trace_database(name = "orders.by_id", include_params = true)]
//! async fn load_order(id: u64) -> Result<String, std::io::Error> {
//!     Ok(format!("order {id}"))
//! }
//!
//! #[capture_exceptions]
//! fn parse_port(text: &str) -> Result<u16, std::num::ParseIntError> {
//!     text.parse()
//! }
//!
//! // No client installed: the functions just run.
//! assert_eq!(price_cart(&[1, 2, 3]), 6);
//! assert!(parse_port("http").is_err());
//! ```
//!
//! | attribute | default threshold | `timing.kind` | extra options |
//! |---|---|---|---|
//! | `#[trace_function]` | 500 ms | `function` | `include_args`, `include_return` |
//! | `#[trace_http]` | 1000 ms | `http` | `mask_headers`, `mask_params`, `include_body` |
//! | `#[trace_database]` | 100 ms | `database` | `include_params` |
//! | `#[capture_exceptions]` | — | — | (no timing) |
//!
//! Common options: `name = "..."` (default: the function's path), `threshold_ms = N`,
//! `tags = ["..."]`, `level = "info"` (also spelled `log_level`, as in seeds/004).
//! Defaults are the seeds/004 API reference's. The full behaviour (which client,
//! what a record looks like, parents of nested timings, costs) is documented on
//! `loggier_core::trace_function`.
//!
//! `#[track_endpoint(tags, statuses, capture_request_body, capture_response_body,
//! slow_threshold_ms)]` (module `endpoint`) sets a request handler's capture options
//! for the HTTP middleware; documented on `loggier_core::track_endpoint`.

mod args;
mod endpoint;
mod expand;

use proc_macro::TokenStream;

use args::MacroKind;

/// Times a function or method (sync or `async`) and emits one timing record
/// (`timing.kind = "function"`) when the call takes at least `threshold_ms`
/// (default 500 ms); an `Err` return or a panic is always recorded.
///
/// Options: `name = "..."`, `threshold_ms = N`, `tags = [...]`, `include_args = bool`,
/// `include_return = bool`, `level = "info"`. See `loggier_core::trace_function`.
#[proc_macro_attribute]
pub fn trace_function(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(MacroKind::Function, args.into(), item.into()).into()
}

/// Times an outgoing HTTP call made by the function (`timing.kind = "http"`, default
/// threshold 1000 ms).
///
/// Options: `name`, `threshold_ms`, `tags`, `mask_headers = [...]`,
/// `mask_params = [...]`, `include_body = bool`, `level`. See
/// `loggier_core::trace_http`.
#[proc_macro_attribute]
pub fn trace_http(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(MacroKind::Http, args.into(), item.into()).into()
}

/// Times a database call made by the function (`timing.kind = "database"`, default
/// threshold 100 ms).
///
/// Options: `name`, `threshold_ms`, `tags`, `include_params = bool`, `level`. See
/// `loggier_core::trace_database`.
#[proc_macro_attribute]
pub fn trace_database(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(MacroKind::Database, args.into(), item.into()).into()
}

/// Records an `Err` return or a panic escaping the function as an exception record
/// (level error by default); no timing.
///
/// Options: `name`, `tags`, `level`. See `loggier_core::capture_exceptions`.
#[proc_macro_attribute]
pub fn capture_exceptions(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::expand(MacroKind::CaptureExceptions, args.into(), item.into()).into()
}

/// Sets a request handler's capture options for the requests it serves:
/// `#[track_endpoint(tags = [...], statuses = [...], capture_request_body = bool,
/// capture_response_body = bool, slow_threshold_ms = N)]`. Inside a Loggier
/// middleware it fills the request's endpoint slot; outside one it times the call and
/// records it. See `loggier_core::track_endpoint`.
#[proc_macro_attribute]
pub fn track_endpoint(args: TokenStream, item: TokenStream) -> TokenStream {
    endpoint::expand(args.into(), item.into()).into()
}
