//! Criterion benchmarks of the protocol hot paths: what a request costs the gateway before any
//! I/O. Run with `cargo bench -p koogallery --bench protocol`; results are recorded in
//! `docs/benchmarks.md`.
//!
//! Every input is a realistic message (most come from `tests/fixtures/vectors.json`), and every
//! benchmark checks its result once before measuring, so a benchmark cannot silently measure an
//! error path. `baseline/*` are measured in the same run so results can be stated as ratios.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use koogallery::canonical::canonicalize;
use koogallery::crypto::{FieldCipher, KeySize};
use koogallery::sign::{SignedForm, SignedRequest, apig, body_sign, hmac_sha256, kit, v2};
use koogallery::time::DEFAULT_WINDOW_MS;
use serde_json::Value;

const ACCESS_KEY: &str = "1f0bd2c4-7b5e-4a3e-9d6f-2a8c1e5b7d90";
const NONCE: &str = "RLLUammMSInlrNWb";
const TIMESTAMP: &str = "1716363778801";
const NOW_MS: i64 = 1_716_363_778_801;

/// A typical `newInstance` body, already canonical (top-level keys sorted, compact).
const NEW_INSTANCE: &str = r#"{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}"#;

/// The same body pretty-printed with its keys out of order: only its canonical form matches.
const NEW_INSTANCE_PRETTY: &str = r#"{
  "orderId": "CS2211181819B4LVS",
  "testFlag": "1",
  "activity": "newInstance",
  "orderLineId": "CS2211181819B4LVS-000001",
  "businessId": "87b94795-0603-4e24-8ae5-69420d60e3c8"
}"#;

/// A ~100-byte `newInstance` response.
const RESPONSE: &str = r#"{"resultCode":"000000","resultMsg":"success.","instanceId":"87b94795-0603-4e24-8ae5-69420d60e3c8"}"#;

fn fixtures() -> Value {
    serde_json::from_str(include_str!("../tests/fixtures/vectors.json"))
        .expect("vectors.json parses")
}

fn by_id<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .expect("a list")
        .iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no fixture {id}"))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string"))
}

fn v2_verify(c: &mut Criterion) {
    let signature = v2::sign(ACCESS_KEY, NONCE, TIMESTAMP, NEW_INSTANCE.as_bytes());
    let req = SignedRequest {
        signature: Some(&signature),
        timestamp: Some(TIMESTAMP),
        nonce: Some(NONCE),
    };
    let verify = |body: &str| {
        v2::verify(
            ACCESS_KEY,
            black_box(&req),
            black_box(body.as_bytes()),
            NOW_MS,
            DEFAULT_WINDOW_MS,
        )
    };
    assert_eq!(verify(NEW_INSTANCE), Ok(SignedForm::Raw));
    assert_eq!(verify(NEW_INSTANCE_PRETTY), Ok(SignedForm::Canonical));

    let mut g = c.benchmark_group("v2_verify");
    g.bench_function("raw", |b| b.iter(|| verify(NEW_INSTANCE)));
    g.bench_function("canonical", |b| b.iter(|| verify(NEW_INSTANCE_PRETTY)));
    g.finish();
}

fn body_sign_header(c: &mut Criterion) {
    assert!((90..=110).contains(&RESPONSE.len()), "a ~100-byte response");
    let header = body_sign::header_value(ACCESS_KEY, RESPONSE.as_bytes());
    assert_eq!(
        body_sign::verify(ACCESS_KEY, RESPONSE.as_bytes(), Some(&header)),
        Ok(())
    );

    c.bench_function("body_sign/header_value", |b| {
        b.iter(|| body_sign::header_value(black_box(ACCESS_KEY), black_box(RESPONSE.as_bytes())))
    });
}

fn kit_verify(c: &mut Criterion) {
    let all = fixtures();
    let v = by_id(&all["vectors"], "kit-sig-001");
    let (input, expected) = (&v["input"], &v["expected"]);
    let key = text(input, "kit_key");
    let timestamp = text(input, "timestamp");
    let now_ms: i64 = timestamp.parse().expect("numeric timestamp");
    let body = text(input, "body").as_bytes();
    let req = SignedRequest {
        signature: Some(text(expected, "signature")),
        timestamp: Some(timestamp),
        nonce: Some(text(input, "nonce")),
    };
    // tenantSync arrives in documentation key order, so this goes through the canonical path.
    assert_eq!(
        kit::verify(key, &req, body, now_ms, DEFAULT_WINDOW_MS),
        Ok(SignedForm::Canonical)
    );

    c.bench_function("kit_verify", |b| {
        b.iter(|| {
            kit::verify(
                black_box(key),
                black_box(&req),
                black_box(body),
                now_ms,
                DEFAULT_WINDOW_MS,
            )
        })
    });
}

