use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;

/// Severity of a [`Record`](crate::Record), lowest to highest.
///
/// The six levels of the Loggier format (seeds/004). `Warning` is spelled the long way
/// to match Python logging and the Loggier wire format; `"warn"` is accepted when
/// parsing. The OpenTelemetry severity numbers are given by [`Level::otel_severity_number`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Level {
    /// Very detailed diagnostics.
    Trace = 0,
    /// Diagnostics for developers.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something unexpected that the service handled.
    Warning = 3,
    /// A failed operation.
    Error = 4,
    /// The service or a request cannot continue (panics are recorded at this level).
    Critical = 5,
}

impl Level {
    /// All levels, lowest first.
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warning,
        Level::Error,
        Level::Critical,
    ];

    /// Upper-case name used in the Loggier JSON format: `"INFO"`, `"WARNING"`, ….
    pub const fn as_upper(self) -> &'static str {
        match self {
            Level::Trace => "TRACE",
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }

    /// Lower-case name used in labels and logfmt: `"info"`, `"warning"`, ….
    pub const fn as_lower(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Critical => "critical",
        }
    }

    /// Python `logging` level number (10 debug … 50 critical; trace is 5), as in the
    /// `level_num` field of the Vector line format (seeds/002).
    pub const fn python_level_num(self) -> u8 {
        match self {
            Level::Trace => 5,
            Level::Debug => 10,
            Level::Info => 20,
            Level::Warning => 30,
            Level::Error => 40,
            Level::Critical => 50,
        }
    }

    /// OpenTelemetry `SeverityNumber` (1–24) for this level, per the
    /// [log data model](https://opentelemetry.io/docs/specs/otel/logs/data-model/#field-severitynumber):
    /// TRACE 1, DEBUG 5, INFO 9, WARN 13, ERROR 17, FATAL 21.
    pub const fn otel_severity_number(self) -> i32 {
        match self {
            Level::Trace => 1,
            Level::Debug => 5,
            Level::Info => 9,
            Level::Warning => 13,
            Level::Error => 17,
            Level::Critical => 21,
        }
    }

    pub(crate) const fn from_u8(v: u8) -> Level {
        match v {
            0 => Level::Trace,
            1 => Level::Debug,
            2 => Level::Info,
            3 => Level::Warning,
            4 => Level::Error,
            _ => Level::Critical,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_lower())
    }
}

impl FromStr for Level {
    type Err = ConfigError;

    /// Parses a level name, case-insensitively: `trace`, `debug`, `info`, `warning`
    /// (or `warn`), `error`, `critical` (or `fatal`).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the setting `log_level` and the value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "trace" => Ok(Level::Trace),
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warning" | "warn" => Ok(Level::Warning),
            "error" => Ok(Level::Error),
            "critical" | "fatal" => Ok(Level::Critical),
            _ => Err(ConfigError::invalid(
                "log_level",
                s,
                "expected one of trace, debug, info, warning, error, critical",
            )),
        }
    }
}

impl serde::Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_upper())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_case_insensitively_and_rejects_unknown() {
        assert_eq!("WARN".parse::<Level>().ok(), Some(Level::Warning));
        assert_eq!("Critical".parse::<Level>().ok(), Some(Level::Critical));
        let err = "loud".parse::<Level>().expect_err("unknown level");
        assert!(err.to_string().contains("log_level"), "{err}");
        assert!(err.to_string().contains("loud"), "{err}");
    }

    #[test]
    fn u8_round_trip() {
        for l in Level::ALL {
            assert_eq!(Level::from_u8(l as u8), l);
        }
    }
}
