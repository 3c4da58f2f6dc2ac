//! Side-by-side HTTP benchmark: axum and actix-web servers with and without a logging
//! layer, driven by a hyper keep-alive load generator in this process.
//!
//! ```text
//! http-bench [--quick] [--rounds N] [--warmup SECS] [--duration SECS]
//!            [--connections N] [--server-threads N] [--out FILE.md]
//!            [--framework axum|actix] [--modes MODE,MODE,...]
//! http-bench load PORT CONNECTIONS SECS
//! ```
//!
//! `--framework` runs one framework only; `--modes` runs only the listed modes
//! (`bare` is always run, the ratios need it). `load` drives an already running
//! server (e.g. `http-bench serve axum loggier DIR 1` under a profiler) with the same
//! load generator and prints `requests=N rps=R`.
//!
//! Modes (each server in its own child process — this binary re-run as
//! `http-bench serve FRAMEWORK MODE DIR` — so global loggers never mix):
//!
//! | mode | axum | actix-web |
//! |---|---|---|
//! | `bare` | no middleware | no middleware |
//! | `identity` | a layer that returns the route unchanged: what `Router::layer` itself costs, the floor under any middleware | `wrap_fn(\|req, srv\| srv.call(req))`: the same for `App::wrap` |
//! | `loggier` | `with_loggier` (default settings: only errors/slow recorded) | `loggier_actix::Loggier::new` |
//! | `tracelayer-errors` | tower-http's counterpart of those defaults: `TraceLayer::new_for_http()` as it comes (only 5xx/errors at ERROR reach an INFO subscriber) + `SetRequestIdLayer`/`PropagateRequestIdLayer` with `MakeRequestUuid` (an id echoed as `x-request-id`), `tracing` JSON over `non_blocking` to a file | — |
//! | `loggier-all` | `log_all_requests(true)`, file sink | same |
//! | `tracelayer` | tower-http `TraceLayer` (span and response at INFO) + `tracing` JSON over `non_blocking` to a file | — |
//! | `logger` | — | `middleware::Logger::default()` + `env_logger` to a file |
//!
//! Every round (5 by default: single req/s figures on a shared 2-core machine swing by
//! ±10 %, so 3-round medians moved between runs) runs every mode once (interleaved;
//! every other round in reverse order, so no mode always follows the same one),
//! each with a warm-up and then a fixed-duration measurement; the tables show medians over rounds, and req/s and p99
//! as a ratio to `bare` of the same framework and round (median of the per-round
//! ratios). Latency is per request, from send to the last body byte, in a
//! `hdrhistogram` (1 µs .. 60 s, 3 significant digits).
//!
//! Validity: every response must be 200; in the Loggier modes and `tracelayer-errors`
//! the response must echo `x-request-id` (the layer is really on); after the child
//! shut down and flushed, the lines in its log file must equal the requests it served
//! (`loggier-all`, `tracelayer`, `logger`) or be 0 (`loggier`, `tracelayer-errors`:
//! 200s are not recorded by default). A mode that fails a check is marked INVALID in
//! the table with the reason.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use loggier_bench::{count_lines_containing, median, thousands};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Framework {
    Axum,
    Actix,
}

impl Framework {
    fn name(self) -> &'static str {
        match self {
            Framework::Axum => "axum",
            Framework::Actix => "actix",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "axum" => Some(Framework::Axum),
            "actix" => Some(Framework::Actix),
            _ => None,
        }
    }
    fn all_modes(self) -> &'static [&'static str] {
        match self {
            Framework::Axum => loggier_bench::AXUM_MODES,
            Framework::Actix => loggier_bench::ACTIX_MODES,
        }
    }
    /// The modes to run: `bare` first, then those `only` names (all when empty).
    fn modes(self, only: &[String]) -> Vec<&'static str> {
        self.all_modes()
            .iter()
            .copied()
            .filter(|m| *m == "bare" || only.is_empty() || only.iter().any(|o| o == m))
            .collect()
    }
}

/// The log file a mode writes, inside the child's directory.
fn log_file(dir: &Path, mode: &str) -> Option<PathBuf> {
    match mode {
        "bare" | "identity" => None,
        "loggier" | "loggier-all" => Some(dir.join("loggier.ndjson")),
        _ => Some(dir.join("access.log")),
    }
}

