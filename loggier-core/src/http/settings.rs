//! [`CaptureSettings`]: what the HTTP middleware records, with the setting names of the
//! product notes (seeds/004, "Django Integration" → `LOGGIER` settings).

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use http::header::HeaderName;

use crate::error::ConfigError;
use crate::http::exchange::STATIC_HEADER_NAMES;
use crate::mask::{Masker, NameMemo};

/// Default cap on captured body bytes: 16 KiB (`MAX_BODY_SIZE` of seeds/004).
pub const DEFAULT_MAX_BODY_SIZE: usize = 16 * 1024;
/// Largest accepted `max_body_size`: 16 MiB. Larger caps would let one request pin
/// that much memory until its record is built.
pub const MAX_BODY_SIZE_LIMIT: usize = 16 * 1024 * 1024;
/// Default `slow_request_threshold`: 1 s.
pub const DEFAULT_SLOW_REQUEST_THRESHOLD: Duration = Duration::from_secs(1);
/// Default `request_id_header`: `x-request-id`.
pub const DEFAULT_REQUEST_ID_HEADER: &str = "x-request-id";
/// Header names masked by default (lower case). Values marked
/// [`HeaderValue::is_sensitive`](http::HeaderValue::is_sensitive) are masked too,
/// whatever their name.
pub const DEFAULT_SENSITIVE_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
];

/// When the response body is copied into the record (`capture_response_body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResponseBodyCapture {
    /// Never.
    Off,
    /// Only for recorded responses with a 4xx or 5xx status (the default, as in
    /// seeds/004: "Capture response bodies for errors").
    #[default]
    Errors,
    /// For every recorded response.
    All,
}

impl ResponseBodyCapture {
    /// `true` when this mode keeps the body of a recorded response with `status`:
    /// never for [`Off`](ResponseBodyCapture::Off), `status >= 400` for
    /// [`Errors`](ResponseBodyCapture::Errors), always for
    /// [`All`](ResponseBodyCapture::All).
    pub fn allows(self, status: u16) -> bool {
        match self {
            ResponseBodyCapture::Off => false,
            ResponseBodyCapture::Errors => status >= 400,
            ResponseBodyCapture::All => true,
        }
    }
}

impl FromStr for ResponseBodyCapture {
    type Err = ConfigError;

    /// Parses `off`/`false`/`no`/`0`, `errors`/`true`/`yes`/`1` (errors only, like the
    /// seeds' boolean), or `all`/`always`, case-insensitively.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for setting `capture_response_body`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "false" | "no" | "0" | "never" => Ok(ResponseBodyCapture::Off),
            "errors" | "true" | "yes" | "1" => Ok(ResponseBodyCapture::Errors),
            "all" | "always" => Ok(ResponseBodyCapture::All),
            _ => Err(ConfigError::invalid(
                "capture_response_body",
                s,
                "expected off, errors or all",
            )),
        }
    }
}

impl From<bool> for ResponseBodyCapture {
    /// `true` → [`Errors`](ResponseBodyCapture::Errors) (the seeds' meaning),
    /// `false` → [`Off`](ResponseBodyCapture::Off).
    fn from(b: bool) -> Self {
        if b {
            ResponseBodyCapture::Errors
        } else {
            ResponseBodyCapture::Off
        }
    }
}

/// One entry of `statuses_to_track`, as given by the user; validated by
/// [`CaptureSettingsBuilder::build`] or [`StatusSet::from_specs`].
///
/// Built from a `u16` (`404`), a range (`500..=599`) or text (`"404"`, `"5xx"`,
/// `"500-599"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusSpec {
    /// One code.
    Code(u16),
    /// Inclusive range of codes.
    Range(u16, u16),
    /// Text to parse: a code, a class like `4xx`, or a range like `500-599`.
    Text(String),
}

impl From<u16> for StatusSpec {
    fn from(c: u16) -> Self {
        StatusSpec::Code(c)
    }
}

impl From<std::ops::RangeInclusive<u16>> for StatusSpec {
    fn from(r: std::ops::RangeInclusive<u16>) -> Self {
        StatusSpec::Range(*r.start(), *r.end())
    }
}

impl From<&str> for StatusSpec {
    fn from(s: &str) -> Self {
        StatusSpec::Text(s.to_string())
    }
}

