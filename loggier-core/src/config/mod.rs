//! Client settings: [`Config`], read from code or from the environment.
//!
//! # Environment variables ([`Config::from_env`])
//!
//! | variable | setting | default |
//! |---|---|---|
//! | `LOGGIER_SERVICE_NAME` | `service_name` | `"app"` |
//! | `LOGGIER_ENVIRONMENT` | `environment` | `"development"` |
//! | `LOGGIER_PROJECT_NAME` | `project_name` | none |
//! | `LOGGIER_VERSION` | `version` | none |
//! | `LOGGIER_REVISION` | `revision` | none |
//! | `LOGGIER_LEVEL` | `log_level` (`trace`…`critical`) | `info` |
//! | `LOGGIER_MAX_BATCH_SIZE` | `max_batch_size`, records | `100` |
//! | `LOGGIER_MAX_BATCH_BYTES` | `max_batch_bytes`, bytes | `1048576` (1 MiB) |
//! | `LOGGIER_FLUSH_INTERVAL_MS` | `flush_interval`, ms | `1000` |
//! | `LOGGIER_CHANNEL_CAPACITY` | `channel_capacity`, records | `10000` |
//! | `LOGGIER_FULL_POLICY` | `full_policy` (`drop_newest`, `block`) | `drop_newest` |
//! | `LOGGIER_SENSITIVE_FIELDS` | `sensitive_fields`, comma-separated | none (defaults always apply) |
//! | `LOGGIER_TAGS` | `tags`, comma-separated | none |
//! | `LOGGIER_CAPTURE_UNCAUGHT` | `capture_uncaught` (`true`/`false`/`1`/`0`) | `true` |
//! | `LOGGIER_DATA_DIR` | `data_dir` | `./loggier-data` |
//! | `LOGGIER_ENABLE_CACHING` | `enable_caching` | `true` |
//! | `LOGGIER_CACHE_DIR` | `cache_dir` | `<data_dir>/queue` |
//! | `LOGGIER_MAX_RETRIES` | `max_retries` | `3` |
//! | `LOGGIER_HTTP_TIMEOUT_MS` | `http_timeout`, ms | `5000` |
//! | `LOGGIER_NETWORK_CHECK_INTERVAL_MS` | `network_check_interval`, ms | `60000` |
//! | `LOGGIER_DELIVERY_MODE` | `delivery_mode` (`offline_cache`, `durable`) | `offline_cache` |
//! | `LOGGIER_RETRY_INITIAL_BACKOFF_MS` | `retry_initial_backoff`, ms | `500` |
//! | `LOGGIER_RETRY_MAX_BACKOFF_MS` | `retry_max_backoff`, ms | `30000` |
//! | `LOGGIER_CACHE_MAX_BYTES` | `cache_max_bytes`, bytes | `268435456` (256 MiB) |
//! | `LOGGIER_CACHE_MAX_AGE_SECS` | `cache_max_age`, seconds | `604800` (7 days) |
//! | `LOGGIER_CACHE_FSYNC` | `cache_fsync` | `false` |
//! | `LOGGIER_SINKS` | `sinks`, comma-separated names | `file` |
//! | `LOGGIER_STDOUT_FORMAT` | `stdout_format` (`json`, `logfmt`) | `json` |
//!
//! Network sinks read their own variables (`LOKI_URL`, `LOKI_TENANT_ID`, `OTEL_*`)
//! when named in `LOGGIER_SINKS` (`otlp`: see
//! [`OtlpSinkBuilder::from_env_lookup`](crate::sink::otlp::OtlpSinkBuilder::from_env_lookup),
//! feature `otlp`).

use std::path::PathBuf;
use std::time::Duration;

use crate::error::ConfigError;

mod vars;
use crate::pipeline::retry::{DEFAULT_INITIAL_BACKOFF, DEFAULT_MAX_BACKOFF, RetryPolicy};
pub use crate::pipeline::spool::DeliveryMode;
use crate::record::Level;
pub(crate) use vars::{collect as collect_vars, non_blank, parse_bool, parse_num, split_list};

