//! Per-request cost of a logging layer, counted instead of timed: drives N requests
//! through an axum or actix-web service in this process (no sockets, no load
//! generator), so a deterministic counter sees only the server side.
//!
//! ```text
//! http-count FRAMEWORK MODE REQUESTS [unique-paths] [request-ids]
//! ```
//!
//! `FRAMEWORK` is `axum` or `actix`, `MODE` one of `http-bench`'s modes: `bare`,
//! `identity` (a pass-through layer: the floor under any middleware), `loggier`
//! (default capture settings: only errors and slow requests recorded),
//! `loggier-all` (`log_all_requests(true)`), and on axum `tracelayer-errors` and
//! `tracelayer` (tower-http peers, see `loggier_bench::axum_peer`; `tracing` JSON to a
//! file over `non_blocking`); the Loggier modes write to a file sink in a temporary
//! directory with `FullPolicy::Block`, so no record is dropped. The request is the
//! one `http-bench` sends (`GET /api/orders/{id}` with `Host` and `User-Agent`, ids
//! cycling through 1,000 values) and the handler answers the same JSON body; the body
//! is read to its end, as a server does. The axum router is driven as `axum::serve`
//! drives it: its state applied once, a clone of it per request. With `unique-paths`, every request has an id
//! of its own (no path repeats: what per-path caches cannot help with). With
//! `request-ids`, every request carries an `x-request-id` of its own (as behind a
//! proxy or load balancer that sets one), which the Loggier modes take and echo.
//!
//! Prints `requests=N lines=L`; the run fails when the log file does not hold the
//! lines it should (N for `loggier-all` and `tracelayer`, 0 for `loggier` and
//! `tracelayer-errors`).
//!
//! Instructions and allocations per request, all threads (the logger's worker and
//! sink threads included): run it under `valgrind --tool=callgrind` (instructions)
//! or `valgrind --tool=dhat` (allocated blocks) with two request counts and divide
//! the difference of the totals by the difference of the counts (set-up and
//! shutdown cancel out), e.g.
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/http-count actix bare 1000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/http-count actix bare 6000
//! ```

use std::time::Duration;

use loggier_bench::{ACTIX_MODES, AXUM_MODES};

fn path(i: u64, unique: bool) -> String {
    let id = if unique { 1000 + i } else { 1000 + i % 1000 };
    format!("/api/orders/{id}")
}

/// The `x-request-id` of request `i` with `request-ids`.
fn request_id(i: u64) -> String {
    format!("lb-{i:08x}")
}

/// Request `i` as hyper's HTTP/1 parser hands it to `axum::serve`: the path and
/// the header values are slices of one shared buffer holding the request head, so
/// cloning one (as a layer that keeps them does) counts a reference instead of
/// copying bytes. (Values built from `&str` would be copied into buffers of their
/// own, and their first clone would allocate.)
fn axum_request(i: u64, unique: bool, ids: bool) -> http::Request<axum::body::Body> {
    use http::HeaderValue;
    const HOST: &str = "127.0.0.1";
    const AGENT: &str = "loggier-bench";
    let path = path(i, unique);
    let id = if ids { request_id(i) } else { String::new() };
    let mut head = Vec::with_capacity(path.len() + HOST.len() + AGENT.len() + id.len());
    for part in [path.as_str(), HOST, AGENT, id.as_str()] {
        head.extend_from_slice(part.as_bytes());
    }
    let head = bytes::Bytes::from(head);
    let mut at = 0;
    let mut next = |len: usize| {
        at += len;
        head.slice(at - len..at)
    };
    let uri = http::Uri::from_maybe_shared(next(path.len())).expect("uri");
    let value = |b: bytes::Bytes| HeaderValue::from_maybe_shared(b).expect("header value");
    let mut req = http::Request::get(uri)
        .header(http::header::HOST, value(next(HOST.len())))
        .header(http::header::USER_AGENT, value(next(AGENT.len())));
    if ids {
        req = req.header("x-request-id", value(next(id.len())));
    }
    req.body(axum::body::Body::empty()).expect("request")
}

