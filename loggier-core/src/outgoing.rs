//! Outgoing HTTP calls (feature `reqwest`): [`TraceHttp`], a
//! [`reqwest-middleware`](reqwest_middleware) middleware that times every call made
//! through a `reqwest_middleware::ClientWithMiddleware`, propagates the current
//! request's trace and request id downstream, and records the calls that are slow
//! or fail — the Rust form of seeds/004's `trace_http` (default threshold 1000 ms).
//!
//! ```no_run
//! use std::time::Duration;
//! use loggier_core::http::CaptureSettings;
//! use loggier_core::outgoing::TraceHttp;
//!
//! # async fn run(log: loggier_core::Loggier) -> Result<(), Box<dyn std::error::Error>> {
//! let settings = CaptureSettings::builder()
//!     .slow_request_threshold(Duration::from_millis(500)) // `threshold_ms`
//!     .sensitive_headers(["x-partner-key"])                // `mask_headers`
//!     .sensitive_fields(["account"])                       // `mask_params`
//!     .build()?;
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(TraceHttp::with_settings(log, settings).name("payments-api"))
//!     .build();
//! let resp = client.get("http://payments.internal/v1/charges?account=42").send().await?;
//! # let _ = resp; Ok(()) }
//! ```
//!
//! # Per call
//! 1. **Propagation.** Unless the request already has them, `traceparent` and the
//!    request id header ([`CaptureSettings::request_id_header`], default
//!    `x-request-id`) are added: the trace id is the active OpenTelemetry span's
//!    (feature `opentelemetry`), else the current [`Scope`](crate::context::Scope)'s
//!    (the incoming request's), else a new one; the parent id is the active OTel span's
//!    id, else a new span id for this call. The request id is the scope's; without
//!    one no request id header is added.
//! 2. **Timing.** A monotonic clock from just before the request is handed on to
//!    when the response head arrives (the body is the caller's to read), or the
//!    error.
//! 3. **Decision** — the inbound policy of [`crate::http`], applied to the call: it
//!    is recorded when its status is in `statuses_to_track` (default `400, 401, 403,
//!    5xx`), when it failed without a response (connect error, timeout), when it took
//!    `slow_request_threshold` or longer (default 1 s, with `log_slow_requests`), or
//!    always with `log_all_requests`. Level: error for 5xx and failures, warning for
//!    4xx and slow calls, info otherwise.
//! 4. **Record.** Logger `http.client`; message like
//!    `"Outgoing request: GET http://host/v1/x - 503 (12 ms)"` (prefixed `Slow` for
//!    slow calls, `Outgoing request failed:` for failures); the
//!    `context.transaction` shape of the inbound middleware (method, URL without
//!    query as `path`, query parameters, request and response headers; no bodies)
//!    with sensitive headers and query parameters masked as inbound ones
//!    ([`CaptureSettings::is_sensitive_header`], the masker's keys); a
//!    [`timing`](crate::Timing) `{name, kind: http, duration_ms, threshold_ms}`; the
//!    scope's request id and the propagated trace ids; the failure as `exception`.
//!
//! # Our own delivery is never traced
//! The network sinks send through their own `reqwest::Client`
//! ([`HttpTransport`](crate::sink::http_transport::HttpTransport)), never through a
//! `ClientWithMiddleware`, so this middleware never sees their calls. As a second
//! guard, a call made on the Loggier worker thread passes through untouched.
//!
//! # Security
//! Outgoing URLs, query parameters and headers are recorded (with `capture_request_data`,
//! the default); secrets in them are masked with `[FILTERED]` before the record is built.

use std::sync::Arc;

use http::{Extensions, HeaderName, HeaderValue};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};

use crate::client::Loggier;
use crate::context::{self, ScopeFrame};
use crate::http::{CaptureSettings, Exchange, RequestView, ResponseBodyCapture, header_entries};
use crate::pipeline::worker::on_pipeline_thread;
use crate::record::{Exception, Timing, TimingKind};
use crate::timing::stack;

