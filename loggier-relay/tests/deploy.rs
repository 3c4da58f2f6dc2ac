//! `deploy/`: the Dockerfile, docker-compose.yml, Loki and Grafana provisioning and
//! the dashboard are parsed (no container engine here) and checked against the
//! relay: every environment variable they set is one the relay reads, and every
//! label and field the dashboard's LogQL selects on is one the Loki sink emits.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use loggier_core::{HttpRequest, HttpTransaction, Level, Record, ServiceInfo, Timing, TimingKind};
use loggier_relay::{RelayConfig, build_pipeline, relay_loki_sink};
use serde_json::Value;
use serde_yaml::Value as Yaml;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `${NAME:-default}` → `default`; `${NAME}` → empty; plain values unchanged.
fn resolve(v: &str) -> String {
    match v.strip_prefix("${").and_then(|r| r.strip_suffix('}')) {
        Some(inner) => inner
            .split_once(":-")
            .map_or(String::new(), |(_, d)| d.to_string()),
        None => v.to_string(),
    }
}

/// Names the relay asks for through its lookup-based readers.
fn looked_up_names() -> BTreeSet<String> {
    let asked = RefCell::new(BTreeSet::new());
    let record = |k: &str| {
        asked.borrow_mut().insert(k.to_string());
    };
    RelayConfig::from_lookup(|k| {
        record(k);
        None
    })
    .unwrap();
    let config = loggier_core::Config::default();
    relay_loki_sink(
        |k| {
            record(k);
            (k == "LOKI_URL").then(|| "http://127.0.0.1:9".to_string())
        },
        &config,
    )
    .unwrap();
    asked.into_inner()
}

/// Whether the relay reads `name`: its own readers ask for it, or setting it (to
/// `value`, or to something invalid) changes or refuses the client configuration, or
/// (`APP_NAME`, `ENV`) it becomes the pipeline's identity.
fn relay_reads(name: &str, value: &str, looked_up: &BTreeSet<String>) -> bool {
    if looked_up.contains(name) {
        return true;
    }
    if name == "APP_NAME" || name == "ENV" {
        let dir = tempfile::tempdir().unwrap();
        let mut vars = HashMap::new();
        vars.insert(name.to_string(), "probe-value".to_string());
        vars.insert("LOGGIER_DATA_DIR".into(), dir.path().display().to_string());
        let p = build_pipeline(&vars).unwrap();
        let s = p.loggier.service().clone();
        p.loggier.shutdown(std::time::Duration::from_secs(1));
        return s.service == "probe-value" || s.environment == "probe-value";
    }
    let base = format!(
        "{:?}",
        loggier_core::Config::from_vars(Vec::<(String, String)>::new()).unwrap()
    );
    let with = |v: &str| loggier_core::Config::from_vars(vec![(name.to_string(), v.to_string())]);
    match with(value) {
        Ok(c) if format!("{c:?}") != base => true,
        Err(_) => true,
        Ok(_) => match with("\u{1}not valid\u{1}") {
            Ok(c) => format!("{c:?}") != base,
            Err(_) => true,
        },
    }
}

#[test]
fn the_reader_check_can_fail() {
    let names = looked_up_names();
    assert!(relay_reads("LOKI_URL", "http://loki:3100", &names));
    assert!(relay_reads("LOGGIER_RELAY_ADDR", "0.0.0.0:8000", &names));
    assert!(relay_reads("LOGGIER_DATA_DIR", "/data", &names));
    assert!(relay_reads("APP_NAME", "x", &names));
    assert!(!relay_reads("LOGGIER_RELAY_TYPO", "1", &names));
    assert!(!relay_reads("LOKI_HOST", "loki", &names));
    assert!(!relay_reads("RUST_LOG", "debug", &names));
}

struct Instruction {
    op: String,
    args: String,
}

