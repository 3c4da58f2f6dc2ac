//! OpenTelemetry bridge (feature `opentelemetry`, the `opentelemetry` 0.33 API): Loggier
//! records and the service's OpenTelemetry traces share trace ids, so they join in
//! Grafana / Tempo on `trace_id`.
//!
//! Two directions:
//!
//! - **OTel → records.** A record logged while an OpenTelemetry span is active (the
//!   current [`opentelemetry::Context`], set by `tracer.in_span`, `Context::attach`,
//!   `FutureExt::with_context`, or by `tracing-opentelemetry` 0.34, whose layer
//!   activates a span's context while the `tracing` span is entered — on by default,
//!   `with_context_activation`) carries that span's `trace_id` and `span_id` when
//!   the Loggier scope has no trace id. When the scope's trace id is the span's own
//!   trace (a span started inside a request whose `traceparent` the middleware
//!   read), the record keeps that trace id and takes the span's more precise
//!   `span_id`. A record that already has a trace id (an HTTP transaction record)
//!   is left alone. `tracing::info!` through `TracingLayer` (feature `tracing`)
//!   gets the same treatment.
//! - **Request → OTel.** The framework middleware (`loggier-tower`, `loggier-axum`,
//!   `loggier-actix`) runs each handler with [`parent_context`] of the request scope
//!   attached, so a span the handler starts is a child of the caller's span from the
//!   incoming `traceparent` (see
//!   [`context::instrument_request`](crate::context::instrument_request)).
//!
//! ```
//! use opentelemetry::trace::{Span, Tracer, TracerProvider};
//! use loggier_core::context::Scope;
//!
//! let frame = Scope::new()
//!     .request_id("req-1")
//!     .trace("4bf92f3577b34da6a3ce929d0e0e4736", Some("00f067aa0ba902b7".into()))
//!     .into_frame();
//! let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
//! let tracer = provider.tracer("doc");
//! let span = tracer.start_with_context("handler", &loggier_core::otel::parent_context(&frame));
//! assert_eq!(span.span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! ```
//!
//! Cost: reading the current OTel context on each logging call is a thread-local
//! borrow, no allocation unless ids are copied into the record.

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use crate::context::ScopeFrame;
use crate::record::Record;

/// The remote span context of `frame`: its trace id and span id (the caller's span
/// from the incoming `traceparent`), marked sampled, or `None` when the frame has no
/// trace id or span id, or they are not valid W3C ids (32 / 16 lower-case hex
/// characters, not all zero).
///
/// The frame does not keep the caller's `trace-flags`, so the parent is always marked
/// sampled: a parent-based sampler records the handler's spans.
pub fn remote_span_context(frame: &ScopeFrame) -> Option<SpanContext> {
    let trace_id = TraceId::from_hex(frame.trace_id()?).ok()?;
    let span_id = SpanId::from_hex(frame.span_id()?).ok()?;
    let sc = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    );
    sc.is_valid().then_some(sc)
}

/// The OpenTelemetry context a handler of the request in `frame` should run in: the
/// current context with [`remote_span_context`] as the active (remote) span, so spans
/// started inside are children of the caller's span. When the frame has no valid
/// trace ids, the current context unchanged.
pub fn parent_context(frame: &ScopeFrame) -> Context {
    match remote_span_context(frame) {
        Some(sc) => Context::current().with_remote_span_context(sc),
        None => Context::current(),
    }
}

/// The `(trace_id, span_id)` of the active local OpenTelemetry span as lower-case hex
/// (32 and 16 characters), or `None` when no valid span is active or the active one is
/// a remote parent (such as the one [`parent_context`] attaches: it is the caller's
/// span, not one of ours).
pub fn current_span_ids() -> Option<(String, String)> {
    Context::map_current(|cx| {
        let span = cx.span();
        let sc = span.span_context();
        (sc.is_valid() && !sc.is_remote())
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    })
}

/// Caller side of a logging call: copies the active OTel span's ids into `record`
/// per the rules in the [module docs](self).
pub(crate) fn fill_trace_ids(record: &mut Record, scope: Option<&ScopeFrame>) {
    fill_ids(&mut record.trace_id, &mut record.span_id, scope);
}