/// Default `cache_max_bytes`: 256 MiB (see [`crate::queue`] when the `disk-queue`
/// feature is on).
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Default `cache_max_age`: 7 days.
pub const DEFAULT_CACHE_MAX_AGE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// Largest `flush_interval`: 1 hour. A record waits at most this long in a batch.
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// Largest `http_timeout`: 1 hour.
pub const MAX_HTTP_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Largest `network_check_interval`: 1 day.
pub const MAX_NETWORK_CHECK_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// Largest `retry_initial_backoff` and `retry_max_backoff`: 1 day.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(24 * 60 * 60);
/// Largest `cache_max_age`: 10 years (3650 days).
pub const MAX_CACHE_MAX_AGE: Duration = Duration::from_secs(3650 * 24 * 60 * 60);

/// What a logging call does when the pipeline's channel is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FullPolicy {
    /// Drop the new record and count it (`Stats::dropped_queue_full`). The caller never
    /// waits. Default: request latency stays flat whatever the sinks do. Between the
    /// worker and the sinks: while no sink's queue has room, records wait in the
    /// channel; while some sink has room, a record another sink has no room for is
    /// counted in that sink's `dropped_backlog`, so no sink waits for another.
    #[default]
    DropNewest,
    /// Block the calling thread until there is room. Never drops a record for lack of
    /// room anywhere in the pipeline: the worker also waits for room in each sink's
    /// queue, so the slowest sink sets the pace of every sink and every caller. A
    /// stalled sink therefore stalls the callers — and inside an async runtime it
    /// stalls that runtime thread. For batch jobs, not for request handlers.
    Block,
}

