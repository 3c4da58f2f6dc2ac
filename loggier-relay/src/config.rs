//! Relay settings from the environment.
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `LOGGIER_RELAY_ADDR` | listen address | `127.0.0.1:8000` |
//! | `LOGGIER_RELAY_INGEST_KEYS` | ingest keys, `key1,key2@app\|web` (`@` limits a key to services) | none |
//! | `LOGGIER_RELAY_QUERY_KEYS` | query keys, `key1,key2` | none |
//! | `LOGGIER_RELAY_KEY_FILE` | key file, lines `<ingest,query> <key> [service,…]` | none |
//! | `LOGGIER_RELAY_ALLOW_ANONYMOUS` | allow no keys on a non-loopback address | `false` |
//! | `LOGGIER_RELAY_CORS_ORIGINS` | browser origins allowed, `https://app.example.com,…` | none |
//! | `LOGGIER_RELAY_MAX_BODY_BYTES` | body limit, bytes, also after gzip decompression | 1 048 576 |
//! | `LOGGIER_RELAY_MAX_RECORDS` | records per request | 1000 |
//! | `LOGGIER_RELAY_MAX_FIELD_BYTES` | longest string value or key, bytes | 65 536 |
//! | `LOGGIER_RELAY_MAX_DEPTH` | deepest JSON nesting | 32 |
//! | `LOGGIER_RELAY_RATE_PER_SEC` | requests per second per key (per caller in open mode) | 100 |
//! | `LOGGIER_RELAY_RATE_BURST` | burst size of the rate limit | 200 |
//! | `LOGGIER_RELAY_DEDUP_WINDOW` | `X-Loggier-Batch-Id`s remembered | 10 000 |
//! | `LOGGIER_RELAY_RETRY_AFTER_SECS` | `Retry-After` of a 503 when the pipeline is full | 1 |
//! | `LOGGIER_RELAY_PERSIST_TIMEOUT_MS` | durable mode: longest wait for the disk commit before a 2xx, ms; keep it above the Loki timeout | 10 000 |
//! | `LOGGIER_RELAY_AUTH_FAILURES_PER_MIN` | failed key checks (`invalid_key`) refilled per minute per client address | 10 |
//! | `LOGGIER_RELAY_AUTH_FAILURE_BURST` | failed key checks a client address may make before it is locked out | 20 |
//! | `APP_NAME` | service name when `LOGGIER_SERVICE_NAME` is unset (seeds/000) | `loggier-relay` |
//! | `ENV` | environment when `LOGGIER_ENVIRONMENT` is unset (seeds/000) | `development` |
//!
//! Plus the client's `LOGGIER_*` settings ([`loggier_core::Config::from_vars`]) and
//! Loki's `LOKI_*` ([`loggier_core::sink::loki`]); when `LOKI_URL` is set the Loki
//! sink is added to the sinks.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use loggier_core::ConfigError;

use crate::auth::{ApiKey, KeySet, parse_key_file, parse_key_list};

/// Size limits applied to every request body.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest body, bytes, before and after gzip decompression. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Most records in one request. Default 1000.
    pub max_records: usize,
    /// Longest string value or object key, bytes. Default 65 536.
    pub max_field_bytes: usize,
    /// Deepest nesting of JSON arrays/objects. Default 32.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_records: 1000,
            max_field_bytes: 64 * 1024,
            max_depth: 32,
        }
    }
}

