//! [`CaptureSettings`] from `LOGGIER_*` environment variables.
//!
//! The variables, values and defaults are in one table, on
//! [`CaptureSettings::from_env`].

use std::time::Duration;

use crate::config::{self, non_blank, parse_bool, parse_num, split_list};
use crate::error::ConfigError;

use super::settings::{CaptureSettings, CaptureSettingsBuilder, ResponseBodyCapture};

/// `(variable, setting)` pairs, so that an error raised by the builder for a setting
/// can name the variable it came from.
const VARS: [(&str, &str); 15] = [
    ("LOGGIER_CAPTURE_REQUEST_DATA", "capture_request_data"),
    ("LOGGIER_CAPTURE_REQUEST_BODY", "capture_request_body"),
    ("LOGGIER_ENDPOINT_REQUEST_BODY", "endpoint_request_body"),
    ("LOGGIER_CAPTURE_RESPONSE_BODY", "capture_response_body"),
    ("LOGGIER_MAX_BODY_SIZE", "max_body_size"),
    ("LOGGIER_STATUSES_TO_TRACK", "statuses_to_track"),
    ("LOGGIER_LOG_SLOW_REQUESTS", "log_slow_requests"),
    (
        "LOGGIER_SLOW_REQUEST_THRESHOLD_MS",
        "slow_request_threshold",
    ),
    ("LOGGIER_SLOW_REQUEST_THRESHOLD", "slow_request_threshold"),
    ("LOGGIER_LOG_ALL_REQUESTS", "log_all_requests"),
    ("LOGGIER_INCLUDE_STACKTRACE", "include_stacktrace"),
    ("LOGGIER_EXCLUDE_PATHS", "exclude_paths"),
    ("LOGGIER_REQUEST_ID_HEADER", "request_id_header"),
    ("LOGGIER_SENSITIVE_HEADERS", "sensitive_headers"),
    ("LOGGIER_SENSITIVE_FIELDS", "sensitive_fields"),
];

