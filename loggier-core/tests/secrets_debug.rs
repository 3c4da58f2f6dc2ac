//! Issue 9, item 10: no type that holds a credential prints it in `Debug` output —
//! builders and built sinks of the HTTP ingest, Loki (push and query), Vector and OTLP
//! sinks, and the shared endpoint options. Each is formatted with `{:?}` and `{:#?}`
//! and the secret must not appear.
#![cfg(all(
    feature = "http-ingest",
    feature = "loki",
    feature = "vector",
    feature = "otlp"
))]

use std::fmt::Debug;

use loggier_core::sink::endpoint::EndpointOptions;
use loggier_core::sink::loki::LokiClient;
use loggier_core::{HttpSink, LokiSink, OtlpSink, VectorSink};

const KEY: &str = "sekr1t-api-key";
const PASSWORD: &str = "pa55-w0rd-xyz";
const TOKEN: &str = "bearer-t0ken-abc";
const HEADER: &str = "hdr-v4lue-qrs";

fn assert_hidden(what: &str, value: &impl Debug) {
    for text in [format!("{value:?}"), format!("{value:#?}")] {
        for secret in [KEY, PASSWORD, TOKEN, HEADER] {
            assert!(
                !text.contains(secret),
                "{what} prints the secret {secret:?} in Debug: {text}"
            );
        }
    }
}

#[test]
fn item10_http_ingest_builder_and_sink_hide_the_api_key() {
    let b = HttpSink::builder("http://127.0.0.1:9/ingest").api_key(KEY);
    assert_hidden("HttpSinkBuilder", &b);
    assert_hidden("HttpSink", &b.build().expect("build"));
    let b = HttpSink::builder("http://127.0.0.1:9/ingest")
        .api_key(KEY)
        .header("x-extra", HEADER);
    assert_hidden("HttpSinkBuilder with header", &b);
    assert_hidden("HttpSink with header", &b.build().expect("build"));
}

#[test]
fn item10_loki_push_and_query_hide_passwords_and_tokens() {
    let b = LokiSink::builder("http://127.0.0.1:3100")
        .tenant_id("team-a")
        .basic_auth("loki-user", PASSWORD)
        .header("x-proxy-key", HEADER);
    assert_hidden("LokiSinkBuilder (basic)", &b);
    assert_hidden("LokiSink (basic)", &b.build().expect("build"));
    let b = LokiSink::builder("http://127.0.0.1:3100").bearer_token(TOKEN);
    assert_hidden("LokiSinkBuilder (bearer)", &b);
    assert_hidden("LokiSink (bearer)", &b.build().expect("build"));

    let b = LokiClient::builder("http://127.0.0.1:3100")
        .basic_auth("loki-user", PASSWORD)
        .header("x-proxy-key", HEADER);
    assert_hidden("LokiClientBuilder (basic)", &b);
    assert_hidden("LokiClient (basic)", &b.build().expect("build"));
    let b = LokiClient::builder("http://127.0.0.1:3100").bearer_token(TOKEN);
    assert_hidden("LokiClientBuilder (bearer)", &b);
    assert_hidden("LokiClient (bearer)", &b.build().expect("build"));

    let env = |k: &str| match k {
        "LOKI_URL" => Some("http://127.0.0.1:3100".to_string()),
        "LOKI_USERNAME" => Some("u".to_string()),
        "LOKI_PASSWORD" => Some(PASSWORD.to_string()),
        _ => None,
    };
    let b = loggier_core::LokiSinkBuilder::from_env_with(env).expect("env");
    assert_hidden("LokiSinkBuilder from env", &b);
}

#[test]
fn item10_vector_hides_passwords_and_tokens() {
    let b = VectorSink::builder("http://127.0.0.1:8080/")
        .project("p")
        .table("t")
        .basic_auth("vector", PASSWORD)
        .header("x-proxy-key", HEADER);
    assert_hidden("VectorSinkBuilder (basic)", &b);
    assert_hidden("VectorSink (basic)", &b.build().expect("build"));
    let b = VectorSink::builder("http://127.0.0.1:8080/")
        .project("p")
        .table("t")
        .bearer_token(TOKEN);
    assert_hidden("VectorSinkBuilder (bearer)", &b);
    assert_hidden("VectorSink (bearer)", &b.build().expect("build"));
}