impl From<String> for StatusSpec {
    fn from(s: String) -> Self {
        StatusSpec::Text(s)
    }
}

/// A set of HTTP status codes (100–999): single codes and inclusive ranges.
///
/// Parsed from text as a comma- or space-separated list: `"400, 401, 403, 5xx"`,
/// `"500-599"`. The class form `Nxx` means `N00..=N99`.
///
/// Default: `400, 401, 403, 5xx` (the seeds' `[500, 400, 401, 403]`, widened to every
/// server error so a 502 or 503 from a handler is not missed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet {
    /// Inclusive ranges; a single code is `(c, c)`.
    ranges: Vec<(u16, u16)>,
}

impl Default for StatusSet {
    fn default() -> Self {
        StatusSet {
            ranges: vec![(400, 400), (401, 401), (403, 403), (500, 599)],
        }
    }
}

impl StatusSet {
    /// The empty set: no status is tracked (only slow, failed and access-log records).
    pub fn empty() -> Self {
        StatusSet { ranges: Vec::new() }
    }

    /// Builds a set from specs.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for setting `statuses_to_track` naming the first entry
    /// that is not a code in 100–999, a class `1xx`–`9xx` or a range `a-b` with
    /// `a <= b`.
    pub fn from_specs<I>(specs: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<StatusSpec>,
    {
        let mut ranges = Vec::new();
        for spec in specs {
            match spec.into() {
                StatusSpec::Code(c) => ranges.push(check_range(c, c, &c.to_string())?),
                StatusSpec::Range(a, b) => ranges.push(check_range(a, b, &format!("{a}-{b}"))?),
                StatusSpec::Text(t) => {
                    for part in t.split([',', ' ', ';']).filter(|p| !p.is_empty()) {
                        ranges.push(parse_status_text(part)?);
                    }
                }
            }
        }
        Ok(StatusSet { ranges })
    }

    /// `true` when `status` (e.g. `404`) is in the set.
    pub fn contains(&self, status: u16) -> bool {
        self.ranges.iter().any(|&(a, b)| a <= status && status <= b)
    }

    /// `true` when no status is in the set.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

impl FromStr for StatusSet {
    type Err = ConfigError;

    /// See [`StatusSet`] for the syntax. An empty or blank string is the empty set.
    ///
    /// # Errors
    /// As [`StatusSet::from_specs`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StatusSet::from_specs([s])
    }
}

impl fmt::Display for StatusSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(a, b)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else if a % 100 == 0 && b == a + 99 {
                write!(f, "{}xx", a / 100)?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

fn check_range(a: u16, b: u16, shown: &str) -> Result<(u16, u16), ConfigError> {
    if !(100..=999).contains(&a) || !(100..=999).contains(&b) {
        return Err(ConfigError::invalid(
            "statuses_to_track",
            shown,
            "status codes must be between 100 and 999",
        ));
    }
    if a > b {
        return Err(ConfigError::invalid(
            "statuses_to_track",
            shown,
            "range start must not exceed its end",
        ));
    }
    Ok((a, b))
}

fn parse_status_text(part: &str) -> Result<(u16, u16), ConfigError> {
    let bad = |reason: &str| ConfigError::invalid("statuses_to_track", part, reason);
    let lower = part.to_ascii_lowercase();
    if let Some(class) = lower.strip_suffix("xx") {
        let d: u16 = match class.as_bytes() {
            [d @ b'1'..=b'9'] => u16::from(d - b'0'),
            _ => return Err(bad("a status class is one digit 1-9 followed by `xx`")),
        };
        return check_range(d * 100, d * 100 + 99, part);
    }
    let num = |s: &str| {
        s.trim()
            .parse::<u16>()
            .map_err(|_| bad("expected a status code, a class like 5xx or a range like 500-599"))
    };
    if let Some((a, b)) = lower.split_once('-') {
        return check_range(num(a)?, num(b)?, part);
    }
    let c = num(&lower)?;
    check_range(c, c, part)
}

/// One `exclude_paths` entry: an exact path, or a prefix when written with a trailing
/// `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PathRule {
    Exact(String),
    Prefix(String),
}

/// What the HTTP middleware records, and how. Shared (behind an `Arc`) by every request
/// of a service; built once with [`CaptureSettings::builder`].
///
/// Defaults: request data captured, request body not captured, response body for
/// recorded errors, `max_body_size` 16 KiB, `statuses_to_track` `400, 401, 403, 5xx`,
/// slow requests (≥ 1 s) logged, access-log mode off, stack traces included, the
/// [default sensitive headers](DEFAULT_SENSITIVE_HEADERS), no excluded paths,
/// `x-request-id` as the request id header.
///
/// # Security
/// Request data includes headers, query parameters and the client IP address; bodies may
/// hold personal data. Sensitive headers, query parameters and JSON/form body fields are
/// masked with `[FILTERED]` before a record is built; keep `capture_request_body` off
/// unless the endpoint's bodies are safe to store.
#[derive(Debug, Clone)]
pub struct CaptureSettings {
    pub(crate) capture_request_data: bool,
    pub(crate) capture_request_body: bool,
    pub(crate) endpoint_request_body: bool,
    pub(crate) capture_response_body: ResponseBodyCapture,
    pub(crate) max_body_size: usize,
    pub(crate) statuses_to_track: StatusSet,
    pub(crate) log_slow_requests: bool,
    pub(crate) slow_request_threshold: Duration,
    pub(crate) log_all_requests: bool,
    pub(crate) include_stacktrace: bool,
    /// Lower-case header names, defaults first.
    pub(crate) sensitive_headers: Vec<HeaderName>,
    exclude_paths: Vec<PathRule>,
    pub(crate) request_id_header: HeaderName,
    /// Extra sensitive keys for query parameters and body fields.
    sensitive_fields: Vec<String>,
    /// Decides sensitive keys: the default keys, `sensitive_fields`, and the client's
    /// keys once [`CaptureSettings::with_masker`] was applied.
    pub(crate) masker: Masker,
    /// `masker.is_sensitive_key` per header name, see [`HeaderNameMemo`].
    header_memo: HeaderNameMemo,
}

/// Most header names [`HeaderNameMemo`] remembers (names are client-controlled; past
/// this, new names are decided each time and not stored).
const HEADER_MEMO_CAPACITY: usize = 256;

/// Remembers whether a header name is sensitive (`sensitive_headers` or the
/// masker): a service sees few distinct header names, and deciding one runs the
/// masker's key rules once per header of every recorded request; with the memo that
/// is a hash lookup under a read lock, and for the usual names
/// ([`STATIC_HEADER_NAMES`]) an atomic load by position. A clone starts empty.
#[derive(Debug)]
struct HeaderNameMemo {
    names: NameMemo,
    /// Per entry of [`STATIC_HEADER_NAMES`]: [`UNDECIDED`], [`NOT_SENSITIVE`] or
    /// [`SENSITIVE`].
    known: [AtomicU8; STATIC_HEADER_NAMES.len()],
}

/// A verdict of [`HeaderNameMemo::known`] not taken yet.
const UNDECIDED: u8 = 0;
/// The name is not sensitive.
const NOT_SENSITIVE: u8 = 1;
/// The name is sensitive.
const SENSITIVE: u8 = 2;

impl Default for HeaderNameMemo {
    fn default() -> Self {
        HeaderNameMemo {
            names: NameMemo::new(HEADER_MEMO_CAPACITY),
            known: [const { AtomicU8::new(UNDECIDED) }; STATIC_HEADER_NAMES.len()],
        }
    }
}

impl Clone for HeaderNameMemo {
    fn clone(&self) -> Self {
        HeaderNameMemo::default()
    }
}

impl HeaderNameMemo {
    fn get_or(&self, name: &str, decide: impl FnOnce() -> bool) -> bool {
        self.names.get_or(name, decide)
    }