impl CaptureSettings {
    /// Reads the capture settings from the process environment.
    ///
    /// # Environment variables
    ///
    /// The names are the `LOGGIER` settings of the product notes (seeds/004, "Django
    /// Integration") with a `LOGGIER_` prefix. Unset or blank variables keep the default.
    /// Booleans accept `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off` (any case); lists
    /// are comma-separated.
    ///
    /// | variable | setting | value | default |
    /// |---|---|---|---|
    /// | `LOGGIER_CAPTURE_REQUEST_DATA` | `capture_request_data` | boolean | `true` |
    /// | `LOGGIER_CAPTURE_REQUEST_BODY` | `capture_request_body` | boolean | `false` |
    /// | `LOGGIER_ENDPOINT_REQUEST_BODY` | `endpoint_request_body` (provisional request body copies for `#[track_endpoint(capture_request_body = true)]`; see [`CaptureSettingsBuilder::endpoint_request_body`]) | boolean | `true` |
    /// | `LOGGIER_CAPTURE_RESPONSE_BODY` | `capture_response_body` | `off`, `errors`, `all`, or a boolean (`true` = errors) | `errors` |
    /// | `LOGGIER_MAX_BODY_SIZE` | `max_body_size` | bytes, at most 16777216 | `16384` (16 KiB) |
    /// | `LOGGIER_STATUSES_TO_TRACK` | `statuses_to_track` | codes, classes and ranges: `400,401,403,5xx`, `500-599`; blank = none | `400, 401, 403, 5xx` |
    /// | `LOGGIER_LOG_SLOW_REQUESTS` | `log_slow_requests` | boolean | `true` |
    /// | `LOGGIER_SLOW_REQUEST_THRESHOLD_MS` | `slow_request_threshold` | milliseconds (integer) | `1000` |
    /// | `LOGGIER_SLOW_REQUEST_THRESHOLD` | `slow_request_threshold` | seconds, decimal (`1.5`), as in seeds/004; not together with `_MS` | `1.0` |
    /// | `LOGGIER_LOG_ALL_REQUESTS` | `log_all_requests` | boolean | `false` |
    /// | `LOGGIER_INCLUDE_STACKTRACE` | `include_stacktrace` | boolean | `true` |
    /// | `LOGGIER_EXCLUDE_PATHS` | `exclude_paths` | paths starting with `/`; a trailing `*` makes a prefix: `/health,/static/*` | none |
    /// | `LOGGIER_REQUEST_ID_HEADER` | `request_id_header` | header name | `x-request-id` |
    /// | `LOGGIER_SENSITIVE_HEADERS` | `sensitive_headers` | header names, added to the defaults | none (defaults always apply) |
    /// | `LOGGIER_SENSITIVE_FIELDS` | `sensitive_fields` | keys of query parameters and body fields, added to the defaults | none (defaults always apply) |
    ///
    /// `LOGGIER_STATUSES_TO_TRACK` set but blank is the empty set (only slow and failed
    /// requests are recorded); unset keeps the default.
    ///
    /// Client settings (`LOGGIER_SERVICE_NAME`, sinks, batching, …) are read by
    /// [`Config::from_env`](crate::Config::from_env) and listed in [`crate::config`].
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] whose `setting` is the variable name (e.g.
    /// `LOGGIER_MAX_BODY_SIZE`) and whose value is the text it held, for the first
    /// variable that does not parse or is out of range; also when both
    /// `LOGGIER_SLOW_REQUEST_THRESHOLD` and `LOGGIER_SLOW_REQUEST_THRESHOLD_MS` are set.
    ///
    /// # Example
    /// ```
    /// use loggier_core::http::CaptureSettings;
    ///
    /// let s = CaptureSettings::from_vars([
    ///     ("LOGGIER_STATUSES_TO_TRACK", "4xx,5xx"),
    ///     ("LOGGIER_MAX_BODY_SIZE", "4096"),
    ///     ("LOGGIER_EXCLUDE_PATHS", "/health,/static/*"),
    /// ])?;
    /// assert!(s.statuses_to_track().contains(404));
    /// assert_eq!(s.max_body_size(), 4096);
    /// assert!(s.is_excluded("/static/app.js"));
    ///
    /// let err = CaptureSettings::from_vars([("LOGGIER_MAX_BODY_SIZE", "16k")]).unwrap_err();
    /// assert_eq!(err.setting(), "LOGGIER_MAX_BODY_SIZE");
    /// # Ok::<(), loggier_core::ConfigError>(())
    /// ```
    pub fn from_env() -> Result<CaptureSettings, ConfigError> {
        CaptureSettings::from_vars(std::env::vars())
    }

    /// Like [`CaptureSettings::from_env`] but from the given `(name, value)` pairs, so
    /// tests and embedders need not touch the process environment. Names not in the
    /// table are ignored.
    ///
    /// # Errors
    /// As [`CaptureSettings::from_env`].
    pub fn from_vars<I, K, V>(vars: I) -> Result<CaptureSettings, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        CaptureSettingsBuilder::from_vars(vars)?
            .build()
            .map_err(rename_to_variable)
    }
}

