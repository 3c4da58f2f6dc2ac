//! Pipeline throughput, CPU and memory of the Loggier client, end to end.
//!
//! ```text
//! pipeline-bench [--quick] [--records N] [--producers N] [--outage-secs S]
//!                [--outage-rate R] [--only NAME[,NAME…]] [--out FILE.md]
//! pipeline-bench scenario NAME [options]   # one scenario, its JSON result only
//! ```
//!
//! `--only loki,loki-durable,outage` runs just the named scenarios (the report's
//! other rows then read `n/a`/invalid); without it every scenario runs.
//!
//! Each scenario runs in its own child process (this binary re-run as
//! `pipeline-bench scenario NAME ...`), so its peak RSS (`VmHWM`) is its own:
//!
//! - `file`, `loki`, `loki-durable`: `--producers` threads (default 2) each send
//!   `--records / producers` `info!` calls with a message and 3 fields
//!   (`FullPolicy::Block`, so nothing is dropped and the figure is the pipeline's
//!   sustained rate) to the file sink, or to the Loki sink pushing protobuf+snappy to
//!   a loopback receiver that decodes every push (`LokiReceiver`), in the default
//!   offline-cache mode or in durable mode (every batch committed to the SQLite disk
//!   queue before its first send). Records/s is counted from the first call until the
//!   last record is written (file) or decoded by the receiver (Loki); the run is
//!   invalid unless every record arrived. Each also runs as `NAME+big-channel` with
//!   `channel_capacity` = records: nothing can be dropped at the sink backlog, so
//!   that run measures the pipeline's capacity even where the default settings drop.
//! - `tracing-file`: the same calls through `tracing` + JSON `fmt` over
//!   `tracing_appender::non_blocking` (not lossy) to a file — the baseline for CPU
//!   per record (process user+system time / records, caller and background thread).
//! - `channel-memory`: 100 000 records waiting behind a sink whose sends do not
//!   complete; (RSS after − RSS before) / records = memory per waiting record. Once
//!   for the 3-field `info!` record, once for the realistic mix of
//!   `loggier_bench::fixtures`.
//! - `outage`: one producer paced at `--outage-rate` records/s (default 20 000) to the
//!   Loki sink: `--outage-secs` (default 10; the issue's figure is 60) with the
//!   receiver up, the same with it answering 503, then up again until every record
//!   arrived. Reports caller p99 per phase, RSS at the end of each phase and peak RSS.
//!   `network_check_interval` is 1 s here so the recovery does not wait the default
//!   60 s.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use loggier_bench::proc_stats::{cpu_time, peak_rss_kib, rss_kib};
use loggier_bench::{LokiReceiver, count_lines, fixtures, thousands};
use loggier_core::{
    BoxFuture, DeliveryMode, FullPolicy, Loggier, Payload, Record, SendOutcome, ServiceInfo, Sink,
};
use serde_json::{Value, json};

#[derive(Clone)]
struct Opts {
    records: u64,
    producers: u64,
    outage_secs: f64,
    outage_rate: u64,
    out: Option<std::path::PathBuf>,
    /// Scenario names to run (`--only`); empty: all.
    only: Vec<String>,
}

fn parse_opts(args: &[String]) -> Opts {
    let mut o = Opts {
        records: 1_000_000,
        producers: 2,
        outage_secs: 10.0,
        outage_rate: 20_000,
        out: None,
        only: Vec::new(),
    };
    let mut i = 0;
    while i < args.len() {
        let val = || -> &str {
            args.get(i + 1)
                .map(String::as_str)
                .unwrap_or_else(|| panic!("{} needs a value", args[i]))
        };
        match args[i].as_str() {
            "--quick" => {
                o.records = 200_000;
                o.outage_secs = 3.0;
                i += 1;
                continue;
            }
            "--records" => o.records = val().parse().expect("--records N"),
            "--producers" => o.producers = val().parse().expect("--producers N"),
            "--outage-secs" => o.outage_secs = val().parse().expect("--outage-secs S"),
            "--outage-rate" => o.outage_rate = val().parse().expect("--outage-rate R"),
            "--out" => o.out = Some(val().into()),
            "--only" => {
                o.only = val().split(',').map(|n| n.trim().to_string()).collect();
                if let Some(bad) = o.only.iter().find(|n| !SCENARIOS.contains(&n.as_str())) {
                    panic!("--only: unknown scenario {bad}; one of {SCENARIOS:?}");
                }
            }
            other => panic!("unknown argument {other}; see the doc comment of pipeline-bench"),
        }
        i += 2;
    }
    o
}