/// Logger name of outgoing-call records.
pub const HTTP_CLIENT_LOGGER: &str = "http.client";

/// The `reqwest-middleware` middleware; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct TraceHttp {
    client: Loggier,
    settings: Arc<CaptureSettings>,
    name: Option<String>,
    tags: Vec<String>,
}

impl TraceHttp {
    /// The middleware with the default settings: statuses `400, 401, 403, 5xx`, calls
    /// of 1000 ms or more, and failures recorded; the default sensitive headers and
    /// the client's sensitive fields masked.
    pub fn new(client: Loggier) -> Self {
        let settings = CaptureSettings::builder()
            .capture_response_body(ResponseBodyCapture::Off)
            .build()
            .unwrap_or_default();
        TraceHttp::with_settings(client, settings)
    }

    /// The middleware with these settings. Used: `statuses_to_track`,
    /// `log_slow_requests`, `slow_request_threshold` (the call's `threshold_ms`),
    /// `log_all_requests`, `capture_request_data`, `include_stacktrace`,
    /// `sensitive_headers` (`mask_headers`), `sensitive_fields` (`mask_params`, also
    /// for header names) and `request_id_header`; the body and path settings are not
    /// (bodies of outgoing calls are not captured). The client's masker applies too.
    pub fn with_settings(client: Loggier, settings: impl Into<Arc<CaptureSettings>>) -> Self {
        let settings: Arc<CaptureSettings> = settings.into();
        let settings = Arc::new((*settings).clone().with_masker(client.masker().clone()));
        TraceHttp {
            client,
            settings,
            name: None,
            tags: Vec::new(),
        }
    }

    /// The timing name of every call (default `"<METHOD> <host><path>"`).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Adds a tag to every record of this middleware.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// The settings in use.
    pub fn settings(&self) -> &CaptureSettings {
        &self.settings
    }
}

/// Trace ids to send: the existing `traceparent`, or the active OTel span's, or the
/// scope's with a new span id, or a new trace.
fn propagate(req: &mut Request, frame: Option<&ScopeFrame>, settings: &CaptureSettings) {
    let headers = req.headers_mut();
    if !headers.contains_key("traceparent") {
        let from_scope = || {
            let trace = frame
                .and_then(ScopeFrame::trace_id)
                .filter(|t| t.len() == 32)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{:032x}", fastrand::u128(1..)));
            (trace, format!("{:016x}", fastrand::u64(1..)))
        };
        #[cfg(feature = "opentelemetry")]
        let (trace_id, parent_id) = crate::otel::current_span_ids().unwrap_or_else(from_scope);
        #[cfg(not(feature = "opentelemetry"))]
        let (trace_id, parent_id) = from_scope();
        if let Ok(v) = HeaderValue::from_str(&format!("00-{trace_id}-{parent_id}-01")) {
            headers.insert(HeaderName::from_static("traceparent"), v);
        }
    }
    let id_header = settings.request_id_header();
    if !headers.contains_key(id_header) {
        if let Some(id) = frame.and_then(ScopeFrame::request_id) {
            if let Ok(v) = HeaderValue::from_str(id) {
                headers.insert(id_header.clone(), v);
            }
        }
    }
}

#[async_trait::async_trait]
impl Middleware for TraceHttp {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        if on_pipeline_thread() {
            return next.run(req, extensions).await;
        }
        let frame = context::current();
        propagate(&mut req, frame.as_deref(), &self.settings);
        let mut exchange = Exchange::start(
            Arc::clone(&self.settings),
            // The scope's id, so none is generated per call when there is one.
            frame
                .as_deref()
                .and_then(ScopeFrame::request_id)
                .map(str::as_bytes),
            req.headers().get("traceparent").map(HeaderValue::as_bytes),
        );
        let method = req.method().clone();
        let url = req.url().clone();
        let request_headers = self
            .settings
            .capture_request_data()
            .then(|| req.headers().clone());

