//! The compact caller-side event (scalar fields kept as they are until the worker
//! builds the record) reaches the file sink byte for byte as the JSON a user
//! expects: every scalar type, nested values, the overwrite order global ⊕ scope ⊕
//! call, and masking of keys and text.
#![cfg(feature = "file")]

use std::time::Duration;

use loggier_core::context::Scope;
use loggier_core::{FileSink, Level, Loggier, fields, info, warning};
use serde_json::json;

/// The client and the path of its file sink.
fn client(dir: &std::path::Path) -> (Loggier, std::path::PathBuf) {
    let path = dir.join("events.ndjson");
    let log = Loggier::builder()
        .service_name("events")
        .sensitive_fields(["pin"])
        .sink(FileSink::builder(&path).build().expect("file sink"))
        .build()
        .expect("valid config");
    (log, path)
}

/// The lines the sink wrote, once everything is flushed.
fn lines(log: &Loggier, path: &std::path::Path) -> Vec<String> {
    assert!(log.flush(Duration::from_secs(10)), "{:?}", log.stats());
    std::fs::read_to_string(path)
        .expect("read the file")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The raw text of the line's `"context"` object (the last member of these lines).
fn context_text(line: &str) -> &str {
    let (_, rest) = line
        .split_once(r#","context":"#)
        .unwrap_or_else(|| panic!("no context in {line}"));
    rest.strip_suffix('}').expect("line ends the record")
}

#[derive(serde::Serialize)]
enum Plan {
    Pro,
}

#[derive(serde::Serialize)]
struct Card {
    brand: &'static str,
    cvv: u16,
}

#[test]
fn every_scalar_and_nested_value_is_written_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, path) = client(dir.path());
    let name = String::from("a string longer than twenty-two bytes");
    info!(
        log,
        i = -7i8,
        big = u64::MAX,
        min = i64::MIN,
        f = 1.5f64,
        // As `serde_json::to_value` has always given it: the f32 widened to f64.
        f32v = 1.1f32,
        nan = f64::NAN,
        yes = true,
        none = None::<u8>,
        unit = (),
        ch = 'é',
        short = "/orders/{id}",
        long = name,
        plan = Plan::Pro,
        list = vec![1, 2],
        nested = json!({"a": {"b": [null, "x"]}}),
        "all the types"
    );
    let out = lines(&log, &path);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        context_text(&out[0]),
        concat!(
            r#"{"i":-7,"big":18446744073709551615,"min":-9223372036854775808,"f":1.5,"#,
            r#""f32v":1.100000023841858,"nan":null,"yes":true,"none":null,"unit":null,"ch":"é","#,
            r#""short":"/orders/{id}","long":"a string longer than twenty-two bytes","#,
            r#""plan":"Pro","list":[1,2],"nested":{"a":{"b":[null,"x"]}}}"#
        )
    );
    let v: serde_json::Value = serde_json::from_str(&out[0]).expect("json line");
    assert_eq!(v["message"], "all the types");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["logger"], module_path!());
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn call_fields_win_over_scope_over_global_and_keep_first_positions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, path) = client(dir.path());
    log.update_global(fields! { "region" => "eu", "user" => "global", "g" => 1 });
    {
        let _scope = Scope::new()
            .field("user", "scope")
            .field("s", 2)
            .route("/orders/{id}")
            .request_id("req-1")
            .enter();
        info!(log, user = "call", c = 3, region = "us", "inside");
        // Builder API with owned keys, a repeated key and a whole map.
        log.event(Level::Info, "builder")
            .field(String::from("c"), 4)
            .field("c", 5)
            .fields(fields! { "route" => "/override", "x" => [1, 2] })
            .tag("t1")
            .emit();
    }
    info!(log, user = "call", "outside");
    let out = lines(&log, &path);
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(
        context_text(&out[0]),
        r#"{"region":"us","user":"call","g":1,"s":2,"route":"/orders/{id}","c":3,"request_id":"req-1"}"#
    );
    assert_eq!(
        context_text(&out[1]),
        r#"{"region":"eu","user":"scope","g":1,"s":2,"route":"/override","c":5,"x":[1,2],"request_id":"req-1"}"#
    );
    assert!(out[1].contains(r#""tags":["t1"]"#), "{}", out[1]);
    assert_eq!(
        context_text(&out[2]),
        r#"{"region":"eu","user":"call","g":1}"#
    );
    log.shutdown(Duration::from_secs(5));
}

#[test]
fn sensitive_fields_are_masked_whatever_path_they_take() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, path) = client(dir.path());
    log.update_global(fields! { "api_key" => "g-secret" });
    let _scope = Scope::new().field("sessionId", "s-secret").enter();
    // Twice with the same static keys: the worker remembers their verdict.
    for round in 0..2 {
        warning!(
            log,
            password = "hunter2",
            pin = 1234,
            card = Card {
                brand: "visa",
                cvv: 123
            },
            url = "https://x/cb?token=t0k&page=2",
            plain = "nothing to hide",
            "login failed for user=bob password={} round {}",
            "hunter2",
            round
        );
    }
    log.event(Level::Warning, "owned keys")
        .field(String::from("db_password"), "owned-secret")
        .field("note", r#"{"token":"json-secret","ok":1}"#)
        .emit();
    let out = lines(&log, &path);
    assert_eq!(out.len(), 3, "{out:?}");
    for line in &out[..2] {
        assert_eq!(
            context_text(line),
            concat!(
                r#"{"api_key":"[FILTERED]","sessionId":"[FILTERED]","password":"[FILTERED]","#,
                r#""pin":"[FILTERED]","card":{"brand":"visa","cvv":"[FILTERED]"},"#,
                r#""url":"https://x/cb?token=[FILTERED]&page=2","plain":"nothing to hide"}"#
            )
        );
        assert!(
            line.contains("user=bob password=[FILTERED] round"),
            "{line}"
        );
    }
    assert_eq!(
        context_text(&out[2]),
        r#"{"api_key":"[FILTERED]","sessionId":"[FILTERED]","db_password":"[FILTERED]","note":"{\"token\":\"[FILTERED]\",\"ok\":1}"}"#
    );
    for secret in [
        "hunter2",
        "g-secret",
        "s-secret",
        "t0k",
        "owned-secret",
        "json-secret",
        "1234",
    ] {
        assert!(
            out.iter().all(|l| !l.contains(secret)),
            "{secret} leaked: {out:?}"
        );
    }
    log.shutdown(Duration::from_secs(5));
}

