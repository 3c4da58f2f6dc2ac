//! Per-endpoint capture options ([`EndpointOptions`], what `#[track_endpoint]` sets) and
//! the per-request [`EndpointSlot`] that carries them from the handler to the HTTP
//! middleware.
//!
//! The middleware opens one [`EndpointSlot`] per request and puts it in the request's
//! scope; a handler fills it when it starts ([`set_endpoint_options`], which
//! `#[track_endpoint]` calls); the middleware reads it when it finalises the request's
//! record (`loggier_core::http::Exchange`). Options not given keep the middleware's
//! `loggier_core::http::CaptureSettings` for that request.

use std::sync::OnceLock;
use std::time::Duration;

/// Capture options of one endpoint (handler), applied to the transaction record of each
/// request that endpoint serves — the `track_endpoint` options of the Loggier notes
/// (seeds/004, "track_endpoint Decorator"). Every option is optional: one that is not
/// set keeps the middleware's setting for that request.
///
/// Built in a `static` (all constructors are `const fn`), normally by the
/// `#[track_endpoint(...)]` attribute:
///
/// ```
/// use loggier_core::context::EndpointOptions;
///
/// static PAYMENT: EndpointOptions = EndpointOptions::new("shop::pay")
///     .tags(&["critical", "payment"])
///     .statuses(&[(200, 201), (400, 400), (500, 599)])
///     .capture_request_body(true)
///     .capture_response_body(true)
///     .slow_threshold_ms(250);
///
/// assert_eq!(PAYMENT.tracks_status(201), Some(true));
/// assert_eq!(PAYMENT.tracks_status(404), Some(false));
/// assert_eq!(EndpointOptions::new("x").tracks_status(404), None); // middleware decides
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointOptions {
    name: &'static str,
    tags: &'static [&'static str],
    statuses: Option<&'static [(u16, u16)]>,
    capture_request_body: Option<bool>,
    capture_response_body: Option<bool>,
    slow_threshold_ms: Option<u64>,
}

impl EndpointOptions {
    /// Options for the endpoint called `name` (the handler's path, e.g.
    /// `"shop::handlers::pay"`) with nothing overridden.
    pub const fn new(name: &'static str) -> Self {
        EndpointOptions {
            name,
            tags: &[],
            statuses: None,
            capture_request_body: None,
            capture_response_body: None,
            slow_threshold_ms: None,
        }
    }

    /// `tags`: added to the request's transaction record (after the client's and the
    /// scope's tags).
    #[must_use]
    pub const fn tags(mut self, tags: &'static [&'static str]) -> Self {
        self.tags = tags;
        self
    }

    /// `statuses`: the status codes tracked for this endpoint, as inclusive ranges
    /// (`(404, 404)`, `(500, 599)`). They *replace* the middleware's
    /// `statuses_to_track` for this endpoint's requests; an empty list tracks no
    /// status (slow, failed and access-log records are still made).
    ///
    /// # Panics
    /// When a code is outside 100–999 or a range is reversed. In a `static` (the
    /// intended use, and what `#[track_endpoint]` generates, after checking the codes
    /// itself) that is a compile-time error, never a runtime panic.
    #[must_use]
    pub const fn statuses(mut self, ranges: &'static [(u16, u16)]) -> Self {
        let mut i = 0;
        while i < ranges.len() {
            let (a, b) = ranges[i];
            assert!(
                a >= 100 && b <= 999 && a <= b,
                "status ranges must lie within 100-999 and start <= end"
            );
            i += 1;
        }
        self.statuses = Some(ranges);
        self
    }

    /// `capture_request_body`: `true` keeps this endpoint's request bodies in records
    /// (at most `max_body_size` bytes), `false` never does.
    #[must_use]
    pub const fn capture_request_body(mut self, on: bool) -> Self {
        self.capture_request_body = Some(on);
        self
    }

    /// `capture_response_body`: `true` keeps the response body of every recorded
    /// request of this endpoint (not only errors), `false` never does.
    #[must_use]
    pub const fn capture_response_body(mut self, on: bool) -> Self {
        self.capture_response_body = Some(on);
        self
    }

    /// `slow_threshold_ms`: a request of this endpoint whose response ends this many
    /// milliseconds (or more) after it arrived is recorded as slow, even when the
    /// middleware's `log_slow_requests` is off.
    #[must_use]
    pub const fn slow_threshold_ms(mut self, ms: u64) -> Self {
        self.slow_threshold_ms = Some(ms);
        self
    }

    /// The endpoint's name (its handler path).
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The endpoint's tags (empty when none were given).
    pub const fn tag_list(&self) -> &'static [&'static str] {
        self.tags
    }

    /// The tracked status ranges, when set.
    pub const fn status_ranges(&self) -> Option<&'static [(u16, u16)]> {
        self.statuses
    }

    /// `Some(true)` when `status` is in the endpoint's `statuses`, `Some(false)` when
    /// it is not, `None` when the endpoint did not set `statuses`.
    pub fn tracks_status(&self, status: u16) -> Option<bool> {
        self.statuses
            .map(|r| r.iter().any(|&(a, b)| a <= status && status <= b))
    }

    /// The `capture_request_body` override, when set.
    pub const fn request_body(&self) -> Option<bool> {
        self.capture_request_body
    }

    /// The `capture_response_body` override, when set.
    pub const fn response_body(&self) -> Option<bool> {
        self.capture_response_body
    }

    /// The slow threshold override, when set.
    pub const fn slow_threshold(&self) -> Option<Duration> {
        match self.slow_threshold_ms {
            Some(ms) => Some(Duration::from_millis(ms)),
            None => None,
        }
    }
}

