//! Process figures from `/proc/self` (Linux): resident set size and CPU time.
//!
//! Each is `None` where `/proc` is not available, so a harness can print "n/a"
//! instead of a made-up number.

use std::time::Duration;

fn status_kib(key: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?.strip_prefix(':')?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Peak resident set size of this process so far (`VmHWM`), KiB.
pub fn peak_rss_kib() -> Option<u64> {
    status_kib("VmHWM")
}

/// Current resident set size (`VmRSS`), KiB.
pub fn rss_kib() -> Option<u64> {
    status_kib("VmRSS")
}

/// User + system CPU time of the whole process (all threads, alive or exited) from
/// `/proc/self/stat` fields 14 and 15. Resolution: one clock tick, taken as 10 ms
/// (`CLK_TCK` = 100, the value on every mainstream Linux build); measure runs of
/// seconds, not milliseconds.
pub fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let after = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        // RSS first: the peak read after it can only be as large or larger (the
        // other order races with the test harness's own allocations).
        let now = rss_kib().expect("VmRSS on Linux");
        let peak = peak_rss_kib().expect("VmHWM on Linux");
        assert!(peak >= now && now > 0, "peak {peak} KiB, now {now} KiB");
        // Busy-spin until the process has been charged 100 ms of CPU: the counter must
        // move with work (the wall-clock bound only keeps a broken reader from hanging).
        let before = cpu_time().expect("stat on Linux");
        let start = std::time::Instant::now();
        let mut x = 0u64;
        let mut spent = Duration::ZERO;
        while start.elapsed() < Duration::from_secs(30) {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            spent = cpu_time().expect("stat on Linux") - before;
            if spent >= Duration::from_millis(100) {
                break;
            }
        }
        assert!(spent >= Duration::from_millis(100), "spent {spent:?}");
    }
}
