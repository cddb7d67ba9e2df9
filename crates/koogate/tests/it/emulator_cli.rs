//! `koogate emulator`: the real binary serves an emulated KooGallery that calls a production
//! interface, and the client verbs drive it through the control API.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::routing::post;
use koogallery::sign::{SignedRequest, v2};
use serde_json::{Value, json};

const KEY: &str = "emulator-cli-basic-key";

/// Activities received, with whether their signature verified.
type Seen = Arc<Mutex<Vec<(String, bool)>>>;

/// A production interface that verifies V2 signatures and answers every activity with success.
async fn merchant() -> (String, Seen) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = axum::Router::new()
        .route("/produce", post(answer))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/produce", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

async fn answer(
    State(seen): State<Seen>,
    uri: Uri,
    body: Bytes,
) -> ([(&'static str, &'static str); 1], String) {
    let params = koogallery::query::decode_query(uri.query().unwrap_or_default());
    let req = SignedRequest {
        signature: koogallery::query::param(&params, "signature"),
        timestamp: koogallery::query::param(&params, "timestamp"),
        nonce: koogallery::query::param(&params, "nonce"),
    };
    let now = koogallery::time::epoch_millis(time::OffsetDateTime::now_utc());
    let verified = v2::verify(KEY, &req, &body, now, 60_000).is_ok();
    let fields: Value = serde_json::from_slice(&body).unwrap();
    let activity = fields["activity"].as_str().unwrap_or_default().to_owned();
    seen.lock().unwrap().push((activity.clone(), verified));
    let answer = match activity.as_str() {
        "newInstance" => {
            json!({"resultCode":"000000","resultMsg":"success.","instanceId": format!("i-{}", fields["orderLineId"].as_str().unwrap())})
        }
        "queryInstance" => {
            json!({"resultCode":"000000","resultMsg":"success.","info":[{"instanceId": fields["instanceId"], "appInfo":{"frontEndUrl":"https://app.example.com"}}]})
        }
        _ => json!({"resultCode":"000000","resultMsg":"success."}),
    };
    ([("content-type", "application/json")], answer.to_string())
}

/// A `koogate emulator serve` process.
struct Emulator {
    child: Child,
    url: String,
}

impl Emulator {
    fn start(merchant_url: &str, state: &std::path::Path) -> Emulator {
        let mut child = Command::new(env!("CARGO_BIN_EXE_koogate"))
            .args([
                "emulator",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--sk",
                "CLI-SK",
            ])
            .args(["--time-scale", "0", "--merchant-url", merchant_url])
            .arg("--state")
            .arg(state)
            .env("KOOGATE_EMULATOR_AK", "CLI-AK")
            .env("KOOGATE_EMULATOR_BASIC_KEY", KEY)
            .env("KOOGATE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let url = first
            .split("listening on ")
            .nth(1)
            .unwrap_or_else(|| panic!("unexpected banner: {first}"))
            .trim()
            .to_owned();
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Emulator { child, url }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `koogate emulator ARGS --url URL` off the async runtime; returns (exit code, stdout,
/// stderr).
async fn verb(url: &str, args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<String> = vec!["emulator".to_owned()];
    all.extend(args.iter().map(|s| (*s).to_owned()));
    all.extend(["--url".to_owned(), url.to_owned()]);
    tokio::task::spawn_blocking(move || {
        let out = Command::new(env!("CARGO_BIN_EXE_koogate"))
            .args(&all)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_and_drive_it_from_the_command_line() {
    let (merchant_url, seen) = merchant().await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("emulator.db");
    let emulator = Emulator::start(&merchant_url, &state);
    let url = emulator.url.clone();

    let (code, out, err) = verb(&url, &["order", "new", "--product", "V2-MONTH", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let placed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(placed["order"]["status"], "completed");
    let activities: Vec<&str> = placed["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["activity"].as_str().unwrap())
        .collect();
    assert_eq!(activities, ["newInstance", "queryInstance"]);
    let resource = placed["order"]["resourceId"].as_str().unwrap().to_owned();

    // The summary form, and the expiry a month and a bit later.
    let (code, out, _) = verb(&url, &["advance", "32d"]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("now "), "{out}");
    let (code, out, _) = verb(
        &url,
        &["calls", "--activity", "updateInstanceStatus", "--json"],
    )
    .await;
    assert_eq!(code, 0);
    let calls: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(calls.as_array().unwrap().len(), 1);
    assert_eq!(calls[0]["resourceId"], resource.as_str());
    assert!(calls[0]["requestBody"].as_str().unwrap().contains("FREEZE"));
    let (code, out, _) = verb(&url, &["instances"]).await;
    assert_eq!(code, 0);
    assert!(out.contains(&resource) && out.contains("frozen"), "{out}");
    let (code, out, _) = verb(&url, &["messages", "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([]));
    let (code, out, _) = verb(&url, &["orders"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("completed"), "{out}");

    // Errors: a refused restart exits 1 with the reason; a bad kind too.
    let (code, _, err) = verb(&url, &["restart", "999999"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("no call 999999"), "{err}");
    let (code, _, err) = verb(&url, &["order", "lease", "--product", "V2-MONTH"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("unknown order kind"), "{err}");

    assert!(seen.lock().unwrap().iter().all(|(_, verified)| *verified));
    assert_eq!(seen.lock().unwrap().len(), 3);

    // A restart with the same state file resumes the orders and calls.
    drop(emulator);
    let emulator = Emulator::start(&merchant_url, &state);
    let (code, out, _) = verb(&emulator.url, &["calls", "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(&out)
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn help_for_every_verb() {
    for verb in [
        "serve",
        "order",
        "advance",
        "clock",
        "calls",
        "messages",
        "restart",
        "license",
        "status",
        "orders",
        "instances",
        "products",
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_koogate"))
            .args(["emulator", verb, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{verb}");
        let text = String::from_utf8(out.stdout).unwrap();
        if verb != "serve" {
            assert!(text.contains("--json"), "{verb}: {text}");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_koogate"))
        .args(["emulator", "serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--ak",
        "--sk",
        "--basic-key",
        "--kit-key",
        "--license-key",
        "--time-scale",
        "--state",
        "--merchant-url",
        "KOOGATE_EMULATOR_LISTEN",
    ] {
        assert!(text.contains(flag), "{flag}");
    }
}