    /// The verdict for `STATIC_HEADER_NAMES[at]`: remembered, or `decide()` (then
    /// remembered). Two threads deciding at once store the same verdict.
    fn get_or_at(&self, at: usize, decide: impl FnOnce() -> bool) -> bool {
        let Some(slot) = self.known.get(at) else {
            return decide();
        };
        match slot.load(Ordering::Relaxed) {
            SENSITIVE => true,
            NOT_SENSITIVE => false,
            _ => {
                let verdict = decide();
                slot.store(
                    if verdict { SENSITIVE } else { NOT_SENSITIVE },
                    Ordering::Relaxed,
                );
                verdict
            }
        }
    }
}

impl Default for CaptureSettings {
    fn default() -> Self {
        CaptureSettings {
            capture_request_data: true,
            capture_request_body: false,
            endpoint_request_body: true,
            capture_response_body: ResponseBodyCapture::Errors,
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            statuses_to_track: StatusSet::default(),
            log_slow_requests: true,
            slow_request_threshold: DEFAULT_SLOW_REQUEST_THRESHOLD,
            log_all_requests: false,
            include_stacktrace: true,
            sensitive_headers: DEFAULT_SENSITIVE_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect(),
            exclude_paths: Vec::new(),
            request_id_header: HeaderName::from_static(DEFAULT_REQUEST_ID_HEADER),
            sensitive_fields: Vec::new(),
            masker: Masker::default(),
            header_memo: HeaderNameMemo::default(),
        }
    }
}

impl CaptureSettings {
    /// A builder starting from the defaults.
    pub fn builder() -> CaptureSettingsBuilder {
        CaptureSettingsBuilder::default()
    }

