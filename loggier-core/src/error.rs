//! Errors: [`ConfigError`] for settings, [`Error`] for runtime failures inside sinks.

use std::fmt;

/// A configuration value that cannot be used. Returned by
/// [`LoggierBuilder::build`](crate::LoggierBuilder::build), [`Config::from_env`](crate::Config::from_env)
/// and sink builders; it names the setting and the offending value.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The value of `setting` is not valid.
    #[error("invalid value {value:?} for setting `{setting}`: {reason}")]
    Invalid {
        /// Setting name as in the builder / docs, e.g. `max_batch_size`.
        setting: &'static str,
        /// The value given, rendered as text.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A required setting has no value.
    #[error("setting `{setting}` is required: {reason}")]
    Missing {
        /// Setting name.
        setting: &'static str,
        /// What to provide.
        reason: String,
    },
}

impl ConfigError {
    /// Builds [`ConfigError::Invalid`].
    pub fn invalid(
        setting: &'static str,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            setting,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// Builds [`ConfigError::Missing`].
    pub fn missing(setting: &'static str, reason: impl Into<String>) -> Self {
        ConfigError::Missing {
            setting,
            reason: reason.into(),
        }
    }

    /// The setting at fault.
    pub fn setting(&self) -> &'static str {
        match self {
            ConfigError::Invalid { setting, .. } | ConfigError::Missing { setting, .. } => setting,
        }
    }
}

/// What kind of runtime failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Local I/O (file sink, disk queue).
    Io,
    /// Encoding a batch failed (serialization, compression).
    Encode,
    /// The network or the remote endpoint failed.
    Network,
    /// The remote endpoint refused the data (non-retryable status).
    Rejected,
    /// The disk queue failed.
    Queue,
    /// The disk queue file is held by another client (another process, or another
    /// client in this one); the message names the holder's pid.
    Locked,
    /// The pipeline is shut down.
    Closed,
}

/// A runtime failure inside the pipeline or a sink. Opaque: inspect it with
/// [`Error::kind`] and its `Display`; the source error (I/O, HTTP client, SQLite) is
/// reachable through [`std::error::Error::source`] but its type is not part of the API.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a lower-case message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A new error of `kind` wrapping `source`.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(src) = &self.source {
            write!(f, ": {src}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::with_source(ErrorKind::Io, "i/o error", e)
    }
}