// ---------------------------------------------------------------- server side

/// Waits for a line (or EOF) on stdin: the parent's stop signal.
fn wait_for_stop() {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

fn report_loggier(client: Option<&loggier_core::Loggier>) {
    if let Some(c) = client {
        c.shutdown(Duration::from_secs(30));
        let s = c.stats();
        println!(
            "STATS enqueued={} written={} dropped={}",
            s.enqueued,
            s.sinks.iter().map(|k| k.written).sum::<u64>(),
            s.dropped() + s.sinks.iter().map(|k| k.dropped()).sum::<u64>()
        );
    }
}

fn serve_axum(mode: &str, dir: &Path, threads: usize) {
    use axum::Router;
    use axum::routing::get;

    let served = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&served);
    let handler = move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            (
                [(http::header::CONTENT_TYPE, "application/json")],
                loggier_bench::HANDLER_BODY,
            )
        }
    };
    let router = Router::new().route("/api/orders/{id}", get(handler));
    let mut client = None;
    let mut tracing_guard = None;
    let app = match mode {
        "bare" => router,
        "loggier" | "loggier-all" => {
            use loggier_axum::LoggierRouterExt as _;
            let c = loggier_bench::file_client(dir, loggier_core::FullPolicy::DropNewest);
            client = Some(c.clone());
            router.with_loggier_settings(c, loggier_bench::capture_settings(mode))
        }
        other => {
            if other.starts_with("tracelayer") {
                tracing_guard = Some(loggier_bench::tracing_json_to_file(
                    &dir.join("access.log"),
                    true,
                ));
            }
            loggier_bench::axum_peer(router, other)
                .unwrap_or_else(|| panic!("unknown axum mode {other}"))
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        println!("PORT {port}");
        let _ = std::io::stdout().flush();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            wait_for_stop();
            let _ = tx.send(());
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await
            .expect("axum serve");
    });
    drop(rt);
    report_loggier(client.as_ref());
    drop(tracing_guard); // flushes the appender
    println!("DONE served={}", served.load(Ordering::Relaxed));
}

/// Runs an actix-web server built by `$app` (an `App` expression, re-evaluated per
/// worker) on `$listener` until the stop signal. A macro because every middleware
/// stack is its own `App` type, and the bare mode must carry no wrapper at all.
macro_rules! run_actix {
    ($listener:expr, $threads:expr, $app:expr) => {{
        let listener: std::net::TcpListener = $listener;
        let port = listener.local_addr().expect("local addr").port();
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new($app)
                .workers($threads)
                .disable_signals()
                .listen(listener)
                .expect("listen")
                .run();
            let handle = server.handle();
            println!("PORT {port}");
            let _ = std::io::stdout().flush();
            std::thread::spawn(move || {
                wait_for_stop();
                match tokio::runtime::Builder::new_current_thread().build() {
                    Ok(rt) => rt.block_on(handle.stop(true)),
                    Err(e) => eprintln!("cannot stop the actix server: {e}"),
                }
            });
            server.await.expect("actix server");
        });
    }};
}

fn actix_route(served: &Arc<AtomicU64>) -> actix_web::Resource {
    use actix_web::{HttpResponse, web};
    let counter = Arc::clone(served);
    web::resource("/api/orders/{id}").route(web::get().to(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::Relaxed);
            HttpResponse::Ok()
                .content_type("application/json")
                .body(loggier_bench::HANDLER_BODY)
        }
    }))
}