impl CaptureSettingsBuilder {
    /// A builder holding the defaults overridden by the `LOGGIER_*` variables among
    /// `vars` (see [`CaptureSettings::from_env`]), to adjust further in code before
    /// [`build`](CaptureSettingsBuilder::build).
    ///
    /// # Errors
    /// As [`CaptureSettings::from_env`] for values that do not parse; range checks
    /// (`max_body_size`, header names, paths) happen in `build`, whose errors name
    /// the setting rather than the variable.
    pub fn from_vars<I, K, V>(vars: I) -> Result<CaptureSettingsBuilder, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = config::collect_vars(vars);
        let get = |k: &str| non_blank(&vars, k);
        let mut b = CaptureSettings::builder();
        if let Some(v) = get("LOGGIER_CAPTURE_REQUEST_DATA") {
            b = b.capture_request_data(parse_bool("LOGGIER_CAPTURE_REQUEST_DATA", v)?);
        }
        if let Some(v) = get("LOGGIER_CAPTURE_REQUEST_BODY") {
            b = b.capture_request_body(parse_bool("LOGGIER_CAPTURE_REQUEST_BODY", v)?);
        }
        if let Some(v) = get("LOGGIER_ENDPOINT_REQUEST_BODY") {
            b = b.endpoint_request_body(parse_bool("LOGGIER_ENDPOINT_REQUEST_BODY", v)?);
        }
        if let Some(v) = get("LOGGIER_CAPTURE_RESPONSE_BODY") {
            let mode: ResponseBodyCapture = v
                .parse()
                .map_err(|e| as_variable("LOGGIER_CAPTURE_RESPONSE_BODY", e))?;
            b = b.capture_response_body(mode);
        }
        if let Some(v) = get("LOGGIER_MAX_BODY_SIZE") {
            b = b.max_body_size(parse_num("LOGGIER_MAX_BODY_SIZE", v, "a size in bytes")?);
        }
        if let Some(v) = vars.get("LOGGIER_STATUSES_TO_TRACK") {
            // Set but blank is meaningful: track no status.
            let _checked: super::StatusSet = v
                .parse()
                .map_err(|e| as_variable("LOGGIER_STATUSES_TO_TRACK", e))?;
            b = b.statuses_to_track([v.trim()]);
        }
        if let Some(v) = get("LOGGIER_LOG_SLOW_REQUESTS") {
            b = b.log_slow_requests(parse_bool("LOGGIER_LOG_SLOW_REQUESTS", v)?);
        }
        match (
            get("LOGGIER_SLOW_REQUEST_THRESHOLD_MS"),
            get("LOGGIER_SLOW_REQUEST_THRESHOLD"),
        ) {
            (Some(_), Some(secs)) => {
                return Err(ConfigError::invalid(
                    "LOGGIER_SLOW_REQUEST_THRESHOLD",
                    secs,
                    "set either LOGGIER_SLOW_REQUEST_THRESHOLD (seconds) or \
                     LOGGIER_SLOW_REQUEST_THRESHOLD_MS (milliseconds), not both",
                ));
            }
            (Some(ms), None) => {
                let ms: u64 = parse_num(
                    "LOGGIER_SLOW_REQUEST_THRESHOLD_MS",
                    ms,
                    "a whole number of milliseconds",
                )?;
                b = b.slow_request_threshold(Duration::from_millis(ms));
            }
            (None, Some(secs)) => {
                let bad = || {
                    ConfigError::invalid(
                        "LOGGIER_SLOW_REQUEST_THRESHOLD",
                        secs,
                        "expected a number of seconds such as 1 or 0.25",
                    )
                };
                let s: f64 = secs.parse().map_err(|_| bad())?;
                b = b.slow_request_threshold(Duration::try_from_secs_f64(s).map_err(|_| bad())?);
            }
            (None, None) => {}
        }
        if let Some(v) = get("LOGGIER_LOG_ALL_REQUESTS") {
            b = b.log_all_requests(parse_bool("LOGGIER_LOG_ALL_REQUESTS", v)?);
        }
        if let Some(v) = get("LOGGIER_INCLUDE_STACKTRACE") {
            b = b.include_stacktrace(parse_bool("LOGGIER_INCLUDE_STACKTRACE", v)?);
        }
        if let Some(v) = get("LOGGIER_EXCLUDE_PATHS") {
            b = b.exclude_paths(split_list(v));
        }
        if let Some(v) = get("LOGGIER_REQUEST_ID_HEADER") {
            b = b.request_id_header(v);
        }
        if let Some(v) = get("LOGGIER_SENSITIVE_HEADERS") {
            b = b.sensitive_headers(split_list(v));
        }
        if let Some(v) = get("LOGGIER_SENSITIVE_FIELDS") {
            b = b.sensitive_fields(split_list(v));
        }
        Ok(b)
    }
}

/// The same error, naming `variable` instead of the setting.
fn as_variable(variable: &'static str, e: ConfigError) -> ConfigError {
    match e {
        ConfigError::Invalid { value, reason, .. } => ConfigError::Invalid {
            setting: variable,
            value,
            reason,
        },
        ConfigError::Missing { reason, .. } => ConfigError::Missing {
            setting: variable,
            reason,
        },
    }
}