fn opts_args(o: &Opts) -> Vec<String> {
    vec![
        "--records".into(),
        o.records.to_string(),
        "--producers".into(),
        o.producers.to_string(),
        "--outage-secs".into(),
        o.outage_secs.to_string(),
        "--outage-rate".into(),
        o.outage_rate.to_string(),
    ]
}

// ---------------------------------------------------------------- producers

/// Runs `producers` threads, each calling `call(i)` `per_thread` times.
fn produce(producers: u64, per_thread: u64, call: impl Fn(u64) + Sync) {
    std::thread::scope(|s| {
        for p in 0..producers {
            let call = &call;
            s.spawn(move || {
                for i in 0..per_thread {
                    call(p * per_thread + i);
                }
            });
        }
    });
}

fn log_one(log: &Loggier, i: u64) {
    loggier_core::info!(
        log,
        user_id = i,
        route = "/orders/{id}",
        status = 200,
        "request handled"
    );
}

/// CPU time (user + system, µs) of the threads alive now, summed by role from
/// their names (`/proc/self/task/*/stat`, Linux; empty elsewhere): `sink`
/// (`loggier-sink-*`), `worker` (`loggier-worker`), `receiver` (the bench's loopback
/// Loki, `loki-receiver` — not Loggier's cost), `other`. Resolution: one clock tick
/// (10 ms at the usual 100 Hz).
fn thread_cpu_us() -> std::collections::BTreeMap<&'static str, f64> {
    const TICK_US: f64 = 10_000.0;
    let mut out = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        // After `(comm)`: state is field 3; utime and stime are fields 14 and 15.
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| {
            rest.get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let us = (ticks(11) + ticks(12)) * TICK_US;
        let role = if comm.starts_with("loggier-sink") {
            "sink"
        } else if comm.starts_with("loggier-worker") {
            "worker"
        } else if comm.starts_with("loki-receiver") {
            "receiver"
        } else {
            "other"
        };
        *out.entry(role).or_insert(0.0) += us;
    }
    out
}

/// Context switches `(voluntary, involuntary)` of the threads whose name starts
/// with `prefix` (`/proc/self/task/*/status`, Linux; zeros elsewhere), or of the
/// calling thread when `prefix` is empty. Voluntary: the thread slept (a wake-up
/// follows each); involuntary: it was preempted.
fn ctx_switches(prefix: &str) -> (u64, u64) {
    let read = |status: &str| {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        (
            field("voluntary_ctxt_switches:"),
            field("nonvoluntary_ctxt_switches:"),
        )
    };
    if prefix.is_empty() {
        return std::fs::read_to_string("/proc/thread-self/status")
            .map(|s| read(&s))
            .unwrap_or((0, 0));
    }
    let mut total = (0, 0);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return total;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.starts_with(prefix) {
            if let Ok(status) = std::fs::read_to_string(t.path().join("status")) {
                let (v, n) = read(&status);
                total.0 += v;
                total.1 += n;
            }
        }
    }
    total
}

/// `after - before` per role, µs per record.
fn per_record(
    before: &std::collections::BTreeMap<&'static str, f64>,
    after: &std::collections::BTreeMap<&'static str, f64>,
    role: &str,
    records: u64,
) -> Option<f64> {
    let a = after.get(role)?;
    let b = before.get(role).copied().unwrap_or(0.0);
    Some((a - b).max(0.0) / records.max(1) as f64)
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    done()
}

// ---------------------------------------------------------------- scenarios

