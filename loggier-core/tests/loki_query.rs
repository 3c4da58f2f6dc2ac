//! Loki query client against a loopback server answering with the response shapes
//! of Loki's HTTP API reference (the documented examples), and with Loki's error
//! bodies.
#![cfg(feature = "loki")]

mod receiver;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use loggier_core::ErrorKind;
use loggier_core::sink::loki::{Direction, LokiClient, LokiClientBuilder, QueryData};
use receiver::{Receiver, Reply};

fn client(rx: &Receiver) -> LokiClient {
    LokiClient::builder(rx.url())
        .tenant_id("team-a|team-b")
        .bearer_token("q-token")
        .build()
        .expect("valid config")
}

#[tokio::test]
async fn ready_ok_and_not_ready_carries_lokis_message() {
    let rx = Receiver::start().await;
    let loki = client(&rx);
    rx.reply(Reply::status(200).body("ready\n"));
    loki.ready().await.expect("ready");
    rx.reply(Reply::status(503).body("Ingester not ready: waiting for 15s after being ready"));
    let err = loki.ready().await.expect_err("not ready");
    assert_eq!(err.kind(), ErrorKind::Network);
    assert!(
        err.to_string()
            .contains("http 503: Ingester not ready: waiting for 15s after being ready"),
        "{err}"
    );
    let reqs = rx.wait_for(2).await;
    assert!(
        reqs.iter()
            .all(|c| c.path() == "/ready" && c.method == "GET")
    );
    assert_eq!(reqs[0].header("x-scope-orgid"), Some("team-a|team-b"));
    assert_eq!(reqs[0].header("authorization"), Some("Bearer q-token"));
}

#[tokio::test]
async fn labels_and_label_values() {
    let rx = Receiver::start().await;
    let loki = client(&rx);
    rx.reply(Reply::status(200).body(r#"{"status":"success","data":["foo","bar","baz"]}"#));
    assert_eq!(loki.labels().await.expect("labels"), ["foo", "bar", "baz"]);
    rx.reply(Reply::status(200).body(r#"{"status":"success","data":["cat","dog","axolotl"]}"#));
    assert_eq!(
        loki.label_values("foo").await.expect("values"),
        ["cat", "dog", "axolotl"]
    );
    // Loki leaves `data` out when it knows no labels.
    rx.reply(Reply::status(200).body(r#"{"status":"success"}"#));
    assert!(loki.labels().await.expect("empty").is_empty());
    let reqs = rx.wait_for(3).await;
    assert_eq!(reqs[0].path(), "/loki/api/v1/labels");
    assert_eq!(reqs[1].path(), "/loki/api/v1/label/foo/values");
    assert_eq!(reqs[1].header("x-scope-orgid"), Some("team-a|team-b"));
}

#[tokio::test]
async fn query_range_streams_are_typed_and_parameters_sent() {
    let rx = Receiver::start().await;
    let loki = client(&rx);
    // Loki docs, "Query logs within a range of time", streams example.
    rx.reply(Reply::status(200).body(
        r#"{
          "status": "success",
          "data": {
            "resultType": "streams",
            "result": [
              {
                "stream": {"filename": "/var/log/myproject.log", "job": "varlogs", "level": "info"},
                "values": [
                  ["1569266497240578000", "foo"],
                  ["1569266492548155000", "bar"]
                ]
              }
            ],
            "stats": {"summary": {"execTime": 0.01, "totalLinesProcessed": 2}}
          }
        }"#,
    ));
    let start = UNIX_EPOCH + Duration::from_nanos(1_569_266_400_000_000_000);
    let end = UNIX_EPOCH + Duration::from_nanos(1_569_266_500_000_000_001);
    let logql = r#"{job="varlogs"} |= "error" | trace_id="abc""#;
    let res = loki
        .query_range(logql, start, end, 50, Direction::Forward)
        .await
        .expect("query");
    let QueryData::Streams(streams) = &res.data else {
        panic!("expected streams, got {:?}", res.data)
    };
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].labels["job"], "varlogs");
    assert_eq!(streams[0].labels["filename"], "/var/log/myproject.log");
    let entries: Vec<(u64, &str)> = res
        .data
        .entries()
        .map(|e| (e.timestamp_ns, e.line.as_str()))
        .collect();
    assert_eq!(
        entries,
        [
            (1_569_266_497_240_578_000, "foo"),
            (1_569_266_492_548_155_000, "bar")
        ]
    );
    assert_eq!(res.stats["summary"]["totalLinesProcessed"], 2);

    let c = &rx.wait_for(1).await[0];
    assert_eq!(c.path(), "/loki/api/v1/query_range");
    let q = c.query();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("query"), Some(logql));
    assert_eq!(get("start"), Some("1569266400000000000"));
    assert_eq!(get("end"), Some("1569266500000000001"));
    assert_eq!(get("limit"), Some("50"));
    assert_eq!(get("direction"), Some("forward"));
    assert_eq!(
        c.header("x-loki-response-encoding-flags"),
        Some("categorize-labels")
    );
}

#[tokio::test]
async fn query_range_matrix_and_categorized_metadata() {
    let rx = Receiver::start().await;
    let loki = client(&rx);
    // Loki docs, matrix example.
    rx.reply(Reply::status(200).body(
        r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"level":"info"},"values":[[1588889221,"137.95"],[1588889221,"467.115"]]},
            {"metric":{"level":"warn"},"values":[[1588889221.5,"NaN"]]}
        ],"stats":{}}}"#,
    ));
    let now = SystemTime::now();
    let res = loki
        .query_range(
            r#"sum(rate({job="varlogs"}[10m])) by (level)"#,
            now - Duration::from_secs(3600),
            now,
            100,
            Direction::Backward,
        )
        .await
        .expect("matrix");
    let QueryData::Matrix(series) = &res.data else {
        panic!("expected a matrix, got {:?}", res.data)
    };
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].metric["level"], "info");
    assert_eq!(series[0].values[1].timestamp_secs, 1_588_889_221.0);
    assert_eq!(series[0].values[1].value_f64(), Some(467.115));
    assert_eq!(series[1].values[0].timestamp_secs, 1_588_889_221.5);
    assert!(
        series[1].values[0]
            .value_f64()
            .expect("NaN parses")
            .is_nan()
    );
    assert!(res.data.streams().is_empty());

    // Loki 3 with categorize-labels: per-entry structured metadata and parsed labels.
    rx.reply(Reply::status(200).body(
        r#"{"status":"success","data":{"resultType":"streams","encodingFlags":["categorize-labels"],"result":[
            {"stream":{"service":"checkout","level":"error"},"values":[
                ["1741520489000001000","{\"message\":\"boom\"}",{"structuredMetadata":{"trace_id":"4bf9","request_id":"req-1"},"parsed":{"message":"boom"}}],
                ["1741520489000002000","plain"]
            ]}
        ]}}"#,
    ));
    let res = loki
        .query_range(
            r#"{service="checkout"} | json"#,
            now - Duration::from_secs(60),
            now,
            10,
            Direction::Backward,
        )
        .await
        .expect("streams");
    let e: Vec<_> = res.data.entries().collect();
    assert_eq!(e[0].structured_metadata["trace_id"], "4bf9");
    assert_eq!(e[0].structured_metadata["request_id"], "req-1");
    assert_eq!(e[0].parsed["message"], "boom");
    assert!(e[1].structured_metadata.is_empty());
    let c = &rx.wait_for(2).await[0];
    let direction = c.query().into_iter().find(|(k, _)| k == "direction");
    assert_eq!(direction.map(|(_, v)| v), Some("backward".to_string()));
}

