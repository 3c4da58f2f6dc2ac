//! Reading `LOGGIER_*` values: the parsers shared by [`Config::from_vars`] and
//! `CaptureSettingsBuilder::from_vars` (`http` feature), so both accept the same
//! spellings and report a bad value the same way.
//!
//! [`Config::from_vars`]: super::Config::from_vars

use std::collections::HashMap;

use crate::error::ConfigError;

/// `(name, value)` pairs as a map, for [`non_blank`] lookups.
pub(crate) fn collect<I, K, V>(vars: I) -> HashMap<String, String>
where
    I: IntoIterator<Item = (K, V)>,
    K: Into<String>,
    V: Into<String>,
{
    vars.into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// The trimmed value of `name`, or `None` when it is unset or blank (blank keeps
/// the default).
pub(crate) fn non_blank<'a>(vars: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`, any case.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `setting` (a setting or a variable name) and `v`.
pub(crate) fn parse_bool(setting: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::invalid(
            setting,
            v,
            "expected true or false (also 1/0, yes/no, on/off)",
        )),
    }
}

/// `v` parsed as a `T` (a count, bytes, milliseconds, …); `what` completes the error
/// reason "expected {what}", e.g. "a size in bytes".
///
/// # Errors
/// [`ConfigError::Invalid`] naming `setting` and `v` when `v` does not parse.
pub(crate) fn parse_num<T: std::str::FromStr>(
    setting: &'static str,
    v: &str,
    what: &str,
) -> Result<T, ConfigError> {
    v.parse()
        .map_err(|_| ConfigError::invalid(setting, v, format!("expected {what}")))
}

/// A comma-separated list: items trimmed, empty items dropped.
pub(crate) fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