fn scenario_throughput(name: &str, o: &Opts) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let (base, big_channel) = match name.strip_suffix(BIG) {
        Some(base) => (base, true),
        None => (name, false),
    };
    let per = o.records / o.producers;
    let total = per * o.producers;
    let receiver = if base == "file" {
        None
    } else {
        Some(LokiReceiver::start().expect("loki receiver"))
    };
    let mut b = Loggier::builder()
        .service_name("bench-pipeline")
        .data_dir(dir.path())
        .full_policy(FullPolicy::Block);
    if receiver.is_none() {
        // The embedded file sink, without rotation so every line can be counted.
        b = b.sink(
            loggier_core::FileSink::builder(dir.path().join("loggier.ndjson"))
                .max_file_bytes(1 << 40)
                .build()
                .expect("file sink"),
        );
    }
    if let Some(rx) = &receiver {
        b = b.sink(
            loggier_core::LokiSink::builder(rx.url())
                .build()
                .expect("loki sink"),
        );
    }
    if base == "loki-durable" {
        b = b.delivery_mode(DeliveryMode::Durable);
    }
    if big_channel {
        // Room for every record in the channel and the sink queue: nothing can be
        // dropped at the sink backlog, so the run measures the pipeline's capacity.
        b = b.channel_capacity(total as usize + 1_000);
    }
    let log = b.build().expect("client");
    let threads0 = thread_cpu_us();
    let cpu0 = cpu_time();
    let start = Instant::now();
    produce(o.producers, per, |i| log_one(&log, i));
    let produced = start.elapsed();
    let file = dir.path().join("loggier.ndjson");
    let flushed = log.flush(Duration::from_secs(120));
    // CPU up to the moment every record is written: counting the lines of the file
    // afterwards (the check below) is not the logger's work, as in `tracing-file`.
    let cpu_file = cpu0.zip(cpu_time()).map(|(a, b)| b - a);
    let elapsed_file = start.elapsed();
    let s = log.stats();
    let backlog: u64 = s.sinks.iter().map(|k| k.dropped_backlog).sum();
    let dropped = s.dropped() + s.sinks.iter().map(|k| k.dropped()).sum::<u64>();
    // Every record the client did not count as dropped must arrive.
    let expected = total - dropped.min(total);
    let arrived = match &receiver {
        None => flushed && count_lines(&file).unwrap_or(0) == expected,
        Some(rx) => wait_until(Duration::from_secs(60), || rx.entries() >= expected),
    };
    let (elapsed, cpu) = match &receiver {
        None => (elapsed_file, cpu_file),
        Some(_) => (start.elapsed(), cpu0.zip(cpu_time()).map(|(a, b)| b - a)),
    };
    let threads1 = thread_cpu_us();
    let received = match &receiver {
        None => count_lines(&file).unwrap_or(0),
        Some(rx) => rx.entries(),
    };
    log.shutdown(Duration::from_secs(30));
    json!({
        "scenario": name,
        "records": total,
        "received": received,
        "valid": arrived && received == total,
        "records_per_s": received as f64 / elapsed.as_secs_f64(),
        "caller_records_per_s": total as f64 / produced.as_secs_f64(),
        "cpu_us_per_record": cpu.map(|c| c.as_secs_f64() * 1e6 / received.max(1) as f64),
        "peak_rss_kib": peak_rss_kib(),
        "sink_cpu_us_per_record": per_record(&threads0, &threads1, "sink", received),
        "worker_cpu_us_per_record": per_record(&threads0, &threads1, "worker", received),
        "receiver_cpu_us_per_record": per_record(&threads0, &threads1, "receiver", received),
        "dropped": dropped,
        "error": (dropped > 0).then(|| format!(
            "{dropped} dropped by the client ({backlog} at the sink backlog)"
        )),
    })
}