fn serve_actix(mode: &str, dir: &Path, threads: usize) {
    use actix_web::App;

    let served = Arc::new(AtomicU64::new(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut client = None;
    match mode {
        "bare" => {
            let served = Arc::clone(&served);
            run_actix!(listener, threads, move || App::new()
                .service(actix_route(&served)));
        }
        "loggier" | "loggier-all" => {
            let c = loggier_bench::file_client(dir, loggier_core::FullPolicy::DropNewest);
            client = Some(c.clone());
            let settings = Arc::new(loggier_bench::capture_settings(mode));
            let served = Arc::clone(&served);
            run_actix!(listener, threads, move || App::new()
                .wrap(loggier_actix::Loggier::with_settings(
                    c.clone(),
                    Arc::clone(&settings)
                ))
                .service(actix_route(&served)));
        }
        "identity" => {
            // A middleware that calls the next service and returns its future as it
            // is: what `App::wrap` itself costs, the floor under any middleware.
            use actix_web::dev::Service as _;
            let served = Arc::clone(&served);
            run_actix!(listener, threads, move || App::new()
                .wrap_fn(|req, srv| srv.call(req))
                .service(actix_route(&served)));
        }
        "logger" => {
            let file = std::fs::File::create(dir.join("access.log")).expect("create access.log");
            env_logger::Builder::new()
                .filter_level(log::LevelFilter::Info)
                .target(env_logger::Target::Pipe(Box::new(file)))
                .init();
            let served = Arc::clone(&served);
            run_actix!(listener, threads, move || App::new()
                .wrap(actix_web::middleware::Logger::default())
                .service(actix_route(&served)));
        }
        other => panic!("unknown actix mode {other}"),
    }
    report_loggier(client.as_ref());
    log::logger().flush();
    println!("DONE served={}", served.load(Ordering::Relaxed));
}

// ---------------------------------------------------------------- load generator

/// What one fixed-duration load run measured.
struct Load {
    requests: u64,
    elapsed: Duration,
    hist: Histogram<u64>,
    errors: u64,
    missing_request_id: u64,
}

/// One keep-alive connection sending GETs back to back until `deadline`.
async fn connection_loop(
    port: u16,
    deadline: Instant,
    check_request_id: bool,
) -> Result<Load, String> {
    use http_body_util::{BodyExt as _, Empty};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    let driver = tokio::spawn(conn);
    let mut load = Load {
        requests: 0,
        elapsed: Duration::ZERO,
        hist: Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
        errors: 0,
        missing_request_id: 0,
    };
    let start = Instant::now();
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        let req = http::Request::get(format!("/api/orders/{}", 1000 + i % 1000))
            .header(http::header::HOST, "127.0.0.1")
            .header(http::header::USER_AGENT, "loggier-bench")
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        sender.ready().await.map_err(|e| format!("ready: {e}"))?;
        let t0 = Instant::now();
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let ok = resp.status() == http::StatusCode::OK;
        let has_id = resp.headers().contains_key("x-request-id");
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?;
        let us = u64::try_from(t0.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = load.hist.record(us);
        load.requests += 1;
        if !ok || body.to_bytes().len() != loggier_bench::HANDLER_BODY.len() {
            load.errors += 1;
        }
        if check_request_id && !has_id {
            load.missing_request_id += 1;
        }
    }
    load.elapsed = start.elapsed();
    drop(sender);
    let _ = driver.await;
    Ok(load)
}

/// `connections` connections for `duration`; merged figures.
fn drive(
    port: u16,
    connections: usize,
    duration: Duration,
    check_request_id: bool,
) -> Result<Load, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let deadline = Instant::now() + duration;
        let tasks: Vec<_> = (0..connections)
            .map(|_| tokio::spawn(connection_loop(port, deadline, check_request_id)))
            .collect();
        let mut total = Load {
            requests: 0,
            elapsed: Duration::ZERO,
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
            errors: 0,
            missing_request_id: 0,
        };
        for t in tasks {
            let l = t.await.map_err(|e| e.to_string())??;
            total.requests += l.requests;
            total.elapsed = total.elapsed.max(l.elapsed);
            total.errors += l.errors;
            total.missing_request_id += l.missing_request_id;
            total.hist.add(&l.hist).map_err(|e| e.to_string())?;
        }
        Ok(total)
    })
}

// ---------------------------------------------------------------- driver

struct Opts {
    frameworks: Vec<Framework>,
    /// Modes to run besides `bare`; empty = all.
    modes: Vec<String>,
    rounds: usize,
    warmup: Duration,
    duration: Duration,
    connections: usize,
    server_threads: usize,
    out: Option<PathBuf>,
}

/// One mode in one round.
struct Sample {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    invalid: Option<String>,
    records: Option<(u64, u64)>, // (lines written, lines expected)
    /// Server process CPU time (user + system, all threads) per request of the
    /// measured phase, µs; `NaN` where `/proc` is unavailable.
    cpu_us: f64,
    /// Context switches (voluntary + involuntary, all server threads) per 1,000
    /// requests of the measured phase; `NaN` where `/proc` is unavailable. Each one is
    /// a thread going to sleep or being preempted: work that instruction counts miss.
    switches_per_1k: f64,
}

