//! Kit signatures Huawei's verifier accepts (security.md §8, §10; jointop.md §2).
//!
//! Huawei's kit sample does not check the raw bytes: it parses the body, copies it into a
//! `TreeMap` (top-level keys sorted), drops top-level `null`s and re-serialises it with Jackson
//! before computing `x-sign`. The emulator therefore sends every kit body — and every V2 body —
//! in that canonical form and signs exactly those bytes, so a verifier over the raw body and a
//! verifier over the sorted form both accept the call.
//!
//! The emulator is pointed at a small receiver that records the exact bytes, headers and URL of
//! every call. Each recorded call is checked with an implementation of the documented rule
//! written here from the spec text — JSON parsed with serde_json (`preserve_order`), top-level
//! keys sorted by UTF-16 code unit, top-level `null`s dropped, compact Jackson-style output,
//! HMAC-SHA256 (RFC 2104 over `sha2`) — not with the `koogallery` verifier, which is checked
//! afterwards as a second opinion. The implementation is first validated against the public
//! test vectors (`vectors.json`: `kit-sig-001`, `kit-sig-002`, `v2-sig-001`, `v2-sig-003`,
//! `canon-001`…`canon-005`), copied below as literals.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use koogallery::sign::{SignedForm, SignedRequest};
use koogallery_emulator::catalog::MerchantKeys;
use koogallery_emulator::clock::{EmuClock, wall_clock_ms};
use koogallery_emulator::kit::SyncRequest;
use koogallery_emulator::state::OrderKind;
use koogallery_emulator::{Marketplace, OpenApi, OrderRequest, Settings};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BASIC_KEY: &str = "basic-key-kit-signature-test";
const GENERIC_KEY: &str = "generic-key-kit-signature-test";
const KIT_KEY: &str = "kit-key-kit-signature-test";
const PUBLIC_KEY_PEM: &str =
    include_str!("../../../koogallery/tests/fixtures/rsa3072_test_pub.pem");
const KIT_INTERFACES: [&str; 5] = [
    "tenantSync",
    "applicationSync",
    "allOrgSync",
    "authSync",
    "singleOrgSync",
];

// ---------------------------------------------------------------------------------------------
// The documented rule, implemented independently of the `koogallery` crate.
// ---------------------------------------------------------------------------------------------

/// HMAC-SHA256 (RFC 2104): SHA-256 has a 64-byte block; a longer key is hashed first.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner);
    outer.finalize().into()
}

/// Lower-case hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A JSON string as Jackson writes it (security.md §8.2): `\"`, `\\`, the five short escapes,
/// other controls as `\u00XX` with upper-case hex, everything else (`/`, DEL, non-ASCII) raw.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Compact output; nested objects keep their member order and their `null`s. Numbers are
/// re-printed by serde_json, which keeps every integer's digits (kit bodies carry integers only).
fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_value(out, v);
            }
            out.push('}');
        }
    }
}

/// The canonical form (security.md §8.1): a JSON object, top-level members sorted by key in
/// Java `String` order (UTF-16 code units), top-level `null`s dropped, compact; `None` when the
/// body is not a JSON object (only the raw form applies then).
fn canonical(body: &[u8]) -> Option<String> {
    let Value::Object(map) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    let mut members: Vec<(String, Value)> = map.into_iter().filter(|(_, v)| !v.is_null()).collect();
    members.sort_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
    let mut out = String::from("{");
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(&mut out, k);
        out.push(':');
        write_value(&mut out, v);
    }
    out.push('}');
    Some(out)
}

/// `x-sign = hex(HMAC-SHA256(kitKey, kitKey + x-nonce + x-timestamp + P))` (security.md §10).
fn kit_sign(key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> String {
    let mut input = format!("{key}{nonce}{timestamp}").into_bytes();
    input.extend_from_slice(payload);
    hex(&hmac_sha256(key.as_bytes(), &input))
}

/// `signature = hex(HMAC(AK, AK + nonce + timestamp + lowercase_hex(HMAC(AK, P))))`
/// (security.md §9).
fn v2_sign(key: &str, nonce: &str, timestamp: &str, payload: &[u8]) -> String {
    let inner = hex(&hmac_sha256(key.as_bytes(), payload));
    let request = format!("{key}{nonce}{timestamp}{inner}");
    hex(&hmac_sha256(key.as_bytes(), request.as_bytes()))
}

/// Which of the two payloads a received signature matches (raw first), ignoring hex case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Matches {
    raw: bool,
    canonical: bool,
}

