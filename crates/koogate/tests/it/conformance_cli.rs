//! `koogate conformance` black-box tests: the real binary against (a) a real koogate server on
//! SQLite with the emulator's open API, which must pass every case of saas-v2 and saas-v1 in
//! every charging mode; (b) small fixture endpoints written here, a correct one and copies that
//! each break exactly one thing, which must fail with the precise reason; (c) an address
//! nobody listens on.

use std::collections::{BTreeSet, HashSet};
use std::process::Output;
use std::sync::{Arc, Mutex};

use crate::common::{self, BASIC_KEY, Backend, KIT_KEY, LICENSE_KEY, Options, TestDb, TestServer};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use koogallery::query::{decode_query, param};
use koogallery::sign::{SignedRequest, body_sign, v2};
use serde_json::{Value, json};

const CHARGING: [&str; 3] = ["period", "onetime", "ondemand"];

/// The merchant's kit key pair (a throw-away test key, crates/koogallery/tests/fixtures): the
/// reference endpoint decrypts `applicationSync.clientSecret` with the private key.
const KIT_PUBLIC_KEY: &str =
    include_str!("../../../koogallery/tests/fixtures/rsa3072_test_pub.pem");
const KIT_PRIVATE_KEY: &str =
    include_str!("../../../koogallery/tests/fixtures/rsa3072_test_key.pem");

/// The `applicationSync` cases a kit run has with `--kit-public-key` (and skips without it).
const KIT_APP_DEBUG: &str = "applicationSync.add";
const KIT_APP_REAL: [&str; 5] = [
    "applicationSync.add",
    "applicationSync.add.again",
    "applicationSync.modify",
    "applicationSync.delete",
    "applicationSync.delete.again",
];

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

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// The debug activities the console requires per family and charging mode (saas.md §10, §13).
fn debug_acts(family: &str, charging: &str) -> Vec<&'static str> {
    debug_acts_with(family, charging, false)
}

/// The debug activities; `kit_app`: the kit run has `--kit-public-key`, so `applicationSync`
/// follows the tenant (jointop.md §6).
fn debug_acts_with(family: &str, charging: &str, kit_app: bool) -> Vec<&'static str> {
    if family == "kit" && kit_app {
        let mut acts = debug_acts_with(family, charging, false);
        acts.insert(2, KIT_APP_DEBUG);
        return acts;
    }
    match (family, charging) {
        ("saas-v2", "period") => vec![
            "newInstance",
            "queryInstance",
            "refreshInstance",
            "updateInstanceStatus.FREEZE",
            "updateInstanceStatus.UNFREEZE",
            "upgradeInstance",
            "changeInstanceCheck",
            "releaseInstance",
        ],
        ("saas-v2", "ondemand") => vec![
            "newInstance",
            "queryInstance",
            "refreshInstance",
            "updateInstanceStatus.FREEZE",
            "updateInstanceStatus.UNFREEZE",
            "releaseInstance",
        ],
        ("saas-v1", "period") => vec![
            "newInstance",
            "queryInstance",
            "refreshInstance",
            "expireInstance",
            "upgrade",
            "releaseInstance",
        ],
        ("saas-v1", "ondemand") => vec![
            "newInstance",
            "queryInstance",
            "instanceStatus.FREEZE",
            "instanceStatus.NORMAL",
            "releaseInstance",
        ],
        ("saas-v2" | "saas-v1", "onetime") => {
            vec!["newInstance", "queryInstance", "releaseInstance"]
        }
        ("license-v1", "period") => vec![
            "getLicense",
            "refreshLicense",
            "expireLicense",
            "releaseLicense",
        ],
        ("license-v1", "onetime") => vec!["getLicense", "releaseLicense"],
        ("license-online", "period") => vec![
            "newInstance",
            "queryInstance",
            "refreshInstance",
            "updateInstanceStatus.FREEZE",
            "updateInstanceStatus.UNFREEZE",
            "getLicenseAsync",
            "releaseInstance",
        ],
        ("license-online", "onetime") => vec![
            "newInstance",
            "queryInstance",
            "getLicenseAsync",
            "releaseInstance",
        ],
        ("license-code", "period") => vec![
            "refreshLicenseCode",
            "updateLicenseCodeStatus.FREEZE",
            "updateLicenseCodeStatus.UNFREEZE",
            "releaseLicenseCode",
        ],
        ("license-code", "onetime") => vec!["releaseLicenseCode"],
        ("kit", _) => vec![
            "tenantSync.add",
            "tenantSync.modify",
            "allOrgSync",
            "allOrgSync.string",
            "singleOrgSync.add",
            "authSync.add",
            "authSync.delete",
            "tenantSync.delete",
        ],
        _ => unreachable!(),
    }
}

/// Every case id a run must report, except the shuffled ones (checked separately).
fn expected_ids(family: &str, charging: &str, real: bool) -> BTreeSet<String> {
    expected_ids_with(family, charging, real, false)
}

