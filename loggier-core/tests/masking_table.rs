//! Issue 9, item 9: no secret reaches a sink, whatever the key's spelling and wherever
//! it sits. Every case drives a real request through the capture policy every
//! adapter uses (`CaptureSettings` → `Exchange` → `BodyCapture` → record) or a real
//! record through the client, into the real file sink, and then greps the bytes the
//! sink wrote for the secret. Each secret value starts with `SECRET`, so a value cut
//! short by `max_body_size` is caught too; each case also carries a harmless value
//! (`KEEP<n>`) under an innocent key that must survive, so masking everything would
//! not pass.
#![cfg(all(feature = "http-capture", feature = "file"))]

use std::sync::Arc;
use std::time::Duration;

use loggier_core::http::{CaptureSettings, Exchange, RequestView, header_entries};
use loggier_core::{Level, Loggier, Record};
use serde_json::json;

/// Key spellings that must be treated as secrets (issue 9's list and relatives).
const KEYS: &[&str] = &[
    "cardNumber",
    "card-number",
    "card_number",
    "CreditCard",
    "credit_card",
    "privateKey",
    "private-key",
    "cvv2",
    "session_id",
    "X-Session-Id",
    "sessionId",
    "jsessionid",
    "JSESSIONID",
    "pwd",
    "userPwd",
    "passphrase",
    "cookies",
    "apiKey",
    "x-api-key",
    "refresh_token",
    "clientSecret",
    "PASSWORD",
    "db-password",
    "Authorization",
];

/// Where the secret sits.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// A request header named by the key.
    Header,
    /// A query parameter.
    Query,
    /// A member three levels deep in an `application/json` request body.
    JsonDeep,
    /// An `application/x-www-form-urlencoded` request body.
    Form,
    /// A JSON document sent as `text/plain;charset=UTF-8` (browser `fetch` with a
    /// string body).
    TextJson,
    /// A JSON body cut by `max_body_size` inside the secret value.
    TruncatedJson,
    /// A form body cut by `max_body_size` inside the secret value.
    TruncatedForm,
    /// A JSON error response body.
    ResponseJson,
    /// A context field nested in an object inside an array.
    Context,
    /// A `key=value` pair inside a context string (a URL logged as a field).
    ContextUrl,
}

const PLACES: &[Place] = &[
    Place::Header,
    Place::Query,
    Place::JsonDeep,
    Place::Form,
    Place::TextJson,
    Place::TruncatedJson,
    Place::TruncatedForm,
    Place::ResponseJson,
    Place::Context,
    Place::ContextUrl,
];

fn settings(log: &Loggier, max_body: usize) -> Arc<CaptureSettings> {
    Arc::new(
        CaptureSettings::builder()
            .capture_request_body(true)
            .capture_response_body(loggier_core::http::ResponseBodyCapture::All)
            .log_all_requests(true)
            .log_slow_requests(false)
            .max_body_size(max_body)
            .build()
            .expect("settings")
            .with_masker(log.masker().clone()),
    )
}