fn scenario_tracing_file(o: &Opts) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tracing.ndjson");
    let guard = loggier_bench::tracing_json_to_file(&path, false);
    let per = o.records / o.producers;
    let total = per * o.producers;
    let cpu0 = cpu_time();
    let start = Instant::now();
    produce(o.producers, per, |i| {
        tracing::info!(
            user_id = i,
            route = "/orders/{id}",
            status = 200,
            "request handled"
        )
    });
    let produced = start.elapsed();
    drop(guard); // flushes and joins the appender thread
    let elapsed = start.elapsed();
    let cpu = cpu0.zip(cpu_time()).map(|(a, b)| b - a);
    let lines = count_lines(&path).unwrap_or(0);
    json!({
        "scenario": "tracing-file",
        "records": total,
        "received": lines,
        "valid": lines == total,
        "records_per_s": total as f64 / elapsed.as_secs_f64(),
        "caller_records_per_s": total as f64 / produced.as_secs_f64(),
        "cpu_us_per_record": cpu.map(|c| c.as_secs_f64() * 1e6 / total as f64),
        "peak_rss_kib": peak_rss_kib(),
        "dropped": total - lines.min(total),
    })
}

/// A sink whose sends wait until `open` is set, then deliver and count.
struct GatedSink {
    open: Arc<AtomicBool>,
    delivered: Arc<AtomicU64>,
}

impl Sink for GatedSink {
    fn name(&self) -> &str {
        "gated"
    }
    fn encode(
        &mut self,
        records: &[Arc<Record>],
        _service: &ServiceInfo,
    ) -> Result<Vec<Payload>, loggier_core::Error> {
        Ok(vec![Payload::new(Vec::new(), records.len() as u32)])
    }
    fn send<'a>(&'a mut self, payload: &'a Payload) -> BoxFuture<'a, SendOutcome> {
        let open = Arc::clone(&self.open);
        let delivered = Arc::clone(&self.delivered);
        let n = u64::from(payload.records);
        Box::pin(async move {
            while !open.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            delivered.fetch_add(n, Ordering::Relaxed);
            SendOutcome::Delivered
        })
    }
    fn is_local(&self) -> bool {
        true
    }
}

fn scenario_channel_memory(which: &str) -> Value {
    const N: u64 = 100_000;
    let open = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .service_name("bench-memory")
        .data_dir(dir.path())
        .channel_capacity(N as usize + 1_000)
        .sink(GatedSink {
            open: Arc::clone(&open),
            delivered: Arc::clone(&delivered),
        })
        .build()
        .expect("client");
    // Warm the allocator and the worker with records that then drain.
    std::thread::sleep(Duration::from_millis(100));
    let before = rss_kib();
    for i in 0..N {
        if which == "mix" {
            log.log(fixtures::kind_at(i).record(i));
        } else {
            log_one(&log, i);
        }
    }
    // Let the worker move them into the stalled sink's queue.
    let _ = wait_until(Duration::from_secs(10), || log.stats().in_channel == 0);
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_kib();
    let s = log.stats();
    let waiting = N - s.dropped() - s.sinks.iter().map(|k| k.dropped()).sum::<u64>();
    open.store(true, Ordering::Relaxed);
    let ok = log.flush(Duration::from_secs(60));
    log.shutdown(Duration::from_secs(30));
    let delivered = delivered.load(Ordering::Relaxed);
    let per = before
        .zip(after)
        .map(|(b, a)| a.saturating_sub(b) as f64 * 1024.0 / waiting.max(1) as f64);
    json!({
        "scenario": format!("channel-memory-{which}"),
        "records": N,
        "received": delivered,
        "valid": ok && delivered == N && waiting == N,
        "bytes_per_waiting_record": per,
        "peak_rss_kib": peak_rss_kib(),
        "dropped": N - waiting,
    })
}