/// The per-request place where a handler leaves its [`EndpointOptions`] for the
/// middleware: set at most once (the first — outermost — tracked endpoint of a request
/// wins), read any number of times, from any thread. One per captured request: the
/// middleware's slot lives inside the request's scope frame
/// ([`ScopeFrame::endpoint_slot`](super::ScopeFrame::endpoint_slot)); a slot of your
/// own can be shared by `Arc` ([`Scope::endpoint_slot`](super::Scope::endpoint_slot)).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EndpointSlot(OnceLock<&'static EndpointOptions>);

impl EndpointSlot {
    /// An empty slot.
    pub const fn new() -> Self {
        EndpointSlot(OnceLock::new())
    }

    /// A separate slot holding what this one holds now.
    pub(crate) fn snapshot(&self) -> Self {
        EndpointSlot(self.0.clone())
    }

    /// Fills the slot with `options`; `false` when it was already filled (the earlier
    /// options stay).
    pub fn set(&self, options: &'static EndpointOptions) -> bool {
        self.0.set(options).is_ok()
    }

    /// The options, once a handler set them.
    pub fn get(&self) -> Option<&'static EndpointOptions> {
        self.0.get().copied()
    }
}

/// Fills the endpoint slot of the current request scope with `options` — what
/// `#[track_endpoint]` does when the handler starts. Returns `true` when the current
/// scope belongs to a request captured by a Loggier middleware (its slot is then
/// filled, unless an outer tracked endpoint of the same request filled it first), and
/// `false` outside any such request (no scope, an excluded path, or a task spawned
/// without the request scope): then nothing is recorded by this call.
pub fn set_endpoint_options(options: &'static EndpointOptions) -> bool {
    match super::current() {
        Some(frame) => match frame.endpoint_slot() {
            Some(slot) => {
                let _ = slot.set(options);
                true
            }
            None => false,
        },
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Scope;
    use std::sync::Arc;

    static OPTS: EndpointOptions = EndpointOptions::new("t::h")
        .tags(&["a", "b"])
        .statuses(&[(404, 404), (500, 599)])
        .slow_threshold_ms(5);
    static OTHER: EndpointOptions = EndpointOptions::new("t::inner");

    #[test]
    fn options_answer_for_what_they_set() {
        assert_eq!(OPTS.tracks_status(404), Some(true));
        assert_eq!(OPTS.tracks_status(503), Some(true));
        assert_eq!(OPTS.tracks_status(401), Some(false));
        assert_eq!(OPTS.tag_list(), ["a", "b"]);
        assert_eq!(OPTS.slow_threshold(), Some(Duration::from_millis(5)));
        assert_eq!(OPTS.request_body(), None);
        assert_eq!(OTHER.tracks_status(404), None);
    }

    #[test]
    fn the_first_endpoint_of_a_request_scope_wins() {
        assert!(!set_endpoint_options(&OPTS), "no scope, nothing to fill");
        let slot = Arc::new(EndpointSlot::new());
        let _g = Scope::new()
            .request_id("r1")
            .endpoint_slot(Arc::clone(&slot))
            .enter();
        {
            // A nested scope (e.g. `log.context(..)` inside the handler) shares it.
            let _inner = Scope::new().field("k", 1).enter();
            assert!(set_endpoint_options(&OPTS));
        }
        assert!(set_endpoint_options(&OTHER));
        assert_eq!(slot.get(), Some(&OPTS));
    }

    #[test]
    fn a_scope_without_a_slot_is_not_a_request() {
        let _g = Scope::new().field("job", "nightly").enter();
        assert!(!set_endpoint_options(&OPTS));
    }
}