/// Everything the relay's HTTP layer needs besides the pipeline.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Listen address (binary only). Default `127.0.0.1:8000`.
    pub addr: SocketAddr,
    /// API keys; empty = open mode.
    pub keys: KeySet,
    /// Allow open mode on a non-loopback address. Default `false`.
    pub allow_anonymous: bool,
    /// CORS allow-list of origins (exact match). Empty: no CORS headers.
    pub cors_origins: Vec<String>,
    /// Body limits.
    pub limits: Limits,
    /// Sustained requests per second per API key (callers sharing a key share its
    /// bucket; without keys every caller shares one). Default 100.
    pub rate_per_sec: NonZeroU32,
    /// Burst size, in requests. Default 200.
    pub rate_burst: NonZeroU32,
    /// How many recent batch ids `/api/ingest` remembers (0 is taken as 1).
    /// Default 10 000.
    pub dedup_window: usize,
    /// `Retry-After` sent with a 503 (pipeline full, or durable commit not done),
    /// rounded up to whole seconds, at least 1. Default 1 s.
    pub retry_after: Duration,
    /// Durable mode only: how long a request waits for its records to be committed
    /// to disk ([`Loggier::persist_async`](loggier_core::Loggier::persist_async))
    /// before the relay gives up and answers 503 `not_persisted`. Default 10 s.
    ///
    /// A commit does not wait for a push the Loki sink has in progress (its
    /// batches are committed while the push is in flight), so a slow or hanging
    /// Loki does not delay answers; what it can wait for is the disk (a locked
    /// queue file: the queue gives up after its 2 s busy timeout) and a local
    /// sink's write.
    pub persist_timeout: Duration,
    /// Failed key checks (`invalid_key`) one client address regains per minute.
    /// Default 10.
    pub auth_failures_per_min: NonZeroU32,
    /// Failed key checks one client address may make in a row; past them it is
    /// locked out (429) until the budget refills. Default 20.
    pub auth_failure_burst: NonZeroU32,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            keys: KeySet::default(),
            allow_anonymous: false,
            cors_origins: Vec::new(),
            limits: Limits::default(),
            rate_per_sec: NonZeroU32::new(100).unwrap_or(NonZeroU32::MIN),
            rate_burst: NonZeroU32::new(200).unwrap_or(NonZeroU32::MIN),
            dedup_window: 10_000,
            retry_after: Duration::from_secs(1),
            persist_timeout: Duration::from_secs(10),
            auth_failures_per_min: NonZeroU32::new(10).unwrap_or(NonZeroU32::MIN),
            auth_failure_burst: NonZeroU32::new(20).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// Names of the relay's own variables (see the module table). `APP_NAME` and `ENV`
/// are read by [`build_pipeline`](crate::build_pipeline), the others by
/// [`RelayConfig::from_lookup`].
pub const RELAY_ENV: [&str; 19] = [
    "LOGGIER_RELAY_ADDR",
    "LOGGIER_RELAY_INGEST_KEYS",
    "LOGGIER_RELAY_QUERY_KEYS",
    "LOGGIER_RELAY_KEY_FILE",
    "LOGGIER_RELAY_ALLOW_ANONYMOUS",
    "LOGGIER_RELAY_CORS_ORIGINS",
    "LOGGIER_RELAY_MAX_BODY_BYTES",
    "LOGGIER_RELAY_MAX_RECORDS",
    "LOGGIER_RELAY_MAX_FIELD_BYTES",
    "LOGGIER_RELAY_MAX_DEPTH",
    "LOGGIER_RELAY_RATE_PER_SEC",
    "LOGGIER_RELAY_RATE_BURST",
    "LOGGIER_RELAY_DEDUP_WINDOW",
    "LOGGIER_RELAY_RETRY_AFTER_SECS",
    "LOGGIER_RELAY_PERSIST_TIMEOUT_MS",
    "LOGGIER_RELAY_AUTH_FAILURES_PER_MIN",
    "LOGGIER_RELAY_AUTH_FAILURE_BURST",
    "APP_NAME",
    "ENV",
];