fn matches(received: &str, body: &[u8], sign: impl Fn(&[u8]) -> String) -> Matches {
    Matches {
        raw: sign(body).eq_ignore_ascii_case(received),
        canonical: canonical(body)
            .is_some_and(|c| sign(c.as_bytes()).eq_ignore_ascii_case(received)),
    }
}

const BOTH: Matches = Matches {
    raw: true,
    canonical: true,
};

// ---------------------------------------------------------------------------------------------
// The rule against the public vectors (security.md §16, vectors.json), copied as literals.
// ---------------------------------------------------------------------------------------------

const VECTOR_KIT_KEY: &str = "kitKey-Example-0001";
const VECTOR_NONCE: &str = "50D83FDECAED6CCD8EF597F2A577950527928BA287D04E6036E92B2806FD17DA";
const VECTOR_TIMESTAMP: &str = "1680508066618";

/// `kit-sig-001`: `tenantSync` in documentation key order, signed over the canonical form.
const KIT_SIG_001_BODY: &str = r#"{"instanceId":"huaweitest123456","orderId":"CS1906666666ABCDE","tenantId":"68cbc86abc2018ab880d92f36422fa0e","tenantCode":"huaweitest","name":"huaweitest","domainName":"https://huaweitest.example.com","flag":1,"testFlag":1,"timeStamp":"20220413093539534"}"#;
const KIT_SIG_001_CANONICAL: &str = r#"{"domainName":"https://huaweitest.example.com","flag":1,"instanceId":"huaweitest123456","name":"huaweitest","orderId":"CS1906666666ABCDE","tenantCode":"huaweitest","tenantId":"68cbc86abc2018ab880d92f36422fa0e","testFlag":1,"timeStamp":"20220413093539534"}"#;
const KIT_SIG_001_SIGNATURE: &str =
    "9651a71b04110dca07846c2ad88f4ef9a56faeece0ad052da9457dc302740fa4";

/// `kit-sig-002`: `allOrgSync` with `orgInfoList` as a JSON string and a stray `flag`; the
/// received signature was made with the numbers turned into strings and must be rejected.
const KIT_SIG_002_BODY: &str = r#"{"instanceId":"huaweitest123456","tenantId":"68cbc86abc2018ab880d92f36422fa0e","orgInfoList":"[{\"orgCode\":\"dept01\",\"orgName\":\"R&D\",\"parentCode\":\"\"},{\"orgCode\":\"dept02\",\"orgName\":\"Sales/EMEA\",\"parentCode\":\"dept01\"}]","flag":1,"testFlag":1,"timeStamp":"20220413093539534"}"#;
const KIT_SIG_002_CANONICAL: &str = r#"{"flag":1,"instanceId":"huaweitest123456","orgInfoList":"[{\"orgCode\":\"dept01\",\"orgName\":\"R&D\",\"parentCode\":\"\"},{\"orgCode\":\"dept02\",\"orgName\":\"Sales/EMEA\",\"parentCode\":\"dept01\"}]","tenantId":"68cbc86abc2018ab880d92f36422fa0e","testFlag":1,"timeStamp":"20220413093539534"}"#;
const KIT_SIG_002_SIGNATURE: &str =
    "cb2e80ada50372fd45cfcbe247f540d57ba3a95e24887c04c4f85511f848c4bc";
const KIT_SIG_002_RECEIVED: &str =
    "969b76011033cfac0c72ebf67e065796f8bab8341419832dc5e77d370a2f5e09";

