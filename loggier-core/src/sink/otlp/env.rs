//! Parsing of the standard `OTEL_*` environment variables, per the
//! [OTLP exporter configuration](https://opentelemetry.io/docs/specs/otel/protocol/exporter/#configuration-options)
//! and the [SDK environment variables](https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/)
//! specs. Every failure names the variable it came from.

use std::time::Duration;

use percent_encoding::percent_decode_str;

use super::{OtlpCompression, OtlpProtocol};
use crate::error::ConfigError;

/// Generic endpoint; for OTLP/HTTP `/v1/logs` is appended.
pub(super) const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// Logs endpoint, used as is.
pub(super) const LOGS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT";
pub(super) const HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
pub(super) const LOGS_HEADERS: &str = "OTEL_EXPORTER_OTLP_LOGS_HEADERS";
pub(super) const PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub(super) const LOGS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL";
pub(super) const COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
pub(super) const LOGS_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION";
pub(super) const TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
pub(super) const LOGS_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT";
pub(super) const SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
pub(super) const RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";

/// The value of `var` when set and not blank, with its name.
pub(super) fn get(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
) -> Option<(String, &'static str)> {
    lookup(var)
        .filter(|v| !v.trim().is_empty())
        .map(|v| (v, var))
}

/// The value of the logs-specific variable when set (and not blank), else the generic
/// one, with the name of the variable it came from. Per the exporter spec, "each
/// configuration option MUST be overridable by a signal specific option": the
/// logs-specific variable replaces the generic one whole (headers are not merged).
pub(super) fn pick(
    lookup: &dyn Fn(&str) -> Option<String>,
    logs_var: &'static str,
    generic_var: &'static str,
) -> Option<(String, &'static str)> {
    get(lookup, logs_var).or_else(|| get(lookup, generic_var))
}

/// Parses `*_PROTOCOL`: `http/protobuf` or `grpc` (`http/json` is refused: this
/// client does not implement the JSON encoding).
pub(super) fn parse_protocol(value: &str, var: &'static str) -> Result<OtlpProtocol, ConfigError> {
    match value.trim() {
        "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
        "grpc" => Ok(OtlpProtocol::Grpc),
        "http/json" => Err(ConfigError::invalid(
            var,
            value,
            "OTLP/HTTP JSON is not supported by loggier; use http/protobuf or grpc",
        )),
        _ => Err(ConfigError::invalid(
            var,
            value,
            "expected http/protobuf or grpc",
        )),
    }
}

/// Parses `*_COMPRESSION`: `gzip` or `none`.
pub(super) fn parse_compression(
    value: &str,
    var: &'static str,
) -> Result<OtlpCompression, ConfigError> {
    match value.trim() {
        "gzip" => Ok(OtlpCompression::Gzip),
        "none" => Ok(OtlpCompression::None),
        _ => Err(ConfigError::invalid(var, value, "expected gzip or none")),
    }
}

/// Parses `*_TIMEOUT`: a positive whole number of milliseconds.
pub(super) fn parse_timeout_ms(value: &str, var: &'static str) -> Result<Duration, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(0) => Err(ConfigError::invalid(
            var,
            value,
            "must be greater than zero (milliseconds)",
        )),
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => Err(ConfigError::invalid(
            var,
            value,
            "expected a whole number of milliseconds",
        )),
    }
}

/// Parses a W3C-Baggage-like list `k1=v1,k2=v2` (the format of
/// `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_RESOURCE_ATTRIBUTES`): entries separated by
/// `,`, key and value separated by the first `=`, both trimmed and percent-decoded.
/// Empty entries (`a=1,,b=2`) are skipped. Baggage `;` properties are not supported
/// and stay part of the value.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `var` for an entry without `=`, an empty key, or
/// percent-encoding that does not decode to UTF-8.
///
/// # Security
/// With `secret` set (headers carry API keys and tokens), errors show neither the
/// value nor the faulty entry, only its position (1-based) and, when it parsed, its key.
pub(super) fn parse_key_values(
    value: &str,
    var: &'static str,
    secret: bool,
) -> Result<Vec<(String, String)>, ConfigError> {
    let shown = if secret {
        crate::sink::otlp::REDACTED
    } else {
        value
    };
    let mut out = Vec::new();
    for (i, entry) in value.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let what = if secret {
            format!("entry {}", i + 1)
        } else {
            format!("entry {entry:?}")
        };
        let Some((k, v)) = entry.split_once('=') else {
            return Err(ConfigError::invalid(
                var,
                shown,
                format!("{what} is not of the form key=value"),
            ));
        };
        let decode = |s: &str, part: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| {
                    ConfigError::invalid(
                        var,
                        shown,
                        format!("the {part} of {what} does not percent-decode to UTF-8"),
                    )
                })
        };
        let key = decode(k.trim(), "key")?;
        if key.is_empty() {
            return Err(ConfigError::invalid(
                var,
                shown,
                format!("{what} has an empty key"),
            ));
        }
        let val = decode(v.trim(), "value")?;
        out.push((key, val));
    }
    Ok(out)
}