fn expected_ids_with(family: &str, charging: &str, real: bool, kit_app: bool) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = debug_acts_with(family, charging, kit_app)
        .iter()
        .map(|a| format!("debug.{a}"))
        .collect();
    let v1 = family == "saas-v1" || family == "license-v1";
    match family {
        "saas-v2" | "saas-v1" | "license-online" => {
            ids.insert("debug.newInstance.repeat".into());
            ids.insert("debug.queryInstance.unknown".into());
        }
        "license-v1" => {
            ids.insert("debug.getLicense.repeat".into());
        }
        _ => {}
    }
    let auth: &[&str] = if family == "kit" {
        &[
            "wrong-key",
            "tampered-body",
            "missing-x-sign",
            "missing-x-timestamp",
            "missing-x-nonce",
            "stale-timestamp",
            "future-timestamp",
            "basic-key",
            "replay",
        ]
    } else if v1 {
        &[
            "wrong-key",
            "tampered-parameter",
            "missing-authToken",
            "missing-timeStamp",
            "stale-timeStamp",
            "future-timeStamp",
            "replay",
        ]
    } else {
        &[
            "wrong-key",
            "tampered-body",
            "missing-signature",
            "missing-timestamp",
            "missing-nonce",
            "stale-timestamp",
            "future-timestamp",
            "replay",
        ]
    };
    ids.extend(auth.iter().map(|a| format!("auth.{a}")));
    if family == "license-code" {
        ids.insert("auth.basic-key".into());
    }
    if !real {
        return ids;
    }
    let real_ids: Vec<&str> = match (family, charging) {
        ("saas-v2", "onetime") => vec!["newInstance", "newInstance.resend", "queryInstance"],
        ("saas-v2", _) => vec![
            "newInstance",
            "newInstance.resend",
            "queryInstance",
            "refreshInstance",
            "updateInstanceStatus.FREEZE",
            "updateInstanceStatus.FREEZE.again",
            "updateInstanceStatus.UNFREEZE",
        ],
        ("license-online", "onetime") => vec![
            "newInstance",
            "newInstance.resend",
            "queryInstance",
            "getLicenseAsync",
            "getLicenseAsync.again",
        ],
        ("license-online", _) => vec![
            "newInstance",
            "newInstance.resend",
            "queryInstance",
            "getLicenseAsync",
            "getLicenseAsync.again",
            "refreshInstance",
            "updateInstanceStatus.FREEZE",
            "updateInstanceStatus.FREEZE.again",
            "updateInstanceStatus.UNFREEZE",
        ],
        ("saas-v1", "period") => vec![
            "newInstance",
            "newInstance.resend",
            "queryInstance",
            "refreshInstance",
            "expireInstance",
            "expireInstance.again",
            "upgrade",
            "releaseInstance",
            "releaseInstance.again",
        ],
        ("saas-v1", "ondemand") => vec![
            "newInstance",
            "newInstance.resend",
            "queryInstance",
            "instanceStatus.FREEZE",
            "instanceStatus.FREEZE.again",
            "instanceStatus.NORMAL",
            "releaseInstance",
            "releaseInstance.again",
        ],
        ("saas-v1", _) => vec![
            "newInstance",
            "newInstance.resend",
            "queryInstance",
            "releaseInstance",
            "releaseInstance.again",
        ],
        ("license-v1", "period") => vec![
            "getLicense",
            "getLicense.resend",
            "refreshLicense",
            "expireLicense",
            "expireLicense.again",
            "releaseLicense",
            "releaseLicense.again",
        ],
        ("license-v1", _) => vec![
            "getLicense",
            "getLicense.resend",
            "releaseLicense",
            "releaseLicense.again",
        ],
        ("license-code", _) => vec![],
        ("kit", _) => vec![
            "tenantSync.add",
            "tenantSync.add.again",
            "allOrgSync",
            "allOrgSync.again",
            "singleOrgSync.add",
            "authSync.add",
            "authSync.add.again",
            "authSync.delete",
            "authSync.delete.again",
            "singleOrgSync.delete",
            "tenantSync.delete",
            "tenantSync.delete.again",
        ],
        _ => unreachable!(),
    };
    ids.extend(real_ids.iter().map(|a| format!("real.{a}")));
    if family == "kit" && kit_app {
        ids.extend(KIT_APP_REAL.iter().map(|a| format!("real.{a}")));
    }
    ids
}

/// Checks a JSON report: the run's identity, every expected case present and passed, the
/// shuffled cases a permutation of the debug activities that does not start with the creation.
fn check_json_report(json: &Value, family: &str, charging: &str, real: bool) {
    check_json_report_with(json, family, charging, real, false);
}

/// `check_json_report`; `kit_app`: a kit run with `--kit-public-key`. A kit run without it lists
/// the `applicationSync` cases as skipped; every other run skips nothing.
fn check_json_report_with(json: &Value, family: &str, charging: &str, real: bool, kit_app: bool) {
    let skipped: Vec<&str> = json["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            assert!(
                s["reason"].as_str().unwrap().starts_with(
                    "not sent: applicationSync.clientSecret must be RSA-OAEP-encrypted with the merchant's public key (jointop.md §5), and no --kit-public-key FILE was given"
                ),
                "{s:#}"
            );
            s["id"].as_str().unwrap()
        })
        .collect();
    let mut expected_skipped = Vec::new();
    if family == "kit" && !kit_app {
        expected_skipped.push(format!("debug.{KIT_APP_DEBUG}"));
        if real {
            expected_skipped.extend(KIT_APP_REAL.iter().map(|a| format!("real.{a}")));
        }
    }
    assert_eq!(skipped, expected_skipped, "{json:#}");
    assert_eq!(json["family"], family);
    assert_eq!(json["charging"], charging);
    assert_eq!(json["ok"], true, "{json:#}");
    let cases = json["cases"].as_array().unwrap();
    assert_eq!(json["total"].as_u64().unwrap() as usize, cases.len());
    assert_eq!(json["passed"].as_u64().unwrap() as usize, cases.len());
    assert_eq!(json["failed"], 0);
    for c in cases {
        assert_eq!(c["passed"], true, "{c:#}");
        assert!(c["what"].as_str().unwrap().len() > 10, "{c:#}");
        assert!(c.get("reason").is_none(), "{c:#}");
        // Every answer is signed with an exact-case Body-Sign: no notes, except how long
        // provisioning took.
        if let Some(notes) = c.get("notes") {
            assert_eq!(c["id"], "real.queryInstance", "{c:#}");
            assert!(
                notes[0].as_str().unwrap().starts_with("provisioned after "),
                "{c:#}"
            );
        }
    }
    let ids: Vec<&str> = cases.iter().map(|c| c["id"].as_str().unwrap()).collect();
    let unique: HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "duplicate ids: {ids:?}");
    let (shuffled, others): (Vec<&str>, Vec<&str>) =
        ids.iter().partition(|id| id.starts_with("shuffled."));
    let others: BTreeSet<String> = others.into_iter().map(String::from).collect();
    assert_eq!(others, expected_ids_with(family, charging, real, kit_app));
    let mut acts: Vec<&str> = shuffled
        .iter()
        .enumerate()
        .map(|(i, id)| id.strip_prefix(&format!("shuffled.{}.", i + 1)).unwrap())
        .collect();
    let first_debug = debug_acts_with(family, charging, kit_app)[0];
    if acts.len() > 1 {
        assert_ne!(
            acts[0], first_debug,
            "the first debug case never stays first"
        );
    }
    acts.sort_unstable();
    let mut expected = debug_acts_with(family, charging, kit_app);
    expected.sort_unstable();
    assert_eq!(acts, expected);
}