impl RelayConfig {
    /// Reads the variables of the module table through `lookup` (empty = unset).
    /// The key file named by `LOGGIER_RELAY_KEY_FILE` is read here.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the variable for an unparsable value, an
    /// unreadable or malformed key file, or open mode (no keys) on a non-loopback
    /// address without `LOGGIER_RELAY_ALLOW_ANONYMOUS=true`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let mut c = RelayConfig::default();
        if let Some(v) = var("LOGGIER_RELAY_ADDR") {
            c.addr = v.trim().parse().map_err(|_| {
                ConfigError::invalid(
                    "LOGGIER_RELAY_ADDR",
                    &v,
                    "expected host:port, e.g. 0.0.0.0:8000",
                )
            })?;
        }
        let mut keys: Vec<ApiKey> = Vec::new();
        if let Some(v) = var("LOGGIER_RELAY_INGEST_KEYS") {
            keys.extend(parse_key_list(&v, true, false));
        }
        if let Some(v) = var("LOGGIER_RELAY_QUERY_KEYS") {
            keys.extend(parse_key_list(&v, false, true));
        }
        if let Some(path) = var("LOGGIER_RELAY_KEY_FILE") {
            let text = std::fs::read_to_string(path.trim()).map_err(|e| {
                ConfigError::invalid("LOGGIER_RELAY_KEY_FILE", &path, format!("cannot read: {e}"))
            })?;
            let parsed = parse_key_file(&text)
                .map_err(|e| ConfigError::invalid("LOGGIER_RELAY_KEY_FILE", &path, e))?;
            keys.extend(parsed);
        }
        c.keys = KeySet::new(keys);
        if let Some(v) = var("LOGGIER_RELAY_ALLOW_ANONYMOUS") {
            c.allow_anonymous = parse_bool("LOGGIER_RELAY_ALLOW_ANONYMOUS", &v)?;
        }
        if let Some(v) = var("LOGGIER_RELAY_CORS_ORIGINS") {
            c.cors_origins = v
                .split(',')
                .map(|s| s.trim().trim_end_matches('/').to_string())
                .filter(|s| !s.is_empty())
                .collect();
            for o in &c.cors_origins {
                if o == "*" || !(o.starts_with("http://") || o.starts_with("https://")) {
                    return Err(ConfigError::invalid(
                        "LOGGIER_RELAY_CORS_ORIGINS",
                        o,
                        "expected origins like https://app.example.com (no wildcard)",
                    ));
                }
            }
        }
        let num = |name: &'static str, default: usize| -> Result<usize, ConfigError> {
            match var(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<usize>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(ConfigError::invalid(
                        name,
                        &v,
                        "expected a positive integer",
                    )),
                },
            }
        };
        c.limits.max_body_bytes = num("LOGGIER_RELAY_MAX_BODY_BYTES", c.limits.max_body_bytes)?;
        c.limits.max_records = num("LOGGIER_RELAY_MAX_RECORDS", c.limits.max_records)?;
        c.limits.max_field_bytes = num("LOGGIER_RELAY_MAX_FIELD_BYTES", c.limits.max_field_bytes)?;
        c.limits.max_depth = num("LOGGIER_RELAY_MAX_DEPTH", c.limits.max_depth)?;
        let nz = |name: &'static str, d: NonZeroU32| -> Result<NonZeroU32, ConfigError> {
            let n = num(name, d.get() as usize)?;
            u32::try_from(n)
                .ok()
                .and_then(NonZeroU32::new)
                .ok_or_else(|| ConfigError::invalid(name, n, "too large"))
        };
        c.rate_per_sec = nz("LOGGIER_RELAY_RATE_PER_SEC", c.rate_per_sec)?;
        c.rate_burst = nz("LOGGIER_RELAY_RATE_BURST", c.rate_burst)?;
        c.dedup_window = num("LOGGIER_RELAY_DEDUP_WINDOW", c.dedup_window)?;
        c.retry_after = Duration::from_secs(num("LOGGIER_RELAY_RETRY_AFTER_SECS", 1)? as u64);
        c.persist_timeout =
            Duration::from_millis(num("LOGGIER_RELAY_PERSIST_TIMEOUT_MS", 10_000)? as u64);
        c.auth_failures_per_min = nz(
            "LOGGIER_RELAY_AUTH_FAILURES_PER_MIN",
            c.auth_failures_per_min,
        )?;
        c.auth_failure_burst = nz("LOGGIER_RELAY_AUTH_FAILURE_BURST", c.auth_failure_burst)?;
        if c.keys.is_empty() && !c.addr.ip().is_loopback() && !c.allow_anonymous {
            return Err(ConfigError::invalid(
                "LOGGIER_RELAY_ALLOW_ANONYMOUS",
                c.addr,
                "no API keys are configured and the address is not loopback; set LOGGIER_RELAY_INGEST_KEYS / LOGGIER_RELAY_KEY_FILE, or LOGGIER_RELAY_ALLOW_ANONYMOUS=true",
            ));
        }
        Ok(c)
    }
}

/// The relay's only boolean variable. Accepts the same spellings as the core's
/// `LOGGIER_*` booleans; the core's parser is crate-private, so it is repeated here
/// (one copy in this crate).
fn parse_bool(name: &'static str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::invalid(
            name,
            v,
            "expected true or false (also 1/0, yes/no, on/off)",
        )),
    }
}
