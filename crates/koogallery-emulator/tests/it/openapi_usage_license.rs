//! The usage, license and market-event open APIs over HTTP: the APIG check in front, then the
//! business rules (openapi.md §3, §6, §7).

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use koogallery::model::openapi::{UsagePushRequest, UsageRecord};
use koogallery::sign::{apig, usage};
use koogallery_emulator::license::LicenseCode;
use koogallery_emulator::openapi::{self, OpenApi, Verdict};
use koogallery_emulator::usage::{MeteredInstance, OLD_USAGE_PATH, USAGE_PATH};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};

const AK: &str = "TESTAK0000000000";
const SK: &str = "TESTSK0000000000000000000000000000000000";
const BASIC_KEY: &str = "basic-key-0001";
const DATE: &str = "20261130T100000Z";
const HOUR: i64 = 3600 * 1000;

fn now_ms() -> i64 {
    koogallery::time::epoch_millis(koogallery::time::parse_sdk_date(DATE).unwrap())
}

fn t(ms: i64) -> String {
    koogallery::time::format_sdk_date(koogallery::time::from_epoch_millis(ms).unwrap())
}

async fn start(basic_key: Option<&str>) -> (Arc<OpenApi>, SocketAddr) {
    let now = now_ms();
    let mut api = OpenApi::new([(AK, SK)]).with_clock(move || now);
    if let Some(key) = basic_key {
        api = api.with_usage_key(key);
    }
    let api = Arc::new(api);
    let (addr, _server) = openapi::spawn(api.clone()).await.unwrap();
    (api, addr)
}

/// POSTs `body` APIG-signed (with `sk`) plus `extra` headers; returns status and JSON.
async fn post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    extra: &[(String, String)],
    body: Vec<u8>,
    sk: &str,
) -> (u16, serde_json::Value) {
    let host = addr.to_string();
    let mut headers = vec![("Content-Type".to_owned(), content_type.to_owned())];
    headers.extend(extra.iter().cloned());
    let signed = apig::sign(
        &apig::Request {
            method: "POST",
            host: &host,
            path,
            query: &[],
            headers: &headers,
            body: &body,
        },
        AK,
        sk,
        DATE,
    );
    let mut request = reqwest::Client::new().post(format!("http://{addr}{path}"));
    for (k, v) in headers.iter().chain(&signed.added_headers) {
        request = request.header(k, v);
    }
    let response = request
        .header("Authorization", &signed.authorization)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    (status, response.json().await.unwrap())
}

fn usage_body(instance: &str, sn: &str) -> Vec<u8> {
    let now = now_ms();
    serde_json::to_vec(&UsagePushRequest {
        usage_records: vec![UsageRecord {
            begin_time: t(now - 2 * HOUR),
            end_time: t(now - HOUR),
            instance_id: instance.to_owned(),
            metering_sn: sn.to_owned(),
            record_time: t(now),
            relate_pkg_instance: None,
            usage_value: "2.5".to_owned(),
        }],
    })
    .unwrap()
}

fn body_signature(key: &str, body: &[u8]) -> Vec<(String, String)> {
    let (ts, nonce) = ("1796032800000", "6c63c221-1f6b-4141-8ff4-22f5dfe82b65");
    vec![
        ("ts".to_owned(), ts.to_owned()),
        ("nonce".to_owned(), nonce.to_owned()),
        ("signature".to_owned(), usage::sign(key, ts, nonce, body)),
    ]
}

fn register(api: &OpenApi, instance: &str) {
    api.usage().register(
        instance,
        MeteredInstance {
            product_id: "OFFI-OD".to_owned(),
            unit_price: Decimal::from_str("0.2").unwrap(),
            opened_at_ms: now_ms() - 24 * HOUR,
            closed_at_ms: None,
        },
    );
}

#[tokio::test]
async fn usage_push_is_checked_twice_and_billed_once() {
    let (api, addr) = start(Some(BASIC_KEY)).await;
    register(&api, "inst-od");
    let body = usage_body("inst-od", "sn-1");
    let sig = body_signature(BASIC_KEY, &body);
    let (status, json) = post(addr, USAGE_PATH, "application/json", &sig, body.clone(), SK).await;
    assert_eq!(
        (status, json["error_code"].as_str()),
        (200, Some("MKT.0000"))
    );
    // A retry of the same records (same metering_sn) is recognised.
    let (_, json) = post(addr, USAGE_PATH, "application/json", &sig, body.clone(), SK).await;
    assert_eq!(json["error_code"], "MKT.0000");
    let bills = api.usage().bills().to_vec();
    assert_eq!(bills.len(), 1);
    assert_eq!(bills[0].amount, Decimal::from_str("0.5").unwrap());
    // A wrong body signature: the gateway passes it, the API refuses it.
    let bad = body_signature("another-key", &body);
    let (status, json) = post(addr, USAGE_PATH, "application/json", &bad, body.clone(), SK).await;
    assert_eq!(
        (status, json["error_code"].as_str()),
        (400, Some("MKT.0102"))
    );
    // A wrong APIG signature never reaches the API.
    let (status, json) = post(addr, USAGE_PATH, "application/json", &sig, body, "WRONG-SK").await;
    assert_eq!(
        (status, json["error_code"].as_str()),
        (401, Some("APIGW.0301"))
    );
    assert_eq!(api.usage().bills().len(), 1);
    let verdicts: Vec<bool> = api
        .requests()
        .iter()
        .map(|r| r.verdict.is_verified())
        .collect();
    assert_eq!(verdicts, [true, true, true, false]);
    assert!(matches!(
        api.requests()[3].verdict,
        Verdict::Rejected { .. }
    ));
}

