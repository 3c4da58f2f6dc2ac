//! Retry policy of network sinks: exponential backoff with full jitter, `Retry-After`,
//! and the rate limit of the stderr lines that report refused batches.

use std::io::Write;
use std::time::{Duration, Instant};

use crate::error::ConfigError;

/// Default first backoff bound: 500 ms. Short enough that a blip (one reset
/// connection, one 503 from a restarting backend) costs well under a second of extra
/// latency, long enough not to turn a failing backend's errors into a busy loop.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_millis(500);

/// Default largest backoff: 30 s. The exponential bound reaches it after 6 failures
/// (0.5 s · 2⁶ = 32 s); capping there keeps a recovered backend from waiting minutes
/// for traffic, and with full jitter a fleet of clients still spreads its retries
/// over the whole window instead of arriving together.
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Default `max_retries`: 3 (the Loggier default in the product notes, seeds/004).
pub const DEFAULT_MAX_RETRIES: u32 = 3;

/// Default shortest interval between two stderr lines about refused batches of one
/// sink: 10 s. One line is enough to see the problem; the rest are counted.
pub(crate) const DEFAULT_REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// How a network sink retries a batch that failed with a retryable error (network
/// error, timeout, HTTP 408, 429, 500, 502, 503, 504).
///
/// Attempt `n` (1 for the first retry) waits a uniformly random delay in
/// `[0, min(max_backoff, initial_backoff · 2ⁿ⁻¹)]` ("full jitter", which spreads the
/// retries of many clients evenly instead of synchronising them). When the receiver
/// sent `Retry-After`, that delay is used instead (it is already capped at
/// 5 minutes by the transport), so a rate-limited client waits as long as it was told.
///
/// After `max_retries` retries of one batch without success the sink is considered
/// offline: the batch is parked in the disk queue (when caching is on) for replay
/// once a health probe succeeds, rather than dropped. Without a disk queue it is
/// dropped and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Upper bound of the first retry's delay. Default [`DEFAULT_INITIAL_BACKOFF`]
    /// (500 ms).
    pub initial_backoff: Duration,
    /// Largest delay between two attempts. Default [`DEFAULT_MAX_BACKOFF`] (30 s).
    pub max_backoff: Duration,
    /// Retries of one batch before it is parked. Default [`DEFAULT_MAX_RETRIES`] (3);
    /// `0` parks a batch after its first failure.
    pub max_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: DEFAULT_INITIAL_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            max_retries: DEFAULT_MAX_RETRIES,
        }
    }
}

impl RetryPolicy {
    /// Sets [`RetryPolicy::initial_backoff`].
    #[must_use]
    pub fn initial_backoff(mut self, d: Duration) -> Self {
        self.initial_backoff = d;
        self
    }

    /// Sets [`RetryPolicy::max_backoff`].
    #[must_use]
    pub fn max_backoff(mut self, d: Duration) -> Self {
        self.max_backoff = d;
        self
    }