/// A builder error for a setting → the same error naming the setting's variable.
fn rename_to_variable(e: ConfigError) -> ConfigError {
    match VARS.iter().find(|(_, setting)| *setting == e.setting()) {
        Some((var, _)) => as_variable(var, e),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{DEFAULT_MAX_BODY_SIZE, DEFAULT_SLOW_REQUEST_THRESHOLD};

    fn from(pairs: &[(&str, &str)]) -> Result<CaptureSettings, ConfigError> {
        CaptureSettings::from_vars(pairs.iter().copied())
    }

    fn bad(pairs: &[(&str, &str)], variable: &str, value: &str) {
        let err = from(pairs).expect_err("must be refused");
        assert_eq!(err.setting(), variable, "{err}");
        assert!(err.to_string().contains(value), "{err}");
    }

    #[test]
    fn nothing_set_is_the_defaults() {
        let s = from(&[("PATH", "/bin"), ("LOGGIER_UNKNOWN", "x")]).expect("defaults");
        let d = CaptureSettings::default();
        assert_eq!(s.capture_request_data(), d.capture_request_data());
        assert_eq!(s.capture_request_body(), d.capture_request_body());
        assert!(s.endpoint_request_body());
        assert_eq!(s.capture_response_body(), ResponseBodyCapture::Errors);
        assert_eq!(s.max_body_size(), DEFAULT_MAX_BODY_SIZE);
        assert_eq!(s.statuses_to_track(), d.statuses_to_track());
        assert!(s.log_slow_requests());
        assert_eq!(s.slow_request_threshold(), DEFAULT_SLOW_REQUEST_THRESHOLD);
        assert!(!s.log_all_requests());
        assert!(s.include_stacktrace());
        assert_eq!(s.request_id_header().as_str(), "x-request-id");
        // Blank means unset for everything but the status list.
        let s = from(&[("LOGGIER_MAX_BODY_SIZE", "  ")]).expect("blank");
        assert_eq!(s.max_body_size(), DEFAULT_MAX_BODY_SIZE);
    }

    #[test]
    fn booleans() {
        for (var, get) in [
            (
                "LOGGIER_CAPTURE_REQUEST_DATA",
                CaptureSettings::capture_request_data as fn(&CaptureSettings) -> bool,
            ),
            (
                "LOGGIER_CAPTURE_REQUEST_BODY",
                CaptureSettings::capture_request_body,
            ),
            (
                "LOGGIER_ENDPOINT_REQUEST_BODY",
                CaptureSettings::endpoint_request_body,
            ),
            (
                "LOGGIER_LOG_SLOW_REQUESTS",
                CaptureSettings::log_slow_requests,
            ),
            (
                "LOGGIER_LOG_ALL_REQUESTS",
                CaptureSettings::log_all_requests,
            ),
            (
                "LOGGIER_INCLUDE_STACKTRACE",
                CaptureSettings::include_stacktrace,
            ),
        ] {
            for (text, want) in [
                ("true", true),
                ("1", true),
                ("YES", true),
                ("on", true),
                ("False", false),
                ("0", false),
                ("no", false),
                ("off", false),
            ] {
                let s = from(&[(var, text)]).expect(var);
                assert_eq!(get(&s), want, "{var}={text}");
            }
            bad(&[(var, "maybe")], var, "maybe");
        }
    }

    #[test]
    fn response_body_modes() {
        for (text, want) in [
            ("off", ResponseBodyCapture::Off),
            ("false", ResponseBodyCapture::Off),
            ("errors", ResponseBodyCapture::Errors),
            ("true", ResponseBodyCapture::Errors),
            ("all", ResponseBodyCapture::All),
        ] {
            let s = from(&[("LOGGIER_CAPTURE_RESPONSE_BODY", text)]).expect(text);
            assert_eq!(s.capture_response_body(), want, "{text}");
        }
        bad(
            &[("LOGGIER_CAPTURE_RESPONSE_BODY", "sometimes")],
            "LOGGIER_CAPTURE_RESPONSE_BODY",
            "sometimes",
        );
    }

    #[test]
    fn max_body_size() {
        let s = from(&[("LOGGIER_MAX_BODY_SIZE", "4096")]).expect("valid");
        assert_eq!(s.max_body_size(), 4096);
        for v in ["16k", "-1", "1.5"] {
            bad(&[("LOGGIER_MAX_BODY_SIZE", v)], "LOGGIER_MAX_BODY_SIZE", v);
        }
        // In range is the builder's check; the error still names the variable.
        bad(
            &[("LOGGIER_MAX_BODY_SIZE", "16777217")],
            "LOGGIER_MAX_BODY_SIZE",
            "16777217",
        );
    }

    #[test]
    fn statuses_to_track() {
        let s = from(&[("LOGGIER_STATUSES_TO_TRACK", "404, 5xx,418-420")]).expect("valid");
        for c in [404, 500, 503, 419] {
            assert!(s.statuses_to_track().contains(c), "{c}");
        }
        assert!(!s.statuses_to_track().contains(400));
        let s = from(&[("LOGGIER_STATUSES_TO_TRACK", "")]).expect("blank");
        assert!(s.statuses_to_track().is_empty());
        for v in ["5xy", "99", "600-500"] {
            bad(
                &[("LOGGIER_STATUSES_TO_TRACK", v)],
                "LOGGIER_STATUSES_TO_TRACK",
                v,
            );
        }
    }

    #[test]
    fn slow_request_threshold_in_ms_or_seed_seconds() {
        let s = from(&[("LOGGIER_SLOW_REQUEST_THRESHOLD_MS", "250")]).expect("ms");
        assert_eq!(s.slow_request_threshold(), Duration::from_millis(250));
        let s = from(&[("LOGGIER_SLOW_REQUEST_THRESHOLD", "1.5")]).expect("secs");
        assert_eq!(s.slow_request_threshold(), Duration::from_millis(1500));
        for v in ["fast", "-5", "2.5"] {
            bad(
                &[("LOGGIER_SLOW_REQUEST_THRESHOLD_MS", v)],
                "LOGGIER_SLOW_REQUEST_THRESHOLD_MS",
                v,
            );
        }
        for v in ["soon", "-1", "NaN", "inf"] {
            bad(
                &[("LOGGIER_SLOW_REQUEST_THRESHOLD", v)],
                "LOGGIER_SLOW_REQUEST_THRESHOLD",
                v,
            );
        }
        bad(
            &[
                ("LOGGIER_SLOW_REQUEST_THRESHOLD", "1"),
                ("LOGGIER_SLOW_REQUEST_THRESHOLD_MS", "1000"),
            ],
            "LOGGIER_SLOW_REQUEST_THRESHOLD",
            "not both",
        );
    }

    #[test]
    fn exclude_paths() {
        let s = from(&[("LOGGIER_EXCLUDE_PATHS", "/health, /static/*,")]).expect("valid");
        assert!(s.is_excluded("/health"));
        assert!(s.is_excluded("/static/a.css"));
        assert!(!s.is_excluded("/api"));
        bad(
            &[("LOGGIER_EXCLUDE_PATHS", "/ok,health")],
            "LOGGIER_EXCLUDE_PATHS",
            "health",
        );
    }

    #[test]
    fn request_id_header() {
        let s = from(&[("LOGGIER_REQUEST_ID_HEADER", "X-Correlation-Id")]).expect("valid");
        assert_eq!(s.request_id_header().as_str(), "x-correlation-id");
        bad(
            &[("LOGGIER_REQUEST_ID_HEADER", "bad header")],
            "LOGGIER_REQUEST_ID_HEADER",
            "bad header",
        );
    }

    #[test]
    fn sensitive_headers_and_fields() {
        let s = from(&[
            ("LOGGIER_SENSITIVE_HEADERS", "x-tenant-key, X-Session"),
            ("LOGGIER_SENSITIVE_FIELDS", "iban,pin"),
        ])
        .expect("valid");
        assert!(s.is_sensitive_header("x-tenant-key", false));
        assert!(s.is_sensitive_header("x-session", false));
        assert!(
            s.is_sensitive_header("authorization", false),
            "defaults stay"
        );
        assert!(s.masker.is_sensitive_key("iban"));
        assert!(s.masker.is_sensitive_key("PIN"));
        bad(
            &[("LOGGIER_SENSITIVE_HEADERS", "ok,x:y")],
            "LOGGIER_SENSITIVE_HEADERS",
            "x:y",
        );
    }

    #[test]
    fn the_builder_form_can_be_adjusted_in_code() {
        let s = CaptureSettingsBuilder::from_vars([("LOGGIER_MAX_BODY_SIZE", "100")])
            .expect("parses")
            .capture_request_body(true)
            .build()
            .expect("valid");
        assert_eq!(s.max_body_size(), 100);
        assert!(s.capture_request_body());
    }
}
