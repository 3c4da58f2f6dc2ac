//! The runtime half of the attribute macros (reached through `__private`).

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::stack::{self, Parent};
use super::{debug_mask, emit_record};
use crate::client::Loggier;
use crate::context::{self, ScopeFrame};
use crate::mask::{FILTERED, fold_key};
use crate::record::{ContextFields, Exception, Fields, Level, TimingKind};

/// What the attribute is: a timing of some kind, or `#[capture_exceptions]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `#[trace_function]`, `#[trace_http]`, `#[trace_database]`.
    Timing(TimingKind),
    /// `#[capture_exceptions]`: no timing, errors and panics only.
    Exceptions,
}

/// The attribute's options, as a `static` in the expanded function.
#[derive(Debug)]
pub struct CallMeta {
    /// `name = "..."`; `None`: the function's path.
    pub name: Option<&'static str>,
    /// Timing kind or exception capture.
    pub kind: CallKind,
    /// Slow threshold, ms.
    pub threshold_ms: u64,
    /// Level of a slow-call record (failures are at least error).
    pub level: Level,
    /// Tags added to the record.
    pub tags: &'static [&'static str],
    /// Extra sensitive names (`mask_headers`, `mask_params`).
    pub extra_sensitive: &'static [&'static str],
    /// Context key of the recorded arguments (`args`, `params`, `request`), if any.
    pub args_field: Option<&'static str>,
    /// Context key of the recorded return value (`return`, `response`), if any.
    pub return_field: Option<&'static str>,
    /// `module_path!()` of the function: the record's logger.
    pub logger: &'static str,
}

/// One call in progress (a client is installed and a level of interest is enabled).
#[derive(Debug)]
pub struct Call {
    meta: &'static CallMeta,
    here: &'static str,
    client: Loggier,
    scope: Option<Arc<ScopeFrame>>,
    parent: Option<Parent>,
    id: u64,
    start: Instant,
    /// `(name, Debug text)` of the recorded arguments; `None` for a sensitive name.
    /// Masked and turned into fields only when the call is recorded.
    args: Vec<(&'static str, Option<String>)>,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Returned,
    Failed,
    Panicked,
    Cancelled,
}

impl Call {
    /// Starts timing a call of the function described by `meta` (`here` is the
    /// `type_name` of a marker fn inside it, for the default name). `None` when no
    /// global client is installed or neither the record's level nor error is
    /// enabled: then the function just runs.
    #[inline]
    pub fn start(meta: &'static CallMeta, here: &'static str) -> Option<Call> {
        if !crate::global::global_installed() {
            return None;
        }
        let global = crate::global::load_global();
        let client = global.as_deref()?;
        if !client.enabled(meta.level) && !client.enabled(Level::Error) {
            return None;
        }
        Some(Call::begin(meta, here, client.clone()))
    }

    fn begin(meta: &'static CallMeta, here: &'static str, client: Loggier) -> Call {
        let scope = context::current();
        let parent = match meta.kind {
            CallKind::Timing(_) => stack::parent_for(scope.as_deref()),
            CallKind::Exceptions => None,
        };
        Call {
            meta,
            here,
            client,
            scope,
            parent,
            id: stack::new_id(),
            start: Instant::now(),
            args: Vec::new(),
        }
    }

    /// Records argument `name` (its `Debug` text from `debug`, only called when the
    /// name is not sensitive; secrets inside the text are masked).
    ///
    /// The arguments move into the function body, so their `Debug` text is taken
    /// now; masking it and building the record's fields waits until the call turns
    /// out to be recorded (slow or failed), which most calls are not.
    pub fn arg(&mut self, name: &'static str, debug: impl FnOnce() -> String) {
        let text = (!self.is_sensitive(name)).then(debug);
        self.args.push((name, text));
    }

    fn is_sensitive(&self, key: &str) -> bool {
        sensitive(&self.client, self.meta.extra_sensitive, key)
    }

    /// Enters the call on this thread (sync functions): nested timings see it as
    /// their parent until the guard is finished or dropped.
    pub fn enter(self) -> CallGuard {
        let frame = match self.meta.kind {
            CallKind::Timing(_) => Some(stack::push(self.id, self.scope.clone())),
            CallKind::Exceptions => None,
        };
        CallGuard {
            call: Some(self),
            frame,
        }
    }

    /// Finishes the call: records it when it failed (`exception`) or was slow.
    /// `ret` gives the return value's `Debug` text when it is recorded.
    pub fn finish(self, exception: Option<Exception>, ret: impl FnOnce() -> Option<String>) {
        let outcome = if exception.is_some() {
            Outcome::Failed
        } else {
            Outcome::Returned
        };
        self.emit(outcome, exception, ret);
    }

    fn record_panic(self, payload: &(dyn Any + Send)) {
        let message = crate::global::panic_payload_text(payload);
        self.emit(
            Outcome::Panicked,
            Some(Exception::new("panic", message)),
            || None,
        );
    }

    fn record_cancelled(self) {
        self.emit(Outcome::Cancelled, None, || None);
    }