#[test]
fn the_independent_rule_reproduces_the_public_vectors() {
    // RFC 4231 test case 2 and a 131-byte key (test case 6): the HMAC itself.
    assert_eq!(
        hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex(&hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    );

    // canon-001 … canon-005.
    for (body, expected) in [
        (
            r#"{"b":"2","a":"1","c":null,"d":""}"#,
            r#"{"a":"1","b":"2","d":""}"#,
        ),
        (
            r#"{"z":{"y":1,"x":null,"w":[{"b":1,"a":2}]},"a":[3,2,1]}"#,
            r#"{"a":[3,2,1],"z":{"y":1,"x":null,"w":[{"b":1,"a":2}]}}"#,
        ),
        (
            r#"{"url":"https://a.example.com/x/y","text":"tab\there \u001f quote\" back\\slash \u00e9 \u4e2d"}"#,
            "{\"text\":\"tab\\there \\u001F quote\\\" back\\\\slash é 中\",\"url\":\"https://a.example.com/x/y\"}",
        ),
        (
            r#"{"\uff21":"fullwidth A","\ud83d\ude00":"emoji","B":"upper","a":"lower"}"#,
            "{\"B\":\"upper\",\"a\":\"lower\",\"😀\":\"emoji\",\"Ａ\":\"fullwidth A\"}",
        ),
        (
            r#"{"orderAmount":12.78,"periodNumber":5,"big":12345678901234567890,"flag":true}"#,
            r#"{"big":12345678901234567890,"flag":true,"orderAmount":12.78,"periodNumber":5}"#,
        ),
    ] {
        assert_eq!(
            canonical(body.as_bytes()).as_deref(),
            Some(expected),
            "{body}"
        );
    }

    // kit-sig-001: the MAC input is key + nonce + timestamp + canonical body.
    assert_eq!(
        canonical(KIT_SIG_001_BODY.as_bytes()).as_deref(),
        Some(KIT_SIG_001_CANONICAL)
    );
    let sign = |p: &[u8]| kit_sign(VECTOR_KIT_KEY, VECTOR_NONCE, VECTOR_TIMESTAMP, p);
    assert_eq!(
        sign(KIT_SIG_001_CANONICAL.as_bytes()),
        KIT_SIG_001_SIGNATURE
    );
    assert_eq!(
        matches(KIT_SIG_001_SIGNATURE, KIT_SIG_001_BODY.as_bytes(), sign),
        Matches {
            raw: false,
            canonical: true
        }
    );
    // The emulator's old behaviour, for the record: documentation key order signed raw is what
    // a sorted-key verifier (Huawei's sample) rejects with 000001.
    let raw_signed = sign(KIT_SIG_001_BODY.as_bytes());
    assert_eq!(
        matches(&raw_signed, KIT_SIG_001_BODY.as_bytes(), sign),
        Matches {
            raw: true,
            canonical: false
        }
    );

    // kit-sig-002: orgInfoList stays a string ('/' not escaped); the stringified-numbers
    // signature matches neither form.
    assert_eq!(
        canonical(KIT_SIG_002_BODY.as_bytes()).as_deref(),
        Some(KIT_SIG_002_CANONICAL)
    );
    assert_eq!(
        sign(KIT_SIG_002_CANONICAL.as_bytes()),
        KIT_SIG_002_SIGNATURE
    );
    assert_eq!(
        matches(KIT_SIG_002_RECEIVED, KIT_SIG_002_BODY.as_bytes(), sign),
        Matches {
            raw: false,
            canonical: false
        }
    );

    // v2-sig-001 (already canonical: both forms) and v2-sig-003 (pretty-printed, unsorted, a
    // top-level null: only the canonical form; the received signature is rejected).
    let v2_001 = r#"{"activity":"newInstance","businessId":"87b94795-0603-4e24-8ae5-69420d60e3c8","orderId":"CS2211181819B4LVS","orderLineId":"CS2211181819B4LVS-000001","testFlag":"1"}"#;
    let sign = |p: &[u8]| v2_sign("my-access-key", VECTOR_NONCE, VECTOR_TIMESTAMP, p);
    assert_eq!(
        sign(v2_001.as_bytes()),
        "ed3c1637449656023ec468104e43ce227d25762f9cd1813c5425983415f97e6e"
    );
    assert_eq!(
        matches(
            "ED3C1637449656023EC468104E43CE227D25762F9CD1813C5425983415F97E6E",
            v2_001.as_bytes(),
            sign
        ),
        BOTH
    );
    let v2_003 = "{\n  \"testFlag\": \"1\",\n  \"status\": \"FREEZE\",\n  \"instanceId\": \"10e758d0-31ad-4c4b-8f1b-81d03469a10e\",\n  \"activity\": \"updateInstanceStatus\",\n  \"reason\": null\n}";
    let sign = |p: &[u8]| {
        v2_sign(
            "my-access-key",
            "7B0E0F6A3C1D48E59A2B4C6D8E0F1A2B3C4D5E6F708192A3B4C5D6E7F8091A2B",
            "1680509558159",
            p,
        )
    };
    assert_eq!(
        canonical(v2_003.as_bytes()).as_deref(),
        Some(
            r#"{"activity":"updateInstanceStatus","instanceId":"10e758d0-31ad-4c4b-8f1b-81d03469a10e","status":"FREEZE","testFlag":"1"}"#
        )
    );
    assert_eq!(
        matches(
            "6da26a5be99e05c6a856ad2c7e574f7a84e1c8da86045baac0dc4ba31f007be5",
            v2_003.as_bytes(),
            sign
        ),
        Matches {
            raw: false,
            canonical: true
        }
    );
    assert_eq!(
        matches(
            "2236d66574cffa99d1868acf0a246a14c7767197aa7fdd0bcdbabc05e3d74d1b",
            v2_003.as_bytes(),
            sign
        ),
        Matches {
            raw: false,
            canonical: false
        }
    );
}

#[test]
fn the_emulator_signs_the_kit_vectors_as_published() {
    for (body, canonical_body, signature) in [
        (
            KIT_SIG_001_BODY,
            KIT_SIG_001_CANONICAL,
            KIT_SIG_001_SIGNATURE,
        ),
        (
            KIT_SIG_002_BODY,
            KIT_SIG_002_CANONICAL,
            KIT_SIG_002_SIGNATURE,
        ),
    ] {
        let value: Value = serde_json::from_str(body).unwrap();
        let p = koogallery_emulator::dispatch::prepare_kit(
            "http://merchant/produce/produceAPI/v2/tenantSync",
            VECTOR_KIT_KEY,
            &value,
            VECTOR_TIMESTAMP.parse().unwrap(),
            VECTOR_NONCE,
        )
        .unwrap();
        assert_eq!(p.method, "POST");
        let sent = String::from_utf8(p.body.clone().unwrap()).unwrap();
        assert_eq!(sent, canonical_body);
        let header = |n: &str| {
            p.headers
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("x-sign"), Some(signature.to_ascii_uppercase()));
        assert_eq!(header("x-timestamp").as_deref(), Some(VECTOR_TIMESTAMP));
        assert_eq!(header("x-nonce").as_deref(), Some(VECTOR_NONCE));
    }
}

// ---------------------------------------------------------------------------------------------
// A receiver that records every call byte for byte.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Captured {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    received_ms: i64,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name));
        let first = found.next().map(|(_, v)| v.as_str());
        assert!(found.next().is_none(), "header {name} sent twice");
        first
    }

    /// `name=value` pairs of the query, split by hand: the emulator's values are hex and digits.
    fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .as_deref()?
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The body as text (it must be UTF-8).
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn kit_name(&self) -> Option<&str> {
        self.path.strip_prefix("/produce/produceAPI/v2/")
    }
}

