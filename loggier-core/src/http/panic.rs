//! Capturing the message and backtrace of a panic raised while a request is polled.
//!
//! `catch_unwind` gives a middleware the panic payload but not the backtrace; only a
//! panic hook sees the stack as it was. [`install_request_panic_hook`] installs (once
//! per process) a hook that, for panics raised inside a [`PanicCapture`] region on
//! the current thread, stores the message, location and a backtrace for
//! [`take_request_panic`]. Outside such regions it defers to the hook that was
//! installed before it.
//!
//! Inside a region the previous hook is *not* called: the middleware records the
//! panic as the request's error record (with message and backtrace), so a process-wide
//! panic hook (such as the one of `loggier_core::init`) would record it a second time.
//! The hook of `init` likewise defers to the previous hook inside a region, so the
//! order in which the two are installed does not matter.

use std::backtrace::Backtrace;
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::Once;

/// A panic raised inside a [`PanicCapture`] region.
#[derive(Debug)]
pub struct RequestPanic {
    /// The panic message (`&str`/`String` payloads; a placeholder otherwise), with the
    /// source location appended as ` at file:line:column` when known.
    pub message: String,
    /// Backtrace of the panicking thread, captured in the hook.
    pub backtrace: Backtrace,
}

/// The current thread's [`PanicCapture`] regions: how deep they nest, and whether
/// [`LAST`] may hold a panic (so that entering a region touches [`LAST`], which has
/// a destructor to register, only when there is one to forget).
#[derive(Debug, Clone, Copy)]
struct Regions {
    depth: usize,
    stored: bool,
}

thread_local! {
    static REGIONS: Cell<Regions> = const { Cell::new(Regions { depth: 0, stored: false }) };
    static LAST: RefCell<Option<RequestPanic>> = const { RefCell::new(None) };
}

/// Notes whether [`LAST`] may hold a panic.
fn set_stored(stored: bool) {
    let _ = REGIONS.try_with(|r| {
        r.set(Regions { stored, ..r.get() });
    });
}

static INSTALL: Once = Once::new();

/// Installs the request panic hook, chaining the current one. Idempotent: only the
/// first call in a process installs it.
pub fn install_request_panic_hook() {
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !in_capture_region() {
                previous(info);
                return;
            }
            let mut message = panic_message(info.payload());
            if let Some(loc) = info.location() {
                message = format!(
                    "{message} at {}:{}:{}",
                    loc.file(),
                    loc.line(),
                    loc.column()
                );
            }
            let captured = RequestPanic {
                message,
                backtrace: Backtrace::force_capture(),
            };
            if LAST.try_with(|l| *l.borrow_mut() = Some(captured)).is_ok() {
                set_stored(true);
            }
        }));
    });
}

/// The text of a panic payload: the `&str` or `String` it carries, or
/// `"panic with a non-string payload"`.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    crate::global::panic_payload_text(payload)
}

/// `true` while the current thread is inside a [`PanicCapture`] region: a panic now
/// belongs to the request being polled, and the middleware records it.
pub(crate) fn in_capture_region() -> bool {
    REGIONS.try_with(|r| r.get().depth).unwrap_or(0) > 0
}

/// Takes the panic stored by the hook on this thread, if any.
pub fn take_request_panic() -> Option<RequestPanic> {
    if !REGIONS.try_with(|r| r.get().stored).unwrap_or(true) {
        return None;
    }
    set_stored(false);
    LAST.try_with(|l| l.borrow_mut().take()).ok().flatten()
}

/// A region of the current thread in which panics are captured for the request being
/// polled (see [`install_request_panic_hook`]). Enter it around each poll of a handler future
/// or response body; `!Send`, so it cannot be held across `.await`.
#[derive(Debug)]
#[must_use = "the region ends when the guard is dropped"]
pub struct PanicCapture {
    _not_send: PhantomData<*const ()>,
}

impl PanicCapture {
    /// Enters a region (regions nest). Entering the outermost region forgets a panic
    /// stored earlier on this thread that nobody took, so a stale panic is never
    /// attributed to another request (only then is the stored panic's slot written).
    pub fn enter() -> PanicCapture {
        let stale = REGIONS
            .try_with(|r| {
                let Regions { depth, stored } = r.get();
                r.set(Regions {
                    depth: depth + 1,
                    stored,
                });
                depth == 0 && stored
            })
            .unwrap_or(false);
        if stale {
            let _ = take_request_panic();
        }
        PanicCapture {
            _not_send: PhantomData,
        }
    }
}

impl Drop for PanicCapture {
    fn drop(&mut self) {
        let _ = REGIONS.try_with(|r| {
            let regions = r.get();
            r.set(Regions {
                depth: regions.depth.saturating_sub(1),
                ..regions
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panics_inside_a_region_are_captured_with_a_backtrace() {
        install_request_panic_hook();
        install_request_panic_hook();
        let caught = std::panic::catch_unwind(|| {
            let _region = PanicCapture::enter();
            panic!("handler exploded: {}", 42);
        });
        assert!(caught.is_err());
        let p = take_request_panic().expect("captured");
        assert!(
            p.message.starts_with("handler exploded: 42 at "),
            "{}",
            p.message
        );
        assert!(p.message.contains("panic.rs"), "{}", p.message);
        assert_eq!(
            p.backtrace.status(),
            std::backtrace::BacktraceStatus::Captured
        );
        assert!(take_request_panic().is_none());

        // Outside a region nothing is stored.
        let caught = std::panic::catch_unwind(|| panic!("elsewhere"));
        assert!(caught.is_err());
        assert!(take_request_panic().is_none());
    }

    /// A panic nobody took is forgotten when the next outermost region is entered,
    /// not when a nested one is.
    #[test]
    fn a_stale_panic_is_forgotten_by_the_next_outermost_region() {
        install_request_panic_hook();
        let panic_in_region = || {
            let caught = std::panic::catch_unwind(|| {
                let _region = PanicCapture::enter();
                panic!("left behind");
            });
            assert!(caught.is_err());
        };
        panic_in_region();
        {
            let _outer = PanicCapture::enter();
            assert!(take_request_panic().is_none(), "forgotten on entering");
        }
        let _outer = PanicCapture::enter();
        panic_in_region();
        drop(PanicCapture::enter());
        let p = take_request_panic().expect("kept by a nested region");
        assert!(p.message.starts_with("left behind"), "{}", p.message);
        assert!(take_request_panic().is_none());
    }

    #[test]
    fn payload_text() {
        assert_eq!(panic_message(&"a"), "a");
        assert_eq!(panic_message(&String::from("b")), "b");
        assert_eq!(panic_message(&7u8), "panic with a non-string payload");
    }
}
