//! The relay's pipeline from the environment: the client settings (`LOGGIER_*`,
//! `APP_NAME`, `ENV`), its sinks, and the Loki query client.

use std::collections::HashMap;

use loggier_core::sink::loki::{LokiClientBuilder, LokiSink, LokiSinkBuilder};
use loggier_core::{
    Config, ConfigError, FileSink, Level, Loggier, LoggierBuilder, LokiClient, StdoutSink,
};

/// Record context keys the relay's Loki sink turns into labels (each record's own
/// `service`, `environment` and `component`, falling back to the relay's identity
/// for the first two). Low cardinality only.
pub const LABEL_FIELDS: [&str; 3] = ["service", "environment", "component"];

/// Context keys the relay's Loki sink sends as structured metadata, besides the
/// built-in `request_id`, `trace_id`, `span_id` and `route`.
pub const METADATA_FIELDS: [&str; 4] = ["msg_id", "version", "revision_id", "user_id"];

/// Service name when neither `LOGGIER_SERVICE_NAME` nor `APP_NAME` is set.
pub const DEFAULT_SERVICE_NAME: &str = "loggier-relay";

/// A built pipeline.
#[derive(Debug)]
pub struct Pipeline {
    /// The client records go to.
    pub loggier: Loggier,
    /// The settings it was built from (`data_dir`, caching, queue file).
    pub config: Config,
    /// Loki query client, when `LOKI_URL` is set.
    pub loki: Option<LokiClient>,
    /// Every label name the Loki sink can emit (empty without Loki).
    pub loki_labels: Vec<String>,
}

/// The relay's Loki sink: `LOKI_*` settings plus [`LABEL_FIELDS`] as labels and
/// [`METADATA_FIELDS`] (and any `LOKI_METADATA_FIELDS`) as structured metadata.
///
/// # Errors
/// As [`LokiSinkBuilder::from_env_with`] and [`LokiSinkBuilder::build`].
pub fn relay_loki_sink(
    lookup: impl Fn(&str) -> Option<String>,
    config: &Config,
) -> Result<LokiSink, ConfigError> {
    let mut metadata: Vec<String> = METADATA_FIELDS.iter().map(|s| s.to_string()).collect();
    if let Some(extra) = lookup("LOKI_METADATA_FIELDS") {
        for k in extra.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if !metadata.iter().any(|m| m == k) {
                metadata.push(k.to_string());
            }
        }
    }
    let timeout_set = lookup("LOKI_TIMEOUT_MS").is_some_and(|v| !v.trim().is_empty());
    let mut b = LokiSinkBuilder::from_env_with(&lookup)?
        .label_fields(LABEL_FIELDS)
        .metadata_fields(metadata);
    if !timeout_set {
        b = b.timeout(config.http_timeout);
    }
    b.build()
}

/// Builds the pipeline from `vars` (the process environment in the binary).
///
/// Defaults differ from a plain client in three ways: the service name falls back
/// to `APP_NAME`, then `loggier-relay`; the environment to `ENV`; and the level to
/// `trace` (a relay forwards every level it is sent) unless `LOGGIER_LEVEL` is set.
/// Sinks are `LOGGIER_SINKS` (default `file`, i.e. `<LOGGIER_DATA_DIR>/loggier.ndjson`,
/// `./loggier-data` by default), plus `loki` when `LOKI_URL` is set and
/// `LOGGIER_SINKS` is not.
///
/// # Errors
/// [`ConfigError`] naming the variable at fault; an unknown sink name
/// (`sinks`: the relay supports `file`, `stdout`, `loki`).
pub fn build_pipeline(vars: &HashMap<String, String>) -> Result<Pipeline, ConfigError> {
    let get = |k: &str| vars.get(k).filter(|v| !v.trim().is_empty()).cloned();
    let mut config = Config::from_vars(vars.clone())?;
    if get("LOGGIER_SERVICE_NAME").is_none() {
        config.service_name = get("APP_NAME").unwrap_or_else(|| DEFAULT_SERVICE_NAME.into());
    }
    if get("LOGGIER_ENVIRONMENT").is_none() {
        if let Some(env) = get("ENV") {
            config.environment = env;
        }
    }
    if get("LOGGIER_LEVEL").is_none() {
        config.log_level = Level::Trace;
    }
    let mut names = config.sinks.clone();
    if get("LOKI_URL").is_some()
        && get("LOGGIER_SINKS").is_none()
        && !names.iter().any(|n| n == "loki")
    {
        names.push("loki".into());
    }
    config.sinks = names.clone();
    let mut builder = LoggierBuilder::from_config(config.clone());
    let mut loki_labels = Vec::new();
    for name in &names {
        builder = match name.as_str() {
            "file" => builder.sink(FileSink::builder(config.default_log_file()).build()?),
            "stdout" => builder.sink(StdoutSink::new(config.stdout_format)),
            "loki" => {
                let sink = relay_loki_sink(get, &config)?;
                loki_labels = sink.label_names();
                builder.sink(sink)
            }
            other => {
                return Err(ConfigError::invalid(
                    "sinks",
                    other,
                    "the relay supports file, stdout and loki",
                ));
            }
        };
    }
    let loggier = builder.build()?;
    let loki = match get("LOKI_URL") {
        Some(_) => Some(LokiClientBuilder::from_env_with(get)?.build()?),
        None => None,
    };
    Ok(Pipeline {
        loggier,
        config,
        loki,
        loki_labels,
    })
}
