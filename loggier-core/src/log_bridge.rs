//! A [`log::Log`] implementation: `log::info!` and friends, from the application or
//! from any dependency, arrive as Loggier records.
//!
//! ```
//! # fn main() -> Result<(), loggier_core::ConfigError> {
//! let dir = std::env::temp_dir().join("loggier-doc-log-bridge");
//! let log = loggier_core::Loggier::builder().data_dir(&dir).build()?;
//! loggier_core::log_bridge::init(log.clone(), log::LevelFilter::Info)?;
//!
//! log::warn!(target: "payments", retry = 2, provider = "acme"; "provider slow");
//! assert!(log.flush(std::time::Duration::from_secs(5)));
//! let text = std::fs::read_to_string(dir.join("loggier.ndjson")).expect("written");
//! assert!(text.contains(r#""logger":"payments""#));
//! assert!(text.contains(r#""retry":2"#));
//!
//! // A second logger cannot be installed: `log` allows one per process.
//! assert!(loggier_core::log_bridge::init(log, log::LevelFilter::Info).is_err());
//! # Ok(()) }
//! ```
//!
//! Mapping:
//!
//! | `log` | record |
//! |---|---|
//! | level `Error`/`Warn`/`Info`/`Debug`/`Trace` | `error`/`warning`/`info`/`debug`/`trace` |
//! | formatted message (`args`) | `message` |
//! | `target` (the module path unless `target:` was given) | `logger` |
//! | key-values (`log::info!(k = v; "...")`) | `context` fields: integers, floats and booleans keep their JSON type, strings stay strings, anything else uses its `Display` text |
//!
//! The record goes through [`Loggier::log`] like any other call, so the current
//! [`Scope`](crate::context::Scope) applies: inside a request handled by the Loggier
//! middleware it carries the request id, trace id and route; masking applies to the
//! key-values.
//!
//! Records logged on the Loggier worker thread (the HTTP client of a network sink
//! logs through `log`: reqwest does) are ignored, so our own delivery never feeds
//! back into the pipeline.

use std::time::Duration;

use log::kv::{self, Key, Value, VisitSource};

use crate::client::Loggier;
use crate::error::ConfigError;
use crate::pipeline::worker::on_pipeline_thread;
use crate::record::{ContextFields, Level, Record};

/// How long [`log::Log::flush`] on a [`LogBridge`] waits for the pipeline: 5 s.
pub const LOG_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// The [`log::Log`] implementation; see the [module docs](self). Install it with
/// [`init`], or hand it to a logger multiplexer of your own.
#[derive(Debug, Clone)]
pub struct LogBridge {
    client: Loggier,
    max_level: log::LevelFilter,
}

impl LogBridge {
    /// A bridge logging through `client`, passing records at `max_level` and more
    /// severe (the client's own level applies too, at every call).
    pub fn new(client: Loggier, max_level: log::LevelFilter) -> Self {
        LogBridge { client, max_level }
    }
}

/// Installs a [`LogBridge`] as the process-wide `log` logger and sets
/// [`log::set_max_level`] to `max_level`, so records below it cost `log` one atomic
/// load and nothing else.
///
/// # Errors
/// [`ConfigError::Invalid`] for setting `log_bridge` when a `log` logger is already
/// installed (`env_logger`, an earlier `init`, …): `log` allows only one per process,
/// and the existing one is left in place.
pub fn init(client: Loggier, max_level: log::LevelFilter) -> Result<(), ConfigError> {
    log::set_boxed_logger(Box::new(LogBridge::new(client, max_level))).map_err(|_| {
        ConfigError::invalid(
            "log_bridge",
            "log::set_logger",
            "a `log` logger is already installed for this process; only one can be",
        )
    })?;
    log::set_max_level(max_level);
    Ok(())
}

/// `log` level → record level.
pub fn map_level(level: log::Level) -> Level {
    match level {
        log::Level::Error => Level::Error,
        log::Level::Warn => Level::Warning,
        log::Level::Info => Level::Info,
        log::Level::Debug => Level::Debug,
        log::Level::Trace => Level::Trace,
    }
}

impl log::Log for LogBridge {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.max_level && self.client.enabled(map_level(metadata.level()))
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) || on_pipeline_thread() {
            return;
        }
        let message = match record.args().as_str() {
            Some(s) => s.to_string(),
            None => record.args().to_string(),
        };
        let mut out = Record::new(map_level(record.level()), message)
            .with_logger(record.target().to_string());
        let mut visitor = KvVisitor(&mut out.context);
        // Our visitor never fails; a failing `Source` only loses its remaining pairs.
        let _ = record.key_values().visit(&mut visitor);
        self.client.log(out);
    }

    fn flush(&self) {
        // The worker waiting on itself would only time out.
        if !on_pipeline_thread() {
            self.client.flush(LOG_FLUSH_TIMEOUT);
        }
    }
}

struct KvVisitor<'a>(&'a mut ContextFields);

impl<'kvs> VisitSource<'kvs> for KvVisitor<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), kv::Error> {
        let v = if let Some(b) = value.to_bool() {
            b.into()
        } else if let Some(i) = value.to_i64() {
            i.into()
        } else if let Some(u) = value.to_u64() {
            u.into()
        } else if let Some(f) = value.to_f64() {
            f.into()
        } else if let Some(s) = value.to_borrowed_str() {
            s.into()
        } else {
            value.to_string().into()
        };
        self.0.insert(key.as_str().to_string(), v);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_one_to_one() {
        assert_eq!(map_level(log::Level::Error), Level::Error);
        assert_eq!(map_level(log::Level::Warn), Level::Warning);
        assert_eq!(map_level(log::Level::Info), Level::Info);
        assert_eq!(map_level(log::Level::Debug), Level::Debug);
        assert_eq!(map_level(log::Level::Trace), Level::Trace);
    }

    #[test]
    fn key_values_keep_their_json_type() {
        let mut fields = ContextFields::new();
        let pairs: [(&str, Value<'_>); 5] = [
            ("n", Value::from(-3i64)),
            ("u", Value::from(u64::MAX)),
            ("f", Value::from(0.5f64)),
            ("b", Value::from(true)),
            ("s", Value::from("text")),
        ];
        let mut v = KvVisitor(&mut fields);
        for (k, val) in pairs {
            v.visit_pair(Key::from_str(k), val).expect("visit");
        }
        v.visit_pair(
            Key::from_str("d"),
            Value::from_display(&std::net::Ipv4Addr::LOCALHOST),
        )
        .expect("visit");
        assert_eq!(
            serde_json::Value::from(fields),
            serde_json::json!({"n": -3, "u": u64::MAX, "f": 0.5, "b": true, "s": "text", "d": "127.0.0.1"})
        );
    }
}