/// All client settings. Field defaults are those of [`Config::default`]; the
/// Loggier names (seeds/004) are kept.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Service name added to every record. Default `"app"`.
    pub service_name: String,
    /// Deployment environment. Default `"development"`.
    pub environment: String,
    /// Project name. Default none.
    pub project_name: Option<String>,
    /// Service version. Default none.
    pub version: Option<String>,
    /// Source revision. Default none.
    pub revision: Option<String>,
    /// Records below this level are discarded at the call site (one atomic load).
    /// Default [`Level::Info`].
    pub log_level: Level,
    /// Most records in one batch. Default 100. Must be > 0.
    pub max_batch_size: usize,
    /// Most estimated bytes in one batch. Default 1 MiB. Must be > 0.
    pub max_batch_bytes: usize,
    /// Longest time a record waits in a batch before it is written. Default 1 s
    /// (Vector's default batch timeout). Must be > 0 and at most
    /// [`MAX_FLUSH_INTERVAL`] (1 hour).
    pub flush_interval: Duration,
    /// Capacity of the channel between callers and the worker, records. Default
    /// 10 000. Must be > 0. Each sink's own queue behind the worker holds up to
    /// this many, at most 4 096.
    pub channel_capacity: usize,
    /// What to do when the channel is full. Default [`FullPolicy::DropNewest`].
    pub full_policy: FullPolicy,
    /// Extra keys masked in context and bodies (the defaults in
    /// [`DEFAULT_SENSITIVE_KEYS`](crate::mask::DEFAULT_SENSITIVE_KEYS) always apply).
    pub sensitive_fields: Vec<String>,
    /// Tags added to every record.
    pub tags: Vec<String>,
    /// Whether [`init`](crate::init) installs a panic hook that records panics.
    /// Default `true`.
    pub capture_uncaught: bool,
    /// Directory for the embedded file sink (`<data_dir>/loggier.ndjson`) and, by
    /// default, the disk queue. Default `./loggier-data`.
    pub data_dir: PathBuf,
    /// Keep batches that cannot be delivered in the disk queue. Default `true`.
    pub enable_caching: bool,
    /// Directory of the disk queue. Default `<data_dir>/queue`. One client per
    /// directory: a second client on a queue in use gets a
    /// [`ConfigError`] for `cache_dir` naming the holder's pid; give each
    /// instance its own.
    pub cache_dir: Option<PathBuf>,
    /// Delivery attempts per batch before it is parked for later replay. Default 3.
    pub max_retries: u32,
    /// Timeout of one network request. Default 5 s. Must be > 0 and at most
    /// [`MAX_HTTP_TIMEOUT`] (1 hour).
    pub http_timeout: Duration,
    /// Interval of the health probe while a network sink is offline (after
    /// `max_retries` failed retries): the oldest parked batch is re-sent this often
    /// until it goes through. Default 60 s (seeds/004). Must be > 0 and at most
    /// [`MAX_NETWORK_CHECK_INTERVAL`] (1 day).
    pub network_check_interval: Duration,
    /// What network sinks guarantee: [`DeliveryMode::OfflineCache`] (default) or
    /// [`DeliveryMode::Durable`] (write-ahead to the disk queue; needs the
    /// `disk-queue` feature and `enable_caching`).
    pub delivery_mode: DeliveryMode,
    /// Upper bound of the first retry's delay (full jitter). Default 500 ms; see
    /// [`RetryPolicy`]. Must be > 0 and at most [`MAX_RETRY_BACKOFF`] (1 day).
    pub retry_initial_backoff: Duration,
    /// Largest delay between two attempts. Default 30 s; see [`RetryPolicy`]. Must
    /// be ≥ `retry_initial_backoff` and at most [`MAX_RETRY_BACKOFF`] (1 day).
    pub retry_max_backoff: Duration,
    /// Most payload bytes kept in the disk queue, all sinks together; past it the
    /// oldest batches are deleted and counted (`dropped_cache_full`). Default
    /// 256 MiB. Must be > 0.
    pub cache_max_bytes: u64,
    /// Oldest batch kept in the disk queue; older ones are deleted and counted
    /// (`dropped_expired`). Default 7 days. Must be > 0 and at most
    /// [`MAX_CACHE_MAX_AGE`] (10 years).
    pub cache_max_age: Duration,
    /// `fsync` every disk-queue commit (SQLite `synchronous = FULL`), so stored
    /// batches also survive power loss, not only a crash of the process. Default
    /// `false`.
    pub cache_fsync: bool,
    /// Sinks to build when none is added in code, by name (`file`, `stdout`, and the
    /// network sinks compiled in). Default `["file"]`.
    pub sinks: Vec<String>,
    /// Line format of the `stdout` sink named in `sinks`. Default JSON.
    #[cfg(feature = "stdout")]
    pub stdout_format: crate::sink::StdoutFormat,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            service_name: "app".to_string(),
            environment: "development".to_string(),
            project_name: None,
            version: None,
            revision: None,
            log_level: Level::Info,
            max_batch_size: 100,
            max_batch_bytes: 1024 * 1024,
            flush_interval: Duration::from_secs(1),
            channel_capacity: 10_000,
            full_policy: FullPolicy::DropNewest,
            sensitive_fields: Vec::new(),
            tags: Vec::new(),
            capture_uncaught: true,
            data_dir: PathBuf::from("./loggier-data"),
            enable_caching: true,
            cache_dir: None,
            max_retries: 3,
            http_timeout: Duration::from_secs(5),
            network_check_interval: Duration::from_secs(60),
            delivery_mode: DeliveryMode::OfflineCache,
            retry_initial_backoff: DEFAULT_INITIAL_BACKOFF,
            retry_max_backoff: DEFAULT_MAX_BACKOFF,
            cache_max_bytes: DEFAULT_CACHE_MAX_BYTES,
            cache_max_age: DEFAULT_CACHE_MAX_AGE,
            cache_fsync: false,
            sinks: vec!["file".to_string()],
            #[cfg(feature = "stdout")]
            stdout_format: crate::sink::StdoutFormat::Json,
        }
    }
}