    /// `capture_request_data`: method, path and route are always recorded; when this
    /// is on (default), query parameters, request and response headers, client IP and
    /// user agent are too.
    pub fn capture_request_data(&self) -> bool {
        self.capture_request_data
    }

    /// `capture_request_body` (default off).
    pub fn capture_request_body(&self) -> bool {
        self.capture_request_body
    }

    /// `endpoint_request_body` (default on): request bodies are copied provisionally
    /// so that an endpoint marked `#[track_endpoint(capture_request_body = true)]` can
    /// ask for its request body; see [`CaptureSettingsBuilder::endpoint_request_body`].
    pub fn endpoint_request_body(&self) -> bool {
        self.endpoint_request_body
    }

    /// `capture_response_body` (default [`ResponseBodyCapture::Errors`]).
    pub fn capture_response_body(&self) -> ResponseBodyCapture {
        self.capture_response_body
    }

    /// `max_body_size`: most body bytes copied per body, bytes (default 16 KiB).
    pub fn max_body_size(&self) -> usize {
        self.max_body_size
    }

    /// `statuses_to_track`.
    pub fn statuses_to_track(&self) -> &StatusSet {
        &self.statuses_to_track
    }

    /// `log_slow_requests` (default on).
    pub fn log_slow_requests(&self) -> bool {
        self.log_slow_requests
    }

    /// `slow_request_threshold` (default 1 s).
    pub fn slow_request_threshold(&self) -> Duration {
        self.slow_request_threshold
    }

    /// `log_all_requests`: access-log mode (default off).
    pub fn log_all_requests(&self) -> bool {
        self.log_all_requests
    }

    /// `include_stacktrace`: backtraces of panics and errors go into records (default on).
    pub fn include_stacktrace(&self) -> bool {
        self.include_stacktrace
    }

    /// `request_id_header` (default `x-request-id`).
    pub fn request_id_header(&self) -> &HeaderName {
        &self.request_id_header
    }

    /// These settings masking with `masker` (typically the client's,
    /// `loggier.masker().clone()`, so its `sensitive_fields` apply at capture time too)
    /// plus this builder's own `sensitive_fields`. Adapters call this when they are
    /// given a client.
    #[must_use]
    pub fn with_masker(mut self, masker: Masker) -> Self {
        self.masker = masker.with_keys(&self.sensitive_fields);
        self.header_memo = HeaderNameMemo::default();
        self
    }

    /// `true` when `path` (without query string) matches an `exclude_paths` entry:
    /// nothing is captured for it and no request id is generated. One string compare
    /// per entry, no allocation.
    pub fn is_excluded(&self, path: &str) -> bool {
        self.exclude_paths.iter().any(|rule| match rule {
            PathRule::Exact(p) => p == path,
            PathRule::Prefix(p) => path.starts_with(p.as_str()),
        })
    }

    /// `true` when a header with this (lower-case) name, or a value marked
    /// `sensitive`, is masked in records.
    pub fn is_sensitive_header(&self, name: &str, value_marked_sensitive: bool) -> bool {
        value_marked_sensitive
            || self
                .header_memo
                .get_or(name, || self.decide_sensitive_header(name))
    }