        let result = next.run(req, extensions).await;
        let mut failure = None;

        let response_headers = match &result {
            Ok(resp) => {
                let _ = exchange.on_response(resp.status().as_u16(), None);
                (self.settings.capture_request_data() && exchange.wants_response_headers())
                    .then(|| resp.headers().clone())
            }
            Err(e) => {
                // reqwest puts the whole URL, query included, in its error text.
                let mut exc = Exception::from_error(e);
                let shown = masked_url(&url, &self.settings);
                for m in std::iter::once(&mut exc.message)
                    .chain(exc.chain.iter_mut().map(|c| &mut c.message))
                {
                    if m.contains(url.as_str()) {
                        *m = m.replace(url.as_str(), &shown);
                    }
                }
                failure = Some(exc.message.clone());
                exchange.set_error(exc);
                None
            }
        };
        let Some(level) = exchange.finish() else {
            return result;
        };
        let status = exchange.status();
        let mut path = url.clone();
        path.set_query(None);
        path.set_fragment(None);
        // `user:password@` never goes into the record (cannot fail for http(s)).
        let _ = path.set_password(None);
        let _ = path.set_username("");
        let empty = http::HeaderMap::new();
        let mut record = exchange.into_record(
            level,
            RequestView {
                method: method.as_str(),
                path: path.as_str(),
                query: url.query(),
                client_ip: None,
            },
            header_entries(request_headers.as_ref().unwrap_or(&empty)),
            header_entries(response_headers.as_ref().unwrap_or(&empty)),
        );
        let duration_ms = record.http.as_ref().map_or(0.0, |h| h.duration_ms);
        let threshold = self.settings.slow_request_threshold();
        // The exchange decided (and set the level by) whether the call was slow and
        // then marked the record; the timing below carries the threshold instead.
        let slow = record.context.remove("slow_request_threshold_ms").is_some();
        record.message = match (&result, status) {
            (Err(_), _) => format!(
                "Outgoing request failed: {method} {path}: {}",
                failure.unwrap_or_default()
            ),
            (Ok(_), Some(code)) => format!(
                "{}utgoing request: {method} {path} - {code} ({} ms)",
                if slow { "Slow o" } else { "O" },
                duration_ms.round()
            ),
            (Ok(_), None) => format!("Outgoing request: {method} {path}"),
        }
        .into();
        record.logger = HTTP_CLIENT_LOGGER.into();
        // The exchange made up a request id; the scope's (if any) is the right one.
        record.request_id = frame
            .as_deref()
            .and_then(ScopeFrame::request_id)
            .map(str::to_string);
        record.tags.extend(self.tags.iter().cloned());
        record.timing = Some(Timing {
            name: self.name.clone().unwrap_or_else(|| {
                format!(
                    "{method} {}{}",
                    url.host_str().unwrap_or_default(),
                    url.path()
                )
            }),
            kind: TimingKind::Http,
            duration_ms,
            threshold_ms: Some(crate::timing::millis(threshold)),
            id: Some(stack::render_id(stack::new_id())),
            // The enclosing timed call, else the request this call was made for.
            parent: stack::parent_for(frame.as_deref()).map(|p| p.render()),
        });
        self.client.log(record);
        result
    }
}

