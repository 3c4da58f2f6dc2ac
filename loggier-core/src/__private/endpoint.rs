//! Runtime side of `#[track_endpoint]`: the guard the attribute puts at the top of the
//! handler's body. Not public API.

use std::time::Instant;

use crate::Loggier;
use crate::context::{EndpointOptions, set_endpoint_options};
use crate::record::{Level, Record, Timing, TimingKind};

/// Logger name of the timing records an endpoint called outside any request makes.
pub const STANDALONE_LOGGER: &str = "track_endpoint";

/// Held for the duration of a tracked handler call. Inside a request captured by a
/// Loggier middleware it only filled the request's endpoint slot and does nothing on
/// drop. Outside one it timed the call (monotonic clock) and, on drop — normal
/// return, early `return`, `?`, an unwinding panic or a dropped future — records one
/// timing record (kind `http`, the endpoint's tags) through the global client.
#[must_use]
#[derive(Debug)]
pub struct EndpointGuard {
    standalone: Option<(Instant, &'static EndpointOptions, Loggier)>,
}

/// Called first thing in a tracked handler's body.
///
/// Cost inside a request: one scope lookup and a `OnceLock` set. Outside one: the same
/// lookup and one relaxed atomic load when no global client is installed; with one,
/// the client is cloned (one reference count) and the clock read (records go to that
/// client).
#[inline]
pub fn start(options: &'static EndpointOptions) -> EndpointGuard {
    if set_endpoint_options(options) || !crate::global::global_installed() {
        return EndpointGuard { standalone: None };
    }
    let global = crate::global::load_global();
    EndpointGuard {
        standalone: global
            .as_deref()
            .map(|client| (Instant::now(), options, client.clone())),
    }
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        let Some((started, options, client)) = self.standalone.take() else {
            return;
        };
        let elapsed = started.elapsed();
        let panicked = std::thread::panicking();
        let slow = options.slow_threshold().is_some_and(|t| elapsed >= t);
        let level = if panicked {
            Level::Error
        } else if slow {
            Level::Warning
        } else {
            Level::Info
        };
        if !client.enabled(level) {
            return;
        }
        let duration_ms = crate::timing::millis(elapsed);
        let name = options.name();
        let message = if panicked {
            format!("Endpoint panicked: {name} ({duration_ms:.1} ms)")
        } else if slow {
            format!("Slow endpoint: {name} ({duration_ms:.1} ms)")
        } else {
            format!("Endpoint: {name} ({duration_ms:.1} ms)")
        };
        let mut record = Record::new(level, message)
            .with_logger(STANDALONE_LOGGER)
            .with_timing(Timing {
                threshold_ms: options.slow_threshold().map(crate::timing::millis),
                ..Timing::new(name, TimingKind::Http, duration_ms)
            });
        record
            .tags
            .extend(options.tag_list().iter().map(|t| (*t).to_string()));
        client.log(record);
    }
}
