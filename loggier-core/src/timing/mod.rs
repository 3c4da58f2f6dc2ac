//! Function timing: the runtime of `#[trace_function]`, `#[trace_http]`,
//! `#[trace_database]` and `#[capture_exceptions]`, and the [`TimerGuard`] /
//! [`timed!`](crate::timed) forms for blocks that are not functions.
//!
//! # The record
//! A timed call emits at most one record, when it took at least its threshold or
//! failed (an `Err` return or a panic):
//!
//! ```json
//! {"level":"INFO","message":"slow function app::load: 612.4 ms (threshold 500 ms)",
//!  "logger":"app","tags":["db"],"trace_id":"4bf9…","context":{"request_id":"018f…"},
//!  "timing":{"name":"app::load","kind":"function","duration_ms":612.4,
//!            "threshold_ms":500.0,"id":"5f0c6a3e9d21b7a4","parent":"018f…"}}
//! ```
//!
//! - `timing.id`: this call's id, 16 hex characters, fresh per call.
//! - `timing.parent`: the `timing.id` of the timed call or timer the call ran inside,
//!   else the request id of the request scope it ran in, else absent. A slow request's
//!   children are the timing records whose `parent` is its `context.request_id`.
//! - `context.request_id`, `trace_id`, `span_id`, route and scope fields come from the
//!   scope the call ran in, as for any record.
//! - Level: the attribute's `level` (default info) for a slow call; at least error for
//!   an `Err` (with `exception` holding its type, message and `source()` chain) or a
//!   panic (`exception.type` `"panic"`, the panic message). A panic keeps unwinding.
//! - A future of a timed `async fn` dropped before it completes is recorded, when it
//!   had run for the threshold, with `context.cancelled = true`.
//!
//! # Which client, and the cost
//! The global client ([`init`](crate::init) / [`set_global`](crate::set_global)).
//! With none installed, or with neither the attribute's level nor error enabled, a
//! call costs one atomic load of the global slot and a branch, and no clock read.
//! Otherwise it reads the monotonic clock twice, captures the current scope (an
//! `Arc` clone) and, only for a call that is recorded, builds the record.
//!
//! # Arguments and return values
//! Only when asked (`include_args`, `include_return`, `include_params`,
//! `include_body`): each named argument's `Debug` text (a type without `Debug` shows
//! as `<Type without Debug>`; `self` is never recorded). An argument whose name is
//! sensitive for the client's [`Masker`](crate::mask::Masker) (or listed in
//! `mask_headers`/`mask_params`) is recorded as `[FILTERED]` without being
//! formatted; inside `Debug` text, values of sensitive struct fields, map keys and
//! query parameters are replaced too. Arguments are formatted when the call starts,
//! on every call, since the body consumes them.

pub(crate) mod call;
pub(crate) mod debug_mask;
pub(crate) mod probe;
pub(crate) mod stack;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::call::Outcome;
use self::stack::Parent;
use crate::client::Loggier;
use crate::context::{self, ScopeFrame};
use crate::record::{ContextFields, Exception, Level, Record, Timing, TimingKind};

/// Default threshold of [`Loggier::timer`] and [`timed!`](crate::timed): 500 ms, the
/// `trace_function` default of seeds/004.
pub const DEFAULT_TIMER_THRESHOLD_MS: u64 = 500;

/// Everything a timing or exception record is built from.
pub(crate) struct Emit<'a> {
    pub(crate) client: &'a Loggier,
    pub(crate) scope: Option<&'a Arc<ScopeFrame>>,
    pub(crate) name: String,
    /// `None`: an exception record without timing (`#[capture_exceptions]`).
    pub(crate) kind: Option<TimingKind>,
    pub(crate) level: Level,
    pub(crate) elapsed: Duration,
    pub(crate) threshold_ms: u64,
    pub(crate) id: u64,
    pub(crate) parent: Option<&'a Parent>,
    pub(crate) tags: Vec<String>,
    pub(crate) logger: &'static str,
    pub(crate) outcome: Outcome,
    pub(crate) exception: Option<Exception>,
    pub(crate) context: ContextFields,
}

fn kind_word(kind: TimingKind) -> &'static str {
    match kind {
        TimingKind::Function => "function",
        TimingKind::Http => "HTTP call",
        TimingKind::Database => "database call",
    }
}

/// The level a timing record is written at: a failed timed call is at least an
/// error; everything else keeps the attribute's level.
pub(crate) fn record_level(kind: Option<TimingKind>, outcome: Outcome, level: Level) -> Level {
    let failed = matches!(outcome, Outcome::Failed | Outcome::Panicked);
    match (kind, failed) {
        (Some(_), true) => level.max(Level::Error),
        _ => level,
    }
}

