//! Property tests: every signer round-trips through its verifier and rejects tampering; the
//! cipher and every timestamp format round-trip; canonical JSON is invariant under whitespace
//! and member order and preserves meaning; the nonce window agrees with a naive model; and no
//! parser panics on arbitrary input.

use koogallery::canonical::canonicalize;
use koogallery::crypto::{FieldCipher, KeySize};
use koogallery::nonce::NonceWindow;
use koogallery::sign::{SignedForm, SignedRequest, apig, body_sign, kit, usage, v1, v2};
use koogallery::time as kt;
use proptest::prelude::*;
use serde_json::Value;

const NOW: i64 = 1_680_508_066_618;

fn req<'a>(sig: &'a str, ts: &'a str, nonce: &'a str) -> SignedRequest<'a> {
    SignedRequest {
        signature: Some(sig),
        timestamp: Some(ts),
        nonce: Some(nonce),
    }
}

/// Whether two bodies mean the same signed payload (equal bytes, or equal canonical forms).
fn same_payload(a: &[u8], b: &[u8]) -> bool {
    a == b || matches!((canonicalize(a), canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::String),
        "[\u{0}-\u{1f}\"\\\\/]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(("\\PC{0,6}", inner), 0..5)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::vec(("\\PC{0,6}", json_value()), 0..8)
        .prop_map(|kv| Value::Object(kv.into_iter().collect()))
}

/// Drops top-level nulls: what canonicalisation removes.
fn without_top_level_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Equality ignoring the order of object members at every level.
fn same_meaning(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_meaning(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_meaning(v, w))
        }
        _ => a == b,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn v2_round_trip_and_tamper(key in "\\PC{1,40}", nonce in "[A-Za-z0-9]{1,64}", skew in -60_000i64..=60_000, body in prop::collection::vec(any::<u8>(), 0..200), flip in any::<prop::sample::Index>(), bit in 1u8..=255) {
        let ts = (NOW + skew).to_string();
        let sig = v2::sign(&key, &nonce, &ts, &body);
        prop_assert_eq!(v2::verify(&key, &req(&sig, &ts, &nonce), &body, NOW, 60_000), Ok(SignedForm::Raw));
        prop_assert_eq!(v2::verify(&key, &req(&sig.to_uppercase(), &ts, &nonce), &body, NOW, 60_000), Ok(SignedForm::Raw));
        if !body.is_empty() {
            let mut tampered = body.clone();
            tampered[flip.index(body.len())] ^= bit;
            let r = v2::verify(&key, &req(&sig, &ts, &nonce), &tampered, NOW, 60_000);
            prop_assert!(r.is_err() || same_payload(&body, &tampered));
        }
        let other_nonce = format!("{nonce}x");
        prop_assert!(v2::verify(&key, &req(&sig, &ts, &other_nonce), &body, NOW, 60_000).is_err());
    }

    #[test]
    fn v2_accepts_any_reformatting_of_a_canonically_signed_body(obj in json_object(), key in "[a-z0-9-]{1,20}") {
        let compact = serde_json::to_vec(&obj).unwrap();
        let canonical = canonicalize(&compact).unwrap();
        let ts = NOW.to_string();
        let sig = v2::sign(&key, "n", &ts, canonical.as_bytes());
        let pretty = serde_json::to_vec_pretty(&obj).unwrap();
        let r = v2::verify(&key, &req(&sig, &ts, "n"), &pretty, NOW, 60_000);
        prop_assert!(r.is_ok(), "{:?}", r);
    }

    #[test]
    fn kit_round_trip(key in "\\PC{1,40}", nonce in "[A-Za-z0-9]{1,64}", body in prop::collection::vec(any::<u8>(), 0..200)) {
        let ts = NOW.to_string();
        let sig = kit::sign(&key, &nonce, &ts, &body);
        prop_assert_eq!(kit::verify(&key, &req(&sig, &ts, &nonce), &body, NOW, 60_000), Ok(SignedForm::Raw));
        let other_key = format!("{key}x");
        prop_assert!(kit::verify(&other_key, &req(&sig, &ts, &nonce), &body, NOW, 60_000).is_err());
    }

    #[test]
    fn v1_round_trip(key in "\\PC{1,40}", params in prop::collection::btree_map("[A-Za-z][A-Za-z0-9]{0,10}", "\\PC{0,20}", 0..8), ts in "[0-9]{17}") {
        let mut params: Vec<(String, String)> = params.into_iter().filter(|(k, _)| k != "timeStamp" && k != "authToken").collect();
        params.push(("timeStamp".into(), ts));
        let token = v1::auth_token(&key, &params).unwrap();
        // Order on the wire does not matter.
        params.reverse();
        params.push(("authToken".into(), token));
        prop_assert_eq!(v1::verify_get(&key, &params), Ok(()));
        let other_key = format!("{key}x");
        prop_assert!(v1::verify_get(&other_key, &params).is_err());
    }

    #[test]
    fn body_sign_and_usage_round_trip(key in "\\PC{1,40}", body in prop::collection::vec(any::<u8>(), 0..200), ts in "[0-9]{13}", nonce in "[a-f0-9-]{1,64}") {
        let header = body_sign::header_value(&key, &body);
        prop_assert_eq!(body_sign::verify(&key, &body, Some(&header)), Ok(()));
        let mut longer = body.clone();
        longer.push(b'\n');
        prop_assert!(body_sign::verify(&key, &longer, Some(&header)).is_err());
        let sig = usage::sign(&key, &ts, &nonce, &body);
        prop_assert_eq!(usage::verify(&key, &ts, &nonce, &body, Some(&sig)), Ok(()));
        prop_assert!(usage::verify(&key, &ts, &nonce, &longer, Some(&sig)).is_err());
    }

    #[test]
    fn apig_round_trip(
        query in prop::collection::vec(("\\PC{1,8}", "\\PC{0,12}"), 0..5),
        path_segments in prop::collection::vec("\\PC{1,8}", 1..4),
        header_value in "[ -~]{0,20}",
        body in prop::collection::vec(any::<u8>(), 0..100),
        method in prop::sample::select(vec!["GET", "POST", "PUT", "DELETE"]),
    ) {
        let path = format!("/{}", path_segments.iter().map(|s| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()).collect::<Vec<_>>().join("/"));
        let headers = vec![("Content-Type".to_owned(), "application/json".to_owned()), ("X-Project".to_owned(), header_value)];
        let request = apig::Request { method, host: "mkt.example.com:8443", path: &path, query: &query, headers: &headers, body: &body };
        let signed = apig::sign(&request, "AK", "SK", "20240101T000000Z");
        let mut sent = headers.clone();
        sent.extend(signed.added_headers);
        sent.push(("Authorization".into(), signed.authorization));
        let now = kt::epoch_millis(kt::parse_sdk_date("20240101T000000Z").unwrap());
        let received = apig::Request { headers: &sent, ..request.clone() };
        prop_assert_eq!(apig::verify(&received, now, |a| (a == "AK").then_some("SK")), Ok("AK".to_owned()));
        let mut other_body = body.clone();
        other_body.push(b'x');
        let tampered = apig::Request { headers: &sent, body: &other_body, ..request };
        prop_assert!(apig::verify(&tampered, now, |a| (a == "AK").then_some("SK")).is_err());
    }

    #[test]
    fn field_cipher_round_trip(key in "\\PC{1,40}", plaintext in "\\PC{0,80}", iv in "[A-Za-z0-9]{16}", aes128 in any::<bool>()) {
        let size = if aes128 { KeySize::Aes128 } else { KeySize::Aes256 };
        let cipher = FieldCipher::new(&key, size);
        let value = cipher.encrypt_with_iv(&plaintext, &iv).unwrap();
        prop_assert!(value.starts_with(&iv));
        prop_assert_eq!(cipher.decrypt(&value).unwrap(), plaintext.clone());
        // A '+' mangled into a space by form decoding is repaired.
        prop_assert_eq!(cipher.decrypt(&value.replace('+', " ")).unwrap(), plaintext);
    }

    #[test]
    fn canonical_json_invariants(obj in json_object()) {
        let compact = serde_json::to_vec(&obj).unwrap();
        let pretty = serde_json::to_vec_pretty(&obj).unwrap();
        let c = canonicalize(&compact).unwrap();
        // Whitespace does not matter, canonicalisation is idempotent, and meaning is kept.
        prop_assert_eq!(&canonicalize(&pretty).unwrap(), &c);
        prop_assert_eq!(&canonicalize(c.as_bytes()).unwrap(), &c);
        let back: Value = serde_json::from_str(&c).unwrap();
        prop_assert!(same_meaning(&back, &without_top_level_nulls(&obj)));
        // Top-level members are sorted by UTF-16 code units.
        if let Value::Object(m) = &back {
            let keys: Vec<Vec<u16>> = m.keys().map(|k| k.encode_utf16().collect()).collect();
            prop_assert!(keys.windows(2).all(|w| w[0] < w[1]));
        }
        // Top-level member order in the input does not matter.
        if let Value::Object(m) = &obj {
            let reversed: serde_json::Map<String, Value> = m.iter().rev().map(|(k, v)| (k.clone(), v.clone())).collect();
            prop_assert_eq!(canonicalize(&serde_json::to_vec(&reversed).unwrap()).unwrap(), c);
        }
    }

    #[test]
    fn timestamp_formats_round_trip(ms in 0i64..253_402_300_799_999) {
        let t = kt::from_epoch_millis(ms).unwrap();
        prop_assert_eq!(kt::epoch_millis(kt::parse_millis17(&kt::format_millis17(t)).unwrap()), ms);
        prop_assert_eq!(kt::epoch_millis(kt::parse_kit_timestamp(&kt::format_kit_timestamp(t)).unwrap()), ms);
        let secs = ms - ms % 1000;
        prop_assert_eq!(kt::epoch_millis(kt::parse_expire_time(&kt::format_expire_time(t)).unwrap()), secs);
        prop_assert_eq!(kt::epoch_millis(kt::parse_sdk_date(&kt::format_sdk_date(t)).unwrap()), secs);
        prop_assert_eq!(kt::epoch_millis(kt::parse_license_datetime(&kt::format_license_datetime(t)).unwrap()), secs);
    }

    #[test]
    fn nonce_window_agrees_with_naive_model(steps in prop::collection::vec((0u8..4, 0i64..50), 1..60), ttl in 1u64..100) {
        let mut w = NonceWindow::new(ttl);
        let mut accepted: Vec<(u8, i64)> = Vec::new();
        let mut now = 0i64;
        for (nonce, advance) in steps {
            now += advance;
            let remembered = accepted.iter().any(|&(n, at)| n == nonce && now <= at + i64::try_from(ttl).unwrap());
            prop_assert_eq!(w.accept("basic", &nonce.to_string(), now), !remembered);
            if !remembered {
                accepted.push((nonce, now));
            }
        }
    }

    /// Nothing panics on arbitrary input.
    #[test]
    fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), text in "\\PC{0,60}") {
        let lossy = String::from_utf8_lossy(&bytes).into_owned();
        let _ = canonicalize(&bytes);
        let _ = koogallery::query::decode_query(&lossy);
        let _ = koogallery::model::peek_activity(&bytes);
        let _ = v1::post_body_params(&bytes);
        let _ = v1::verify_post("k", &bytes, Some(&text));
        let _ = v1::check_v1_window(&text, NOW, 1000);
        for s in [&lossy, &text] {
            let _ = kt::parse_epoch_millis(s);
            let _ = kt::parse_millis17(s);
            let _ = kt::parse_kit_timestamp(s);
            let _ = kt::parse_expire_time(s);
            let _ = kt::parse_sdk_date(s);
            let _ = kt::parse_license_datetime(s);
            let _ = body_sign::parse(s);
            let _ = body_sign::verify("k", &bytes, Some(s));
            let _ = apig::parse_authorization(s);
            let _ = apig::canonical_uri(s);
            let _ = FieldCipher::new("k", KeySize::Aes256).decrypt(s);
            let _ = FieldCipher::new("k", KeySize::Aes128).decrypt(s);
            let r = req(s, s, s);
            let _ = v2::verify("k", &r, &bytes, NOW, 60_000);
            let _ = kit::verify("k", &r, &bytes, NOW, 60_000);
            let _ = usage::verify("k", s, s, &bytes, Some(s));
        }
        let params = koogallery::query::decode_query(&lossy);
        let _ = v1::verify_get("k", &params);
        use koogallery::model::{kit::KitRequest, license, saas_v1, saas_v2};
        let _ = saas_v2::SaasV2Request::decode(&bytes);
        let _ = saas_v1::SaasV1Request::decode(&params);
        let _ = license::LicenseV1Request::decode(&params);
        let _ = license::LicenseV2Request::decode(&bytes);
        let _ = saas_v1::decode_saas_extend_params(&lossy);
        for name in ["tenantSync", "applicationSync", "authSync", "singleOrgSync", "allOrgSync", text.as_str()] {
            let _ = KitRequest::decode(name, &bytes);
        }
        let _ = serde_json::from_slice::<koogallery::model::openapi::OrderQueryResponse>(&bytes);
        let _ = koogallery::fingerprint::DeviceInfo::parse(&lossy);
    }

    /// Model decoders never panic on JSON-shaped input with the right activity either (random
    /// bytes rarely get past the JSON parser, so this drives them into field validation).
    #[test]
    fn model_decoders_never_panic_on_json(obj in json_object(), activity in prop::sample::select(vec![
        "newInstance", "queryInstance", "refreshInstance", "updateInstanceStatus", "releaseInstance",
        "upgradeInstance", "changeInstanceCheck", "orderNotify", "getLicenseAsync", "refreshLicenseCode",
        "updateLicenseCodeStatus", "releaseLicenseCode", "getLicense", "refreshLicense", "expireLicense",
        "releaseLicense", "expireInstance", "upgrade", "instanceStatus",
    ])) {
        use koogallery::model::{kit::KitRequest, license, saas_v1, saas_v2};
        let mut obj = obj;
        if let Value::Object(m) = &mut obj {
            m.insert("activity".into(), Value::String(activity.into()));
        }
        let body = serde_json::to_vec(&obj).unwrap();
        let _ = saas_v2::SaasV2Request::decode(&body);
        let _ = license::LicenseV2Request::decode(&body);
        for name in ["tenantSync", "applicationSync", "authSync", "singleOrgSync", "allOrgSync"] {
            let _ = KitRequest::decode(name, &body);
        }
        let params: Vec<(String, String)> = match &obj {
            Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect(),
            _ => Vec::new(),
        };
        let _ = saas_v1::SaasV1Request::decode(&params);
        let _ = license::LicenseV1Request::decode(&params);
    }
}