#[test]
fn item10_otlp_hides_header_values() {
    let b = OtlpSink::builder()
        .endpoint("http://127.0.0.1:4318")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("x-api-key", KEY);
    assert_hidden("OtlpSinkBuilder", &b);
    assert_hidden("OtlpSink", &b.build().expect("build"));
    let b = OtlpSink::builder().endpoint(format!("https://user:{PASSWORD}@otel.example.com"));
    assert_hidden("OtlpSinkBuilder (url userinfo)", &b);
    assert_hidden("OtlpSink (url userinfo)", &b.build().expect("build"));
}

#[test]
fn item10_transport_shows_header_names_only() {
    let mut headers = reqwest::header::HeaderMap::new();
    // Not marked sensitive by the caller: still hidden.
    headers.insert(
        "authorization",
        reqwest::header::HeaderValue::from_str(&format!("Bearer {TOKEN}")).expect("hv"),
    );
    headers.insert("x-api-key", reqwest::header::HeaderValue::from_static(KEY));
    let t = loggier_core::sink::HttpTransport::new(std::time::Duration::from_secs(1), headers)
        .expect("transport");
    assert_hidden("HttpTransport", &t);
    assert!(format!("{t:?}").contains("x-api-key"));
}

#[test]
fn item10_endpoint_options_hide_credentials_including_url_userinfo() {
    let o = EndpointOptions::new("http://127.0.0.1:3100")
        .basic_auth("user", PASSWORD)
        .header("x-key", HEADER)
        .tenant("team-a");
    assert_hidden("EndpointOptions (basic)", &o);
    assert_hidden(
        "EndpointOptions (bearer)",
        &EndpointOptions::new("http://127.0.0.1:3100").bearer_token(TOKEN),
    );
    // Credentials written into the URL are credentials too.
    let o = EndpointOptions::new(format!("https://user:{PASSWORD}@logs.example.com/"));
    assert_hidden("EndpointOptions (url userinfo)", &o);
    let b = LokiSink::builder(format!("https://user:{PASSWORD}@logs.example.com/"));
    assert_hidden("LokiSinkBuilder (url userinfo)", &b);
    let s = b.build().expect("userinfo becomes basic auth");
    assert_hidden("LokiSink (url userinfo)", &s);
    assert_eq!(s.push_url(), "https://logs.example.com/loki/api/v1/push");
}

#[test]
fn item10_endpoint_options_are_shared_by_every_network_builder() {
    let opts = EndpointOptions::new("http://127.0.0.1:3100")
        .bearer_token(TOKEN)
        .timeout(std::time::Duration::from_millis(1500));
    assert_eq!(opts.url(), "http://127.0.0.1:3100");
    assert_eq!(
        opts.request_timeout(),
        std::time::Duration::from_millis(1500)
    );
    let loki = LokiSink::builder("http://ignored:1")
        .endpoint(opts.clone())
        .build()
        .expect("loki");
    assert_eq!(loki.push_url(), "http://127.0.0.1:3100/loki/api/v1/push");
    let client = LokiClient::builder("http://ignored:1")
        .endpoint(opts.clone())
        .build()
        .expect("query");
    assert_eq!(client.base_url(), "http://127.0.0.1:3100");
    let vector = VectorSink::builder("http://ignored:1")
        .endpoint(opts.clone())
        .project("p")
        .table("t")
        .build()
        .expect("vector");
    assert_eq!(vector.url(), "http://127.0.0.1:3100/");
    let ingest = HttpSink::builder("http://ignored:1")
        .endpoint(opts)
        .build()
        .expect("ingest");
    assert_eq!(ingest.url(), "http://127.0.0.1:3100/");

    // One validation, each sink's setting names.
    let err = HttpSink::builder("ftp://x/").build().expect_err("scheme");
    assert_eq!(err.setting(), "api_url");
    let err = LokiSink::builder("ftp://x/").build().expect_err("scheme");
    assert_eq!(err.setting(), "loki_url");
    let err = VectorSink::builder("ftp://x/")
        .project("p")
        .table("t")
        .build()
        .expect_err("scheme");
    assert_eq!(err.setting(), "vector_url");
    let err = HttpSink::builder("http://x/")
        .header("bad header", "v")
        .build()
        .expect_err("header name");
    assert!(!err.to_string().contains(HEADER));
    let err = VectorSink::builder("http://x/")
        .endpoint(EndpointOptions::new("http://x/").tenant("t"))
        .project("p")
        .table("t")
        .build()
        .expect_err("vector has no tenant header");
    assert_eq!(err.setting(), "vector_tenant");
}