/// `d` in milliseconds as the records carry it (`duration_ms`, `threshold_ms`): whole
/// nanoseconds divided once, so the JSON shows the shortest decimal of the exact value
/// (49,194 ns → `0.049194`, where `as_secs_f64() * 1000.0` gives
/// `0.049193999999999995`). Exact below 2^53 ns (104 days).
pub(crate) fn millis(d: Duration) -> f64 {
    // u128 → f64: exact for any duration a request or call takes.
    d.as_nanos() as f64 / 1_000_000.0
}

/// Builds the record and logs it inside the scope the call started in.
pub(crate) fn emit_record(e: Emit<'_>) {
    let level = record_level(e.kind, e.outcome, e.level);
    if !e.client.enabled(level) {
        return;
    }
    let ms = millis(e.elapsed);
    let detail = e.exception.as_ref().map_or("", |x| x.message.as_str());
    let message = match (e.kind, e.outcome) {
        (Some(k), Outcome::Returned) => format!(
            "slow {} {}: {ms:.1} ms (threshold {} ms)",
            kind_word(k),
            e.name,
            e.threshold_ms
        ),
        (Some(k), Outcome::Failed) => {
            format!(
                "{} {} failed after {ms:.1} ms: {detail}",
                kind_word(k),
                e.name
            )
        }
        (Some(k), Outcome::Panicked) => {
            format!(
                "{} {} panicked after {ms:.1} ms: {detail}",
                kind_word(k),
                e.name
            )
        }
        (Some(k), Outcome::Cancelled) => format!(
            "{} {} was cancelled after {ms:.1} ms (threshold {} ms)",
            kind_word(k),
            e.name,
            e.threshold_ms
        ),
        (None, Outcome::Panicked) => format!("{} panicked: {detail}", e.name),
        (None, _) => format!("{} returned an error: {detail}", e.name),
    };
    let mut record = Record::new(level, message).with_logger(e.logger);
    record.context = e.context;
    record.tags = e.tags;
    if e.outcome == Outcome::Cancelled {
        record.context.insert("cancelled", true.into());
    }
    match e.kind {
        Some(kind) => {
            let mut timing = Timing::new(e.name, kind, ms);
            timing.threshold_ms = Some(e.threshold_ms as f64);
            timing.id = Some(stack::render_id(e.id));
            timing.parent = e.parent.map(Parent::render);
            record.timing = Some(timing);
        }
        None => {
            record.context.insert("function", e.name.into());
        }
    }
    if let Some(x) = e.exception {
        record = record.with_exception(x);
    }
    let _scope = e.scope.map(context::enter_frame);
    e.client.log(record);
}

impl Loggier {
    /// Starts timing a block: the returned guard emits one timing record
    /// (`timing.kind` `function` unless changed) when it is dropped after at least
    /// its threshold (default [`DEFAULT_TIMER_THRESHOLD_MS`] = 500 ms), or when a
    /// panic unwinds through it (level error, `exception.type` `"panic"`).
    ///
    /// The record carries the scope of the place the timer was started (request id,
    /// trace ids) and `timing.parent` = the enclosing timed call or request; see
    /// the [`timing`](crate::timing) module for the record's shape. The guard is
    /// `Send` and may be held across `.await`; timed calls inside the block do not
    /// list the timer as their parent (only `#[trace_function]` and friends do).
    ///
    /// ```
    /// # let dir = std::env::temp_dir().join("loggier-doc-timer");
    /// # let log = loggier_core::Loggier::builder().data_dir(&dir).build().unwrap();
    /// {
    ///     let _t = log.timer("rebuild_index").threshold_ms(0); // always recorded
    ///     // ... work ...
    /// } // recorded here
    /// assert!(log.flush(std::time::Duration::from_secs(5)));
    /// let text = std::fs::read_to_string(dir.join("loggier.ndjson")).unwrap();
    /// assert!(text.contains(r#""name":"rebuild_index""#));
    /// ```
    pub fn timer(&self, name: impl Into<Cow<'static, str>>) -> TimerGuard {
        TimerGuard::start(self.clone(), name.into())
    }
}

/// Times a block and records it when dropped; see [`Loggier::timer`].
///
/// Setters follow the attribute options: [`threshold_ms`](TimerGuard::threshold_ms),
/// [`kind`](TimerGuard::kind), [`tag`](TimerGuard::tag), [`level`](TimerGuard::level).
/// An inert guard (from [`timed!`](crate::timed) with no global client) does nothing.
#[must_use = "the block is timed until the guard is dropped; bind it with `let _t = ...`"]
#[derive(Debug)]
pub struct TimerGuard {
    inner: Option<TimerInner>,
}

#[derive(Debug)]
struct TimerInner {
    client: Loggier,
    name: Cow<'static, str>,
    kind: TimingKind,
    threshold_ms: u64,
    level: Level,
    tags: Vec<String>,
    id: u64,
    parent: Option<Parent>,
    scope: Option<Arc<ScopeFrame>>,
    panicking_at_start: bool,
    start: Instant,
}