/// Voluntary + involuntary context switches of every thread of process `pid` so far
/// (`voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` of
/// `/proc/PID/task/*/status`, Linux). Threads that exited in between are not counted.
fn context_switches(pid: u32) -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(status) = std::fs::read_to_string(task.ok()?.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += v.trim().parse::<u64>().ok()?;
            }
        }
    }
    Some(total)
}

/// User + system CPU time of process `pid` so far, in clock ticks of
/// [`CLOCK_TICKS_PER_SEC`] (fields 14 and 15 of `/proc/PID/stat`, Linux).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// `USER_HZ`, the unit of `/proc/PID/stat` times: 100 on every Linux architecture
/// Rust targets.
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

struct ServerChild {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

fn spawn_server(
    fw: Framework,
    mode: &str,
    dir: &Path,
    threads: usize,
) -> Result<(ServerChild, u16), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = Command::new(exe)
        .args(["serve", fw.name(), mode])
        .arg(dir)
        .arg(threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn server: {e}"))?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let port = loop {
        match lines.next() {
            Some(Ok(l)) => {
                if let Some(p) = l.strip_prefix("PORT ") {
                    break p.trim().parse::<u16>().map_err(|e| e.to_string())?;
                }
            }
            _ => {
                return Err(format!(
                    "{} {mode}: server exited before listening",
                    fw.name()
                ));
            }
        }
    };
    Ok((
        ServerChild {
            child,
            stdin,
            lines,
        },
        port,
    ))
}

fn stop_server(mut s: ServerChild) -> Result<(u64, Option<String>), String> {
    if let Some(mut stdin) = s.stdin.take() {
        let _ = stdin.write_all(b"stop\n");
    }
    let mut served = None;
    let mut stats = None;
    for line in s.lines.by_ref() {
        let line = line.map_err(|e| e.to_string())?;
        if let Some(n) = line.strip_prefix("DONE served=") {
            served = n.trim().parse::<u64>().ok();
        } else if let Some(st) = line.strip_prefix("STATS ") {
            stats = Some(st.to_string());
        }
    }
    let status = s.child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("server exited with {status}"));
    }
    Ok((served.ok_or("server did not report DONE")?, stats))
}

fn run_mode(fw: Framework, mode: &str, o: &Opts) -> Result<Sample, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (server, port) = spawn_server(fw, mode, dir.path(), o.server_threads)?;
    // The modes that echo a request id: the layer is really on.
    let check_id = mode.starts_with("loggier") || mode == "tracelayer-errors";
    let pid = server.child.id();
    let warm = drive(port, o.connections, o.warmup, check_id);
    let cpu_before = cpu_ticks(pid);
    let switches_before = context_switches(pid);
    let load = warm.and_then(|_| drive(port, o.connections, o.duration, check_id));
    let cpu_after = cpu_ticks(pid);
    let switches_after = context_switches(pid);
    let (served, stats) = stop_server(server)?;
    let load = load?;
    let mut invalid = None;
    if load.errors > 0 {
        invalid = Some(format!("{} non-200 or short responses", load.errors));
    }
    if load.missing_request_id > 0 {
        invalid = Some(format!(
            "{} responses without x-request-id: layer not active",
            load.missing_request_id
        ));
    }
    let mut records = None;
    if let Some(path) = log_file(dir.path(), mode) {
        // Access lines only: actix also logs its own start/stop lines at info.
        let lines = count_lines_containing(&path, "/api/orders/").map_err(|e| e.to_string())?;
        // The default-settings modes record failures only; every request here is a 200.
        let only_failures = matches!(mode, "loggier" | "tracelayer-errors");
        let expected = if only_failures { 0 } else { served };
        records = Some((lines, expected));
        if lines != expected {
            invalid = Some(format!(
                "log has {lines} lines, expected {expected} (served {served}; {})",
                stats.as_deref().unwrap_or("no loggier stats")
            ));
        }
        if expected == 0 && !only_failures {
            invalid = Some("the logger wrote nothing".into());
        }
    }
    let secs = load.elapsed.as_secs_f64().max(1e-9);
    Ok(Sample {
        rps: load.requests as f64 / secs,
        p50_us: load.hist.value_at_quantile(0.50) as f64,
        p99_us: load.hist.value_at_quantile(0.99) as f64,
        invalid,
        records,
        cpu_us: match (cpu_before, cpu_after) {
            (Some(a), Some(b)) if load.requests > 0 => {
                b.saturating_sub(a) as f64 / CLOCK_TICKS_PER_SEC * 1e6 / load.requests as f64
            }
            _ => f64::NAN,
        },
        switches_per_1k: match (switches_before, switches_after) {
            (Some(a), Some(b)) if load.requests > 0 => {
                b.saturating_sub(a) as f64 * 1000.0 / load.requests as f64
            }
            _ => f64::NAN,
        },
    })
}