/// One request through the capture policy: headers, query, request body (with its
/// content type), response status and body.
struct Request<'a> {
    headers: Vec<(&'a str, String)>,
    query: Option<String>,
    body: Option<(&'a str, String)>,
    response: Option<(&'a str, String)>,
    max_body: usize,
}

fn capture(log: &Loggier, n: usize, req: Request<'_>) -> Record {
    let s = settings(log, req.max_body);
    let mut headers = http::HeaderMap::new();
    for (k, v) in &req.headers {
        headers.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(v).expect("header value"),
        );
    }
    headers.insert(
        "x-keep",
        http::HeaderValue::from_str(&format!("KEEP{n}")).expect("hv"),
    );
    let path = format!("/case/{n}");
    let mut x: Exchange = s.begin(&path, &headers).expect("not excluded");
    if let Some((ct, body)) = &req.body {
        let mut c = x
            .request_body_capture(Some(ct.as_bytes()))
            .expect("request body captured");
        // Frames as they would pass: in small pieces.
        for chunk in body.as_bytes().chunks(7) {
            c.push(chunk);
        }
        x.set_request_body(c);
    }
    let status = if req.response.is_some() { 422 } else { 200 };
    let ct = req.response.as_ref().map(|(ct, _)| ct.as_bytes());
    if let Some(mut c) = x.on_response(status, ct) {
        if let Some((_, body)) = &req.response {
            c.push(body.as_bytes());
        }
        x.set_response_body(c);
    }
    let level = x.finish().expect("recorded");
    x.into_record(
        level,
        RequestView {
            method: "POST",
            path: &path,
            query: req.query.as_deref(),
            client_ip: None,
        },
        header_entries(&headers),
        std::iter::empty(),
    )
}

fn case(log: &Loggier, n: usize, key: &str, place: Place) -> Record {
    let secret = format!("SECRET{n:03}VALUE");
    let keep = format!("KEEP{n}");
    let plain = |body: Option<(&'static str, String)>| Request {
        headers: Vec::new(),
        query: None,
        body,
        response: None,
        max_body: 16 * 1024,
    };
    match place {
        Place::Header => capture(
            log,
            n,
            Request {
                headers: vec![(key, secret)],
                ..plain(None)
            },
        ),
        Place::Query => capture(
            log,
            n,
            Request {
                query: Some(format!("author={keep}&{key}={secret}&page=2")),
                ..plain(None)
            },
        ),
        Place::JsonDeep => capture(
            log,
            n,
            plain(Some((
                "application/json",
                json!({"author": keep, "order": {"payment": [{"method": "card", key: secret}]}})
                    .to_string(),
            ))),
        ),
        Place::Form => capture(
            log,
            n,
            plain(Some((
                "application/x-www-form-urlencoded",
                format!("author={keep}&{key}={secret}&remember=on"),
            ))),
        ),
        Place::TextJson => capture(
            log,
            n,
            plain(Some((
                "text/plain;charset=UTF-8",
                json!({"author": keep, "login": {key: secret}}).to_string(),
            ))),
        ),
        Place::TruncatedJson => {
            let body =
                json!({"author": keep, "data": {key: secret}, "pad": "x".repeat(200)}).to_string();
            // Cut 7 bytes into the secret: only `SECRET0` of it is in the copy.
            let cut = body.find("SECRET").expect("secret") + 7;
            capture(
                log,
                n,
                Request {
                    max_body: cut,
                    ..plain(Some(("application/json", body)))
                },
            )
        }
        Place::TruncatedForm => {
            let body = format!("author={keep}&{key}={secret}&pad={}", "x".repeat(200));
            let cut = body.find("SECRET").expect("secret") + 7;
            capture(
                log,
                n,
                Request {
                    max_body: cut,
                    ..plain(Some(("application/x-www-form-urlencoded", body)))
                },
            )
        }
        Place::ResponseJson => capture(
            log,
            n,
            Request {
                response: Some((
                    "application/json",
                    json!({"error": "invalid", "author": keep, "echo": {key: secret}}).to_string(),
                )),
                ..plain(None)
            },
        ),
        Place::Context => Record::new(Level::Info, format!("case {n}"))
            .with_field("author", keep)
            .with_field("user", json!({"cards": [{"last4": "4242", key: secret}]})),
        Place::ContextUrl => Record::new(Level::Info, format!("case {n}"))
            .with_field("author", keep)
            .with_field(
                "callback",
                format!("https://example.com/cb?page=1&{key}={secret}&x=y"),
            ),
    }
}

#[test]
fn item9_no_secret_reaches_the_file_sink_in_any_spelling_or_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .service_name("masking")
        .data_dir(dir.path())
        .build()
        .expect("client");
    let mut n = 0;
    let mut cases = Vec::new();
    for key in KEYS {
        for place in PLACES {
            log.log(case(&log, n, key, *place));
            cases.push((n, *key, *place));
            n += 1;
        }
    }
    assert!(cases.len() >= 40, "{} cases", cases.len());
    assert!(log.flush(Duration::from_secs(10)), "flush");
    let bytes = std::fs::read(dir.path().join("loggier.ndjson")).expect("log file");
    let text = String::from_utf8(bytes).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), cases.len(), "one line per case");

    let mut leaks = Vec::new();
    for (line, (n, key, place)) in lines.iter().zip(&cases) {
        assert!(
            line.contains(&format!("KEEP{n}")),
            "case {n} ({key:?} in {place:?}) lost its harmless value: {line}"
        );
        if line.contains("SECRET") {
            leaks.push(format!("case {n}: {key:?} in {place:?}: {line}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "{} of {} cases leaked a secret:\n{}",
        leaks.len(),
        cases.len(),
        leaks.join("\n")
    );
    log.shutdown(Duration::from_secs(5));
}

/// Keys that only look like secrets stay readable, so records keep their meaning.
#[test]
fn item9_innocent_keys_are_not_masked() {
    let m = loggier_core::mask::Masker::default();
    for k in [
        "author",
        "authority",
        "user_id",
        "username",
        "passenger",
        "compass",
        "classname",
        "session_count",
        "keyboard",
        "primary_key",
        "description",
        "level",
        "route",
    ] {
        assert!(!m.is_sensitive_key(k), "{k} is masked");
    }
    for k in [
        "cardNumber",
        "card-number",
        "card_number",
        "creditCard",
        "privateKey",
        "cvv2",
        "session_id",
        "X-Session-Id",
        "jsessionid",
        "pwd",
        "passphrase",
        "cookies",
    ] {
        assert!(m.is_sensitive_key(k), "{k} is not masked");
    }
}

/// The worker leaves HTTP headers alone only when the capture masked them with a
/// masker of the same keys. Headers captured with another masker (here: settings
/// that were never given the client's masker, so they lack its `sensitive_fields`),
/// and headers changed after the capture masked them, are masked again before the
/// file sink writes them.
#[test]
fn headers_masked_by_another_masker_or_changed_afterwards_are_masked_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Loggier::builder()
        .service_name("masking")
        .data_dir(dir.path())
        .sensitive_fields(["x-tenant-ref"])
        .build()
        .expect("client");
    // Capture settings without `with_masker`: the capture does not know the client's
    // extra key, its masker differs from the worker's.
    let foreign = Arc::new(
        CaptureSettings::builder()
            .log_all_requests(true)
            .log_slow_requests(false)
            .build()
            .expect("settings"),
    );
    let mut headers = http::HeaderMap::new();
    headers.insert("x-tenant-ref", "SECRET-TENANT".parse().expect("hv"));
    headers.insert(
        "referer",
        "https://a.example/?q=KEEP1&token=SECRET-QS"
            .parse()
            .expect("hv"),
    );
    headers.insert("authorization", "Bearer SECRET-AUTH".parse().expect("hv"));
    let record = |settings: &Arc<CaptureSettings>, path: &str| {
        let mut x = settings.begin(path, &headers).expect("not excluded");
        let _ = x.on_response(200, None);
        let level = x.finish().expect("recorded");
        x.into_record(
            level,
            RequestView {
                method: "GET",
                path,
                query: None,
                client_ip: None,
            },
            header_entries(&headers),
            std::iter::empty(),
        )
    };
    let by_foreign = record(&foreign, "/foreign");
    // The capture masked what its own masker knows...
    let tx = by_foreign.http.as_ref().expect("transaction");
    assert_eq!(tx.request.headers.get("authorization"), Some("[FILTERED]"));
    assert_eq!(
        tx.request.headers.get("x-tenant-ref"),
        Some("SECRET-TENANT")
    );
    log.log(by_foreign);

    // Same keys as the client's masker, but a header added after the capture.
    let own = settings(&log, 0);
    let mut changed = record(&own, "/changed");
    let tx = changed.http.as_deref_mut().expect("transaction");
    tx.request
        .headers
        .append("x-api-key", "SECRET-ADDED".to_string());
    tx.request.headers.insert(
        "x-note".to_string(),
        "session=SECRET-NOTE; KEEP2".to_string(),
    );
    log.log(changed);

    // Masked by the capture with the client's masker: left as it is, and as masked.
    log.log(record(&own, "/own"));

    assert!(log.flush(Duration::from_secs(10)), "flush");
    let text = std::fs::read_to_string(dir.path().join("loggier.ndjson")).expect("log file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for line in &lines {
        assert!(!line.contains("SECRET"), "secret leaked: {line}");
        assert!(line.contains("KEEP1"), "harmless value lost: {line}");
    }
    assert!(
        lines[0].contains(r#""x-tenant-ref":"[FILTERED]""#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(r#""x-api-key":"[FILTERED]""#),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("KEEP2"), "{}", lines[1]);
    assert!(
        lines[2].contains(r#""x-tenant-ref":"[FILTERED]""#),
        "{}",
        lines[2]
    );
    log.shutdown(Duration::from_secs(5));
}