fn scenario_outage(o: &Opts) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let rx = LokiReceiver::start().expect("loki receiver");
    let log = Loggier::builder()
        .service_name("bench-outage")
        .data_dir(dir.path())
        .network_check_interval(Duration::from_secs(1))
        .retry_max_backoff(Duration::from_secs(2))
        .sink(
            loggier_core::LokiSink::builder(rx.url())
                .build()
                .expect("loki sink"),
        )
        .build()
        .expect("client");
    let phase = Duration::from_secs_f64(o.outage_secs);
    let per_ms = (o.outage_rate / 1000).max(1);
    let mut sent = 0u64;
    // Paced producer: `per_ms` calls every millisecond; each call timed (ns).
    let mut run_phase = |log: &Loggier| -> Histogram<u64> {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram");
        let start = Instant::now();
        let mut tick = 0u64;
        while start.elapsed() < phase {
            for _ in 0..per_ms {
                let t0 = Instant::now();
                log_one(log, sent);
                let _ = h.record(
                    u64::try_from(t0.elapsed().as_nanos())
                        .unwrap_or(u64::MAX)
                        .max(1),
                );
                sent += 1;
            }
            tick += 1;
            let next = start + Duration::from_millis(tick);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        h
    };
    let t0 = thread_cpu_us();
    let (sink0, caller0) = (ctx_switches("loggier-sink"), ctx_switches(""));
    let up = run_phase(&log);
    let (sink1, caller1) = (ctx_switches("loggier-sink"), ctx_switches(""));
    let rss_up = rss_kib();
    let hwm_up = peak_rss_kib();
    let t1 = thread_cpu_us();
    rx.set_down(true);
    let down = run_phase(&log);
    let (sink2, caller2) = (ctx_switches("loggier-sink"), ctx_switches(""));
    let t2 = thread_cpu_us();
    let rss_down = rss_kib();
    let hwm_down = peak_rss_kib();
    let cached_during = log.stats().sinks.iter().map(|s| s.cached).sum::<u64>();
    rx.set_down(false);
    let recovered_in = Instant::now();
    let all = wait_until(Duration::from_secs(120), || rx.entries() >= sent);
    let recovery = recovered_in.elapsed();
    let s = log.stats();
    log.shutdown(Duration::from_secs(30));
    let q = |h: &Histogram<u64>, p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    json!({
        "scenario": "outage",
        "records": sent,
        "received": rx.entries(),
        "valid": all && rx.entries() == sent,
        "rate": o.outage_rate,
        "phase_secs": o.outage_secs,
        "p50_up_us": q(&up, 0.5),
        "p99_up_us": q(&up, 0.99),
        "p50_down_us": q(&down, 0.5),
        "p99_down_us": q(&down, 0.99),
        "sink_wakeups_up_per_s": (sink1.0 - sink0.0) as f64 / o.outage_secs,
        "sink_wakeups_down_per_s": (sink2.0 - sink1.0) as f64 / o.outage_secs,
        "caller_preempted_up_per_s": (caller1.1 - caller0.1) as f64 / o.outage_secs,
        "caller_preempted_down_per_s": (caller2.1 - caller1.1) as f64 / o.outage_secs,
        "p999_up_us": q(&up, 0.999),
        "p999_down_us": q(&down, 0.999),
        "sink_cpu_up_us_per_record": per_record(&t0, &t1, "sink", up.len()),
        "sink_cpu_down_us_per_record": per_record(&t1, &t2, "sink", down.len()),
        "worker_cpu_up_us_per_record": per_record(&t0, &t1, "worker", up.len()),
        "worker_cpu_down_us_per_record": per_record(&t1, &t2, "worker", down.len()),
        "rss_up_kib": rss_up,
        "rss_down_kib": rss_down,
        "peak_up_kib": hwm_up,
        "peak_rss_kib": hwm_down,
        "cached_batches_during_outage": cached_during,
        "refused_pushes": rx.refused(),
        "recovery_s": recovery.as_secs_f64(),
        "dropped": s.dropped() + s.sinks.iter().map(|k| k.dropped()).sum::<u64>(),
    })
}

fn run_scenario(name: &str, o: &Opts) -> Value {
    match name {
        "file" | "loki" | "loki-durable" => scenario_throughput(name, o),
        n if n.strip_suffix(BIG).is_some() => scenario_throughput(name, o),
        "tracing-file" => scenario_tracing_file(o),
        "channel-memory-info" => scenario_channel_memory("info"),
        "channel-memory-mix" => scenario_channel_memory("mix"),
        "outage" => scenario_outage(o),
        other => panic!("unknown scenario {other}"),
    }
}