fn run_axum(
    mode: &str,
    client: Option<&loggier_core::Loggier>,
    requests: u64,
    unique: bool,
    ids: bool,
) {
    use axum::Router;
    use axum::routing::get;
    use http_body_util::BodyExt as _;
    use tower_service::Service as _;

    let router = Router::new().route(
        "/api/orders/{id}",
        get(|| async {
            (
                [(http::header::CONTENT_TYPE, "application/json")],
                loggier_bench::HANDLER_BODY,
            )
        }),
    );
    let app = match client {
        None if mode == "bare" => router,
        None => {
            loggier_bench::axum_peer(router, mode).unwrap_or_else(|| panic!("no axum mode {mode}"))
        }
        Some(c) => {
            use loggier_axum::LoggierRouterExt as _;
            router.with_loggier_settings(c.clone(), loggier_bench::capture_settings(mode))
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    // As `axum::serve` does: the router's state is applied once (per connection
    // there), which turns every route, its layers applied, into a ready service —
    // called without it, axum would apply the layers again for every request — and
    // each request gets a clone of that service (hyper-util's `TowerToHyperService`),
    // made ready and called once.
    let app = app.with_state::<()>(());
    rt.block_on(async move {
        for i in 0..requests {
            let req = axum_request(i, unique, ids);
            let mut svc = app.clone();
            std::future::poll_fn(|cx| {
                <Router as tower_service::Service<http::Request<axum::body::Body>>>::poll_ready(
                    &mut svc, cx,
                )
            })
            .await
            .expect("ready");
            let resp = svc.call(req).await.expect("infallible");
            assert_eq!(resp.status(), http::StatusCode::OK);
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            assert_eq!(body.len(), loggier_bench::HANDLER_BODY.len());
        }
    });
}

fn run_actix(
    mode: &str,
    client: Option<&loggier_core::Loggier>,
    requests: u64,
    unique: bool,
    ids: bool,
) {
    use actix_web::{App, HttpResponse, test, web};

    let peer: std::net::SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let resource = || {
        web::resource("/api/orders/{id}").route(web::get().to(|| async {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(loggier_bench::HANDLER_BODY)
        }))
    };
    let request = move |i: u64| {
        let mut req = test::TestRequest::get()
            .uri(&path(i, unique))
            .insert_header((actix_web::http::header::HOST, "127.0.0.1"))
            .insert_header((actix_web::http::header::USER_AGENT, "loggier-bench"))
            .peer_addr(peer);
        if ids {
            req = req.insert_header(("x-request-id", request_id(i)));
        }
        req.to_request()
    };
    actix_web::rt::System::new().block_on(async move {
        macro_rules! drive {
            ($app:expr) => {{
                let app = test::init_service($app).await;
                for i in 0..requests {
                    let resp = test::call_service(&app, request(i)).await;
                    assert!(resp.status().is_success());
                    let body = actix_web::body::to_bytes(resp.into_body())
                        .await
                        .expect("body");
                    assert_eq!(body.len(), loggier_bench::HANDLER_BODY.len());
                }
            }};
        }
        match client {
            None if mode == "identity" => {
                use actix_web::dev::Service as _;
                drive!(
                    App::new()
                        .wrap_fn(|req, srv| srv.call(req))
                        .service(resource())
                )
            }
            None => drive!(App::new().service(resource())),
            Some(c) => drive!(
                App::new()
                    .wrap(loggier_actix::Loggier::with_settings(
                        c.clone(),
                        loggier_bench::capture_settings(mode)
                    ))
                    .service(resource())
            ),
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!(
            "usage: http-count axum|actix MODE REQUESTS [unique-paths] [request-ids]\n\
             axum modes: {AXUM_MODES:?}\nactix modes: {ACTIX_MODES:?}"
        );
        std::process::exit(2);
    };
    let (framework, mode, requests, flags) = match args.as_slice() {
        [f, m, r, flags @ ..] => (f, m, r, flags),
        _ => usage(),
    };
    if flags
        .iter()
        .any(|f| !matches!(f.as_str(), "unique-paths" | "request-ids"))
    {
        usage();
    }
    let unique = flags.iter().any(|f| f == "unique-paths");
    let ids = flags.iter().any(|f| f == "request-ids");
    let requests: u64 = requests.parse().expect("REQUESTS is a number");
    let known = match framework.as_str() {
        "axum" => AXUM_MODES,
        "actix" => ACTIX_MODES,
        _ => usage(),
    };
    if !known.contains(&mode.as_str()) {
        eprintln!("unknown {framework} mode {mode}; one of {known:?}");
        std::process::exit(2);
    }
    if mode == "logger" {
        // It writes through `env_logger`, whose global logger only `http-bench` sets up.
        eprintln!("http-count does not run `logger`; http-bench does");
        std::process::exit(2);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let client = mode
        .starts_with("loggier")
        .then(|| loggier_bench::file_client(dir.path(), loggier_core::FullPolicy::Block));
    let tracing_guard = mode
        .starts_with("tracelayer")
        .then(|| loggier_bench::tracing_json_to_file(&dir.path().join("access.log"), true));
    match framework.as_str() {
        "axum" => run_axum(mode, client.as_ref(), requests, unique, ids),
        "actix" => run_actix(mode, client.as_ref(), requests, unique, ids),
        other => {
            eprintln!("unknown framework {other}");
            std::process::exit(2);
        }
    }
    if let Some(c) = &client {
        c.shutdown(Duration::from_secs(60));
    }
    drop(tracing_guard); // flushes the appender's queue
    let mut lines = 0;
    let log = if client.is_some() {
        Some("loggier.ndjson")
    } else if mode.starts_with("tracelayer") {
        Some("access.log")
    } else {
        None
    };
    if let Some(log) = log {
        lines = loggier_bench::count_lines(&dir.path().join(log)).unwrap_or(0);
        let expected = if matches!(mode.as_str(), "loggier-all" | "tracelayer") {
            requests
        } else {
            0
        };
        if lines != expected {
            eprintln!("INVALID: {lines} lines in the log file, expected {expected}");
            std::process::exit(1);
        }
    }
    println!("requests={requests} lines={lines}");
}
