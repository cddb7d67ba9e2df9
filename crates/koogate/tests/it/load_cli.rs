//! `koogate load` black-box tests: the real binary against a real server started in-process on
//! SQLite, and its exit codes when the target cannot be reached or the usage is wrong.

use std::process::Output;

use crate::common::{BASIC_KEY, Backend, Options, TestDb, TestServer};
use serde_json::Value;

async fn koogate(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_koogate"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the shape of one phase's report and returns its request count.
fn check_report(r: &Value, what: &str) -> u64 {
    assert_eq!(r["activity"], "mixed", "{what}: {r}");
    assert_eq!(r["concurrency"], 4, "{what}: {r}");
    assert_eq!(r["duration_s"].as_f64(), Some(2.0), "{what}: {r}");
    let requests = r["requests"].as_u64().unwrap();
    assert!(requests > 0, "{what}: {r}");
    assert!(r["throughput_rps"].as_f64().unwrap() > 0.0, "{what}: {r}");
    let latency = &r["latency_ms"];
    let mut previous = 0.0;
    for p in ["p50", "p90", "p99", "p999", "max"] {
        let v = latency[p].as_f64().unwrap();
        assert!(v > 0.0 && v >= previous, "{what}: {p} in {latency}");
        previous = v;
    }
    assert_eq!(r["http_errors"], 0, "{what}: {r}");
    assert_eq!(r["transport_errors"], 0, "{what}: {r}");
    assert_eq!(r["body_sign_mismatches"], 0, "{what}: {r}");
    assert!(r["body_signs_checked"].as_u64().unwrap() > 0, "{what}: {r}");
    let codes = r["result_codes"].as_object().unwrap();
    let counted: u64 = codes.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(counted, requests, "{what}: every answer has a result code");
    requests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_load_with_baseline_against_a_real_server() {
    let db = TestDb::fresh(Backend::Sqlite).await;
    let s = TestServer::start(&db, Options::default()).await;
    let url = s.produce_url();
    let out = koogate(&[
        "load",
        "--url",
        &url,
        "--key",
        BASIC_KEY,
        "--activity",
        "mixed",
        "--concurrency",
        "4",
        "--duration",
        "2s",
        "--json",
        "--baseline",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let requests = check_report(&json, "target");
    assert_eq!(json["url"], url.as_str());
    assert_eq!(json["warmup_instances"], 40, "min(1000, C*10) instances");
    // Against the real server only success and "processing" (a new instance being provisioned).
    let codes = json["result_codes"].as_object().unwrap();
    for code in codes.keys() {
        assert!(
            code == "000000" || code == "000004",
            "unexpected result code {code}: {json}"
        );
    }
    // The mix: 20% newInstance, the only activity answered 000004.
    let processing = codes.get("000004").and_then(Value::as_u64).unwrap_or(0);
    assert!(
        processing > 0 && processing < requests,
        "{processing} of {requests}"
    );

    let baseline = &json["baseline"];
    check_report(baseline, "baseline");
    assert_ne!(baseline["url"], url.as_str());
    assert!(
        baseline["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    let only: Vec<&String> = baseline["result_codes"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(only, ["000000"], "the baseline always answers success");
    assert!(json["ratio_to_baseline"].as_f64().unwrap() > 0.0);

    // The server really did the work: the warm-up and measured newInstance calls created
    // instances (the baseline's ids never reach it).
    // The check after the measurement: every instance created by the measured newInstance
    // calls was provisioned by the built-in provisioner within --settle-secs.
    let accepted = json["created"].as_u64().unwrap();
    assert!(accepted >= processing, "{json}");
    assert_eq!(json["provisioned"].as_u64(), Some(accepted), "{json}");
    assert_eq!(json["still_provisioning"], 0, "{json}");
    assert_eq!(json["unknown"], 0, "{json}");
    assert!(json["all_provisioned_after_s"].as_f64().is_some(), "{json}");
    assert!(json["check_requests"].as_u64().unwrap() > 0, "{json}");
    assert!(
        baseline.get("created").is_none(),
        "the baseline is not checked: {baseline}"
    );

    let created = s.count("SELECT COUNT(*) FROM instances").await;
    assert!(
        created >= 40 + i64::try_from(processing).unwrap(),
        "{created}"
    );
    assert_eq!(
        s.count("SELECT COUNT(*) FROM instances WHERE instance_id LIKE '%-none'")
            .await,
        0
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_queries_at_a_fixed_rate_print_a_table() {
    let db = TestDb::fresh(Backend::Sqlite).await;
    let s = TestServer::start(&db, Options::default()).await;
    let out = koogate(&[
        "load",
        "--url",
        &s.produce_url(),
        "--key",
        BASIC_KEY,
        "--activity",
        "v1-queryInstance",
        "--concurrency",
        "8",
        "--duration",
        "1",
        "--rate",
        "100",
    ])
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("open model at 100 req/s"), "{stdout}");
    let line = |label: &str| -> Vec<String> {
        stdout
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} in\n{stdout}"))[label.len()..]
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // 100 sends scheduled in one second (fewer only if all 8 workers fell behind), all of them
    // answered with the instance.
    let requests: u64 = line("requests")[0].parse().unwrap();
    assert!((50..=100).contains(&requests), "{stdout}");
    assert_eq!(
        line("resultCode 000000"),
        [requests.to_string()],
        "{stdout}"
    );
    assert_eq!(line("Body-Sign mismatches"), ["0"], "{stdout}");
    assert!(line("throughput req/s")[0].parse::<f64>().unwrap() > 0.0);
    assert!(!stdout.contains("baseline"), "{stdout}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_instances_are_counted_as_provisioned() {
    let db = TestDb::fresh(Backend::Sqlite).await;
    let s = TestServer::start(&db, Options::default()).await;
    let out = koogate(&[
        "load",
        "--url",
        &s.produce_url(),
        "--key",
        BASIC_KEY,
        "--activity",
        "newInstance",
        "--concurrency",
        "2",
        "--duration",
        "1",
    ])
    .await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    let requests: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("requests"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(requests > 0, "{stdout}");
    // Every measured call created an instance, and the check found all of them provisioned.
    assert!(
        stdout.contains(&format!(
            "provisioned: {requests} of {requests} (all confirmed"
        )),
        "{stdout}"
    );
    let stored = s.count("SELECT COUNT(*) FROM instances").await;
    assert_eq!(stored, i64::try_from(requests).unwrap());
    s.stop().await;
}

#[tokio::test]
async fn an_unreachable_url_exits_1() {
    // A port that was just free: nothing listens on it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/produce");
    let out = koogate(&[
        "load",
        "--url",
        &url,
        "--key",
        BASIC_KEY,
        "--activity",
        "queryInstance",
        "--concurrency",
        "1",
        "--duration",
        "1s",
        "--baseline",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("error: cannot reach {url}")),
        "{stderr}"
    );
}

#[tokio::test]
async fn usage_errors_exit_2() {
    for args in [
        // No --key.
        &[
            "load",
            "--url",
            "http://127.0.0.1:9/produce",
            "--activity",
            "mixed",
            "--concurrency",
            "1",
            "--duration",
            "1s",
        ][..],
        &[
            "load",
            "--url",
            "http://127.0.0.1:9/produce",
            "--key",
            "k",
            "--activity",
            "mixed",
            "--concurrency",
            "1",
            "--duration",
            "ten seconds",
        ][..],
        &[
            "load",
            "--url",
            "http://127.0.0.1:9/produce",
            "--key",
            "k",
            "--activity",
            "deleteEverything",
            "--concurrency",
            "1",
            "--duration",
            "1s",
        ][..],
        &[
            "load",
            "--url",
            "http://127.0.0.1:9/produce",
            "--key",
            "k",
            "--activity",
            "mixed",
            "--concurrency",
            "0",
            "--duration",
            "1s",
        ][..],
    ] {
        let out = koogate(args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