    /// [`is_sensitive_header`](CaptureSettings::is_sensitive_header) for the usual
    /// header name `STATIC_HEADER_NAMES[at]`, its verdict remembered by position.
    pub(crate) fn is_sensitive_header_at(&self, at: usize, value_marked_sensitive: bool) -> bool {
        let Some(name) = STATIC_HEADER_NAMES.get(at) else {
            return true;
        };
        value_marked_sensitive
            || self
                .header_memo
                .get_or_at(at, || self.decide_sensitive_header(name))
    }

    /// `sensitive_headers` or the masker's key rules, for a lower-case `name`.
    fn decide_sensitive_header(&self, name: &str) -> bool {
        self.sensitive_headers
            .iter()
            .any(|h| h.as_str().eq_ignore_ascii_case(name))
            || self.masker.is_sensitive_key(name)
    }

    /// `true` when the response with `status` may end up recorded for its status alone
    /// (tracked, or access-log mode). Slowness and failures are decided later.
    pub fn status_decides(&self, status: u16) -> bool {
        self.log_all_requests || self.statuses_to_track.contains(status)
    }

    /// `true` when a response with `status` can be recorded at all, given that its
    /// duration is not yet known: tracked status, access-log mode, or slow logging on.
    pub fn may_record(&self, status: u16) -> bool {
        self.status_decides(status) || self.log_slow_requests
    }

    /// `true` when the response body of a response with `status` should be teed:
    /// `capture_response_body` allows it for this status and the response may be
    /// recorded.
    pub fn should_capture_response_body(&self, status: u16) -> bool {
        self.capture_response_body.allows(status)
            && self.max_body_size > 0
            && self.may_record(status)
    }
}

/// Builder for [`CaptureSettings`]; setters take the setting's name. Invalid values are
/// reported by [`build`](CaptureSettingsBuilder::build), never by a panic.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct CaptureSettingsBuilder {
    settings: CaptureSettings,
    statuses: Option<Vec<StatusSpec>>,
    sensitive_headers: Vec<String>,
    exclude_paths: Vec<String>,
    request_id_header: Option<String>,
}

impl CaptureSettingsBuilder {
    /// `capture_request_data` (default `true`): query, headers, client IP and user
    /// agent in records.
    pub fn capture_request_data(mut self, on: bool) -> Self {
        self.settings.capture_request_data = on;
        self
    }

    /// `capture_request_body` (default `false`): tee up to `max_body_size` bytes of the
    /// request body into records.
    pub fn capture_request_body(mut self, on: bool) -> Self {
        self.settings.capture_request_body = on;
        self
    }

    /// `endpoint_request_body` (default `true`): let endpoints marked
    /// `#[track_endpoint(capture_request_body = true)]` record their request bodies
    /// while `capture_request_body` is off.
    ///
    /// Extractors read a request body before the handler (and so its endpoint options)
    /// starts, so with this on every request body that is read is copied as it passes
    /// — at most `max_body_size` bytes, no copy for requests without a body — and the
    /// copy is freed as soon as the request's endpoint is known not to want it (or,
    /// for routes without `#[track_endpoint]`, when the request ends); only an
    /// endpoint that asked keeps it in its record. Turn it off when no endpoint uses
    /// `capture_request_body = true`, to save that copy; the endpoints' option then
    /// has no effect unless `capture_request_body` is on. Requests without a body
    /// (`GET`, `Content-Length: 0`) never get a copy or a body wrapper. The bench
    /// `loggier-core/benches/endpoint_tee.rs` measures the copy against this switch.
    /// From the environment: `LOGGIER_ENDPOINT_REQUEST_BODY`
    /// ([`CaptureSettings::from_env`]).
    pub fn endpoint_request_body(mut self, on: bool) -> Self {
        self.settings.endpoint_request_body = on;
        self
    }

    /// `capture_response_body` (default errors only). Accepts a
    /// [`ResponseBodyCapture`] or a `bool` (`true` = errors only).
    pub fn capture_response_body(mut self, mode: impl Into<ResponseBodyCapture>) -> Self {
        self.settings.capture_response_body = mode.into();
        self
    }