    /// Sets [`RetryPolicy::max_retries`].
    #[must_use]
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for setting `retry_initial_backoff` when it is zero,
    /// or `retry_max_backoff` when it is smaller than the initial backoff (the
    /// names of the [`Config`](crate::Config) fields these come from).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.initial_backoff.is_zero() {
            return Err(ConfigError::invalid(
                "retry_initial_backoff",
                "0s",
                "must be greater than zero",
            ));
        }
        if self.max_backoff < self.initial_backoff {
            return Err(ConfigError::invalid(
                "retry_max_backoff",
                format!("{:?}", self.max_backoff),
                format!(
                    "must be at least retry_initial_backoff ({:?})",
                    self.initial_backoff
                ),
            ));
        }
        Ok(())
    }

    /// The upper bound of retry `attempt`'s delay (1-based):
    /// `min(max_backoff, initial_backoff · 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(31);
        self.initial_backoff
            .checked_mul(1u32 << shift)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// Per-sink backoff state: counts consecutive failures and draws the next delay.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: RetryPolicy,
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Backoff {
            policy,
            failures: 0,
            rng: fastrand::Rng::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn with_seed(policy: RetryPolicy, seed: u64) -> Self {
        Backoff {
            policy,
            failures: 0,
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// Records one more failure and returns how long to wait before the next
    /// attempt: the server's `retry_after` when given, else a full-jitter draw.
    pub(crate) fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        self.failures = self.failures.saturating_add(1);
        if let Some(d) = retry_after {
            return d;
        }
        let ceiling = self.policy.ceiling(self.failures);
        let max_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(self.rng.u64(0..=max_ms))
    }

    /// Consecutive failures since the last success.
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// `true` once the failures exceed `max_retries` (the first attempt plus
    /// `max_retries` retries all failed).
    pub(crate) fn exhausted(&self) -> bool {
        self.failures > self.policy.max_retries
    }

    /// A success: start over.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Lets one line through per `interval` and counts the ones held back.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimiter {
    pub(crate) fn new(interval: Duration) -> Self {
        RateLimiter {
            interval,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a line may be written at `now` (`n` lines were held back since
    /// the previous one), `None` when this one is held back.
    pub(crate) fn check(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }

    /// Writes `loggier: sink <sink>: <message>` to stderr unless rate-limited. Write
    /// errors are ignored (stderr may be closed); never panics.
    pub(crate) fn report(&mut self, sink: &str, message: &str) {
        if let Some(held) = self.check(Instant::now()) {
            let line = format_report(sink, message, held);
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }
}

fn format_report(sink: &str, message: &str, held: u64) -> String {
    // One line: the receiver's excerpt may contain newlines.
    let message = message.replace(['\r', '\n'], " ");
    if held > 0 {
        format!("loggier: sink {sink}: {message} ({held} similar lines suppressed)\n")
    } else {
        format!("loggier: sink {sink}: {message}\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::default()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_secs(2))
            .max_retries(3)
    }

    #[test]
    fn ceiling_doubles_then_caps() {
        let p = policy();
        let ms: Vec<u128> = (1..=7).map(|a| p.ceiling(a).as_millis()).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(p.ceiling(1000), Duration::from_secs(2));
        assert_eq!(p.ceiling(0), Duration::from_millis(100));
    }

    #[test]
    fn full_jitter_stays_within_the_ceiling_and_spreads() {
        let mut b = Backoff::with_seed(policy(), 7);
        let mut draws = Vec::new();
        for attempt in 1..=200u32 {
            let d = b.next_delay(None);
            assert!(d <= policy().ceiling(attempt), "attempt {attempt}: {d:?}");
            if attempt >= 6 {
                draws.push(d);
            }
        }
        // Full jitter: the capped draws cover the low and the high end of [0, 2 s].
        assert!(draws.iter().any(|d| *d < Duration::from_millis(500)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(1500)));
    }

    #[test]
    fn retry_after_wins_over_the_jittered_delay() {
        let mut b = Backoff::with_seed(policy(), 1);
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(42))),
            Duration::from_secs(42)
        );
        assert_eq!(b.failures(), 1);
    }

    #[test]
    fn exhausted_after_max_retries_and_reset_on_success() {
        let mut b = Backoff::with_seed(policy(), 3);
        for _ in 0..3 {
            b.next_delay(None);
            assert!(!b.exhausted());
        }
        b.next_delay(None);
        assert!(b.exhausted());
        b.reset();
        assert!(!b.exhausted());
        assert_eq!(b.failures(), 0);

        let mut zero = Backoff::with_seed(policy().max_retries(0), 3);
        zero.next_delay(None);
        assert!(zero.exhausted());
    }

    #[test]
    fn validate_names_the_setting() {
        let e = policy()
            .initial_backoff(Duration::ZERO)
            .validate()
            .expect_err("zero");
        assert_eq!(e.setting(), "retry_initial_backoff");
        let e = policy()
            .max_backoff(Duration::from_millis(10))
            .validate()
            .expect_err("small max");
        assert_eq!(e.setting(), "retry_max_backoff");
        assert!(RetryPolicy::default().validate().is_ok());
    }

    #[test]
    fn rate_limiter_lets_one_line_per_interval_and_counts_the_rest() {
        let mut r = RateLimiter::new(Duration::from_secs(30));
        let t0 = Instant::now();
        assert_eq!(r.check(t0), Some(0));
        assert_eq!(r.check(t0 + Duration::from_secs(1)), None);
        assert_eq!(r.check(t0 + Duration::from_secs(29)), None);
        assert_eq!(r.check(t0 + Duration::from_secs(30)), Some(2));
        assert_eq!(r.check(t0 + Duration::from_secs(31)), None);
        assert_eq!(r.check(t0 + Duration::from_secs(61)), Some(1));
    }

    #[test]
    fn report_lines_are_single_lines_with_the_suppressed_count() {
        assert_eq!(
            format_report("http", "batch rejected: http 400: bad\nfield", 0),
            "loggier: sink http: batch rejected: http 400: bad field\n"
        );
        assert_eq!(
            format_report("loki", "x", 5),
            "loggier: sink loki: x (5 similar lines suppressed)\n"
        );
    }
}