/// A small well-formedness check of XML: balanced tags, quoted attributes, known entities.
fn assert_well_formed_xml(xml: &str) -> Vec<String> {
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
    let body = &xml[xml.find("?>").unwrap() + 2..];
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find('<') {
        check_text(&rest[..start]);
        let end = rest[start..].find('>').unwrap() + start;
        let tag = &rest[start + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "unbalanced </{name}>");
        } else {
            let self_closing = tag.ends_with('/');
            let tag = tag.trim_end_matches('/');
            let name = tag.split_whitespace().next().unwrap().to_owned();
            let attrs = &tag[name.len()..];
            // Attributes: name="value" pairs, values free of raw < and ".
            let mut a = attrs.trim();
            while !a.is_empty() {
                let eq = a.find("=\"").unwrap();
                let close = a[eq + 2..].find('"').unwrap() + eq + 2;
                check_text(&a[eq + 2..close]);
                a = a[close + 1..].trim_start();
            }
            seen.push(name.clone());
            if !self_closing {
                stack.push(name);
            }
        }
        rest = &rest[end + 1..];
    }
    check_text(rest);
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    seen
}

fn check_text(t: &str) {
    assert!(!t.contains('<'), "{t}");
    let mut rest = t;
    while let Some(i) = rest.find('&') {
        let after = &rest[i + 1..];
        let semi = after.find(';').unwrap();
        let entity = &after[..semi];
        assert!(
            ["amp", "lt", "gt", "quot", "apos"].contains(&entity)
                || entity
                    .strip_prefix('#')
                    .is_some_and(|n| n.parse::<u32>().is_ok()),
            "bad entity &{entity};"
        );
        rest = &after[semi..];
    }
}

fn attr(xml: &str, element: &str, name: &str) -> String {
    let start = xml.find(&format!("<{element} ")).unwrap();
    let tag = &xml[start..start + xml[start..].find('>').unwrap()];
    let key = format!(" {name}=\"");
    let from = tag.find(&key).unwrap() + key.len();
    tag[from..from + tag[from..].find('"').unwrap()].to_owned()
}

// ---------------------------------------------------------------------------------------------
// (a) koogate itself passes every case.
// ---------------------------------------------------------------------------------------------