impl Config {
    /// Reads the `LOGGIER_*` variables of the process environment (see the module
    /// table); unset variables keep their defaults.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the setting and value for an unparsable or
    /// out-of-range value (unknown level, zero batch size, non-numeric interval, …).
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(std::env::vars())
    }

    /// Like [`Config::from_env`] but from the given `(name, value)` pairs, so tests
    /// and embedders need not touch the process environment.
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_vars<I, K, V>(vars: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = collect_vars(vars);
        let get = |k: &str| non_blank(&vars, k);
        let mut c = Config::default();
        if let Some(v) = get("LOGGIER_SERVICE_NAME") {
            c.service_name = v.to_string();
        }
        if let Some(v) = get("LOGGIER_ENVIRONMENT") {
            c.environment = v.to_string();
        }
        c.project_name = get("LOGGIER_PROJECT_NAME").map(str::to_string);
        c.version = get("LOGGIER_VERSION").map(str::to_string);
        c.revision = get("LOGGIER_REVISION").map(str::to_string);
        if let Some(v) = get("LOGGIER_LEVEL") {
            c.log_level = v.parse()?;
        }
        if let Some(v) = get("LOGGIER_MAX_BATCH_SIZE") {
            c.max_batch_size = parse_num("max_batch_size", v, WHOLE_NUMBER)?;
        }
        if let Some(v) = get("LOGGIER_MAX_BATCH_BYTES") {
            c.max_batch_bytes = parse_num("max_batch_bytes", v, WHOLE_NUMBER)?;
        }
        if let Some(v) = get("LOGGIER_FLUSH_INTERVAL_MS") {
            c.flush_interval = Duration::from_millis(parse_num("flush_interval", v, WHOLE_NUMBER)?);
        }
        if let Some(v) = get("LOGGIER_CHANNEL_CAPACITY") {
            c.channel_capacity = parse_num("channel_capacity", v, WHOLE_NUMBER)?;
        }
        if let Some(v) = get("LOGGIER_FULL_POLICY") {
            c.full_policy = match v.to_ascii_lowercase().as_str() {
                "drop_newest" | "drop-newest" | "drop" => FullPolicy::DropNewest,
                "block" => FullPolicy::Block,
                _ => {
                    return Err(ConfigError::invalid(
                        "full_policy",
                        v,
                        "expected drop_newest or block",
                    ));
                }
            };
        }
        if let Some(v) = get("LOGGIER_SENSITIVE_FIELDS") {
            c.sensitive_fields = split_list(v);
        }
        if let Some(v) = get("LOGGIER_TAGS") {
            c.tags = split_list(v);
        }
        if let Some(v) = get("LOGGIER_CAPTURE_UNCAUGHT") {
            c.capture_uncaught = parse_bool("capture_uncaught", v)?;
        }
        if let Some(v) = get("LOGGIER_DATA_DIR") {
            c.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("LOGGIER_ENABLE_CACHING") {
            c.enable_caching = parse_bool("enable_caching", v)?;
        }
        c.cache_dir = get("LOGGIER_CACHE_DIR").map(PathBuf::from);
        if let Some(v) = get("LOGGIER_MAX_RETRIES") {
            c.max_retries = parse_num("max_retries", v, WHOLE_NUMBER)?;
        }
        if let Some(v) = get("LOGGIER_HTTP_TIMEOUT_MS") {
            c.http_timeout = Duration::from_millis(parse_num("http_timeout", v, WHOLE_NUMBER)?);
        }
        if let Some(v) = get("LOGGIER_NETWORK_CHECK_INTERVAL_MS") {
            c.network_check_interval =
                Duration::from_millis(parse_num("network_check_interval", v, WHOLE_NUMBER)?);
        }
        if let Some(v) = get("LOGGIER_DELIVERY_MODE") {
            c.delivery_mode = match v.to_ascii_lowercase().as_str() {
                "offline_cache" | "offline-cache" | "cache" => DeliveryMode::OfflineCache,
                "durable" => DeliveryMode::Durable,
                _ => {
                    return Err(ConfigError::invalid(
                        "delivery_mode",
                        v,
                        "expected offline_cache or durable",
                    ));
                }
            };
        }
        if let Some(v) = get("LOGGIER_RETRY_INITIAL_BACKOFF_MS") {
            c.retry_initial_backoff =
                Duration::from_millis(parse_num("retry_initial_backoff", v, WHOLE_NUMBER)?);
        }
        if let Some(v) = get("LOGGIER_RETRY_MAX_BACKOFF_MS") {
            c.retry_max_backoff =
                Duration::from_millis(parse_num("retry_max_backoff", v, WHOLE_NUMBER)?);
        }
        if let Some(v) = get("LOGGIER_CACHE_MAX_BYTES") {
            c.cache_max_bytes = parse_num("cache_max_bytes", v, WHOLE_NUMBER)?;
        }
        if let Some(v) = get("LOGGIER_CACHE_MAX_AGE_SECS") {
            c.cache_max_age = Duration::from_secs(parse_num("cache_max_age", v, WHOLE_NUMBER)?);
        }
        if let Some(v) = get("LOGGIER_CACHE_FSYNC") {
            c.cache_fsync = parse_bool("cache_fsync", v)?;
        }
        if let Some(v) = get("LOGGIER_SINKS") {
            c.sinks = split_list(v);
        }
        #[cfg(feature = "stdout")]
        if let Some(v) = get("LOGGIER_STDOUT_FORMAT") {
            c.stdout_format = match v.to_ascii_lowercase().as_str() {
                "json" => crate::sink::StdoutFormat::Json,
                "logfmt" | "tskv" => crate::sink::StdoutFormat::Logfmt,
                _ => {
                    return Err(ConfigError::invalid(
                        "stdout_format",
                        v,
                        "expected json or logfmt",
                    ));
                }
            };
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks value ranges.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for the first setting out of range: empty
    /// `service_name`, zero `max_batch_size`, `max_batch_bytes`, `channel_capacity`,
    /// `flush_interval`, `http_timeout`, `network_check_interval`, `cache_max_bytes`
    /// or `cache_max_age`; a zero `retry_initial_backoff` or a `retry_max_backoff`
    /// below it; a duration above its bound (see [`MAX_FLUSH_INTERVAL`],
    /// [`MAX_HTTP_TIMEOUT`], [`MAX_NETWORK_CHECK_INTERVAL`], [`MAX_RETRY_BACKOFF`],
    /// [`MAX_CACHE_MAX_AGE`]), which no deployment needs and which would overflow
    /// the pipeline's clock arithmetic.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bounds: [(&'static str, Duration, Duration); 6] = [
            ("flush_interval", self.flush_interval, MAX_FLUSH_INTERVAL),
            ("http_timeout", self.http_timeout, MAX_HTTP_TIMEOUT),
            (
                "network_check_interval",
                self.network_check_interval,
                MAX_NETWORK_CHECK_INTERVAL,
            ),
            (
                "retry_initial_backoff",
                self.retry_initial_backoff,
                MAX_RETRY_BACKOFF,
            ),
            (
                "retry_max_backoff",
                self.retry_max_backoff,
                MAX_RETRY_BACKOFF,
            ),
            ("cache_max_age", self.cache_max_age, MAX_CACHE_MAX_AGE),
        ];
        for (setting, value, max) in bounds {
            if value > max {
                return Err(ConfigError::invalid(
                    setting,
                    format!("{value:?}"),
                    format!("must be at most {max:?}"),
                ));
            }
        }
        if self.service_name.trim().is_empty() {
            return Err(ConfigError::invalid(
                "service_name",
                &self.service_name,
                "must not be empty",
            ));
        }
        if self.max_batch_size == 0 {
            return Err(ConfigError::invalid(
                "max_batch_size",
                0,
                "must be greater than zero",
            ));
        }
        if self.max_batch_bytes == 0 {
            return Err(ConfigError::invalid(
                "max_batch_bytes",
                0,
                "must be greater than zero",
            ));
        }
        if self.channel_capacity == 0 {
            return Err(ConfigError::invalid(
                "channel_capacity",
                0,
                "must be greater than zero",
            ));
        }
        if self.flush_interval.is_zero() {
            return Err(ConfigError::invalid(
                "flush_interval",
                "0ms",
                "must be greater than zero",
            ));
        }
        if self.http_timeout.is_zero() {
            return Err(ConfigError::invalid(
                "http_timeout",
                "0ms",
                "must be greater than zero",
            ));
        }
        if self.network_check_interval.is_zero() {
            return Err(ConfigError::invalid(
                "network_check_interval",
                "0ms",
                "must be greater than zero",
            ));
        }
        if self.cache_max_bytes == 0 {
            return Err(ConfigError::invalid(
                "cache_max_bytes",
                0,
                "must be greater than zero",
            ));
        }
        if self.cache_max_age.is_zero() {
            return Err(ConfigError::invalid(
                "cache_max_age",
                "0s",
                "must be greater than zero",
            ));
        }
        self.retry_policy().validate()
    }

    /// The retry policy of network sinks: `retry_initial_backoff`,
    /// `retry_max_backoff`, `max_retries`.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
            .initial_backoff(self.retry_initial_backoff)
            .max_backoff(self.retry_max_backoff)
            .max_retries(self.max_retries)
    }

    /// The disk-queue file: `<queue_dir>/loggier-queue.db`.
    pub fn queue_file(&self) -> PathBuf {
        self.queue_dir().join(QUEUE_FILE_NAME)
    }

    /// The disk-queue directory: `cache_dir`, or `<data_dir>/queue`.
    pub fn queue_dir(&self) -> PathBuf {
        self.cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("queue"))
    }

    /// The embedded file sink's path: `<data_dir>/loggier.ndjson`.
    pub fn default_log_file(&self) -> PathBuf {
        self.data_dir.join("loggier.ndjson")
    }
}