// ---------------------------------------------------------------- driver

/// Suffix of the throughput scenarios run with `channel_capacity` = records.
const BIG: &str = "+big-channel";

const SCENARIOS: [&str; 10] = [
    "file",
    "file+big-channel",
    "tracing-file",
    "loki",
    "loki+big-channel",
    "loki-durable",
    "loki-durable+big-channel",
    "channel-memory-info",
    "channel-memory-mix",
    "outage",
];

fn in_child(name: &str, o: &Opts) -> Value {
    let exe = std::env::current_exe().expect("current exe");
    let out = Command::new(exe)
        .arg("scenario")
        .arg(name)
        .args(opts_args(o))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .and_then(|c| c.wait_with_output());
    let out = match out {
        Ok(out) => out,
        Err(e) => return json!({"scenario": name, "valid": false, "error": e.to_string()}),
    };
    BufReader::new(out.stdout.as_slice())
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("RESULT ")
                .and_then(|j| serde_json::from_str(j).ok())
        })
        .unwrap_or_else(|| {
            json!({"scenario": name, "valid": false,
                   "error": format!("child exited with {} and no result", out.status)})
        })
}

fn f(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or(f64::NAN)
}

fn validity(v: &Value) -> String {
    if v.is_null() {
        return "not run (`--only`)".to_string();
    }
    if v.get("valid").and_then(Value::as_bool) == Some(true) {
        format!(
            "ok ({} / {})",
            thousands(f(v, "received")),
            thousands(f(v, "records"))
        )
    } else {
        format!(
            "**INVALID**: {} / {} arrived{}",
            thousands(f(v, "received")),
            thousands(f(v, "records")),
            v.get("error")
                .and_then(Value::as_str)
                .map(|e| format!(", {e}"))
                .unwrap_or_default()
        )
    }
}