impl TimerGuard {
    fn start(client: Loggier, name: Cow<'static, str>) -> TimerGuard {
        let scope = context::current();
        let parent = stack::parent_for(scope.as_deref());
        TimerGuard {
            inner: Some(TimerInner {
                client,
                name,
                kind: TimingKind::Function,
                threshold_ms: DEFAULT_TIMER_THRESHOLD_MS,
                level: Level::Info,
                tags: Vec::new(),
                id: stack::new_id(),
                parent,
                scope,
                panicking_at_start: std::thread::panicking(),
                start: Instant::now(),
            }),
        }
    }

    /// A guard that records nothing.
    pub fn inert() -> TimerGuard {
        TimerGuard { inner: None }
    }

    /// Records only when the block took at least `ms` milliseconds (0: always).
    pub fn threshold_ms(mut self, ms: u64) -> Self {
        if let Some(i) = self.inner.as_mut() {
            i.threshold_ms = ms;
        }
        self
    }

    /// The timing kind (default [`TimingKind::Function`]).
    pub fn kind(mut self, kind: TimingKind) -> Self {
        if let Some(i) = self.inner.as_mut() {
            i.kind = kind;
        }
        self
    }

    /// Adds a tag to the record.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        if let Some(i) = self.inner.as_mut() {
            i.tags.push(tag.into());
        }
        self
    }

    /// Level of the record of a slow block (default info; a panic is error).
    pub fn level(mut self, level: Level) -> Self {
        if let Some(i) = self.inner.as_mut() {
            i.level = level;
        }
        self
    }

    /// Time since the timer started; zero for an inert guard.
    pub fn elapsed(&self) -> Duration {
        self.inner
            .as_ref()
            .map_or(Duration::ZERO, |i| i.start.elapsed())
    }

    /// The `timing.id` the record will carry (16 hex chars); `None` when inert.
    pub fn id(&self) -> Option<String> {
        self.inner.as_ref().map(|i| stack::render_id(i.id))
    }
}

impl Drop for TimerGuard {
    fn drop(&mut self) {
        let Some(i) = self.inner.take() else {
            return;
        };
        let elapsed = i.start.elapsed();
        let panicked = std::thread::panicking() && !i.panicking_at_start;
        if !panicked && elapsed < Duration::from_millis(i.threshold_ms) {
            return;
        }
        let (outcome, exception) = if panicked {
            (
                Outcome::Panicked,
                Some(Exception::new("panic", "panicked inside the timed block")),
            )
        } else {
            (Outcome::Returned, None)
        };
        emit_record(Emit {
            client: &i.client,
            scope: i.scope.as_ref(),
            name: i.name.into_owned(),
            kind: Some(i.kind),
            level: i.level,
            elapsed,
            threshold_ms: i.threshold_ms,
            id: i.id,
            parent: i.parent.as_ref(),
            tags: i.tags,
            logger: "timer",
            outcome,
            exception,
            context: ContextFields::new(),
        });
    }
}

/// A timer on the global client, or an inert guard when none is installed.
#[doc(hidden)]
pub fn global_timer(name: impl Into<Cow<'static, str>>) -> TimerGuard {
    if !crate::global::global_installed() {
        return TimerGuard::inert();
    }
    match crate::global::load_global().as_deref() {
        Some(client) => client.timer(name),
        None => TimerGuard::inert(),
    }
}

/// Times a block with the global client: `timed!("name", { ... })` or
/// `timed!("name", threshold_ms = 100, { ... })`; evaluates to the block's value.
///
/// Emits one timing record (`timing.kind` `function`, logger `"timer"`) when the
/// block took at least the threshold (default 500 ms), as [`Loggier::timer`]. With no
/// global client the block just runs. `return`, `?` and `.await` inside the block
/// work as in any block (the timer stops when the block is left).
///
/// ```
/// let total = loggier_core::timed!("sum", threshold_ms = 50, {
///     (1..=10).sum::<u32>()
/// });
/// assert_eq!(total, 55);
/// ```
#[macro_export]
macro_rules! timed {
    ($name:expr, threshold_ms = $ms:expr, $body:block) => {{
        let __loggier_timer = $crate::__private::global_timer($name).threshold_ms($ms);
        $body
    }};
    ($name:expr, $body:block) => {{
        let __loggier_timer = $crate::__private::global_timer($name);
        $body
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A duration in whole nanoseconds is at most 6 decimals of milliseconds; the JSON
    /// a sink writes must show exactly those, not a binary rounding tail.
    #[test]
    fn millis_print_as_the_exact_decimal() {
        assert_eq!(
            serde_json::to_string(&millis(Duration::from_nanos(49_194))).expect("f64 to JSON"),
            "0.049194"
        );
        for ns in (1..200_000u64)
            .step_by(7)
            .chain([1_234_567_891, 612_400_000])
        {
            let text =
                serde_json::to_string(&millis(Duration::from_nanos(ns))).expect("f64 to JSON");
            let decimals = text.split_once('.').map_or(0, |(_, f)| f.len());
            assert!(decimals <= 6, "{ns} ns printed as {text} ms");
        }
    }
}