/// Reason completion for the numeric `LOGGIER_*` settings ("expected ...").
const WHOLE_NUMBER: &str = "a non-negative whole number";

/// File name of the disk queue inside [`Config::queue_dir`].
pub const QUEUE_FILE_NAME: &str = "loggier-queue.db";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vars_and_keeps_defaults() {
        let c = Config::from_vars([
            ("LOGGIER_SERVICE_NAME", "billing"),
            ("LOGGIER_LEVEL", "debug"),
            ("LOGGIER_FLUSH_INTERVAL_MS", "250"),
            ("LOGGIER_TAGS", "api, payments,"),
            ("LOGGIER_SINKS", "file,stdout"),
        ])
        .expect("valid");
        assert_eq!(c.service_name, "billing");
        assert_eq!(c.log_level, Level::Debug);
        assert_eq!(c.flush_interval, Duration::from_millis(250));
        assert_eq!(c.tags, ["api", "payments"]);
        assert_eq!(c.sinks, ["file", "stdout"]);
        assert_eq!(c.max_batch_size, 100);
        assert_eq!(c.environment, "development");
    }

    #[test]
    fn reads_delivery_settings() {
        let c = Config::from_vars([
            ("LOGGIER_DELIVERY_MODE", "durable"),
            ("LOGGIER_RETRY_INITIAL_BACKOFF_MS", "20"),
            ("LOGGIER_RETRY_MAX_BACKOFF_MS", "400"),
            ("LOGGIER_CACHE_MAX_BYTES", "4096"),
            ("LOGGIER_CACHE_MAX_AGE_SECS", "60"),
            ("LOGGIER_CACHE_FSYNC", "true"),
            ("LOGGIER_MAX_RETRIES", "5"),
        ])
        .expect("valid");
        assert_eq!(c.delivery_mode, DeliveryMode::Durable);
        let p = c.retry_policy();
        assert_eq!(p.initial_backoff, Duration::from_millis(20));
        assert_eq!(p.max_backoff, Duration::from_millis(400));
        assert_eq!(p.max_retries, 5);
        assert_eq!(c.cache_max_bytes, 4096);
        assert_eq!(c.cache_max_age, Duration::from_secs(60));
        assert!(c.cache_fsync);
        let e = Config::from_vars([
            ("LOGGIER_RETRY_INITIAL_BACKOFF_MS", "500"),
            ("LOGGIER_RETRY_MAX_BACKOFF_MS", "100"),
        ])
        .expect_err("max below initial");
        assert_eq!(e.setting(), "retry_max_backoff");
    }

    #[test]
    fn bad_values_name_the_setting() {
        let cases = [
            ("LOGGIER_LEVEL", "loud", "log_level"),
            ("LOGGIER_MAX_BATCH_SIZE", "0", "max_batch_size"),
            ("LOGGIER_MAX_BATCH_SIZE", "many", "max_batch_size"),
            ("LOGGIER_FULL_POLICY", "maybe", "full_policy"),
            ("LOGGIER_CAPTURE_UNCAUGHT", "sometimes", "capture_uncaught"),
            ("LOGGIER_HTTP_TIMEOUT_MS", "0", "http_timeout"),
            ("LOGGIER_DELIVERY_MODE", "maybe", "delivery_mode"),
            (
                "LOGGIER_RETRY_INITIAL_BACKOFF_MS",
                "0",
                "retry_initial_backoff",
            ),
            ("LOGGIER_CACHE_MAX_BYTES", "0", "cache_max_bytes"),
            (
                "LOGGIER_NETWORK_CHECK_INTERVAL_MS",
                "0",
                "network_check_interval",
            ),
        ];
        for (k, v, setting) in cases {
            let err = Config::from_vars([(k, v)]).expect_err(k);
            assert_eq!(err.setting(), setting, "{k}={v}: {err}");
            assert!(err.to_string().contains(v), "{err}");
        }
    }
}