    /// `max_body_size`: most bytes copied per body, bytes (default 16 KiB, at most
    /// [`MAX_BODY_SIZE_LIMIT`]). `0` records only the length.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.settings.max_body_size = bytes;
        self
    }

    /// `statuses_to_track`: codes, ranges and classes, e.g. `[400, 401, 403]`,
    /// `["4xx", "500"]` or `["400,401,5xx"]`. Replaces the default.
    pub fn statuses_to_track<I>(mut self, statuses: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<StatusSpec>,
    {
        self.statuses = Some(statuses.into_iter().map(Into::into).collect());
        self
    }

    /// `log_slow_requests` (default `true`).
    pub fn log_slow_requests(mut self, on: bool) -> Self {
        self.settings.log_slow_requests = on;
        self
    }

    /// `slow_request_threshold` (default 1 s): a request whose response body ends this
    /// late after its arrival is slow.
    pub fn slow_request_threshold(mut self, threshold: Duration) -> Self {
        self.settings.slow_request_threshold = threshold;
        self
    }

    /// `log_all_requests` (default `false`): access-log mode, every request recorded
    /// (info level unless an error, client error or slow).
    pub fn log_all_requests(mut self, on: bool) -> Self {
        self.settings.log_all_requests = on;
        self
    }

    /// `include_stacktrace` (default `true`).
    pub fn include_stacktrace(mut self, on: bool) -> Self {
        self.settings.include_stacktrace = on;
        self
    }

    /// `sensitive_headers`: header names masked in addition to the
    /// [defaults](DEFAULT_SENSITIVE_HEADERS), case-insensitive. The defaults cannot be
    /// removed.
    pub fn sensitive_headers<I>(mut self, names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.sensitive_headers
            .extend(names.into_iter().map(Into::into));
        self
    }

    /// Extra sensitive keys for query parameters, header names and JSON/form body
    /// fields, in addition to the keys of [`Masker`] (`password`, `token`, `secret`, …;
    /// see [`crate::mask`] for the matching rules).
    pub fn sensitive_fields<I>(mut self, keys: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.settings
            .sensitive_fields
            .extend(keys.into_iter().map(Into::into));
        self
    }

    /// `exclude_paths`: request paths never captured, e.g. `"/health"` (exact) or
    /// `"/metrics*"`, `"/static/*"` (prefix: everything before the trailing `*`).
    /// Each must start with `/`. Added to earlier entries.
    pub fn exclude_paths<I>(mut self, paths: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.exclude_paths.extend(paths.into_iter().map(Into::into));
        self
    }

    /// `request_id_header` (default `x-request-id`): read on requests, echoed on
    /// responses.
    pub fn request_id_header(mut self, name: impl Into<String>) -> Self {
        self.request_id_header = Some(name.into());
        self
    }

    /// Validates and builds the settings.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the setting: `statuses_to_track` (see
    /// [`StatusSet::from_specs`]), `max_body_size` above [`MAX_BODY_SIZE_LIMIT`],
    /// `sensitive_headers` / `request_id_header` that are not valid header names,
    /// `exclude_paths` entries that are empty or do not start with `/`.
    pub fn build(self) -> Result<CaptureSettings, ConfigError> {
        let mut s = self.settings;
        if s.max_body_size > MAX_BODY_SIZE_LIMIT {
            return Err(ConfigError::invalid(
                "max_body_size",
                s.max_body_size,
                format!("must be at most {MAX_BODY_SIZE_LIMIT} bytes"),
            ));
        }
        if let Some(specs) = self.statuses {
            s.statuses_to_track = StatusSet::from_specs(specs)?;
        }
        for h in self.sensitive_headers {
            let name = HeaderName::from_bytes(h.trim().as_bytes()).map_err(|_| {
                ConfigError::invalid("sensitive_headers", &h, "not a valid header name")
            })?;
            if !s.sensitive_headers.contains(&name) {
                s.sensitive_headers.push(name);
            }
        }
        for p in self.exclude_paths {
            let rule = match p.strip_suffix('*') {
                Some(prefix) => PathRule::Prefix(prefix.to_string()),
                None => PathRule::Exact(p.clone()),
            };
            let (PathRule::Exact(x) | PathRule::Prefix(x)) = &rule;
            if !x.starts_with('/') {
                return Err(ConfigError::invalid(
                    "exclude_paths",
                    &p,
                    "a path must start with `/` (append `*` for a prefix)",
                ));
            }
            s.exclude_paths.push(rule);
        }
        s.masker = Masker::new(&s.sensitive_fields);
        s.header_memo = HeaderNameMemo::default();
        if let Some(h) = self.request_id_header {
            s.request_id_header = HeaderName::from_bytes(h.trim().as_bytes()).map_err(|_| {
                ConfigError::invalid("request_id_header", &h, "not a valid header name")
            })?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn header_sensitivity_is_remembered_per_masker() {
        let s = CaptureSettings::builder().build().expect("valid");
        for _ in 0..2 {
            assert!(!s.is_sensitive_header("x-tenant-ref", false));
            assert!(s.is_sensitive_header("x-tenant-ref", true), "marked values");
            assert!(s.is_sensitive_header("authorization", false));
            assert!(
                s.is_sensitive_header("x-session-token", false),
                "masker keys"
            );
        }
        // A new masker starts a new memo: the earlier answer is not reused.
        let s = s.with_masker(Masker::new(&["x-tenant-ref".to_string()]));
        assert!(s.is_sensitive_header("x-tenant-ref", false));
        assert!(s.clone().is_sensitive_header("x-tenant-ref", false));
    }

    use super::*;

    #[test]
    fn status_set_parses_codes_classes_and_ranges() {
        let s: StatusSet = "400, 401 5xx;418-420".parse().expect("valid");
        for c in [400, 401, 500, 503, 599, 418, 419, 420] {
            assert!(s.contains(c), "{c}");
        }
        for c in [200, 402, 404, 421, 600] {
            assert!(!s.contains(c), "{c}");
        }
        assert_eq!(s.to_string(), "400, 401, 5xx, 418-420");
        assert!("".parse::<StatusSet>().expect("empty").is_empty());
    }

    #[test]
    fn status_set_rejects_bad_entries_with_the_setting_name() {
        for bad in ["abc", "99", "1000", "x5xx", "10xx", "600-500", "5-"] {
            let err = bad.parse::<StatusSet>().expect_err(bad);
            assert_eq!(err.setting(), "statuses_to_track");
            assert!(err.to_string().contains(bad), "{err}");
        }
        let err = StatusSet::from_specs([StatusSpec::from(42)]).expect_err("42");
        assert!(err.to_string().contains("42"));
    }

    #[test]
    fn defaults_track_seed_statuses_and_every_server_error() {
        let s = CaptureSettings::default();
        for c in [400, 401, 403, 500, 502] {
            assert!(s.statuses_to_track().contains(c));
        }
        assert!(!s.statuses_to_track().contains(404));
        assert!(!s.statuses_to_track().contains(200));
        assert_eq!(s.max_body_size(), 16 * 1024);
        assert_eq!(s.slow_request_threshold(), Duration::from_secs(1));
        assert_eq!(s.request_id_header().as_str(), "x-request-id");
    }

    #[test]
    fn builder_validates_each_setting() {
        let err = CaptureSettings::builder()
            .max_body_size(MAX_BODY_SIZE_LIMIT + 1)
            .build()
            .expect_err("too big");
        assert_eq!(err.setting(), "max_body_size");
        let err = CaptureSettings::builder()
            .request_id_header("bad header")
            .build()
            .expect_err("space");
        assert_eq!(err.setting(), "request_id_header");
        let err = CaptureSettings::builder()
            .sensitive_headers(["x:y"])
            .build()
            .expect_err("colon");
        assert_eq!(err.setting(), "sensitive_headers");
        let err = CaptureSettings::builder()
            .exclude_paths(["health"])
            .build()
            .expect_err("no slash");
        assert_eq!(err.setting(), "exclude_paths");
        let err = CaptureSettings::builder()
            .statuses_to_track(["4xx", "nope"])
            .build()
            .expect_err("nope");
        assert_eq!(err.setting(), "statuses_to_track");
    }

    #[test]
    fn exclude_paths_exact_and_prefix() {
        let s = CaptureSettings::builder()
            .exclude_paths(["/health", "/static/*"])
            .build()
            .expect("valid");
        assert!(s.is_excluded("/health"));
        assert!(!s.is_excluded("/health/deep"));
        assert!(!s.is_excluded("/healthz"));
        assert!(s.is_excluded("/static/app.js"));
        assert!(s.is_excluded("/static/"));
        assert!(!s.is_excluded("/static"));
        assert!(!s.is_excluded("/api"));
    }

    #[test]
    fn usual_header_names_get_the_same_verdict_by_position() {
        let custom = CaptureSettings::builder()
            .sensitive_headers(["X-Real-IP"])
            .sensitive_fields(["origin"])
            .build()
            .expect("valid");
        let with_masker = CaptureSettings::default().with_masker(Masker::new(["referer"]));
        for s in [CaptureSettings::default(), custom, with_masker] {
            // Twice: the first answer decides, the second is remembered.
            for _ in 0..2 {
                for (at, name) in STATIC_HEADER_NAMES.iter().enumerate() {
                    assert_eq!(
                        s.is_sensitive_header_at(at, false),
                        s.is_sensitive_header(name, false),
                        "{name}"
                    );
                    assert!(s.is_sensitive_header_at(at, true), "{name}");
                }
            }
        }
        let custom = CaptureSettings::builder()
            .sensitive_headers(["X-Real-IP"])
            .build()
            .expect("valid");
        let at = |n: &str| STATIC_HEADER_NAMES.iter().position(|h| *h == n).expect(n);
        assert!(custom.is_sensitive_header_at(at("x-real-ip"), false));
        assert!(custom.is_sensitive_header_at(at("authorization"), false));
        assert!(custom.is_sensitive_header_at(at("cookie"), false));
        assert!(!custom.is_sensitive_header_at(at("host"), false));
        let referer = CaptureSettings::default().with_masker(Masker::new(["referer"]));
        assert!(referer.is_sensitive_header_at(at("referer"), false));
        assert!(!CaptureSettings::default().is_sensitive_header_at(at("referer"), false));
    }

    #[test]
    fn sensitive_headers_defaults_extra_and_marked() {
        let s = CaptureSettings::builder()
            .sensitive_headers(["X-Tenant-Secret-Id"])
            .build()
            .expect("valid");
        assert!(s.is_sensitive_header("authorization", false));
        assert!(s.is_sensitive_header("cookie", false));
        assert!(s.is_sensitive_header("x-tenant-secret-id", false));
        assert!(s.is_sensitive_header("x-anything", true));
        assert!(!s.is_sensitive_header("accept", false));
    }

    #[test]
    fn sensitive_fields_and_the_client_masker_both_apply() {
        let s = CaptureSettings::builder()
            .sensitive_fields(["pin"])
            .build()
            .expect("valid");
        assert!(s.masker.is_sensitive_key("PIN"));
        assert!(!s.masker.is_sensitive_key("iban"));
        let s = s.with_masker(Masker::new(["iban"]));
        assert!(s.masker.is_sensitive_key("iban"));
        assert!(s.masker.is_sensitive_key("pin"));
        assert!(s.is_sensitive_header("pin", false));
    }

    #[test]
    fn response_body_capture_modes() {
        let s = CaptureSettings::default();
        assert!(s.should_capture_response_body(500));
        assert!(s.should_capture_response_body(404)); // may still be recorded as slow
        assert!(!s.should_capture_response_body(200));
        let s = CaptureSettings::builder()
            .log_slow_requests(false)
            .build()
            .expect("valid");
        assert!(!s.should_capture_response_body(404));
        assert!(s.should_capture_response_body(401));
        let s = CaptureSettings::builder()
            .capture_response_body(ResponseBodyCapture::All)
            .log_all_requests(true)
            .build()
            .expect("valid");
        assert!(s.should_capture_response_body(200));
        let s = CaptureSettings::builder()
            .capture_response_body(false)
            .build()
            .expect("valid");
        assert!(!s.should_capture_response_body(500));
        assert_eq!(
            "ALL".parse::<ResponseBodyCapture>().ok(),
            Some(ResponseBodyCapture::All)
        );
        assert_eq!(
            "maybe"
                .parse::<ResponseBodyCapture>()
                .expect_err("bad")
                .setting(),
            "capture_response_body"
        );
    }
}
