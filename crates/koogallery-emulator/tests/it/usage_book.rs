//! The usage-data API's rules (openapi.md §3, §4), on the emulator's book directly.

use koogallery::model::openapi::{UsagePushRequest, UsageRecord};
use koogallery::sign::usage;
use koogallery_emulator::usage::{MeteredInstance, UsageBook};
use rust_decimal::Decimal;
use std::str::FromStr;

const KEY: &str = "basic-key";
const HOUR: i64 = 3600 * 1000;
/// 2026-11-30T10:00:00Z.
const NOW: i64 = 1_796_032_800_000;

fn t(ms: i64) -> String {
    koogallery::time::format_sdk_date(koogallery::time::from_epoch_millis(ms).unwrap())
}

fn record(instance: &str, hours_ago: i64, value: &str, sn: &str) -> UsageRecord {
    UsageRecord {
        begin_time: t(NOW - hours_ago * HOUR),
        end_time: t(NOW - (hours_ago - 1) * HOUR),
        instance_id: instance.to_owned(),
        metering_sn: sn.to_owned(),
        record_time: t(NOW),
        relate_pkg_instance: None,
        usage_value: value.to_owned(),
    }
}

fn signed(records: Vec<UsageRecord>, key: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let body = serde_json::to_vec(&UsagePushRequest {
        usage_records: records,
    })
    .unwrap();
    let (ts, nonce) = ("1796032800000", "6c63c221-1f6b-4141-8ff4-22f5dfe82b65");
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("ts".to_owned(), ts.to_owned()),
        ("nonce".to_owned(), nonce.to_owned()),
        ("signature".to_owned(), usage::sign(key, ts, nonce, &body)),
    ];
    (headers, body)
}

fn book() -> UsageBook {
    let mut book = UsageBook::new();
    for (id, price) in [("inst-a", "0.1"), ("inst-b", "2"), ("pkg-1", "0")] {
        book.register(
            id,
            MeteredInstance {
                product_id: format!("prod-{id}"),
                unit_price: Decimal::from_str(price).unwrap(),
                opened_at_ms: NOW - 30 * 24 * HOUR,
                closed_at_ms: None,
            },
        );
    }
    book
}

fn push(
    book: &mut UsageBook,
    records: Vec<UsageRecord>,
) -> koogallery_emulator::usage::PushOutcome {
    let (headers, body) = signed(records, KEY);
    book.push(KEY, &headers, &body, NOW)
}

#[test]
fn accepted_records_are_billed_exactly() {
    let mut book = book();
    let out = push(
        &mut book,
        vec![
            record("inst-a", 2, "1.2345", "sn-1"),
            record("inst-b", 2, "3", "sn-2"),
        ],
    );
    assert_eq!(out.status, 200);
    assert_eq!(out.response.error_code, "MKT.0000");
    assert_eq!(out.response.abnormal_usage_data, None);
    assert_eq!(out.billed, 2);
    let bills = book.bills();
    assert_eq!(bills[0].amount, Decimal::from_str("0.12345").unwrap());
    assert_eq!(bills[1].amount, Decimal::from(6));
    assert_eq!(bills[0].metering_sn.as_deref(), Some("sn-1"));
}

#[test]
fn a_bad_body_signature_or_content_type_bills_nothing() {
    let mut book = book();
    let (headers, body) = signed(vec![record("inst-a", 2, "1", "sn-1")], "another-key");
    let out = book.push(KEY, &headers, &body, NOW);
    assert_eq!(
        (out.status, out.response.error_code.as_str()),
        (400, "MKT.0102")
    );
    // The body changed after signing (a space added).
    let (headers, mut body) = signed(vec![record("inst-a", 2, "1", "sn-1")], KEY);
    body.push(b' ');
    let out = book.push(KEY, &headers, &body, NOW);
    assert_eq!(out.response.error_code, "MKT.0102");
    let (mut headers, body) = signed(vec![record("inst-a", 2, "1", "sn-1")], KEY);
    headers[0].1 = "text/plain".to_owned();
    let out = book.push(KEY, &headers, &body, NOW);
    assert_eq!(
        (out.status, out.response.error_code.as_str()),
        (400, "MKT.0199")
    );
    assert!(book.bills().is_empty());
}

#[test]
fn record_count_limits() {
    let mut book = book();
    let out = push(&mut book, vec![]);
    assert_eq!(
        (out.status, out.response.error_code.as_str()),
        (400, "MKT.0101")
    );
    let many = |n: usize| {
        (0..n)
            .map(|i| record("inst-a", 2, "1", &format!("sn-{i}")))
            .collect::<Vec<_>>()
    };
    let out = push(&mut book, many(1001));
    assert_eq!(
        (out.status, out.response.error_code.as_str()),
        (500, "MKT.9003")
    );
    assert!(book.bills().is_empty());
    // 1000 records are accepted; they share one window, so one is billed.
    let out = push(&mut book, many(1000));
    assert_eq!(out.response.error_code, "MKT.0000");
    assert_eq!(out.billed, 1);
}