fn dockerfile() -> Vec<Instruction> {
    let text = read("Dockerfile");
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let (op, args) = cur
            .trim()
            .split_once(char::is_whitespace)
            .unwrap_or((cur.trim(), ""));
        out.push(Instruction {
            op: op.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
        cur.clear();
    }
    out
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_sets_only_variables_the_relay_reads() {
    let ins = dockerfile();
    let froms: Vec<&Instruction> = ins.iter().filter(|i| i.op == "FROM").collect();
    assert!(froms.len() >= 2, "multi-stage");
    let build_stage = froms[0].args.split_whitespace().last().unwrap().to_string();
    assert!(
        froms[0].args.to_lowercase().contains(" as "),
        "first stage is named"
    );
    let final_start = ins.iter().rposition(|i| i.op == "FROM").unwrap();
    let final_stage = &ins[final_start..];
    assert!(
        ins[..final_start].iter().any(|i| i.op == "RUN"
            && i.args.contains("cargo build")
            && i.args.contains("-p loggier-relay")),
        "build stage builds the relay"
    );
    assert!(
        final_stage
            .iter()
            .any(|i| i.op == "COPY" && i.args.contains(&format!("--from={build_stage}")))
    );
    let user = final_stage
        .iter()
        .rfind(|i| i.op == "USER")
        .expect("USER in the final stage");
    let uid = user.args.split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "non-root: {}", user.args);
    let entry = final_stage.iter().find(|i| i.op == "ENTRYPOINT").unwrap();
    assert!(entry.args.contains("loggier-relay"));
    let names = looked_up_names();
    let mut env = HashMap::new();
    for i in final_stage.iter().filter(|i| i.op == "ENV") {
        for pair in i.args.split_whitespace() {
            let (k, v) = pair.split_once('=').expect("ENV k=v");
            assert!(
                relay_reads(k, v, &names),
                "Dockerfile sets {k}, which the relay does not read"
            );
            env.insert(k.to_string(), v.to_string());
        }
    }
    let addr = env.get("LOGGIER_RELAY_ADDR").expect("listen address set");
    let port = addr.rsplit(':').next().unwrap();
    let expose = final_stage.iter().find(|i| i.op == "EXPOSE").unwrap();
    assert_eq!(expose.args, port);
    // The address parses as the relay parses it (with keys, as the comment demands).
    let lookup = |k: &str| match k {
        "LOGGIER_RELAY_ADDR" => Some(addr.clone()),
        "LOGGIER_RELAY_INGEST_KEYS" => Some("k".into()),
        _ => None,
    };
    assert_eq!(
        RelayConfig::from_lookup(lookup)
            .unwrap()
            .addr
            .port()
            .to_string(),
        port
    );
}

fn compose() -> Yaml {
    serde_yaml::from_str(&read("docker-compose.yml")).unwrap()
}

fn mounts(service: &Yaml) -> Vec<(String, String)> {
    service["volumes"]
        .as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|v| v.as_str())
                .map(|v| {
                    let mut parts = v.split(':');
                    (
                        parts.next().unwrap().to_string(),
                        parts.next().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn compose_runs_relay_loki_grafana_with_variables_the_relay_reads() {
    let c = compose();
    let services = &c["services"];
    for s in ["relay", "loki", "grafana"] {
        assert!(services[s].is_mapping(), "service {s}");
    }
    let relay = &services["relay"];
    let dockerfile = deploy()
        .join(relay["build"]["context"].as_str().unwrap())
        .join(relay["build"]["dockerfile"].as_str().unwrap());
    assert!(dockerfile.is_file(), "{}", dockerfile.display());
    let names = looked_up_names();
    let env = relay["environment"].as_mapping().unwrap();
    let mut vars: HashMap<String, String> = HashMap::new();
    for (k, v) in env {
        let k = k.as_str().unwrap();
        let v = match v {
            Yaml::String(s) => resolve(s),
            other => serde_yaml::to_string(other).unwrap().trim().to_string(),
        };
        assert!(
            relay_reads(k, &v, &names),
            "compose sets {k} for the relay, which it does not read"
        );
        vars.insert(k.to_string(), v);
    }
    assert!(
        vars["LOKI_URL"].starts_with("http://loki:"),
        "relay points at the loki service"
    );
    // The relay's configuration from exactly these variables is valid.
    RelayConfig::from_lookup(|k| vars.get(k).cloned()).unwrap();
    // Loki mounts its config; the config enables structured metadata on schema v13.
    let loki = &services["loki"];
    let (src, dst) = mounts(loki)
        .into_iter()
        .find(|(s, _)| s.ends_with("loki.yaml"))
        .expect("loki config mounted");
    assert!(
        loki["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().contains(&dst))
    );
    let cfg: Yaml = serde_yaml::from_str(&read(src.trim_start_matches("./"))).unwrap();
    assert_eq!(
        cfg["limits_config"]["allow_structured_metadata"],
        Yaml::Bool(true)
    );
    assert_eq!(
        cfg["schema_config"]["configs"][0]["schema"],
        Yaml::from("v13")
    );
    let port = cfg["server"]["http_listen_port"].as_u64().unwrap();
    assert!(vars["LOKI_URL"].ends_with(&format!(":{port}")));
    // Grafana: provisioning mounted, Loki datasource, dashboard file where the
    // provider looks.
    let g = mounts(&services["grafana"]);
    let prov = g
        .iter()
        .find(|(_, d)| d == "/etc/grafana/provisioning")
        .expect("provisioning");
    let prov_dir = deploy().join(prov.0.trim_start_matches("./"));
    let ds: Yaml = serde_yaml::from_str(
        &std::fs::read_to_string(prov_dir.join("datasources/loki.yaml")).unwrap(),
    )
    .unwrap();
    let d0 = &ds["datasources"][0];
    assert_eq!(d0["type"], Yaml::from("loki"));
    assert_eq!(d0["url"].as_str().unwrap(), format!("http://loki:{port}"));
    let uid = d0["uid"].as_str().unwrap().to_string();
    let dp: Yaml = serde_yaml::from_str(
        &std::fs::read_to_string(prov_dir.join("dashboards/loggier.yaml")).unwrap(),
    )
    .unwrap();
    let path = dp["providers"][0]["options"]["path"].as_str().unwrap();
    let dash = g
        .iter()
        .find(|(s, _)| s.ends_with("loggier-dashboard.json"))
        .expect("dashboard mounted");
    assert!(dash.1.starts_with(path), "{} under {path}", dash.1);
    let d: Value = serde_json::from_str(&read("grafana/loggier-dashboard.json")).unwrap();
    for p in d["panels"].as_array().unwrap() {
        assert_eq!(p["datasource"]["uid"], uid.as_str(), "panel {}", p["title"]);
    }
}

/// One LogQL expression, taken apart just enough to know what it selects on.
#[derive(Debug, Default)]
struct Uses {
    selector_labels: BTreeSet<String>,
    json_paths: Vec<(String, String)>,
    filter_names: BTreeSet<String>,
    unwrapped: BTreeSet<String>,
    grouped_by: BTreeSet<String>,
}

fn label_matchers(inner: &str, out: &mut BTreeSet<String>) {
    for m in inner.split(',') {
        let name: String = m
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
}

fn analyse(expr: &str) -> Uses {
    let mut u = Uses::default();
    let mut rest = expr;
    while let Some(i) = rest.find('{') {
        let j = rest[i..].find('}').unwrap() + i;
        label_matchers(&rest[i + 1..j], &mut u.selector_labels);
        rest = &rest[j + 1..];
    }
    for stage in split_pipes(expr).into_iter().skip(1) {
        let stage = stage.split('[').next().unwrap().trim();
        if let Some(args) = stage.strip_prefix("json") {
            for kv in args.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let (k, v) = kv.split_once('=').unwrap();
                u.json_paths
                    .push((k.trim().to_string(), v.trim().trim_matches('"').to_string()));
            }
        } else if let Some(name) = stage.strip_prefix("unwrap") {
            u.unwrapped
                .insert(name.trim().trim_end_matches(')').to_string());
        } else if !stage.is_empty() {
            let name: String = stage
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            u.filter_names.insert(name);
        }
    }
    let mut rest = expr;
    while let Some(i) = rest.find("by (") {
        let j = rest[i..].find(')').unwrap() + i;
        label_matchers(&rest[i + 4..j], &mut u.grouped_by);
        rest = &rest[j..];
    }
    u
}

/// Splits at `|` outside double-quoted strings (regexes such as `"error|critical"`).
fn split_pipes(expr: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in expr.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '|' if !quoted => {
                out.push(&expr[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&expr[start..]);
    out
}

fn get_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

#[test]
fn dashboard_selects_only_labels_and_fields_the_loki_sink_emits() {
    let d: Value = serde_json::from_str(&read("grafana/loggier-dashboard.json")).unwrap();
    // The sink's own lists, from the sink the relay builds.
    let sink = relay_loki_sink(
        |k| (k == "LOKI_URL").then(|| "http://127.0.0.1:9".to_string()),
        &loggier_core::Config::default(),
    )
    .unwrap();
    let labels: BTreeSet<String> = sink.label_names().into_iter().collect();
    let metadata: BTreeSet<String> = sink.metadata_names().into_iter().collect();
    // Records as the pipeline encodes them into the line: a request transaction and
    // a timing.
    let svc = ServiceInfo::default();
    let mut req = HttpRequest::default();
    req.method = "GET".into();
    req.path = "/orders/1".into();
    req.route = Some("/orders/{id}".into());
    let mut tx = HttpTransaction::new(req);
    tx.duration_ms = 12.5;
    let samples: Vec<Value> = [
        Record::new(Level::Error, "GET /orders/1 - 500").with_http(tx),
        Record::new(Level::Info, "timed").with_timing(Timing {
            name: "db.load".into(),
            kind: TimingKind::Database,
            duration_ms: 3.0,
            threshold_ms: None,
        }),
    ]
    .iter()
    .map(|r| {
        let mut b = Vec::new();
        loggier_core::record::encode_json(r, &svc, &mut b).unwrap();
        serde_json::from_slice(&b).unwrap()
    })
    .collect();

    let vars = d["templating"]["list"].as_array().unwrap();
    let var_names: BTreeSet<&str> = vars.iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(
        var_names,
        BTreeSet::from(["component", "environment", "level", "service"])
    );
    for v in vars {
        let q = v["query"].as_str().unwrap();
        let inner = q
            .strip_prefix("label_values(")
            .unwrap()
            .strip_suffix(')')
            .unwrap();
        let label = inner.rsplit(',').next().unwrap().trim();
        assert!(
            labels.contains(label),
            "variable {} uses label {label}",
            v["name"]
        );
        let u = analyse(inner);
        assert!(u.selector_labels.is_subset(&labels), "{q}");
    }
    let titles: Vec<String> = d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap().to_lowercase())
        .collect();
    for want in [
        "volume by level",
        "error rate",
        "slow requests",
        "p50 / p95",
        "top routes by errors",
        "timing records by name",
        "logs",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(want)),
            "panel {want:?} in {titles:?}"
        );
    }
    let mut exprs = 0;
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            exprs += 1;
            let u = analyse(expr);
            assert!(!u.selector_labels.is_empty(), "{expr}");
            for l in &u.selector_labels {
                assert!(
                    labels.contains(l),
                    "{expr}: label {l} is not emitted (sink labels {labels:?})"
                );
            }
            let extracted: BTreeSet<String> = u.json_paths.iter().map(|(k, _)| k.clone()).collect();
            for (name, path) in &u.json_paths {
                assert!(
                    samples
                        .iter()
                        .any(|s| get_path(s, path).is_some_and(|v| !v.is_null())),
                    "{expr}: {name} = {path} is in no encoded record"
                );
            }
            let known = |n: &String| {
                labels.contains(n)
                    || metadata.contains(n)
                    || extracted.contains(n)
                    || n == "__error__"
            };
            for n in u.filter_names.iter().chain(&u.grouped_by) {
                assert!(
                    known(n),
                    "{expr}: {n} is neither a label, metadata nor extracted"
                );
            }
            for n in &u.unwrapped {
                assert!(extracted.contains(n), "{expr}: unwrap {n} not extracted");
                assert!(
                    u.json_paths.iter().any(|(k, p)| k == n
                        && samples
                            .iter()
                            .any(|s| get_path(s, p).is_some_and(Value::is_number))),
                    "{expr}: unwrap {n} is not numeric in the encoded record"
                );
            }
        }
    }
    assert!(exprs >= 8);
}