    fn emit(
        self,
        outcome: Outcome,
        exception: Option<Exception>,
        ret: impl FnOnce() -> Option<String>,
    ) {
        let elapsed = self.start.elapsed();
        let meta = self.meta;
        let failed = matches!(outcome, Outcome::Failed | Outcome::Panicked);
        let slow = elapsed >= Duration::from_millis(meta.threshold_ms);
        let kind = match meta.kind {
            CallKind::Timing(kind) if slow || failed => Some(kind),
            CallKind::Exceptions if failed => None,
            _ => return,
        };
        // Decide before formatting or masking anything on the caller's thread.
        if !self
            .client
            .enabled(super::record_level(kind, outcome, meta.level))
        {
            return;
        }
        let name = meta
            .name
            .map_or_else(|| default_name(self.here), str::to_string);
        let mut context = ContextFields::new();
        if let Some(key) = meta.args_field.filter(|_| !self.args.is_empty()) {
            let mut args = Fields::new();
            for (name, text) in &self.args {
                let value = match text {
                    Some(t) => debug_mask::scrub(t, &|k| self.is_sensitive(k)),
                    None => FILTERED.to_string(),
                };
                args.insert((*name).to_string(), value.into());
            }
            context.insert(key, args.into());
        }
        if let Some(key) = meta.return_field {
            if let Some(text) = ret() {
                let masked = debug_mask::scrub(&text, &|k| self.is_sensitive(k));
                context.insert(key, masked.into());
            }
        }
        emit_record(super::Emit {
            client: &self.client,
            scope: self.scope.as_ref(),
            name,
            kind,
            level: meta.level,
            elapsed,
            threshold_ms: meta.threshold_ms,
            id: self.id,
            parent: self.parent.as_ref(),
            tags: meta.tags.iter().map(|t| (*t).to_string()).collect(),
            logger: meta.logger,
            outcome,
            exception,
            context,
        });
    }
}

/// Wraps the body of an `async` function: when `call` is `Some`, the call is the
/// parent of nested timings whenever the future is polled, a panic while polling is
/// recorded (then resumed), and dropping the future before it completes records a
/// cancelled (slow) call. With `None` it only polls `fut`.
pub fn timed<F: Future>(call: Option<Call>, fut: F) -> Timed<F> {
    Timed { fut, call }
}

/// A synchronous call entered on this thread; see [`Call::enter`].
#[derive(Debug)]
pub struct CallGuard {
    call: Option<Call>,
    frame: Option<stack::StackGuard>,
}

impl CallGuard {
    /// Runs the function body. A panic is recorded (with its message) and then
    /// resumed, so it keeps unwinding to the caller.
    pub fn catch<R>(&mut self, body: impl FnOnce() -> R) -> R {
        match catch_unwind(AssertUnwindSafe(body)) {
            Ok(r) => r,
            Err(payload) => {
                self.frame.take();
                if let Some(call) = self.call.take() {
                    call.record_panic(&*payload);
                }
                resume_unwind(payload)
            }
        }
    }

    /// See [`Call::finish`].
    pub fn finish(mut self, exception: Option<Exception>, ret: impl FnOnce() -> Option<String>) {
        self.frame.take();
        if let Some(call) = self.call.take() {
            call.finish(exception, ret);
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a timed `async` function; see [`timed`]. Resolves to the body's
    /// output and the call (if any), to be [finished](Call::finish).
    #[derive(Debug)]
    pub struct Timed<F> {
        #[pin]
        fut: F,
        call: Option<Call>,
    }

    impl<F> PinnedDrop for Timed<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(call) = this.project().call.take() {
                call.record_cancelled();
            }
        }
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = (F::Output, Option<Call>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Some(call) = this.call.as_ref() else {
            // No client: just the body.
            return this.fut.poll(cx).map(|out| (out, None));
        };
        let frame = match call.meta.kind {
            CallKind::Timing(_) => Some(stack::push(call.id, call.scope.clone())),
            CallKind::Exceptions => None,
        };
        let mut fut = this.fut;
        let polled = catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)));
        drop(frame);
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready((out, this.call.take())),
            Err(payload) => {
                if let Some(call) = this.call.take() {
                    call.record_panic(&*payload);
                }
                resume_unwind(payload)
            }
        }
    }
}

/// Pins the return type of a function body written as a closure, so `?` and
/// `.into()` inside it infer exactly as they do in the function.
#[inline(always)]
pub fn typed_fn<R, F: FnOnce() -> R>(f: F) -> F {
    f
}

/// [`typed_fn`] for the `async move` block of an `async fn` body.
#[inline(always)]
pub fn typed_future<R, F: Future<Output = R>>(f: F) -> F {
    f
}

/// The function's path from the `type_name` of the marker fn inside it:
/// `app::billing::Cart::total::__loggier_here` → `app::billing::Cart::total`
/// (`{{closure}}` segments of `async fn` bodies removed).
fn default_name(here: &str) -> String {
    let path = here.strip_suffix("::__loggier_here").unwrap_or(here);
    path.split("::")
        .filter(|seg| !seg.starts_with("{{"))
        .collect::<Vec<_>>()
        .join("::")
}

/// The client's sensitive keys plus the attribute's own (`mask_headers`,
/// `mask_params`), matched in the masker's folded form (`apiKey` = `api-key` =
/// `api_key`).
fn sensitive(client: &Loggier, extra: &[&str], key: &str) -> bool {
    if client.masker().is_sensitive_key(key) {
        return true;
    }
    if extra.is_empty() {
        return false;
    }
    let key = fold_key(key);
    extra.iter().any(|e| fold_key(e) == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_name_strips_the_marker_and_closures() {
        assert_eq!(
            default_name("app::Cart::total::__loggier_here"),
            "app::Cart::total"
        );
        assert_eq!(
            default_name("app::load::{{closure}}::__loggier_here"),
            "app::load"
        );
    }

    #[test]
    fn call_and_timed_futures_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Call>();
        assert_send::<Timed<std::future::Ready<u8>>>();
    }
}