async fn koogate_passes(family: &str) {
    let (openapi, _api) = common::openapi().await;
    let db = TestDb::fresh(Backend::Sqlite).await;
    let s = TestServer::start(
        &db,
        Options {
            openapi_url: Some(openapi),
            ..Options::default()
        },
    )
    .await;
    let url = s.produce_url();
    let dir = tempfile::tempdir().unwrap();
    // Each mode twice: the real cases must be re-runnable against the same server.
    for charging in CHARGING.iter().chain(&["period"]) {
        let junit = dir.path().join(format!("{family}-{charging}.xml"));
        let out = koogate(&[
            "conformance",
            "--url",
            &url,
            "--key",
            BASIC_KEY,
            "--family",
            family,
            "--charging",
            charging,
            "--json",
            "--junit",
            junit.to_str().unwrap(),
        ])
        .await;
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        assert!(
            out.stderr.is_empty(),
            "no progress bar off a terminal: {}",
            show(&out)
        );
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        check_json_report(&json, family, charging, true);
        let total = json["total"].as_u64().unwrap();

        let xml = std::fs::read_to_string(&junit).unwrap();
        let elements = assert_well_formed_xml(&xml);
        let testcases = elements.iter().filter(|e| *e == "testcase").count() as u64;
        assert_eq!(testcases, total);
        assert!(!elements.iter().any(|e| e == "failure"));
        assert_eq!(attr(&xml, "testsuites", "tests"), total.to_string());
        assert_eq!(attr(&xml, "testsuites", "failures"), "0");
        assert_eq!(
            attr(&xml, "testsuite", "name"),
            format!("{family}.{charging}")
        );

        // The table: every case on a line of its own, then the summary.
        let out = koogate(&[
            "conformance",
            "--url",
            &url,
            "--key",
            BASIC_KEY,
            "--family",
            family,
            "--charging",
            charging,
        ])
        .await;
        assert_eq!(out.status.code(), Some(0), "{}", show(&out));
        let table = text(&out.stdout);
        for id in expected_ids(family, charging, true) {
            assert!(
                table
                    .lines()
                    .any(|l| l.split_whitespace().collect::<Vec<_>>() == [id.as_str(), "pass"]),
                "{id} missing from\n{table}"
            );
        }
        let shuffled = table.lines().filter(|l| l.starts_with("shuffled.")).count();
        assert_eq!(shuffled, debug_acts(family, charging).len(), "{table}");
        assert!(
            table
                .trim_end()
                .ends_with(&format!("{total} cases: {total} passed, 0 failed")),
            "{table}"
        );
    }
    // --debug-only leaves the real cases out.
    let out = koogate(&[
        "conformance",
        "--url",
        &url,
        "--key",
        BASIC_KEY,
        "--family",
        family,
        "--debug-only",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    check_json_report(&json, family, "period", false);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn koogate_passes_every_saas_v2_case_in_every_charging_mode() {
    koogate_passes("saas-v2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn koogate_passes_every_saas_v1_case_in_every_charging_mode() {
    koogate_passes("saas-v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wrong_key_fails_every_case_and_says_why() {
    let db = TestDb::fresh(Backend::Sqlite).await;
    let s = TestServer::start(&db, Options::default()).await;
    let out = koogate(&[
        "conformance",
        "--url",
        &s.produce_url(),
        "--key",
        "not-the-key",
        "--family",
        "saas-v1",
        "--debug-only",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["passed"], 0);
    let reason = json["cases"][0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("Body-Sign does not match the body"),
        "{reason}"
    );
    assert!(
        reason.contains("the key given is probably not the endpoint's key"),
        "{reason}"
    );
    assert!(
        text(&out.stderr).contains("conformance cases failed"),
        "{}",
        show(&out)
    );
    s.stop().await;
}

// ---------------------------------------------------------------------------------------------
// (b) Fixture endpoints: a small correct reference production interface for every family
// (SaaS V2 and the V2 License families on POST, License 1.0 on GET, the kit under
// /produceAPI/v2/), and copies that each break exactly one thing.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Breakage {
    None,
    WrongBodySign,
    WrongContentType,
    MissingInstanceId,
    Status500,
    AcceptsForgedSignatures,
    /// Answers `queryInstance` with a `frontEndUrl` of 513 characters.
    LongFrontEndUrl,
    /// Writes header names in lower case (hyper's default), so `body-sign`.
    LowerCaseHeaders,
    /// `getLicense` answers without `license`.
    MissingLicense,
    /// Accepts license-code calls signed with the basic key too.
    AcceptsBasicKeyForLicenseCodes,
    /// A new license on every `getLicense`, even for the same order.
    FreshLicenseEveryTime,
}

struct Fixture {
    breakage: Breakage,
    /// V2 and kit nonces, V1 authTokens already used.
    seen: Mutex<HashSet<String>>,
    licenses: Mutex<std::collections::HashMap<String, String>>,
}

fn answer(f: &Fixture, key: &str, body: Value) -> Response {
    let bytes = serde_json::to_vec(&body).unwrap();
    let key = if f.breakage == Breakage::WrongBodySign {
        "some-other-key"
    } else {
        key
    };
    let sign = body_sign::header_value(key, &bytes);
    let content_type = if f.breakage == Breakage::WrongContentType {
        "text/plain"
    } else {
        "application/json"
    };
    let status = if f.breakage == Breakage::Status500 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::HeaderName::from_static("body-sign"),
                HeaderValue::from_str(&sign).unwrap(),
            ),
        ],
        bytes,
    )
        .into_response()
}

fn envelope(code: &str) -> Value {
    json!({"resultCode": code, "resultMsg": if code == "000000" { "success." } else { "refused" }})
}

fn now_ms() -> i64 {
    koogallery::time::epoch_millis(time::OffsetDateTime::now_utc())
}

async fn fixture_handler(
    State(f): State<Arc<Fixture>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let query = query.unwrap_or_default();
    if uri.path().contains("/produceAPI/v2/") {
        let name = uri.path().rsplit('/').next().unwrap_or_default();
        return kit(&f, name, &headers, &body);
    }
    if method == Method::GET {
        return license_v1(&f, &query);
    }
    v2_call(&f, &query, &body)
}

/// SaaS V2, online License and License code 2.0 (POST, URL signature).
fn v2_call(f: &Fixture, query: &str, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return answer(f, BASIC_KEY, envelope("000002"));
    };
    let s = |k: &str| request[k].as_str().unwrap_or("").to_owned();
    let activity = s("activity");
    let key = if activity.contains("LicenseCode") {
        LICENSE_KEY
    } else {
        BASIC_KEY
    };
    if f.breakage != Breakage::AcceptsForgedSignatures {
        let params = decode_query(query);
        let req = SignedRequest {
            signature: param(&params, "signature"),
            timestamp: param(&params, "timestamp"),
            nonce: param(&params, "nonce"),
        };
        let verify = |k: &str| v2::verify(k, &req, body, now_ms(), 60_000);
        let result = match verify(key) {
            Err(_)
                if key == LICENSE_KEY && f.breakage == Breakage::AcceptsBasicKeyForLicenseCodes =>
            {
                verify(BASIC_KEY)
            }
            other => other,
        };
        if let Err(e) = result {
            return answer(f, key, envelope(e.result_code().code()));
        }
        let nonce = req.nonce.unwrap_or_default().to_owned();
        if !f.seen.lock().unwrap().insert(nonce) {
            return answer(f, key, envelope("000002"));
        }
    }
    match activity.as_str() {
        "newInstance" => {
            let mut a = envelope("000000");
            if f.breakage != Breakage::MissingInstanceId {
                let prefix = if s("testFlag") == "1" { "dbg" } else { "inst" };
                a["instanceId"] = json!(format!("{prefix}-{}", s("orderLineId")));
            }
            answer(f, key, a)
        }
        "queryInstance" => {
            let mut a = envelope("000000");
            let url = if f.breakage == Breakage::LongFrontEndUrl {
                format!("https://example.com/{}", "x".repeat(493))
            } else {
                "https://example.com/tenant".to_owned()
            };
            a["info"] = json!([{"instanceId": s("instanceId"), "appInfo": {"frontEndUrl": url}}]);
            answer(f, key, a)
        }
        // Delivered later through the market-event upload (license.md §4.1).
        "getLicenseAsync" => answer(f, key, envelope("000004")),
        _ => answer(f, key, envelope("000000")),
    }
}

/// License 1.0 (GET, authToken, Body-Sign mandatory).
fn license_v1(f: &Fixture, query: &str) -> Response {
    let key = BASIC_KEY;
    let params = decode_query(query);
    if f.breakage != Breakage::AcceptsForgedSignatures {
        if let Err(e) = koogallery::sign::v1::verify_get(key, &params).and_then(|()| {
            koogallery::sign::v1::check_v1_window(
                param(&params, "timeStamp").unwrap_or_default(),
                now_ms(),
                300_000,
            )
        }) {
            return answer(f, key, envelope(e.result_code().code()));
        }
        let token = param(&params, "authToken").unwrap_or_default().to_owned();
        if !f.seen.lock().unwrap().insert(token) {
            return answer(f, key, envelope("000002"));
        }
    }
    let p = |k: &str| param(&params, k).unwrap_or_default().to_owned();
    match p("activity").as_str() {
        "getLicense" => {
            let order = p("orderId");
            let license = if f.breakage == Breakage::FreshLicenseEveryTime {
                uuid::Uuid::new_v4().to_string()
            } else {
                f.licenses
                    .lock()
                    .unwrap()
                    .entry(order.clone())
                    .or_insert_with(|| uuid::Uuid::new_v4().to_string())
                    .clone()
            };
            let mut a = envelope("000000");
            a["instanceId"] = json!(format!("lic-{order}"));
            if f.breakage != Breakage::MissingLicense {
                a["license"] = json!(license);
            }
            answer(f, key, a)
        }
        "refreshLicense" | "expireLicense" | "releaseLicense" => answer(f, key, envelope("000000")),
        _ => answer(f, key, envelope("000002")),
    }
}

/// The joint-operation kit (x-sign headers); `name` is the interface (`tenantSync`, …).
fn kit(f: &Fixture, name: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let key = KIT_KEY;
    if f.breakage != Breakage::AcceptsForgedSignatures {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        let req = SignedRequest {
            signature: h("x-sign"),
            timestamp: h("x-timestamp"),
            nonce: h("x-nonce"),
        };
        if let Err(e) = koogallery::sign::kit::verify(key, &req, body, now_ms(), 60_000) {
            return answer(f, key, envelope(e.result_code().code()));
        }
        let nonce = req.nonce.unwrap_or_default().to_owned();
        if !f.seen.lock().unwrap().insert(nonce) {
            return answer(f, key, envelope("000002"));
        }
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return answer(f, key, envelope("000002"));
    };
    if name == "applicationSync" {
        return application_sync(f, body);
    }
    let ok = request["timeStamp"].is_string() && request["tenantId"].is_string();
    answer(f, key, envelope(if ok { "000000" } else { "000002" }))
}

/// `applicationSync` as a merchant handles it (jointop.md §4.2, §5): every mandatory field, and
/// a `clientSecret` that decrypts with the merchant's private key, else `000005`.
fn application_sync(f: &Fixture, body: &[u8]) -> Response {
    use koogallery::crypto::rsa_oaep::{decrypt_client_secret, private_key_from_pem};
    use koogallery::model::kit::KitRequest;
    let key = KIT_KEY;
    let Ok(KitRequest::ApplicationSync(app)) = KitRequest::decode("applicationSync", body) else {
        return answer(f, key, envelope("000002"));
    };
    let private = private_key_from_pem(KIT_PRIVATE_KEY).unwrap();
    match decrypt_client_secret(&private, &app.client_secret) {
        Ok((secret, _)) if !secret.is_empty() => answer(f, key, envelope("000000")),
        Ok(_) => answer(f, key, envelope("000002")),
        Err(e) => answer(
            f,
            key,
            json!({"resultCode": "000005", "resultMsg": format!("cannot decrypt clientSecret: {e}")}),
        ),
    }
}

/// Serves the fixture on an ephemeral port with title-case header names (like koogate), or
/// hyper's lower-case default; returns the URL.
async fn start_fixture(breakage: Breakage) -> String {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let state = Arc::new(Fixture {
        breakage,
        seen: Mutex::new(HashSet::new()),
        licenses: Mutex::new(std::collections::HashMap::new()),
    });
    let app = axum::Router::new()
        .fallback(fixture_handler)
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/produce", listener.local_addr().unwrap());
    let title_case = breakage != Breakage::LowerCaseHeaders;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let service = TowerToHyperService::new(app.clone());
            let mut http = hyper::server::conn::http1::Builder::new();
            http.title_case_headers(title_case).timer(TokioTimer::new());
            tokio::spawn(async move {
                let _ = http.serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    url
}

/// Runs the saas-v2 conformance (`--json`) against a fixture; returns exit code and report.
async fn run_against(breakage: Breakage, extra: &[&str]) -> (Option<i32>, Value, Output) {
    run_family(breakage, "saas-v2", extra).await
}

/// Runs the conformance of `family` (`--json`, every key given) against a fixture.
async fn run_family(
    breakage: Breakage,
    family: &str,
    extra: &[&str],
) -> (Option<i32>, Value, Output) {
    let url = start_fixture(breakage).await;
    let mut args = vec![
        "conformance",
        "--url",
        &url,
        "--key",
        BASIC_KEY,
        "--kit-key",
        KIT_KEY,
        "--license-key",
        LICENSE_KEY,
        "--family",
        family,
        "--json",
    ];
    args.extend_from_slice(extra);
    let out = koogate(&args).await;
    let json: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&out)));
    (out.status.code(), json, out)
}