/// [`fill_trace_ids`] on the two id slots of whatever carries them (a [`Record`], or
/// the compact event of a logging call, without building a record).
pub(crate) fn fill_ids(
    trace_id: &mut Option<String>,
    span_id: &mut Option<String>,
    scope: Option<&ScopeFrame>,
) {
    if trace_id.is_some() {
        return;
    }
    let scope_trace = scope.and_then(ScopeFrame::trace_id);
    Context::map_current(|cx| {
        if !cx.has_active_span() {
            return;
        }
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let trace = sc.trace_id().to_string();
        match scope_trace {
            None => {
                *trace_id = Some(trace);
                *span_id = Some(sc.span_id().to_string());
            }
            // A local span inside the request's trace: same trace, finer span.
            Some(t) if t == trace && !sc.is_remote() => {
                *trace_id = Some(trace);
                *span_id = Some(sc.span_id().to_string());
            }
            Some(_) => {}
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Scope;
    use crate::record::Level;
    use opentelemetry::trace::{Tracer, TracerProvider};

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    #[test]
    fn frames_without_valid_ids_give_no_parent() {
        assert!(remote_span_context(&Scope::new().into_frame()).is_none());
        let no_span = Scope::new().trace(TRACE, None).into_frame();
        assert!(remote_span_context(&no_span).is_none());
        let zero = Scope::new()
            .trace("0".repeat(32), Some(SPAN.into()))
            .into_frame();
        assert!(remote_span_context(&zero).is_none());
        let junk = Scope::new()
            .trace("not-hex", Some(SPAN.into()))
            .into_frame();
        assert!(remote_span_context(&junk).is_none());
        assert!(!parent_context(&junk).has_active_span());
        let good = Scope::new().trace(TRACE, Some(SPAN.into())).into_frame();
        let _g = parent_context(&good).attach();
        assert!(
            current_span_ids().is_none(),
            "a remote parent is not our span"
        );
    }

    #[test]
    fn records_take_ids_from_the_active_span_when_the_scope_has_none() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = provider.tracer("t");
        tracer.in_span("work", |cx| {
            let sc = cx.span().span_context().clone();
            let mut r = Record::new(Level::Info, "x");
            fill_trace_ids(&mut r, None);
            assert_eq!(r.trace_id, Some(sc.trace_id().to_string()));
            assert_eq!(r.span_id, Some(sc.span_id().to_string()));

            // A scope of another trace wins.
            let other = Scope::new().trace(TRACE, Some(SPAN.into())).into_frame();
            let mut r = Record::new(Level::Info, "x");
            fill_trace_ids(&mut r, Some(&other));
            assert!(r.trace_id.is_none());

            // A record with its own ids is left alone.
            let mut r = Record::new(Level::Info, "x");
            r.trace_id = Some(TRACE.into());
            fill_trace_ids(&mut r, None);
            assert_eq!(r.trace_id.as_deref(), Some(TRACE));
            assert!(r.span_id.is_none());
        });
        let mut r = Record::new(Level::Info, "outside");
        fill_trace_ids(&mut r, None);
        assert!(r.trace_id.is_none());
        assert!(current_span_ids().is_none());
    }

    #[test]
    fn a_span_under_the_request_parent_refines_the_span_id() {
        let frame = Scope::new().trace(TRACE, Some(SPAN.into())).into_frame();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let tracer = provider.tracer("t");
        let _parent = parent_context(&frame).attach();
        // The remote parent alone adds nothing the scope does not have.
        let mut r = Record::new(Level::Info, "x");
        fill_trace_ids(&mut r, Some(&frame));
        assert!(r.trace_id.is_none());
        tracer.in_span("db", |cx| {
            let sc = cx.span().span_context().clone();
            assert_eq!(sc.trace_id().to_string(), TRACE);
            let mut r = Record::new(Level::Info, "x");
            fill_trace_ids(&mut r, Some(&frame));
            assert_eq!(r.trace_id.as_deref(), Some(TRACE));
            assert_eq!(r.span_id, Some(sc.span_id().to_string()));
            assert_ne!(r.span_id.as_deref(), Some(SPAN));
        });
    }
}