struct ApigCase {
    method: String,
    host: String,
    path: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: String,
    ak: String,
    sk: String,
    date: String,
    expected: String,
}

impl ApigCase {
    fn load(all: &Value, id: &str) -> Self {
        let v = by_id(&all["vectors"], id);
        let i = &v["input"];
        let pair = |p: &Value| {
            (
                p[0].as_str().expect("name").to_owned(),
                p[1].as_str().expect("value").to_owned(),
            )
        };
        Self {
            method: text(i, "method").to_owned(),
            host: text(i, "host").to_owned(),
            path: text(i, "path").to_owned(),
            query: i["query"]
                .as_array()
                .expect("query list")
                .iter()
                .map(pair)
                .collect(),
            headers: i["headers"]
                .as_object()
                .expect("header map")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("header value").to_owned()))
                .collect(),
            body: text(i, "body").to_owned(),
            ak: text(i, "ak").to_owned(),
            sk: text(i, "sk").to_owned(),
            date: text(i, "x_sdk_date").to_owned(),
            expected: text(&v["expected"], "authorization").to_owned(),
        }
    }

    fn request(&self) -> apig::Request<'_> {
        apig::Request {
            method: &self.method,
            host: &self.host,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: self.body.as_bytes(),
        }
    }
}

fn apig_sign(c: &mut Criterion) {
    let all = fixtures();
    let mut g = c.benchmark_group("apig_sign");
    for (name, id) in [
        ("order_query_get", "apig-002"),
        ("usage_push_post", "apig-003"),
    ] {
        let case = ApigCase::load(&all, id);
        let req = case.request();
        assert_eq!(
            apig::sign(&req, &case.ak, &case.sk, &case.date).authorization,
            case.expected,
            "{id}"
        );
        g.bench_function(name, |b| {
            b.iter(|| apig::sign(black_box(&req), &case.ak, &case.sk, &case.date))
        });
    }
    g.finish();
}

fn field(c: &mut Criterion) {
    let plaintext = "zhang.san@example.cn";
    let iv = "K8vQ2mZt7LpX4cWn";
    let cipher = FieldCipher::new(ACCESS_KEY, KeySize::Aes256);
    let encrypted = cipher
        .encrypt_with_iv(plaintext, iv)
        .expect("16-character IV");
    assert_eq!(cipher.decrypt(&encrypted).as_deref(), Ok(plaintext));

    let mut g = c.benchmark_group("field");
    g.bench_function("encrypt_with_iv", |b| {
        b.iter(|| cipher.encrypt_with_iv(black_box(plaintext), black_box(iv)))
    });
    g.bench_function("decrypt", |b| {
        b.iter(|| cipher.decrypt(black_box(&encrypted)))
    });
    g.bench_function("cipher_new", |b| {
        b.iter(|| FieldCipher::new(black_box(ACCESS_KEY), KeySize::Aes256))
    });
    g.finish();
}

fn canonicalize_typical(c: &mut Criterion) {
    let all = fixtures();
    let body = text(
        by_id(&all["format_fixtures"], "fx-v2-newInstance-nested"),
        "body",
    )
    .to_owned();
    assert_eq!(
        canonicalize(body.as_bytes()).as_deref(),
        Ok(body.as_str()),
        "the published example is canonical"
    );

    c.bench_function("canonicalize/typical", |b| {
        b.iter(|| canonicalize(black_box(body.as_bytes())))
    });
}

fn baseline(c: &mut Criterion) {
    let message = [0x5a_u8; 64];
    let mut g = c.benchmark_group("baseline");
    g.bench_function("hmac_sha256_64B", |b| {
        b.iter(|| hmac_sha256(black_box(ACCESS_KEY.as_bytes()), &[black_box(&message[..])]))
    });
    g.bench_function("serde_json_parse", |b| {
        b.iter(|| {
            serde_json::from_slice::<Value>(black_box(NEW_INSTANCE.as_bytes())).expect("valid JSON")
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = baseline, v2_verify, body_sign_header, kit_verify, apig_sign, field, canonicalize_typical
}
criterion_main!(benches);
