//! The process-wide client and the panic hook.

use std::backtrace::Backtrace;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::client::{Loggier, LoggierBuilder};
use crate::config::Config;
use crate::error::ConfigError;
use crate::pipeline::worker::on_pipeline_thread;
use crate::record::{Exception, Level, Record};

static GLOBAL: ArcSwapOption<Loggier> = ArcSwapOption::const_empty();
static HOOK_INSTALLED: AtomicBool = AtomicBool::new(false);
/// Mirrors "GLOBAL is Some" so the timing macros' no-client path is one relaxed load.
static GLOBAL_SET: AtomicBool = AtomicBool::new(false);

/// How long the panic hook waits for the panic record to be written: 2 s.
pub const PANIC_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How long dropping an [`InitGuard`] waits for the pipeline to drain: 5 s.
pub const GUARD_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The client installed by [`init`] or [`set_global`], if any.
pub fn global() -> Option<Loggier> {
    GLOBAL.load_full().map(|l| (*l).clone())
}

/// The installed client without cloning it (the timing macros' fast path: one
/// atomic load when none is installed).
pub(crate) fn load_global() -> arc_swap::Guard<Option<Arc<Loggier>>> {
    GLOBAL.load()
}

/// `false` when no client is installed (a relaxed load; may lag a concurrent
/// install by a few calls, never reports an uninstalled client as usable because
/// [`load_global`] is still checked).
#[inline]
pub(crate) fn global_installed() -> bool {
    GLOBAL_SET.load(Ordering::Relaxed)
}

/// Installs `client` as the process-wide client (replacing any previous one) without
/// a panic hook or guard. Prefer [`init`].
pub fn set_global(client: Loggier) {
    GLOBAL.store(Some(Arc::new(client)));
    GLOBAL_SET.store(true, Ordering::Release);
}

/// Builds a client from `config`, installs it as the process-wide client and, when
/// `config.capture_uncaught` is set, a panic hook. Sinks come from `config.sinks`.
///
/// The panic hook records one critical record (logger `"panic"`) with the panic
/// message, location, thread name and a forced backtrace, flushes for at most
/// [`PANIC_FLUSH_TIMEOUT`] — giving up at once on a sink that cannot make progress
/// now, such as a network sink backing off — then calls the hook that was installed
/// before. A panic on Loggier's own worker or sink threads (a sink's bug, caught and
/// counted by the pipeline) only calls the previous hook.
///
/// # Errors
/// As [`LoggierBuilder::build`].
///
/// # Example
/// ```no_run
/// fn main() -> Result<(), loggier_core::ConfigError> {
///     let _guard = loggier_core::init(loggier_core::Config::from_env()?)?;
///     loggier_core::global().expect("installed").info("started");
///     Ok(())
/// } // guard dropped: pipeline drained (≤ 5 s)
/// ```
pub fn init(config: Config) -> Result<InitGuard, ConfigError> {
    init_with(LoggierBuilder::from_config(config))
}

/// [`init`] from a builder (to add sinks in code).
///
/// # Errors
/// As [`LoggierBuilder::build`].
pub fn init_with(builder: LoggierBuilder) -> Result<InitGuard, ConfigError> {
    let capture = builder.config().capture_uncaught;
    let client = builder.build()?;
    set_global(client.clone());
    if capture {
        install_panic_hook();
    }
    Ok(InitGuard { client })
}

/// Keeps the global client alive; on drop it shuts the pipeline down (waiting up to
/// [`GUARD_SHUTDOWN_TIMEOUT`]) and uninstalls the global client. The panic hook stays
/// installed but does nothing once no global client is set, apart from calling the
/// previous hook.
#[must_use = "dropping the guard shuts the logging pipeline down"]
#[derive(Debug)]
pub struct InitGuard {
    client: Loggier,
}

impl InitGuard {
    /// The installed client.
    pub fn client(&self) -> &Loggier {
        &self.client
    }
}

impl Drop for InitGuard {
    fn drop(&mut self) {
        GLOBAL.store(None);
        GLOBAL_SET.store(false, Ordering::Release);
        self.client.shutdown(GUARD_SHUTDOWN_TIMEOUT);
    }
}

/// Installs the panic hook described in [`init`], chaining the hook installed before.
/// Only the first call installs it (later calls, e.g. a second [`init`], do nothing),
/// so a panic is recorded once. The hook uses whichever client is global when the
/// panic happens.
pub fn install_panic_hook() {
    if HOOK_INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // A panic inside a request's capture region is the middleware's to record
        // (as the request's error record); recording it here too would double it.
        #[cfg(feature = "http-capture")]
        if crate::http::panic::in_capture_region() {
            previous(info);
            return;
        }
        // A panic inside a sink (caught by the pipeline, counted as that batch's
        // drop with the message as the sink's `last_error`) is not fed back into the
        // pipeline: a sink that panics on every batch would otherwise loop forever.
        if on_pipeline_thread() {
            previous(info);
            return;
        }
        if let Some(client) = global() {
            let message = panic_payload_text(info.payload());
            let thread = std::thread::current();
            let thread_name = thread.name().unwrap_or("<unnamed>").to_string();
            let mut exc = Exception::new("panic", message.clone());
            exc.set_backtrace(&Backtrace::force_capture());
            let mut record = Record::new(Level::Critical, format!("panic: {message}"))
                .with_logger("panic")
                .with_field("thread", thread_name.clone())
                .with_exception(exc);
            if let Some(loc) = info.location() {
                record = record
                    .with_field("file", loc.file())
                    .with_field("line", loc.line())
                    .with_field("column", loc.column());
            }
            client.log(record);
            // The flush gives up as soon as a sink cannot make progress now (a
            // network sink backing off), so the panicking thread — possibly an async
            // runtime's — waits only for writes that can actually complete.
            client.flush_now(PANIC_FLUSH_TIMEOUT);
        }
        previous(info);
    }));
}

/// The text of a panic payload: the `&str` or `String` it carries, or
/// `"panic with a non-string payload"`.
pub(crate) fn panic_payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
