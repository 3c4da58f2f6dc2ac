//! `#[track_endpoint]` end to end: real axum and actix-web servers on 127.0.0.1, a
//! real HTTP client, and the records read back from the NDJSON file the client's
//! file sink wrote. On each framework the same two handlers are served, one with the
//! attribute and one without; the attribute must change statuses, tags and body
//! capture for its own route only.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// The request body every request sends: JSON with a secret that must be masked.
const BODY: &str = r#"{"sku":"A-1","qty":2,"token":"tok-e2e-secret"}"#;

/// Settings both servers use: defaults (statuses 400, 401, 403, 5xx), request bodies
/// NOT captured, slow logging off (so only statuses decide).
fn settings() -> loggier_core::http::CaptureSettings {
    loggier_core::http::CaptureSettings::builder()
        .capture_request_body(false)
        .log_slow_requests(false)
        .build()
        .expect("valid settings")
}

/// A client whose only sink is the NDJSON file in `dir`.
fn file_client(dir: &Path, service: &str) -> loggier_core::Loggier {
    loggier_core::Loggier::builder()
        .service_name(service)
        .data_dir(dir)
        .flush_interval(Duration::from_millis(20))
        .build()
        .expect("client builds")
}

/// Sends the six requests of the comparison and returns the request ids by name; the
/// last one (`plain-401`) is recorded.
async fn drive(base: &str, label: &str) -> Vec<(String, String)> {
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("reqwest client");
    let mut ids = Vec::new();
    for route in ["tracked", "plain"] {
        for code in [200u16, 404, 401] {
            let id = format!("{label}-{route}-{code}");
            let resp = http
                .post(format!("{base}/{route}/{code}"))
                .header("x-request-id", &id)
                .header("content-type", "application/json")
                .body(BODY)
                .send()
                .await
                .expect("request succeeds");
            assert_eq!(resp.status().as_u16(), code, "{id}");
            assert_eq!(resp.headers()["x-request-id"], id.as_str());
            let text = resp.text().await.expect("body");
            assert_eq!(text, format!(r#"{{"status":{code}}}"#));
            ids.push((format!("{route}-{code}"), id));
        }
    }
    ids
}

/// Every record in the NDJSON file once the record of `last_id` (the last request
/// sent, one that is recorded) is there: records reach the file in the order they were
/// logged, so any record an earlier request produced is there too.
async fn file_records(
    client: &loggier_core::Loggier,
    dir: &Path,
    last_id: &str,
) -> (String, Vec<Value>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(client.flush_async(Duration::from_secs(5)).await, "flushed");
        let text = std::fs::read_to_string(dir.join("loggier.ndjson")).unwrap_or_default();
        let records: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("valid JSON line"))
            .collect();
        if records
            .iter()
            .any(|r| r["context"]["request_id"] == last_id)
        {
            return (text, records);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no record for {last_id} within 10 s; file:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The assertions shared by both frameworks.
fn check(text: &str, records: &[Value], ids: &[(String, String)]) {
    let id = |name: &str| {
        ids.iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| id.as_str())
            .expect("known request")
    };
    let tx_of = |name: &str| -> Option<&Value> {
        let id = id(name);
        let mut found = records
            .iter()
            .filter(|r| r["logger"] == "http" && r["context"]["request_id"] == id);
        let first = found.next();
        assert!(found.next().is_none(), "one record per request: {name}");
        first
    };

    // statuses = [200, 404] on the tracked route: its 200 and 404 are recorded,
    // its 401 is not (the endpoint's list replaces the default set).
    let r = tx_of("tracked-200").expect("tracked 200 recorded");
    assert_eq!(r["level"], "INFO");
    assert_eq!(r["tags"], serde_json::json!(["orders", "critical"]));
    let tx = &r["context"]["transaction"];
    // capture_request_body = true, read by an extractor before the handler started.
    assert_eq!(tx["request"]["body"]["content"]["sku"], "A-1", "{r}");
    assert_eq!(tx["request"]["body"]["content"]["token"], "[FILTERED]");
    // capture_response_body = true: a 2xx body is kept too.
    assert_eq!(tx["response"]["body"]["content"]["status"], 200, "{r}");
    let r = tx_of("tracked-404").expect("tracked 404 recorded");
    assert_eq!(r["level"], "WARNING");
    assert_eq!(r["tags"], serde_json::json!(["orders", "critical"]));
    assert!(
        tx_of("tracked-401").is_none(),
        "401 not in the endpoint's statuses"
    );

    // The plain route keeps the middleware's settings: 401 recorded without tags or
    // request body; 200 and 404 not recorded.
    let r = tx_of("plain-401").expect("plain 401 recorded");
    assert!(r.get("tags").is_none(), "{r}");
    assert!(
        r["context"]["transaction"]["request"].get("body").is_none(),
        "{r}"
    );
    assert!(tx_of("plain-200").is_none());
    assert!(tx_of("plain-404").is_none());

    // Inside the middleware the attribute records nothing of its own.
    assert!(records.iter().all(|r| r["logger"] != "track_endpoint"));
    assert!(!text.contains("tok-e2e-secret"), "secret leaked");
}

mod axum_app {
    use axum::Json;
    use axum::body::Bytes;
    use axum::extract::Path;
    use axum::http::StatusCode;
    use loggier_axum::track_endpoint;

    fn answer(code: u16, body: &Bytes) -> (StatusCode, Json<serde_json::Value>) {
        assert_eq!(
            &body[..],
            super::BODY.as_bytes(),
            "handler sees the whole body"
        );
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
        (status, Json(serde_json::json!({ "status": code })))
    }

    #[track_endpoint(
        tags = ["orders", "critical"],
        statuses = [200, 404],
        capture_request_body = true,
        capture_response_body = true
    )]
    pub(super) async fn tracked(
        Path(code): Path<u16>,
        body: Bytes,
    ) -> (StatusCode, Json<serde_json::Value>) {
        answer(code, &body)
    }

    pub(super) async fn plain(
        Path(code): Path<u16>,
        body: Bytes,
    ) -> (StatusCode, Json<serde_json::Value>) {
        answer(code, &body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_endpoint_changes_only_its_route_on_axum() {
    use loggier_axum::LoggierRouterExt;

    let dir = tempfile::tempdir().expect("tempdir");
    let client = file_client(dir.path(), "e2e-axum");
    let app = axum::Router::new()
        .route("/tracked/{code}", axum::routing::post(axum_app::tracked))
        .route("/plain/{code}", axum::routing::post(axum_app::plain))
        .with_loggier_settings(client.clone(), settings());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let ids = drive(&format!("http://{addr}"), "axum").await;
    let (text, records) = file_records(&client, dir.path(), &ids[5].1).await;
    check(&text, &records, &ids);
    client.shutdown(Duration::from_secs(2));
}

mod actix_app {
    use actix_web::{HttpResponse, post, web};
    use loggier_actix::track_endpoint;

    fn answer(code: u16, body: &web::Bytes) -> HttpResponse {
        assert_eq!(
            &body[..],
            super::BODY.as_bytes(),
            "handler sees the whole body"
        );
        let status = actix_web::http::StatusCode::from_u16(code)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
        HttpResponse::build(status).json(serde_json::json!({ "status": code }))
    }

    // actix's route macro first; the attribute below it applies to the handler fn.
    #[post("/tracked/{code}")]
    #[track_endpoint(
        tags = ["orders", "critical"],
        statuses = [200, 404],
        capture_request_body = true,
        capture_response_body = true
    )]
    pub(super) async fn tracked(code: web::Path<u16>, body: web::Bytes) -> HttpResponse {
        answer(*code, &body)
    }

    #[post("/plain/{code}")]
    pub(super) async fn plain(code: web::Path<u16>, body: web::Bytes) -> HttpResponse {
        answer(*code, &body)
    }
}

#[actix_web::test]
async fn track_endpoint_changes_only_its_route_on_actix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = file_client(dir.path(), "e2e-actix");
    let settings = std::sync::Arc::new(settings());
    let app_client = client.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .wrap(loggier_actix::Loggier::with_settings(
                app_client.clone(),
                settings.clone(),
            ))
            .service(actix_app::tracked)
            .service(actix_app::plain)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .bind(("127.0.0.1", 0))
    .expect("bind 127.0.0.1:0");
    let base = format!("http://{}", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);

    let ids = drive(&base, "actix").await;
    let (text, records) = file_records(&client, dir.path(), &ids[5].1).await;
    check(&text, &records, &ids);
    handle.stop(true).await;
    client.shutdown(Duration::from_secs(2));
}