#[test]
fn duplicates_by_serial_or_window_are_billed_once() {
    let mut book = book();
    push(&mut book, vec![record("inst-a", 3, "5", "sn-1")]);
    // A network retry: same record, same serial.
    let again = push(&mut book, vec![record("inst-a", 3, "5", "sn-1")]);
    assert_eq!(again.response.error_code, "MKT.0000");
    assert_eq!(again.billed, 0);
    // Same window, another serial: the first one counts (§3.4 #6).
    let other = push(&mut book, vec![record("inst-a", 3, "7", "sn-9")]);
    assert_eq!(
        (other.response.error_code.as_str(), other.billed),
        ("MKT.0000", 0)
    );
    // Another window is billed.
    let next = push(&mut book, vec![record("inst-a", 2, "7", "sn-10")]);
    assert_eq!(next.billed, 1);
    let total: Decimal = book.bills().iter().map(|b| b.usage_value).sum();
    assert_eq!(total, Decimal::from(12));
}

#[test]
fn rejected_records_are_listed_and_the_rest_accepted() {
    let mut book = book();
    let out = push(
        &mut book,
        vec![
            record("inst-a", 2, "1", "sn-1"),
            record("nobody", 2, "1", "sn-2"),
        ],
    );
    assert_eq!(
        (out.status, out.response.error_code.as_str()),
        (200, "MKT.0000")
    );
    let abnormal = out.response.abnormal_usage_data.unwrap();
    assert_eq!(abnormal.len(), 1);
    assert_eq!(abnormal[0]["metering_sn"], "sn-2");
    assert_eq!(abnormal[0]["error_code"], "MKT.9001");
    assert_eq!(book.bills().len(), 1);
    // When no record is accepted, the call answers the first record's code.
    let out = push(&mut book, vec![record("nobody", 2, "1", "sn-3")]);
    assert_eq!(
        (out.status, out.response.error_code.as_str()),
        (500, "MKT.9001")
    );
}

#[test]
fn time_rules() {
    let mut book = book();
    let code = |book: &mut UsageBook, r: UsageRecord| push(book, vec![r]).response.error_code;
    // 21 days (§3.4 #9): 20 days back is fine, 22 is not.
    assert_eq!(
        code(&mut book, record("inst-a", 20 * 24, "1", "a")),
        "MKT.0000"
    );
    assert_eq!(
        code(&mut book, record("inst-a", 22 * 24, "1", "b")),
        "MKT.9004"
    );
    // end_time after the push time.
    assert_eq!(code(&mut book, record("inst-a", 0, "1", "c")), "MKT.9002");
    // Before the resource was opened.
    book.register(
        "fresh",
        MeteredInstance {
            product_id: "p".to_owned(),
            unit_price: Decimal::ONE,
            opened_at_ms: NOW - HOUR,
            closed_at_ms: None,
        },
    );
    assert_eq!(code(&mut book, record("fresh", 2, "1", "d")), "MKT.9002");
    // After the resource was closed.
    book.close("inst-b", NOW - 3 * HOUR);
    assert_eq!(code(&mut book, record("inst-b", 2, "1", "e")), "MKT.9002");
    assert_eq!(code(&mut book, record("inst-b", 4, "1", "f")), "MKT.0000");
}

#[test]
fn usage_values_must_be_positive_with_four_decimals() {
    let mut book = book();
    for (i, bad) in ["0", "-1", "1.23456", "abc", ""].iter().enumerate() {
        let out = push(
            &mut book,
            vec![record("inst-a", 2, bad, &format!("bad-{i}"))],
        );
        assert_eq!(out.response.error_code, "MKT.9002", "{bad}");
        assert!(
            out.response.error_msg.unwrap().contains("usage_value"),
            "{bad}"
        );
    }
    assert!(book.bills().is_empty());
}

#[test]
fn package_usage_is_deducted_not_billed() {
    let mut book = book();
    let mut r = record("inst-a", 2, "4.5", "sn-p");
    r.relate_pkg_instance = Some("pkg-1".to_owned());
    let out = push(&mut book, vec![r]);
    assert_eq!(out.billed, 1);
    assert_eq!(book.bills()[0].amount, Decimal::ZERO);
    assert_eq!(
        book.package_use()["pkg-1"],
        Decimal::from_str("4.5").unwrap()
    );
    let mut r = record("inst-a", 3, "1", "sn-q");
    r.relate_pkg_instance = Some("pkg-unknown".to_owned());
    assert_eq!(push(&mut book, vec![r]).response.error_code, "MKT.9001");
}

#[test]
fn the_old_api_needs_no_body_signature_and_dedupes_by_window() {
    let mut book = book();
    let body = serde_json::json!({"usage_records": [{
        "instance_id": "inst-b", "product_id": "prod-inst-b", "record_time": t(NOW),
        "begin_time": t(NOW - 2 * HOUR), "end_time": t(NOW - HOUR), "usage_value": "2"
    }]})
    .to_string();
    let headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    let out = book.push_old(&headers, body.as_bytes(), NOW);
    assert_eq!(
        (out.status, out.response.error_code.as_str(), out.billed),
        (200, "MKT.0000", 1)
    );
    let out = book.push_old(&headers, body.as_bytes(), NOW);
    assert_eq!(out.billed, 0);
    assert_eq!(book.bills()[0].amount, Decimal::from(4));
}