/// `line` with its timestamp and host (the parts that differ per run and machine)
/// replaced by `<ts>` and `<host>`, after checking their shape.
fn pinnable(line: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    let ts = v["timestamp"].as_str().expect("a timestamp");
    assert_eq!(ts.len(), 27, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
    let mut out = line.replacen(ts, "<ts>", 1);
    if let Some(host) = v.get("host") {
        let host = serde_json::to_string(host).expect("host as JSON");
        out = out.replacen(&format!(r#","host":{host}"#), r#","host":"<host>""#, 1);
    }
    out
}

#[test]
fn whole_lines_are_written_byte_for_byte() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, path) = client(dir.path());
    // No inherited context, four distinct call fields, a secret in a field and in
    // the message, a string that needs escapes.
    info!(
        log,
        user_id = 7u64,
        route = "/orders/{id}",
        pin = 1234,
        note = "tab\there \"q\" é",
        "request handled token={}",
        "abc"
    );
    // A repeated key without inherited context: one entry, first position, last value.
    info!(log, a = 1, b = 2, a = 3, "dup");
    // Five distinct fields.
    info!(log, a = 1, b = 2, c = 3, d = 4, e = 5, "five");
    log.update_global(fields! { "region" => "eu", "api_key" => "k" });
    {
        let _scope = Scope::new()
            .field("tenant", "acme")
            .request_id("req-7")
            .enter();
        warning!(log, region = "us", status = 503, "upstream: down");
    }
    let out: Vec<String> = lines(&log, &path).iter().map(|l| pinnable(l)).collect();
    let head = |level: &str, message: &str| {
        format!(
            r#"{{"timestamp":"<ts>","level":"{level}","message":{message},"logger":"event_fields","service":"events","environment":"development"{}"#,
            if out[0].contains(r#""host":"<host>""#) {
                r#","host":"<host>""#
            } else {
                ""
            }
        )
    };
    assert_eq!(
        out,
        [
            head("INFO", r#""request handled token=[FILTERED]""#)
                + r#","context":{"user_id":7,"route":"/orders/{id}","pin":"[FILTERED]","note":"tab\there \"q\" é"}}"#,
            head("INFO", r#""dup""#) + r#","context":{"a":3,"b":2}}"#,
            head("INFO", r#""five""#) + r#","context":{"a":1,"b":2,"c":3,"d":4,"e":5}}"#,
            head("WARNING", r#""upstream: down""#)
                + r#","context":{"region":"us","api_key":"[FILTERED]","tenant":"acme","status":503,"request_id":"req-7"}}"#,
        ]
    );
    log.shutdown(Duration::from_secs(5));
}