fn report(results: &[Value], o: &Opts) -> String {
    let by = |name: &str| {
        results
            .iter()
            .find(|v| v.get("scenario").and_then(Value::as_str) == Some(name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut md = format!(
        "### Pipeline: end-to-end throughput, CPU and memory\n\n\
         {} records from {} producer thread(s), `info!` with a message and 3 fields, \
         `FullPolicy::Block`; one child process per scenario.\n\n\
         | scenario | records/s delivered end to end | caller records/s | CPU µs / delivered record (all threads) | peak RSS MiB | arrived |\n\
         |---|---:|---:|---:|---:|---|\n",
        thousands(o.records as f64),
        o.producers
    );
    for name in [
        "file",
        "file+big-channel",
        "tracing-file",
        "loki",
        "loki+big-channel",
        "loki-durable",
        "loki-durable+big-channel",
    ] {
        let v = by(name);
        md.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.1} | {} |\n",
            name,
            thousands(f(&v, "records_per_s")),
            thousands(f(&v, "caller_records_per_s")),
            f(&v, "cpu_us_per_record"),
            f(&v, "peak_rss_kib") / 1024.0,
            validity(&v)
        ));
    }
    md.push_str(
        "\n`+big-channel`: `channel_capacity` = records, so nothing can be dropped at the \
         sink backlog and the figure is the pipeline's capacity (records wait in memory; \
         peak RSS is not representative there).\n",
    );
    md.push_str(
        "\nCPU per delivered record by thread (µs; from `/proc/self/task`, 10 ms ticks): \
         the sink thread (batch, encode, send, disk queue), the worker, and the bench's \
         own loopback Loki receiver (decoding every push; not Loggier's cost, but on the \
         same 2 cores).\n\n\
         | scenario | sink thread | worker | loopback receiver |\n|---|---:|---:|---:|\n",
    );
    for name in ["file", "loki", "loki-durable"] {
        let v = by(name);
        md.push_str(&format!(
            "| {} | {:.2} | {:.2} | {:.2} |\n",
            name,
            f(&v, "sink_cpu_us_per_record"),
            f(&v, "worker_cpu_us_per_record"),
            f(&v, "receiver_cpu_us_per_record"),
        ));
    }
    let valid = |v: &Value| v.get("valid").and_then(Value::as_bool) == Some(true);
    for lname in ["file", "file+big-channel"] {
        let lf = by(lname);
        let tf = by("tracing-file");
        let ratio = if valid(&lf) && valid(&tf) {
            format!(
                "**{:.2}×**",
                f(&lf, "cpu_us_per_record") / f(&tf, "cpu_us_per_record")
            )
        } else {
            "n/a (a run is invalid)".to_string()
        };
        md.push_str(&format!(
            "\nCPU per record, Loggier `{lname}` / tracing JSON non_blocking: {ratio}.\n"
        ));
    }
    md.push('\n');
    md.push_str(
        "| memory per record waiting (sink stalled, 100 000 records) | bytes / record | arrived after release |\n|---|---:|---|\n",
    );
    for (name, what) in [
        ("channel-memory-info", "`info!` + 3 fields"),
        ("channel-memory-mix", "realistic mix"),
    ] {
        let v = by(name);
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            what,
            thousands(f(&v, "bytes_per_waiting_record")),
            validity(&v)
        ));
    }
    let v = by("outage");
    md.push_str(&format!(
        "\n**Outage** (Loki sink, {} records/s from one paced producer, {:.0} s up then {:.0} s \
         answering 503, then up until all arrived):\n\n\
         | phase | caller p50 µs | caller p99 µs | caller p99.9 µs | sink thread CPU µs / record | RSS MiB at end |\n|---|---:|---:|---:|---:|---:|\n\
         | sink up | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |\n\
         | sink down | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} (peak {:.1}) |\n\n\
         p99 down / up: **{:.2}×**; recovery after the sink came back: {:.1} s; {}. \
         Sink-thread wake-ups per s up / down: {:.0} / {:.0}; caller thread preempted per s \
         up / down: {:.0} / {:.0} (on 2 cores the caller shares a core with the worker, \
         the sink thread and the loopback receiver).\n\n",
        thousands(f(&v, "rate")),
        f(&v, "phase_secs"),
        f(&v, "phase_secs"),
        f(&v, "p50_up_us"),
        f(&v, "p99_up_us"),
        f(&v, "p999_up_us"),
        f(&v, "sink_cpu_up_us_per_record"),
        f(&v, "rss_up_kib") / 1024.0,
        f(&v, "p50_down_us"),
        f(&v, "p99_down_us"),
        f(&v, "p999_down_us"),
        f(&v, "sink_cpu_down_us_per_record"),
        f(&v, "rss_down_kib") / 1024.0,
        f(&v, "peak_rss_kib") / 1024.0,
        f(&v, "p99_down_us") / f(&v, "p99_up_us"),
        f(&v, "recovery_s"),
        validity(&v),
        f(&v, "sink_wakeups_up_per_s"),
        f(&v, "sink_wakeups_down_per_s"),
        f(&v, "caller_preempted_up_per_s"),
        f(&v, "caller_preempted_down_per_s"),
    ));
    md
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("scenario") {
        let name = args.get(1).expect("scenario NAME").clone();
        let o = parse_opts(&args[2..]);
        let v = run_scenario(&name, &o);
        println!("RESULT {v}");
        return;
    }
    let o = parse_opts(&args);
    let mut results = Vec::new();
    for name in SCENARIOS {
        if !o.only.is_empty() && !o.only.iter().any(|n| n == name) {
            continue;
        }
        let t = Instant::now();
        let v = in_child(name, &o);
        eprintln!("{name:<20} {:>6.1} s  {v}", t.elapsed().as_secs_f64());
        results.push(v);
    }
    let md = report(&results, &o);
    print!("{md}");
    if let Some(path) = &o.out {
        std::fs::write(Path::new(path), &md).expect("write report");
    }
}