fn case<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no case {id} in {report:#}"))
}

fn reason<'a>(report: &'a Value, id: &str) -> &'a str {
    let c = case(report, id);
    assert_eq!(c["passed"], false, "{c:#}");
    c["reason"].as_str().unwrap()
}

fn passed(report: &Value, id: &str) {
    let c = case(report, id);
    assert_eq!(c["passed"], true, "{c:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_correct_fixture_passes_every_case() {
    for charging in CHARGING {
        let (code, report, out) = run_against(Breakage::None, &["--charging", charging]).await;
        assert_eq!(code, Some(0), "{}", show(&out));
        check_json_report(&report, "saas-v2", charging, true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_body_sign_is_named() {
    let (code, report, out) = run_against(Breakage::WrongBodySign, &["--debug-only"]).await;
    assert_eq!(code, Some(1), "{}", show(&out));
    let r = reason(&report, "debug.newInstance");
    assert!(r.starts_with("Body-Sign does not match the body"), "{r}");
    assert!(r.contains("over the exact"), "{r}");
    assert_eq!(
        report["passed"], 0,
        "every answer carries the wrong Body-Sign"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_content_type_is_named() {
    let (code, report, out) = run_against(Breakage::WrongContentType, &["--debug-only"]).await;
    assert_eq!(code, Some(1), "{}", show(&out));
    let r = reason(&report, "debug.queryInstance");
    assert!(
        r.starts_with(r#"调测失败,响应content-type格式错误,正确的格式为"application/json"."#),
        "{r}"
    );
    assert!(r.contains(r#"Content-Type is "text/plain""#), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_instance_id_is_named() {
    let (code, report, out) = run_against(Breakage::MissingInstanceId, &[]).await;
    assert_eq!(code, Some(1), "{}", show(&out));
    for id in [
        "debug.newInstance",
        "debug.newInstance.repeat",
        "real.newInstance",
    ] {
        let r = reason(&report, id);
        assert!(
            r.starts_with("调测失败,接口响应缺少instanceId."),
            "{id}: {r}"
        );
    }
    // Only the creations fail (and the real cases that need the real instance).
    passed(&report, "debug.queryInstance");
    passed(&report, "debug.releaseInstance");
    passed(&report, "auth.wrong-key");
    let r = reason(&report, "real.newInstance.resend");
    assert!(r.contains("real.newInstance returned no instanceId"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_200_status_is_named() {
    let (code, report, out) = run_against(Breakage::Status500, &["--debug-only"]).await;
    assert_eq!(code, Some(1), "{}", show(&out));
    let r = reason(&report, "debug.newInstance");
    assert!(r.starts_with("调测失败,接口响应httpCode=500."), "{r}");
    let r = reason(&report, "auth.wrong-key");
    assert!(
        r.contains("KooGallery accepts only 200, also for refusals"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_a_forged_signature_is_named() {
    let (code, report, out) =
        run_against(Breakage::AcceptsForgedSignatures, &["--debug-only"]).await;
    assert_eq!(code, Some(1), "{}", show(&out));
    // Everything KooGallery sends works...
    passed(&report, "debug.newInstance");
    passed(&report, "debug.queryInstance");
    // ...but forged, stale and replayed requests are accepted.
    let r = reason(&report, "auth.wrong-key");
    assert!(
        r.contains("the endpoint accepted a request signed with another key (a forged signature) with resultCode 000000; it must refuse it with 000001"),
        "{r}"
    );
    for id in [
        "auth.tampered-body",
        "auth.missing-signature",
        "auth.stale-timestamp",
        "auth.future-timestamp",
        "auth.replay",
    ] {
        assert!(reason(&report, id).contains("accepted"), "{id}");
    }
    assert!(
        text(&out.stderr).contains("conformance cases failed"),
        "{}",
        show(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_front_end_url_is_named() {
    let (code, report, out) = run_against(Breakage::LongFrontEndUrl, &["--debug-only"]).await;
    assert_eq!(code, Some(1), "{}", show(&out));
    let r = reason(&report, "debug.queryInstance");
    assert_eq!(
        r,
        "info[0].appInfo.frontEndUrl is 513 characters, longer than its limit of 512"
    );
    passed(&report, "debug.newInstance");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_case_body_sign_header_is_noted_for_v2() {
    // V2 does not mandate Body-Sign: the run passes, each case notes the header's case.
    let (code, report, out) = run_against(Breakage::LowerCaseHeaders, &["--debug-only"]).await;
    assert_eq!(code, Some(0), "{}", show(&out));
    let notes = case(&report, "debug.newInstance")["notes"]
        .as_array()
        .unwrap();
    assert!(
        notes[0]
            .as_str()
            .unwrap()
            .contains(r#"Body-Sign is sent as "body-sign""#),
        "{notes:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junit_counts_failures() {
    let url = start_fixture(Breakage::MissingInstanceId).await;
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("report.xml");
    let out = koogate(&[
        "conformance",
        "--url",
        &url,
        "--key",
        BASIC_KEY,
        "--family",
        "saas-v2",
        "--charging",
        "onetime",
        "--debug-only",
        "--junit",
        junit.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let table = text(&out.stdout);
    let fail_line = table
        .lines()
        .find(|l| l.starts_with("debug.newInstance "))
        .unwrap();
    assert!(fail_line.contains("FAIL"), "{table}");
    assert!(
        fail_line.contains("调测失败,接口响应缺少instanceId."),
        "{table}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let elements = assert_well_formed_xml(&xml);
    let failures = elements.iter().filter(|e| *e == "failure").count();
    // debug.newInstance, debug.newInstance.repeat, shuffled.N.newInstance.
    assert_eq!(failures, 3, "{xml}");
    assert_eq!(attr(&xml, "testsuites", "failures"), "3");
    assert_eq!(attr(&xml, "testsuite", "failures"), "3");
    assert!(xml.contains("接口响应缺少instanceId"), "{xml}");
}

// ---------------------------------------------------------------------------------------------
// (c) Nobody listening; usage errors; families not implemented.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_address_fails_with_the_consoles_message() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}/produce");
    let out = koogate(&[
        "conformance",
        "--url",
        &url,
        "--key",
        "k",
        "--family",
        "saas-v2",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let table = text(&out.stdout);
    assert!(
        table.contains("debug.newInstance                         FAIL    调测失败,生产地址不可达. (the production address is unreachable"),
        "{table}"
    );
    assert!(
        table.contains("not run: 调测失败,生产地址不可达."),
        "{table}"
    );
    assert!(
        text(&out.stderr).starts_with(&format!(
            "error: 调测失败,生产地址不可达. {url} is unreachable"
        )),
        "{}",
        show(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    let url = "http://127.0.0.1:9/p";
    for args in [
        &["conformance", "--url", url, "--key", "k"][..],
        &["conformance", "--url", url, "--family", "saas-v2"],
        &[
            "conformance",
            "--url",
            "ftp://x/p",
            "--key",
            "k",
            "--family",
            "saas-v2",
        ],
        &[
            "conformance",
            "--url",
            url,
            "--key",
            "k",
            "--family",
            "saas-v3",
        ],
        &[
            "conformance",
            "--url",
            url,
            "--key",
            "k",
            "--family",
            "saas-v2",
            "--charging",
            "weekly",
        ],
        &["conformance", "--url", url, "--key", "k", "--family", "kit"],
        &[
            "conformance",
            "--url",
            url,
            "--key",
            "k",
            "--family",
            "license-code",
        ],
        &[
            "conformance",
            "--url",
            url,
            "--key",
            "k",
            "--family",
            "license-v1",
            "--charging",
            "ondemand",
        ],
        &[
            "conformance",
            "--url",
            url,
            "--key",
            "k",
            "--family",
            "saas-v2",
            "--provision-timeout",
            "0",
        ],
    ] {
        let out = koogate(args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The License and kit families, against the reference endpoint (koogate does not serve them).
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_passes_every_license_and_kit_case() {
    for (family, charging) in [
        ("license-v1", "period"),
        ("license-v1", "onetime"),
        ("license-online", "period"),
        ("license-online", "onetime"),
        ("license-code", "period"),
        ("license-code", "onetime"),
        ("kit", "period"),
    ] {
        let (code, report, out) =
            run_family(Breakage::None, family, &["--charging", charging]).await;
        assert_eq!(code, Some(0), "{family} {charging}: {}", show(&out));
        check_json_report(&report, family, charging, true);
    }
    // With the merchant's public key the kit run adds applicationSync, and still passes 100%.
    let dir = tempfile::tempdir().unwrap();
    let key_file = write_key(dir.path(), "merchant_pub.pem", KIT_PUBLIC_KEY);
    for extra in [&[][..], &["--debug-only"]] {
        let mut args = vec!["--kit-public-key", key_file.as_str()];
        args.extend_from_slice(extra);
        let (code, report, out) = run_family(Breakage::None, "kit", &args).await;
        assert_eq!(code, Some(0), "{extra:?}: {}", show(&out));
        check_json_report_with(&report, "kit", "period", extra.is_empty(), true);
    }
}

fn write_key(dir: &std::path::Path, name: &str, pem: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path.to_str().unwrap().to_owned()
}

/// A valid RSA public key in PEM that is not the merchant's: the fixture key with one byte of
/// its modulus changed (nobody has the private key).
fn another_public_key() -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let b64: String = KIT_PUBLIC_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let mut der = STANDARD.decode(b64).unwrap();
    // The 384-byte modulus fills most of the 422-byte SPKI: the middle byte is in it.
    let middle = der.len() / 2;
    der[middle] ^= 0x5a;
    pem("PUBLIC KEY", &der)
}

/// A 512-bit RSA public key in PKCS#1 PEM: valid, but too small for RSA-OAEP with SHA-256.
fn tiny_public_key() -> String {
    let mut modulus = vec![0x00, 0xc0];
    modulus.extend([0x11; 62]);
    modulus.push(0x01);
    let mut der = vec![0x30, 0x48, 0x02, 0x41];
    der.extend(modulus);
    der.extend([0x02, 0x03, 0x01, 0x00, 0x01]);
    pem("RSA PUBLIC KEY", &der)
}

/// DER as PEM: Base64 in lines of 64 characters (RFC 7468).
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_application_sync_without_the_public_key_is_listed_as_skipped() {
    let url = start_fixture(Breakage::None).await;
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("kit.xml");
    let out = koogate(&[
        "conformance",
        "--url",
        &url,
        "--key",
        BASIC_KEY,
        "--kit-key",
        KIT_KEY,
        "--family",
        "kit",
        "--junit",
        junit.to_str().unwrap(),
    ])
    .await;
    // Today's behaviour: every case sent passes, exit 0...
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let table = text(&out.stdout);
    assert!(
        !table
            .lines()
            .any(|l| l.contains("applicationSync") && !l.contains(" skip ")),
        "{table}"
    );
    // ...and the table says what was not sent, and why.
    for id in std::iter::once(format!("debug.{KIT_APP_DEBUG}"))
        .chain(KIT_APP_REAL.iter().map(|a| format!("real.{a}")))
    {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{id} missing from\n{table}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[1], "skip", "{line}");
        assert!(
            line.contains("not sent: applicationSync.clientSecret must be RSA-OAEP-encrypted with the merchant's public key (jointop.md §5), and no --kit-public-key FILE was given"),
            "{line}"
        );
    }
    let total = table
        .lines()
        .filter(|l| {
            l.starts_with("debug.")
                || l.starts_with("shuffled.")
                || l.starts_with("auth.")
                || l.starts_with("real.")
        })
        .count()
        - 6;
    assert!(
        table.trim_end().ends_with(&format!(
            "{total} cases: {total} passed, 0 failed; 6 skipped (not sent)"
        )),
        "{table}"
    );
    // JUnit: six skipped test cases, counted as such.
    let xml = std::fs::read_to_string(&junit).unwrap();
    let elements = assert_well_formed_xml(&xml);
    assert_eq!(
        elements.iter().filter(|e| *e == "skipped").count(),
        6,
        "{xml}"
    );
    assert_eq!(attr(&xml, "testsuite", "skipped"), "6");
    assert_eq!(attr(&xml, "testsuite", "tests"), (total + 6).to_string());
    assert_eq!(attr(&xml, "testsuite", "failures"), "0");
    assert!(
        xml.contains("name=\"real.applicationSync.modify\""),
        "{xml}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_application_sync_with_another_public_key_fails_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = write_key(dir.path(), "not_the_merchants.pem", &another_public_key());
    let (code, report, out) =
        run_family(Breakage::None, "kit", &["--kit-public-key", &key_file]).await;
    assert_eq!(code, Some(1), "{}", show(&out));
    let r = reason(&report, "debug.applicationSync.add");
    assert!(
        r.starts_with("调用失败,生产接口resultCode返回错误. (resultCode 000005, expected 000000; resultMsg \"cannot decrypt clientSecret"),
        "{r}"
    );
    assert!(
        r.contains("the endpoint probably could not decrypt clientSecret (jointop.md §5). It was encrypted with RSA-OAEP OAEP-SHA256-MGF1-SHA256 and Base64-encoded, with the 3072-bit public key given with --kit-public-key: check that it is the public key of the private key the endpoint decrypts with"),
        "{r}"
    );
    // Every applicationSync case fails (debug, its shuffled replay, the five real ones); nothing
    // else does.
    let failed: Vec<&str> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed.len(), 7, "{failed:?}");
    assert!(
        failed.iter().all(|id| id.contains(".applicationSync.")),
        "{failed:?}"
    );
    passed(&report, "debug.tenantSync.add");
    passed(&report, "real.authSync.add");
    assert!(report["skipped"].as_array().unwrap().is_empty());
    // The request carried the encrypted secret, never the plaintext.
    let body = case(&report, "real.applicationSync.modify")["exchange"]["request_body"]
        .as_str()
        .unwrap()
        .to_owned();
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["flag"], 2);
    assert_eq!(body["testFlag"], 0);
    assert!(
        !body["clientSecret"]
            .as_str()
            .unwrap()
            .contains("kgc-client-secret")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kit_public_key_that_is_not_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = write_key(dir.path(), "hello.pem", "hello");
    let private = write_key(dir.path(), "merchant_key.pem", KIT_PRIVATE_KEY);
    let missing = dir.path().join("nowhere.pem").to_str().unwrap().to_owned();
    let tiny = write_key(dir.path(), "tiny.pem", &tiny_public_key());
    let not_rsa = write_key(
        dir.path(),
        "garbage.pem",
        &pem("PUBLIC KEY", b"not DER at all"),
    );
    let certificate = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = write_key(dir.path(), "cert.pem", &certificate.cert.pem());
    for (file, expected) in [
        (
            not_pem.clone(),
            format!(
                "error: --kit-public-key {not_pem}: not a PEM file (no \"-----BEGIN PUBLIC KEY-----\" line)"
            ),
        ),
        (
            not_rsa.clone(),
            format!(
                "error: --kit-public-key {not_rsa}: not an RSA public key in PEM (SPKI or PKCS#1)"
            ),
        ),
        (
            cert.clone(),
            format!("error: --kit-public-key {cert}: this is a certificate; give its public key"),
        ),
        (
            private.clone(),
            format!(
                "error: --kit-public-key {private}: this is a private key; give the public key uploaded in the seller console"
            ),
        ),
        (
            missing.clone(),
            format!("error: --kit-public-key {missing}: cannot read"),
        ),
        (
            tiny.clone(),
            format!("error: --kit-public-key {tiny}: cannot encrypt a clientSecret of "),
        ),
    ] {
        let out = koogate(&[
            "conformance",
            "--url",
            "http://127.0.0.1:9/p",
            "--key",
            BASIC_KEY,
            "--kit-key",
            KIT_KEY,
            "--family",
            "kit",
            "--kit-public-key",
            &file,
        ])
        .await;
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(out.stdout.is_empty(), "{}", show(&out));
        assert!(text(&out.stderr).starts_with(&expected), "{}", show(&out));
    }
    // No value at all is clap's usage error.
    let out = koogate(&[
        "conformance",
        "--url",
        "http://127.0.0.1:9/p",
        "--key",
        BASIC_KEY,
        "--kit-key",
        KIT_KEY,
        "--family",
        "kit",
        "--kit-public-key",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn license_v1_failures_are_named() {
    let (code, report, out) = run_family(Breakage::MissingLicense, "license-v1", &[]).await;
    assert_eq!(code, Some(1), "{}", show(&out));
    let r = reason(&report, "debug.getLicense");
    assert!(r.starts_with("调测失败,接口响应缺少license."), "{r}");
    passed(&report, "debug.releaseLicense");

    let (code, report, out) = run_family(Breakage::FreshLicenseEveryTime, "license-v1", &[]).await;
    assert_eq!(code, Some(1), "{}", show(&out));
    passed(&report, "real.getLicense");
    let r = reason(&report, "real.getLicense.resend");
    assert!(
        r.contains("the same order got another license on a resend"),
        "{r}"
    );
    assert_eq!(report["failed"], 1, "{report:#}");

    // V1 answers must carry exactly `Body-Sign`: a lower-case name fails every case.
    let (code, report, out) =
        run_family(Breakage::LowerCaseHeaders, "license-v1", &["--debug-only"]).await;
    assert_eq!(code, Some(1), "{}", show(&out));
    assert_eq!(report["passed"], 0);
    let r = reason(&report, "debug.getLicense");
    assert!(r.starts_with("http header->bodySign is empty."), "{r}");
    assert!(r.contains(r#"the header is sent as "body-sign""#), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn license_code_accepting_the_basic_key_is_named() {
    let (code, report, out) = run_family(
        Breakage::AcceptsBasicKeyForLicenseCodes,
        "license-code",
        &[],
    )
    .await;
    assert_eq!(code, Some(1), "{}", show(&out));
    let r = reason(&report, "auth.basic-key");
    assert!(
        r.contains("the endpoint accepted a request signed with the basic key instead of the license-code key"),
        "{r}"
    );
    assert_eq!(report["failed"], 1, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kit_failures_are_named() {
    let (code, report, out) = run_family(Breakage::AcceptsForgedSignatures, "kit", &[]).await;
    assert_eq!(code, Some(1), "{}", show(&out));
    passed(&report, "debug.tenantSync.add");
    passed(&report, "real.tenantSync.delete.again");
    let r = reason(&report, "auth.missing-x-sign");
    assert!(
        r.contains("the endpoint accepted a request without x-sign with resultCode 000000; it must refuse it with 000001"),
        "{r}"
    );
    let (code, report, out) =
        run_family(Breakage::WrongContentType, "kit", &["--debug-only"]).await;
    assert_eq!(code, Some(1), "{}", show(&out));
    let r = reason(&report, "debug.allOrgSync.string");
    assert!(r.starts_with("调测失败,响应content-type格式错误"), "{r}");
    // The kit paths are appended to the production URL (jointop.md §1).
    let request = case(&report, "debug.tenantSync.add")["exchange"]["request"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        request.starts_with("POST /produce/produceAPI/v2/tenantSync [x-sign: "),
        "{request}"
    );
}

// ---------------------------------------------------------------------------------------------
// HTTPS: koogate with native TLS and a private CA.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca_needs_ca_cert() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let db = TestDb::fresh(Backend::Sqlite).await;
    let mut args = common::config_args(&db.url, dir.path(), &Options::default());
    args.tls_cert = Some(cert_path.clone());
    args.tls_key = Some(key_path);
    let mut config = koogate::config::Config::load(&args).unwrap();
    config.prepare_data_dir().unwrap();
    let store = koogate::store::Db::open(&config.database_url)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(koogate::cli::serve::run_server(
        config, store, listener, shutdown,
    ));
    let url = format!("https://localhost:{port}/produce");

    // As KooGallery: a certificate no public CA signed is an unreachable address.
    let out = koogate(&[
        "conformance",
        "--url",
        &url,
        "--key",
        BASIC_KEY,
        "--family",
        "saas-v2",
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = reason(&report, "debug.newInstance");
    assert!(
        r.starts_with("调测失败,生产地址不可达. (the production address is unreachable: TLS: "),
        "{r}"
    );

    // Trusting the private CA, everything passes over HTTPS.
    let out = koogate(&[
        "conformance",
        "--url",
        &url,
        "--key",
        BASIC_KEY,
        "--family",
        "saas-v1",
        "--ca-cert",
        cert_path.to_str().unwrap(),
        "--json",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    check_json_report(&report, "saas-v1", "period", true);

    let bad = dir.path().join("not-a-cert.pem");
    std::fs::write(&bad, "hello").unwrap();
    let out = koogate(&[
        "conformance",
        "--url",
        &url,
        "--key",
        BASIC_KEY,
        "--family",
        "saas-v2",
        "--ca-cert",
        bad.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("holds no PEM certificate"),
        "{}",
        show(&out)
    );

    let _ = stop.send(true);
    task.await.unwrap().unwrap();
}
