//! License code activate/query and the market-event upload (openapi.md §6, §7), on the
//! emulator's book directly.

use koogallery::model::openapi::LicenseApiCode;
use koogallery_emulator::license::{LicenseBook, LicenseCode};
use sha2::{Digest, Sha256};

const JSON: Option<&str> = Some("application/json");
const NOW: i64 = 1_796_032_800_000;

fn book() -> LicenseBook {
    let mut book = LicenseBook::new();
    book.issue_code(LicenseCode {
        code: "PL-0001".to_owned(),
        order_id: "CS-LIC".to_owned(),
        product_id: "OFFI-LIC".to_owned(),
        amount: 2,
        expire_at_ms: NOW + 365 * 24 * 3600 * 1000,
        received: false,
        activated_at_ms: None,
        status: "ALIVE".to_owned(),
        heartbeats: Default::default(),
    });
    book
}

fn code_of(error_code: &str) -> LicenseApiCode {
    LicenseApiCode::parse(error_code).unwrap()
}

#[test]
fn activation_needs_a_received_code_and_happens_once() {
    let mut book = book();
    let body = br#"{"license":"PL-0001"}"#;
    let a = book.activate(JSON, body, NOW);
    assert_eq!(code_of(&a.body.error_code), LicenseApiCode::NotReceived);
    book.receive("PL-0001");
    let a = book.activate(JSON, body, NOW);
    assert_eq!((a.status, a.body.error_code.as_str()), (200, "92020000"));
    // license_code_info is a JSON *string* (openapi.md §6.1).
    let wire = serde_json::to_value(&a.body).unwrap();
    let info: serde_json::Value =
        serde_json::from_str(wire["data"]["license_code_info"].as_str().unwrap()).unwrap();
    assert_eq!(info["status"], "ALIVE");
    assert_eq!(info["order_id"], "CS-LIC");
    assert_eq!(info["amount"], 2);
    let again = book.activate(JSON, body, NOW);
    assert_eq!(
        code_of(&again.body.error_code),
        LicenseApiCode::IllegalState
    );
    let unknown = book.activate(JSON, br#"{"license":"PL-404"}"#, NOW);
    assert_eq!(
        code_of(&unknown.body.error_code),
        LicenseApiCode::LicenseCodeNotExist
    );
}

#[test]
fn bad_requests_get_the_documented_codes() {
    let mut book = book();
    let a = book.activate(Some("text/plain"), br#"{"license":"PL-0001"}"#, NOW);
    assert_eq!((a.status, a.body.error_code.as_str()), (415, "95000003"));
    let a = book.activate(JSON, b"{not json", NOW);
    assert_eq!((a.status, a.body.error_code.as_str()), (400, "95000004"));
    let a = book.activate(JSON, br#"{"real_effect_time":"20261130100000"}"#, NOW);
    assert_eq!((a.status, a.body.error_code.as_str()), (400, "95000001"));
    assert!(a.body.error_msg.contains("license"), "{}", a.body.error_msg);
}

#[test]
fn heartbeat_reports_the_state_and_records_the_account() {
    let mut book = book();
    let body =
        br#"{"license":"PL-0001","heartbeatInfo":{"thirdPartyAccount":"dev-1","ip":"10.0.0.1"}}"#;
    let h = book.heartbeat(JSON, body, NOW);
    assert_eq!(code_of(&h.body.error_code), LicenseApiCode::NotActivated);
    book.receive("PL-0001");
    book.activate(JSON, br#"{"license":"PL-0001"}"#, NOW);
    let h = book.heartbeat(JSON, body, NOW + 1000);
    assert_eq!(h.body.error_code, "92020000");
    let info = h.body.data.unwrap();
    assert_eq!(
        (info.license_code.as_str(), info.status.as_str()),
        ("PL-0001", "ALIVE")
    );
    assert_eq!(
        book.code("PL-0001").unwrap().heartbeats["dev-1"],
        NOW + 1000
    );
    book.set_status("PL-0001", "RELEASED");
    let h = book.heartbeat(JSON, body, NOW);
    assert_eq!(h.body.data.unwrap().status, "RELEASED");
}

#[test]
fn market_event_upload_of_a_file_checks_its_digest_once() {
    let mut book = LicenseBook::new();
    book.expect_event("evt-1", "inst-1");
    let file = b"LICENSE-CONTENT";
    let digest = hex::encode(Sha256::digest(file));
    let wrong = format!(
        r#"{{"type":"FILE","file_name":"a.lic","sha256":"{}"}}"#,
        "0".repeat(64)
    );
    let u = book.upload("evt-1", Some(wrong.as_bytes()), Some(file), NOW);
    assert_eq!(u.body.error_code, "92020002");
    assert!(u.body.error_msg.contains("sha256"));
    let right = format!(r#"{{"type":"FILE","file_name":"a.lic","sha256":"{digest}"}}"#);
    let u = book.upload("evt-1", Some(right.as_bytes()), Some(file), NOW);
    assert_eq!((u.status, u.body.error_code.as_str()), (200, "92020000"));
    let delivery = book.event("evt-1").unwrap().delivery.clone().unwrap();
    assert_eq!(
        (delivery.kind.as_str(), delivery.size),
        ("FILE", file.len())
    );
    let u = book.upload("evt-1", Some(right.as_bytes()), Some(file), NOW);
    assert_eq!(u.body.error_code, "92020003");
    // A FILE without its file part, and an event that was never issued.
    book.expect_event("evt-2", "inst-2");
    let u = book.upload("evt-2", Some(right.as_bytes()), None, NOW);
    assert_eq!(u.body.error_code, "95000001");
    let u = book.upload("evt-404", Some(right.as_bytes()), Some(file), NOW);
    assert_eq!(u.body.error_code, "92020002");
}

#[test]
fn market_event_upload_of_characters() {
    let mut book = LicenseBook::new();
    book.expect_event("evt-1", "inst-1");
    let u = book.upload("evt-1", Some(br#"{"type":"CHARACTERS"}"#), None, NOW);
    assert_eq!(u.body.error_code, "95000001");
    let u = book.upload(
        "evt-1",
        Some(br#"{"type":"OTHER","characters":"x"}"#),
        None,
        NOW,
    );
    assert_eq!(u.body.error_code, "95000001");
    let u = book.upload(
        "evt-1",
        Some(br#"{"type":"CHARACTERS","characters":"KEY-123"}"#),
        None,
        NOW,
    );
    assert_eq!(u.body.error_code, "92020000");
    let delivery = book.event("evt-1").unwrap().delivery.clone().unwrap();
    assert_eq!(delivery.characters.as_deref(), Some("KEY-123"));
}