fn parse_opts() -> Opts {
    let mut o = Opts {
        frameworks: vec![Framework::Axum, Framework::Actix],
        modes: Vec::new(),
        rounds: 5,
        warmup: Duration::from_secs(1),
        duration: Duration::from_secs(3),
        connections: 32,
        server_threads: 2,
        out: None,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    let num = |i: usize| -> f64 {
        args.get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{} needs a number", args[i]))
    };
    while i < args.len() {
        match args[i].as_str() {
            "--quick" => {
                o.rounds = 1;
                o.warmup = Duration::from_millis(500);
                o.duration = Duration::from_secs(1);
                i += 1;
                continue;
            }
            "--rounds" => o.rounds = num(i) as usize,
            "--warmup" => o.warmup = Duration::from_secs_f64(num(i)),
            "--duration" => o.duration = Duration::from_secs_f64(num(i)),
            "--connections" => o.connections = num(i) as usize,
            "--server-threads" => o.server_threads = num(i) as usize,
            "--out" => o.out = args.get(i + 1).map(PathBuf::from),
            "--framework" => {
                let fw = args
                    .get(i + 1)
                    .and_then(|f| Framework::parse(f))
                    .unwrap_or_else(|| panic!("--framework needs axum or actix"));
                o.frameworks = vec![fw];
            }
            "--modes" => {
                o.modes = args
                    .get(i + 1)
                    .map(|m| m.split(',').map(str::to_string).collect())
                    .unwrap_or_else(|| panic!("--modes needs a comma-separated list"));
            }
            other => panic!("unknown argument {other}; see the doc comment of http-bench"),
        }
        i += 2;
    }
    o
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let fw = args
            .get(2)
            .and_then(|s| Framework::parse(s))
            .expect("serve FRAMEWORK MODE DIR THREADS");
        let mode = args.get(3).expect("mode");
        let dir = PathBuf::from(args.get(4).expect("dir"));
        let threads: usize = args.get(5).and_then(|t| t.parse().ok()).unwrap_or(2);
        match fw {
            Framework::Axum => serve_axum(mode, &dir, threads),
            Framework::Actix => serve_actix(mode, &dir, threads),
        }
        return;
    }
    if args.get(1).map(String::as_str) == Some("load") {
        let arg = |i: usize| -> u64 {
            args.get(i)
                .and_then(|v| v.parse().ok())
                .expect("load PORT CONNECTIONS SECS")
        };
        let port = u16::try_from(arg(2)).expect("port");
        let load =
            drive(port, arg(3) as usize, Duration::from_secs(arg(4)), false).expect("load run");
        println!(
            "requests={} rps={:.0} errors={}",
            load.requests,
            load.requests as f64 / load.elapsed.as_secs_f64().max(1e-9),
            load.errors
        );
        return;
    }
    let o = parse_opts();
    // samples[fw][mode][round]
    let fws = o.frameworks.clone();
    let mut samples: Vec<Vec<Vec<Sample>>> = fws
        .iter()
        .map(|fw| fw.modes(&o.modes).iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..o.rounds {
        for (fi, fw) in fws.iter().enumerate() {
            let modes = fw.modes(&o.modes);
            // Every other round runs the modes in reverse, so no mode always runs
            // right after the same neighbour (a server that wrote hundreds of MB, a
            // framework switch) or at the same point of a slow drift of the machine.
            let mut order: Vec<usize> = (0..modes.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for mi in order {
                let mode = modes[mi];
                let s = run_mode(*fw, mode, &o).unwrap_or_else(|e| Sample {
                    rps: f64::NAN,
                    p50_us: f64::NAN,
                    p99_us: f64::NAN,
                    invalid: Some(e),
                    records: None,
                    cpu_us: f64::NAN,
                    switches_per_1k: f64::NAN,
                });
                eprintln!(
                    "round {} {:>5} {:<12} {:>9} req/s  p50 {:>6} µs  p99 {:>6} µs  cpu {:>5.1} µs/req  {:>5.0} switches/1k{}",
                    round + 1,
                    fw.name(),
                    mode,
                    thousands(s.rps),
                    s.p50_us,
                    s.p99_us,
                    s.cpu_us,
                    s.switches_per_1k,
                    s.invalid
                        .as_deref()
                        .map(|r| format!("  INVALID: {r}"))
                        .unwrap_or_default()
                );
                samples[fi][mi].push(s);
            }
        }
    }
    let md = report(&fws, &samples, &o);
    print!("{md}");
    if let Some(path) = &o.out {
        std::fs::write(path, &md).expect("write report");
    }
}

fn report(fws: &[Framework], samples: &[Vec<Vec<Sample>>], o: &Opts) -> String {
    let mut md = String::new();
    md.push_str(&format!(
        "### HTTP: req/s and latency behind each logging layer\n\n\
         {} round(s) × ({:.1} s warm-up + {:.1} s measured) per mode, interleaved (every other round in reverse order); {} keep-alive \
         connections from a hyper load generator in the same machine; server {} worker thread(s). \
         Medians over rounds; ratios are to `bare` of the same framework and round. \
         Server CPU: user + system time of the server process (all its threads, the \
         logger's included) during the measured phase, per request — less sensitive than \
         req/s to other load on the machine. Switches: context switches (voluntary + \
         involuntary) of all server threads per 1,000 requests — a thread woken or \
         preempted, cost that instruction counts do not show.\n\n\
         | framework | mode | req/s | × bare | p50 µs | p99 µs | p99 × bare | server CPU µs/req | CPU × bare | switches /1k req | records written / expected |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
        o.rounds,
        o.warmup.as_secs_f64(),
        o.duration.as_secs_f64(),
        o.connections,
        o.server_threads,
    ));
    for (fi, fw) in fws.iter().enumerate() {
        let bare = &samples[fi][0];
        for (mi, mode) in fw.modes(&o.modes).iter().enumerate() {
            let ss = &samples[fi][mi];
            let rps = median(&mut ss.iter().map(|s| s.rps).collect::<Vec<_>>());
            let p50 = median(&mut ss.iter().map(|s| s.p50_us).collect::<Vec<_>>());
            let p99 = median(&mut ss.iter().map(|s| s.p99_us).collect::<Vec<_>>());
            let ratio = median(
                &mut ss
                    .iter()
                    .zip(bare)
                    .map(|(s, b)| s.rps / b.rps)
                    .collect::<Vec<_>>(),
            );
            let p99r = median(
                &mut ss
                    .iter()
                    .zip(bare)
                    .map(|(s, b)| s.p99_us / b.p99_us)
                    .collect::<Vec<_>>(),
            );
            let cpu = median(&mut ss.iter().map(|s| s.cpu_us).collect::<Vec<_>>());
            let cpur = median(
                &mut ss
                    .iter()
                    .zip(bare)
                    .map(|(s, b)| s.cpu_us / b.cpu_us)
                    .collect::<Vec<_>>(),
            );
            let switches = median(&mut ss.iter().map(|s| s.switches_per_1k).collect::<Vec<_>>());
            let records = match ss.last().and_then(|s| s.records) {
                Some((w, e)) => format!("{} / {}", thousands(w as f64), thousands(e as f64)),
                None => "—".to_string(),
            };
            let invalid: Vec<_> = ss.iter().filter_map(|s| s.invalid.clone()).collect();
            let records = if invalid.is_empty() {
                records
            } else {
                format!("**INVALID**: {}", invalid.join("; "))
            };
            md.push_str(&format!(
                "| {} | {} | {} | {:.2} | {:.0} | {:.0} | {:.2} | {:.1} | {:.2} | {:.0} | {} |\n",
                fw.name(),
                mode,
                thousands(rps),
                ratio,
                p50,
                p99,
                p99r,
                cpu,
                cpur,
                switches,
                records
            ));
        }
    }
    md.push('\n');
    md
}