type Log = Arc<Mutex<Vec<Captured>>>;

async fn receive(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let captured = Captured {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        received_ms: wall_clock_ms(),
    };
    let fields: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let field = |n: &str| fields.get(n).and_then(Value::as_str).unwrap_or_default();
    let answer = if captured.kit_name().is_some() {
        json!({"resultCode": "000000", "resultMsg": "success."})
    } else {
        match field("activity") {
            "newInstance" => json!({
                "resultCode": "000000",
                "resultMsg": "success.",
                "instanceId": format!("inst-{}", field("orderLineId")),
            }),
            "queryInstance" => json!({
                "resultCode": "000000",
                "resultMsg": "success.",
                "info": [{
                    "instanceId": field("instanceId"),
                    "appInfo": {"frontEndUrl": "https://app.example.com/", "userName": "admin"}
                }]
            }),
            _ => json!({"resultCode": "000000", "resultMsg": "success."}),
        }
    };
    log.lock().unwrap().push(captured);
    (
        [("content-type", "application/json")],
        serde_json::to_vec(&answer).unwrap(),
    )
        .into_response()
}

async fn start_receiver() -> (SocketAddr, Log) {
    let log = Log::default();
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(receive).with_state(log.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, log)
}

fn is_upper_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
}

/// Top-level keys of a body, in the order sent.
fn top_level_keys(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<serde_json::Map<String, Value>>(body)
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// Checks one kit call: path, headers, canonical body, `x-sign` over the raw and the canonical
/// form with the independent rule, a wrong key refused, then `koogallery`'s verifier.
fn check_kit_call(c: &Captured) {
    let name = c.kit_name().unwrap();
    let what = format!("{name} {}", String::from_utf8_lossy(&c.body));
    assert!(KIT_INTERFACES.contains(&name), "{what}");
    assert_eq!(c.method, "POST", "{what}");
    assert_eq!(c.query, None, "{what}");
    assert_eq!(c.header("content-type"), Some("application/json"), "{what}");
    let sign = c.header("x-sign").unwrap();
    let timestamp = c.header("x-timestamp").unwrap();
    let nonce = c.header("x-nonce").unwrap();
    assert!(is_upper_hex(sign, 64), "x-sign {sign}");
    assert!(is_upper_hex(nonce, 64), "x-nonce {nonce}");
    let ts: i64 = timestamp.parse().unwrap();
    assert!((ts - c.received_ms).abs() < 60_000, "x-timestamp {ts}");

    // The body sent is its own canonical form: sorted top-level keys, compact, no top-level
    // nulls; numbers stay numbers.
    let keys = top_level_keys(&c.body);
    assert!(
        keys.windows(2)
            .all(|w| w[0].encode_utf16().cmp(w[1].encode_utf16()).is_lt()),
        "{what}"
    );
    assert_eq!(canonical(&c.body), Some(c.text()), "{what}");
    let body = c.json();
    assert!(body["testFlag"].is_number(), "{what}");
    if name != "allOrgSync" {
        assert!(body["flag"].is_number(), "{what}");
    }

    // x-sign verifies over the raw bytes and over the sorted form (Huawei's sample).
    assert_eq!(
        matches(sign, &c.body, |p| kit_sign(KIT_KEY, nonce, timestamp, p)),
        BOTH,
        "{what}"
    );
    assert_eq!(
        matches(sign, &c.body, |p| kit_sign(BASIC_KEY, nonce, timestamp, p)),
        Matches {
            raw: false,
            canonical: false
        },
        "{what}: the basic key must not verify a kit call"
    );

    // Second opinion: koogallery's verifier takes the raw path.
    let req = SignedRequest {
        signature: Some(sign),
        timestamp: Some(timestamp),
        nonce: Some(nonce),
    };
    assert_eq!(
        koogallery::sign::kit::verify(KIT_KEY, &req, &c.body, c.received_ms, 60_000),
        Ok(SignedForm::Raw),
        "{what}"
    );
    koogallery::model::kit::KitRequest::decode(name, &c.body).unwrap();
}

/// Checks one V2 call: canonical body, `signature` over the raw and the canonical form with the
/// independent rule, then `koogallery`'s verifier.
fn check_v2_call(c: &Captured) -> String {
    let body = c.json();
    let activity = body["activity"].as_str().unwrap().to_owned();
    let what = format!("{activity} {}", String::from_utf8_lossy(&c.body));
    assert_eq!(c.method, "POST", "{what}");
    assert_eq!(c.path, "/produce", "{what}");
    let key = if activity == "orderNotify" {
        GENERIC_KEY
    } else {
        BASIC_KEY
    };
    let signature = c.query_param("signature").unwrap();
    let timestamp = c.query_param("timestamp").unwrap();
    let nonce = c.query_param("nonce").unwrap();
    assert!(is_upper_hex(signature, 64), "signature {signature}");
    assert!(is_upper_hex(nonce, 64), "nonce {nonce}");
    let ts: i64 = timestamp.parse().unwrap();
    assert!((ts - c.received_ms).abs() < 60_000, "timestamp {ts}");
    assert_eq!(canonical(&c.body), Some(c.text()), "{what}");
    assert_eq!(
        matches(signature, &c.body, |p| v2_sign(key, nonce, timestamp, p)),
        BOTH,
        "{what}"
    );
    // The kit formula with the same key is a different MAC.
    assert_eq!(
        matches(signature, &c.body, |p| kit_sign(key, nonce, timestamp, p)),
        Matches {
            raw: false,
            canonical: false
        },
        "{what}"
    );
    let req = SignedRequest {
        signature: Some(signature),
        timestamp: Some(timestamp),
        nonce: Some(nonce),
    };
    assert_eq!(
        koogallery::sign::v2::verify(key, &req, &c.body, c.received_ms, 60_000),
        Ok(SignedForm::Raw),
        "{what}"
    );
    activity
}

#[tokio::test]
async fn every_kit_and_v2_call_verifies_over_the_raw_and_the_sorted_body() {
    let (addr, log) = start_receiver().await;
    let settings = Settings {
        merchant_url: Some(format!("http://{addr}/produce")),
        keys: MerchantKeys {
            basic: Some(BASIC_KEY.to_owned()),
            generic: Some(GENERIC_KEY.to_owned()),
            kit: Some(KIT_KEY.to_owned()),
            ..MerchantKeys::default()
        },
        kit_public_key: Some(PUBLIC_KEY_PEM.to_owned()),
        ..Settings::default()
    };
    let clock = Arc::new(EmuClock::manual(wall_clock_ms()));
    let openapi = Arc::new(OpenApi::new([(
        "AK-KIT-SIG-TEST",
        "SK-KIT-SIG-TEST-000000000000",
    )]));
    let m = Marketplace::new(settings, clock, openapi);

    // A purchase: newInstance, queryInstance, then tenantSync, applicationSync, allOrgSync,
    // authSync. The buyer's name puts '/', quotes, a backslash and non-ASCII into tenantSync.
    let mut order = OrderRequest::new(OrderKind::New).product("JOINT-YEAR");
    order.customer_name = Some(r#"ACME/华为 "R&D" \ Ü"#.to_owned());
    let resource = m.place_order(order).await.unwrap().resource_id;
    m.run_due().await.unwrap();
    // Directory changes: a user, a department (nested parentCode), the whole tree.
    for request in [
        SyncRequest {
            kind: "auth".to_owned(),
            user_name: Some("lisi".to_owned()),
            name: Some("李四".to_owned()),
            role: Some("admin".to_owned()),
            ..SyncRequest::default()
        },
        SyncRequest {
            kind: "org".to_owned(),
            org_code: Some("sales".to_owned()),
            org_name: Some("Sales/EMEA".to_owned()),
            parent_code: Some(String::new()),
            ..SyncRequest::default()
        },
        SyncRequest {
            kind: "all-org".to_owned(),
            ..SyncRequest::default()
        },
    ] {
        m.sync_directory(&resource, &request).await.unwrap();
        m.run_due().await.unwrap();
    }
    // A renewal and an unsubscription: refreshInstance, releaseInstance, tenantSync flag 0.
    m.place_order(OrderRequest::new(OrderKind::Renew).resource(&resource))
        .await
        .unwrap();
    m.run_due().await.unwrap();
    m.place_order(OrderRequest::new(OrderKind::Unsubscribe).resource(&resource))
        .await
        .unwrap();
    m.run_due().await.unwrap();

    let calls = m.calls();
    assert!(
        calls.iter().all(|c| c.verdict == "success"),
        "{:#?}",
        calls
            .iter()
            .map(|c| (&c.activity, &c.verdict, &c.detail))
            .collect::<Vec<_>>()
    );

    let captured = log.lock().unwrap().clone();
    assert_eq!(captured.len(), calls.len());
    let mut kit_seen = Vec::new();
    let mut v2_seen = Vec::new();
    for c in &captured {
        match c.kit_name() {
            Some(name) => {
                check_kit_call(c);
                kit_seen.push(name.to_owned());
            }
            None => v2_seen.push(check_v2_call(c)),
        }
    }
    assert_eq!(
        kit_seen,
        [
            "tenantSync",
            "applicationSync",
            "allOrgSync",
            "authSync",
            "authSync",
            "singleOrgSync",
            "allOrgSync",
            "tenantSync",
        ]
    );
    for activity in [
        "newInstance",
        "queryInstance",
        "refreshInstance",
        "releaseInstance",
    ] {
        assert!(v2_seen.iter().any(|a| a == activity), "{v2_seen:?}");
    }
    let nonces: HashSet<&str> = captured
        .iter()
        .map(|c| {
            c.header("x-nonce")
                .or_else(|| c.query_param("nonce"))
                .unwrap()
        })
        .collect();
    assert_eq!(nonces.len(), captured.len(), "a nonce was reused");

    // The content survived canonicalisation: nested order kept, strings as sent.
    let tenant = captured
        .iter()
        .find(|c| c.kit_name() == Some("tenantSync"))
        .unwrap();
    assert_eq!(tenant.json()["name"], r#"ACME/华为 "R&D" \ Ü"#);
    let text = tenant.text();
    assert!(
        text.contains(r#""name":"ACME/华为 \"R&D\" \\ Ü""#),
        "{text}"
    );
    assert!(text.starts_with(r#"{"domainName":"#), "{text}");
    let auth = captured
        .iter()
        .find(|c| c.kit_name() == Some("authSync"))
        .unwrap();
    let user_keys: Vec<String> = auth.json()["userList"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        user_keys.first().map(String::as_str),
        Some("userName"),
        "{user_keys:?}"
    );
    let released = captured.last().unwrap();
    assert_eq!(released.kit_name(), Some("tenantSync"));
    assert_eq!(released.json()["flag"], 0);

    // The call log records the bytes sent.
    for (record, c) in calls.iter().zip(&captured) {
        assert_eq!(record.request_body, Some(c.text()));
    }
}
