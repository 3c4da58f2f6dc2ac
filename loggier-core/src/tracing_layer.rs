//! A [`tracing_subscriber::Layer`] that turns `tracing` events into Loggier records.
//!
//! Libraries and handlers that log with `tracing::info!` go through the same
//! pipeline, masking and sinks as direct Loggier calls:
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! # fn main() -> Result<(), loggier_core::ConfigError> {
//! let log = loggier_core::Loggier::builder()
//!     .data_dir(std::env::temp_dir().join("loggier-doc-tracing"))
//!     .build()?;
//! let subscriber = tracing_subscriber::registry().with(loggier_core::TracingLayer::new(log.clone()));
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("checkout", order_id = "ORD-7");
//!     let _e = span.enter();
//!     tracing::warn!(retry = 2, "payment provider slow");
//! });
//! assert!(log.flush(std::time::Duration::from_secs(5)));
//! # Ok(()) }
//! ```
//!
//! Mapping: level TRACE/DEBUG/INFO/WARN/ERROR → trace/debug/info/warning/error; the
//! `message` field → the record message; the target → `logger`; the event's fields
//! and the fields of every span it is in (outermost first, the event's own fields
//! winning) → context. Strings, integers, floats and booleans keep their JSON type;
//! other values use their `Debug` text. The current Loggier [`Scope`](crate::context::Scope)
//! (request id, trace ids) applies as for any call.
//!
//! # Span timings
//! With [`TracingLayer::span_timings`], every span that closes at least `threshold`
//! after it was created becomes one timing record, so `#[tracing::instrument]` users
//! get the same slow-call records as `#[trace_function]`:
//!
//! ```
//! use std::time::Duration;
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! # fn main() -> Result<(), loggier_core::ConfigError> {
//! let dir = std::env::temp_dir().join("loggier-doc-span-timings");
//! let log = loggier_core::Loggier::builder().data_dir(&dir).build()?;
//! let layer = loggier_core::TracingLayer::new(log.clone()).span_timings(Duration::from_millis(5));
//! tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
//!     let _span = tracing::info_span!("load_invoice", invoice = 7).entered();
//!     std::thread::sleep(Duration::from_millis(10));
//! });
//! assert!(log.flush(Duration::from_secs(5)));
//! let text = std::fs::read_to_string(dir.join("loggier.ndjson")).expect("written");
//! assert!(text.contains(r#""timing":{"name":"load_invoice","kind":"function""#));
//! # Ok(()) }
//! ```
//!
//! The record: level from the span's level, message
//! `"Slow function: <span name> took <ms> ms"`, logger = the span's target, context =
//! the span's fields (and its parents', as for events), and
//! [`timing`](crate::Timing) `{name: span name, kind: function, duration_ms,
//! threshold_ms}`. The duration is wall time from the span's creation to its close
//! (busy and idle time together: an `.await` inside an instrumented future counts),
//! measured with [`Instant`]. Spans below the threshold cost one `Instant::now()` at
//! creation and one at close.
//!
//! Events raised on the Loggier worker thread (e.g. by the HTTP client a network sink
//! uses) are ignored, so our own delivery can never feed back into the pipeline.

use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanRecord};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::client::Loggier;
use crate::pipeline::worker::on_pipeline_thread;
use crate::record::{ContextFields, Level, Record, Timing, TimingKind};

/// Forwards `tracing` events to a [`Loggier`] client; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct TracingLayer {
    client: Loggier,
    span_threshold: Option<Duration>,
}

impl TracingLayer {
    /// A layer logging through `client`. Events below the client's level are skipped
    /// after one atomic load. Span timings are off.
    pub fn new(client: Loggier) -> Self {
        TracingLayer {
            client,
            span_threshold: None,
        }
    }

    /// Turns span timings on (default off): a span that closes `threshold` or more
    /// after its creation becomes one timing record (see the
    /// [module docs](self#span-timings)). `Duration::ZERO` records every span.
    #[must_use]
    pub fn span_timings(mut self, threshold: Duration) -> Self {
        self.span_threshold = Some(threshold);
        self
    }
}

/// When a span was created, kept in its extensions while span timings are on.
struct SpanStart(Instant);

/// Fields recorded on a span, kept in the span's extensions.
struct SpanFields(ContextFields);

struct FieldVisitor<'a> {
    fields: &'a mut ContextFields,
    message: Option<&'a mut Option<String>>,
}

impl FieldVisitor<'_> {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            if let Some(m) = self.message.as_deref_mut() {
                *m = Some(match value {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                });
                return;
            }
        }
        self.fields.insert(field.name(), value);
    }
}

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }
}

fn map_level(level: &tracing::Level) -> Level {
    match *level {
        tracing::Level::TRACE => Level::Trace,
        tracing::Level::DEBUG => Level::Debug,
        tracing::Level::INFO => Level::Info,
        tracing::Level::WARN => Level::Warning,
        tracing::Level::ERROR => Level::Error,
    }
}

impl<S> tracing_subscriber::Layer<S> for TracingLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut fields = ContextFields::new();
            attrs.record(&mut FieldVisitor {
                fields: &mut fields,
                message: None,
            });
            let mut ext = span.extensions_mut();
            ext.insert(SpanFields(fields));
            if self.span_threshold.is_some() {
                ext.insert(SpanStart(Instant::now()));
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(threshold) = self.span_threshold else {
            return;
        };
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(elapsed) = span.extensions().get::<SpanStart>().map(|s| s.0.elapsed()) else {
            return;
        };
        let meta = span.metadata();
        let level = map_level(meta.level());
        if elapsed < threshold || !self.client.enabled(level) || on_pipeline_thread() {
            return;
        }
        let mut fields = ContextFields::new();
        for s in span.scope().from_root() {
            if let Some(SpanFields(f)) = s.extensions().get::<SpanFields>() {
                fields.extend(f.clone());
            }
        }
        let duration_ms = crate::timing::millis(elapsed);
        let mut record = Record::new(
            level,
            format!("Slow function: {} took {duration_ms:.1} ms", meta.name()),
        )
        .with_logger(meta.target().to_string())
        .with_timing(Timing {
            name: meta.name().to_string(),
            kind: TimingKind::Function,
            duration_ms,
            threshold_ms: Some(crate::timing::millis(threshold)),
            id: None,
            parent: None,
        });
        record.context = fields;
        self.client.log(record);
    }

    fn on_record(&self, id: &Id, values: &SpanRecord<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            if let Some(SpanFields(fields)) = ext.get_mut::<SpanFields>() {
                values.record(&mut FieldVisitor {
                    fields,
                    message: None,
                });
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = map_level(meta.level());
        if !self.client.enabled(level) || on_pipeline_thread() {
            return;
        }
        let mut fields = ContextFields::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(SpanFields(f)) = span.extensions().get::<SpanFields>() {
                    fields.extend(f.clone());
                }
            }
        }
        let mut message = None;
        event.record(&mut FieldVisitor {
            fields: &mut fields,
            message: Some(&mut message),
        });
        let mut record =
            Record::new(level, message.unwrap_or_default()).with_logger(meta.target().to_string());
        record.context = fields;
        self.client.log(record);
    }
}