#[tokio::test]
async fn errors_carry_lokis_message() {
    let rx = Receiver::start().await;
    let loki = client(&rx);
    let now = SystemTime::now();
    let hour_ago = now - Duration::from_secs(3600);

    // Loki writes query errors as text/plain.
    rx.reply(
        Reply::status(400)
            .header("content-type", "text/plain; charset=utf-8")
            .body("parse error at line 1, col 1: syntax error: unexpected IDENTIFIER"),
    );
    let err = loki
        .query_range("job=varlogs", hour_ago, now, 10, Direction::Backward)
        .await
        .expect_err("bad logql");
    assert_eq!(err.kind(), ErrorKind::Rejected);
    assert!(
        err.to_string().contains(
            "http 400: parse error at line 1, col 1: syntax error: unexpected IDENTIFIER"
        ),
        "{err}"
    );

    // Prometheus-style JSON error bodies (gateways, older query frontends).
    rx.reply(Reply::status(422).body(
        r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"limit\""}"#,
    ));
    let err = loki.labels().await.expect_err("json error");
    assert_eq!(err.kind(), ErrorKind::Rejected);
    assert!(
        err.to_string()
            .contains("http 422: invalid parameter \"limit\""),
        "{err}"
    );

    // 200 with "status": "error".
    rx.reply(Reply::status(200).body(
        r#"{"status":"error","errorType":"execution","error":"max entries limit per query exceeded"}"#,
    ));
    let err = loki.labels().await.expect_err("status error");
    assert!(
        err.to_string().contains("(execution): max entries limit"),
        "{err}"
    );

    rx.reply(Reply::status(500).body("rpc error: code = Unavailable"));
    let err = loki.label_values("job").await.expect_err("5xx");
    assert_eq!(err.kind(), ErrorKind::Network);
    assert!(
        err.to_string().contains("rpc error: code = Unavailable"),
        "{err}"
    );

    rx.reply(Reply::status(200).body("<html>proxy login</html>"));
    let err = loki.labels().await.expect_err("not json");
    assert_eq!(err.kind(), ErrorKind::Network);
    assert!(err.to_string().contains("proxy login"), "{err}");

    rx.reply(
        Reply::status(200)
            .body(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#),
    );
    let err = loki
        .query_range(
            "sum(rate({a=\"b\"}[1m]))",
            hour_ago,
            now,
            10,
            Direction::Backward,
        )
        .await
        .expect_err("vector is not a range result");
    assert!(
        err.to_string()
            .contains("unsupported resultType \"vector\""),
        "{err}"
    );
}

#[tokio::test]
async fn unreachable_loki_is_a_network_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let loki = LokiClient::builder(format!("http://127.0.0.1:{port}"))
        .timeout(Duration::from_secs(2))
        .build()
        .expect("valid");
    let err = loki.ready().await.expect_err("nobody listens");
    assert_eq!(err.kind(), ErrorKind::Network);
    assert!(err.to_string().contains("loki request failed"), "{err}");
}

#[test]
fn client_from_env() {
    let env = |k: &str| match k {
        "LOKI_URL" => Some("http://127.0.0.1:3100/loki/api/v1/push".to_string()),
        "LOKI_TENANT_ID" => Some("a|b".to_string()),
        _ => None,
    };
    let loki = LokiClientBuilder::from_env_with(env)
        .expect("env")
        .build()
        .expect("multi-tenant query is valid");
    assert_eq!(loki.base_url(), "http://127.0.0.1:3100");
    let err = LokiClientBuilder::from_env_with(|_| None).expect_err("no url");
    assert_eq!(err.setting(), "LOKI_URL");
}