#[tokio::test]
async fn usage_push_without_a_configured_basic_key_is_refused() {
    let (api, addr) = start(None).await;
    register(&api, "inst-od");
    let body = usage_body("inst-od", "sn-1");
    let sig = body_signature(BASIC_KEY, &body);
    let (status, json) = post(addr, USAGE_PATH, "application/json", &sig, body, SK).await;
    assert_eq!(
        (status, json["error_code"].as_str()),
        (400, Some("MKT.0102"))
    );
    assert!(json["error_msg"].as_str().unwrap().contains("--basic-key"));
    assert!(api.usage().bills().is_empty());
}

#[tokio::test]
async fn unknown_instances_are_reported() {
    let (_api, addr) = start(Some(BASIC_KEY)).await;
    let body = usage_body("nobody", "sn-1");
    let sig = body_signature(BASIC_KEY, &body);
    let (status, json) = post(addr, USAGE_PATH, "application/json", &sig, body, SK).await;
    assert_eq!(
        (status, json["error_code"].as_str()),
        (500, Some("MKT.9001"))
    );
    assert_eq!(json["abnormal_usage_data"][0]["metering_sn"], "sn-1");
}

#[tokio::test]
async fn old_usage_api_takes_apig_only() {
    let (api, addr) = start(None).await;
    register(&api, "inst-od");
    let now = now_ms();
    let body = serde_json::json!({"usage_records": [{
        "instance_id": "inst-od", "product_id": "OFFI-OD", "record_time": t(now),
        "begin_time": t(now - 2 * HOUR), "end_time": t(now - HOUR), "usage_value": "1"
    }]})
    .to_string()
    .into_bytes();
    let (status, json) = post(addr, OLD_USAGE_PATH, "application/json", &[], body, SK).await;
    assert_eq!(
        (status, json["error_code"].as_str()),
        (200, Some("MKT.0000"))
    );
    assert_eq!(api.usage().bills().len(), 1);
}

fn issue(api: &OpenApi, code: &str) {
    api.licenses().issue_code(LicenseCode {
        code: code.to_owned(),
        order_id: "CS-LIC".to_owned(),
        product_id: "OFFI-LIC".to_owned(),
        amount: 1,
        expire_at_ms: now_ms() + 30 * 24 * HOUR,
        received: true,
        activated_at_ms: None,
        status: "ALIVE".to_owned(),
        heartbeats: Default::default(),
    });
}

#[tokio::test]
async fn license_code_activate_then_heartbeat_on_both_versions() {
    let (api, addr) = start(None).await;
    issue(&api, "PL-1");
    issue(&api, "PL-2");
    for (v, code) in [("v1", "PL-1"), ("v2", "PL-2")] {
        let activate = format!("/api/mkp-openapi-public/global/{v}/license/activate");
        let heartbeat = format!("/api/mkp-openapi-public/global/{v}/license/heartbeat");
        let body = format!(r#"{{"license":"{code}"}}"#).into_bytes();
        let (status, json) = post(addr, &activate, "application/json", &[], body.clone(), SK).await;
        assert_eq!(
            (status, json["error_code"].as_str()),
            (200, Some("92020000")),
            "{v}"
        );
        assert!(json["data"]["license_code_info"].is_string());
        let (_, json) = post(addr, &activate, "application/json", &[], body.clone(), SK).await;
        assert_eq!(json["error_code"], "92020003", "{v}: no second activation");
        let (_, json) = post(addr, &heartbeat, "application/json", &[], body, SK).await;
        assert_eq!(json["error_code"], "92020000");
        assert_eq!(json["data"]["status"], "ALIVE");
    }
    let (status, json) = post(
        addr,
        "/api/mkp-openapi-public/global/v1/license/activate",
        "text/plain",
        &[],
        b"{}".to_vec(),
        SK,
    )
    .await;
    assert_eq!(
        (status, json["error_code"].as_str()),
        (415, Some("95000003"))
    );
}

fn multipart(boundary: &str, request: &str, file: Option<&[u8]>) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"isvUpdateFileReq\"\r\nContent-Type: application/json\r\n\r\n{request}\r\n"
    )
    .into_bytes();
    if let Some(file) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.lic\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test]
async fn market_event_upload_delivers_a_file_license() {
    let (api, addr) = start(None).await;
    api.licenses().expect_event("evt-0001", "inst-lic");
    let file = b"-----BEGIN LICENSE-----\nabc\n-----END LICENSE-----\n";
    let digest = hex::encode(Sha256::digest(file));
    let boundary = "koogate-test-boundary";
    let content_type = format!("multipart/form-data; boundary={boundary}");
    let request = format!(r#"{{"type":"FILE","file_name":"a.lic","sha256":"{digest}"}}"#);
    let path = "/api/mkp-openapi-public/global/v1/market-event/evt-0001/file";
    let body = multipart(boundary, &request, Some(file));
    let (status, json) = post(addr, path, &content_type, &[], body, SK).await;
    assert_eq!(
        (status, json["error_code"].as_str()),
        (200, Some("92020000")),
        "{json}"
    );
    let delivery = api
        .licenses()
        .event("evt-0001")
        .unwrap()
        .delivery
        .clone()
        .unwrap();
    assert_eq!(delivery.sha256.as_deref(), Some(digest.as_str()));
    // JSON instead of multipart.
    let (status, json) = post(addr, path, "application/json", &[], b"{}".to_vec(), SK).await;
    assert_eq!(
        (status, json["error_code"].as_str()),
        (415, Some("95000003"))
    );
}