/// `<base>/v1/logs` from the generic endpoint, per
/// [Endpoint URLs for OTLP/HTTP](https://opentelemetry.io/docs/specs/otel/protocol/exporter/#endpoint-urls-for-otlphttp):
/// `http://c:4318` → `http://c:4318/v1/logs`, `http://c:4318/` → `http://c:4318/v1/logs`,
/// `http://c:4318/mypath` → `http://c:4318/mypath/v1/logs`.
pub(super) fn append_logs_path(base: &str) -> String {
    let base = base.trim();
    format!("{}/v1/logs", base.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_values_are_trimmed_and_percent_decoded() {
        let kv = parse_key_values(
            " api-key = s%3Dcret%2C1 ,, x-tenant=acme,deployment.environment.name=prod%20eu",
            HEADERS,
            true,
        )
        .expect("valid");
        assert_eq!(
            kv,
            vec![
                ("api-key".to_string(), "s=cret,1".to_string()),
                ("x-tenant".to_string(), "acme".to_string()),
                (
                    "deployment.environment.name".to_string(),
                    "prod eu".to_string()
                ),
            ]
        );
    }

    #[test]
    fn key_values_errors_name_the_variable() {
        let e = parse_key_values("a=1,broken", RESOURCE_ATTRIBUTES, false).expect_err("no '='");
        assert_eq!(e.setting(), RESOURCE_ATTRIBUTES);
        assert!(e.to_string().contains("broken"), "{e}");
        let e = parse_key_values("=1", RESOURCE_ATTRIBUTES, false).expect_err("empty key");
        assert_eq!(e.setting(), RESOURCE_ATTRIBUTES);
        let e = parse_key_values("a=%FF%FE", RESOURCE_ATTRIBUTES, false).expect_err("not utf-8");
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }

    #[test]
    fn header_errors_never_show_the_secret() {
        for bad in ["api-key=ok,Bearer s3cr3t", "api-key=%FFs3cr3t"] {
            let e = parse_key_values(bad, HEADERS, true).expect_err(bad);
            assert_eq!(e.setting(), HEADERS);
            let text = e.to_string();
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(text.contains("entry"), "{text}");
        }
    }

    #[test]
    fn logs_specific_variable_wins() {
        let env = |name: &str| match name {
            LOGS_TIMEOUT => Some("250".to_string()),
            TIMEOUT => Some("9000".to_string()),
            HEADERS => Some("a=1".to_string()),
            LOGS_HEADERS => Some("  ".to_string()),
            _ => None,
        };
        assert_eq!(
            pick(&env, LOGS_TIMEOUT, TIMEOUT),
            Some(("250".to_string(), LOGS_TIMEOUT))
        );
        // A blank logs-specific value counts as unset.
        assert_eq!(
            pick(&env, LOGS_HEADERS, HEADERS),
            Some(("a=1".to_string(), HEADERS))
        );
        assert_eq!(pick(&env, LOGS_PROTOCOL, PROTOCOL), None);
    }

    #[test]
    fn scalar_values() {
        assert_eq!(
            parse_protocol("grpc", PROTOCOL).ok(),
            Some(OtlpProtocol::Grpc)
        );
        let e = parse_protocol("http/json", LOGS_PROTOCOL).expect_err("json refused");
        assert_eq!(e.setting(), LOGS_PROTOCOL);
        assert!(e.to_string().contains("not supported"), "{e}");
        assert!(parse_protocol("udp", PROTOCOL).is_err());
        assert_eq!(
            parse_compression("gzip", COMPRESSION).ok(),
            Some(OtlpCompression::Gzip)
        );
        assert!(parse_compression("zstd", COMPRESSION).is_err());
        assert_eq!(
            parse_timeout_ms("1500", TIMEOUT).ok(),
            Some(Duration::from_millis(1500))
        );
        for bad in ["0", "1.5", "-3", "10s"] {
            let e = parse_timeout_ms(bad, LOGS_TIMEOUT).expect_err(bad);
            assert_eq!(e.setting(), LOGS_TIMEOUT);
        }
    }

    #[test]
    fn logs_path_is_appended_once() {
        assert_eq!(append_logs_path("http://c:4318"), "http://c:4318/v1/logs");
        assert_eq!(append_logs_path("http://c:4318/"), "http://c:4318/v1/logs");
        assert_eq!(
            append_logs_path("https://c/mypath/"),
            "https://c/mypath/v1/logs"
        );
    }
}