/// `url` with the password of its `user:password@` and the values of sensitive
/// query parameters replaced by `[FILTERED]`; every other byte as it was.
fn masked_url(url: &reqwest::Url, settings: &CaptureSettings) -> String {
    let owned;
    let whole = match url.password() {
        Some(password) => {
            // Serialized as `scheme://username:password@…`.
            let start = url.scheme().len() + 3 + url.username().len() + 1;
            let s = url.as_str();
            owned = format!(
                "{}{}{}",
                &s[..start],
                crate::http::FILTERED,
                &s[start + password.len()..]
            );
            owned.as_str()
        }
        None => url.as_str(),
    };
    // In a serialized URL the first `?` starts the query (elsewhere it is escaped).
    let Some(q) = whole.find('?') else {
        return whole.to_string();
    };
    let end = url
        .fragment()
        .map_or(whole.len(), |f| whole.len() - f.len() - 1);
    // Only the values of sensitive keys change; every other byte of the URL keeps
    // its original encoding (no `[FILTERED]` → `%5BFILTERED%5D`, no `%20` → `+`).
    let masked = settings.masker.mask_form_text(&whole[q + 1..end]);
    format!("{}{masked}{}", &whole[..=q], &whole[end..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Scope;

    fn request() -> Request {
        Request::new(
            reqwest::Method::GET,
            "http://127.0.0.1:1/x".parse().expect("url"),
        )
    }

    #[test]
    fn scope_trace_and_request_id_are_propagated_without_overwriting() {
        let s = CaptureSettings::default();
        let frame = Scope::new()
            .request_id("req-7")
            .trace(
                "4bf92f3577b34da6a3ce929d0e0e4736",
                Some("00f067aa0ba902b7".into()),
            )
            .into_frame();
        let mut req = request();
        propagate(&mut req, Some(&frame), &s);
        let tp = req.headers()["traceparent"].to_str().expect("ascii");
        let parsed = crate::http::TraceParent::parse(tp.as_bytes()).expect("valid traceparent");
        assert_eq!(parsed.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(
            parsed.span_id, "00f067aa0ba902b7",
            "a new span for the call"
        );
        assert_eq!(req.headers()["x-request-id"], "req-7");

        let mut req = request();
        req.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("mine"));
        req.headers_mut().insert(
            "traceparent",
            HeaderValue::from_static("00-11111111111111111111111111111111-2222222222222222-00"),
        );
        propagate(&mut req, Some(&frame), &s);
        assert_eq!(req.headers()["x-request-id"], "mine");
        assert!(
            req.headers()["traceparent"]
                .to_str()
                .expect("ascii")
                .contains("1111")
        );
    }

    #[test]
    fn urls_in_error_text_are_masked() {
        let url: reqwest::Url = "http://h/p?api_key=k-1&page=2".parse().expect("url");
        let shown = masked_url(&url, &CaptureSettings::default());
        assert!(!shown.contains("k-1"), "{shown}");
        assert!(shown.contains("page=2"), "{shown}");
    }

    #[test]
    fn masked_url_keeps_the_encoding_of_what_it_does_not_mask() {
        let url: reqwest::Url = "http://h/p%20q?q=a%20b+c&token=t-1&tag=%5Bx%5D&flag#frag"
            .parse()
            .expect("url");
        let shown = masked_url(&url, &CaptureSettings::default());
        assert_eq!(
            shown,
            "http://h/p%20q?q=a%20b+c&token=[FILTERED]&tag=%5Bx%5D&flag#frag"
        );
        let creds: reqwest::Url = "https://bob:s3cr%40t@h:8/p?api_key=k&x=%2F"
            .parse()
            .expect("url");
        assert_eq!(
            masked_url(&creds, &CaptureSettings::default()),
            "https://bob:[FILTERED]@h:8/p?api_key=[FILTERED]&x=%2F"
        );
        let plain: reqwest::Url = "http://h/p".parse().expect("url");
        assert_eq!(
            masked_url(&plain, &CaptureSettings::default()),
            "http://h/p"
        );
    }

    #[test]
    fn outside_a_scope_a_new_trace_starts_and_no_request_id_is_sent() {
        let mut req = request();
        propagate(&mut req, None, &CaptureSettings::default());
        let tp = req.headers()["traceparent"].to_str().expect("ascii");
        assert!(
            crate::http::TraceParent::parse(tp.as_bytes()).is_some(),
            "{tp}"
        );
        assert!(!req.headers().contains_key("x-request-id"));
    }
}
