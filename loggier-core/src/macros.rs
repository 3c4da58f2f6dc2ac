//! Logging macros: key/value fields and a format string, in the spirit of `tracing`.
//!
//! ```
//! # let log = loggier_core::Loggier::builder().data_dir(std::env::temp_dir().join("loggier-doc-macros")).build().unwrap();
//! let user_id = 42;
//! loggier_core::info!(log, "service started");
//! loggier_core::info!(log, user_id = user_id, plan = "pro", "user {} logged in", user_id);
//! loggier_core::warning!(log, elapsed_ms = 1520, "slow upstream");
//! ```
//!
//! Fields come first (`key = value`, any `serde::Serialize` value), then the message
//! as `format!` arguments. The logger name is the calling module's path. When the
//! level is disabled nothing is evaluated beyond the level check.

/// Logs at an explicit [`Level`](crate::Level): `event!(client, Level::Info, k = v, "fmt", args)`.
#[macro_export]
macro_rules! event {
    ($client:expr, $level:expr, $($key:ident = $value:expr),+ , $fmt:literal $(, $arg:expr)* $(,)?) => {{
        let __client = &$client;
        let __level = $level;
        if __client.enabled(__level) {
            __client
                .__event(__level, ::std::format_args!($fmt $(, $arg)*))
                .logger(::std::module_path!())
                $(.__field(::std::stringify!($key), &$value))+
                .emit();
        }
    }};
    ($client:expr, $level:expr, $fmt:literal $(, $arg:expr)* $(,)?) => {{
        let __client = &$client;
        let __level = $level;
        if __client.enabled(__level) {
            __client
                .__event(__level, ::std::format_args!($fmt $(, $arg)*))
                .logger(::std::module_path!())
                .emit();
        }
    }};
}

/// Logs at trace level; see [`event!`](crate::event).
#[macro_export]
macro_rules! trace {
    ($client:expr, $($rest:tt)+) => { $crate::event!($client, $crate::Level::Trace, $($rest)+) };
}
/// Logs at debug level; see [`event!`](crate::event).
#[macro_export]
macro_rules! debug {
    ($client:expr, $($rest:tt)+) => { $crate::event!($client, $crate::Level::Debug, $($rest)+) };
}
/// Logs at info level; see [`event!`](crate::event).
#[macro_export]
macro_rules! info {
    ($client:expr, $($rest:tt)+) => { $crate::event!($client, $crate::Level::Info, $($rest)+) };
}
/// Logs at warning level; see [`event!`](crate::event).
#[macro_export]
macro_rules! warning {
    ($client:expr, $($rest:tt)+) => { $crate::event!($client, $crate::Level::Warning, $($rest)+) };
}
/// Logs at error level; see [`event!`](crate::event).
#[macro_export]
macro_rules! error {
    ($client:expr, $($rest:tt)+) => { $crate::event!($client, $crate::Level::Error, $($rest)+) };
}
/// Logs at critical level; see [`event!`](crate::event).
#[macro_export]
macro_rules! critical {
    ($client:expr, $($rest:tt)+) => { $crate::event!($client, $crate::Level::Critical, $($rest)+) };
}

/// Builds a [`Fields`](crate::Fields) map: `fields! { "user_id" => 42, "plan" => "pro" }`.
/// Values are any `serde::Serialize` (`null` when serialization fails).
#[macro_export]
macro_rules! fields {
    () => { $crate::Fields::new() };
    ($($key:expr => $value:expr),+ $(,)?) => {{
        let mut __f = $crate::Fields::new();
        $(
            __f.insert(
                ::std::string::ToString::to_string(&$key),
                $crate::__private::to_value(&$value),
            );
        )+
        __f
    }};
}
